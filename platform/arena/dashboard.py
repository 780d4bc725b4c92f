"""A challenge's dashboard for its organizers: teams, active teams, submissions per day per track (an inline SVG),
failures by reason, and the queue (depth, workers). Each figure is one aggregate query, whatever the size."""

from __future__ import annotations

import dataclasses
import datetime as dt
from html import escape

from markupsafe import Markup
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from . import states
from .models import Challenge, Phase, Submission, Team, utcnow

DAYS = 30  # the submissions chart covers the last DAYS days
ACTIVE_DAYS = 7  # a team is active when it uploaded in the last ACTIVE_DAYS days
TOP_FAILURES = 10
COLOURS = ("#2f6fd0", "#bf5f1f", "#2a8a4a", "#8a2a8a")


@dataclasses.dataclass(frozen=True)
class Dashboard:
    teams: int  # teams of the challenge, merged ones left out
    teams_by_status: dict[str, int]
    active_teams: int  # teams with an upload in the last ACTIVE_DAYS days
    submitting_teams: int  # teams with at least one upload ever
    submissions: int
    by_state: dict[str, int]
    per_day: dict[str, dict[str, int]]  # track slug -> {YYYY-MM-DD: count} of the last DAYS days
    failures: list[tuple[str, int]]  # (the participant-facing error, how many), most frequent first
    chart: Markup


def summary(session: Session, challenge: Challenge, now: dt.datetime | None = None) -> Dashboard:
    now = now or utcnow()
    in_challenge = Submission.phase_id.in_(select(Phase.id).where(Phase.challenge_id == challenge.id))
    by_status = dict(
        session.execute(
            select(Team.status, func.count())
            .where(Team.challenge_id == challenge.id, Team.merged_into_id.is_(None))
            .group_by(Team.status)
        ).all()
    )
    by_state = dict(
        session.execute(select(Submission.state, func.count()).where(in_challenge).group_by(Submission.state)).all()
    )
    active = session.scalar(
        select(func.count(func.distinct(Submission.team_id))).where(
            in_challenge, Submission.team_id.is_not(None), Submission.created_at >= now - dt.timedelta(days=ACTIVE_DAYS)
        )
    )
    submitting = session.scalar(
        select(func.count(func.distinct(Submission.team_id))).where(in_challenge, Submission.team_id.is_not(None))
    )
    day = func.date(Submission.created_at)
    start = dt.datetime(now.year, now.month, now.day) - dt.timedelta(days=DAYS - 1)
    slugs = {t.id: t.slug for t in challenge.tracks}
    per_day: dict[str, dict[str, int]] = {t.slug: {} for t in challenge.tracks}
    for track_id, when, count in session.execute(
        select(Submission.track_id, day, func.count())
        .where(in_challenge, Submission.created_at >= start)
        .group_by(Submission.track_id, day)
    ):
        per_day.setdefault(slugs.get(track_id, str(track_id)), {})[str(when)[:10]] = count
    failures = [
        (error or "(no message)", count)
        for error, count in session.execute(
            select(Submission.error, func.count())
            .where(in_challenge, Submission.state == states.FAILED)
            .group_by(Submission.error)
            .order_by(func.count().desc())
            .limit(TOP_FAILURES)
        )
    ]
    days = [(start + dt.timedelta(days=i)).date().isoformat() for i in range(DAYS)]
    return Dashboard(
        teams=sum(by_status.values()),
        teams_by_status=by_status,
        active_teams=active or 0,
        submitting_teams=submitting or 0,
        submissions=sum(by_state.values()),
        by_state=by_state,
        per_day=per_day,
        failures=failures,
        chart=per_day_chart(per_day, days),
    )


def per_day_chart(per_day: dict[str, dict[str, int]], days: list[str]) -> Markup:
    """One polyline per track over `days` (YYYY-MM-DD), y from 0 to the busiest day: a small inline SVG."""
    width, height, pad = 560, 200, 32
    top = max([1] + [n for counts in per_day.values() for n in counts.values()])
    step = (width - pad - 8) / max(len(days) - 1, 1)

    def y(n: int) -> float:
        return 8 + (1 - n / top) * (height - pad - 8)

    lines, legend = [], []
    for i, (slug, counts) in enumerate(sorted(per_day.items())):
        colour = COLOURS[i % len(COLOURS)]
        points = " ".join(f"{pad + k * step:.1f},{y(counts.get(d, 0)):.1f}" for k, d in enumerate(days))
        lines.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>')
        legend.append(
            f'<text x="{pad + 8 + 120 * i}" y="20" font-size="11" fill="{colour}">{escape(slug)}: '
            f"{sum(counts.values())}</text>"
        )
    labels = [
        f'<text x="{pad}" y="{height - pad + 14}" font-size="10">{escape(days[0][5:])}</text>',
        f'<text x="{width - 8}" y="{height - pad + 14}" font-size="10" text-anchor="end">{escape(days[-1][5:])}</text>',
        f'<text x="{pad - 4}" y="{y(top) + 3:.1f}" font-size="10" text-anchor="end">{top}</text>',
        f'<text x="{pad - 4}" y="{y(0) + 3:.1f}" font-size="10" text-anchor="end">0</text>',
    ]
    title = f"submissions per day and track, the last {len(days)} days (UTC)"
    return Markup(
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" id="per-day-chart" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>'
        f'<rect x="{pad}" y="8" width="{width - pad - 8}" height="{height - pad - 8}" fill="none" stroke="#888"/>'
        + "".join(labels + lines + legend)
        + "</svg>"
    )


def queue_info() -> dict:
    """The queue's depth and its workers from Redis, or the error when Redis cannot be reached."""
    from rq import Worker

    from . import queue as arena_queue

    info = {"error": None, "workers": [], "queued": 0, "started": 0, "failed": 0}
    try:
        q = arena_queue.queue()
        info["queued"], info["started"] = q.count, q.started_job_registry.count
        info["failed"] = q.failed_job_registry.count
        info["workers"] = [
            {"name": w.name, "state": w.get_state(), "heartbeat": w.last_heartbeat}
            for w in Worker.all(connection=arena_queue.connect())
        ]
    except Exception as exc:  # Redis down: the page still shows the database's view
        info["error"] = f"the queue cannot be reached: {exc}"
    return info
