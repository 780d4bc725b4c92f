"""Faults with real processes: an `arena worker` SIGKILLed mid-score (with its work-horse), and the test's own
redis-server killed and restarted while uploads go on. PostgreSQL is the source of truth throughout."""

from __future__ import annotations

import time

import pytest
from arena import limits, states
from arena.models import AuditEvent, Notification, Submission, utcnow
from arena_testkit import upload
from reliability_kit import reloaded, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow, pytest.mark.timeout(240)]
SLOW_SCORING = {"ARENA_TEST_SCORING_DELAY_SECONDS": "60"}  # a run that only ends by being killed


def _finished_events(db, sub_id) -> int:
    db.expire_all()
    events = db.query(AuditEvent).filter(AuditEvent.object_id == sub_id, AuditEvent.action == "submission.state")
    return [e.after["state"] for e in events].count(states.FINISHED)


def _kill_mid_score(db, workers, sub_id: int, attempt: int, *extra: str) -> None:
    """Start a slow worker, wait until it is scoring attempt `attempt` of the submission, SIGKILL it."""
    proc = workers.start("--watchdog-every", "0", *extra, **SLOW_SCORING)
    wait_for(
        lambda: (s := reloaded(db, sub_id)).state == states.RUNNING and s.attempts == attempt,
        60,
        lambda: f"a worker to start scoring (attempt {attempt}); worker log:\n{workers.log(proc)}",
    )
    workers.kill(proc)


@pytest.mark.parametrize("kind", [(), ("--simple",)], ids=["forking-worker-and-its-horse", "simple-worker"])
def test_a_worker_killed_mid_score_is_replaced_and_the_submission_scored_once(
    app, client, db, data, team, workers, kind
):
    sub_id = upload(client, team[2], data.detection_csv()).get_json()["id"]
    _kill_mid_score(db, workers, sub_id, 1, *kind)
    # another worker, whose watchdog thread finds the silent run, requeues it, and which then scores it
    survivor = workers.start("--watchdog-every", "0.5", *kind)
    wait_for(
        lambda: reloaded(db, sub_id).state == states.FINISHED,
        90,
        lambda: f"the rescue; worker log:\n{workers.log(survivor)}",
    )
    sub = reloaded(db, sub_id)
    assert sub.attempts == 2 and sub.public_score == pytest.approx(1.0) and sub.error is None
    assert _finished_events(db, sub_id) == 1


def test_a_submission_whose_workers_keep_dying_fails_with_a_message_and_is_refunded(
    app, client, db, data, team, workers
):
    challenge, team_row, headers = team
    sub_id = upload(client, headers, data.detection_csv()).get_json()["id"]
    from arena import watchdog

    for attempt in range(1, app.config["MAX_ATTEMPTS"] + 1):
        _kill_mid_score(db, workers, sub_id, attempt)

        def _swept():
            with app.app_context():
                watchdog.sweep(db)
            return reloaded(db, sub_id).state != states.RUNNING

        wait_for(_swept, 30, "the watchdog to notice the dead worker", every=0.5)
    sub = reloaded(db, sub_id)
    assert sub.state == states.FAILED and "stopped 2 times" in sub.error
    assert limits.usage(db, [team_row.id], challenge.phases[0].id, utcnow()).total == 0
    assert any(f"Submission {sub_id} failed" in n.message for n in db.query(Notification))


def test_redis_restarted_while_uploads_continue_loses_nothing(app, client, db, data, team, workers, redis_server):
    headers = team[2]
    worker = workers.start("--watchdog-every", "0.5")
    ids = []

    def _upload(n: int) -> None:
        for _ in range(n):
            response = upload(client, headers, data.detection_csv())
            assert response.status_code == 202, response.get_json()
            ids.append(response.get_json()["id"])

    _upload(3)
    redis_server.stop()  # a crash: every queued job is gone with it
    _upload(3)
    assert {reloaded(db, i).state for i in ids[3:]} == {states.SUBMITTED}
    assert client.get("/readyz").status_code == 200
    redis_server.start()
    _upload(3)

    def _all_finished():
        db.expire_all()
        return all(reloaded(db, i).state == states.FINISHED for i in ids)

    wait_for(_all_finished, 120, lambda: f"all 9 submissions scored; worker log:\n{workers.log(worker)}", every=0.5)
    assert len(ids) == 9 and db.query(Submission).count() == 9
    assert [_finished_events(db, i) for i in ids] == [1] * 9


@pytest.mark.parametrize("kind", [(), ("--simple",)], ids=["forking-worker", "simple-worker"])
def test_a_worker_keeps_working_when_redis_dies_under_a_running_job(
    app, client, db, data, team, workers, redis_server, kind
):
    """Redis crashes while the worker is scoring: the worker process must outlive the outage (RQ's own loop quits on
    a connection error outside its dequeue), and the run is finished or requeued, then scored, with no other worker."""
    headers = team[2]
    worker = workers.start("--watchdog-every", "0.5", *kind, ARENA_TEST_SCORING_DELAY_SECONDS="2")
    first = upload(client, headers, data.detection_csv()).get_json()["id"]
    wait_for(lambda: reloaded(db, first).state == states.RUNNING, 60, lambda: f"scoring; log:\n{workers.log(worker)}")
    redis_server.stop()
    time.sleep(4)  # the job's scoring ends while Redis is down: RQ's bookkeeping calls fail
    redis_server.start()
    second = upload(client, headers, data.detection_csv()).get_json()["id"]
    wait_for(
        lambda: all(reloaded(db, i).state == states.FINISHED for i in (first, second)),
        120,
        lambda: f"both scored by the same worker; worker log:\n{workers.log(worker)}",
        every=0.5,
    )
    assert worker.poll() is None, workers.log(worker)
    assert [_finished_events(db, i) for i in (first, second)] == [1, 1]
