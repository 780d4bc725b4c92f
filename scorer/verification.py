"""Verification scores (FORMATS.md §2, the 2019 benchmark's protocol) of labelled pairs of test images.

A pair is called "same" iff its cosine similarity is strictly above the threshold. The similarity is the canonical
float64 cosine of `scorer.search` (the same value that rank-1 compares, reproducible on any machine).

- `ten_fold_accuracy`: for each fold, the threshold is chosen on the other folds among -inf, +inf and the midpoints
  of consecutive distinct similarities there (highest accuracy there; ties: the smallest threshold), and the fold
  is scored at it; the result is the mean over the folds that hold a pair. A fold with no other fold to learn from
  gets the threshold -inf (every candidate ties at zero correct).
- `mann_whitney_auc`: the area under the ROC curve, a tie between a same and a different pair counting one half.
- `tar_at_far`: the fraction of same pairs above the smallest threshold (a similarity value or -inf) that lets at
  most `far` of the different pairs above it ("at most": floor(far × different pairs), computed exactly).
Each returns None where it is undefined: no pair, or (AUC, TAR) no same or no different pair.
"""

from __future__ import annotations

import logging
import math
from fractions import Fraction

import numpy as np

from scorer.formats import VerificationPairs
from scorer.search import canonical_cosine

log = logging.getLogger(__name__)

NUM_FOLDS = 10


def verification_scores(
    features: np.ndarray, pairs: VerificationPairs, mask: np.ndarray | None = None
) -> tuple[float | None, float | None, float | None]:
    """(accuracy, auc, tar_at_far_1e-3) of the pairs (those where mask is True; None: all) on features (N, d)."""
    a, b, same, fold = (np.asarray(x) for x in (pairs.a, pairs.b, pairs.same, pairs.fold))
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != a.shape:
            raise ValueError(f"mask must have one entry per verification pair ({len(a)}), not shape {mask.shape}")
        a, b, same, fold = a[mask], b[mask], same[mask], fold[mask]
    if len(a) == 0:
        return None, None, None
    sims = canonical_cosine(np.asarray(features), a.astype(np.int64), b.astype(np.int64))
    same = same.astype(bool)
    return ten_fold_accuracy(sims, same, fold), mann_whitney_auc(sims, same), tar_at_far(sims, same, 1e-3)


def best_threshold(similarities: np.ndarray, same: np.ndarray) -> float:
    """The candidate threshold (-inf, midpoints of consecutive distinct values, +inf) of highest accuracy on these
    pairs, the smallest on ties. similarities float64 (P,), same bool (P,)."""
    values = np.unique(similarities)
    candidates = np.concatenate([[-np.inf], (values[:-1] + values[1:]) / 2, [np.inf]])
    same_sorted = np.sort(similarities[same])
    different_sorted = np.sort(similarities[~same])
    same_above = len(same_sorted) - np.searchsorted(same_sorted, candidates, side="right")
    different_not_above = np.searchsorted(different_sorted, candidates, side="right")
    return float(candidates[np.argmax(same_above + different_not_above)])  # argmax: the first (smallest) best


def ten_fold_accuracy(similarities: np.ndarray, same: np.ndarray, fold: np.ndarray) -> float | None:
    """Mean over folds of the accuracy on the fold at the threshold chosen on the other folds; (P,) arrays."""
    similarities, same, fold = np.asarray(similarities, np.float64), np.asarray(same, bool), np.asarray(fold)
    accuracies = []
    for held_out in np.unique(fold):
        test = fold == held_out
        threshold = best_threshold(similarities[~test], same[~test])
        accuracies.append(float(np.mean((similarities[test] > threshold) == same[test])))
    return float(np.mean(accuracies)) if accuracies else None


def mann_whitney_auc(similarities: np.ndarray, same: np.ndarray) -> float | None:
    """P(same pair's similarity > different pair's) + ½ P(equal), counted exactly; None without both kinds."""
    similarities, same = np.asarray(similarities, np.float64), np.asarray(same, bool)
    same_sims = similarities[same]
    different_sorted = np.sort(similarities[~same])
    if len(same_sims) == 0 or len(different_sorted) == 0:
        return None
    below = np.searchsorted(different_sorted, same_sims, side="left")
    not_above = np.searchsorted(different_sorted, same_sims, side="right")
    twice_wins = int((below + not_above).sum())  # 2·below + (not_above − below)
    return twice_wins / (2 * len(same_sims) * len(different_sorted))


def tar_at_far(similarities: np.ndarray, same: np.ndarray, far: float = 1e-3) -> float | None:
    """The fraction of same pairs strictly above the smallest threshold letting at most far of the different
    pairs strictly above it; None without both kinds."""
    if not 0.0 <= far <= 1.0:
        raise ValueError(f"far must be in [0, 1], not {far}")
    similarities, same = np.asarray(similarities, np.float64), np.asarray(same, bool)
    same_sims = similarities[same]
    different_sorted = np.sort(similarities[~same])
    if len(same_sims) == 0 or len(different_sorted) == 0:
        return None
    allowed = math.floor(Fraction(repr(float(far))) * len(different_sorted))
    if allowed >= len(different_sorted):
        threshold = -np.inf
    else:
        threshold = different_sorted[len(different_sorted) - allowed - 1]  # the (allowed + 1)-th largest
    return float(np.mean(same_sims > threshold))
