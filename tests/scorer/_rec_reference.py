"""Independent references for the recognition metrics tests, and the hypothesis strategy that feeds them.

- `brute_force_cmc`: the 2020 official scorer written out: the full similarity matrix and, for every pair, an
  argsort walk over the gallery (distractors + the mate) to find the mate's rank; a tie puts the mate behind the
  distractors (our deviation: a tie is a miss).

  The similarities are the canonical float64 cosine that docs/metrics.md and scorer.search define (the rule the
  scorer must follow), computed here independently of the scorer: `canonical_similarities`. A BLAS product
  (sklearn's cosine_distances, as this reference once used) is not the rule: it rounds a dot product differently
  depending on where the rows sit in the matrix, so identical rows got a distance of 0 in some places and 1.1e-16 in
  others, and the reference called ties wins (the `@example` cases of test_recognition_reference.py). The canonical
  value is a fixed sequence of IEEE-754 double operations on the row's values alone (an exact power-of-two scaling,
  squares summed in index order, a correctly rounded square root and division, products summed in index order, each
  operation rounded once; numpy's elementwise ufuncs perform exactly these, no FMA, no reordering): two rows'
  similarity is one bit pattern wherever they sit, so equal inputs give equal values, and the reference cannot
  disagree with the rule through rounding; it can disagree only by a wrong walk, which is what it tests.
- `brute_force_accuracy` / `brute_force_tar`: the verification protocol as plain loops over every candidate.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
from hypothesis import strategies as st

from scorer.formats import RecognitionLabels, VerificationPairs, all_same_identity_pairs


def make_labels(labels, pairs=None) -> RecognitionLabels:
    """RecognitionLabels for a label array (-1: distractor); pairs default to every same-identity pair."""
    labels = np.asarray(labels, dtype=np.int64)
    pairs = all_same_identity_pairs(labels) if pairs is None else np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    names = tuple(f"img{i:05d}.jpg" for i in range(len(labels)))
    return RecognitionLabels(names, np.tile([0.0, 0.0, 9.0, 9.0], (len(labels), 1)), labels, pairs)


def canonical_similarities(features: np.ndarray) -> np.ndarray:
    """float64 (N, N): the canonical cosine of every pair of rows of features (N, d) (module docstring), with
    elementwise operations only: one vectorised step per dimension j = 0..d-1, in order."""
    x = np.asarray(features, dtype=np.float64)
    scaled = np.empty_like(x)
    for i, row in enumerate(x):  # exact: a power of two so that the row's largest |value| lies in [0.5, 1)
        scaled[i] = np.ldexp(row, -math.frexp(float(np.abs(row).max()))[1])
    squares = np.zeros(len(x))
    for j in range(x.shape[1]):
        squares = squares + scaled[:, j] * scaled[:, j]
    unit = scaled / np.sqrt(squares)[:, None]
    similarities = np.zeros((len(x), len(x)))
    for j in range(x.shape[1]):
        similarities = similarities + unit[:, j][:, None] * unit[:, j][None, :]
    return similarities


def mate_ranks(labels: RecognitionLabels, features: np.ndarray, identities=None) -> list[int]:
    """The 1-based rank of the mate in the gallery of each counted pair, by the official argsort walk."""
    distances = -canonical_similarities(features)  # descending similarity; negation is exact
    distractors = np.flatnonzero(labels.labels < 0)
    subset = None if identities is None else {int(i) for i in np.asarray(identities).ravel()}
    ranks = []
    for probe, mate in labels.pairs.tolist():
        if subset is not None and int(labels.labels[probe]) not in subset:
            continue
        gallery = np.r_[distractors, mate]
        gallery_distances = distances[probe, gallery]
        is_mate = (gallery == mate).astype(int)  # secondary key: on a tie the distractor comes first
        order = np.lexsort((is_mate, gallery_distances))
        ranks.append(int(np.flatnonzero(gallery[order] == mate)[0]) + 1)
    return ranks


def brute_force_cmc(labels, features, ks, identities=None) -> dict[str, float]:
    ranks = mate_ranks(labels, features, identities)
    if not ranks:
        return {str(k): 0.0 for k in ks}
    return {str(k): sum(r <= k for r in ranks) / len(ranks) for k in ks}


def brute_force_accuracy(similarities, same, fold) -> float:
    """10-fold accuracy, every candidate threshold tried in a plain loop."""
    similarities = [float(s) for s in similarities]
    same = [bool(s) for s in same]
    fold = [int(f) for f in fold]
    accuracies = []
    for held_out in sorted(set(fold)):
        train = [(s, y) for s, y, f in zip(similarities, same, fold, strict=True) if f != held_out]
        test = [(s, y) for s, y, f in zip(similarities, same, fold, strict=True) if f == held_out]
        values = sorted({s for s, _ in train})
        candidates = [-math.inf] + [(lo + hi) / 2 for lo, hi in zip(values, values[1:], strict=False)] + [math.inf]
        best, best_correct = None, -1
        for threshold in candidates:  # ascending: a later candidate wins only when strictly better
            correct = sum((s > threshold) == y for s, y in train)
            if correct > best_correct:
                best, best_correct = threshold, correct
        accuracies.append(sum((s > best) == y for s, y in test) / len(test))
    return sum(accuracies) / len(accuracies)


def brute_force_tar(similarities, same, far=1e-3) -> float:
    same_sims = [float(s) for s, y in zip(similarities, same, strict=True) if y]
    different = [float(s) for s, y in zip(similarities, same, strict=True) if not y]
    for threshold in [-math.inf] + sorted(set(map(float, similarities))):
        false_accepts = sum(s > threshold for s in different)
        if false_accepts <= Fraction(repr(far)) * len(different):
            return sum(s > threshold for s in same_sims) / len(same_sims)
    raise AssertionError("unreachable: the largest similarity lets no pair above it")


# --------------------------------------------------------------------------------------------------- hypothesis


@st.composite
def recognition_problems(draw, max_identities: int = 5, max_images: int = 5, max_distractors: int = 12):
    """(labels, features float64 (N, d)) with random identities, few distractors and duplicated vectors (exact
    copies and power-of-two multiples, so that exact ties happen in both the mates and the distractors)."""
    num_identities = draw(st.integers(0, max_identities))
    sizes = draw(st.lists(st.integers(1, max_images), min_size=num_identities, max_size=num_identities))
    identity_names = draw(
        st.lists(st.integers(0, 10_000), min_size=num_identities, max_size=num_identities, unique=True)
    )
    num_distractors = draw(st.integers(0, max_distractors))
    labels = np.r_[np.repeat(np.asarray(identity_names, dtype=np.int64), sizes), -np.ones(num_distractors, np.int64)]
    if len(labels) == 0:
        labels = np.array([-1])
    labels = labels[np.random.default_rng(draw(st.integers(0, 2**32 - 1))).permutation(len(labels))]
    dim = draw(st.integers(1, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    features = rng.standard_normal((len(labels), dim))
    if draw(st.booleans()):
        copies = draw(
            st.lists(
                st.tuples(st.integers(0, len(labels) - 1), st.integers(0, len(labels) - 1), st.integers(-3, 3)),
                max_size=len(labels),
            )
        )
        for target, source, exponent in copies:
            features[target] = features[source] * 2.0**exponent
    if draw(st.integers(0, 9)) == 0:
        features[:] = features[0]  # constant features
    return labels, features


def verification_for(labels: np.ndarray, rng: np.random.Generator, count: int) -> VerificationPairs:
    """Random verification pairs over the images of labels (same = both labelled with one identity)."""
    a = rng.integers(0, len(labels), count)
    b = rng.integers(0, len(labels), count)
    same = (labels[a] >= 0) & (labels[a] == labels[b])
    return VerificationPairs(a.astype(np.int64), b.astype(np.int64), same, rng.integers(0, 10, count))
