"""baselines/diagnostics: the protocol's variants must agree with the scorer where they coincide with it."""

from __future__ import annotations

import numpy as np
import pytest

from baselines.diagnostics.protocol import rank1_with
from scorer.formats import RecognitionLabels, all_same_identity_pairs
from scorer.recognition import rank1


def _labels(n_ids=12, per_id=4, distractors=30):
    labels = np.concatenate([np.repeat(np.arange(n_ids), per_id), np.full(distractors, -1)])
    return np.random.default_rng(3).permutation(labels)


@pytest.mark.parametrize("noise", [1.0, 2.0, 4.0])
def test_rank1_with_all_distractors_is_the_scorers_rank1(noise):
    labels = _labels()
    rng = np.random.default_rng(7)
    centres = rng.normal(size=(labels.max() + 2, 16))
    feats = centres[np.where(labels >= 0, labels, labels.max() + 1)] + noise * rng.normal(size=(len(labels), 16))
    feats[labels < 0] = rng.normal(size=((labels < 0).sum(), 16))
    unit = feats / np.linalg.norm(feats, axis=1, keepdims=True)
    names = tuple(f"{i}.jpg" for i in range(len(labels)))
    info = RecognitionLabels(names, np.zeros((len(labels), 4)), labels, all_same_identity_pairs(labels))
    distractors = np.flatnonzero(labels < 0)
    ours = rank1_with(unit @ unit.T, labels, lambda a: distractors)
    assert ours == pytest.approx(rank1(info, feats))
    assert 0.0 < ours < 1.0  # neither trivial: the check compares something


def test_rank1_with_no_competitor_is_a_hit_and_with_a_copy_of_the_mate_a_miss():
    labels = np.array([0, 0, -1])
    sims = np.array([[1.0, 0.5, 0.5], [0.5, 1.0, 0.2], [0.5, 0.2, 1.0]])
    assert rank1_with(sims, labels, lambda a: np.array([], dtype=np.int64)) == 1.0
    # probe 0: the distractor ties its mate (a miss); probe 1: the mate wins
    assert rank1_with(sims, labels, lambda a: np.array([2])) == 0.5
