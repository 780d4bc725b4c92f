"""Training objectives: plain, inter-/intra-face fusion (2019) and the 2020 full model (rejection + domain loss)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from baselines.domain import (
    AUXILIARY,
    CARTOON,
    GradientReversal,
    domain_adversarial_loss,
    unknown_identity_rejection_loss,
)
from baselines.methods import METHODS, build_objective

D, C, A = 16, 5, 3


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    emb = torch.randn(8, D, generator=g, requires_grad=True)
    domains = torch.tensor([CARTOON] * 6 + [AUXILIARY] * 2)
    labels = torch.where(
        domains == CARTOON, torch.randint(0, C, (8,), generator=g), torch.randint(0, A, (8,), generator=g)
    )
    return emb, labels, domains


def _objective(method, loss="arcface", **method_args):
    head = "linear" if loss == "softmax" else "norm_linear"
    return build_objective(
        method,
        embedding_dim=D,
        num_classes=C,
        num_aux_classes=A,
        head=head,
        loss={"name": loss},
        method_args=method_args,
    )


@pytest.mark.parametrize("method", sorted(METHODS))
@pytest.mark.parametrize("loss", ["softmax", "sphereface", "arcface"])
def test_objective_gives_a_finite_loss_and_gradient(method, loss):
    emb, labels, domains = _batch()
    if method == "plain":
        domains = torch.full_like(domains, CARTOON)
        labels = labels.clamp(max=C - 1)
    total, parts = _objective(method, loss)(emb, labels, domains)
    total.backward()
    assert total.ndim == 0 and torch.isfinite(total)
    assert torch.isfinite(emb.grad).all() and emb.grad.abs().sum() > 0
    assert 0.0 <= float(parts["acc"]) <= 1.0


def test_inter_fusion_is_the_cartoon_loss_plus_the_weighted_auxiliary_loss():
    emb, labels, domains = _batch()
    objective = _objective("inter_fusion", aux_weight=0.5)
    total, parts = objective(emb, labels, domains)
    assert total.item() == pytest.approx(parts["cls"].item() + 0.5 * parts["aux"].item(), rel=1e-6)


def test_inter_fusion_classifies_each_row_with_its_own_domain_head():
    emb, labels, domains = _batch()
    objective = _objective("inter_fusion", loss="softmax")
    _, parts = objective(emb, labels, domains)
    cartoon = domains == CARTOON
    expected_aux = F.cross_entropy(objective.aux_head(emb[~cartoon]), labels[~cartoon])
    assert parts["aux"].item() == pytest.approx(expected_aux.item(), rel=1e-5)


def test_intra_fusion_appends_the_auxiliary_identities_as_extra_classes():
    emb, labels, domains = _batch()
    objective = _objective("intra_fusion", loss="softmax")
    assert objective.head.fc.out_features == C + A
    total, _ = objective(emb, labels, domains)
    merged = torch.where(domains == CARTOON, labels, labels + C)
    assert total.item() == pytest.approx(F.cross_entropy(objective.head(emb), merged).item(), rel=1e-5)


@pytest.mark.parametrize("method", [m for m, spec in METHODS.items() if spec.uses_aux])
def test_fusion_methods_refuse_data_without_auxiliary_identities(method):
    with pytest.raises(ValueError, match="auxiliary"):
        build_objective(method, embedding_dim=D, num_classes=C, num_aux_classes=0, loss={"name": "arcface"})


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"method": "fusion"}, "unknown method 'fusion'; valid: full_model, inter_fusion"),
        ({"loss": {"name": "arcface", "margn": 0.5}}, "loss 'arcface': bad arguments"),
        ({"loss": {"scale": 1.0}}, "needs a 'name'"),
        ({"criterion": {"name": "focal", "alpha": 1}}, "criterion 'focal': bad arguments"),
        ({"method_args": {"beta": 0.1}}, "method 'plain': bad arguments"),
    ],
)
def test_bad_objective_config_names_the_culprit(kwargs, match):
    args = {"method": "plain", "embedding_dim": D, "num_classes": C, "loss": {"name": "arcface"}} | kwargs
    with pytest.raises((KeyError, ValueError), match=match):
        build_objective(**args)


def test_full_model_total_uses_the_papers_weights_by_default():
    emb, labels, domains = _batch()
    objective = _objective("full_model", loss="softmax")
    assert (objective.alpha, objective.beta, objective.gamma) == (1.0, 0.1, 10.0)
    total, parts = objective(emb, labels, domains)
    # gamma lives in the gradient reversal (the embedder's side); the value adds the domain loss at weight 1
    expected = parts["cls"] + 0.1 * parts["uir"] + parts["da"]
    assert total.item() == pytest.approx(expected.item(), rel=1e-5)


def test_full_model_gives_the_embedder_minus_gamma_and_the_domain_classifier_one_times_the_domain_gradient():
    """The DANN form: the embedder receives -gamma * lambda_p * dL_da (here lambda_p = 1, constant schedule) and the
    domain classifier descends L_da at weight 1. Weighting the classifier by gamma too multiplied its learning rate
    by 10 and made the softmax-pretrained full model diverge within 30 steps at lr 0.05."""
    emb, labels, domains = _batch()
    objective = _objective("full_model", loss="softmax", grl_schedule="constant")
    reverse, weight = objective.domain_classifier.reverse, objective.domain_classifier.net[2].weight
    assert reverse.lambda_ == 10.0
    grad_emb, grad_weight = torch.autograd.grad(objective(emb, labels, domains)[0], [emb, weight])
    reverse.lambda_ = 0.0  # the classification and rejection terms alone reach the embedder
    rest_emb = torch.autograd.grad(objective(emb, labels, domains)[0], emb)[0]
    reverse.lambda_ = -1.0  # -(-1) = +1: the plain gradient of the domain loss
    da = domain_adversarial_loss(objective.domain_classifier(emb), domains)
    da_emb, da_weight = torch.autograd.grad(da, [emb, weight])
    assert torch.allclose(grad_weight, da_weight, atol=1e-6)
    assert torch.allclose(grad_emb, rest_emb - 10.0 * da_emb, atol=1e-5)


def test_gradient_reversal_ramps_up_by_the_dann_schedule():
    """Ganin & Lempitsky's lambda_p = lambda (2 / (1 + exp(-10 p)) - 1) over the fraction p of training: 0 at the
    start (an untrained domain classifier pushes nothing into the embedder), lambda at the end; eval-mode calls do
    not advance it."""
    reverse = GradientReversal(2.0)
    reverse.set_total_steps(10)
    weights = []
    for _ in range(11):
        x = torch.ones(2, 3, requires_grad=True)
        reverse(x).sum().backward()
        weights.append(-x.grad[0, 0].item())
    expected = [2.0 * (2.0 / (1.0 + math.exp(-10.0 * t / 10)) - 1.0) for t in range(11)]
    assert weights == pytest.approx(expected, abs=1e-6)
    assert weights[0] == 0.0 and all(b > a for a, b in zip(weights, weights[1:], strict=False))
    reverse.eval()
    before = int(reverse.iteration)
    reverse(torch.ones(1, 3))
    assert int(reverse.iteration) == before
    with pytest.raises(ValueError, match="schedule"):
        GradientReversal(1.0, "linear")


def test_rejection_loss_is_smallest_for_a_flat_prediction():
    mask = torch.tensor([True, True])
    flat = unknown_identity_rejection_loss(torch.zeros(2, 4), mask)
    peaked = unknown_identity_rejection_loss(torch.tensor([[5.0, 0, 0, 0], [0, 0, 3.0, 0]]), mask)
    assert flat.item() == pytest.approx(math.log(4))
    assert peaked > flat


def test_rejection_loss_only_reads_the_masked_rows():
    logits = torch.tensor([[9.0, 0.0], [0.0, 0.0]])
    assert unknown_identity_rejection_loss(logits, torch.tensor([False, True])).item() == pytest.approx(math.log(2))
    assert unknown_identity_rejection_loss(logits, torch.tensor([False, False])).item() == 0.0


def test_gradient_reversal_flips_and_scales_the_gradient():
    x = torch.randn(3, 4, requires_grad=True)
    GradientReversal(0.5, "constant")(x).sum().backward()
    assert torch.equal(x.grad, torch.full((3, 4), -0.5))


def test_domain_loss_trains_the_classifier_and_reverses_into_the_embedder():
    """The domain classifier descends its loss while the embeddings receive the opposite gradient."""
    emb, labels, domains = _batch()
    objective = _objective("full_model", loss="softmax", grl_schedule="constant", gamma=1.0)
    classifier = objective.domain_classifier
    logits = classifier(emb)
    loss = domain_adversarial_loss(logits, domains)
    grad_emb, grad_last = torch.autograd.grad(loss, [emb, classifier.net[2].weight])
    classifier.reverse.lambda_ = 0.0
    plain_emb = torch.autograd.grad(domain_adversarial_loss(classifier(emb), domains), emb)[0]
    assert torch.count_nonzero(plain_emb) == 0 and torch.isfinite(grad_last).all()
    classifier.reverse.lambda_ = -1.0  # -(-1) = +1: the true gradient of the loss w.r.t. the embeddings
    true_emb = torch.autograd.grad(domain_adversarial_loss(classifier(emb), domains), emb)[0]
    assert torch.allclose(grad_emb, -true_emb)


def test_domain_classifier_reads_the_direction_of_the_embedding_only():
    """The reversed gradient can turn embeddings but not inflate them: with a constant reversal the first fix still
    let the embedder push the domain loss up without bound by growing the embedding norm (NaN at epoch 5)."""
    emb, _, domains = _batch()
    classifier = _objective("full_model", loss="softmax", grl_schedule="constant").domain_classifier
    logits = classifier(emb)
    assert torch.allclose(classifier(emb * 1000.0), logits, atol=1e-5)
    grad = torch.autograd.grad(domain_adversarial_loss(logits, domains), emb)[0]
    radial = (grad * F.normalize(emb.detach(), dim=1)).sum(dim=1)  # the component along each embedding
    assert grad.abs().sum() > 0 and torch.allclose(radial, torch.zeros_like(radial), atol=1e-6)
