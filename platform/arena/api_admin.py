"""The organizer console's API, on the API blueprint of api.py (its `route()` helper and how-to): the challenge
with every id the admin endpoints need (phases, tracks, label versions), the paginated lists of teams,
submissions and audit events (arena/console.py), the dashboard, the exports and the announcements.

The API has no confirmation step for destructive actions: its callers are scripts that name the object by id and
give a reason (the deliberate act the pages' confirmation stands for); a label activation can be tried first
with `dry_run` (api.py). The pages confirm (web_admin.action)."""

from __future__ import annotations

from typing import Any, Literal

from flask import jsonify
from pydantic import RootModel

from . import announcements, console, dashboard, exports, labels
from .api import ORGANIZER, PUBLIC, SlugPath, bp, route
from .auth import api_user
from .boards import find_challenge
from .contract import Model
from .db import get_session
from .models import utcnow
from .services import admin

# --------------------------------------------------------------------------------------------------- the ids


class LabelRef(Model):
    id: int
    kind: str
    version: int
    active: bool


class AdminTrackOut(Model):
    id: int
    slug: str
    kind: str
    title: str
    labels: list[LabelRef]


class AdminPhaseOut(Model):
    id: int
    slug: str
    title: str
    state: str
    starts_at: str
    ends_at: str
    closed: bool
    private_revealed: bool
    tracks: list[str]


class AdminChallengeOut(Model):
    id: int
    slug: str
    title: str
    phases: list[AdminPhaseOut]
    tracks: list[AdminTrackOut]


def _time(value) -> str | None:
    return value.isoformat() + "Z" if value else None


@route("get", "/admin/challenges/<slug>", role=ORGANIZER, out=AdminChallengeOut)
def admin_challenge(path: SlugPath):
    """Organizer: the challenge with the ids its admin endpoints take (phase, track and label version ids)."""
    session, challenge = get_session(), find_challenge(path.slug)
    now = utcnow()
    tracks = []
    for t in challenge.tracks:
        active = labels.active_version_ids(t)
        refs = [
            {"id": v.id, "kind": v.kind, "version": v.version, "active": v.id in active}
            for v in labels.versions(session, t)
        ]
        tracks.append({"id": t.id, "slug": t.slug, "kind": t.kind, "title": t.title, "labels": refs})
    phases = [
        {
            "id": p.id,
            "slug": p.slug,
            "title": p.title,
            "state": p.state(now),
            "starts_at": _time(p.starts_at),
            "ends_at": _time(p.ends_at),
            "closed": p.closed,
            "private_revealed": p.private_revealed,
            "tracks": p.tracks,
        }
        for p in challenge.phases
    ]
    return {"id": challenge.id, "slug": challenge.slug, "title": challenge.title, "phases": phases, "tracks": tracks}


# --------------------------------------------------------------------------------------------------- the lists


class PageOut(Model):
    """Paging: `before` is the key of the next (older) page (?before=), `after` of the previous one (?after=)."""

    size: int
    before: int | None
    after: int | None


class AdminTeamOut(Model):
    id: int
    name: str
    status: str
    hidden: bool
    merged_into_id: int | None
    members: int
    submissions: int
    actions: list[str]  # the moderation actions its state allows (POST /admin/teams/{team_id}/{action})
    created_at: str


class TeamPage(PageOut):
    teams: list[AdminTeamOut]


class AdminSubmissionOut(Model):
    id: int
    team_id: int | None
    team_name: str | None
    baseline_name: str | None
    phase_id: int
    phase: str
    track_id: int
    track: str
    state: str
    created_at: str
    finished_at: str | None
    public_score: float | None
    private_score: float | None
    disqualified_reason: str | None
    late: bool
    can_disqualify: bool


class SubmissionPage(PageOut):
    submissions: list[AdminSubmissionOut]


class AuditEventOut(Model):
    id: int
    at: str
    actor_id: int | None
    actor: str | None  # the email; None: the system
    action: str
    object_type: str
    object_id: int | None
    challenge_id: int | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    changes: list[str]  # before/after as "field: old → new"
    reason: str | None


class AuditPage(PageOut):
    events: list[AuditEventOut]


def _paging(page: console.Page) -> dict:
    return {"size": page.size, "before": page.before, "after": page.after}


@route("get", "/admin/challenges/<slug>/teams", role=ORGANIZER, out=TeamPage)
def admin_teams(path: SlugPath, query: console.TeamQuery):
    """Organizer: the challenge's teams, newest first, by state and name, with the actions each one allows."""
    page = console.team_page(get_session(), find_challenge(path.slug), query)
    rows = [
        {
            "id": r.team.id,
            "name": r.team.name,
            "status": r.team.status,
            "hidden": r.team.hidden,
            "merged_into_id": r.team.merged_into_id,
            "members": r.members,
            "submissions": r.submissions,
            "actions": list(admin.team_actions(r.team)),
            "created_at": _time(r.team.created_at),
        }
        for r in page.rows
    ]
    return {**_paging(page), "teams": rows}


@route("get", "/admin/challenges/<slug>/submissions", role=ORGANIZER, out=SubmissionPage)
def admin_submissions(path: SlugPath, query: console.SubmissionQuery):
    """Organizer: the challenge's submissions (every state), newest first, by state, team, track, phase, date."""
    page = console.submission_page(get_session(), find_challenge(path.slug), query)
    rows = [
        {
            "id": s.id,
            "team_id": s.team_id,
            "team_name": s.team.name if s.team else None,
            "baseline_name": s.baseline_name if s.is_baseline else None,
            "phase_id": s.phase_id,
            "phase": s.phase.slug,
            "track_id": s.track_id,
            "track": s.track.slug,
            "state": s.state,
            "created_at": _time(s.created_at),
            "finished_at": _time(s.finished_at),
            "public_score": s.public_score,
            "private_score": s.private_score,
            "disqualified_reason": s.disqualified_reason,
            "late": s.late,
            "can_disqualify": admin.can_disqualify(s),
        }
        for s in page.rows
    ]
    return {**_paging(page), "submissions": rows}


@route("get", "/admin/audit", role=ORGANIZER, out=AuditPage)
def admin_audit(query: console.AuditQuery):
    """Organizer: the audit log, newest first; by default people's actions without the state changes."""
    page = console.audit_page(get_session(), query)
    rows = [
        {
            "id": e.id,
            "at": _time(e.at),
            "actor_id": e.actor_id,
            "actor": e.actor.email if e.actor else None,
            "action": e.action,
            "object_type": e.object_type,
            "object_id": e.object_id,
            "challenge_id": e.challenge_id,
            "before": e.before,
            "after": e.after,
            "changes": console.changes(e),
            "reason": e.reason,
        }
        for e in page.rows
    ]
    return {**_paging(page), "events": rows}


# --------------------------------------------------------------------------------------------------- dashboard


class DayCount(Model):
    day: str
    count: int


class FailureCount(Model):
    reason: str
    count: int


class QueueOut(Model):
    error: str | None
    queued: int
    started: int
    failed: int
    workers: list[str]


class DashboardOut(Model):
    teams: int
    teams_by_status: dict[str, int]
    active_teams: int  # teams with an upload in the last 7 days
    submitting_teams: int
    submissions: int
    by_state: dict[str, int]
    per_day: dict[str, list[DayCount]]  # per track slug, the last 30 days that had uploads
    failures: list[FailureCount]
    queue: QueueOut


@route("get", "/admin/challenges/<slug>/dashboard", role=ORGANIZER, out=DashboardOut)
def admin_dashboard(path: SlugPath):
    """Organizer: teams, active teams, submissions per day per track, failures by reason, the queue."""
    dash = dashboard.summary(get_session(), find_challenge(path.slug))
    info = dashboard.queue_info()
    return {
        "teams": dash.teams,
        "teams_by_status": dash.teams_by_status,
        "active_teams": dash.active_teams,
        "submitting_teams": dash.submitting_teams,
        "submissions": dash.submissions,
        "by_state": dash.by_state,
        "per_day": {k: [{"day": d, "count": n} for d, n in sorted(v.items())] for k, v in dash.per_day.items()},
        "failures": [{"reason": r, "count": n} for r, n in dash.failures],
        "queue": {
            "error": info["error"],
            "queued": info["queued"],
            "started": info["started"],
            "failed": info["failed"],
            "workers": [w["name"] for w in info["workers"]],
        },
    }


# --------------------------------------------------------------------------------------------------- exports


class ExportPath(SlugPath):
    what: Literal[exports.WHAT]  # type: ignore[valid-type]


class ExportQuery(Model):
    format: Literal[exports.FORMATS] = "json"  # type: ignore[valid-type]


@route("get", "/admin/challenges/<slug>/exports/<what>", role=ORGANIZER)
def admin_export(path: ExportPath, query: ExportQuery):
    """Organizer: participants, all submissions or the final standings, as JSON or CSV (streamed)."""
    return exports.response(get_session(), find_challenge(path.slug), path.what, query.format)


# --------------------------------------------------------------------------------------------------- announcements


class AnnouncementOut(Model):
    id: int
    title: str
    body: str
    created_at: str
    recipients: int


class AnnouncementList(RootModel[list[AnnouncementOut]]):
    pass


def _announcement_out(a) -> dict:
    return {"id": a.id, "title": a.title, "body": a.body, "created_at": _time(a.created_at), "recipients": a.recipients}


@route("post", "/admin/challenges/<slug>/announcements", role=ORGANIZER, status=201, out=AnnouncementOut)
def post_announcement(path: SlugPath, body: announcements.AnnouncementIn):
    """Organizer: announce to every team of the challenge (shown on its page, sent in-app and by mail)."""
    posted = announcements.post(get_session(), api_user(), find_challenge(path.slug), body.title, body.body)
    return _announcement_out(posted), 201


@route("get", "/challenges/<slug>/announcements", role=PUBLIC, out=AnnouncementList)
def list_announcements(path: SlugPath):
    """The organizers' announcements of a challenge, newest first."""
    return jsonify(
        [_announcement_out(a) for a in announcements.for_challenge(get_session(), find_challenge(path.slug))]
    )


__all__ = ["bp"]
