"""Rank-1 and CMC against an independent brute-force official scorer, numpy against faiss, and the rounding rule
that makes them agree (scorer.search)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from scorer import recognition, search
from scorer.recognition import cmc, evaluate_recognition
from tests.profiles import examples
from tests.scorer._rec_reference import brute_force_cmc, make_labels, recognition_problems

KS = (1, 2, 3, 5)


# Every counterexample ever found, kept as explicit examples (each once made the reference, not the scorer, wrong).
# 1. (issue 11) every feature identical: a BLAS cosine matrix gave some identical pairs 0 and others 1.1e-16.
_ALL_IDENTICAL = (
    np.array([2, 1, 0, 2, 2, 2, -1, 3, 3, 2, 3, 3, 3, 1]),
    np.tile([0.34558419, 0.82161814, 0.33043708], (14, 1)),
)
# 2. the same, with the rows as power-of-two multiples of one another (equal cosines, different bytes)
_POWER_OF_TWO_COPIES = (_ALL_IDENTICAL[0], _ALL_IDENTICAL[1] * 2.0 ** np.arange(-7, 7)[:, None])


@pytest.mark.slow
@settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problem=recognition_problems())
@example(problem=_ALL_IDENTICAL)
@example(problem=_POWER_OF_TWO_COPIES)
def test_cmc_equals_the_official_argsort_walk_with_ties_as_misses(problem):
    label_array, features = problem
    labels = make_labels(label_array)
    expected = brute_force_cmc(labels, features, KS)
    for backend in ("numpy", "faiss"):
        assert cmc(labels, features, ks=KS, backend=backend, block_size=3) == expected


@settings(max_examples=examples(60), deadline=None)
@given(problem=recognition_problems(), data=st.data())
def test_a_split_equals_the_argsort_walk_over_its_identities(problem, data):
    label_array, features = problem
    present = sorted(set(label_array[label_array >= 0].tolist()))
    subset = data.draw(st.lists(st.sampled_from(present), unique=True) if present else st.just([]))
    labels = make_labels(label_array)
    expected = brute_force_cmc(labels, features, KS, identities=subset)
    assert cmc(labels, features, ks=KS, identities=subset) == expected


def _clustered(rng, identities, per_identity, distractors, dim, noise):
    labels = np.r_[np.repeat(np.arange(identities), per_identity), -np.ones(distractors, np.int64)]
    centres = rng.standard_normal((identities, dim))
    features = rng.standard_normal((len(labels), dim)) * noise
    features[labels >= 0] += centres[labels[labels >= 0]]
    return labels, features


@pytest.mark.parametrize("dim", [8, 64, 300])
def test_numpy_and_faiss_backends_agree_on_random_inputs(dim):
    rng = np.random.default_rng(dim)
    labels, features = _clustered(rng, identities=60, per_identity=4, distractors=700, dim=dim, noise=1.3)
    scores = {
        backend: evaluate_recognition(make_labels(labels), features.astype(np.float32), backend=backend, block_size=50)
        for backend in ("numpy", "faiss")
    }
    assert scores["numpy"].to_dict() == scores["faiss"].to_dict()
    assert 0.0 < scores["numpy"].rank1 < 1.0
    assert scores["numpy"].cmc == brute_force_cmc(make_labels(labels), features.astype(np.float32), (1, 5, 10))


def test_near_ties_below_float32_resolution_are_decided_exactly_by_both_backends():
    # each distractor is a mate moved by ~1e-9: float32 cannot tell them apart, float64 can; faiss's answers fall
    # in its error band and are recomputed canonically
    rng = np.random.default_rng(7)
    labels, features = _clustered(rng, identities=40, per_identity=3, distractors=40, dim=32, noise=0.7)
    mates = np.flatnonzero(labels >= 0)[::3]
    distractors = np.flatnonzero(labels < 0)
    features[distractors] = features[mates] + rng.standard_normal((40, 32)) * 1e-9
    expected = brute_force_cmc(make_labels(labels), features, (1, 2, 3))
    assert 0.0 < expected["1"] < 1.0
    for backend in ("numpy", "faiss"):
        assert cmc(make_labels(labels), features, ks=(1, 2, 3), backend=backend) == expected


@pytest.mark.parametrize("spread", [1e-4, 1e-7, 1e-12])
def test_nearly_constant_features_are_decided_alike_by_both_backends(spread):
    # a collapsed model: every similarity lies within the float32 band, and at 1e-12 within the float64 band too,
    # so the decisions go through the float64 re-search and the canonical cosines
    rng = np.random.default_rng(13)
    labels, _ = _clustered(rng, identities=25, per_identity=4, distractors=150, dim=48, noise=1.0)
    features = 1.0 + spread * rng.standard_normal((len(labels), 48))
    features[-10:] = features[-11]  # and exact duplicates among them
    results = [cmc(make_labels(labels), features, backend=backend) for backend in ("numpy", "faiss")]
    assert results[0] == results[1]
    if spread >= 1e-4:  # cosines differ by ~spread**2, far above float64 rounding: the brute force agrees
        assert results[0] == brute_force_cmc(make_labels(labels), features, (1, 5, 10))


def test_auto_picks_a_backend_with_the_same_result():
    rng = np.random.default_rng(1)
    labels, features = _clustered(rng, identities=30, per_identity=5, distractors=200, dim=16, noise=1.0)
    assert cmc(make_labels(labels), features, backend="auto") == cmc(make_labels(labels), features, backend="numpy")
    assert search.resolve_backend("auto", 10) == "numpy"
    assert search.resolve_backend("auto", search.AUTO_FAISS_MIN_PRODUCTS) == "faiss"


@pytest.mark.parametrize("block_size", [1, 7, 4096])
def test_the_block_size_does_not_change_the_result(block_size):
    rng = np.random.default_rng(2)
    labels, features = _clustered(rng, identities=20, per_identity=4, distractors=300, dim=24, noise=1.2)
    features[-5:] = features[-6]  # duplicated distractors
    expected = brute_force_cmc(make_labels(labels), features, (1, 5, 10))
    for backend in ("numpy", "faiss"):
        assert cmc(make_labels(labels), features, backend=backend, block_size=block_size) == expected


def test_identities_too_large_for_a_gram_block_are_scored_row_by_row_with_the_same_result(monkeypatch):
    rng = np.random.default_rng(4)
    labels, features = _clustered(rng, identities=12, per_identity=5, distractors=50, dim=8, noise=1.5)
    labels[:3] = 99  # sizes 3, 2 and 5
    expected = brute_force_cmc(make_labels(labels), features, (1, 5))
    assert cmc(make_labels(labels), features, ks=(1, 5)) == expected
    monkeypatch.setattr(recognition, "_MAX_GRAM_SIZE", 2)  # sizes 3 and 5 now go row by row
    assert cmc(make_labels(labels), features, ks=(1, 5)) == expected


# --------------------------------------------------------------------------------------------------- the rule


@pytest.mark.parametrize(("backend", "dtype"), [("numpy", np.float64), ("faiss", np.float32)])
def test_approximate_similarities_stay_within_the_error_bound_of_the_canonical_ones(backend, dtype):
    rng = np.random.default_rng(9)
    dim = 512
    probes = rng.standard_normal((50, dim)) * rng.uniform(0.01, 100, (50, 1))
    distractors = rng.standard_normal((400, dim))
    ks = (1, 5)
    approx, bound = search.approximate_kth(
        search.unit_rows(probes),
        distractors,
        search.Distractors(np.arange(400), np.ones(400, np.int64)),
        ks,
        backend=backend,
        block_size=7,
    )
    exact_unit_probes = search.canonical_unit(probes)
    canonical = search.canonical_block(exact_unit_probes, search.canonical_unit(distractors))
    exact_kth = -np.sort(-canonical, axis=1)[:, [0, 4]]
    assert bound == search.error_bound(dim, search.UNIT_ROUNDOFF[np.dtype(dtype)])
    assert np.abs(approx - exact_kth).max() <= bound + search.error_bound(dim, 2.0**-53)


def test_the_canonical_cosine_of_equal_rows_is_equal_wherever_they_sit():
    rng = np.random.default_rng(3)
    row = rng.standard_normal(97)
    others = rng.standard_normal((3, 97))
    features = np.vstack([others[:1], row, others[1:], row, row * 4.0, row])  # rows 1, 4, 5, 6: one direction
    shifted = np.ascontiguousarray(features[:, 1:])  # another length and alignment in memory
    for matrix in (features, shifted):
        cosines = search.canonical_cosine(matrix, np.array([0, 0, 0, 0, 2, 2]), np.array([1, 4, 5, 6, 4, 6]))
        assert cosines[0] == cosines[1] == cosines[2] == cosines[3]
        assert cosines[4] == cosines[5]


def test_the_dense_canonical_block_equals_the_gathered_canonical_cosines_bit_for_bit():
    rng = np.random.default_rng(6)
    x = search.canonical_unit(rng.standard_normal((70, 33)))
    y = search.canonical_unit(rng.standard_normal((90, 33)) * 1e-3)
    block = search.canonical_block(x, y)
    i, j = np.meshgrid(np.arange(70), np.arange(90), indexing="ij")
    assert np.array_equal(block.ravel(), search.canonical_dot(x, y, i.ravel(), j.ravel()))


@pytest.mark.parametrize("dense_advantage", [0, 10**9])
def test_the_canonical_refinement_gives_one_answer_dense_or_gathered(monkeypatch, dense_advantage):
    rng = np.random.default_rng(10)
    labels, _ = _clustered(rng, identities=10, per_identity=4, distractors=60, dim=16, noise=1.0)
    features = 1.0 + 1e-12 * rng.standard_normal((len(labels), 16))  # every decision goes canonical
    expected = cmc(make_labels(labels), features)
    monkeypatch.setattr(search, "_DENSE_ADVANTAGE", dense_advantage)  # 0: always gathered; 1e9: always dense
    assert cmc(make_labels(labels), features) == expected


def test_the_canonical_cosine_is_close_to_the_true_cosine():
    rng = np.random.default_rng(8)
    x, y = rng.standard_normal((2, 200, 64))
    true = np.einsum("ij,ij->i", x, y) / np.linalg.norm(x, axis=1) / np.linalg.norm(y, axis=1)
    cosines = search.canonical_cosine(np.vstack([x, y]), np.arange(200), np.arange(200, 400))
    assert np.abs(cosines - true).max() <= 2 * search.error_bound(64, 2.0**-53)


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
@pytest.mark.parametrize("collide", [False, True])
def test_identical_distractors_are_merged_with_their_counts(monkeypatch, dtype, collide):
    if collide:  # every row hashes alike: the value check sees the collision and merges by sorting instead
        monkeypatch.setattr(search, "_row_hash", lambda row_bytes: 7)
    features = np.array([[1.0, 2.0], [0.0, 1.0], [1.0, 2.0], [-0.0, 1.0], [3.0, 3.0], [1.0, 2.0]], dtype=dtype)
    merged = search.distinct_distractors(features, np.array([0, 1, 2, 3, 5]))
    assert merged.rows.tolist() == [0, 1]
    assert merged.counts.tolist() == [3, 2]
    assert merged.total == 5


def test_scoring_leaves_the_callers_features_untouched():
    rng = np.random.default_rng(14)
    labels, features = _clustered(rng, identities=5, per_identity=3, distractors=20, dim=6, noise=1.0)
    features[0] *= 2.0**700  # a row that gets rescaled
    before = features.copy()
    for backend in ("numpy", "faiss"):
        cmc(make_labels(labels), features, backend=backend)
    search.unit_rows(features)
    assert np.array_equal(features, before)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_unit_rows_gathered_by_chunks_equal_the_unit_rows_of_the_gather(monkeypatch, dtype):
    monkeypatch.setattr(search, "BLOCK_ELEMENTS", 4 * 7 * 16)  # 7 rows per chunk of 16 dimensions: many chunks
    rng = np.random.default_rng(3)
    features = rng.standard_normal((50, 16)) * np.exp(rng.uniform(-300, 300, (50, 1)))  # some rows rescaled
    rows = rng.permutation(50)[:37]
    got = search.unit_rows_of(features, rows, dtype)
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, search.unit_rows(features[rows]).astype(dtype))
