"""The CenterNet loss: penalty-reduced focal loss on the heatmap, L1 on size and offset at the object centres."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class LossTerms:
    """Scalar tensors; `total` = heatmap + size_weight * size + offset_weight * offset."""

    total: torch.Tensor
    heatmap: torch.Tensor
    size: torch.Tensor
    offset: torch.Tensor

    def as_floats(self) -> dict[str, float]:
        return {name: float(getattr(self, name).detach()) for name in ("total", "heatmap", "size", "offset")}


def focal_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float = 2.0, beta: float = 4.0) -> torch.Tensor:
    """CenterNet's penalty-reduced pixelwise focal loss, normalised by the number of centres.

    logits, target: float (B, 1, h, w); a centre is a cell where the target is exactly 1.
    Computed in float32 with log-sigmoids, so it stays finite for any logit.
    """
    logits = logits.float()
    positive = target.eq(1).float()
    prob = logits.sigmoid()
    log_p = F.logsigmoid(logits)
    log_not_p = F.logsigmoid(-logits)
    pos_loss = -(log_p * (1 - prob) ** alpha * positive).sum()
    neg_loss = -(log_not_p * prob**alpha * (1 - target) ** beta * (1 - positive)).sum()
    return (pos_loss + neg_loss) / positive.sum().clamp(min=1)


def gather_at(maps: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """maps float (B, C, h, w), index int64 (B, K) flat cells → float (B, K, C)."""
    batch, channels = maps.shape[:2]
    flat = maps.reshape(batch, channels, -1)
    return flat.gather(2, index[:, None, :].expand(-1, channels, -1)).transpose(1, 2)


def masked_l1(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """pred, target float (B, K, C); mask float (B, K). Mean absolute error over the real objects."""
    weight = mask[:, :, None].expand_as(pred)
    return (F.l1_loss(pred.float(), target.float(), reduction="none") * weight).sum() / weight.sum().clamp(min=1)


def centernet_loss(
    outputs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor], *, size_weight=1.0, offset_weight=1.0
) -> LossTerms:
    """outputs: the detector's `heatmap` logits (B, 1, h, w), `size` (B, 2, h, w), `offset` (B, 2, h, w);
    batch: the encoded targets (see targets.Targets), stacked over the batch."""
    heat = focal_loss(outputs["heatmap"], batch["heatmap"])
    size = masked_l1(gather_at(outputs["size"], batch["index"]), batch["size"], batch["mask"])
    offset = masked_l1(gather_at(outputs["offset"], batch["index"]), batch["offset"], batch["mask"])
    return LossTerms(heat + size_weight * size + offset_weight * offset, heat, size, offset)
