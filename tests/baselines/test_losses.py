"""Margin losses and criteria: shapes, the margin lowers only the target logit, finite gradients at cos = +-1."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from baselines.heads import NormLinear
from baselines.losses import (
    CRITERIA,
    LOSSES,
    ArcFace,
    CombinedMargin,
    CosFace,
    Focal,
    SphereFace,
    build_criterion,
    build_loss,
)

MARGINS = ["sphereface", "cosface", "arcface", "combined"]


def _cos(batch=6, classes=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, classes, generator=g) * 1.8 - 0.9, torch.randint(0, classes, (batch,), generator=g)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_loss_keeps_the_shape_of_the_cosines(name):
    cos, labels = _cos()
    assert build_loss(name)(cos, labels).shape == cos.shape


@pytest.mark.parametrize("name", MARGINS)
def test_margin_lowers_the_target_logit_and_leaves_the_others(name):
    loss = build_loss(name)
    cos, labels = _cos(batch=64, classes=7)
    logits = loss(cos, labels) / loss.scale
    target = F.one_hot(labels, 7).bool()
    assert torch.all(logits[target] < cos[target])
    assert torch.allclose(logits[~target], cos[~target])


@pytest.mark.parametrize("name", MARGINS)
def test_unlabelled_rows_get_no_margin(name):
    loss = build_loss(name)
    cos, _ = _cos()
    assert torch.allclose(loss(cos, torch.full((6,), -1)), cos * loss.scale)


@pytest.mark.parametrize("name", sorted(LOSSES))
@pytest.mark.parametrize("value", [1.0, -1.0])
def test_gradient_is_finite_at_cos_plus_minus_one(name, value):
    cos = torch.full((4, 3), value, requires_grad=True)
    labels = torch.tensor([0, 1, 2, 0])
    logits = build_loss(name)(cos, labels)
    for criterion in CRITERIA:
        (grad,) = torch.autograd.grad(build_criterion(criterion)(logits, labels), cos, retain_graph=True)
        assert torch.isfinite(grad).all(), criterion


def test_gradient_through_the_normalised_head_is_finite_when_embedding_equals_a_class_centre():
    head = NormLinear(8, 3)
    emb = head.weight.detach()[[0, 1]].clone().requires_grad_(True)  # cos = 1 exactly for the targets
    logits = ArcFace()(head(emb), torch.tensor([0, 1]))
    F.cross_entropy(logits, torch.tensor([0, 1])).backward()
    assert torch.isfinite(emb.grad).all() and torch.isfinite(head.weight.grad).all()


def test_arcface_target_is_cos_of_theta_plus_m():
    cos = torch.tensor([[0.5, 0.1]])
    logits = ArcFace(scale=1.0, margin=0.5)(cos, torch.tensor([0]))
    assert logits[0, 0].item() == pytest.approx(math.cos(math.acos(0.5) + 0.5), abs=1e-6)


def test_arcface_falls_back_to_a_decreasing_target_past_pi_minus_m():
    cos = torch.tensor([[-0.95, 0.0], [-0.99, 0.0]])
    logits = ArcFace(scale=1.0, margin=0.5)(cos, torch.tensor([0, 0]))
    assert logits[0, 0] > logits[1, 0]  # still decreasing in theta (cos(theta + m) would rise again)


def test_cosface_subtracts_m():
    logits = CosFace(scale=2.0, margin=0.35)(torch.tensor([[0.8, 0.2]]), torch.tensor([0]))
    assert logits.tolist()[0] == pytest.approx([2 * 0.45, 0.4])


def test_combined_margin_with_arcface_parameters_equals_arcface_where_theta_plus_m_is_below_pi():
    cos, labels = _cos(batch=32)
    cos = cos.clamp(min=math.cos(math.pi - 0.5) + 1e-3)  # beyond, each has its own monotonic continuation
    assert torch.allclose(CombinedMargin(64.0, 1.0, 0.5, 0.0)(cos, labels), ArcFace(64.0, 0.5)(cos, labels), atol=1e-4)


@pytest.mark.parametrize(
    ("m1", "m2", "m3"),
    [(1.0, 0.3, 0.2), (1.0, 0.5, 0.0), (1.35, 0.25, 0.1), (2.0, 0.0, 0.0), (3.0, 0.2, 0.1), (4.0, 0.0, 0.0)],
)
def test_combined_margin_is_continuous_and_decreasing_in_theta_for_any_m1(m1, m2, m3):
    theta = torch.linspace(0.0, math.pi, 20001, dtype=torch.float64)
    target = CombinedMargin(1.0, m1, m2, m3).target(torch.cos(theta).float()).double()
    steps = target[1:] - target[:-1]
    assert (steps < 1e-6).all()  # never rises (the old fallback jumped up by 1.0 at theta = pi / 2 for m1 = 2)
    assert steps.abs().max() < 5e-3  # no jump: a fine grid moves it by little
    inside = m1 * theta + m2 <= math.pi
    assert torch.allclose(target[inside], torch.cos(m1 * theta[inside] + m2) - m3, atol=2e-3)  # cos clamped at 1


def test_combined_margin_with_m1_4_is_sphereface_psi():
    theta = torch.tensor([0.3, 1.0, 2.0, 3.0])
    psi = SphereFace(scale=1.0, margin=4, base=0.0, lambda_min=0.0).target(torch.cos(theta))
    assert torch.allclose(CombinedMargin(1.0, 4.0, 0.0, 0.0).target(torch.cos(theta)), psi, atol=1e-3)


@pytest.mark.parametrize("args", [{"m1": 0.5}, {"m2": -0.1}, {"m3": -0.2}])
def test_combined_margin_refuses_parameters_that_would_raise_the_target(args):
    with pytest.raises(ValueError, match="m1 >= 1"):
        CombinedMargin(**args)


@pytest.mark.parametrize("margin", [0, 5, 2.5])
def test_sphereface_refuses_a_non_integer_or_unsupported_margin(margin):
    with pytest.raises(ValueError, match="integer 1 to 4"):
        SphereFace(margin=margin)


def test_sphereface_psi_is_cos_m_theta_piecewise():
    loss = SphereFace(scale=1.0, margin=4, base=0.0, lambda_min=0.0)  # lambda = 0: the bare psi
    theta = torch.tensor([0.3, 1.0, 2.0, 3.0])
    k = torch.floor(4 * theta / math.pi)
    psi = (-1) ** k * torch.cos(4 * theta) - 2 * k
    out = loss.target(torch.cos(theta))
    assert torch.allclose(out, psi, atol=1e-4)


def test_sphereface_annealing_lowers_lambda_with_training_steps_down_to_its_floor():
    loss = SphereFace()
    cos, labels = _cos()
    lambdas = []
    for _ in range(3):
        lambdas.append(float(loss.lam))
        loss(cos, labels)
    assert lambdas[0] == pytest.approx(1000.0) and lambdas[0] > lambdas[1] > lambdas[2]
    loss.iteration.fill_(10**6)
    assert float(loss.lam) == pytest.approx(5.0)
    loss.eval()
    loss(cos, labels)
    assert int(loss.iteration) == 10**6  # evaluation does not advance the annealing


@pytest.mark.parametrize("total", [640, 28_000, 200_000])
def test_sphereface_anneals_over_the_fraction_of_training_to_the_papers_end_points(total):
    """Whatever the run's length, lambda starts at 1000, reaches 5 after the paper's share of training (1,658 of its
    28,000 iterations) and ends at 5; the old raw count left lambda at 12.85 after 640 steps."""
    loss = SphereFace()
    loss.set_total_steps(total)
    at = {}
    for fraction in (0.0, 0.02, 0.05, 0.07, 1.0):
        loss.iteration.fill_(round(fraction * total))
        at[fraction] = float(loss.lam)
    assert at[0.0] == pytest.approx(1000.0)
    assert at[0.02] > at[0.05] > 5.0
    assert at[0.07] == pytest.approx(5.0) and at[1.0] == pytest.approx(5.0)
    reference = SphereFace()  # no total: the raw Caffe count
    reference.iteration.fill_(round(0.05 * 28_000))
    assert at[0.05] == pytest.approx(float(reference.lam), rel=0.01)


def test_focal_with_gamma_zero_is_cross_entropy():
    logits, labels = torch.randn(8, 5), torch.randint(0, 5, (8,))
    assert Focal(gamma=0.0)(logits, labels).item() == pytest.approx(F.cross_entropy(logits, labels).item(), rel=1e-5)


def test_focal_down_weights_easy_samples():
    easy = torch.tensor([[6.0, 0.0, 0.0]])
    hard = torch.tensor([[0.5, 0.0, 0.0]])
    label = torch.tensor([0])
    ratio_easy = Focal(2.0)(easy, label) / F.cross_entropy(easy, label)
    ratio_hard = Focal(2.0)(hard, label) / F.cross_entropy(hard, label)
    assert ratio_easy < ratio_hard < 1


@pytest.mark.parametrize("name", sorted(CRITERIA))
def test_criteria_ignore_unlabelled_rows(name):
    logits, labels = torch.randn(6, 4), torch.tensor([0, 1, -1, 3, -1, 2])
    keep = labels >= 0
    crit = build_criterion(name)
    assert crit(logits, labels).item() == pytest.approx(crit(logits[keep], labels[keep]).item(), rel=1e-6)
    assert crit(logits, torch.full((6,), -1)).item() == 0.0


@pytest.mark.parametrize(
    ("builder", "name", "valid"), [(build_loss, "arc_face", "arcface"), (build_criterion, "bce", "focal")]
)
def test_unknown_loss_or_criterion_lists_the_valid_names(builder, name, valid):
    with pytest.raises(KeyError, match=valid):
        builder(name)
