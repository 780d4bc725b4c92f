"""The watchdog's sweep, branch by branch, on PostgreSQL and a Redis of the test's own: the database row is the
source of truth; a silent run is requeued a bounded number of times, then failed, refunded and notified; what the
queue lost is enqueued again; nothing stays `running` forever."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from arena import limits, states, watchdog
from arena.models import AuditEvent, Notification, Submission, utcnow
from arena_testkit import run_worker, upload
from reliability_kit import reloaded
from rq.job import Job

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.timeout(120)]
LONG_AGO = dt.datetime(2000, 1, 1)


def _running(app, db, client, data, headers, *, attempts: int, heartbeat) -> int:
    """A submission claimed by a 'worker' that then went silent (heartbeat at `heartbeat`)."""
    sub_id = upload(client, headers, data.detection_csv()).get_json()["id"]
    with app.app_context():
        for _ in range(attempts):
            sub = reloaded(db, sub_id)
            if sub.state == states.RUNNING:
                sub.state = states.QUEUED
                db.commit()
            assert states.claim(db, sub_id) == "queued"
    sub = reloaded(db, sub_id)
    sub.heartbeat_at = heartbeat
    db.commit()
    return sub_id


def _sweep(app, db, **kw):
    with app.app_context():
        return watchdog.sweep(db, **kw)


def test_a_running_submission_with_a_fresh_heartbeat_is_left_alone(app, client, db, data, team):
    sub_id = _running(app, db, client, data, team[2], attempts=1, heartbeat=utcnow())
    assert _sweep(app, db).as_dict() == {"requeued": 0, "failed": 0, "enqueued": 0, "redis_ok": True}
    assert reloaded(db, sub_id).state == states.RUNNING


def test_a_silent_run_below_the_bound_is_requeued_and_scored_once(app, client, db, data, team):
    sub_id = _running(app, db, client, data, team[2], attempts=1, heartbeat=LONG_AGO)
    result = _sweep(app, db)
    assert (result.requeued, result.failed) == (1, 0)
    sub = reloaded(db, sub_id)
    assert sub.state == states.QUEUED and sub.job_id.endswith(f"submission-{sub_id}-2")
    run_worker(app)
    sub = reloaded(db, sub_id)
    assert sub.state == states.FINISHED and sub.attempts == 2 and sub.public_score == pytest.approx(1.0)
    finished = db.query(AuditEvent).filter(AuditEvent.object_id == sub_id, AuditEvent.action == "submission.state")
    assert [e.after["state"] for e in finished].count("finished") == 1


def test_a_silent_run_at_the_bound_fails_with_a_message_is_refunded_and_the_team_told(app, client, db, data, team):
    challenge, team_row, headers = team
    sub_id = _running(app, db, client, data, headers, attempts=app.config["MAX_ATTEMPTS"], heartbeat=LONG_AGO)
    before = limits.usage(db, [team_row.id], challenge.phases[0].id, utcnow())
    result = _sweep(app, db)
    assert (result.requeued, result.failed) == (0, 1)
    sub = reloaded(db, sub_id)
    assert sub.state == states.FAILED and sub.finished_at is not None
    assert "stopped 2 times" in sub.error and "not counted against you" in sub.error
    after = limits.usage(db, [team_row.id], challenge.phases[0].id, utcnow())
    assert (before.total, after.total) == (1, 0)
    notes = db.query(Notification).all()
    assert len(notes) == 1 and f"Submission {sub_id} failed" in notes[0].message


def test_a_run_whose_rq_job_failed_is_requeued_before_its_heartbeat_goes_stale(app, client, db, data, team):
    """RQ saw the work-horse die (job failed) while the row still says running: no need to wait for staleness."""
    sub_id = _running(app, db, client, data, team[2], attempts=1, heartbeat=utcnow() - dt.timedelta(seconds=1.5))
    from arena.queue import connect

    with app.app_context():
        job = Job.fetch(reloaded(db, sub_id).job_id, connection=connect(app))
        job.set_status("failed")
    assert _sweep(app, db).requeued == 1
    assert reloaded(db, sub_id).state == states.QUEUED


@pytest.mark.parametrize(
    ("age_seconds", "expected"), [(0, 0), (5, 1)], ids=["within-the-grace-left-alone", "older-enqueued"]
)
def test_a_stored_upload_that_never_reached_the_queue_is_enqueued_after_the_grace(
    app, client, db, data, team, redis_server, age_seconds, expected
):
    redis_server.stop()
    response = upload(client, team[2], data.detection_csv())
    assert response.status_code == 202 and response.get_json()["state"] == states.SUBMITTED
    sub_id = response.get_json()["id"]
    redis_server.start()
    sub = reloaded(db, sub_id)
    sub.created_at = utcnow() - dt.timedelta(seconds=age_seconds)
    db.commit()
    assert _sweep(app, db).enqueued == expected
    assert reloaded(db, sub_id).state == (states.QUEUED if expected else states.SUBMITTED)


@pytest.mark.parametrize("lost", ["job-deleted", "redis-restarted", "no-live-job-left-alone"])
def test_a_queued_submission_whose_job_is_gone_is_enqueued_again(app, client, db, data, team, redis_server, lost):
    from arena.queue import connect

    sub_id = upload(client, team[2], data.detection_csv()).get_json()["id"]
    if lost == "job-deleted":
        with app.app_context():
            Job.fetch(reloaded(db, sub_id).job_id, connection=connect(app)).delete()
    elif lost == "redis-restarted":
        redis_server.stop()
        redis_server.start()
    assert _sweep(app, db).enqueued == (0 if lost == "no-live-job-left-alone" else 1)
    run_worker(app)
    assert reloaded(db, sub_id).state == states.FINISHED


def test_with_redis_down_a_silent_run_is_still_handled_and_enqueued_when_it_is_back(
    app, client, db, data, team, redis_server
):
    sub_id = _running(app, db, client, data, team[2], attempts=1, heartbeat=LONG_AGO)
    redis_server.stop()
    result = _sweep(app, db)
    assert (result.requeued, result.redis_ok) == (1, False)
    assert reloaded(db, sub_id).state == states.QUEUED
    redis_server.start()
    assert _sweep(app, db).enqueued == 1
    run_worker(app)
    assert reloaded(db, sub_id).state == states.FINISHED


def test_two_watchdogs_never_requeue_the_same_run_twice(app, client, db, data, team):
    """Each move is a conditional UPDATE on the state and heartbeat the sweep saw: the second one finds nothing."""
    sub_id = _running(app, db, client, data, team[2], attempts=1, heartbeat=LONG_AGO)
    from arena.db import new_session

    with app.app_context():
        other = new_session()  # a second watchdog, which read the row before the first one moved it
        try:
            seen_by_other = other.get(Submission, sub_id)
            assert watchdog._move(db, reloaded(db, sub_id), states.QUEUED, LONG_AGO, "first") is True
            db.commit()
            assert watchdog._move(other, seen_by_other, states.QUEUED, LONG_AGO, "second") is False
        finally:
            other.close()
    assert reloaded(db, sub_id).state == states.QUEUED
    requeues = db.query(AuditEvent).filter(AuditEvent.object_id == sub_id, AuditEvent.reason.in_(["first", "second"]))
    assert [e.reason for e in requeues] == ["first"]


def test_nothing_stays_running_forever(app, client, db, data, team):
    """Run the sweep until it settles: a run that never beats again ends failed after MAX_ATTEMPTS."""
    sub_id = _running(app, db, client, data, team[2], attempts=1, heartbeat=LONG_AGO)
    for _ in range(app.config["MAX_ATTEMPTS"] + 1):
        _sweep(app, db)
        sub = reloaded(db, sub_id)
        if sub.state == states.QUEUED:  # a worker claims it and dies at once, never beating
            with app.app_context():
                states.claim(db, sub_id)
            sub = reloaded(db, sub_id)
            sub.heartbeat_at = LONG_AGO
            db.commit()
    assert reloaded(db, sub_id).state == states.FAILED


@pytest.fixture
def two_failing_updates(pg_engine):
    """A trigger that makes the next two UPDATEs of submission fail (a sequence counts them outside any
    transaction), then lets them through: a database hiccup."""
    from sqlalchemy import text

    with pg_engine.begin() as conn:
        conn.execute(text("CREATE SEQUENCE hiccup_seq"))
        conn.execute(
            text(
                "CREATE FUNCTION hiccup() RETURNS trigger AS $$ BEGIN "
                "IF nextval('hiccup_seq') <= 2 THEN RAISE EXCEPTION 'hiccup (test)'; END IF; RETURN NEW; END $$ "
                "LANGUAGE plpgsql"
            )
        )
        conn.execute(text("CREATE TRIGGER hiccup BEFORE UPDATE ON submission FOR EACH ROW EXECUTE FUNCTION hiccup()"))
    yield
    with pg_engine.begin() as conn:
        conn.execute(text("SET LOCAL lock_timeout = '20s'"))
        conn.execute(text("DROP TRIGGER hiccup ON submission"))
        conn.execute(text("DROP FUNCTION hiccup()"))
        conn.execute(text("DROP SEQUENCE hiccup_seq"))


def test_a_heartbeat_that_fails_once_keeps_beating(app, client, db, data, team, request):
    """Else a database hiccup would silence a live run and the watchdog would requeue it."""
    from arena.jobs import _Heartbeat
    from reliability_kit import wait_for

    sub_id = upload(client, team[2], data.detection_csv()).get_json()["id"]
    assert reloaded(db, sub_id).heartbeat_at is None
    db.rollback()
    request.getfixturevalue("two_failing_updates")
    with app.app_context(), _Heartbeat(sub_id, 0.05):

        def _beaten():
            beat = reloaded(db, sub_id).heartbeat_at
            db.rollback()
            return beat is not None

        wait_for(_beaten, 20, "a heartbeat after two failed ones")


def test_a_fork_waits_for_a_running_sweep_to_end():
    """The forking worker forks its work-horse while the watchdog thread may be mid-sweep, holding locks (stderr's
    buffer, a pool's) that the child would inherit taken. With the hook in force, os.fork() waits for the sweep."""
    import os
    import threading

    from arena import watchdog

    watchdog.hold_sweeps_across_forks()
    in_sweep, sweep_ended = threading.Event(), threading.Event()

    def _sweep():
        with watchdog.SWEEP_LOCK:
            in_sweep.set()
            time.sleep(0.3)  # a fork asked for now must wait: not a timing assertion, the order is what is checked
            sweep_ended.set()

    thread = threading.Thread(target=_sweep)
    thread.start()
    in_sweep.wait(10)
    pid = os.fork()
    if pid == 0:  # the child: the lock it inherited is free (released by the hook), and the sweep had ended
        os._exit(0 if sweep_ended.is_set() and watchdog.SWEEP_LOCK.acquire(blocking=False) else 1)
    ended_before_fork_returned = sweep_ended.is_set()
    _, status = os.waitpid(pid, 0)
    thread.join(10)
    assert ended_before_fork_returned
    assert os.waitstatus_to_exitcode(status) == 0
    assert watchdog.SWEEP_LOCK.acquire(blocking=False)  # the parent's lock is free again
    watchdog.SWEEP_LOCK.release()
