"""Leaderboards: a query, not a table. The ordering and the tie-break are defined here and nowhere else."""

from __future__ import annotations

import datetime as dt
import threading
import time
from dataclasses import dataclass, field

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from .models import Phase, RankSnapshot, Submission, Team, Track
from .states import FINISHED, QUEUED, RESCORING, RUNNING

SPLITS = ("public", "private")


@dataclass(frozen=True)
class Row:
    rank: int | None  # None for a baseline row: baselines are shown in place but take no rank
    submission_id: int
    team_id: int | None
    name: str
    score: float
    scores: dict = field(default_factory=dict)  # every metric of this split
    submitted_at: dt.datetime | None = None
    is_baseline: bool = False


@dataclass(frozen=True)
class Board:
    phase_id: int
    track_id: int
    split: str
    metric: str
    rows: tuple[Row, ...]


def _order(score_column):
    """The one ordering of a board: higher score first; ties go to the earlier submission (then the lower id)."""
    return (score_column.desc(), Submission.created_at.asc(), Submission.id.asc())


def _sort_key(sub: Submission, split: str):
    score = sub.public_score if split == "public" else sub.private_score
    return (-(score if score is not None else float("-inf")), sub.created_at, sub.id)


def _eligible(phase: Phase, track: Track):
    return (
        Submission.phase_id == phase.id,
        Submission.track_id == track.id,
        # a finished submission stays on the board with its last scores while it is rescored (rescoring, then
        # queued/running again): the boards stay whole during a rescore; only a rescored run has scores while running
        or_(
            Submission.state == FINISHED,
            and_(Submission.state.in_((RESCORING, QUEUED, RUNNING)), Submission.public_score.is_not(None)),
        ),
        Submission.disqualified_reason.is_(None),
    )


def _team_submissions(session: Session, phase: Phase, track: Track, split: str) -> list[Submission]:
    """One submission per visible team: the best (or latest, per the phase) public one on the public split; on
    the private split the best private score among the team's final picks (default: its best public ones)."""
    visible = select(Team.id).where(Team.hidden.is_(False), Team.status != "banned")
    where = (*_eligible(phase, track), Submission.team_id.in_(visible))
    if split == "public" or phase.ranking == "latest":
        order = (
            (Submission.created_at.desc(), Submission.id.desc())
            if phase.ranking == "latest"
            else _order(Submission.public_score)
        )
        ranked = (
            select(Submission.id, func.row_number().over(partition_by=Submission.team_id, order_by=order).label("rn"))
            .where(*where)
            .subquery()
        )
        ids = select(ranked.c.id).where(ranked.c.rn == 1)
        return list(session.scalars(select(Submission).where(Submission.id.in_(ids))))
    by_team: dict[int, list[Submission]] = {}
    for sub in session.scalars(select(Submission).where(*where).order_by(*_order(Submission.public_score))):
        by_team.setdefault(sub.team_id, []).append(sub)
    chosen = []
    for subs in by_team.values():
        picks = [s for s in subs if s.selected_final] or subs[: phase.final_count]
        chosen.append(min(picks, key=lambda s: _sort_key(s, "private")))
    return chosen


def leaderboard(session: Session, phase: Phase, track: Track, split: str = "public") -> Board:
    """The board of phase × track × split. Rows sorted by score (higher first), ties to the earlier submission;
    teams ranked 1, 2, ...; baseline rows interleaved by score with rank None. Visibility of the private split is
    the caller's check (Phase.private_visible)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    subs = _team_submissions(session, phase, track, split)
    subs += session.scalars(select(Submission).where(*_eligible(phase, track), Submission.is_baseline.is_(True)))
    subs = [s for s in subs if (s.public_score if split == "public" else s.private_score) is not None]
    subs.sort(key=lambda s: _sort_key(s, split))
    names = dict(session.execute(select(Team.id, Team.name).where(Team.id.in_({s.team_id for s in subs}))).all())
    rows, rank = [], 0
    for sub in subs:
        if not sub.is_baseline:
            rank += 1
        rows.append(
            Row(
                rank=None if sub.is_baseline else rank,
                submission_id=sub.id,
                team_id=sub.team_id,
                name=sub.baseline_name or "baseline" if sub.is_baseline else names.get(sub.team_id, "?"),
                score=sub.public_score if split == "public" else sub.private_score,
                scores=(sub.scores or {}).get(split, {}),
                submitted_at=sub.created_at,
                is_baseline=sub.is_baseline,
            )
        )
    return Board(phase.id, track.id, split, track.metric, tuple(rows))


_CACHE: dict[tuple, tuple[float, Board]] = {}
_CACHE_LOCK = threading.Lock()


def cached_leaderboard(session: Session, phase: Phase, track: Track, split: str, max_age: float) -> Board:
    """leaderboard(), reused for max_age seconds within this process (0: always recomputed). A board is a frozen
    value, so threads share it safely; a new score shows within max_age seconds."""
    if max_age <= 0:
        return leaderboard(session, phase, track, split)
    key = (str(session.get_bind().url), phase.id, track.id, split, phase.ranking, phase.final_count)
    now = time.monotonic()
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
    if hit is not None and now - hit[0] < max_age:
        return hit[1]
    board = leaderboard(session, phase, track, split)
    with _CACHE_LOCK:
        _CACHE[key] = (now, board)
    return board


def record_rank_history(session: Session, phase: Phase, track: Track, now: dt.datetime) -> int:
    """Append a RankSnapshot for every team whose public rank changed; return how many were written."""
    board = leaderboard(session, phase, track, "public")
    last: dict[int, int] = {}
    latest = (
        select(RankSnapshot.team_id, RankSnapshot.rank)
        .where(RankSnapshot.phase_id == phase.id, RankSnapshot.track_id == track.id)
        .order_by(RankSnapshot.at.asc(), RankSnapshot.id.asc())
    )
    for team_id, rank in session.execute(latest):
        last[team_id] = rank
    written = 0
    for row in board.rows:
        if row.rank is not None and last.get(row.team_id) != row.rank:
            session.add(
                RankSnapshot(
                    phase_id=phase.id, track_id=track.id, team_id=row.team_id, rank=row.rank, score=row.score, at=now
                )
            )
            written += 1
    return written


def rank_history(session: Session, phase: Phase, track: Track, team_id: int) -> list[RankSnapshot]:
    return list(
        session.scalars(
            select(RankSnapshot)
            .where(
                RankSnapshot.phase_id == phase.id, RankSnapshot.track_id == track.id, RankSnapshot.team_id == team_id
            )
            .order_by(RankSnapshot.at, RankSnapshot.id)
        )
    )
