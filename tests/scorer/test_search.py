"""The distractor search over many tiles (scorer.search.approximate_kth): the running `keep` largest, merged tile by
tile with the floor filter, must equal the k-th largest of the whole similarity matrix, and rank-1/CMC stay equal
to the brute-force reference when the search is cut into many small tiles and blocks."""

from __future__ import annotations

import numpy as np
import pytest

from scorer import search
from scorer.recognition import cmc
from tests.scorer._rec_reference import brute_force_cmc, make_labels


@pytest.fixture
def small_tiles(monkeypatch):
    """Tiles of 256 distractors (the minimum) whatever the block: a few hundred distractors span many tiles."""
    monkeypatch.setattr(search, "BLOCK_ELEMENTS", 64)


def _whole_matrix_kth(probe_unit, features, distractors, ks):
    unit = search.unit_rows(features[distractors.rows])
    sims = probe_unit @ unit.T
    counts = np.broadcast_to(distractors.counts, sims.shape)
    return search._weighted_kth(sims, counts, ks)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("block_size", [1, 7, 64])
def test_tiled_kth_equals_the_kth_of_the_whole_matrix(small_tiles, seed, block_size):
    rng = np.random.default_rng(seed)
    num_distinct = int(rng.integers(300, 1200))  # 2 to 5 tiles of 256
    dim = int(rng.integers(2, 24))
    distinct = rng.standard_normal((num_distinct, dim))
    # repeated rows (counts > 1) and rows that tie after normalisation (a positive multiple of another)
    repeats = distinct[rng.integers(0, num_distinct, num_distinct // 3)]
    multiples = distinct[rng.integers(0, num_distinct, num_distinct // 5)] * 4.0
    features = np.concatenate([distinct, repeats, multiples])
    distractors = search.distinct_distractors(features, np.arange(len(features)))
    probe_unit = search.unit_rows(rng.standard_normal((int(rng.integers(1, 90)), dim)))
    ks = (1, 5, 10, 37)

    kth, bound = search.approximate_kth(probe_unit, features, distractors, ks, backend="numpy", block_size=block_size)

    expected = _whole_matrix_kth(probe_unit, features, distractors, ks)
    assert np.all(np.abs(kth - expected) <= 2 * bound)


def test_fewer_distinct_distractors_than_k_gives_minus_infinity_beyond_them(small_tiles):
    rng = np.random.default_rng(3)
    features = np.repeat(rng.standard_normal((3, 5)), 200, axis=0)  # 600 rows, 3 distinct (counts 200)
    distractors = search.distinct_distractors(features, np.arange(len(features)))
    probe_unit = search.unit_rows(rng.standard_normal((4, 5)))

    kth, bound = search.approximate_kth(probe_unit, features, distractors, (1, 600, 601), backend="numpy")

    expected = _whole_matrix_kth(probe_unit, features, distractors, (1, 600, 601))
    assert np.all(np.isneginf(kth[:, 2]))
    assert np.all(np.abs(kth[:, :2] - expected[:, :2]) <= 2 * bound)


@pytest.mark.parametrize("seed", range(4))
def test_cmc_over_many_tiles_equals_the_brute_force_reference(small_tiles, seed):
    rng = np.random.default_rng(seed)
    identities, per_identity, num_distractors, dim = 12, 3, 700, 6
    labels = np.r_[np.repeat(np.arange(identities), per_identity), -np.ones(num_distractors, np.int64)]
    centres = rng.standard_normal((identities, dim))
    features = np.concatenate(
        [
            centres[labels[labels >= 0]] + 0.6 * rng.standard_normal((identities * per_identity, dim)),
            rng.standard_normal((num_distractors, dim)),
        ]
    )
    features[-50:] = features[rng.integers(0, identities * per_identity, 50)]  # distractors tying with probes
    recognition_labels = make_labels(labels)

    got = cmc(recognition_labels, features, ks=(1, 5, 10), backend="numpy", block_size=5)

    assert got == brute_force_cmc(recognition_labels, features, (1, 5, 10))
