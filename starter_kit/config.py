"""Layered YAML configs: defaults <- base file(s) <- experiment file(s) <- command-line overrides.

A config file may name the files it builds on with `_base_: base.yaml` (or a list), paths relative to itself;
mappings merge key by key, anything else replaces. Overrides are `dotted.key=value` strings whose value is read
as YAML (`optim.lr=0.01`, `model.backbone=resnet50`, `optim.milestones=[0.5,0.75]`, `model.pretrained=null`).

Every key must exist in the defaults (a typo is an error that lists the valid keys), except inside the sections
named `open`, whose contents are free-form arguments (a loss's parameters). A value whose type differs from its
default's is an error too (int is accepted for float; None defaults accept anything).

The detection kit uses the same loader with its own defaults: `load_config(path, overrides, defaults=..., open=...)`.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import yaml


class ConfigError(ValueError):
    """A config file or override is wrong; the message names the file or the key."""


def _read_yaml(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file must be a mapping at the top, not {type(data).__name__}")
    return data


def merge(base: Mapping, update: Mapping) -> dict:
    """Deep merge: mappings merge key by key, any other value in update replaces the one in base."""
    out = copy.deepcopy(dict(base))
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_file(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict:
    """One config file with its `_base_` chain resolved (not yet checked against defaults)."""
    path = Path(path).resolve()
    if path in _seen:
        raise ConfigError(f"{path}: '_base_' files include each other: {' -> '.join(p.name for p in (*_seen, path))}")
    data = _read_yaml(path)
    bases = data.pop("_base_", [])
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise ConfigError(f"{path}: '_base_' must be a file name or a list of them")
    merged: dict = {}
    for base in bases:
        merged = merge(merged, load_file(path.parent / base, (*_seen, path)))
    return merge(merged, data)


def parse_override(text: str) -> dict:
    """`a.b.c=value` -> {"a": {"b": {"c": value}}}, value read as YAML."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {text!r} must look like section.key=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: the value is not valid YAML ({exc})") from None
    for part in reversed(key.split(".")):
        value = {part: value}
    return value


def _check(config: Mapping, defaults: Mapping, open_sections: set[str], where: str = "") -> None:
    for key, value in config.items():
        dotted = f"{where}{key}"
        if dotted in open_sections:
            if not isinstance(value, Mapping):
                raise ConfigError(f"'{dotted}' must be a mapping, not {value!r}")
            continue
        if key not in defaults:
            valid = ", ".join(f"{where}{k}" for k in sorted(defaults))
            raise ConfigError(f"unknown config key '{dotted}'; valid keys here: {valid}")
        default = defaults[key]
        if isinstance(default, Mapping):
            if not isinstance(value, Mapping):
                raise ConfigError(f"'{dotted}' is a section; give its keys ({', '.join(sorted(default))})")
            _check(value, default, open_sections, f"{dotted}.")
        elif default is not None and value is not None and not _same_kind(default, value):
            raise ConfigError(
                f"'{dotted}' must be a {type(default).__name__} like its default {default!r}, not {value!r}"
            )


def _same_kind(default, value) -> bool:
    if default == "auto":  # "auto" or an explicit setting (runtime.bf16: a bool; runtime.device: a device name)
        return isinstance(value, str | bool)
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, int | float)
    if isinstance(default, list | tuple):
        return isinstance(value, list | tuple)
    return isinstance(value, type(default))


def load_config(
    paths: str | Path | Sequence[str | Path] | None,
    overrides: Iterable[str] = (),
    *,
    defaults: Mapping,
    open: Sequence[str] = (),
) -> dict:  # noqa: A002 - reads well at the call site
    """defaults <- each file in turn (with its `_base_` chain) <- overrides, checked against defaults.
    Returns a new dict."""
    if paths is None:
        paths = []
    elif isinstance(paths, str | Path):
        paths = [paths]
    config = merge(defaults, {})
    layers = [load_file(path) for path in paths]
    layers += [parse_override(text) for text in overrides]
    for layer in layers:
        _check(layer, defaults, set(open))
        config = merge(config, layer)
    return config


def dump(config: Mapping, path: str | Path) -> None:
    """Write the resolved config as YAML (keys in their given order)."""
    Path(path).write_text(yaml.safe_dump(dict(config), sort_keys=False), encoding="utf-8")
