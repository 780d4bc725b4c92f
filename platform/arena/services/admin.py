"""Organizer actions: phases, hidden labels, rescoring, moderation, baselines, the watchdog. Each one is audited."""

from __future__ import annotations

import datetime as dt
import logging
from typing import BinaryIO

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import audit, states, storage
from ..errors import Conflict, Forbidden, Invalid, NotFound
from ..models import LabelFile, Phase, Submission, Team, Track, User, utcnow
from .submissions import enqueue, stored_submission

log = logging.getLogger(__name__)
LABEL_KINDS = {"detection": ("detection_gt",), "recognition": ("test_info", "verification_pairs")}
TEAM_ACTIONS = ("approve", "ban", "hide", "unhide")


def require_organizer(user: User | None) -> User:
    if user is None or not user.is_organizer:
        raise Forbidden("organizers only")
    return user


def _reason(reason: str | None) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise Invalid("give a reason; it goes to the audit log", field="reason")
    return reason[:500]


def update_phase(session: Session, actor: User, phase: Phase, changes: dict, reason: str | None = None) -> Phase:
    """Open, close, extend or reveal: changes may hold starts_at, ends_at (datetimes), closed, private_revealed."""
    allowed = {"starts_at", "ends_at", "closed", "private_revealed"}
    unknown = set(changes) - allowed
    if unknown:
        raise Invalid(f"unknown phase field '{sorted(unknown)[0]}'; allowed: {', '.join(sorted(allowed))}")
    before = {k: _jsonable(getattr(phase, k)) for k in changes}
    starts, ends = changes.get("starts_at", phase.starts_at), changes.get("ends_at", phase.ends_at)
    if ends <= starts:
        raise Invalid("the phase must end after it starts", field="ends_at")
    for key, value in changes.items():
        setattr(phase, key, value)
    audit.record(
        session,
        "phase.update",
        phase,
        actor_id=actor.id,
        challenge_id=phase.challenge_id,
        before=before,
        after={k: _jsonable(v) for k, v in changes.items()},
        reason=reason,
    )
    session.commit()
    return phase


def _jsonable(value):
    return value.isoformat() if isinstance(value, dt.datetime) else value


def store_labels(session: Session, track: Track, kind: str, stream: BinaryIO, actor_id: int | None = None) -> LabelFile:
    """Store (or replace) a hidden label file of a track under storage/labels/<track id>/, validated with the
    scorer's readers and checksummed. Replacing labels by different ones rescores every finished submission."""
    from .. import jobs  # the scorer lives behind the job module

    if kind not in LABEL_KINDS[track.kind]:
        raise Invalid(f"a {track.kind} track takes labels of kind {', '.join(LABEL_KINDS[track.kind])}", field="kind")
    storage_dir = current_app.config["STORAGE_DIR"]
    stored = storage.save_stream(stream, storage_dir, f"labels/{track.id}", 2**34)
    path = storage.resolve(storage_dir, stored.relpath)
    current = {label.kind: label for label in track.labels}
    existing = current.get(kind)
    if existing is not None and existing.sha256 == stored.sha256:
        path.unlink(missing_ok=True)
        return existing
    others = {k: storage.resolve(storage_dir, v.stored_path) for k, v in current.items() if k != kind}
    try:
        num_images = jobs.validate_labels(kind, path, others)
    except jobs.label_error_types() as exc:
        path.unlink(missing_ok=True)
        raise Invalid(f"the {kind} file is invalid: {exc}", field="file") from None
    final = path.with_name(f"{kind}-{stored.sha256[:16]}.labels")
    path.replace(final)
    relpath = f"labels/{track.id}/{final.name}"
    before = {"sha256": existing.sha256} if existing else None
    if existing is None:
        existing = LabelFile(track_id=track.id, kind=kind)
        session.add(existing)
    existing.stored_path, existing.sha256, existing.size = relpath, stored.sha256, stored.size
    existing.num_images, existing.uploaded_at, existing.uploaded_by_id = num_images, utcnow(), actor_id
    audit.record(
        session,
        "labels.upload",
        track,
        actor_id=actor_id,
        challenge_id=track.challenge_id,
        before=before,
        after={"kind": kind, "sha256": stored.sha256, "size": stored.size},
    )
    session.commit()
    session.refresh(track)
    if before is not None:
        rescore_track(session, track, actor_id=actor_id, reason=f"{kind} labels replaced")
    return existing


def rescore_track(session: Session, track: Track, actor_id: int | None = None, reason: str | None = None) -> int:
    """Put every finished submission of the track back on the queue (finished -> rescoring); return the count."""
    subs = list(
        session.scalars(select(Submission).where(Submission.track_id == track.id, Submission.state == states.FINISHED))
    )
    for sub in subs:
        states.transition(session, sub, states.RESCORING, actor_id=actor_id, reason=reason)
    audit.record(
        session,
        "track.rescore",
        track,
        actor_id=actor_id,
        challenge_id=track.challenge_id,
        after={"submissions": len(subs)},
        reason=reason,
    )
    session.commit()
    for sub in subs:
        enqueue(session, sub, actor_id=actor_id)
    return len(subs)


def moderate_team(session: Session, actor: User, team: Team, action: str, reason: str | None) -> Team:
    if action not in TEAM_ACTIONS:
        raise Invalid(f"unknown action '{action}'; choose one of {', '.join(TEAM_ACTIONS)}", field="action")
    reason = _reason(reason)
    before = {"status": team.status, "hidden": team.hidden}
    if action == "approve":
        team.status = "approved"
    elif action == "ban":
        team.status = "banned"
    else:
        team.hidden = action == "hide"
    audit.record(
        session,
        f"team.{action}",
        team,
        actor_id=actor.id,
        challenge_id=team.challenge_id,
        before=before,
        after={"status": team.status, "hidden": team.hidden},
        reason=reason,
    )
    session.commit()
    return team


def disqualify(session: Session, actor: User, sub: Submission, reason: str | None) -> Submission:
    reason = _reason(reason)
    before = {"disqualified_reason": sub.disqualified_reason}
    sub.disqualified_reason = reason
    audit.record(
        session,
        "submission.disqualify",
        sub,
        actor_id=actor.id,
        challenge_id=sub.phase.challenge_id,
        before=before,
        after={"disqualified_reason": reason},
        reason=reason,
    )
    session.commit()
    return sub


def post_baseline(
    session: Session,
    actor: User,
    phase: Phase,
    track: Track,
    stream: BinaryIO,
    filename: str | None,
    name: str,
    note: str = "",
) -> Submission:
    """A reference submission scored like any other and shown on the boards as a marked baseline row (no limits)."""
    name = " ".join((name or "").split())[:100]
    if not name:
        raise Invalid("a baseline needs a name", field="name")
    if track.slug not in phase.tracks:
        raise NotFound(f"phase '{phase.slug}' has no track '{track.slug}'", field="track")
    storage_dir = current_app.config["STORAGE_DIR"]
    stored = storage.save_stream(stream, storage_dir, "submissions", track.max_upload_bytes)
    try:
        sub = stored_submission(
            stored,
            user=actor,
            phase=phase,
            track=track,
            filename=filename,
            note=note,
            is_baseline=True,
            baseline_name=name,
        )
        session.add(sub)
        session.flush()
        audit.record(
            session,
            "baseline.post",
            sub,
            actor_id=actor.id,
            challenge_id=phase.challenge_id,
            after={"name": name, "note": sub.note},
        )
        session.commit()
    except BaseException:  # no row points at the stored file: delete it now, not at the hourly orphan sweep
        session.rollback()
        storage.resolve(storage_dir, stored.relpath).unlink(missing_ok=True)
        raise
    enqueue(session, sub, actor_id=actor.id)
    return sub


def watchdog(session: Session, now: dt.datetime | None = None) -> dict[str, int]:
    """Requeue running submissions whose worker stopped heart-beating, at most MAX_ATTEMPTS runs each; after that
    fail them with a clear message (a failed submission is refunded) and tell the team; enqueue the ones Redis
    lost. The sweep itself lives in arena/watchdog.py."""
    from .. import watchdog as dog

    return dog.sweep(session, now).as_dict()


def get_or_404(session: Session, model, object_id: int):
    obj = session.get(model, object_id)
    if obj is None:
        raise NotFound(f"no {model.__name__.lower()} {object_id}")
    return obj


__all__ = ["Conflict"]
