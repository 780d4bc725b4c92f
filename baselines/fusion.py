"""Training objectives: the plain one, and the 2019 paper's inter-face and intra-face dataset fusion.

An objective maps (embeddings float (B, D), labels int64 (B,), domains int64 (B,)) to (loss, parts), parts being
detached scalars for the log. labels are identity indices within each row's own domain; domains are 1 for
cartoon rows and 0 for the auxiliary domain (`baselines.domain.CARTOON` / `AUXILIARY`).

- `Plain`: one head over the cartoon identities (every row is cartoon).
- `InterFaceFusion` (multi-task learning): one embedder, a cartoon head and an auxiliary head; each row is
  classified by its own domain's head. L = L_cartoon + aux_weight * L_aux. The paper gives no weight: 1.
- `IntraFaceFusion`: the auxiliary identities become extra classes of the one classifier (C + A classes; an
  auxiliary row's label is shifted by C). The number of auxiliary classes (the paper's 0 / 1,000 / 2,639 / 5,278)
  is chosen on the data side (`data.num_aux_classes`).
"""

from __future__ import annotations

import torch
from torch import nn

from baselines.domain import CARTOON, _accuracy


class Plain(nn.Module):
    def __init__(self, head: nn.Module, margin: nn.Module, criterion: nn.Module):
        super().__init__()
        self.head, self.margin, self.criterion = head, margin, criterion

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor, domains: torch.Tensor):
        cos = self.head(embeddings)
        loss = self.criterion(self.margin(cos, labels), labels)
        return loss, {"cls": loss.detach(), "acc": _accuracy(cos, labels)}


class InterFaceFusion(nn.Module):
    def __init__(
        self,
        cartoon_head: nn.Module,
        aux_head: nn.Module,
        cartoon_margin: nn.Module,
        aux_margin: nn.Module,
        criterion: nn.Module,
        aux_weight: float = 1.0,
    ):
        super().__init__()
        self.cartoon_head, self.aux_head = cartoon_head, aux_head
        self.cartoon_margin, self.aux_margin = cartoon_margin, aux_margin
        self.criterion, self.aux_weight = criterion, aux_weight

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor, domains: torch.Tensor):
        is_cartoon = domains == CARTOON
        none = torch.full_like(labels, -1)
        cartoon_labels = torch.where(is_cartoon, labels, none)
        aux_labels = torch.where(is_cartoon, none, labels)
        cartoon_cos = self.cartoon_head(embeddings)
        cartoon = self.criterion(self.cartoon_margin(cartoon_cos, cartoon_labels), cartoon_labels)
        aux = self.criterion(self.aux_margin(self.aux_head(embeddings), aux_labels), aux_labels)
        loss = cartoon + self.aux_weight * aux
        return loss, {"cls": cartoon.detach(), "aux": aux.detach(), "acc": _accuracy(cartoon_cos, cartoon_labels)}


class IntraFaceFusion(nn.Module):
    def __init__(self, head: nn.Module, margin: nn.Module, criterion: nn.Module, num_cartoon_classes: int):
        super().__init__()
        self.head, self.margin, self.criterion = head, margin, criterion
        self.num_cartoon_classes = num_cartoon_classes

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor, domains: torch.Tensor):
        merged = torch.where(domains == CARTOON, labels, labels + self.num_cartoon_classes)
        cos = self.head(embeddings)
        loss = self.criterion(self.margin(cos, merged), merged)
        cartoon_labels = torch.where(domains == CARTOON, labels, torch.full_like(labels, -1))
        return loss, {"cls": loss.detach(), "acc": _accuracy(cos[:, : self.num_cartoon_classes], cartoon_labels)}
