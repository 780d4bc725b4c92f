"""Submission limits of a team in a phase: the one function that says whether one more upload is allowed."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from .errors import LimitReached
from .models import Phase, Submission, Team
from .states import COUNTED, IN_FLIGHT


@dataclass(frozen=True)
class Usage:
    """A team's counted submissions in one phase (all tracks): today (UTC), in total and in flight."""

    today: int
    total: int
    in_flight: int


def lock_team(session: Session, team_id: int) -> None:
    """Serialise writers on one team: bump its lock_version first thing in the transaction. On PostgreSQL this
    takes the row lock; on SQLite the UPDATE takes the database write lock (pysqlite begins the transaction at the
    first write), so the check that follows and the insert cannot interleave with another request's."""
    session.execute(update(Team).where(Team.id == team_id).values(lock_version=Team.lock_version + 1))


@dataclass(frozen=True)
class Quota:
    """What a team may still upload in a phase (the limits count every track of the phase together): used and left
    today, in total and in flight, and when the daily window resets. Made by `quota` from the same usage and the
    same window that `check_limits` uses, so what is shown is what the check then allows."""

    used_today: int
    left_today: int
    used_total: int
    left_total: int
    in_flight: int
    left_in_flight: int
    left: int  # how many more uploads fit now: the smallest of the three
    resets_at: dt.datetime  # naive UTC: the next boundary of the daily window


def day_start(now: dt.datetime) -> dt.datetime:
    """The daily window's start: 00:00 UTC of `now`'s day (the window the daily limit counts)."""
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def usage(session: Session, team_ids: list[int], phase_id: int, now: dt.datetime) -> Usage:
    """Counted submissions of these teams (several when checking a merge) in a phase. Failed and cancelled ones
    are refunded: they never count."""
    midnight = day_start(now)
    base = select(func.count(Submission.id)).where(
        Submission.team_id.in_(team_ids), Submission.phase_id == phase_id, Submission.state.in_(COUNTED)
    )
    total = session.scalar(base) or 0
    today = session.scalar(base.where(Submission.created_at >= midnight)) or 0
    in_flight = session.scalar(base.where(Submission.state.in_(IN_FLIGHT))) or 0
    return Usage(today=today, total=total, in_flight=in_flight)


def quota(session: Session, team_ids: list[int], phase: Phase, now: dt.datetime) -> Quota:
    """The quota left to these teams in the phase now; `check_limits(..., extra=n)` passes iff n <= left."""
    used = usage(session, team_ids, phase.id, now)
    left_today = max(phase.max_per_day - used.today, 0)
    left_total = max(phase.max_total - used.total, 0)
    left_in_flight = max(phase.max_in_flight - used.in_flight, 0)
    return Quota(
        used_today=used.today,
        left_today=left_today,
        used_total=used.total,
        left_total=left_total,
        in_flight=used.in_flight,
        left_in_flight=left_in_flight,
        left=min(left_today, left_total, left_in_flight),
        resets_at=day_start(now) + dt.timedelta(days=1),
    )


def check_limits(session: Session, team_ids: list[int], phase: Phase, now: dt.datetime, extra: int = 1) -> Usage:
    """Raise LimitReached unless `extra` more submissions fit the phase's limits per day (UTC), in total and in
    flight; return the usage. Call it after lock_team, in the transaction that inserts the submission."""
    used = usage(session, team_ids, phase.id, now)
    if used.today + extra > phase.max_per_day:
        raise LimitReached(
            f"the daily limit of {phase.max_per_day} submissions is reached (it resets at 00:00 UTC); "
            "failed and cancelled submissions do not count"
        )
    if used.total + extra > phase.max_total:
        raise LimitReached(f"the limit of {phase.max_total} submissions in phase '{phase.title}' is reached")
    if used.in_flight + extra > phase.max_in_flight:
        raise LimitReached(
            f"{used.in_flight} submissions are still being scored; at most {phase.max_in_flight} at once"
        )
    return used
