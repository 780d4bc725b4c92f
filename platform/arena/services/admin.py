"""Organizer actions: phases, hidden labels, rescoring, moderation, baselines, the watchdog. Each one is audited."""

from __future__ import annotations

import datetime as dt
import logging
from typing import BinaryIO

from flask import current_app
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from .. import audit, labels, notify, phases, storage
from ..errors import Conflict, Forbidden, Invalid, NotFound
from ..models import LabelVersion, Phase, Standing, Submission, Team, Track, User, utcnow
from ..states import FINISHED, RESCORABLE, RESCORING, UNSCORABLE
from . import methods
from .submissions import enqueue, stored_submission

log = logging.getLogger(__name__)
LABEL_KINDS = labels.KINDS
TEAM_ACTIONS = ("approve", "ban", "unban", "hide", "unhide")
DISQUALIFIABLE = frozenset({FINISHED, RESCORING, UNSCORABLE})  # a scored submission (it may hold a board row)


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
    now = utcnow()
    old_state = phase.state(now)
    for key, value in changes.items():
        setattr(phase, key, value)
    try:
        phases.check_change(phase, now)
    except Conflict:
        session.rollback()
        raise
    new_state = phase.state(now)
    if new_state != old_state:
        action = "phase.reveal" if new_state == phases.REVEALED else "phase.state"
        audit.record(
            session,
            action,
            phase,
            actor_id=actor.id,
            challenge_id=phase.challenge_id,
            before={"state": old_state},
            after={"state": new_state},
            reason=reason,
        )
    if new_state in (phases.CLOSED, phases.REVEALED) and not phase.finals_recorded:
        phases.record_automatic_finals(session, phase, actor_id=actor.id)
    elif new_state in (phases.SCHEDULED, phases.OPEN) and phase.finals_recorded:  # reopened: picks are open again
        session.execute(update(Submission).where(Submission.phase_id == phase.id).values(final_auto=False))
        phase.finals_recorded = False
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


def store_labels(
    session: Session,
    track: Track,
    kind: str,
    stream: BinaryIO,
    actor_id: int | None = None,
    filename: str | None = None,
) -> LabelVersion:
    """Store a hidden label file as a new version (labels.upload): active at once when it is the first of its kind,
    else waiting for the organizer to review its diff and activate it."""
    return labels.upload(session, track, kind, stream, actor_id=actor_id, filename=filename)[0]


def activate_labels(
    session: Session, actor: User, version: LabelVersion, reason: str | None, dry_run: bool = False
) -> dict:
    """The diff of a label version against the active one; unless dry_run, make it active (labels.activate)."""
    out = {"diff": labels.diff(session, version), "activated": False, "restored": 0, "rescoring": 0}
    if not dry_run:
        out |= labels.activate(session, version, actor_id=actor.id, reason=_reason(reason))
        out["activated"] = True
    return out


def rescore_track(
    session: Session,
    track: Track,
    actor_id: int | None = None,
    reason: str | None = None,
    states_: tuple[str, ...] | None = None,
    team_id: int | None = None,
) -> int:
    """Rescore a set of the track's submissions (all rescorable ones, by state, by team): labels.rescore."""
    return labels.rescore(session, track, actor_id, reason, states_=states_, team_id=team_id)


def team_actions(team: Team) -> tuple[str, ...]:
    """The moderation actions a team's state allows: approve a pending team, ban one that is not banned, unban a
    banned one, hide a visible one, unhide a hidden one; a team merged into another takes none."""
    if team.merged_into_id is not None:
        return ()
    allowed = {
        "approve": team.status == "pending",
        "ban": team.status != "banned",
        "unban": team.status == "banned",
        "hide": not team.hidden,
        "unhide": team.hidden,
    }
    return tuple(a for a in TEAM_ACTIONS if allowed[a])


_TEAM_DONE = {"approve": "approved", "ban": "banned", "unban": "unbanned", "hide": "hidden", "unhide": "shown again"}


def team_effect(session: Session, team: Team, action: str) -> str:
    """What moderating the team does, in numbers read now (before the action): the confirmation and the message."""
    finished = session.scalar(select(func.count()).where(Submission.team_id == team.id, Submission.state == FINISHED))
    rows = session.scalar(select(func.count()).where(Standing.team_id == team.id))
    if action in ("ban", "hide"):
        return f"its {finished} finished submissions leave the boards ({rows} board rows)"
    if action in ("unban", "unhide"):
        return f"its {finished} finished submissions return to the boards" + (
            "" if action == "unhide" or not team.hidden else " once it is unhidden"
        )
    return "it may submit" if action == "approve" else ""


def moderate_team(session: Session, actor: User, team: Team, action: str, reason: str | None) -> Team:
    """Approve, ban, unban, hide or unhide a team, when its state allows it (team_actions; else a 409)."""
    return moderate(session, actor, team, action, reason)[0]


def moderate(session: Session, actor: User, team: Team, action: str, reason: str | None) -> tuple[Team, str]:
    """moderate_team, and the message that says what was done ("Team 'Foo' banned: its 3 ...")."""
    if action not in TEAM_ACTIONS:
        raise Invalid(f"unknown action '{action}'; choose one of {', '.join(TEAM_ACTIONS)}", field="action")
    allowed = team_actions(team)
    if action not in allowed:
        state = "merged" if team.merged_into_id else f"{team.status}{', hidden' if team.hidden else ''}"
        offer = f"; it allows: {', '.join(allowed)}" if allowed else "; it allows none"
        raise Conflict(f"team '{team.name}' cannot be {_TEAM_DONE[action]}: it is {state}{offer}", field="action")
    reason = _reason(reason)
    effect = team_effect(session, team, action)
    before = {"status": team.status, "hidden": team.hidden}
    if action == "approve":
        team.status = "approved"
    elif action == "ban":
        team.status = "banned"
    elif action == "unban":
        team.status = "approved"
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
    return team, f"Team '{team.name}' {_TEAM_DONE[action]}" + (f": {effect}." if effect else ".")


def can_disqualify(sub: Submission) -> bool:
    """Only a scored submission that is not disqualified yet (a queued, failed or cancelled one holds no score)."""
    return sub.state in DISQUALIFIABLE and sub.disqualified_reason is None


def disqualify_effect(session: Session, sub: Submission) -> str:
    rows = session.scalar(select(func.count()).where(Standing.submission_id == sub.id))
    pick = "; its final pick is freed" if sub.selected_final or sub.final_auto else ""
    return f"it leaves the boards ({rows} board rows){pick}; its team is told"


def disqualify(session: Session, actor: User, sub: Submission, reason: str | None) -> Submission:
    """Take a submission off every board; a final pick it held is freed, and its team is told. Only a scored one
    that is not disqualified yet (can_disqualify; else a 409)."""
    if not can_disqualify(sub):
        why = (
            f"it is already disqualified ({sub.disqualified_reason})"
            if sub.disqualified_reason
            else f"it is {sub.state}"
        )
        raise Conflict(f"submission {sub.id} cannot be disqualified: {why}; only scored submissions can")
    reason = _reason(reason)
    before = {"disqualified_reason": sub.disqualified_reason, "selected_final": sub.selected_final}
    freed = sub.selected_final or sub.final_auto
    sub.disqualified_reason = reason
    sub.selected_final = sub.final_auto = False
    audit.record(
        session,
        "submission.disqualify",
        sub,
        actor_id=actor.id,
        challenge_id=sub.phase.challenge_id,
        before=before,
        after={"disqualified_reason": reason, "selected_final": False},
        reason=reason,
    )
    slot = " Its final-pick slot is free: pick another submission." if freed else ""
    notify.tell_team(session, sub, f"Submission {sub.id} was disqualified: {reason}.{slot}")
    session.commit()
    return sub


def phase_effect(session: Session, phase: Phase, changes: dict) -> str | None:
    """What a phase change does when it closes the phase or reveals its private board (a destructive change that
    the pages confirm first), in numbers read now; None for any other change."""
    import types

    now = utcnow()
    after = types.SimpleNamespace(
        **{k: getattr(phase, k) for k in ("closed", "ends_at", "starts_at", "private_revealed", "reveal_at")}
    )
    for key, value in changes.items():
        setattr(after, key, value)
    old, new = phase.state(now), phases.state(after, now)
    if new == old or new not in (phases.CLOSED, phases.REVEALED):
        return None
    if new == phases.REVEALED:
        rows = session.scalar(select(func.count()).where(Standing.phase_id == phase.id, Standing.split == "private"))
        return (
            f"the private boards of '{phase.title}' ({rows} rows) become public for everyone; "
            "they cannot be made secret again once seen"
        )
    in_flight = session.scalar(
        select(func.count()).where(
            Submission.phase_id == phase.id, Submission.state.in_(("submitted", "queued", "running"))
        )
    )
    late = "late uploads are still scored, never ranked" if phase.allow_late else "uploads stop"
    return (
        f"'{phase.title}' closes: {late}, final picks close and the automatic finals are recorded for the teams "
        f"that picked none; {in_flight} submissions in flight are still scored"
    )


def label_effect(session: Session, version: LabelVersion) -> str:
    """What activating a label version does to its track, in numbers read now (the review page states it)."""
    scored = session.scalar(
        select(func.count()).where(
            Submission.track_id == version.track_id, Submission.state.in_((FINISHED, UNSCORABLE))
        )
    )
    rows = session.scalar(select(func.count()).where(Standing.track_id == version.track_id))
    return (
        f"its {scored} scored submissions are restored from their kept scores or rescored, and the track's boards "
        f"({rows} rows) are rebuilt on these labels"
    )


def rescore_effect(session: Session, track: Track, states_: tuple[str, ...] | None, team_id: int | None) -> str:
    wanted = tuple(states_ or sorted(RESCORABLE))
    query = select(func.count()).where(Submission.track_id == track.id, Submission.state.in_(wanted))
    if team_id is not None:
        query = query.where(Submission.team_id == team_id)
    count = session.scalar(query)
    return f"{count} {'/'.join(wanted)} submissions of track '{track.title}' go back on the queue and are scored again"


def post_baseline(
    session: Session,
    actor: User,
    phase: Phase,
    track: Track,
    stream: BinaryIO,
    filename: str | None,
    name: str,
    note: str = "",
    method: methods.Method | None = None,
) -> Submission:
    """A reference submission scored like any other and shown on the boards as a marked baseline row (no limits),
    with the method it describes (methods.clean validated it) in the board's method column."""
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
            **(method or methods.Method()).fields(),
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
