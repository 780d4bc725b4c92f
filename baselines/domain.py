"""The 2020 paper's full model: two-domain classification + unknown-identity rejection + a gradient-reversal
domain loss, on one weight-sharing embedder.

L = alpha * (L_cls^c + L_cls^a) + beta * (L_uir^c + L_uir^a) + gamma * L_da, with the paper's alpha = 1,
beta = 0.1, gamma = 10 as defaults. The embedder's gradient is exactly that of L (L_da's reversed); the domain
classifier, which only L_da reaches, descends L_da itself at weight 1 (the DANN form, Ganin & Lempitsky 2015:
the adversarial weight is the reversal's lambda, the domain classifier's own loss is unweighted). Weighting the
classifier's loss by gamma = 10 too (the first version) multiplied its learning rate by 10: at lr 0.05 it and the
embedder blew each other up within 30 steps of a softmax-pretrained start, in float32 as in bf16
(benchmarks/full_model_divergence.py). Domain flags follow the paper's z: 1 = cartoon, 0 = the other
domain (human faces in the paper, `facedata`'s auxiliary drawing style here).

Choices where the paper is vague (its formulas are garbled in the text we have):
- L_cls: each domain has its own head (`NormLinear` + the configured margin); each classifies only its own rows.
- L_uir ("unknown identity rejection", after Dhamija et al.'s entropic open-set loss): the rows of the other domain
  are unknown identities to a head, whose predicted distribution should be flat. For each head we take the rows of
  the other domain and minimise the cross entropy to the uniform distribution, -mean_j log softmax(logits)_j
  (minimum log C, reached exactly at the uniform distribution). The paper's batches are 3/4 cartoon (known) and
  1/4 other domain (unknown); the sampler's `aux_fraction` defaults to 0.25 for this method.
- L_da: the paper's text speaks of "the reciprocal of the binary softmax loss" and, in its description, of a
  gradient reversal layer; we use the standard gradient-reversal form (Ganin & Lempitsky 2015): a small domain
  classifier (D -> 256 -> 1) learns to tell the domains apart with binary cross entropy, and the reversed gradient
  (times `grl_lambda`, default 1, ramped up from 0 over training by that paper's schedule, `grl_schedule`
  "dann") pushes the embedder to make them indistinguishable.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

CARTOON, AUXILIARY = 1, 0


class _ReverseGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, lambda_: torch.Tensor | float) -> torch.Tensor:
        ctx.lambda_ = lambda_
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.lambda_ * grad, None


GRL_SCHEDULES = ("dann", "constant")


class GradientReversal(nn.Module):
    """Identity forward, gradient times -lambda_p backward.

    schedule "dann" (the default): Ganin & Lempitsky's (2015) ramp lambda_p = lambda (2 / (1 + exp(-10 p)) - 1),
    p the fraction of training done (0 -> 1), which the training loop sets through `set_total_steps(T)` (step t of
    T: p = t / T; without it p stays 0 for the first call and counts raw forward calls against 1 step). The ramp is
    part of the published gradient-reversal method: it keeps the reversed domain gradient away from the untrained
    domain classifier at the start, where a constant lambda lets the embedder and the classifier blow each other up
    (benchmarks/full_model_divergence.py). "constant": lambda_p = lambda throughout.
    """

    def __init__(self, lambda_: float = 1.0, schedule: str = "dann"):
        super().__init__()
        if schedule not in GRL_SCHEDULES:
            raise ValueError(f"gradient reversal schedule must be one of {GRL_SCHEDULES}, not {schedule!r}")
        self.lambda_, self.schedule = lambda_, schedule
        self.register_buffer("iteration", torch.zeros((), dtype=torch.int64))
        self.register_buffer("total_steps", torch.zeros((), dtype=torch.int64))  # 0: not set

    def set_total_steps(self, total_steps: int) -> None:
        self.total_steps.fill_(int(total_steps))

    def weight(self) -> torch.Tensor:
        """lambda_p in force now, a 0-d float32 tensor on the buffers' device."""
        if self.schedule == "constant":
            return torch.full((), float(self.lambda_), device=self.iteration.device)
        p = (self.iteration.double() / self.total_steps.double().clamp(min=1.0)).clamp(max=1.0)
        return (self.lambda_ * (2.0 / (1.0 + torch.exp(-10.0 * p)) - 1.0)).float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lambda_ = self.weight()
        if self.training:
            self.iteration += 1
        return _ReverseGrad.apply(x, lambda_)


class DomainClassifier(nn.Module):
    """Embeddings (B, D) -> domain logits float32 (B,) (positive: cartoon), through a gradient reversal layer, on
    the L2-normalised embeddings."""

    def __init__(self, embedding_dim: int, hidden: int = 256, grl_lambda: float = 1.0, grl_schedule: str = "dann"):
        super().__init__()
        self.reverse = GradientReversal(grl_lambda, grl_schedule)
        self.net = nn.Sequential(nn.Linear(embedding_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 1))

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        # on the L2-normalised embedding (the feature the test compares): the reversed gradient can then only turn
        # embeddings, not inflate them, which let the embedder raise the domain loss without bound (NaN at epoch 5)
        return self.net(self.reverse(F.normalize(embeddings.float(), dim=1))).squeeze(1).float()


def unknown_identity_rejection_loss(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the rows in mask of the cross entropy to the uniform distribution, -mean_j log softmax_j.

    logits: (B, C); mask: bool (B,) the rows that are unknown to this head. 0 when no row is masked.
    """
    per_row = -F.log_softmax(logits.float(), dim=1).mean(dim=1)
    weight = mask.float()
    return (per_row * weight).sum() / weight.sum().clamp(min=1.0)


def domain_adversarial_loss(domain_logits: torch.Tensor, domains: torch.Tensor) -> torch.Tensor:
    """Binary cross entropy of the domain classifier: logits (B,), domains (B,) 1 cartoon / 0 other."""
    return F.binary_cross_entropy_with_logits(domain_logits, domains.float())


class FullModel(nn.Module):
    """The objective of the full model: (embeddings (B, D), labels (B,), domains (B,)) -> (loss, parts).

    labels are identity indices within each row's own domain. parts: detached scalars cls, uir, da, acc.
    """

    def __init__(
        self,
        cartoon_head: nn.Module,
        aux_head: nn.Module,
        cartoon_margin: nn.Module,
        aux_margin: nn.Module,
        criterion: nn.Module,
        embedding_dim: int,
        alpha: float = 1.0,
        beta: float = 0.1,
        gamma: float = 10.0,
        grl_lambda: float = 1.0,
        grl_schedule: str = "dann",
    ):
        super().__init__()
        self.cartoon_head, self.aux_head = cartoon_head, aux_head
        self.cartoon_margin, self.aux_margin = cartoon_margin, aux_margin
        self.criterion = criterion
        # gamma weighs the domain loss's gradient into the embedder (through the reversal); the domain classifier
        # learns from the loss itself at weight 1 (see the module docstring)
        self.domain_classifier = DomainClassifier(
            embedding_dim, grl_lambda=gamma * grl_lambda, grl_schedule=grl_schedule
        )
        self.alpha, self.beta, self.gamma = alpha, beta, gamma

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor, domains: torch.Tensor):
        is_cartoon = domains == CARTOON
        none = torch.full_like(labels, -1)
        cartoon_labels = torch.where(is_cartoon, labels, none)
        aux_labels = torch.where(is_cartoon, none, labels)
        cartoon_cos = self.cartoon_head(embeddings)
        aux_cos = self.aux_head(embeddings)
        # rows labelled -1 get only the scale: the same logits serve the rejection loss of the other domain
        cartoon_logits = self.cartoon_margin(cartoon_cos, cartoon_labels)
        aux_logits = self.aux_margin(aux_cos, aux_labels)
        cls = self.criterion(cartoon_logits, cartoon_labels) + self.criterion(aux_logits, aux_labels)
        uir = unknown_identity_rejection_loss(cartoon_logits, ~is_cartoon) + unknown_identity_rejection_loss(
            aux_logits, is_cartoon
        )
        da = domain_adversarial_loss(self.domain_classifier(embeddings), domains)
        loss = self.alpha * cls + self.beta * uir + da  # gamma is in the reversal: the embedder gets -gamma grad
        acc = _accuracy(cartoon_cos, cartoon_labels)
        return loss, {"cls": cls.detach(), "uir": uir.detach(), "da": da.detach(), "acc": acc}


def _accuracy(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Fraction of labelled rows (label >= 0) whose argmax is the label, a detached 0-d tensor."""
    labelled = (labels >= 0).float()
    hit = (scores.argmax(dim=1) == labels).float() * labelled
    return (hit.sum() / labelled.sum().clamp(min=1.0)).detach()
