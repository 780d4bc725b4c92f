"""Submissions: upload (streamed, capped, hashed; limits checked under the team lock), view, cancel, pick finals."""

from __future__ import annotations

import logging
import os
from typing import BinaryIO

from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .. import phases, queue, states, storage
from ..errors import ArenaError, Conflict, Forbidden, Invalid, NotFound
from ..limits import check_limits, lock_team
from ..models import Challenge, Membership, Phase, Submission, Track, User, utcnow
from . import methods
from .accounts import require_verified
from .teams import user_team

log = logging.getLogger(__name__)


def phase_and_track(session: Session, challenge: Challenge, phase_slug: str, track_slug: str) -> tuple[Phase, Track]:
    phase = session.scalar(select(Phase).where(Phase.challenge_id == challenge.id, Phase.slug == phase_slug))
    if phase is None:
        raise NotFound(f"challenge '{challenge.slug}' has no phase '{phase_slug}'", field="phase")
    track = session.scalar(select(Track).where(Track.challenge_id == challenge.id, Track.slug == track_slug))
    if track is None or track.slug not in phase.tracks:
        raise NotFound(f"phase '{phase.slug}' has no track '{track_slug}'", field="track")
    return phase, track


def shown_filename(filename: str | None) -> str:
    """The upload's name for display only: its last path component, printable, at most 200 characters."""
    base = os.path.basename((filename or "").replace("\\", "/"))
    return "".join(ch for ch in base if ch.isprintable())[:200] or "upload"


def stored_submission(
    stored: storage.Stored, *, user: User, phase: Phase, track: Track, filename: str | None, note: str, **fields
) -> Submission:
    """The row of a stored upload: one place for the displayed name and the note's length (participants' uploads and
    organizers' baselines alike). `fields`: team_id, created_at, is_baseline, baseline_name."""
    return Submission(
        user_id=user.id,
        phase_id=phase.id,
        track_id=track.id,
        original_name=shown_filename(filename),
        stored_path=stored.relpath,
        sha256=stored.sha256,
        size=stored.size,
        note=(note or "")[:500],
        **fields,
    )


def submit(
    session: Session,
    user: User,
    challenge: Challenge,
    phase_slug: str,
    track_slug: str,
    stream: BinaryIO,
    filename: str | None,
    note: str = "",
    method: methods.Method | None = None,
) -> Submission:
    """Store an upload and queue it for scoring; returns at once with the queued submission. `method`: the
    method it describes (methods.clean validated it)."""
    require_verified(user)
    phase, track = phase_and_track(session, challenge, phase_slug, track_slug)
    team = user_team(session, user, challenge)
    if team is None:
        raise Forbidden("join or create a team in this challenge first")
    if team.status != "approved":
        raise Forbidden(f"your team is {team.status}; it cannot submit")
    now = utcnow()
    late = phases.upload_is_late(phase, now)
    require_labels(track)
    check_limits(session, [team.id], phase, now)  # early answer before the upload; checked again under the lock
    config = current_app.config
    max_bytes = min(track.max_upload_bytes, config["MAX_UPLOAD_BYTES"])
    stored = storage.save_stream(stream, config["STORAGE_DIR"], "submissions", max_bytes)
    try:
        session.commit()
        lock_team(session, team.id)
        check_limits(session, [team.id], phase, now)
        sub = stored_submission(
            stored,
            user=user,
            phase=phase,
            track=track,
            filename=filename,
            note=note,
            team_id=team.id,
            created_at=now,
            late=late,
            **(method or methods.Method()).fields(),
        )
        session.add(sub)
        session.commit()
    except BaseException:
        session.rollback()
        storage.resolve(config["STORAGE_DIR"], stored.relpath).unlink(missing_ok=True)
        raise
    enqueue(session, sub)
    return sub


SCORING_LABELS = {"detection": "detection_gt", "recognition": "test_info"}  # the label file scoring needs


def require_labels(track: Track) -> None:
    """Conflict (409) when the track has no hidden labels to score against: refused before anything is stored."""
    kind = SCORING_LABELS[track.kind]
    if not any(label.kind == kind for label in track.labels):
        raise Conflict(
            f"track '{track.slug}' cannot take submissions yet: its hidden labels ({kind}) are not uploaded; "
            "try again once the organizers have uploaded them"
        )


def enqueue(session: Session, sub: Submission, actor_id: int | None = None) -> None:
    """submitted (or rescoring) -> queued, committed before the job exists so a fast worker finds it claimable.
    Redis down: the stored upload stays `submitted` (or `queued`/`rescoring` if Redis fails between the two steps)
    and the watchdog enqueues it when Redis is back (watchdog.py); it is never lost, nor failed for that."""
    try:
        queue.connect().ping()
    except Exception as exc:
        log.warning(
            "queue unreachable: submission %s stays %s until the watchdog enqueues it (%s)", sub.id, sub.state, exc
        )
        session.commit()
        return
    if sub.state == states.SUBMITTED:
        states.transition(session, sub, states.QUEUED, actor_id=actor_id)
    session.commit()
    try:
        sub.job_id = queue.enqueue_scoring(sub.id, sub.attempts + 1)
        session.commit()
    except Exception:  # Redis went away between the ping and the job: the watchdog enqueues it again
        log.exception("could not enqueue submission %s; the watchdog will", sub.id)
        session.rollback()


def visible_submission(session: Session, user: User | None, submission_id: int) -> Submission:
    """The submission if the user may see it (a member of its team, or an organizer); else NotFound, so that other
    teams cannot even learn that it exists."""
    sub = session.get(Submission, submission_id)
    if sub is None or user is None:
        raise NotFound(f"no submission {submission_id}")
    if user.is_organizer:
        return sub
    if (
        sub.team_id is None
        or session.scalar(select(Membership.id).where(Membership.team_id == sub.team_id, Membership.user_id == user.id))
        is None
    ):
        raise NotFound(f"no submission {submission_id}")
    return sub


def cancel(session: Session, user: User, submission_id: int) -> Submission:
    sub = visible_submission(session, user, submission_id)
    if sub.state != states.QUEUED:
        raise Conflict(f"only a queued submission can be cancelled; this one is {sub.state}")
    states.transition(session, sub, states.CANCELLED, actor_id=user.id)
    session.commit()
    if sub.job_id:
        try:
            from rq.job import Job

            Job.fetch(sub.job_id, connection=queue.connect()).cancel()
        except Exception:  # the job is gone or already taken: the state check in the job skips it anyway
            log.info("job %s of cancelled submission %s could not be cancelled in RQ", sub.job_id, sub.id)
    return sub


def select_final(session: Session, user: User, submission_id: int, selected: bool) -> Submission:
    sub = visible_submission(session, user, submission_id)
    if sub.is_baseline:
        raise Invalid("a baseline cannot be a final submission")
    if not phases.picks_open(sub.phase, utcnow()):
        raise Forbidden(f"final picks close when the phase ends (the phase is {sub.phase.state(utcnow())})")
    if selected and sub.late:
        raise Conflict("a late submission is never ranked; it cannot be a final pick")
    if selected and sub.disqualified_reason:
        raise Conflict("a disqualified submission cannot be a final pick")
    if selected and sub.state != states.FINISHED:
        raise Conflict("only a finished submission can be picked for the private leaderboard")
    if selected and sub.phase.require_method_for_final and not sub.method_name:
        raise Conflict(
            f"phase '{sub.phase.title}' needs a method name on every final pick; submission {sub.id} names none "
            "(upload it again with a method name)",
            field="method_name",
        )
    if selected and not sub.selected_final:
        count = session.scalar(
            select(func.count(Submission.id)).where(
                Submission.team_id == sub.team_id,
                Submission.phase_id == sub.phase_id,
                Submission.track_id == sub.track_id,
                Submission.selected_final.is_(True),
                Submission.disqualified_reason.is_(None),
                Submission.state != states.FAILED,
            )
        )
        if count >= sub.phase.final_count:
            raise Conflict(f"at most {sub.phase.final_count} final submissions; unpick one first")
    sub.selected_final = selected
    session.commit()
    return sub


def final_picks(session: Session, sub: Submission) -> list[int]:
    """The ids of the team's explicit final picks in the submission's phase and track."""
    return list(
        session.scalars(
            select(Submission.id)
            .where(
                Submission.team_id == sub.team_id,
                Submission.phase_id == sub.phase_id,
                Submission.track_id == sub.track_id,
                Submission.selected_final.is_(True),
            )
            .order_by(Submission.id)
        )
    )


def final_confirmation(session: Session, sub: Submission, before: list[int]) -> str:
    """What a pick (or unpick) did, in words: the web page flashes it, the API and the CLI return it. `before`:
    the team's picks before the change."""
    method = f" ({sub.method_name})" if sub.method_name else ""
    where = f"phase {sub.phase.title}, track {sub.track.title}"
    now = final_picks(session, sub)
    if sub.id not in now:
        rest = ", ".join(map(str, now)) or "none: the automatic choice applies again"
        return f"Submission {sub.id}{method} is no longer a final pick for {where}; your picks: {rest}."
    if sub.id in before:
        return f"Submission {sub.id}{method} was already a final pick for {where}."
    picks = f"{len(now)} of {sub.phase.final_count}"
    if not before:
        done = f"Submission {sub.id}{method} is now your final pick for {where} ({picks})"
        return f"{done}; it replaces the automatic choice."
    others = ", ".join(map(str, before))
    return f"Submission {sub.id}{method} is now your final pick for {where} ({picks}), beside {others}."


def team_submissions(session: Session, user: User, challenge: Challenge) -> list[Submission]:
    team = user_team(session, user, challenge)
    if team is None:
        return []
    return list(session.scalars(select(Submission).where(Submission.team_id == team.id).order_by(Submission.id.desc())))


def public_view(sub: Submission) -> dict:
    """What the submission's team sees (the API's submission object); a failed submission shows no scores."""
    scored = sub.state != states.FAILED
    return {
        "id": sub.id,
        "state": sub.state,
        "phase": sub.phase.slug,
        "track": sub.track.slug,
        "file_name": sub.original_name,
        "size": sub.size,
        "sha256": sub.sha256,
        "note": sub.note,
        "created_at": sub.created_at.isoformat() + "Z",
        "finished_at": sub.finished_at.isoformat() + "Z" if sub.finished_at else None,
        "metric": sub.track.metric,
        "public_score": sub.public_score if scored else None,
        "scores": (sub.scores or {}).get("public") if sub.state == states.FINISHED else None,
        "error": sub.error,
        "error_line": sub.error_line,
        "selected_final": sub.selected_final,
        "final_auto": sub.final_auto,
        "late": sub.late,
        "phase_state": sub.phase.state(utcnow()),
        "disqualified_reason": sub.disqualified_reason,
        "is_baseline": sub.is_baseline,
        "method": methods.view(sub),
    }


__all__ = ["ArenaError", "submit", "cancel", "select_final", "visible_submission", "public_view"]
