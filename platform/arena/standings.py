"""Stored standings: the boards as a table (`Standing`), never stale, read in one indexed query.

The rule stays `leaderboard.leaderboard()` (one query, the ordering and the tie-break of leaderboard.py); this
module keeps its result stored, team by team, in the same transaction as every change that can move it:

- Every session of the app carries two hooks (`listen`). Before each flush, `_collect` notes the boards that the
  flushed changes can move: a submission that is or was on a board (eligible before or after: finished, or
  rescored with its last scores) whose state, scores, disqualification, final pick, team, phase or track changed
  (a finished score, a rescore, a failure after a rescore, a disqualification, a final pick, a team merge); a team
  whose status, visibility, name or merge changed (a ban, hiding); a phase whose ranking or final count changed.
- Before the commit, `apply_pending` recomputes the noted teams' rows with the rule restricted to those teams (a
  few indexed queries however large the board) and rewrites them. Each board is first row-locked by bumping its
  `StandingBoard.version` (boards in a fixed order: no deadlock), so two workers finishing scores of one board
  serialise, and the later one recomputes after the earlier one committed: the stored rows equal the query.
- Writes made with bulk statements bypass the hooks; their callers call `touch_submission` (the watchdog's
  running → failed) or change an ORM attribute of the same transaction that the hooks see (a team merge sets the
  merged team's `merged_into_id`, which notes both teams).
- A label-version switch (labels.activate) calls `refresh_track(session, track)` in its transaction.
- `rebuild` recomputes everything (the `flask --app arena standings rebuild` command; after `db upgrade` of a
  database that already holds scores).

Reads (`stored_leaderboard`) check the board's version (a primary-key lookup) and reuse the Board built for that
version in this process, else read the rows; ranks are counted on read. Nothing expires by time: a board is
rebuilt exactly when its version changed. `Board.version` (a digest of it) is the boards' HTTP ETag (boards.py).
On PostgreSQL each bump is also sent to every web process (board_push.py), which then answers a board it has
already read without asking the database.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import threading

from sqlalchemy import delete, event, inspect, select, update
from sqlalchemy.orm import Session

from . import board_push
from . import leaderboard as lb
from .models import Challenge, Phase, Standing, StandingBoard, Submission, Team, Track, utcnow
from .states import FINISHED, QUEUED, RESCORING, RUNNING

log = logging.getLogger(__name__)

_PENDING = "arena.standings.pending"  # session.info: what the flushed changes of this transaction can move
_TOUCHED = "arena.standings.touched"  # session.info: this transaction rewrote standings (reads bypass the cache)
ALL_TEAMS = "*"  # in a board's set of teams to refresh: every team
BASELINES = None  # in a board's set of teams to refresh: the baseline rows
_SUBMISSION_FIELDS = (
    "state",
    "public_score",
    "private_score",
    "scores",
    "disqualified_reason",
    "selected_final",
    "final_auto",
    "late",
    "team_id",
    "phase_id",
    "track_id",
    "created_at",
    "is_baseline",
    "baseline_name",
)
_TEAM_FIELDS = ("status", "hidden", "name", "merged_into_id")
_PHASE_FIELDS = ("ranking", "final_count")
_BOARD_CACHE: dict[tuple, lb.Board] = {}  # (database, phase, track, split) -> the Board of its current version
_BOARD_CACHE_SIZE = 256
_CACHE_LOCK = threading.Lock()


# --------------------------------------------------------------------------------------------------- hooks


def listen(maker) -> None:
    """Install the hooks on a sessionmaker (db.init_app does it for the app's)."""
    event.listen(maker, "before_flush", _collect)
    event.listen(maker, "before_commit", apply_pending)
    event.listen(maker, "after_commit", _forget)
    event.listen(maker, "after_rollback", _forget)


def _pending(session: Session) -> dict:
    return session.info.setdefault(_PENDING, {"boards": {}, "teams": set(), "phases": set()})


def _forget(session: Session) -> None:
    session.info.pop(_PENDING, None)
    session.info.pop(_TOUCHED, None)


def _before(obj, field: str):
    """The value of obj.field when the transaction last loaded it (its current value if unchanged)."""
    history = inspect(obj).attrs[field].history
    return history.deleted[0] if history.deleted else getattr(obj, field)


def _eligible(state, public_score, disqualified_reason) -> bool:
    """Whether a submission with these values is a candidate of leaderboard._eligible (phase and track aside)."""
    if disqualified_reason is not None:
        return False
    return state == FINISHED or (state in (RESCORING, QUEUED, RUNNING) and public_score is not None)


def _note_submission(pending: dict, sub: Submission, old: bool) -> None:
    values = {f: (_before(sub, f) if old else getattr(sub, f)) for f in ("phase_id", "track_id", "team_id")}
    if values["phase_id"] is None or values["track_id"] is None:
        return
    is_baseline = _before(sub, "is_baseline") if old else sub.is_baseline
    team = BASELINES if is_baseline or values["team_id"] is None else values["team_id"]
    pending["boards"].setdefault((values["phase_id"], values["track_id"]), set()).add(team)


def _collect(session: Session, _context, _instances) -> None:
    pending = _pending(session)
    for obj in session.new:
        if isinstance(obj, Submission) and _eligible(obj.state, obj.public_score, obj.disqualified_reason):
            _note_submission(pending, obj, old=False)
    for obj in session.dirty:
        state = inspect(obj)
        if isinstance(obj, Submission):
            if not any(state.attrs[f].history.has_changes() for f in _SUBMISSION_FIELDS):
                continue
            was = _eligible(_before(obj, "state"), _before(obj, "public_score"), _before(obj, "disqualified_reason"))
            now = _eligible(obj.state, obj.public_score, obj.disqualified_reason)
            if was:
                _note_submission(pending, obj, old=True)
            if now:
                _note_submission(pending, obj, old=False)
        elif isinstance(obj, Team):
            if any(state.attrs[f].history.has_changes() for f in _TEAM_FIELDS):
                pending["teams"].add(obj.id)
                for target in (_before(obj, "merged_into_id"), obj.merged_into_id):
                    if target is not None:
                        pending["teams"].add(target)  # a merge moved the submissions to the target
        elif isinstance(obj, Phase):
            if any(state.attrs[f].history.has_changes() for f in _PHASE_FIELDS):
                pending["phases"].add(obj.id)
    for obj in session.deleted:
        if isinstance(obj, Submission):
            _note_submission(pending, obj, old=True)


def touch_submission(session: Session, sub: Submission) -> None:
    """Note sub's board team for a refresh at commit: for changes made by bulk UPDATEs, which the hooks miss."""
    _note_submission(_pending(session), sub, old=False)


def apply_pending(session: Session) -> int:
    """Rewrite the standings that this transaction's changes can move (before_commit calls it; a caller that
    must read the new standings before committing may too). Returns the number of boards refreshed."""
    session.flush()  # the last changes reach _collect
    pending = session.info.pop(_PENDING, None)
    if not pending or not any(pending.values()):
        return 0
    boards: dict[tuple[int, int], set] = {key: set(teams) for key, teams in pending["boards"].items()}
    if pending["teams"]:
        for team_id, challenge_id in session.execute(
            select(Team.id, Team.challenge_id).where(Team.id.in_(pending["teams"]))
        ):
            for phase_id, track_id in _challenge_boards(session, challenge_id):
                boards.setdefault((phase_id, track_id), set()).add(team_id)
    for phase_id in pending["phases"]:
        phase = session.get(Phase, phase_id)
        if phase is not None:
            for track in phase.challenge.tracks:
                boards.setdefault((phase.id, track.id), set()).update({ALL_TEAMS, BASELINES})
    refresh(session, boards)
    return len(boards)


def _challenge_boards(session: Session, challenge_id: int) -> list[tuple[int, int]]:
    phases = session.scalars(select(Phase.id).where(Phase.challenge_id == challenge_id)).all()
    tracks = session.scalars(select(Track.id).where(Track.challenge_id == challenge_id)).all()
    return [(p, t) for p in phases for t in tracks]


# --------------------------------------------------------------------------------------------------- writes


def refresh(session: Session, boards: dict[tuple[int, int], set]) -> None:
    """Recompute the stored rows of the given teams (team ids, ALL_TEAMS, BASELINES) of each (phase id, track
    id) board, in this transaction (the caller commits)."""
    session.info[_TOUCHED] = True
    for phase_id, track_id in sorted(boards):  # a fixed order: two transactions never lock boards crosswise
        _lock(session, phase_id, track_id)
        phase, track = session.get(Phase, phase_id), session.get(Track, track_id)
        if phase is None or track is None:
            continue
        for split in lb.SPLITS:
            _rewrite(session, phase, track, split, boards[(phase_id, track_id)])


def refresh_track(session: Session, track: Track) -> None:
    """Recompute every board of a track: the hook for a label-version switch (scores per label version)."""
    boards = _challenge_boards(session, track.challenge_id)
    refresh(session, {(p, t): {ALL_TEAMS, BASELINES} for p, t in boards if t == track.id})


def rebuild(session: Session, challenge: Challenge | None = None) -> int:
    """Recompute all stored standings (of one challenge, or all); the caller commits. Returns the boards done."""
    ids = [challenge.id] if challenge else session.scalars(select(Challenge.id)).all()
    boards = {key: {ALL_TEAMS, BASELINES} for cid in ids for key in _challenge_boards(session, cid)}
    refresh(session, boards)
    return len(boards)


def _lock(session: Session, phase_id: int, track_id: int) -> None:
    """Create the board's version row if missing, then bump it: the row lock serialises this board's writers."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    session.execute(
        insert(StandingBoard)
        .values(phase_id=phase_id, track_id=track_id, version=0, updated_at=utcnow())
        .on_conflict_do_nothing()
    )
    version = session.execute(
        update(StandingBoard)
        .where(StandingBoard.phase_id == phase_id, StandingBoard.track_id == track_id)
        .values(version=StandingBoard.version + 1, updated_at=utcnow())
        .returning(StandingBoard.version)
    ).scalar_one()
    board_push.board_changed(session, phase_id, track_id, version)  # heard by every web process at the commit


def _rewrite(session: Session, phase: Phase, track: Track, split: str, teams: set) -> None:
    everyone = ALL_TEAMS in teams
    team_ids = sorted(t for t in teams if isinstance(t, int))
    where = (Standing.phase_id == phase.id, Standing.track_id == track.id, Standing.split == split)
    chosen: list[int] = []
    if everyone:
        session.execute(delete(Standing).where(*where, Standing.team_id.is_not(None)))
        chosen = lb._team_submissions(session, phase, track, split)
    elif team_ids:
        session.execute(delete(Standing).where(*where, Standing.team_id.in_(team_ids)))
        chosen = lb._team_submissions(session, phase, track, split, team_ids=team_ids)
    baselines = BASELINES in teams or everyone
    if baselines:
        session.execute(delete(Standing).where(*where, Standing.team_id.is_(None)))
    rows = lb.board_entries(session, phase, track, split, chosen, baselines=baselines)
    if rows:
        session.execute(
            Standing.__table__.insert(),
            [
                {
                    "phase_id": phase.id,
                    "track_id": track.id,
                    "split": split,
                    "team_id": None if row.is_baseline else row.team_id,
                    "submission_id": row.submission_id,
                    "name": row.name[:100],
                    "score": row.score,
                    "scores": row.scores,
                    "submitted_at": row.submitted_at,
                    "is_baseline": row.is_baseline,
                }
                for row in rows
            ],
        )


# --------------------------------------------------------------------------------------------------- reads


def stored_leaderboard(
    session: Session, phase: Phase, track: Track, split: str = "public", version: tuple | None = None
) -> lb.Board:
    """The board of phase × track × split from the stored standings: equal to leaderboard.leaderboard() at any
    moment. The Board built for the board's current version is reused by this process (a frozen value; its
    renderings are memoised on it), so a read costs one primary-key lookup until the board changes.
    version: the board's (version, updated_at) when the caller has just read them in its own query (boards.py
    reads them with the slugs), else they are read here."""
    if split not in lb.SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(lb.SPLITS)}")
    if version is None:
        version = session.execute(
            select(StandingBoard.version, StandingBoard.updated_at).where(
                StandingBoard.phase_id == phase.id, StandingBoard.track_id == track.id
            )
        ).first()
    if session.info.get(_TOUCHED) or version is None:  # uncommitted standings, or a board never written
        return _read(session, phase, track, split)
    key = (str(session.get_bind().url), phase.id, track.id, split)
    tag = hashlib.sha256(repr((*key, *version)).encode()).hexdigest()[:20]
    with _CACHE_LOCK:
        board = _BOARD_CACHE.get(key)
    if board is None or board.version != tag:  # one entry per board: a new version replaces the old one
        board = dataclasses.replace(_read(session, phase, track, split), version=tag)
        with _CACHE_LOCK:
            if key not in _BOARD_CACHE and len(_BOARD_CACHE) >= _BOARD_CACHE_SIZE:
                _BOARD_CACHE.clear()
            _BOARD_CACHE[key] = board
    return board


def _read(session: Session, phase: Phase, track: Track, split: str) -> lb.Board:
    entries = session.execute(
        select(
            Standing.score,
            Standing.submitted_at,
            Standing.submission_id,
            Standing.team_id,
            Standing.name,
            Standing.scores,
            Standing.is_baseline,
        ).where(Standing.phase_id == phase.id, Standing.track_id == track.id, Standing.split == split)
    ).all()
    return lb.Board(phase.id, track.id, split, track.metric, lb.ranked(entries))
