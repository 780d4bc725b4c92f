"""The watchdog: the database row is the source of truth, the queue only a means to get it scored.

One sweep (safe to run from several processes at once: every change is a conditional UPDATE on the state it saw):

1. a `running` submission whose worker stopped heart-beating (`heartbeat_at` older than WATCHDOG_STALE_SECONDS, or
   its RQ job already failed: RQ saw the work-horse die) goes back to `queued` and onto the queue, at most
   MAX_ATTEMPTS runs in all; after that it fails with a message that says what happened, which refunds it (failed
   submissions never count against the limits) and tells the team;
2. a `submitted` submission older than WATCHDOG_GRACE_SECONDS (its upload was stored but Redis was down) and a
   `queued` or `rescoring` one whose RQ job is gone (Redis restarted without its data, the job was lost or failed)
   are put on the queue again. A job that runs twice scores once (`states.claim`), so a duplicate costs nothing;
3. a phase that closed by time gets its teams' automatic final choices recorded (phases.record_ended_phases).

RQ's own cleanup runs first (`StartedJobRegistry.cleanup`: jobs whose worker heartbeat expired move to the failed
registry). The sweep runs in a thread of every `arena worker` (`start_thread`) and as `arena watchdog --every N`.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from dataclasses import dataclass

from flask import Flask, current_app
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from . import audit, metrics, notify, orphans, phases, standings, states
from .db import new_session
from .models import Submission, utcnow

log = logging.getLogger(__name__)
LIVE_JOB_STATES = frozenset({"queued", "started", "deferred", "scheduled"})
DEAD_JOB_STATES = frozenset({"failed", "stopped", "canceled"})


@dataclass(frozen=True)
class Sweep:
    """What one sweep did: running submissions requeued or failed, waiting ones (re)enqueued, and whether the
    queue could be reached at all (when not, only the failures happen; the rest waits for the next sweep)."""

    requeued: int = 0
    failed: int = 0
    enqueued: int = 0
    redis_ok: bool = True

    def as_dict(self) -> dict[str, int]:
        return {"requeued": self.requeued, "failed": self.failed, "enqueued": self.enqueued, "redis_ok": self.redis_ok}


def failure_message(attempts: int) -> str:
    return (
        f"scoring stopped {attempts} times without finishing (the worker scoring it stopped); "
        "it was not counted against you, please submit again"
    )


def _redis():
    """The queue connection if Redis answers, else None."""
    from . import queue

    try:
        conn = queue.connect()
        conn.ping()
        return conn
    except Exception as exc:  # redis.ConnectionError, TimeoutError, a refused socket
        log.warning("watchdog: the queue cannot be reached (%s); only stale runs are handled", exc)
        return None


def _job_states(conn, job_ids: list[str | None]) -> list[str | None]:
    """RQ status of each job id (None: no id, or the job is gone)."""
    from rq.job import Job

    known = [j for j in job_ids if j]
    found = dict(zip(known, Job.fetch_many(known, connection=conn), strict=True)) if known else {}
    out = []
    for job_id in job_ids:
        job = found.get(job_id) if job_id else None
        status = None if job is None else job.get_status(refresh=False)
        out.append(None if status is None else str(getattr(status, "value", status)))
    return out


def _rq_cleanup(conn) -> None:
    from rq.registry import StartedJobRegistry

    from . import queue

    try:
        StartedJobRegistry(queue=queue.queue()).cleanup()
    except Exception:  # a cleanup problem must never stop the sweep
        log.exception("watchdog: RQ's StartedJobRegistry cleanup failed")


def _move(session: Session, sub: Submission, new: str, seen_heartbeat, reason: str, **values) -> bool:
    """running -> new, only if nobody moved it since we read it (another watchdog, the worker finishing)."""
    states.check(sub.state, new)
    result = session.execute(
        update(Submission)
        .where(Submission.id == sub.id, Submission.state == sub.state, Submission.heartbeat_at == seen_heartbeat)
        .values(state=new, **values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        session.rollback()
        return False
    before = sub.state
    session.refresh(sub)
    standings.touch_submission(session, sub)  # a rescored run that fails leaves the board: a bulk UPDATE
    audit.record(
        session,
        "submission.state",
        sub,
        challenge_id=sub.phase.challenge_id,
        before={"state": before},
        after={"state": new},
        reason=reason,
    )
    return True


def _enqueue(session: Session, sub: Submission) -> bool:
    from .services.submissions import enqueue

    enqueue(session, sub)
    return sub.state in (states.QUEUED, states.RESCORING) and sub.job_id is not None


def sweep(session: Session, now: dt.datetime | None = None) -> Sweep:
    """One pass over the submissions that are not where they should be; see the module docstring."""
    config = current_app.config
    now = now or utcnow()
    stale = now - dt.timedelta(seconds=config["WATCHDOG_STALE_SECONDS"])
    grace = now - dt.timedelta(seconds=config.get("WATCHDOG_GRACE_SECONDS", 30))
    max_attempts = config["MAX_ATTEMPTS"]
    conn = _redis()
    if conn is not None:
        _rq_cleanup(conn)
    requeued = failed = enqueued = 0

    running = list(session.scalars(select(Submission).where(Submission.state == states.RUNNING)))
    job_states = _job_states(conn, [s.job_id for s in running]) if conn is not None else [None] * len(running)
    for sub, job_state in zip(running, job_states, strict=True):
        beat = sub.heartbeat_at
        silent = beat is None or beat < stale
        died = job_state in DEAD_JOB_STATES and (beat is None or beat < grace)
        if not (silent or died):
            continue
        log.warning(
            "watchdog: submission %s stopped after attempt %s (heartbeat %s, job %s %s)",
            sub.id,
            sub.attempts,
            beat,
            sub.job_id,
            job_state,
        )
        if sub.attempts >= max_attempts:
            message = failure_message(sub.attempts)
            reason = f"watchdog: no heartbeat after attempt {sub.attempts} of {max_attempts}, failed"
            if _move(session, sub, states.FAILED, beat, reason, error=message, error_line=None, finished_at=now):
                notify.submission_done(session, sub)
                session.commit()
                failed += 1
        elif _move(session, sub, states.QUEUED, beat, f"watchdog: no heartbeat after attempt {sub.attempts}, requeued"):
            session.commit()
            requeued += 1
            if conn is not None:
                _enqueue(session, sub)

    if conn is not None:
        waiting = list(
            session.scalars(
                select(Submission).where(
                    Submission.state.in_((states.SUBMITTED, states.QUEUED, states.RESCORING)),
                )
            )
        )
        waiting_states = _job_states(conn, [s.job_id for s in waiting])
        for sub, job_state in zip(waiting, waiting_states, strict=True):
            if sub.state == states.SUBMITTED:
                lost = sub.created_at < grace
            else:
                lost = job_state not in LIVE_JOB_STATES and (sub.job_id is not None or sub.created_at < grace)
            if lost:
                log.warning(
                    "watchdog: submission %s is %s with no live job (%s); enqueued", sub.id, sub.state, job_state
                )
                enqueued += _enqueue(session, sub)
    orphans.maybe_remove(session, config)  # upload files whose row never came (at most every 10 min)
    phases.record_ended_phases(session, now)  # the automatic finals of a phase that closed by time
    result = Sweep(requeued=requeued, failed=failed, enqueued=enqueued, redis_ok=conn is not None)
    if requeued or failed or enqueued:
        log.info("watchdog: %s", result.as_dict())
    metrics.count_watchdog(result)
    return result


# Held by the watchdog thread for the whole of each sweep, and taken by `hold_sweeps_across_forks`' hook before
# every fork of this process. A forking worker forks its work-horse from the main thread while the watchdog thread
# runs; a fork in the middle of a sweep copies whatever locks that thread held (stderr's buffer lock while it logs,
# a connection pool's lock) into the child, already taken, forever: the horse hangs at its first log line (seen
# once in eight fresh CI runs: the job never left "running"). Forking only between sweeps removes that window.
SWEEP_LOCK = threading.Lock()
_FORK_HOOK_REGISTERED = False


def hold_sweeps_across_forks() -> None:
    """Make every later os.fork() of this process wait for a running sweep to end, and hold the next one until the
    fork is done (the child starts with the lock released). Idempotent."""
    import os

    global _FORK_HOOK_REGISTERED
    if not _FORK_HOOK_REGISTERED:
        os.register_at_fork(
            before=SWEEP_LOCK.acquire, after_in_parent=SWEEP_LOCK.release, after_in_child=SWEEP_LOCK.release
        )
        _FORK_HOOK_REGISTERED = True


def start_thread(app: Flask, every: float) -> threading.Thread:
    """Sweep every `every` seconds from a daemon thread of this process (started by `arena worker`)."""
    stop = threading.Event()

    def _loop():
        while not stop.wait(every):
            with SWEEP_LOCK, app.app_context():
                session = new_session()
                try:
                    sweep(session)
                except Exception:  # a database hiccup: log it and try again at the next tick
                    log.exception("watchdog sweep failed")
                    session.rollback()
                finally:
                    session.close()

    thread = threading.Thread(target=_loop, name="arena-watchdog", daemon=True)
    thread.stop = stop  # type: ignore[attr-defined]
    thread.start()
    return thread


def _stop_was_requested(worker) -> bool:
    """A SIGTERM or Ctrl+C asked RQ to stop: while busy RQ sets `_stop_requested`; an idle RQ 3 worker only notes
    the time and raises StopRequested, which ends its loop like a lost connection would (without this, `make demo`'s
    worker started a new RQ worker on every Ctrl+C until it was killed)."""
    return bool(worker._stop_requested or getattr(worker, "_shutdown_requested_date", None))


def run_worker(app: Flask, *, burst: bool = False, watchdog_every: float = 30.0, simple: bool = False) -> None:
    """An RQ worker on the app's queue, with a watchdog thread. The forked work-horse gets fresh database
    connections (a pooled connection must never be shared across a fork)."""
    import os
    import time

    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError
    from rq import SimpleWorker

    from . import queue
    from .jobs import ScoringWorker

    engine = app.extensions["arena.engine"]
    os.register_at_fork(after_in_child=lambda: engine.dispose(close=False))
    if watchdog_every > 0 and not burst:
        hold_sweeps_across_forks()
        start_thread(app, watchdog_every)
    worker_class = SimpleWorker if simple else ScoringWorker  # it parses hidden labels once per process
    wait = 1.0
    while True:
        worker = None
        with app.app_context():
            try:  # RQ's constructor talks to Redis too
                worker = worker_class([queue.queue(app)], connection=queue.connect(app))
                worker.work(burst=burst)
            except (RedisConnectionError, RedisTimeoutError) as exc:  # the constructor, or RQ's teardown
                log.warning("worker: the queue cannot be reached (%s)", exc)
        if burst or (worker is not None and _stop_was_requested(worker)):
            return
        # RQ's loop retries a failed dequeue but quits on a connection error anywhere else (a heartbeat, the end of a
        # job): a Redis restart must not end the process. Its run is requeued by the watchdog; start afresh.
        log.warning("worker: RQ's loop ended without a stop request; starting a new worker in %.0f s", wait)
        try:
            time.sleep(wait)
        except KeyboardInterrupt:  # Ctrl+C between two workers: stop quietly, as RQ would
            return
        wait = min(wait * 2, 30.0)
