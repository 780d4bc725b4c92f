"""The submission state machine: the one place that knows which state may follow which.

    submitted -> queued -> running -> finished | failed
    queued -> cancelled          (by its team, while it waits)
    running -> queued            (the watchdog requeues a job whose worker stopped heart-beating)
    finished -> rescoring -> running   (labels replaced or an organizer asked for it)
    submitted -> failed          (it could not be enqueued)
    running -> unscorable        (a rescore on new labels that the file no longer fits: not the team's fault)
    unscorable | failed -> rescoring   (any later rescore takes them again)
    unscorable -> finished       (labels switched back to a version it has scores for: restored, labels.py)

Failed and cancelled submissions never count against a team's limits (see limits.py).
"""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.orm import Session

from . import audit
from .errors import IllegalTransition
from .models import Submission, utcnow

SUBMITTED, QUEUED, RUNNING, FINISHED, FAILED, CANCELLED, RESCORING, UNSCORABLE = (
    "submitted",
    "queued",
    "running",
    "finished",
    "failed",
    "cancelled",
    "rescoring",
    "unscorable",
)
STATES = (SUBMITTED, QUEUED, RUNNING, FINISHED, FAILED, CANCELLED, RESCORING, UNSCORABLE)
TRANSITIONS: dict[str, frozenset[str]] = {
    SUBMITTED: frozenset({QUEUED, FAILED}),
    QUEUED: frozenset({RUNNING, CANCELLED, FAILED}),
    RUNNING: frozenset({FINISHED, FAILED, QUEUED, UNSCORABLE}),
    FINISHED: frozenset({RESCORING}),
    RESCORING: frozenset({RUNNING, FAILED}),
    FAILED: frozenset({RESCORING}),
    CANCELLED: frozenset(),
    UNSCORABLE: frozenset({RESCORING, FINISHED}),
}
RESCORABLE = frozenset({FINISHED, FAILED, UNSCORABLE})  # what an organizer's rescore may take
# states that count against the limits; the others (failed, cancelled) are refunded. An unscorable submission was
# a valid upload that the organizers' new labels no longer fit: it keeps counting.
COUNTED = frozenset({SUBMITTED, QUEUED, RUNNING, FINISHED, RESCORING, UNSCORABLE})
IN_FLIGHT = frozenset({SUBMITTED, QUEUED, RUNNING})
CLAIMABLE = frozenset({QUEUED, RESCORING})  # a job may start from these


def check(old: str, new: str) -> None:
    """Raise IllegalTransition unless old -> new is an edge of the machine."""
    if new not in TRANSITIONS.get(old, ()):
        raise IllegalTransition(f"a submission cannot go from '{old}' to '{new}'")


def transition(
    session: Session, submission: Submission, new: str, *, actor_id: int | None = None, reason: str | None = None
) -> None:
    """Move submission to `new` (the caller commits), and audit the change."""
    old = submission.state
    check(old, new)
    submission.state = new
    if new in (FINISHED, FAILED, CANCELLED):
        submission.finished_at = utcnow()
    audit.record(
        session,
        "submission.state",
        submission,
        actor_id=actor_id,
        challenge_id=submission.phase.challenge_id if submission.phase else None,
        before={"state": old},
        after={"state": new},
        reason=reason,
    )


def claim(session: Session, submission_id: int) -> str | None:
    """Atomically move a queued or rescoring submission to running; return the state it left, or None when
    another run already took it (or it is finished, failed or cancelled): a job run twice scores once."""
    for old in CLAIMABLE:
        check(old, RUNNING)
        result = session.execute(
            update(Submission)
            .where(Submission.id == submission_id, Submission.state == old)
            .values(state=RUNNING, attempts=Submission.attempts + 1, heartbeat_at=utcnow())
        )
        if result.rowcount == 1:
            submission = session.get(Submission, submission_id, populate_existing=True)
            audit.record(
                session,
                "submission.state",
                submission,
                challenge_id=submission.phase.challenge_id,
                before={"state": old},
                after={"state": RUNNING},
            )
            session.commit()
            return old
    session.rollback()
    return None
