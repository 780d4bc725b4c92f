"""Integrity comparisons on sketches (arena/jobs/similarity.py): each submission's predictions on a secret sample of
test images are stored once and screen every later pair, so a scored submission is parsed in full once however
many others it is compared with, and the flags are those of the full comparison."""

from __future__ import annotations

import numpy as np
import pytest
from arena.jobs import similarity
from arena.models import IntegrityFlag, Submission
from arena_testkit import run_worker, upload

from tests.platform.test_integrity import _features

pytestmark = pytest.mark.redis


@pytest.fixture
def small_sketch(monkeypatch):
    """Sketches of 6 images (the tiny test sets have fewer than SKETCH_IMAGES): the screening is what decides."""
    monkeypatch.setattr(similarity, "SKETCH_IMAGES", 6)


@pytest.fixture
def full_parses(monkeypatch):
    """The submission files parsed in full by integrity comparisons, by stored path."""
    parsed: list[str] = []
    real = similarity.Comparer._parse

    def counting(self, sub):
        parsed.append(sub.stored_path)
        return real(self, sub)

    monkeypatch.setattr(similarity.Comparer, "_parse", counting)
    return parsed


def _flags(db):
    db.expire_all()
    return db.query(IntegrityFlag).order_by(IntegrityFlag.id).all()


def test_each_submission_is_parsed_in_full_once_however_many_it_is_compared_with(
    app, client, db, data, three_teams, small_sketch, full_parses
):
    ids = []
    for seed in range(5):  # independent models, the three teams in turn: each compared with the others' earlier ones
        headers = three_teams[seed % 3]
        ids.append(upload(client, headers, _features(data, seed + 10), track="recognition").get_json()["id"])
        run_worker(app)
    paths = [db.get(Submission, i).stored_path for i in ids]
    assert sorted(full_parses) == sorted(paths)  # every file once: the later checks read the stored sketches
    assert not _flags(db)
    sketches = list((similarity.storage.root(app.config["STORAGE_DIR"]) / similarity.SKETCH_FOLDER).glob("*.npz"))
    assert len(sketches) == len(ids)


def test_the_sample_is_seeded_by_the_secret_key_and_the_labels(app, db, challenge):
    track = next(t for t in challenge.tracks if t.kind == "recognition")
    sub = Submission(track=track, sha256="0" * 64, stored_path="x")
    samples = {}
    for secret in ("one", "one", "two"):
        comparer = similarity.Comparer(sub, app.config["STORAGE_DIR"], secret)
        comparer._prepare()
        samples.setdefault(secret, []).append(comparer.sample)
    assert np.array_equal(*samples["one"])
    n = len(comparer.labels.image_names)
    if n > similarity.SKETCH_IMAGES:
        assert not np.array_equal(samples["one"][0], samples["two"][0])
    assert len(samples["two"][0]) == min(n, similarity.SKETCH_IMAGES)


@pytest.mark.parametrize("seed", range(20))
def test_screening_never_hides_a_pair_the_full_statistic_would_flag(seed):
    """The screened statistic (a sample of 512 of 20,000 images) stays within SCREEN_MARGIN of the full one for
    copies with any amount of noise: a pair the full rule flags (>= 0.9) is never screened out (< 0.6)."""
    rng = np.random.default_rng(seed)
    n, dim = 20_000, 32
    a = rng.normal(size=(n, dim))
    noise = rng.uniform(0, 3)
    b = a + noise * rng.normal(size=(n, dim)) * (rng.random((n, 1)) < rng.random())  # noise on a share of images
    full = similarity.feature_agreement(a, b)[0]
    sample = np.sort(rng.choice(n, size=similarity.SKETCH_IMAGES, replace=False))
    screened = similarity.feature_agreement(a[sample].astype(np.float32), b[sample].astype(np.float32))[0]
    assert abs(screened - full) < similarity.SCREEN_MARGIN
