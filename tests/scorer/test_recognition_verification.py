"""Verification scores (FORMATS.md §2): hand-computed cases and independent references (sklearn's
roc_auc_score, a brute-force threshold search)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from scorer.formats import VerificationPairs
from scorer.recognition import evaluate_recognition
from scorer.verification import (
    best_threshold,
    mann_whitney_auc,
    tar_at_far,
    ten_fold_accuracy,
    verification_scores,
)
from tests.profiles import examples
from tests.scorer._rec_reference import brute_force_accuracy, brute_force_tar, make_labels, verification_for

# fold 0: same 0.9, 0.6; different 0.5, 0.1.  fold 1: same 0.8, 0.3; different 0.4, 0.2
TWO_FOLDS = (
    np.array([0.9, 0.6, 0.5, 0.1, 0.8, 0.3, 0.4, 0.2]),
    np.array([True, True, False, False, True, True, False, False]),
    np.array([0, 0, 0, 0, 1, 1, 1, 1]),
)


def test_the_threshold_is_learnt_on_the_other_folds_and_ties_go_to_the_smallest():
    sims, same, fold = TWO_FOLDS
    # learnt on fold 1 (0.2d 0.3s 0.4d 0.8s): candidates -inf 0.25 0.35 0.6 +inf are right on 2 3 2 3 2 pairs:
    # 0.25 and 0.6 tie, the smallest wins
    assert best_threshold(sims[fold == 1], same[fold == 1]) == pytest.approx(0.25, abs=1e-15)
    # learnt on fold 0 (0.1d 0.5d 0.6s 0.9s): candidates -inf 0.3 0.55 0.75 +inf are right on 2 3 4 3 2: 0.55
    assert best_threshold(sims[fold == 0], same[fold == 0]) == pytest.approx(0.55, abs=1e-15)
    # fold 0 at 0.25: 0.9 s, 0.6 s right, 0.5 called same (wrong), 0.1 right -> 3/4
    # fold 1 at 0.55: 0.8 s right, 0.3 called different (wrong), 0.4, 0.2 right -> 3/4
    assert ten_fold_accuracy(sims, same, fold) == 0.75


def test_a_similarity_equal_to_the_threshold_is_called_different():
    # fold 0 (a same pair at 0.5) is scored at the threshold learnt on fold 1 (same 0.75, different 0.25): 0.5;
    # 0.5 is not above 0.5: called different, wrong -> 0/1. Fold 1 is scored at the threshold learnt on fold 0
    # (one same pair: -inf wins): 0.75 right, 0.25 wrong -> 1/2. Mean 1/4.
    sims = np.array([0.5, 0.75, 0.25])
    assert best_threshold(sims[1:], np.array([True, False])) == 0.5
    assert ten_fold_accuracy(sims, np.array([True, True, False]), np.array([0, 1, 1])) == 0.25


def test_a_single_fold_learns_minus_infinity_and_calls_every_pair_same():
    sims = np.array([0.9, 0.1, 0.2])
    assert best_threshold(sims[:0], np.zeros(0, bool)) == -math.inf
    assert ten_fold_accuracy(sims, np.array([True, False, False]), np.zeros(3, int)) == pytest.approx(1 / 3)


def test_the_auc_counts_a_tie_as_one_half():
    # same 0.8, 0.5, 0.5 vs different 0.5, 0.2: wins 1 + 1, 1/2 + 1, 1/2 + 1 out of 6 -> 5/6
    sims = np.array([0.8, 0.5, 0.5, 0.5, 0.2])
    same = np.array([True, True, True, False, False])
    assert mann_whitney_auc(sims, same) == 5 / 6
    assert mann_whitney_auc(sims, same) == pytest.approx(roc_auc_score(same, sims), abs=1e-15)


@pytest.mark.parametrize(
    ("num_different", "expected"),
    [
        (999, 0.0),  # 0 false accepts allowed: threshold = the largest different (1.0): no same pair above it
        (1000, 0.5),  # 1 allowed: threshold = the 2nd largest (0.999): same 1.0 above, 0.5 not
        (2999, 0.5),  # 2 allowed: the 3rd largest is 0.998
        (3000, 0.5),  # 3 allowed: the 4th largest is 0.997: still only the same pair at 1.0 is above it
    ],
)
def test_tar_at_far_uses_the_smallest_threshold_letting_at_most_0_1_percent_through(num_different, expected):
    different = 1.0 - np.arange(num_different) / 1000.0  # 1.0, 0.999, 0.998, ...
    sims = np.r_[[1.0, 0.5], different]
    same = np.r_[[True, True], np.zeros(num_different, bool)]
    assert tar_at_far(sims, same) == expected


def test_tar_at_far_with_few_different_pairs_lets_none_through():
    # 3 different pairs: floor(0.003) = 0 allowed, threshold = the largest different 0.4
    assert tar_at_far(np.array([0.9, 0.4, 0.3, 0.1, 0.4]), np.array([True, True, False, False, False])) == 0.5
    # far = 1: every different pair may pass: threshold -inf, every same pair counts
    assert tar_at_far(np.array([0.9, 0.4, 0.3]), np.array([True, True, False]), far=1.0) == 1.0


@pytest.mark.parametrize("function", [mann_whitney_auc, tar_at_far])
@pytest.mark.parametrize("same", [[True, True], [False, False]])
def test_auc_and_tar_are_none_without_both_kinds_of_pair(function, same):
    assert function(np.array([0.2, 0.8]), np.array(same)) is None


def test_tar_refuses_a_far_outside_0_1():
    with pytest.raises(ValueError, match="far must be in"):
        tar_at_far(np.array([0.1]), np.array([True]), far=1.5)


def test_verification_scores_compare_canonical_cosines_of_feature_rows():
    # 2D features at angles whose cosines are the TWO_FOLDS similarities with the reference row 0
    sims, same, fold = TWO_FOLDS
    angles = np.arccos(sims)
    features = np.vstack([[1.0, 0.0], np.stack([np.cos(angles), np.sin(angles)], axis=1)])
    pairs = VerificationPairs(np.zeros(8, np.int64), np.arange(1, 9), same, fold)
    accuracy, auc, tar = verification_scores(features, pairs)
    assert accuracy == 0.75
    assert auc == pytest.approx(roc_auc_score(same, sims), abs=1e-15)
    assert tar == 0.75  # 4 different pairs: none may pass; above the largest different (0.5): 0.9, 0.6, 0.8
    assert verification_scores(features, pairs, mask=np.zeros(8, bool)) == (None, None, None)


def test_tar_in_the_verification_example_counts_same_pairs_above_the_largest_different():
    sims, same, _ = TWO_FOLDS
    assert tar_at_far(sims, same) == 0.75  # above 0.5: 0.9, 0.6, 0.8 of the 4 same pairs


def test_a_verification_mask_of_the_wrong_shape_is_refused():
    pairs = VerificationPairs(np.array([0, 1]), np.array([1, 0]), np.array([True, True]), np.array([0, 1]))
    with pytest.raises(ValueError, match="one entry per verification pair"):
        verification_scores(np.eye(2), pairs, mask=np.array([True]))


def test_evaluate_recognition_reports_the_verification_scores():
    rng = np.random.default_rng(12)
    labels = np.r_[np.repeat(np.arange(30), 4), -np.ones(20, np.int64)]
    features = rng.standard_normal((len(labels), 16)) * 1.2
    features[labels >= 0] += rng.standard_normal((30, 16))[labels[labels >= 0]]
    pairs = verification_for(labels, rng, 600)
    scores = evaluate_recognition(make_labels(labels), features, pairs)
    assert (scores.verification_accuracy, scores.verification_auc, scores.tar_at_far_1e_3) == verification_scores(
        features, pairs
    )
    assert 0.5 < scores.verification_auc <= 1.0


# --------------------------------------------------------------------------------------------------- references

_similarities = st.lists(
    st.tuples(st.sampled_from([-0.5, 0.0, 0.1, 0.25, 0.3, 0.5, 0.7, 0.9, 1.0]), st.booleans(), st.integers(0, 9)),
    min_size=1,
    max_size=60,
)


@pytest.mark.slow
@settings(max_examples=examples(200), deadline=None)
@given(rows=_similarities)
def test_ten_fold_accuracy_equals_a_brute_force_threshold_search(rows):
    sims, same, fold = (np.array(column) for column in zip(*rows, strict=True))
    assert ten_fold_accuracy(sims, same, fold) == pytest.approx(brute_force_accuracy(sims, same, fold), abs=1e-12)


@pytest.mark.slow
@settings(max_examples=examples(200), deadline=None)
@given(rows=_similarities, far=st.sampled_from([1e-3, 0.01, 0.1, 0.5]))
def test_auc_equals_sklearn_and_tar_equals_a_brute_force_search(rows, far):
    sims, same, _ = (np.array(column) for column in zip(*rows, strict=True))
    if same.all() or not same.any():
        assert mann_whitney_auc(sims, same) is None and tar_at_far(sims, same, far) is None
        return
    assert mann_whitney_auc(sims, same) == pytest.approx(roc_auc_score(same, sims), abs=1e-12)
    assert tar_at_far(sims, same, far) == brute_force_tar(sims, same, far)
