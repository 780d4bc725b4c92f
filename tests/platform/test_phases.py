"""The phase's state machine (arena/phases.py): scheduled -> open -> closed -> private revealed. Closing never
reveals; reveal is an audited organizer action or the bundle's reveal time; closed phases take no uploads (late ones
only where allowed: scored, never ranked) and no final picks; the automatic final choice is recorded and shown;
disqualified and failed submissions free their final-pick slot and show no scores."""

from __future__ import annotations

import datetime as dt

import pytest
from arena import phases, states
from arena.leaderboard import leaderboard
from arena.models import AuditEvent, Notification, Phase, Submission
from arena.services import teams
from arena_testkit import PASSWORD, finished_submission, make_user, run_worker, token_for, upload

pytestmark = pytest.mark.redis

BOARD = "/api/v1/challenges/tiny/phases/dev/tracks/detection/leaderboard"
NOW = dt.datetime(2030, 6, 1)


def _phase(**kw) -> Phase:
    values = {
        "starts_at": dt.datetime(2030, 1, 1),
        "ends_at": dt.datetime(2031, 1, 1),
        "closed": False,
        "private_revealed": False,
        "reveal_at": None,
        "allow_late": False,
    }
    values.update(kw)
    return Phase(**values)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"starts_at": dt.datetime(2030, 7, 1)}, phases.SCHEDULED),
        ({}, phases.OPEN),
        ({"closed": True}, phases.CLOSED),
        ({"ends_at": dt.datetime(2030, 5, 1)}, phases.CLOSED),
        ({"closed": True, "private_revealed": True}, phases.REVEALED),
        ({"ends_at": dt.datetime(2030, 5, 1), "reveal_at": dt.datetime(2030, 5, 2)}, phases.REVEALED),
        ({"ends_at": dt.datetime(2030, 5, 1), "reveal_at": dt.datetime(2030, 7, 1)}, phases.CLOSED),
        # a revealed flag on a phase that is not closed reveals nothing (the organizer action refuses it anyway)
        ({"private_revealed": True}, phases.OPEN),
    ],
)
def test_the_phase_state_follows_dates_flags_and_reveal_time(changes, expected):
    phase = _phase(**changes)
    assert phases.state(phase, NOW) == expected
    assert phases.private_visible(phase, NOW) == (expected == phases.REVEALED)
    assert phases.picks_open(phase, NOW) == (expected == phases.OPEN)


@pytest.mark.parametrize("allow_late", [False, True])
@pytest.mark.parametrize("closed", [False, True])
def test_uploads_are_taken_when_open_and_late_only_where_allowed(allow_late, closed):
    phase = _phase(closed=closed, allow_late=allow_late)
    if not closed:
        assert phases.upload_is_late(phase, NOW) is False
    elif allow_late:
        assert phases.upload_is_late(phase, NOW) is True
    else:
        with pytest.raises(phases.Forbidden, match="is closed"):
            phases.upload_is_late(phase, NOW)
    with pytest.raises(phases.Forbidden, match="scheduled"):
        phases.upload_is_late(_phase(starts_at=dt.datetime(2031, 1, 1), ends_at=dt.datetime(2032, 1, 1)), NOW)


@pytest.fixture
def organizer(db):
    return token_for(db, make_user(db, "org@example.com", organizer=True))


def _patch(client, headers, phase, **body):
    return client.patch(f"/api/v1/admin/phases/{phase.id}", headers=headers, json={"reason": "test", **body})


def test_closing_never_reveals_and_reveal_is_an_audited_action_on_a_closed_phase(client, db, challenge, organizer):
    phase, track = challenge.phases[0], challenge.tracks[0]
    team = teams.create_team(db, make_user(db, "a@example.com"), challenge, "Team A", True)
    finished_submission(db, team, phase, track, 0.9, 0.7, 1)
    early = _patch(client, organizer, phase, private_revealed=True)
    assert early.status_code == 409 and "once the phase is closed" in early.get_json()["message"]
    assert client.get(f"{BOARD}?split=private").status_code == 403
    closed = _patch(client, organizer, phase, closed=True)
    assert closed.status_code == 200 and closed.get_json()["state"] == "closed"
    hidden = client.get(f"{BOARD}?split=private")
    assert hidden.status_code == 403 and "until the organizers reveal it" in hidden.get_json()["message"]
    assert client.get("/c/tiny/dev/detection/leaderboard.csv?split=private").status_code == 403
    assert client.get(BOARD).get_json()["phase_state"] == "closed"
    revealed = _patch(client, organizer, phase, private_revealed=True)
    assert revealed.get_json()["state"] == "revealed"
    board = client.get(f"{BOARD}?split=private").get_json()
    assert board["phase_state"] == "revealed" and board["rows"][0]["score"] == 0.7
    actions = [(e.action, e.before, e.after) for e in db.query(AuditEvent).order_by(AuditEvent.id)]
    assert ("phase.state", {"state": "open"}, {"state": "closed"}) in actions
    assert ("phase.reveal", {"state": "closed"}, {"state": "revealed"}) in actions
    reopen = _patch(client, organizer, phase, closed=False)
    db.expire_all()
    assert reopen.status_code == 409 and db.get(Phase, phase.id).closed is True


def test_a_reveal_time_in_the_bundle_reveals_the_closed_phase(client, db, challenge):
    phase = challenge.phases[0]
    phase.starts_at, phase.ends_at = dt.datetime(2000, 1, 1), dt.datetime(2001, 1, 1)
    phase.reveal_at = dt.datetime(2098, 1, 1)
    db.commit()
    assert client.get(f"{BOARD}?split=private").status_code == 403  # ended by time: still hidden
    phase.reveal_at = dt.datetime(2001, 1, 2)
    db.commit()
    assert client.get(f"{BOARD}?split=private").status_code == 200


def test_a_reveal_time_before_the_end_is_refused_by_the_bundle():
    from arena.services.challenges import BundleError, parse_bundle

    text = """
slug: x
title: X
tracks: [{slug: d, kind: detection}]
phases: [{slug: p, starts: 2030-01-01, ends: 2030-02-01, reveal: 2030-01-15}]
"""
    with pytest.raises(BundleError, match=r"phases\[0\]\.reveal"):
        parse_bundle(text)


def test_every_answer_states_the_phase_state(client, db, data, challenge, team_user):
    _user, headers, _team = team_user
    phase = client.get("/api/v1/challenges/tiny").get_json()["phases"][0]
    assert phase["state"] == "open" and phase["late_submissions"] is False
    sub = upload(client, headers, data.detection_csv()).get_json()
    assert sub["phase_state"] == "open" and sub["late"] is False
    page = client.get(f"/submissions/{sub['id']}", headers=headers).get_data(as_text=True)
    assert 'id="phase-state">open<' in page
    assert 'id="phase-state">open<' in client.get("/c/tiny/dev/detection/leaderboard").get_data(as_text=True)


def test_a_closed_phase_shows_no_upload_form_and_no_pick_button(app, client, db, data, challenge, team_user):
    user, headers, _team = team_user
    sub_id = upload(client, headers, data.detection_csv()).get_json()["id"]
    run_worker(app)
    client.post("/login", data={"email": user.email, "password": PASSWORD})

    open_page = client.get("/c/tiny").get_data(as_text=True)
    assert 'id="upload-form"' in open_page
    assert "Pick as a final submission" in client.get(f"/submissions/{sub_id}").get_data(as_text=True)
    challenge.phases[0].closed = True
    db.commit()
    closed_page = client.get("/c/tiny").get_data(as_text=True)
    assert 'id="upload-form"' not in closed_page and "No phase takes submissions now" in closed_page
    assert 'data-phase="dev">closed<' in closed_page
    assert "Pick as a final submission" not in client.get(f"/submissions/{sub_id}").get_data(as_text=True)
    picked = client.post(f"/api/v1/submissions/{sub_id}/final", headers=headers, json={})
    assert picked.status_code == 403 and "closed" in picked.get_json()["message"]


def test_late_submissions_are_scored_on_both_splits_never_ranked_and_shown_on_the_late_view(
    app, client, db, data, challenge, team_user, organizer
):
    _user, headers, team = team_user
    phase, track = challenge.phases[0], challenge.tracks[0]
    on_time = upload(client, headers, data.detection_csv(quality=0.5)).get_json()["id"]
    run_worker(app)
    phase.allow_late = True
    db.commit()
    _patch(client, organizer, phase, closed=True)
    late = upload(client, headers, data.detection_csv())
    assert late.status_code == 202 and late.get_json()["late"] is True
    run_worker(app)
    sub = db.get(Submission, late.get_json()["id"])
    db.refresh(sub)
    assert sub.state == "finished" and set(sub.scores) == {"public", "private"}
    for split in ("public", "private"):
        assert [r.submission_id for r in leaderboard(db, phase, track, split).rows] == [on_time]
    view = client.get(f"{BOARD}?split=late").get_json()
    assert [(r["submission_id"], r["rank"]) for r in view["rows"]] == [(sub.id, None)]
    assert set(view["rows"][0]["scores"]) == {"public"}  # the private split only once revealed
    page = client.get("/c/tiny/dev/detection/leaderboard?split=late").get_data(as_text=True)
    assert "never ranked" in page and "Alpha" in page
    pick = client.post(f"/api/v1/submissions/{sub.id}/final", headers=headers, json={})
    assert pick.status_code == 403  # picks are closed with the phase, late or not
    _patch(client, organizer, phase, private_revealed=True)
    assert set(client.get(f"{BOARD}?split=late").get_json()["rows"][0]["scores"]) == {"public", "private"}
    private = client.get(f"{BOARD}?split=private").get_json()["rows"]
    assert [r["submission_id"] for r in private] == [on_time]
    assert team.id == private[0]["team_id"]


def test_the_automatic_final_choice_is_recorded_at_close_and_shown(client, db, challenge, team_user, organizer):
    _user, headers, team = team_user
    phase, track = challenge.phases[0], challenge.tracks[0]
    other = teams.create_team(db, make_user(db, "b@example.com"), challenge, "Team B", True)
    subs = [finished_submission(db, team, phase, track, 0.1 * i, 0.9 - 0.1 * i, i) for i in range(1, 4)]
    picked = finished_submission(db, other, phase, track, 0.2, 0.2, 5)
    finished_submission(db, other, phase, track, 0.8, 0.8, 6)
    assert client.post(f"/api/v1/submissions/{picked.id}/final", json={}, headers=token_for(db, other.members[0].user))
    _patch(client, organizer, phase, closed=True)
    auto = {s.id for s in db.query(Submission).filter(Submission.final_auto.is_(True))}
    assert auto == {subs[2].id, subs[1].id}  # Alpha picked nothing: its two best public ones; B picked its own
    shown = client.get(f"/api/v1/submissions/{subs[2].id}", headers=headers).get_json()
    assert shown["final_auto"] is True and shown["selected_final"] is False
    assert any(e.action == "finals.automatic" and e.after["team_id"] == team.id for e in db.query(AuditEvent))
    _patch(client, organizer, phase, private_revealed=True)
    rows = {r["team_id"]: r["submission_id"] for r in client.get(f"{BOARD}?split=private").get_json()["rows"]}
    assert rows == {team.id: subs[1].id, other.id: picked.id}


def test_the_watchdog_records_the_finals_of_a_phase_that_ended_by_time(app, db, challenge, team_user):
    from arena.watchdog import sweep

    _user, _headers, team = team_user
    phase, track = challenge.phases[0], challenge.tracks[0]
    sub = finished_submission(db, team, phase, track, 0.5, 0.5, 1)
    sweep(db)
    assert db.get(Submission, sub.id).final_auto is False  # still open
    phase.ends_at = dt.datetime(2024, 1, 2)
    db.commit()
    sweep(db)
    db.expire_all()
    assert db.get(Submission, sub.id).final_auto is True and db.get(Phase, phase.id).finals_recorded is True


def test_a_disqualification_frees_the_final_slot_and_tells_the_team(client, db, challenge, team_user, organizer):
    user, headers, team = team_user
    phase, track = challenge.phases[0], challenge.tracks[0]
    ids = [finished_submission(db, team, phase, track, 0.1 * i, 0.1, i).id for i in range(1, 4)]
    for sub_id in ids[:2]:
        assert client.post(f"/api/v1/submissions/{sub_id}/final", headers=headers, json={}).status_code == 200
    out = client.post(f"/api/v1/admin/submissions/{ids[0]}/disqualify", headers=organizer, json={"reason": "copied"})
    assert out.get_json()["selected_final"] is False
    note = db.query(Notification).filter(Notification.user_id == user.id).order_by(Notification.id.desc()).first()
    assert "disqualified: copied" in note.message and "slot is free" in note.message
    assert client.post(f"/api/v1/submissions/{ids[2]}/final", headers=headers, json={}).status_code == 200
    again = client.post(f"/api/v1/submissions/{ids[0]}/final", headers=headers, json={})
    assert again.status_code == 409 and "disqualified" in again.get_json()["message"]


def test_a_failure_frees_the_final_slot_shows_no_scores_and_tells_the_team(
    app, client, db, data, team_user, monkeypatch
):
    from arena import jobs
    from arena.services.submissions import enqueue

    user, headers, _team = team_user
    sub_id = upload(client, headers, data.detection_csv()).get_json()["id"]
    run_worker(app)
    assert client.post(f"/api/v1/submissions/{sub_id}/final", headers=headers, json={}).status_code == 200
    sub = db.get(Submission, sub_id)
    db.refresh(sub)

    def crash(*_args):
        raise RuntimeError("the scorer broke")

    monkeypatch.setattr(jobs, "_score", crash)  # the rescore crashes: the submission fails (not the labels' doing)
    states.transition(db, sub, states.RESCORING)
    db.commit()
    enqueue(db, sub)
    run_worker(app)
    shown = client.get(f"/api/v1/submissions/{sub_id}", headers=headers).get_json()
    assert shown["state"] == "failed" and shown["selected_final"] is False
    assert shown["public_score"] is None and shown["scores"] is None
    client.post("/login", data={"email": user.email, "password": PASSWORD})
    page = client.get(f"/submissions/{sub_id}").get_data(as_text=True)
    assert 'id="score"' not in page
    note = db.query(Notification).filter(Notification.user_id == user.id).order_by(Notification.id.desc()).first()
    assert "failed" in note.message and "slot is free" in note.message
