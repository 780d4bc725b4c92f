"""The embedder (backbone + embedding neck) and the classification heads, kept apart from the losses.

A head maps embeddings float (B, D) to per-class scores float32 (B, C):
- `NormLinear`: cosine similarities to the class centres (both L2-normalised), in [-1, 1]; margin losses act on them;
- `Linear`: a plain fully connected layer with bias (raw logits), the papers' "SoftMax" baseline.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from baselines.backbones import build_backbone
from baselines.registry import lookup


class Embedder(nn.Module):
    """Backbone -> global average pool -> dropout -> linear -> BatchNorm1d: images (B, 3, H, W) -> (B, D).

    The neck is arcface_torch's "E" output layer with global pooling in place of the flatten, so that one model
    serves any input size. Prediction uses these embeddings, L2-normalised.
    """

    def __init__(self, backbone: str, embedding_dim: int = 512, dropout: float = 0.0, **backbone_kwargs):
        super().__init__()
        self.backbone = build_backbone(backbone, **backbone_kwargs)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(self.backbone.num_features, embedding_dim)
        self.bn = nn.BatchNorm1d(embedding_dim)
        self.embedding_dim = embedding_dim

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        pooled = torch.flatten(F.adaptive_avg_pool2d(self.backbone.forward_features(images), 1), 1)
        return self.bn(self.fc(self.dropout(pooled)))


class NormLinear(nn.Module):
    """cos(theta) between each embedding and each class centre: (B, D) -> float32 (B, C), clamped to [-1, 1]."""

    def __init__(self, embedding_dim: int, num_classes: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_classes, embedding_dim).normal_(0, 0.01))

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        # float32 whatever the autocast dtype: margins need the precision near cos = 1
        with torch.autocast(device_type=embeddings.device.type, enabled=False):
            cos = F.linear(F.normalize(embeddings.float()), F.normalize(self.weight.float()))
        return cos.clamp(-1.0, 1.0)


class Linear(nn.Module):
    """A plain classifier with bias: (B, D) -> float32 (B, C) raw logits."""

    def __init__(self, embedding_dim: int, num_classes: int):
        super().__init__()
        self.fc = nn.Linear(embedding_dim, num_classes)

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.fc(embeddings).float()


HEADS: dict[str, Callable[[int, int], nn.Module]] = {"norm_linear": NormLinear, "linear": Linear}


def build_head(name: str, embedding_dim: int, num_classes: int) -> nn.Module:
    """`HEADS[name](embedding_dim, num_classes)`; an unknown name raises KeyError listing the valid ones."""
    return lookup(HEADS, name, "head")(embedding_dim, num_classes)
