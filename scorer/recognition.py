"""Recognition metrics (FORMATS.md §2): rank-1, CMC and the verification scores of a feature submission.

Identification (the 2020 challenge's MegaFace-style protocol): for each ordered same-identity pair (a, b), a is the
probe and the gallery is the distractor set plus b. The pair is a rank-k hit iff cos(a, b) is strictly above the
k-th largest cos(a, d) over distractors d (rank-1: above their maximum; fewer than k distractors: -inf). A tie is a
miss (the official argsort walk was arbitrary there), so constant features score 0. Other labelled images are never
competitors. This closed form needs one probes × distractors search and one cosine per pair, never the N × N matrix.

Every cosine compared is the canonical float64 value of `scorer.search` (fixed summation order, reproducible on
any machine); the fast numpy (float64 GEMM) or faiss (float32) search only decides the comparisons its rounding
error cannot flip and hands the rest to the canonical computation, so both backends give identical results.

Splits (FORMATS.md §3): `identities` lists the identity labels (>= 0) of the subset; None means all. Distractors
belong to every split. An identification pair counts iff its identity is in the subset; a verification pair counts
iff each of its labelled images (label >= 0) has its identity in the subset, so a pair of a labelled image and a
distractor follows the labelled image, and a pair of two distractors counts in every split.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from scorer import search
from scorer.formats import RecognitionLabels, VerificationPairs
from scorer.verification import verification_scores

log = logging.getLogger(__name__)

DEFAULT_KS = (1, 5, 10)
_MAX_GRAM_SIZE = 256  # identities with more images than this get their mates' cosines row by row
_GRAM_GROUPS = 2048  # identities per batched Gram product

__all__ = [
    "DEFAULT_KS",
    "RecognitionScores",
    "cmc",
    "evaluate_recognition",
    "rank1",
    "verification_scores",
]


@dataclass(frozen=True)
class RecognitionScores:
    """The scores of one recognition submission on one split; fractions in [0, 1]."""

    rank1: float
    cmc: dict[str, float]  # {"1": ..., "5": ..., "10": ...}; cmc["1"] == rank1
    verification_accuracy: float | None  # None when no verification pairs were given (or none counts)
    verification_auc: float | None  # None without both same and different pairs
    tar_at_far_1e_3: float | None  # JSON key "tar_at_far_1e-3"
    num_pairs: int
    num_distractors: int
    dim: int

    def to_dict(self) -> dict:
        """JSON-ready, with exactly FORMATS.md's keys."""
        return {
            "rank1": self.rank1,
            "cmc": dict(self.cmc),
            "verification_accuracy": self.verification_accuracy,
            "verification_auc": self.verification_auc,
            "tar_at_far_1e-3": self.tar_at_far_1e_3,
            "num_pairs": self.num_pairs,
            "num_distractors": self.num_distractors,
            "dim": self.dim,
        }


# --------------------------------------------------------------------------------------------------- public API


def rank1(labels: RecognitionLabels, features: np.ndarray, identities=None, *, backend: str = "auto") -> float:
    """The fraction of pairs whose mate beats every distractor strictly (FORMATS.md §2). features (N, d)."""
    return cmc(labels, features, ks=(1,), identities=identities, backend=backend)["1"]


def cmc(
    labels: RecognitionLabels,
    features: np.ndarray,
    ks: Sequence[int] = DEFAULT_KS,
    identities=None,
    *,
    backend: str = "auto",
    block_size: int = search.DEFAULT_BLOCK_SIZE,
) -> dict[str, float]:
    """{str(k): fraction of pairs whose mate is strictly above the k-th largest distractor similarity}."""
    ks = _check_ks(ks)
    features = _check_features(labels, features)
    pairs = _subset_pairs(labels, identities)
    hits = _count_hits(features, labels, pairs, ks, backend=backend, block_size=block_size)
    return {str(k): (float(h) / len(pairs) if len(pairs) else 0.0) for k, h in zip(ks, hits, strict=True)}


def evaluate_recognition(
    labels: RecognitionLabels,
    features: np.ndarray,
    verification: VerificationPairs | None = None,
    identities=None,
    *,
    backend: str = "auto",
    block_size: int = search.DEFAULT_BLOCK_SIZE,
) -> RecognitionScores:
    """All recognition scores of features float32/float64 (N, d), row i = image i of labels, on the subset of
    identities (None: all). An empty subset scores rank1 0.0 with num_pairs 0."""
    features = _check_features(labels, features)
    pairs = _subset_pairs(labels, identities)
    hits = _count_hits(features, labels, pairs, DEFAULT_KS, backend=backend, block_size=block_size)
    fractions = {str(k): (float(h) / len(pairs) if len(pairs) else 0.0) for k, h in zip(DEFAULT_KS, hits, strict=True)}
    accuracy = auc = tar = None
    if verification is not None:
        _check_verification(labels, verification)
        mask = _verification_mask(labels, verification, identities)
        accuracy, auc, tar = verification_scores(features, verification, mask)
    return RecognitionScores(
        rank1=fractions["1"],
        cmc=fractions,
        verification_accuracy=accuracy,
        verification_auc=auc,
        tar_at_far_1e_3=tar,
        num_pairs=len(pairs),
        num_distractors=int(labels.distractor_mask.sum()),
        dim=int(features.shape[1]),
    )


# --------------------------------------------------------------------------------------------------- the core


def _count_hits(
    features: np.ndarray,
    labels: RecognitionLabels,
    pairs: np.ndarray,
    ks: Sequence[int],
    *,
    backend: str,
    block_size: int,
) -> np.ndarray:
    """int64 (len(ks),): how many pairs (P, 2) are rank-k hits, decided on canonical cosines (module docstring)."""
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, not {block_size}")
    hits = np.zeros(len(ks), dtype=np.int64)
    if len(pairs) == 0:
        search.resolve_backend(backend, 0)  # still reject an unknown backend
        return hits
    dim = features.shape[1]
    distractors = search.distinct_distractors(features, np.flatnonzero(labels.labels < 0))
    probes, probe_of_pair = np.unique(pairs[:, 0], return_inverse=True)
    chosen = search.resolve_backend(backend, len(probes) * len(distractors.rows))
    log.debug(
        "rank-k search: %d probes x %d distinct distractors, backend %s", len(probes), len(distractors.rows), chosen
    )

    rows, inverse = np.unique(pairs, return_inverse=True)
    # the labelled rows' unit vectors in the search's precision: float32 for faiss (half the memory and traffic;
    # the float64 values of the few undecided pairs are made below), float64 for numpy
    precision = np.float64 if chosen == "numpy" else np.float32
    labelled_unit = search.unit_rows_of(features, rows, precision)
    inverse = inverse.reshape(pairs.shape)
    probe_slot = np.searchsorted(rows, probes)
    probe_unit = labelled_unit if len(probe_slot) == len(rows) else labelled_unit[probe_slot]  # no copy if all
    kth, kth_bound = search.approximate_kth(
        probe_unit, features, distractors, ks, backend=chosen, block_size=block_size
    )
    del probe_unit
    mate = _mate_cosines(labelled_unit, labels.labels[rows], inverse[:, 0], inverse[:, 1])
    del labelled_unit
    exact64 = search.error_bound(dim, search.UNIT_ROUNDOFF[np.dtype(np.float64)])
    kth_error = np.full(len(probes), kth_bound + exact64)  # |approximate k-th − canonical k-th|, per probe
    # |Gram-block cosine − canonical cosine|, per pair
    mate_error = np.full(len(pairs), search.error_bound(dim, search.UNIT_ROUNDOFF[np.dtype(precision)]) + exact64)

    hit = np.empty((len(pairs), len(ks)), dtype=bool)
    unsure = _decide(hit, np.arange(len(pairs)), mate, kth, kth_error, probe_of_pair, mate_error)
    if len(unsure) and chosen != "numpy":
        # a float32 band: redo these probes' search and these mates in float64 first (a band ~1e9 times narrower)
        redo = np.unique(probe_of_pair[unsure])
        kth[redo], bound64 = search.approximate_kth(
            search.unit_rows(features[probes[redo]]),
            features,
            distractors,
            ks,
            backend="numpy",
            block_size=block_size,
        )
        kth_error[redo] = bound64 + exact64
        ends = search.unit_rows(features[pairs[unsure].ravel()]).reshape(len(unsure), 2, dim)
        mate[unsure] = np.einsum("ij,ij->i", ends[:, 0], ends[:, 1])
        mate_error[unsure] = 2 * exact64
        log.debug("%d of %d pairs re-searched in float64 (%d probes)", len(unsure), len(pairs), len(redo))
        unsure = _decide(hit, unsure, mate, kth, kth_error, probe_of_pair, mate_error)
    if len(unsure):
        unsure_probes, slot = np.unique(probe_of_pair[unsure], return_inverse=True)
        deepest = int(np.argmax(ks))  # the max(ks)-th value is the lowest: its bound covers every k
        lower = kth[unsure_probes, deepest] - kth_error[unsure_probes]
        exact_kth = search.exact_kth(features, probes[unsure_probes], distractors, lower, ks)
        exact_mate = search.canonical_cosine(features, pairs[unsure, 0], pairs[unsure, 1])
        hit[unsure] = exact_mate[:, None] > exact_kth[slot]  # canonical decisions agree with the sure ones
        log.debug("%d of %d pairs recomputed canonically (%d probes)", len(unsure), len(pairs), len(unsure_probes))
    hits[:] = hit.sum(axis=0)
    return hits


def _decide(hit, chosen, mate, kth, kth_error, probe_of_pair, mate_error) -> np.ndarray:
    """Fill hit[chosen] (bool (P, len(ks))) from approximate values; return the pairs, among chosen, whose margin
    lies within the error band for some k (their canonical comparison could go either way). mate, mate_error
    float64 (P,) per pair; kth (probes, len(ks)) and kth_error (probes,) per probe."""
    probe = probe_of_pair[chosen]
    margin = mate[chosen, None] - kth[probe]  # +inf where fewer than k distractors
    hit[chosen] = margin > 0
    sure = np.abs(margin) > (kth_error[probe] + mate_error[chosen])[:, None]
    return chosen[~sure.all(axis=1)]


def _mate_cosines(unit: np.ndarray, identity: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """float64 (P,): unit[a[i]] · unit[b[i]] for same-identity pairs, read from one small Gram block per identity
    (identities of one size are multiplied together, in unit's precision). unit float32/float64 (R, d);
    identity int64 (R,) the label of each row; a, b int64 (P,) rows of one identity."""
    order = np.argsort(identity, kind="stable")
    sorted_ids = identity[order]
    starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
    sizes = np.diff(np.r_[starts, len(order)])
    group_of_row = np.empty(len(order), dtype=np.int64)
    group_of_row[order] = np.repeat(np.arange(len(starts)), sizes)
    position = np.empty(len(order), dtype=np.int64)
    position[order] = np.arange(len(order)) - np.repeat(starts, sizes)
    group = group_of_row[a]
    out = np.empty(len(a))
    by_size = np.argsort(sizes[group], kind="stable")  # pairs sorted by the size of their identity
    bounds = np.searchsorted(sizes[group][by_size], np.unique(sizes), side="left")
    for size, first, last in zip(np.unique(sizes), bounds, np.r_[bounds[1:], len(a)], strict=True):
        chosen = by_size[first:last]
        if len(chosen) == 0:
            continue
        if size > _MAX_GRAM_SIZE:  # a very large identity: row by row, never its whole Gram matrix
            out[chosen] = _row_dots(unit, a[chosen], b[chosen])
            continue
        groups, slot = np.unique(group[chosen], return_inverse=True)
        for start in range(0, len(groups), _GRAM_GROUPS):
            batch = groups[start : start + _GRAM_GROUPS]
            members = order[starts[batch][:, None] + np.arange(size)]  # (G, size) rows
            blocks = unit[members]  # (G, size, d)
            gram = blocks @ blocks.transpose(0, 2, 1)  # (G, size, size)
            inside = (slot >= start) & (slot < start + len(batch))
            pick = chosen[inside]
            out[pick] = gram[slot[inside] - start, position[a[pick]], position[b[pick]]]
    return out


def _row_dots(unit: np.ndarray, a: np.ndarray, b: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """float64 (P,): unit[a[i]] · unit[b[i]], by chunks (bounded memory)."""
    out = np.empty(len(a))
    for start in range(0, len(a), chunk):
        stop = start + chunk
        out[start:stop] = np.einsum("ij,ij->i", unit[a[start:stop]], unit[b[start:stop]])
    return out


# --------------------------------------------------------------------------------------------------- inputs


def _check_features(labels: RecognitionLabels, features) -> np.ndarray:
    features = np.asarray(features)
    if features.ndim != 2 or features.shape[0] != len(labels.labels):
        raise ValueError(
            f"features must have shape ({len(labels.labels)}, d), one row per test image; got {features.shape}"
        )
    if features.dtype.kind != "f":
        raise ValueError(f"features must be floating point, not {features.dtype}")
    if features.shape[1] < 1:
        raise ValueError("features have dimension 0")
    finite = np.concatenate(
        [np.isfinite(features[start : start + 8192]).all(axis=1) for start in range(0, len(features), 8192)]
    )  # by chunks: no (N, d) mask
    if not finite.all():
        raise ValueError(f"feature row {int(np.argmin(finite))} holds a NaN or infinite value")
    nonzero = features.any(axis=1)
    if not nonzero.all():
        raise ValueError(f"feature row {int(np.argmin(nonzero))} is all zeros: its direction is undefined")
    return features


def _check_ks(ks: Sequence[int]) -> tuple[int, ...]:
    ks = tuple(ks)
    if not ks or any(not isinstance(k, int | np.integer) or isinstance(k, bool) or k < 1 for k in ks):
        raise ValueError(f"ks must be positive integers, not {ks!r}")
    return tuple(int(k) for k in ks)


def _identity_set(identities) -> np.ndarray:
    subset = np.unique(np.asarray(identities, dtype=np.int64).ravel())
    if len(subset) and subset[0] < 0:
        raise ValueError(f"identities are labels >= 0; got {int(subset[0])} (distractors belong to every split)")
    return subset


def _subset_pairs(labels: RecognitionLabels, identities) -> np.ndarray:
    """int64 (P, 2): the pairs whose identity (the probe's label) is in the subset."""
    pairs = np.asarray(labels.pairs, dtype=np.int64).reshape(-1, 2)
    if len(pairs):
        size = len(labels.labels)
        if pairs.min() < 0 or pairs.max() >= size:
            raise ValueError(f"a pair index is out of range for {size} test images")
        pair_labels = labels.labels[pairs]
        wrong = (pair_labels[:, 0] < 0) | (pair_labels[:, 0] != pair_labels[:, 1]) | (pairs[:, 0] == pairs[:, 1])
        if wrong.any():
            row = int(np.argmax(wrong))
            raise ValueError(
                f"pair {row} ({pairs[row, 0]}, {pairs[row, 1]}) is not two distinct images of one identity"
            )
    if identities is None:
        return pairs
    return pairs[np.isin(labels.labels[pairs[:, 0]], _identity_set(identities))]


def _verification_mask(labels: RecognitionLabels, pairs: VerificationPairs, identities) -> np.ndarray | None:
    """bool (V,): the verification pairs that count in the subset (each labelled image's identity in it)."""
    if identities is None:
        return None
    subset = _identity_set(identities)
    keep = np.ones(len(pairs), dtype=bool)
    for side in (pairs.a, pairs.b):
        side_labels = labels.labels[side]
        keep &= (side_labels < 0) | np.isin(side_labels, subset)
    return keep


def _check_verification(labels: RecognitionLabels, pairs: VerificationPairs) -> None:
    size = len(labels.labels)
    for name, side in (("a", pairs.a), ("b", pairs.b)):
        if len(side) and (side.min() < 0 or side.max() >= size):
            raise ValueError(f"verification pair index '{name}' out of range for {size} test images")
