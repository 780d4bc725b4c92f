"""Versioned hidden labels: every upload is a new version, kept; the active one of each kind is chosen explicitly,
after the organizer has seen its diff against the active one, and can be switched back.

Scores are kept per set of active labels (`label_key`, SubmissionScore): activating a version restores every
submission that has scores for the new set at once (switching back loses nothing) and rescores the others. A
submission that fit earlier labels but not the new ones is `unscorable` (not its team's fault: no failure
notification, it keeps counting against the limits) and any later rescore takes it again.

The scorer's readers are behind the job module (jobs.validate_labels, jobs.label_diff), as for scoring.
"""

from __future__ import annotations

import logging
from typing import BinaryIO

from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from . import audit, standings, states, storage
from .errors import Invalid
from .models import LabelFile, LabelVersion, Submission, SubmissionScore, Track, utcnow

log = logging.getLogger(__name__)
KINDS = {"detection": ("detection_gt",), "recognition": ("test_info", "verification_pairs")}
UNSCORABLE_MESSAGE = (
    "the organizers changed the hidden labels and this file no longer fits them ({why}); this is not a fault of "
    "your file: it is rescored when the labels change again"
)


def label_key(track: Track) -> str:
    """The set of active labels of a track, as the key of the scores computed under it."""
    return ",".join(sorted(f"{label.kind}:{label.sha256[:16]}" for label in track.labels))


def versions(session: Session, track: Track) -> list[LabelVersion]:
    return list(
        session.scalars(
            select(LabelVersion)
            .where(LabelVersion.track_id == track.id)
            .order_by(LabelVersion.kind, LabelVersion.version.desc())
        )
    )


def active_version_ids(track: Track) -> set[int]:
    return {label.version_id for label in track.labels if label.version_id is not None}


def _active_files(track: Track) -> dict:
    storage_dir = current_app.config["STORAGE_DIR"]
    return {label.kind: storage.resolve(storage_dir, label.stored_path) for label in track.labels}


def upload(
    session: Session,
    track: Track,
    kind: str,
    stream: BinaryIO,
    actor_id: int | None = None,
    filename: str | None = None,
) -> tuple[LabelVersion, bool]:
    """Store a label file as a new version of its kind (validated; its errors name `filename`). A file already
    stored as a version is that version, unchanged (loading a bundle again changes nothing). The first version of
    a kind becomes active at once; a later one waits for `activate`. Returns (version, whether it is new)."""
    from . import jobs

    if kind not in KINDS[track.kind]:
        raise Invalid(f"a {track.kind} track takes labels of kind {', '.join(KINDS[track.kind])}", field="kind")
    name = _display_name(filename, kind)
    storage_dir = current_app.config["STORAGE_DIR"]
    stored = storage.save_stream(stream, storage_dir, f"labels/{track.id}", 2**34)
    path = storage.resolve(storage_dir, stored.relpath)
    known = session.scalar(
        select(LabelVersion).where(
            LabelVersion.track_id == track.id, LabelVersion.kind == kind, LabelVersion.sha256 == stored.sha256
        )
    )
    if known is not None:
        path.unlink(missing_ok=True)
        return known, False
    others = {k: v for k, v in _active_files(track).items() if k != kind}
    try:
        num_images = jobs.validate_labels(kind, path, others, name=name)
    except jobs.label_error_types() as exc:
        path.unlink(missing_ok=True)
        raise Invalid(f"the {kind} file '{name}' is invalid: {exc}", field="file") from None
    final = path.with_name(f"{kind}-{stored.sha256[:16]}.labels")
    path.replace(final)
    number = (
        session.scalar(
            select(func.max(LabelVersion.version)).where(LabelVersion.track_id == track.id, LabelVersion.kind == kind)
        )
        or 0
    ) + 1
    version = LabelVersion(
        track_id=track.id,
        kind=kind,
        version=number,
        stored_path=f"labels/{track.id}/{final.name}",
        sha256=stored.sha256,
        size=stored.size,
        num_images=num_images,
        original_name=name,
        uploaded_by_id=actor_id,
    )
    session.add(version)
    session.flush()
    audit.record(
        session,
        "labels.upload",
        track,
        actor_id=actor_id,
        challenge_id=track.challenge_id,
        after={"kind": kind, "version": number, "sha256": stored.sha256, "size": stored.size, "name": name},
    )
    session.commit()
    if not any(label.kind == kind for label in track.labels):
        activate(session, version, actor_id=actor_id, reason="first labels of their kind")
    return version, True


def _display_name(filename: str | None, kind: str) -> str:
    from .services.submissions import shown_filename

    return shown_filename(filename) if filename else f"{kind} upload"


def diff(session: Session, version: LabelVersion) -> dict:
    """What activating `version` changes against the active labels of its kind (jobs.label_diff), with the
    versions compared."""
    from . import jobs

    track = session.get(Track, version.track_id)
    files = _active_files(track)
    active = next((label for label in track.labels if label.kind == version.kind), None)
    new = storage.resolve(current_app.config["STORAGE_DIR"], version.stored_path)
    try:
        changes = jobs.label_diff(version.kind, files.get(version.kind), new, files.get("test_info"))
    except jobs.label_error_types() as exc:
        raise Invalid(f"version {version.version} cannot be compared: {exc}") from None
    active_version = session.get(LabelVersion, active.version_id) if active and active.version_id else None
    return {
        "kind": version.kind,
        "version": version.version,
        "active_version": active_version.version if active_version else None,
        "is_active": active is not None and active.version_id == version.id,
        "changes": changes,
    }


def activate(
    session: Session, version: LabelVersion, actor_id: int | None = None, reason: str | None = None
) -> dict[str, int]:
    """Make `version` the active labels of its kind (audited), then restore the submissions that have scores
    under the new set of labels and rescore the others; returns {"restored": n, "rescoring": m}."""
    from .services.submissions import enqueue

    track = session.get(Track, version.track_id)
    label = session.scalar(select(LabelFile).where(LabelFile.track_id == track.id, LabelFile.kind == version.kind))
    before = None
    if label is None:
        label = LabelFile(track_id=track.id, kind=version.kind)
        session.add(label)
    else:
        before = {"version_id": label.version_id, "sha256": label.sha256}
    label.stored_path, label.sha256, label.size = version.stored_path, version.sha256, version.size
    label.num_images, label.uploaded_at, label.uploaded_by_id = version.num_images, version.uploaded_at, actor_id
    label.version_id = version.id
    version.activated_at = utcnow()
    audit.record(
        session,
        "labels.activate",
        track,
        actor_id=actor_id,
        challenge_id=track.challenge_id,
        before=before,
        after={"kind": version.kind, "version": version.version, "version_id": version.id, "sha256": version.sha256},
        reason=reason,
    )
    session.commit()
    session.refresh(track)
    key = label_key(track)
    restored, queued = 0, []
    subs = session.scalars(
        select(Submission).where(
            Submission.track_id == track.id, Submission.state.in_((states.FINISHED, states.UNSCORABLE))
        )
    ).all()
    for sub in subs:
        kept = session.scalar(
            select(SubmissionScore).where(SubmissionScore.submission_id == sub.id, SubmissionScore.label_key == key)
        )
        if kept is not None:
            _restore(sub, kept)
            if sub.state == states.UNSCORABLE:
                states.transition(session, sub, states.FINISHED, actor_id=actor_id, reason="labels switched back")
            restored += 1
        elif before is not None:
            states.transition(
                session, sub, states.RESCORING, actor_id=actor_id, reason=f"{version.kind} labels changed"
            )
            queued.append(sub)
    standings.refresh_track(session, track)  # the restored scores move the boards, in this transaction
    session.commit()
    for sub in queued:
        enqueue(session, sub, actor_id=actor_id)
    return {"restored": restored, "rescoring": len(queued)}


def _restore(sub: Submission, kept: SubmissionScore) -> None:
    sub.public_score, sub.private_score = kept.public_score, kept.private_score
    sub.scores, sub.curve, sub.error, sub.error_line = kept.scores, kept.curve, None, None


def keep_scores(session: Session, sub: Submission, key: str) -> None:
    """Store the submission's fresh scores under the labels they were computed with (the caller commits)."""
    kept = session.scalar(
        select(SubmissionScore).where(SubmissionScore.submission_id == sub.id, SubmissionScore.label_key == key)
    )
    if kept is None:
        kept = SubmissionScore(submission_id=sub.id, label_key=key)
        session.add(kept)
    kept.public_score, kept.private_score = sub.public_score, sub.private_score
    kept.scores, kept.curve, kept.scored_at = sub.scores, sub.curve, utcnow()


def was_scored_before(session: Session, submission_id: int) -> bool:
    return session.scalar(select(SubmissionScore.id).where(SubmissionScore.submission_id == submission_id)) is not None


def mark_unscorable(session: Session, submission_id: int, why: str) -> None:
    """running -> unscorable: off the boards (no scores under these labels), its final pick kept, no notification."""
    sub = session.get(Submission, submission_id, populate_existing=True)
    sub.public_score = sub.private_score = sub.scores = sub.curve = None
    sub.error, sub.error_line = UNSCORABLE_MESSAGE.format(why=why), None
    states.transition(session, sub, states.UNSCORABLE, reason="the active labels changed; the file no longer fits")
    session.commit()


def rescore(
    session: Session,
    track: Track,
    actor_id: int | None = None,
    reason: str | None = None,
    states_: tuple[str, ...] | None = None,
    team_id: int | None = None,
) -> int:
    """Put a set of the track's submissions back on the queue: those in `states_` (default: finished, failed and
    unscorable) of one team or of all; returns how many. Audited once for the set."""
    from .services.submissions import enqueue

    wanted = tuple(states_ or sorted(states.RESCORABLE))
    unknown = [s for s in wanted if s not in states.RESCORABLE]
    if unknown:
        raise Invalid(
            f"cannot rescore '{unknown[0]}' submissions; choose among {', '.join(sorted(states.RESCORABLE))}",
            field="states",
        )
    query = select(Submission).where(Submission.track_id == track.id, Submission.state.in_(wanted))
    if team_id is not None:
        query = query.where(Submission.team_id == team_id)
    subs = list(session.scalars(query.order_by(Submission.id)))
    for sub in subs:
        states.transition(session, sub, states.RESCORING, actor_id=actor_id, reason=reason)
    audit.record(
        session,
        "track.rescore",
        track,
        actor_id=actor_id,
        challenge_id=track.challenge_id,
        after={"submissions": len(subs), "states": list(wanted), "team_id": team_id},
        reason=reason,
    )
    session.commit()
    for sub in subs:
        enqueue(session, sub, actor_id=actor_id)
    return len(subs)
