"""The quota a team sees (limits.quota) is what the limit check then allows: shown before it bites, on the API,
the challenge page and the submit CLI."""

from __future__ import annotations

import datetime as dt

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
    return challenge, team, token_for(db, user)


def _quota(client, headers, track="detection"):
    response = client.get(f"/api/v1/challenges/tiny/phases/dev/tracks/{track}/quota", headers=headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_the_quota_left_is_what_the_check_then_allows(app, client, db, data, setup):
    challenge, team, headers = setup
    phase = challenge.phases[0]
    for expected_left_today in (3, 2, 1, 0):
        quota = _quota(client, headers)
        assert quota["left_today"] == expected_left_today
        left = limits.quota(db, [team.id], phase, limits_now())
        for extra in range(1, 4):  # the check passes exactly for the uploads the quota says are left
            try:
                limits.check_limits(db, [team.id], phase, limits_now(), extra=extra)
                allowed = True
            except LimitReached:
                allowed = False
            assert allowed == (extra <= left.left), (extra, left)
        response = upload(client, headers, data.detection_csv())
        assert response.status_code == (202 if quota["left"] > 0 else 429)
        run_worker(app)
    assert _quota(client, headers)["used_today"] == 3


def limits_now():
    from arena.models import utcnow

    return utcnow()


def test_in_flight_shows_and_the_tracks_of_a_phase_share_the_quota(client, data, setup):
    *_, headers = setup
    assert upload(client, headers, data.detection_csv()).status_code == 202
    quota = _quota(client, headers, "recognition")
    assert (quota["in_flight"], quota["left_in_flight"], quota["left"]) == (1, 1, 1)
    assert (quota["used_total"], quota["left_total"], quota["total"]) == (1, 3, 4)


def test_a_refunded_failure_shows_up_in_the_quota(app, client, db, setup):
    *_, headers = setup
    assert upload(client, headers, b"not,a,csv\n").status_code == 202
    run_worker(app)
    db.expire_all()
    assert db.query(Submission).one().state == states.FAILED
    quota = _quota(client, headers)
    assert (quota["used_today"], quota["left_today"], quota["in_flight"]) == (0, 3, 0)


def test_the_reset_time_is_the_next_utc_midnight_the_check_counts_from(db, setup):
    challenge, team, _headers = setup
    now = dt.datetime(2024, 3, 5, 23, 59, 30)
    quota = limits.quota(db, [team.id], challenge.phases[0], now)
    assert quota.resets_at == dt.datetime(2024, 3, 6) == limits.day_start(now) + dt.timedelta(days=1)


def test_the_challenge_answer_carries_the_quota_for_a_member_only(client, db, setup):
    *_, headers = setup
    mine = client.get("/api/v1/challenges/tiny", headers=headers).get_json()
    assert {(q["phase"], q["track"]) for q in mine["quota"]} == {("dev", "detection"), ("dev", "recognition")}
    assert client.get("/api/v1/challenges/tiny").get_json().get("quota") is None
    outsider = token_for(db, make_user(db, "out@example.com"))
    assert client.get("/api/v1/challenges/tiny", headers=outsider).get_json().get("quota") is None
    assert client.get("/api/v1/challenges/tiny/phases/dev/tracks/detection/quota", headers=outsider).status_code == 404


def test_the_challenge_page_shows_the_quota_and_the_upload_flash_says_what_is_left(client, data, setup):
    client.post("/login", data={"email": "cap@example.com", "password": "correct horse battery"})
    page = client.get("/c/tiny").get_data(as_text=True)
    assert 'id="quota"' in page and "3 of 3" in page and "4 of 4" in page
    import io

    response = client.post(
        "/c/tiny/submit",
        data={"target": "dev/detection", "file": (io.BytesIO(data.detection_csv()), "d.csv")},
        content_type="multipart/form-data",
        follow_redirects=True,
    )
    assert "Left: 2 today, 3 in total" in response.get_data(as_text=True)
    assert "2 of 3" in client.get("/c/tiny").get_data(as_text=True)
