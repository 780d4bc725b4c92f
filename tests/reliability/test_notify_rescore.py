"""Notifications by email through a real SMTP server (aiosmtpd on loopback) and in the app; a rescore of a whole
track that survives the queue going down halfway and keeps the leaderboard whole while it runs."""

from __future__ import annotations

import email

import pytest
from aiosmtpd.controller import Controller
from arena import states, watchdog
from arena.leaderboard import leaderboard
from arena.models import Notification, Submission
from arena.services import admin, teams
from arena_testkit import load_challenge, make_user, run_worker, token_for, upload
from reliability_kit import free_port

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.timeout(120)]


class Sink:
    """An SMTP server's handler that keeps every message."""

    def __init__(self):
        self.messages: list[email.message.Message] = []

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content)
        message["X-Rcpt"] = ",".join(envelope.rcpt_tos)
        self.messages.append(message)
        return "250 OK"


@pytest.fixture
def smtp(app):
    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=controller.port, MAIL_FROM="arena@test")
    yield sink
    controller.stop()


@pytest.fixture
def two_members(app, db, data):
    challenge = load_challenge(db, data, per_day=100, total=100, in_flight=100)
    captain = make_user(db, "cap@example.com")
    team = teams.create_team(db, captain, challenge, "Team", True)
    mate = make_user(db, "mate@example.com")
    teams.join_team(db, mate, challenge, team.invite_code, True)
    return challenge, token_for(db, captain)


def _about(sink: Sink, sub_id: int) -> list[email.message.Message]:
    return [m for m in sink.messages if f"Submission {sub_id}" in m["Subject"]]


@pytest.mark.parametrize(
    ("content", "words"),
    [("good", "is scored: ap50 1.0000"), ("bad", "failed: ")],
    ids=["finished", "failed"],
)
def test_every_member_is_mailed_and_notified_when_a_submission_ends(
    app, client, db, data, smtp, two_members, content, words
):
    _challenge, headers = two_members
    body = data.detection_csv() if content == "good" else b"nope.jpg,1,2,3,4,face,0.5\n"
    sub_id = upload(client, headers, body).get_json()["id"]
    run_worker(app)
    mails = _about(smtp, sub_id)
    assert sorted(m["X-Rcpt"] for m in mails) == ["cap@example.com", "mate@example.com"]
    assert all(words in m.get_payload() and m["From"] == "arena@test" for m in mails)
    notes = db.query(Notification).filter(Notification.link == f"/submissions/{sub_id}").all()
    assert len(notes) == 2 and all(words in n.message for n in notes)


def test_a_submission_failed_by_the_watchdog_is_mailed_too(app, client, db, data, smtp, two_members):
    import datetime as dt

    _challenge, headers = two_members
    sub_id = upload(client, headers, data.detection_csv()).get_json()["id"]
    with app.app_context():
        for _ in range(app.config["MAX_ATTEMPTS"]):
            db.expire_all()
            sub = db.get(Submission, sub_id)
            if sub.state == states.RUNNING:
                sub.state = states.QUEUED
                db.commit()
            states.claim(db, sub_id)
        db.get(Submission, sub_id).heartbeat_at = dt.datetime(2000, 1, 1)
        db.commit()
        assert watchdog.sweep(db).failed == 1
    mails = _about(smtp, sub_id)
    assert len(mails) == 2 and all("not counted against you" in m.get_payload() for m in mails)


def test_a_mail_server_that_is_down_does_not_stop_the_scoring(app, client, db, data, two_members):
    app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=free_port())  # nobody listens there
    _challenge, headers = two_members
    sub_id = upload(client, headers, data.detection_csv()).get_json()["id"]
    run_worker(app)
    db.expire_all()
    assert db.get(Submission, sub_id).state == states.FINISHED
    assert db.query(Notification).filter(Notification.link == f"/submissions/{sub_id}").count() == 2


# --------------------------------------------------------------------------------------------------- rescoring


def _board(db, challenge) -> list[tuple[str, float]]:
    db.expire_all()
    phase, track = challenge.phases[0], challenge.tracks[0]
    return [(row.name, round(row.score, 6)) for row in leaderboard(db, phase, track, "public").rows]


def test_a_rescore_interrupted_by_the_queue_going_down_resumes_and_the_board_stays_whole(
    app, client, db, data, redis_server
):
    challenge = load_challenge(db, data, per_day=100, total=100, in_flight=100)
    for i, quality in enumerate([1.0, 0.5, 0.5]):
        user = make_user(db, f"u{i}@example.com")
        teams.create_team(db, user, challenge, f"Team {i}", True)
        upload(client, token_for(db, user), data.detection_csv(quality))
    run_worker(app)
    board = _board(db, challenge)
    assert len(board) == 3
    redis_server.stop()  # the queue dies just as the organizer asks for a rescore
    with app.app_context():
        assert admin.rescore_track(db, challenge.tracks[0], reason="labels fixed") == 3
    db.expire_all()
    assert {s.state for s in db.query(Submission)} == {states.RESCORING}
    assert _board(db, challenge) == board  # every team still on the board with its last score
    redis_server.start()
    with app.app_context():
        assert watchdog.sweep(db).enqueued == 3  # the rescore resumes: nothing is left behind
    run_worker(app)
    db.expire_all()
    assert {s.state for s in db.query(Submission)} == {states.FINISHED}
    assert {s.attempts for s in db.query(Submission)} == {2}
    assert _board(db, challenge) == board
