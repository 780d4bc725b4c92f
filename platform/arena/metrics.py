"""Counters shared by every web and worker process, kept in one Redis hash (a worker on another machine counts into
the same place), and the Prometheus text page built from them, the queue and the database (`/metrics`).

Counting is best effort: with Redis down nothing is counted and nothing fails."""

from __future__ import annotations

import logging

from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .models import Submission, utcnow

log = logging.getLogger(__name__)
BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
OUTCOMES = ("finished", "failed", "unscorable", "skipped", "crashed")
WATCHDOG = ("requeued", "failed", "enqueued")


def _key() -> str:
    return f"arena:metrics:{current_app.config['RQ_QUEUE']}"


def _hincr(fields: dict[str, float]) -> None:
    from . import queue

    try:
        pipe = queue.connect().pipeline(transaction=False)
        for field, amount in fields.items():
            if isinstance(amount, float):
                pipe.hincrbyfloat(_key(), field, amount)
            else:
                pipe.hincrby(_key(), field, amount)
        pipe.execute()
    except Exception as exc:  # Redis down: the counter misses this one, the work goes on
        log.info("metrics not counted (%s)", exc)


def record_scoring(seconds: float, outcome: str) -> None:
    """One scoring run of `seconds`, ending in one of OUTCOMES."""
    fields: dict[str, float] = {"scoring_seconds_sum": float(seconds), "scoring_seconds_count": 1}
    fields[f"scoring_total:{outcome}"] = 1
    for bound in BUCKETS:
        if seconds <= bound:
            fields[f"scoring_seconds_bucket:{bound}"] = 1
    _hincr(fields)


def count_watchdog(sweep) -> None:
    fields = {f"watchdog_total:{name}": getattr(sweep, name) for name in WATCHDOG if getattr(sweep, name)}
    if fields:
        _hincr(fields)


def count(name: str, amount: int = 1) -> None:
    """A plain counter, e.g. 'enqueue_failures_total'."""
    _hincr({name: amount})


# --------------------------------------------------------------------------------------------------- the page


def _redis_values() -> tuple[dict[str, float], dict[str, float] | None]:
    """(counters, queue gauges) from Redis; ({}, None) when it cannot be reached."""
    from rq import Worker

    from . import queue

    try:
        conn = queue.connect()
        raw = conn.hgetall(_key())
        q = queue.queue()
        gauges = {
            "queued": q.count,
            "started": q.started_job_registry.count,
            "failed": q.failed_job_registry.count,
            "workers": Worker.count(queue=q),
        }
    except Exception as exc:
        log.warning("metrics: the queue cannot be reached (%s)", exc)
        return {}, None
    return {k.decode(): float(v) for k, v in raw.items()}, gauges


def collector(session: Session):
    """A prometheus_client collector of the platform's metrics (built per request, read once)."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

    class _Collector:
        def collect(self):
            counters, gauges = _redis_values()
            up = GaugeMetricFamily("arena_redis_up", "1 when the queue's Redis answers")
            up.add_metric([], 0.0 if gauges is None else 1.0)
            yield up
            if gauges is not None:
                depth = GaugeMetricFamily("arena_queue_jobs", "RQ jobs by registry", labels=["registry"])
                for name in ("queued", "started", "failed"):
                    depth.add_metric([name], gauges[name])
                yield depth
                yield GaugeMetricFamily("arena_workers", "RQ workers alive on the queue", value=gauges["workers"])
            by_state = GaugeMetricFamily("arena_submissions", "submissions by state", labels=["state"])
            rows = dict(session.execute(select(Submission.state, func.count()).group_by(Submission.state)).all())
            from .states import STATES

            for state in STATES:
                by_state.add_metric([state], rows.get(state, 0))
            yield by_state
            oldest = session.scalar(
                select(func.min(Submission.created_at)).where(Submission.state.in_(("submitted", "queued")))
            )
            age = (utcnow() - oldest).total_seconds() if oldest else 0.0
            yield GaugeMetricFamily(
                "arena_oldest_waiting_submission_seconds", "age of the oldest submitted or queued submission", value=age
            )
            runs = CounterMetricFamily("arena_scoring_runs", "scoring runs by outcome", labels=["outcome"])
            for outcome in OUTCOMES:
                runs.add_metric([outcome], counters.get(f"scoring_total:{outcome}", 0.0))
            yield runs
            buckets = [(str(b), counters.get(f"scoring_seconds_bucket:{b}", 0.0)) for b in BUCKETS]
            total = counters.get("scoring_seconds_count", 0.0)
            yield HistogramMetricFamily(
                "arena_scoring_seconds",
                "seconds a scoring run took",
                buckets=[*buckets, ("+Inf", total)],
                sum_value=counters.get("scoring_seconds_sum", 0.0),
            )
            dog = CounterMetricFamily("arena_watchdog_actions", "watchdog actions", labels=["action"])
            for name in WATCHDOG:
                dog.add_metric([name], counters.get(f"watchdog_total:{name}", 0.0))
            yield dog

    return _Collector()


def render(session: Session) -> bytes:
    """The Prometheus text exposition of the platform's metrics."""
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector(session))
    return generate_latest(registry)
