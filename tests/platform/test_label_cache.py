"""Hidden labels are parsed once per worker process, keyed by their sha256 (arena.jobs: _cached, ScoringWorker)."""

from __future__ import annotations

import os
from collections import OrderedDict

import pytest
from arena import jobs
from arena.models import Submission
from arena_testkit import upload

from scorer.formats import LabelError


@pytest.fixture
def empty_cache(monkeypatch):
    cache = OrderedDict()
    monkeypatch.setattr(jobs, "_LABEL_CACHE", cache)
    return cache


def test_a_label_file_is_parsed_once_per_key(empty_cache, tmp_path):
    calls = []
    first = jobs._cached(("test_info", "a" * 64), tmp_path / "x", lambda p: calls.append(p) or len(calls))
    again = jobs._cached(("test_info", "a" * 64), tmp_path / "x", lambda p: calls.append(p) or len(calls))
    other = jobs._cached(("test_info", "b" * 64), tmp_path / "x", lambda p: calls.append(p) or len(calls))
    assert (first, again, other) == (1, 1, 2) and len(calls) == 2


def test_the_cache_is_bounded_and_drops_the_least_recently_used(empty_cache, tmp_path):
    for i in range(jobs.LABEL_CACHE_SIZE):
        jobs._cached(("kind", str(i)), tmp_path, lambda _p, i=i: i)
    jobs._cached(("kind", "0"), tmp_path, lambda _p: pytest.fail("key 0 is cached"))  # now the most recent
    jobs._cached(("kind", "new"), tmp_path, lambda _p: "new")
    assert len(empty_cache) == jobs.LABEL_CACHE_SIZE
    assert ("kind", "1") not in empty_cache and ("kind", "0") in empty_cache


def test_a_parse_error_is_raised_each_time_and_never_cached(empty_cache, tmp_path):
    def bad(_path):
        raise LabelError("broken")

    for _ in range(2):
        with pytest.raises(LabelError, match="broken"):
            jobs._cached(("test_info", "c" * 64), tmp_path, bad)
    assert not empty_cache


@pytest.mark.redis
def test_the_verification_pairs_are_keyed_by_the_test_list_they_are_read_against(app, db, challenge, empty_cache):
    from arena.models import Track

    track = db.query(Track).filter_by(kind="recognition").one()
    sub = Submission(team_id=None, phase_id=challenge.phases[0].id, track_id=track.id)
    db.add(sub)
    db.commit()
    with app.app_context():
        labels, pairs = jobs._hidden_labels(sub, app.config["STORAGE_DIR"])
    (info_sha,) = [label.sha256 for label in track.labels if label.kind == "test_info"]
    assert pairs is None and list(empty_cache) == [("test_info", info_sha)]
    assert len(labels.image_names) == 30


@pytest.mark.redis
def test_a_forking_worker_parses_each_label_file_once_in_its_own_process(
    app, client, db, data, team_user, empty_cache, monkeypatch, tmp_path
):
    """The work-horse of each job is a fresh fork: its own cache would die with it. The worker process parses
    the labels before forking (warm_labels), so two jobs parse the test info once, in the worker process."""
    from arena.watchdog import run_worker

    parses = tmp_path / "parses.txt"
    real_reader = jobs.read_recognition_labels

    def recording_reader(path):
        with open(parses, "a") as out:
            out.write(f"{os.getpid()}\n")
        return real_reader(path)

    monkeypatch.setattr(jobs, "read_recognition_labels", recording_reader)
    _user, headers, _team = team_user
    ids = [
        upload(client, headers, data.features(good), track="recognition", name=f"{good}.bin").get_json()["id"]
        for good in (True, False)
    ]
    run_worker(app, burst=True, watchdog_every=0)  # the production worker: a forked work-horse per job
    db.expire_all()
    assert [db.get(Submission, i).state for i in ids] == ["finished", "finished"]
    assert parses.read_text().split() == [str(os.getpid())], "parsed once, by the worker process, not per job"
