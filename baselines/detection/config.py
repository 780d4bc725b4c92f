"""The configuration of one detection run: a frozen dataclass loaded from YAML, with `key=value` overrides.

Every field has a default, so a config file only names what it changes. An unknown key is an error that lists
the valid ones; a value of the wrong type is an error that names the key.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


class ConfigError(ValueError):
    """A config file or override that cannot be used; the message names the key and the source."""


@dataclass(frozen=True)
class DetectionConfig:
    # model
    backbone: str = "resnet18"
    pretrained: str | None = None  # path of a torchvision-named state dict for the backbone, optional
    neck_channels: int = 128
    head_channels: int = 64
    stride: int = 4  # output stride of the heatmap; fixed by the neck (C2 resolution)
    # targets and loss
    gaussian_alpha: float = 0.54  # sigma = alpha * box size / 6 (TTFNet's elliptical Gaussian)
    max_objects: int = 128
    min_box_size: float = 2.0  # boxes smaller than this (pixels, after augmentation) are dropped from training
    size_weight: float = 1.0
    offset_weight: float = 1.0
    # data and augmentation
    input_size: int = 512  # square training crop
    scale_min: float = 0.6  # random scale, relative to the native resolution (or to the fitted image, fit_crop)
    scale_max: float = 1.4
    fit_crop: bool = False  # scale relative to "longer side fits input_size"; then set test_max_size = input_size
    flip: bool = True
    face_crop: float = 0.7  # probability that a training crop is drawn around the centre of a random face
    val_fraction: float = 0.05  # training images held out for the per-epoch ap50 (seeded, by image name)
    max_val_images: int = 500
    # optimisation
    epochs: int = 24
    repeat: int = 1  # passes over the train list per epoch (for tiny sets)
    val_every: int = 1  # validate every this many epochs (and after the last)
    batch_size: int = 32  # per process
    lr: float = 2e-3  # not rescaled with the number of processes (the global batch is batch_size × processes)
    weight_decay: float = 1e-4
    warmup_steps: int = 300
    grad_clip: float = 10.0
    workers: int = 8
    seed: int = 0
    # hardware
    bf16: bool = True  # bf16 autocast, CUDA only
    channels_last: bool = True
    compile: bool = False  # torch.compile, CUDA only
    # inference
    test_max_size: int = 0  # 0 = original size; else the longer side is resized to this
    score_threshold: float = 0.01
    max_detections: int = 100  # per image: the submission cap
    flip_test: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_FIELDS = {f.name: f for f in fields(DetectionConfig)}


def _coerce(key: str, value: Any, source: str) -> Any:
    """Check a value against the field's declared type (the annotations are strings under `from __future__`)."""
    kind = _FIELDS[key].type
    allowed = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,), "str | None": (str, type(None))}
    types = allowed[kind]
    if kind == "float" and isinstance(value, str):  # YAML 1.1 reads "1e-3" (no dot) as a string
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) and bool not in types:
        raise ConfigError(f"{source}: '{key}' must be {kind}, not a boolean")
    if not isinstance(value, types):
        raise ConfigError(f"{source}: '{key}' must be {kind}, not {type(value).__name__} {value!r}")
    return float(value) if kind == "float" else value


def _parse_override(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise ConfigError(f"override '{text}' must read key=value")
    key, raw = text.split("=", 1)
    return key.strip(), yaml.safe_load(raw) if raw.strip() else None


def make_config(values: dict[str, Any], source: str = "config") -> DetectionConfig:
    """A DetectionConfig from a mapping; unknown keys and wrong types raise ConfigError."""
    unknown = sorted(set(values) - set(_FIELDS))
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {unknown}; valid keys: {sorted(_FIELDS)}")
    cfg = DetectionConfig(**{key: _coerce(key, value, source) for key, value in values.items()})
    if cfg.input_size % 32:
        raise ConfigError(f"{source}: 'input_size' must be a multiple of 32, not {cfg.input_size}")
    if not 0 < cfg.scale_min <= cfg.scale_max:
        raise ConfigError(f"{source}: need 0 < scale_min <= scale_max, got {cfg.scale_min}, {cfg.scale_max}")
    if cfg.stride != 4:
        raise ConfigError(f"{source}: 'stride' must be 4 (the neck's output resolution), not {cfg.stride}")
    if cfg.fit_crop and not cfg.test_max_size:
        raise ConfigError(
            f"{source}: 'fit_crop' trains at the scale of images fitted into input_size; set "
            f"'test_max_size' (e.g. {cfg.input_size}) so that prediction sees the same scale"
        )
    if not 0 <= cfg.face_crop <= 1:
        raise ConfigError(f"{source}: 'face_crop' is a probability, not {cfg.face_crop}")
    if not 0 <= cfg.val_fraction < 1:
        raise ConfigError(f"{source}: 'val_fraction' must be in [0, 1), not {cfg.val_fraction}")
    return cfg


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> DetectionConfig:
    """Load a YAML config (a name under configs/ or a path), then apply `key=value` overrides in order."""
    values: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        candidate = Path(path)
        if not candidate.exists() and (CONFIG_DIR / f"{path}.yaml").exists():
            candidate = CONFIG_DIR / f"{path}.yaml"
        if not candidate.exists():
            known = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
            raise ConfigError(f"config '{path}' not found; give a path or one of {known}")
        source = str(candidate)
        try:
            loaded = yaml.safe_load(candidate.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as error:
            raise ConfigError(f"{source}: not valid YAML ({error})") from error
        if not isinstance(loaded, dict):
            raise ConfigError(f"{source}: must be a mapping of keys to values")
        values.update(loaded)
    for text in overrides:
        key, value = _parse_override(text)
        values[key] = value
    return make_config(values, source if not overrides else f"{source} + overrides")
