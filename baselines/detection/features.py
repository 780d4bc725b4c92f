"""Backbones as multi-scale feature extractors for the detector: four maps at strides 4, 8, 16 and 32.

`baselines.backbones` (the shared registry) gives ResNets and DenseNets whose `feature_maps(x)` returns their
four stages; this module checks their strides once and wraps them. `tiny_det` is a small CNN of this package
with the same strides, for the CPU tests and smoke runs (the registry's `tiny_cnn` keeps full resolution in its
first stage, which a stride-4 detector cannot use).
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from baselines import backbones

log = logging.getLogger(__name__)

STRIDES = (4, 8, 16, 32)


class TinyDetBackbone(nn.Module):
    """A stride-4 stem and three stride-2 stages of conv-BN-ReLU: about 0.1 M parameters at width 16."""

    def __init__(self, width: int = 16):
        super().__init__()

        def block(cin: int, cout: int, stride: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True))

        self.stage_channels = (width, width * 2, width * 4, width * 8)
        self.stages = nn.ModuleList(
            [
                nn.Sequential(block(3, width, 2), block(width, width, 2), block(width, width, 1)),
                nn.Sequential(block(width, width * 2, 2), block(width * 2, width * 2, 1)),
                nn.Sequential(block(width * 2, width * 4, 2), block(width * 4, width * 4, 1)),
                nn.Sequential(block(width * 4, width * 8, 2), block(width * 8, width * 8, 1)),
            ]
        )

    def feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        maps = []
        for stage in self.stages:
            x = stage(x)
            maps.append(x)
        return maps


class MultiScale(nn.Module):
    """images (B, 3, H, W) → [C2, C3, C4, C5] at strides 4, 8, 16, 32; `channels` lists their widths."""

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.body = backbone
        self.channels = list(backbone.stage_channels)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.body.feature_maps(x)


def _check_strides(name: str, backbone: nn.Module) -> None:
    size = 64
    was_training = backbone.training
    backbone.eval()
    with torch.no_grad():
        maps = backbone.feature_maps(torch.zeros(1, 3, size, size))
    backbone.train(was_training)
    strides = tuple(size // m.shape[-1] for m in maps)
    if strides != STRIDES:
        raise ValueError(
            f"backbone '{name}' gives feature maps at strides {strides}; the detector needs {STRIDES} "
            f"(use 'tiny_det' for a small CPU model)"
        )


def build_backbone(name: str, pretrained: str | None = None) -> MultiScale:
    """A multi-scale backbone by name: 'tiny_det' or any name of `baselines.backbones.BACKBONES`.

    pretrained: optional path of a torchvision checkpoint (names as torchvision writes them).
    An unknown name raises KeyError listing the valid ones.
    """
    if name == "tiny_det":
        body: nn.Module = TinyDetBackbone()
    else:
        try:
            body = backbones.build_backbone(name)
        except KeyError as error:
            raise KeyError(f"unknown backbone '{name}'; valid: {['tiny_det', *sorted(backbones.BACKBONES)]}") from error
    _check_strides(name, body)
    if pretrained:
        skipped = backbones.load_torchvision_weights(body, pretrained)
        log.info("backbone %s: loaded %s (%d tensors skipped)", name, pretrained, len(skipped))
    return MultiScale(body)
