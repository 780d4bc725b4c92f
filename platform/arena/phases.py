"""The phase as a small state machine: the one place that says what a phase allows at a given moment.

    scheduled -> open -> closed -> private revealed

- scheduled: before `starts_at` (and not closed); nothing is accepted.
- open: uploads are ranked on the public board; teams pick their finals.
- closed: `ends_at` passed or an organizer closed it early. Uploads stop (late ones only where the phase allows
  them: scored on both splits, shown to their team and on the "late" view, never ranked), final picks close, the
  public board is frozen, and the private board stays hidden. Closing never reveals.
- private revealed: an organizer revealed the private board (an audited action) or the bundle's reveal time passed.
  Only a closed phase can be revealed, and a revealed phase cannot reopen until its private board is hidden again.

When a phase is closed (or revealed) by an organizer, or the watchdog sees it closed by time, the automatic final
choice of every team that picked nothing is recorded on its submissions (`final_auto`), audited and shown.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from . import audit
from .errors import Conflict, Forbidden

SCHEDULED, OPEN, CLOSED, REVEALED = "scheduled", "open", "closed", "revealed"
STATES = (SCHEDULED, OPEN, CLOSED, REVEALED)
LABELS = {SCHEDULED: "scheduled", OPEN: "open", CLOSED: "closed", REVEALED: "closed, private board revealed"}


def _timed_state(phase, now: dt.datetime) -> str:
    """scheduled, open or closed, from the dates and the organizer's `closed` flag alone."""
    if phase.closed or now >= phase.ends_at:
        return CLOSED
    return SCHEDULED if now < phase.starts_at else OPEN


def state(phase, now: dt.datetime) -> str:
    """The phase's state at `now` (naive UTC)."""
    timed = _timed_state(phase, now)
    if timed == CLOSED and (phase.private_revealed or (phase.reveal_at is not None and now >= phase.reveal_at)):
        return REVEALED
    return timed


def private_visible(phase, now: dt.datetime) -> bool:
    return state(phase, now) == REVEALED


def picks_open(phase, now: dt.datetime) -> bool:
    return state(phase, now) == OPEN


def accepts_uploads(phase, now: dt.datetime) -> bool:
    """Whether a team's upload is taken now (open, or closed with late submissions allowed)."""
    current = state(phase, now)
    return current == OPEN or (current in (CLOSED, REVEALED) and phase.allow_late)


def upload_is_late(phase, now: dt.datetime) -> bool:
    """False for an upload to an open phase, True for a late one; Forbidden when the phase takes none."""
    current = state(phase, now)
    if current == OPEN:
        return False
    if current in (CLOSED, REVEALED) and phase.allow_late:
        return True
    if current == SCHEDULED:
        raise Forbidden(f"phase '{phase.title}' is scheduled: it opens {phase.starts_at.isoformat()}Z")
    raise Forbidden(f"phase '{phase.title}' is closed: it takes no more submissions")


def check_change(phase, now: dt.datetime) -> None:
    """After an organizer's change to the phase's dates or flags (not yet committed): a private board can be
    revealed only once the phase is closed."""
    if phase.private_revealed and _timed_state(phase, now) != CLOSED:
        raise Conflict(
            "the private board can only be revealed once the phase is closed; close it first "
            "(a revealed phase cannot reopen: hide its private board first)",
            field="private_revealed",
        )


def record_automatic_finals(session: Session, phase, actor_id: int | None = None) -> int:
    """Record, for each team of each track that picked no final submission, the submissions the private board
    takes instead (leaderboard.automatic_finals: its best public ones), as `final_auto`; audit each choice.
    Idempotent; the caller commits. Returns how many teams had their choice recorded."""
    from .leaderboard import automatic_finals
    from .models import Submission, Track

    session.execute(update(Submission).where(Submission.phase_id == phase.id).values(final_auto=False))
    recorded = 0
    for track in session.scalars(select(Track).where(Track.challenge_id == phase.challenge_id)):
        if track.slug not in phase.tracks:
            continue
        for team_id, ids in automatic_finals(session, phase, track).items():
            session.execute(update(Submission).where(Submission.id.in_(ids)).values(final_auto=True))
            audit.record(
                session,
                "finals.automatic",
                phase,
                actor_id=actor_id,
                challenge_id=phase.challenge_id,
                after={"team_id": team_id, "track": track.slug, "submissions": ids},
            )
            recorded += 1
    phase.finals_recorded = True
    return recorded


def record_ended_phases(session: Session, now: dt.datetime) -> int:
    """Record the automatic finals of every phase that closed by time and has none recorded (the watchdog's
    sweep calls this); returns how many phases were recorded."""
    from .models import Phase

    done = 0
    for phase in session.scalars(select(Phase).where(Phase.finals_recorded.is_(False))):
        if state(phase, now) in (CLOSED, REVEALED):
            record_automatic_finals(session, phase)
            done += 1
    if done:
        session.commit()
    return done
