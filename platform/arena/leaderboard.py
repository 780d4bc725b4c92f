"""Leaderboards: the rule is a query (`leaderboard`), and the ordering and the tie-break are defined here and
nowhere else (`ranked`). The boards that pages and the API show are its stored result (arena/standings.py), kept
equal to it in the transaction of every change."""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass, field
from typing import NamedTuple

from sqlalchemy import and_, bindparam, func, or_, select
from sqlalchemy.orm import Session

from .models import Phase, RankSnapshot, StandingBoard, Submission, Team, Track
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
    # the stored standings' version it was read at ("" when computed or read inside a writing transaction): what
    # the HTTP layer's ETag is made of; not part of the board's value
    version: str = field(default="", compare=False)


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
        Submission.late.is_(False),  # late submissions are never ranked (late_board shows them)
    )


def _team_submissions(
    session: Session, phase: Phase, track: Track, split: str, team_ids: list[int] | None = None
) -> list[int]:
    """One submission per visible team: the best (or latest, per the phase) public one on the public split; on
    the private split the best private score among the team's final picks (default: its best public ones).
    Candidates are chosen on light rows (ids, scores, times); returns the chosen submission ids. team_ids: only
    those teams (the stored standings recompute the teams a change can move)."""
    visible = select(Team.id).where(Team.hidden.is_(False), Team.status != "banned")
    if team_ids is not None:
        visible = visible.where(Team.id.in_(team_ids))
    where = (*_eligible(phase, track), Submission.team_id.in_(visible))
    light = select(
        Submission.id,
        Submission.team_id,
        Submission.public_score,
        Submission.private_score,
        Submission.created_at,
        Submission.selected_final,
        Submission.final_auto,
    )
    if phase.ranking == "latest":
        newest = select(Submission.team_id, func.max(Submission.created_at).label("at")).where(*where)
        newest = newest.group_by(Submission.team_id).subquery()
        rows = session.execute(
            light.join(newest, (Submission.team_id == newest.c.team_id) & (Submission.created_at == newest.c.at)).where(
                *where
            )
        ).all()
        chosen = _pick(rows, key=lambda r: (-r.created_at.timestamp(), -r.id))
    elif split == "public":
        # each team's best score by a hash aggregate (no sort of every submission), then its submissions with that
        # score; the earliest of those wins the tie (the order of _row_key)
        best = select(Submission.team_id, func.max(Submission.public_score).label("best")).where(*where)
        best = best.group_by(Submission.team_id).subquery()
        rows = session.execute(
            light.join(best, (Submission.team_id == best.c.team_id) & (Submission.public_score == best.c.best)).where(
                *where
            )
        ).all()
        chosen = _pick(rows, key=lambda r: _row_key(r, "public"))
    else:
        chosen = []
        for rows in _by_team(session, light.where(*where)).values():
            picks = [r for r in rows if r.selected_final] or [r for r in rows if r.final_auto]
            if not picks:
                picks = _default_finals(rows, phase.final_count)
            chosen.append(min(picks, key=lambda r: _row_key(r, "private")).id)
    return chosen


def _by_team(session: Session, query) -> dict[int, list]:
    by_team: dict[int, list] = {}
    for row in session.execute(query):
        by_team.setdefault(row.team_id, []).append(row)
    return by_team


def _default_finals(rows, final_count: int) -> list:
    """The automatic final choice of a team that picked nothing: its best `final_count` public submissions."""
    return sorted(rows, key=lambda r: _row_key(r, "public"))[:final_count]


def automatic_finals(session: Session, phase: Phase, track: Track) -> dict[int, list[int]]:
    """{team id: the submission ids the private board takes for it} for every team that picked no final (the rule
    of _team_submissions; phases.record_automatic_finals records it)."""
    light = select(
        Submission.id, Submission.team_id, Submission.public_score, Submission.created_at, Submission.selected_final
    ).where(*_eligible(phase, track), Submission.team_id.is_not(None), Submission.is_baseline.is_(False))
    return {
        team_id: [r.id for r in _default_finals(rows, phase.final_count)]
        for team_id, rows in _by_team(session, light).items()
        if not any(r.selected_final for r in rows)
    }


def _row_key(row, split: str):
    score = row.public_score if split == "public" else row.private_score
    return (-(score if score is not None else float("-inf")), row.created_at, row.id)


def _pick(rows, key) -> list[int]:
    """The id of the first row of each team under key."""
    first: dict[int, tuple] = {}
    for row in rows:
        if row.team_id not in first or key(row) < key(first[row.team_id]):
            first[row.team_id] = row
    return [row.id for row in first.values()]


class Entry(NamedTuple):
    """A board row before ranking (a team's chosen submission, or a baseline), from the query or the table."""

    score: float
    submitted_at: dt.datetime
    submission_id: int
    team_id: int | None
    name: str
    scores: dict
    is_baseline: bool


def board_entries(
    session: Session, phase: Phase, track: Track, split: str, chosen: list[int], *, baselines: bool = True
) -> list[Entry]:
    """The entries of the chosen team submissions (and, with baselines, of every eligible baseline) that have a
    score on the split."""
    # the chosen ids go into the SQL as literals: hundreds of bound parameters cost more than the query itself
    ids = bindparam("ids", chosen, expanding=True, literal_execute=True)
    wanted = Submission.id.in_(ids)
    if baselines:
        wanted = Submission.is_baseline.is_(True) | wanted
    query = select(
        Submission.id,
        Submission.team_id,
        Submission.public_score,
        Submission.private_score,
        Submission.created_at,
        Submission.is_baseline,
        Submission.baseline_name,
        Submission.scores,
    ).where(*_eligible(phase, track), wanted)
    subs = [s for s in session.execute(query) if (s.public_score if split == "public" else s.private_score) is not None]
    names = dict(session.execute(select(Team.id, Team.name).where(Team.id.in_({s.team_id for s in subs}))).all())
    return [
        Entry(
            score=sub.public_score if split == "public" else sub.private_score,
            submitted_at=sub.created_at,
            submission_id=sub.id,
            team_id=sub.team_id,
            name=(sub.baseline_name or "baseline") if sub.is_baseline else names.get(sub.team_id, "?"),
            scores=(sub.scores or {}).get(split, {}),
            is_baseline=sub.is_baseline,
        )
        for sub in subs
    ]


def ranked(entries) -> tuple[Row, ...]:
    """The board's rows: sorted by score (higher first), ties to the earlier submission (then the lower id);
    teams ranked 1, 2, ...; baselines interleaved by score with rank None. entries: Entry-like rows."""
    rows, rank = [], 0
    for entry in sorted(entries, key=lambda e: (-e.score, e.submitted_at, e.submission_id)):
        if not entry.is_baseline:
            rank += 1
        rows.append(
            Row(
                rank=None if entry.is_baseline else rank,
                submission_id=entry.submission_id,
                team_id=entry.team_id,
                name=entry.name,
                score=entry.score,
                scores=entry.scores or {},
                submitted_at=entry.submitted_at,
                is_baseline=entry.is_baseline,
            )
        )
    return tuple(rows)


def leaderboard(session: Session, phase: Phase, track: Track, split: str = "public") -> Board:
    """The board of phase × track × split, computed from the submissions: the rule that the stored standings
    (standings.stored_leaderboard, what the pages show) always equal. Rows as `ranked` orders them. Visibility
    of the private split is the caller's check (Phase.private_visible)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    chosen = _team_submissions(session, phase, track, split)
    return Board(phase.id, track.id, split, track.metric, ranked(board_entries(session, phase, track, split, chosen)))


def late_board(session: Session, phase: Phase, track: Track, with_private: bool) -> Board:
    """The "late" view: every finished late submission of a visible team, by public score, unranked (rank None).
    Its scores hold the private split only when `with_private` (the phase's private board is revealed)."""
    visible = select(Team.id).where(Team.hidden.is_(False), Team.status != "banned")
    subs = session.scalars(
        select(Submission).where(
            Submission.phase_id == phase.id,
            Submission.track_id == track.id,
            Submission.state == FINISHED,
            Submission.late.is_(True),
            Submission.disqualified_reason.is_(None),
            Submission.team_id.in_(visible),
        )
    ).all()
    subs = sorted(subs, key=lambda s: _row_key(s, "public"))
    rows = tuple(
        Row(
            rank=None,
            submission_id=s.id,
            team_id=s.team_id,
            name=s.team.name if s.team else "?",
            score=s.public_score,
            scores={k: v for k, v in (s.scores or {}).items() if with_private or k == "public"},
            submitted_at=s.created_at,
        )
        for s in subs
    )
    return Board(phase.id, track.id, "late", track.metric, rows)


_CACHE_LOCK = threading.Lock()
_MEMO: dict[tuple[int, str], tuple[Board, object]] = {}


def memo(board: Board, kind: str, make):
    """What `make()` derives from a board (its JSON body, its HTML table), computed once per board object: while
    stored_leaderboard hands out the same Board (its version unchanged), its rendering is reused too."""
    key = (id(board), kind)
    hit = _MEMO.get(key)
    if hit is not None and hit[0] is board:
        return hit[1]
    value = make()
    with _CACHE_LOCK:
        if len(_MEMO) > 64:  # a rendering of 5,000 rows is about a megabyte: keep a few boards' worth
            _MEMO.clear()
        _MEMO[key] = (board, value)  # the board is kept alive with it, so its id is not reused meanwhile
    return value


def record_rank_history(session: Session, phase: Phase, track: Track, team_id: int, now: dt.datetime) -> int:
    """Append a RankSnapshot of the team that just scored when its public rank changed; return how many were
    written (0 or 1). Only the scoring team is recorded: the teams it passed are not written (their rank moved
    without a submission of theirs, and writing them cost up to one row per team per score, 5,000 rows a score
    at 5,000 teams); rank_history() ends each team's history at its current rank instead."""
    from .standings import apply_pending, stored_leaderboard

    apply_pending(session)
    board = stored_leaderboard(session, phase, track, "public")
    rank = next((r.rank for r in board.rows if r.team_id == team_id), None)
    if rank is None:
        return 0
    last = _last_snapshot(session, phase, track, team_id)
    if last is not None and last.rank == rank:
        return 0
    score = next(r.score for r in board.rows if r.team_id == team_id)
    session.add(RankSnapshot(phase_id=phase.id, track_id=track.id, team_id=team_id, rank=rank, score=score, at=now))
    return 1


def _last_snapshot(session: Session, phase: Phase, track: Track, team_id: int) -> RankSnapshot | None:
    return session.scalars(
        select(RankSnapshot)
        .where(RankSnapshot.phase_id == phase.id, RankSnapshot.track_id == track.id, RankSnapshot.team_id == team_id)
        .order_by(RankSnapshot.at.desc(), RankSnapshot.id.desc())
        .limit(1)
    ).first()


def rank_history(session: Session, phase: Phase, track: Track, team_id: int) -> list[RankSnapshot]:
    """The team's public rank after each of its scores that changed it, then its current rank when others have
    moved it since (a point not stored, dated at the board's last change)."""
    from .standings import stored_leaderboard

    points = list(
        session.scalars(
            select(RankSnapshot)
            .where(
                RankSnapshot.phase_id == phase.id, RankSnapshot.track_id == track.id, RankSnapshot.team_id == team_id
            )
            .order_by(RankSnapshot.at, RankSnapshot.id)
        )
    )
    now = next((r for r in stored_leaderboard(session, phase, track, "public").rows if r.team_id == team_id), None)
    if now is not None and now.rank is not None and points and points[-1].rank != now.rank:
        changed = session.scalar(
            select(StandingBoard.updated_at).where(
                StandingBoard.phase_id == phase.id, StandingBoard.track_id == track.id
            )
        )
        at = max(changed or points[-1].at, points[-1].at)
        points.append(
            RankSnapshot(phase_id=phase.id, track_id=track.id, team_id=team_id, rank=now.rank, score=now.score, at=at)
        )
    return points
