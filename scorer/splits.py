"""Public and private splits (FORMATS.md §3): a deterministic subset of images or identities.

A split is a boolean mask, the subset argument of the same scoring function, never a second copy of the labels.
Membership depends only on the key (an image name or an identity), the challenge's seed and the public fraction,
so it is stable when labels are re-uploaded, rows are re-ordered or other keys are added.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np

SPLITS = ("public", "private")


def public_mask(keys: Iterable[str | int], seed: str, public_fraction: float) -> np.ndarray:
    """bool (K,): True where the key falls in the public split.

    A key is public iff the first 8 bytes of sha256(seed + "\\0" + key), read as an unsigned integer, fall below
    public_fraction × 2**64. public_fraction 1.0 makes everything public, 0.0 everything private.
    """
    if not 0.0 <= public_fraction <= 1.0:
        raise ValueError(f"public_fraction must be in [0, 1], not {public_fraction}")
    threshold = int(public_fraction * 2**64)
    prefix = seed.encode() + b"\0"
    return np.fromiter(
        (int.from_bytes(hashlib.sha256(prefix + str(key).encode()).digest()[:8], "big") < threshold for key in keys),
        dtype=bool,
    )


def split_mask(keys: Iterable[str | int], split: str, seed: str, public_fraction: float) -> np.ndarray | None:
    """The mask of one split by name: 'public', 'private', or 'all' (None: no subset)."""
    if split == "all":
        return None
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join((*SPLITS, 'all'))}")
    mask = public_mask(keys, seed, public_fraction)
    return mask if split == "public" else ~mask
