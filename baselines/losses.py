"""Margin losses `(cos, labels) -> logits` and the criteria that turn logits into a loss (arcface_torch style).

A margin module takes cos float (B, C) from a head (`baselines.heads`) and labels int64 (B,), changes the target
logit of each labelled row and scales: logits float32 (B, C). Rows labelled -1 (unlabelled samples, e.g. the other
domain in the full model's rejection loss) get no margin, only the scale. All of them work in float32 and keep
finite gradients at cos = +-1 (cos is clamped to [-1 + 1e-6, 1 - 1e-6] where arccos or sqrt is taken).

| name | target logit | defaults (the method's paper) |
|---|---|---|
| softmax | s cos | s = 1: with the plain `linear` head, the raw logits (the papers' SoftMax) |
| sphereface | s (lambda cos + psi(theta)) / (1 + lambda) | m = 4, s = 30, annealed lambda (see `SphereFace`) |
| cosface | s (cos - m) | s = 64, m = 0.35 |
| arcface | s cos(theta + m) | s = 64, m = 0.5 |
| combined | s (cos(m1 theta + m2) - m3) | s = 64, m1 = 1, m2 = 0.3, m3 = 0.2 (insightface) |

Criteria (`CRITERIA`): `cross_entropy`, and `focal` (Lin et al.'s focal loss applied per sample to the margin
logits: (1 - p_t)^gamma * -log p_t, gamma = 2), which with `arcface` is the 2020 paper's "focal loss on ArcFace".
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from baselines.registry import lookup

_EPS = 1e-6


class _Margin(nn.Module):
    """Gathers the target cosine, lets a subclass transform it, scatters it back, scales."""

    scale: float

    def target(self, cos_t: torch.Tensor) -> torch.Tensor:  # pragma: no cover - every subclass overrides
        raise NotImplementedError

    def forward(self, cos: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        cos = cos.float()
        labelled, index = labels >= 0, labels.clamp(min=0)
        cos_t = cos.gather(1, index[:, None]).squeeze(1)
        new_t = torch.where(labelled, self.target(cos_t), cos_t)
        logits = cos.scatter(1, index[:, None], new_t[:, None])
        return logits * self.scale


class Softmax(_Margin):
    """No margin: logits = s cos (with the `linear` head and s = 1, the raw logits)."""

    def __init__(self, scale: float = 1.0):
        super().__init__()
        self.scale = scale

    def forward(self, cos: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return cos.float() * self.scale


class CosFace(_Margin):
    """Large margin cosine loss (Wang et al. 2018): s (cos - m) for the target."""

    def __init__(self, scale: float = 64.0, margin: float = 0.35):
        super().__init__()
        self.scale, self.margin = scale, margin

    def target(self, cos_t: torch.Tensor) -> torch.Tensor:
        return cos_t - self.margin


class ArcFace(_Margin):
    """Additive angular margin (Deng et al. 2019): s cos(theta + m) for the target.

    cos(theta + m) = cos cos m - sin sin m, with sin = sqrt(1 - cos^2) clamped away from 0 so the gradient stays
    finite at cos = +-1. Where theta + m > pi the function would rise again; there (insightface's rule) the target
    becomes cos - m sin m, which keeps the logit decreasing in theta.
    """

    def __init__(self, scale: float = 64.0, margin: float = 0.5):
        super().__init__()
        self.scale, self.margin = scale, margin
        self._cos_m, self._sin_m = math.cos(margin), math.sin(margin)
        self._threshold = math.cos(math.pi - margin)
        self._fallback = math.sin(math.pi - margin) * margin

    def target(self, cos_t: torch.Tensor) -> torch.Tensor:
        sin_t = torch.sqrt((1.0 - cos_t * cos_t).clamp(min=_EPS))
        shifted = cos_t * self._cos_m - sin_t * self._sin_m
        return torch.where(cos_t > self._threshold, shifted, cos_t - self._fallback)


class CombinedMargin(_Margin):
    """insightface's combined margin: s (cos(m1 theta + m2) - m3). With (m1, m2, m3) = (1, 0.5, 0) it is ArcFace,
    (1, 0, 0.35) CosFace, (4, 0, 0) SphereFace's psi without its annealing.

    Where phi = m1 theta + m2 passes pi, cos(phi) would rise again; there the target continues as SphereFace's psi,
    (-1)^k cos(phi) - 2k - m3 for phi in [k pi, (k + 1) pi], which is continuous and strictly decreasing in theta for
    any m1 >= 1 (ArcFace's `cos - m sin m` rule is only a stand-in for m1 = 1 and jumps for m1 > 1).
    """

    def __init__(self, scale: float = 64.0, m1: float = 1.0, m2: float = 0.3, m3: float = 0.2):
        super().__init__()
        if m1 < 1.0 or m2 < 0.0 or m3 < 0.0:
            raise ValueError(f"combined margin needs m1 >= 1, m2 >= 0, m3 >= 0; got m1={m1}, m2={m2}, m3={m3}")
        self.scale, self.m1, self.m2, self.m3 = scale, m1, m2, m3

    def target(self, cos_t: torch.Tensor) -> torch.Tensor:
        theta = torch.acos(cos_t.clamp(-1.0 + _EPS, 1.0 - _EPS))
        angle = self.m1 * theta + self.m2
        with torch.no_grad():
            k = torch.floor(angle / math.pi)
            sign = 1.0 - 2.0 * torch.remainder(k, 2)
        return sign * torch.cos(angle) - 2.0 * k - self.m3


class SphereFace(_Margin):
    """Multiplicative angular margin (A-Softmax, Liu et al. 2017) with its annealing.

    psi(theta) = (-1)^k cos(m theta) - 2k for theta in [k pi / m, (k + 1) pi / m], cos(m theta) by the Chebyshev
    polynomial (no arccos in the gradient path). The target logit is s (lambda cos + psi) / (1 + lambda) with
    lambda = max(lambda_min, base (1 + gamma * i)^-power), the paper's Caffe schedule (base 1000, gamma 0.12, power 1,
    lambda_min 5) in its own iterations i. Annealing follows the fraction of training done: once the training loop
    has called `set_total_steps(T)`, step t of T counts as paper iteration i = t / T * reference_iterations (the
    paper's 28,000 iterations on CASIA-WebFace), so lambda falls from 1000 to 5 over the first 6 % of any schedule
    and ends at 5, as in the paper, however many steps the run has. Without it, i is the raw count of training-mode
    forward calls (the Caffe behaviour).

    Choice where the paper differs from our shared head: A-Softmax multiplies by the raw feature norm |x|; here the
    features are normalised and a fixed scale s = 30 is used instead (the form insightface and later SphereFace
    revisions use), so every loss shares the `NormLinear` head.
    """

    _CHEBYSHEV = {
        1: lambda c: c,
        2: lambda c: 2 * c**2 - 1,
        3: lambda c: 4 * c**3 - 3 * c,
        4: lambda c: 8 * c**4 - 8 * c**2 + 1,
    }

    def __init__(
        self,
        scale: float = 30.0,
        margin: int = 4,
        base: float = 1000.0,
        gamma: float = 0.12,
        power: float = 1.0,
        lambda_min: float = 5.0,
        reference_iterations: int = 28_000,
    ):
        super().__init__()
        if margin not in self._CHEBYSHEV:
            raise ValueError(f"sphereface margin must be an integer 1 to 4, got {margin!r}")
        self.scale, self.margin = scale, int(margin)
        self.base, self.gamma, self.power, self.lambda_min = base, gamma, power, lambda_min
        self.reference_iterations = reference_iterations
        self.register_buffer("iteration", torch.zeros((), dtype=torch.int64))
        self.register_buffer("total_steps", torch.zeros((), dtype=torch.int64))  # 0: not set, raw iterations

    def set_total_steps(self, total_steps: int) -> None:
        """Anneal over a run of total_steps training steps (called by starter_kit.train before the first step)."""
        self.total_steps.fill_(int(total_steps))

    @property
    def lam(self) -> torch.Tensor:
        """The annealing weight, a 0-d tensor on the buffer's device (no host synchronisation per step)."""
        iteration = self.iteration.double()
        total = self.total_steps.double()
        paper_iteration = torch.where(
            total > 0, iteration / total.clamp(min=1.0) * self.reference_iterations, iteration
        )
        decayed = self.base * (1.0 + self.gamma * paper_iteration) ** (-self.power)
        return decayed.clamp(min=self.lambda_min).float()

    def target(self, cos_t: torch.Tensor) -> torch.Tensor:
        cos_t = cos_t.clamp(-1.0, 1.0)
        with torch.no_grad():
            theta = torch.acos(cos_t.clamp(-1.0 + _EPS, 1.0 - _EPS))
            k = torch.floor(self.margin * theta / math.pi)
            sign = 1.0 - 2.0 * torch.remainder(k, 2)
        psi = sign * self._CHEBYSHEV[self.margin](cos_t) - 2.0 * k
        lam = self.lam
        return (lam * cos_t + psi) / (1.0 + lam)

    def forward(self, cos: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        logits = super().forward(cos, labels)
        if self.training:
            self.iteration += 1
        return logits


LOSSES: dict[str, Callable[..., nn.Module]] = {
    "softmax": Softmax,
    "sphereface": SphereFace,
    "cosface": CosFace,
    "arcface": ArcFace,
    "combined": CombinedMargin,
}


def build_loss(name: str, **kwargs) -> nn.Module:
    """`LOSSES[name](**kwargs)`; an unknown name raises KeyError listing the valid ones."""
    return lookup(LOSSES, name, "loss")(**kwargs)


# --------------------------------------------------------------------------------------------------- criteria


def _target_log_prob(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(log p of the target, float mask of labelled rows), both (B,); unlabelled rows read column 0, masked out."""
    labelled = (labels >= 0).float()
    log_p = F.log_softmax(logits.float(), dim=1).gather(1, labels.clamp(min=0)[:, None]).squeeze(1)
    return log_p, labelled


class CrossEntropy(nn.Module):
    """Mean cross entropy over the rows with a label >= 0: logits (B, C), labels (B,) -> scalar (0 if none).
    Written without boolean indexing so that it never waits on the GPU."""

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        log_p, labelled = _target_log_prob(logits, labels)
        return -(log_p * labelled).sum() / labelled.sum().clamp(min=1.0)


class Focal(nn.Module):
    """Focal loss per sample, mean over labelled rows: (1 - p_t)^gamma * -log p_t. gamma = 0 is cross entropy."""

    def __init__(self, gamma: float = 2.0):
        super().__init__()
        self.gamma = gamma

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        log_p, labelled = _target_log_prob(logits, labels)
        weight = (1.0 - log_p.exp()).clamp(min=_EPS) ** self.gamma  # finite gradient at p = 1 for any gamma
        return -(weight * log_p * labelled).sum() / labelled.sum().clamp(min=1.0)


CRITERIA: dict[str, Callable[..., nn.Module]] = {"cross_entropy": CrossEntropy, "focal": Focal}


def build_criterion(name: str, **kwargs) -> nn.Module:
    """`CRITERIA[name](**kwargs)`; an unknown name raises KeyError listing the valid ones."""
    return lookup(CRITERIA, name, "criterion")(**kwargs)
