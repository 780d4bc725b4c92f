"""Rank-1 and CMC (FORMATS.md §2): hand-computed cases, the API's input checks, splits and the file round trip."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scorer import formats
from scorer.formats import VerificationPairs
from scorer.recognition import RecognitionScores, _verification_mask, cmc, evaluate_recognition, rank1
from tests.scorer._rec_reference import make_labels

BACKENDS = ("numpy", "faiss")


def _angle(degrees: float) -> list[float]:
    return [math.cos(math.radians(degrees)), math.sin(math.radians(degrees))]


# --------------------------------------------------------------------------------------------------- hand-computed


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_tie_with_a_distractor_is_a_miss(backend):
    # a=(1,0), b=(1,1) of one identity; the distractor (1,1) duplicates b.
    # pair (a,b): cos(a,b) = cos(a,d) = 0.7071 -> tie -> miss; pair (b,a): cos(b,a) = 0.7071 < cos(b,d) = 1 -> miss
    labels = make_labels([0, 0, -1])
    features = np.array([[1.0, 0.0], [1.0, 1.0], [1.0, 1.0]])
    assert rank1(labels, features, backend=backend) == 0.0


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_tie_is_a_miss_while_a_strict_win_is_a_hit(backend):
    # distractor (0,1): pair (a,b): 0.7071 > 0 -> hit; pair (b,a): cos(b,a) = cos(b,d) = 0.7071 -> tie -> miss
    labels = make_labels([0, 0, -1])
    features = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    assert rank1(labels, features, backend=backend) == 0.5


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_constant_features_score_zero(backend, dtype):
    labels = make_labels([0, 0, 0, 1, 1] + [-1] * 10)
    features = np.full((15, 16), 0.3, dtype=dtype)
    scores = evaluate_recognition(labels, features, backend=backend)
    assert scores.rank1 == 0.0
    assert scores.cmc == {"1": 0.0, "5": 0.0, "10": 0.0}


def test_constant_features_beat_minus_infinity_when_there_are_fewer_than_k_distractors():
    labels = make_labels([0, 0, 0, 1, 1, -1, -1, -1])
    features = np.full((8, 16), 0.3)
    # 3 distractors: the 1st largest is a tie (miss); the 5th and 10th largest are -inf (hit)
    assert cmc(labels, features, ks=(1, 3, 4, 5, 10)) == {"1": 0.0, "3": 0.0, "4": 1.0, "5": 1.0, "10": 1.0}


@pytest.mark.parametrize("backend", BACKENDS)
def test_without_distractors_every_pair_is_a_hit(backend):
    # the gallery is the mate alone: cos(a, b) > max over no distractor = -inf
    labels = make_labels([0, 0, 1, 1])
    assert rank1(labels, np.ones((4, 3)), backend=backend) == 1.0


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_distractor_closer_than_the_mate_is_a_miss(backend):
    # identity 0 at 0 deg and 60 deg; distractor at 10 deg.
    # pair (0deg, 60deg): the distractor (10 deg away) beats the mate (60 deg away) -> miss
    # pair (60deg, 0deg): the distractor is 50 deg away, the mate 60 deg -> miss
    # identity 1 at 180 deg and 185 deg: the distractor is 170 / 175 deg away -> both hits
    labels = make_labels([0, 0, 1, 1, -1])
    features = np.array([_angle(0), _angle(60), _angle(180), _angle(185), _angle(10)])
    assert rank1(labels, features, backend=backend) == 0.5


@pytest.mark.parametrize("backend", BACKENDS)
def test_cmc_counts_the_mates_rank_among_the_distractors(backend):
    # probe a at 0 deg, mate b at 40 deg, distractors at 10, 20, 30, 50, 60 deg.
    # pair (a,b): distractors at 10, 20, 30 are closer than the mate (40) -> mate rank 4
    # pair (b,a): distances from 40 deg: 30, 20, 10, 10, 20, all closer than the mate (40) -> mate rank 6
    labels = make_labels([0, 0, -1, -1, -1, -1, -1])
    features = np.array([_angle(0), _angle(40), _angle(10), _angle(20), _angle(30), _angle(50), _angle(60)])
    expected = {"1": 0.0, "3": 0.0, "4": 0.5, "5": 0.5, "6": 1.0}
    assert cmc(labels, features, ks=(1, 3, 4, 5, 6), backend=backend) == expected


@pytest.mark.parametrize("backend", BACKENDS)
def test_duplicated_distractors_count_once_each(backend):
    # probe at 0 deg, mate at 40 deg, three copies of a distractor at 10 deg and one at 90 deg:
    # pair (a,b): the mate ranks 4th (behind the three copies); pair (b,a): the copies are 30 deg from b, closer
    # than a (40 deg), and 90 deg is 50 deg away: the mate ranks 4th as well
    labels = make_labels([0, 0, -1, -1, -1, -1])
    features = np.array([_angle(0), _angle(40), _angle(10), _angle(10), _angle(10), _angle(90)])
    assert cmc(labels, features, ks=(1, 3, 4), backend=backend) == {"1": 0.0, "3": 0.0, "4": 1.0}


def test_rank1_is_cmc_at_1_and_the_dataclass_has_formats_keys():
    labels = make_labels([0, 0, 1, 1, 1, -1, -1])
    features = np.random.default_rng(3).standard_normal((7, 8))
    scores = evaluate_recognition(labels, features)
    assert isinstance(scores, RecognitionScores)
    assert scores.rank1 == scores.cmc["1"] == rank1(labels, features)
    assert list(scores.to_dict()) == [
        "rank1",
        "cmc",
        "verification_accuracy",
        "verification_auc",
        "tar_at_far_1e-3",
        "num_pairs",
        "num_distractors",
        "dim",
    ]
    assert list(scores.cmc) == ["1", "5", "10"]
    assert (scores.num_pairs, scores.num_distractors, scores.dim) == (2 + 6, 2, 8)
    assert scores.verification_accuracy is scores.verification_auc is scores.tar_at_far_1e_3 is None


def test_pairs_listed_in_the_file_are_the_ones_scored():
    # only the pair (0, 1) is listed: a hit (the distractor is at 90 deg); (1, 0) would be a hit too, (2, 0) a miss
    labels = make_labels([0, 0, 0, -1], pairs=[[0, 1]])
    features = np.array([_angle(0), _angle(10), _angle(80), _angle(90)])
    scores = evaluate_recognition(labels, features)
    assert (scores.rank1, scores.num_pairs) == (1.0, 1)


@pytest.mark.parametrize("scale", [2.0**600, 2.0**-600, 2.0**-1000])
def test_features_scaled_by_a_power_of_two_score_identically_without_overflow(scale):
    labels = make_labels([0, 0, 0, 1, 1, 1, -1, -1, -1, -1])
    features = np.random.default_rng(5).standard_normal((10, 6))
    features[9] = features[4]  # an exact tie
    expected = evaluate_recognition(labels, features, backend="numpy").to_dict()
    for backend in BACKENDS:
        assert evaluate_recognition(labels, features * scale, backend=backend).to_dict() == expected


def test_rows_with_values_of_very_different_magnitudes_neither_overflow_nor_lose_their_direction():
    # identity 0 (near 0 deg) is far from the distractor at 180 deg: both pairs hit. Identity 1's rows and the
    # distractor all point to 180 deg (the 1e-320 component vanishes from every cosine): both pairs are ties, misses
    labels = make_labels([0, 0, 1, 1, -1])
    features = np.array([[1e300, 1e290], [1e-300, 2e-301], [-1.0, 1e-320], [-1.0, 0.0], [-(2.0**-1070), 0.0]])
    for backend in BACKENDS:
        assert cmc(labels, features, ks=(1,), backend=backend) == {"1": 0.5}


# --------------------------------------------------------------------------------------------------- splits


def _split_problem():
    rng = np.random.default_rng(11)
    labels = np.r_[np.repeat([3, 7, 8, 20, 41], [4, 2, 5, 3, 6]), -np.ones(9, np.int64)]
    labels = labels[rng.permutation(len(labels))]
    centres = rng.standard_normal((42, 12))
    features = rng.standard_normal((len(labels), 12)) * 0.8
    features[labels >= 0] += centres[labels[labels >= 0]]
    features[3] = features[np.flatnonzero(labels < 0)[0]]  # a tie with a distractor
    return labels, features, rng


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("subset", [[3, 8], [41], [7, 20, 41], [3, 7, 8, 20, 41]])
def test_split_scoring_equals_scoring_the_filtered_labels(backend, subset):
    labels, features, rng = _split_problem()
    verification = VerificationPairs(
        *(rng.integers(0, len(labels), (2, 200))), same=rng.random(200) < 0.5, fold=rng.integers(0, 10, 200)
    )
    split = evaluate_recognition(make_labels(labels), features, verification, identities=subset, backend=backend)

    keep = (labels < 0) | np.isin(labels, subset)  # drop the other identities' images altogether
    new_index = np.cumsum(keep) - 1
    counted = keep[verification.a] & keep[verification.b]
    filtered_verification = VerificationPairs(
        new_index[verification.a[counted]],
        new_index[verification.b[counted]],
        verification.same[counted],
        verification.fold[counted],
    )
    filtered = evaluate_recognition(make_labels(labels[keep]), features[keep], filtered_verification, backend=backend)
    assert split.to_dict() == filtered.to_dict()


def test_an_empty_split_scores_zero_without_crashing():
    labels, features, _ = _split_problem()
    scores = evaluate_recognition(make_labels(labels), features, identities=[999])
    assert (scores.rank1, scores.num_pairs, scores.cmc) == (0.0, 0, {"1": 0.0, "5": 0.0, "10": 0.0})
    assert scores.num_distractors == 9
    assert rank1(make_labels(labels), features, identities=np.array([], dtype=np.int64)) == 0.0


def test_a_verification_pair_with_a_distractor_follows_its_labelled_image():
    # images: 0,1 identity 0; 2,3 identity 1; 4 distractor
    labels = make_labels([0, 0, 1, 1, -1])
    pairs = VerificationPairs(
        np.array([0, 2, 4, 0]), np.array([4, 4, 4, 2]), np.array([False, False, False, False]), np.array([0, 1, 2, 3])
    )
    assert _verification_mask(labels, pairs, [0]).tolist() == [True, False, True, False]
    assert _verification_mask(labels, pairs, [0, 1]).tolist() == [True, True, True, True]
    assert _verification_mask(labels, pairs, None) is None


# --------------------------------------------------------------------------------------------------- round trip


@pytest.mark.parametrize("suffix", ["bin", "npy32", "npy64"])
def test_written_and_read_features_score_identically(tmp_path, suffix):
    labels, features, rng = _split_problem()
    info = tmp_path / "icartoonface_rectest_info.txt"
    formats.write_recognition_labels(info, make_labels(labels))
    read_labels = formats.read_recognition_labels(info)
    if suffix == "bin":
        path = tmp_path / "features.bin"
        formats.write_features(path, features)
        original = features
    else:
        original = features.astype(np.float32 if suffix == "npy32" else np.float64)
        path = tmp_path / "features.npy"
        np.save(path, original)
    read = formats.read_features(path, len(read_labels.image_names))
    assert (
        evaluate_recognition(read_labels, read).to_dict()
        == evaluate_recognition(make_labels(labels), original).to_dict()
    )


# --------------------------------------------------------------------------------------------------- input errors


def _valid():
    return make_labels([0, 0, 1, 1, -1]), np.random.default_rng(0).standard_normal((5, 4))


def _with_row(features, row, value):
    features = features.copy()
    features[row] = value
    return features


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda lab, f: (lab, f[:4]), r"shape \(5, d\)"),
        (lambda lab, f: (lab, f[:, :, None]), r"shape \(5, d\)"),
        (lambda lab, f: (lab, f[:, :0]), "dimension 0"),
        (lambda lab, f: (lab, f.astype(np.int64)), "floating point"),
        (lambda lab, f: (lab, _with_row(f, 2, np.nan)), "row 2 holds a NaN"),
        (lambda lab, f: (lab, _with_row(f, 3, np.inf)), "row 3 holds a NaN or infinite"),
        (lambda lab, f: (lab, _with_row(f, 1, 0.0)), "row 1 is all zeros"),
        (lambda lab, f: (make_labels(lab.labels, pairs=[[0, 2]]), f), r"pair 0 \(0, 2\) is not two distinct"),
        (lambda lab, f: (make_labels(lab.labels, pairs=[[0, 4]]), f), "not two distinct images of one identity"),
        (lambda lab, f: (make_labels(lab.labels, pairs=[[0, 0]]), f), "not two distinct images"),
        (lambda lab, f: (make_labels(lab.labels, pairs=[[0, 9]]), f), "out of range"),
    ],
    ids=[
        "rows",
        "ndim",
        "dim0",
        "int",
        "nan",
        "inf",
        "zero-row",
        "two-identities",
        "distractor-pair",
        "self-pair",
        "index-range",
    ],
)
def test_invalid_inputs_raise_a_clear_error(change, message):
    labels, features = change(*_valid())
    with pytest.raises(ValueError, match=message):
        evaluate_recognition(labels, features)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"backend": "gpu"}, "unknown backend 'gpu'; choose one of auto, numpy, faiss"),
        ({"block_size": 0}, "block_size must be >= 1"),
        ({"identities": [-1]}, "identities are labels >= 0"),
        ({"ks": ()}, "ks must be positive integers"),
        ({"ks": (0,)}, "ks must be positive integers"),
        ({"ks": (1.5,)}, "ks must be positive integers"),
        ({"ks": (True,)}, "ks must be positive integers"),
    ],
    ids=["backend", "block-size", "negative-identity", "no-ks", "zero-k", "float-k", "bool-k"],
)
def test_invalid_arguments_raise_a_clear_error(kwargs, message):
    labels, features = _valid()
    with pytest.raises(ValueError, match=message):
        cmc(labels, features, **kwargs)


def test_an_unknown_backend_is_refused_even_with_no_pair_to_score():
    labels, features = _valid()
    with pytest.raises(ValueError, match="unknown backend"):
        rank1(labels, features, identities=[999], backend="cuda")


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        (
            VerificationPairs(np.array([0, 7]), np.array([1, 2]), np.array([True, False]), np.array([0, 1])),
            "index 'a' out of range",
        ),
        (
            VerificationPairs(np.array([0, 1]), np.array([1, -2]), np.array([True, False]), np.array([0, 1])),
            "index 'b' out of range",
        ),
    ],
    ids=["a", "b"],
)
def test_verification_pairs_out_of_range_are_refused(pairs, message):
    labels, features = _valid()
    with pytest.raises(ValueError, match=message):
        evaluate_recognition(labels, features, pairs)
