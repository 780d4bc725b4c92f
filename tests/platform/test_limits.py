"""Limits per day (UTC), in total and in flight: checked under the team lock, refunded for failed and cancelled."""

from __future__ import annotations

import threading

import pytest
from arena import limits, states
from arena.errors import LimitReached
from arena.models import Submission
from arena.services import teams
from arena_testkit import load_challenge, make_user, run_worker, token_for, upload

pytestmark = pytest.mark.redis


@pytest.fixture
def setup(app, db, data):
    challenge = load_challenge(db, data, per_day=3, total=4, in_flight=2)
    user = make_user(db, "cap@example.com")
    team = teams.create_team(db, user, challenge, "Team", True)
    return challenge, user, team, token_for(db, user)


def _set_state(db, sub_id, state):
    db.expire_all()
    db.get(Submission, sub_id).state = state
    db.commit()


def test_in_flight_limit_refuses_a_third_upload_while_two_wait(client, data, setup):
    *_, headers = setup
    assert upload(client, headers, data.detection_csv()).status_code == 202
    assert upload(client, headers, data.detection_csv()).status_code == 202
    third = upload(client, headers, data.detection_csv())
    assert third.status_code == 429 and "at most 2 at once" in third.get_json()["message"]


def test_daily_limit_counts_finished_ones_and_resets_at_utc_midnight(app, client, db, data, setup):
    _challenge, _user, team, headers = setup
    for _ in range(3):
        assert upload(client, headers, data.detection_csv()).status_code == 202
        run_worker(app)
    refused = upload(client, headers, data.detection_csv())
    assert refused.status_code == 429 and "daily limit" in refused.get_json()["message"]
    import datetime as dt

    for sub in db.query(Submission).all():
        sub.created_at -= dt.timedelta(days=1)
    db.commit()
    assert upload(client, headers, data.detection_csv()).status_code == 202


def test_total_limit(app, client, db, data, setup):
    challenge, _user, team, headers = setup
    phase = challenge.phases[0]
    phase.max_per_day = 100
    db.commit()
    for _ in range(4):
        assert upload(client, headers, data.detection_csv()).status_code == 202
        run_worker(app)
    refused = upload(client, headers, data.detection_csv())
    assert refused.status_code == 429 and "limit of 4 submissions" in refused.get_json()["message"]


@pytest.mark.parametrize("refunded_state", [states.FAILED, states.CANCELLED])
def test_failed_and_cancelled_submissions_never_count(client, db, data, setup, refunded_state):
    *_, headers = setup
    for _ in range(2):
        sub_id = upload(client, headers, data.detection_csv()).get_json()["id"]
        _set_state(db, sub_id, refunded_state)
    for _ in range(2):
        assert upload(client, headers, data.detection_csv()).status_code == 202


def test_a_bad_file_is_refunded(app, client, db, data, setup):
    challenge, _user, team, headers = setup
    for _ in range(3):
        upload(client, headers, b"garbage\n")
        run_worker(app)
    assert limits.usage(db, [team.id], challenge.phases[0].id, _now()).today == 0


def _now():
    from arena.models import utcnow

    return utcnow()


def test_limits_hold_when_many_uploads_arrive_at_once(app, db, data, setup):
    """Eight threads upload at once with their own sessions; the in-flight cap of 2 admits exactly two."""
    challenge, user, team, headers = setup
    results = []
    barrier = threading.Barrier(8)

    def one():
        client = app.test_client()
        barrier.wait()
        results.append(upload(client, headers, data.detection_csv()).status_code)

    threads = [threading.Thread(target=one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [202, 202] + [429] * 6
    db.expire_all()
    assert db.query(Submission).count() == 2


def test_check_limits_raises_with_extra_zero_only_past_the_limit(db, setup):
    challenge, _user, team, _headers = setup
    phase = challenge.phases[0]
    limits.check_limits(db, [team.id], phase, _now(), extra=0)
    phase.max_in_flight = 0
    with pytest.raises(LimitReached):
        limits.check_limits(db, [team.id], phase, _now(), extra=1)
