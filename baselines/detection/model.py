"""The anchor-free one-stage detector: a backbone's C2–C5 maps → a top-down FPN neck at stride 4 → CenterNet heads.

The backbone is any module that `features.multi_scale` can turn into four feature maps at strides 4, 8, 16 and 32:
the torchvision-named ResNets and DenseNets of `baselines` (see features.py), or the tiny CNN of this package that
the CPU tests use.
"""

from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F
from torch import nn

from baselines.detection.features import MultiScale, build_backbone

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HEATMAP_PRIOR = 0.1  # initial face probability of every cell (the heatmap bias), as CenterNet does


def _conv_bn_relu(cin: int, cout: int, kernel: int = 3) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class TopDownNeck(nn.Module):
    """FPN top-down path: laterals on C2..C5, upsample and add, one 3×3 conv on the stride-4 result."""

    def __init__(self, in_channels: list[int], channels: int):
        super().__init__()
        self.laterals = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in in_channels)
        self.smooth = _conv_bn_relu(channels, channels)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        x = self.laterals[-1](feats[-1])
        for lateral, feat in zip(self.laterals[-2::-1], feats[-2::-1], strict=True):
            x = lateral(feat) + F.interpolate(x, size=feat.shape[-2:], mode="nearest")
        return self.smooth(x)


def _head(cin: int, mid: int, cout: int, bias: float = 0.0) -> nn.Sequential:
    head = nn.Sequential(nn.Conv2d(cin, mid, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(mid, cout, 1))
    nn.init.constant_(head[-1].bias, bias)
    return head


class CenterNet(nn.Module):
    """images float (B, 3, H, W) in [0, 1], H and W multiples of 32 → dict of maps at (H/4, W/4):
    `heatmap` logits (B, 1, h, w), `size` log(box size / 4) (B, 2, h, w), `offset` (B, 2, h, w)."""

    stride = 4

    def __init__(self, backbone: MultiScale, neck_channels: int = 128, head_channels: int = 64):
        super().__init__()
        self.backbone = backbone
        self.neck = TopDownNeck(backbone.channels, neck_channels)
        prior = -math.log((1 - HEATMAP_PRIOR) / HEATMAP_PRIOR)
        self.heatmap = _head(neck_channels, head_channels, 1, bias=prior)
        self.size = _head(neck_channels, head_channels, 2)
        self.offset = _head(neck_channels, head_channels, 2, bias=0.5)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.neck(self.backbone((images - self.mean) / self.std))
        return {"heatmap": self.heatmap(x), "size": self.size(x), "offset": self.offset(x)}


def build_detector(cfg) -> CenterNet:
    """The detector of a DetectionConfig (backbone, neck_channels, head_channels, pretrained)."""
    backbone = build_backbone(cfg.backbone, pretrained=cfg.pretrained)
    return CenterNet(backbone, cfg.neck_channels, cfg.head_channels)
