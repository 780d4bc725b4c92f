"""Integrity flags: after a submission is scored, the worker compares it with the other teams' finished submissions
of the same phase and track, and raises a flag, with its evidence, into the organizers' queue when

- the file is byte-identical to another team's (the same sha256 and size), or
- the predictions are near-identical (jobs.similarity, screened on sketches of the predictions): recognition
  features whose mean per-image cosine is at least INTEGRITY_FEATURE_COSINE, or detection files whose share of twin
  boxes is at least INTEGRITY_BOX_SHARE. docs/operations.md says how these thresholds were measured.

A flag is only a suspicion: organizers dismiss it or disqualify one of its two submissions, with a reason; both
actions are audited. Comparisons are capped at INTEGRITY_MAX_COMPARE other submissions (the newest) per run.
"""

from __future__ import annotations

import logging

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from . import audit, states
from .errors import Conflict, Invalid
from .models import IntegrityFlag, Submission, User, utcnow

log = logging.getLogger(__name__)
IDENTICAL, SIMILAR = "identical_file", "similar_predictions"
OPEN, DISMISSED, DISQUALIFIED = "open", "dismissed", "disqualified"
DEFAULTS = {"INTEGRITY_FEATURE_COSINE": 0.9, "INTEGRITY_BOX_SHARE": 0.5, "INTEGRITY_MAX_COMPARE": 200}


def _setting(name: str):
    return current_app.config.get(name, DEFAULTS[name])


def check_submission(session: Session, sub: Submission, compare) -> list[IntegrityFlag]:
    """Flag `sub` against the other teams' finished submissions (the caller commits nothing: this commits).
    compare(other, threshold) -> (statistic, evidence): jobs.similarity.Comparer(sub, ...).compare, which may
    answer a statistic estimated on a sample when it is far below the threshold."""
    if sub.team_id is None or sub.is_baseline:
        return []
    threshold = _setting("INTEGRITY_FEATURE_COSINE" if sub.track.kind == "recognition" else "INTEGRITY_BOX_SHARE")
    others = session.scalars(
        select(Submission)
        .where(
            Submission.phase_id == sub.phase_id,
            Submission.track_id == sub.track_id,
            Submission.state == states.FINISHED,
            Submission.team_id.is_not(None),
            Submission.team_id != sub.team_id,
            Submission.id != sub.id,
        )
        .order_by(Submission.id.desc())
        .limit(_setting("INTEGRITY_MAX_COMPARE"))
    ).all()
    raised = []
    for other in others:
        if other.sha256 == sub.sha256 and other.size == sub.size:
            flag = _raise(session, sub, other, IDENTICAL, 1.0, {"sha256": sub.sha256, "size": sub.size})
        else:
            try:
                value, evidence = compare(other, threshold)
            except Exception as exc:  # a comparison that cannot run (a file gone) must not stop the others
                log.warning("integrity: cannot compare submissions %s and %s: %s", sub.id, other.id, exc)
                continue
            if value < threshold:
                continue
            flag = _raise(session, sub, other, SIMILAR, value, {**evidence, "threshold": threshold})
        if flag is not None:
            raised.append(flag)
    session.commit()
    return raised


def _raise(session: Session, sub: Submission, other: Submission, kind: str, value: float, evidence: dict):
    known = session.scalar(
        select(IntegrityFlag).where(
            IntegrityFlag.kind == kind, IntegrityFlag.submission_id == sub.id, IntegrityFlag.other_id == other.id
        )
    )
    if known is not None:  # a rescore finds the same pair again: one flag
        return None
    flag = IntegrityFlag(
        challenge_id=sub.phase.challenge_id,
        kind=kind,
        submission_id=sub.id,
        other_id=other.id,
        similarity=float(value),
        evidence={**evidence, "teams": [sub.team_id, other.team_id]},
    )
    session.add(flag)
    session.flush()
    audit.record(
        session,
        "integrity.flag",
        flag,
        challenge_id=flag.challenge_id,
        after={"kind": kind, "submissions": [sub.id, other.id], "similarity": round(float(value), 6)},
    )
    log.info("integrity: %s between submissions %s and %s (%.4f)", kind, sub.id, other.id, value)
    return flag


def queue(session: Session, challenge_id: int, status: str | None = OPEN) -> list[IntegrityFlag]:
    query = select(IntegrityFlag).where(IntegrityFlag.challenge_id == challenge_id)
    if status is not None:
        query = query.where(IntegrityFlag.status == status)
    return list(session.scalars(query.order_by(IntegrityFlag.id.desc())))


def resolve(
    session: Session, actor: User, flag: IntegrityFlag, action: str, reason: str | None, submission_id: int | None
) -> IntegrityFlag:
    """dismiss, or disqualify one of the flag's two submissions (default: the later one), with a reason."""
    from .services import admin

    reason = (reason or "").strip()
    if not reason:
        raise Invalid("give a reason; it goes to the audit log", field="reason")
    if flag.status != OPEN:
        raise Conflict(f"flag {flag.id} is already {flag.status}")
    before = {"status": flag.status}
    if action == "disqualify":
        target_id = submission_id or flag.submission_id
        if target_id not in (flag.submission_id, flag.other_id):
            raise Invalid(
                f"submission {target_id} is not one of this flag's ({flag.submission_id}, {flag.other_id})",
                field="submission_id",
            )
        admin.disqualify(session, actor, session.get(Submission, target_id), f"integrity flag {flag.id}: {reason}")
        flag.status = DISQUALIFIED
    elif action == "dismiss":
        flag.status = DISMISSED
    else:
        raise Invalid(f"unknown action '{action}'; choose dismiss or disqualify", field="action")
    flag.reason, flag.resolved_by_id, flag.resolved_at = reason[:500], actor.id, utcnow()
    audit.record(
        session,
        f"integrity.{action}",
        flag,
        actor_id=actor.id,
        challenge_id=flag.challenge_id,
        before=before,
        after={"status": flag.status, "submission_id": submission_id or flag.submission_id},
        reason=reason,
    )
    session.commit()
    return flag


def view(flag: IntegrityFlag) -> dict:
    """A flag as organizers see it (API and page)."""
    return {
        "id": flag.id,
        "kind": flag.kind,
        "status": flag.status,
        "similarity": flag.similarity,
        "evidence": flag.evidence or {},
        "submission_id": flag.submission_id,
        "other_id": flag.other_id,
        "teams": [_team_name(flag.submission), _team_name(flag.other)],
        "phase": flag.submission.phase.slug,
        "track": flag.submission.track.slug,
        "reason": flag.reason,
        "created_at": flag.created_at.isoformat() + "Z",
    }


def _team_name(sub: Submission) -> str | None:
    return sub.team.name if sub.team else None
