"""Registries are plain dicts; a failed lookup lists the valid names."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

T = TypeVar("T")


def lookup(registry: Mapping[str, T], name: str, kind: str) -> T:
    """`registry[name]`, or KeyError "unknown <kind> 'name'; valid: a, b, c"."""
    try:
        return registry[name]
    except (KeyError, TypeError):
        raise KeyError(f"unknown {kind} {name!r}; valid: {', '.join(sorted(registry))}") from None
