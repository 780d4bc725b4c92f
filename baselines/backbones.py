"""Backbones in plain PyTorch, with torchvision's state-dict names so that a torchvision checkpoint loads as is.

`BACKBONES` maps a name to a constructor `(**kwargs) -> Backbone`. Every backbone has:

- `forward_features(x)`: images float (B, 3, H, W) -> the last feature map (B, C, H/32, W/32) (the tiny CNN: H/8);
- `feature_maps(x)`: the outputs of its four stages, strides 4, 8, 16, 32 (tiny: 1, 2, 4, 8) - for detection necks;
- `num_features`: C of the last map; `stage_channels`: the channels of the four stages;
- `forward(x)`: torchvision's classifier output (B, num_classes) when num_classes > 0, else the pooled (B, C).

The recognition embedder (`baselines.embedder.Embedder`) and the detection kit both build on `forward_features` /
`feature_maps`. `load_torchvision_weights(model, path_or_state_dict)` loads a torchvision checkpoint (the classifier
is dropped when its shape differs), including DenseNet checkpoints with the legacy `norm.1` key names.
"""

from __future__ import annotations

import logging
import re
from collections import OrderedDict
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from baselines.registry import lookup

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------------- ResNet


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """torchvision's ResNet v1.5 bottleneck: the stride sits on the 3x3 convolution."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """torchvision.models.ResNet, names and initialisation included (zero_init_residual off, as its default)."""

    def __init__(self, block: type[BasicBlock | Bottleneck], layers: list[int], num_classes: int = 0):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.stage_channels = tuple(c * block.expansion for c in (64, 128, 256, 512))
        self.num_features = self.stage_channels[-1]
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes > 0 else None
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def _make_layer(self, block, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        maps = []
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = layer(x)
            maps.append(x)
        return maps

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.feature_maps(x)[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.flatten(self.avgpool(self.forward_features(x)), 1)
        return pooled if self.fc is None else self.fc(pooled)


def resnet18(num_classes: int = 0) -> ResNet:
    return ResNet(BasicBlock, [2, 2, 2, 2], num_classes)


def resnet34(num_classes: int = 0) -> ResNet:
    return ResNet(BasicBlock, [3, 4, 6, 3], num_classes)


def resnet50(num_classes: int = 0) -> ResNet:
    return ResNet(Bottleneck, [3, 4, 6, 3], num_classes)


def resnet101(num_classes: int = 0) -> ResNet:
    return ResNet(Bottleneck, [3, 4, 23, 3], num_classes)


# --------------------------------------------------------------------------------------------------- DenseNet


class _DenseLayer(nn.Module):
    def __init__(self, num_input_features: int, growth_rate: int, bn_size: int):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(num_input_features)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(num_input_features, bn_size * growth_rate, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth_rate)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(bn_size * growth_rate, growth_rate, 3, 1, 1, bias=False)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = torch.cat(features, 1)
        return self.conv2(self.relu2(self.norm2(self.conv1(self.relu1(self.norm1(x))))))


class _DenseBlock(nn.ModuleDict):
    def __init__(self, num_layers: int, num_input_features: int, bn_size: int, growth_rate: int):
        super().__init__()
        for i in range(num_layers):
            self.add_module(
                f"denselayer{i + 1}", _DenseLayer(num_input_features + i * growth_rate, growth_rate, bn_size)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.values():
            features.append(layer(features))
        return torch.cat(features, 1)


class _Transition(nn.Sequential):
    def __init__(self, num_input_features: int, num_output_features: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(num_input_features)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(num_input_features, num_output_features, 1, bias=False)
        self.pool = nn.AvgPool2d(2, 2)


class DenseNet(nn.Module):
    """torchvision.models.DenseNet (BC, compression 0.5), names and initialisation included.

    `feature_maps` returns the outputs of the four dense blocks (strides 4, 8, 16, 32); the last one after
    `features.norm5` and a ReLU, as torchvision's forward has it.
    """

    def __init__(
        self,
        growth_rate: int,
        block_config: tuple[int, ...],
        num_init_features: int,
        bn_size: int = 4,
        num_classes: int = 0,
    ):
        super().__init__()
        self.features = nn.Sequential(
            OrderedDict(
                conv0=nn.Conv2d(3, num_init_features, 7, 2, 3, bias=False),
                norm0=nn.BatchNorm2d(num_init_features),
                relu0=nn.ReLU(inplace=True),
                pool0=nn.MaxPool2d(3, 2, 1),
            )
        )
        channels = num_init_features
        stage_channels = []
        for i, num_layers in enumerate(block_config):
            self.features.add_module(f"denseblock{i + 1}", _DenseBlock(num_layers, channels, bn_size, growth_rate))
            channels += num_layers * growth_rate
            stage_channels.append(channels)
            if i != len(block_config) - 1:
                self.features.add_module(f"transition{i + 1}", _Transition(channels, channels // 2))
                channels //= 2
        self.features.add_module("norm5", nn.BatchNorm2d(channels))
        self.stage_channels = tuple(stage_channels)
        self.num_features = channels
        self.classifier = nn.Linear(channels, num_classes) if num_classes > 0 else None
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.Linear):
                nn.init.constant_(m.bias, 0)

    def feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        maps = []
        for name, module in self.features.named_children():
            x = module(x)
            if name.startswith("denseblock") and name != f"denseblock{len(self.stage_channels)}":
                maps.append(x)
        maps.append(F.relu(x))  # after norm5, as torchvision's forward
        return maps

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.flatten(F.adaptive_avg_pool2d(self.forward_features(x), 1), 1)
        return pooled if self.classifier is None else self.classifier(pooled)


def densenet121(num_classes: int = 0) -> DenseNet:
    return DenseNet(32, (6, 12, 24, 16), 64, num_classes=num_classes)


def densenet169(num_classes: int = 0) -> DenseNet:
    return DenseNet(32, (6, 12, 32, 32), 64, num_classes=num_classes)


# --------------------------------------------------------------------------------------------------- tiny CNN


class TinyCNN(nn.Module):
    """Four conv-BN-ReLU stages (strides 1, 2, 4, 8): a few thousand parameters, for CPU tests of the pipeline."""

    def __init__(self, width: int = 8, num_classes: int = 0):
        super().__init__()
        channels = (width, width * 2, width * 4, width * 8)
        stages, previous = [], 3
        for i, c in enumerate(channels):
            stride = 1 if i == 0 else 2
            stages.append(
                nn.Sequential(
                    nn.Conv2d(previous, c, 3, stride, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True)
                )
            )
            previous = c
        self.stages = nn.ModuleList(stages)
        self.stage_channels = channels
        self.num_features = channels[-1]
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes > 0 else None

    def feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        maps = []
        for stage in self.stages:
            x = stage(x)
            maps.append(x)
        return maps

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.feature_maps(x)[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.flatten(F.adaptive_avg_pool2d(self.forward_features(x), 1), 1)
        return pooled if self.fc is None else self.fc(pooled)


def tiny_cnn(num_classes: int = 0, width: int = 8) -> TinyCNN:
    return TinyCNN(width, num_classes)


BACKBONES: dict[str, Callable[..., nn.Module]] = {
    "tiny_cnn": tiny_cnn,
    "resnet18": resnet18,
    "resnet34": resnet34,
    "resnet50": resnet50,
    "resnet101": resnet101,
    "densenet121": densenet121,
    "densenet169": densenet169,
}


def build_backbone(name: str, **kwargs) -> nn.Module:
    """`BACKBONES[name](**kwargs)`; an unknown name raises KeyError listing the valid ones."""
    return lookup(BACKBONES, name, "backbone")(**kwargs)


# --------------------------------------------------------------------------------------------------- weights

_LEGACY_DENSENET = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
)


def _rename_legacy_densenet(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Old torchvision DenseNet checkpoints name `denselayer1.norm.1.weight`; today's name `denselayer1.norm1.weight`
    (torchvision's own loader applies the same regular expression)."""
    renamed = {}
    for key, value in state_dict.items():
        match = _LEGACY_DENSENET.match(key)
        renamed[match.group(1) + match.group(2) if match else key] = value
    return renamed


def load_torchvision_weights(model: nn.Module, source: str | dict) -> list[str]:
    """Load a torchvision checkpoint (a path or a state dict) into a backbone of this module.

    Keys whose tensor shape differs from the model's (the 1000-way classifier `fc`/`classifier` against a backbone
    built with another num_classes) and keys the model lacks are skipped and returned; every backbone tensor must be
    present (BatchNorm's num_batches_tracked excepted), else ValueError names the missing keys.
    """
    state = torch.load(source, map_location="cpu", weights_only=True) if isinstance(source, str) else dict(source)
    if "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    state = _rename_legacy_densenet({k.removeprefix("module."): v for k, v in state.items()})
    own = model.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    skipped = sorted(set(state) - set(usable))
    optional = ("fc.", "classifier.")  # the classifier; and BatchNorm step counters, absent from old checkpoints
    missing = sorted(
        k for k in own if k not in usable and not k.startswith(optional) and not k.endswith("num_batches_tracked")
    )
    if missing:
        raise ValueError(f"the checkpoint lacks {len(missing)} tensors of the model, e.g. {missing[:5]}")
    model.load_state_dict(usable, strict=False)
    log.info("loaded %d tensors, skipped %d: %s", len(usable), len(skipped), skipped[:10])
    return skipped
