"""The organizer console's pages under /admin: the filtered, paginated lists of a challenge's teams and
submissions and the audit log (arena/console.py), the exports (arena/exports.py) and the announcements
(arena/announcements.py). Every page is for organizers only; the actions post to the challenge page's form
(web_admin.action), which confirms the destructive ones first."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from sqlalchemy import select

from . import announcements, console, contract, exports
from .auth import current_user
from .db import get_session
from .errors import ArenaError
from .models import Challenge
from .services import admin

bp = Blueprint("console", __name__, url_prefix="/admin")


@bp.before_request
def _organizers_only():
    user = current_user()
    if user is None:
        return redirect(url_for("web.login", next=request.full_path))
    if not user.is_organizer:
        abort(403)
    return None


def _challenge(slug: str) -> Challenge:
    challenge = get_session().scalar(select(Challenge).where(Challenge.slug == slug))
    if challenge is None:
        abort(404)
    return challenge


def _filters(query) -> dict:
    """The query's filters as URL parameters (paging keys left out): what the previous/next links carry on."""
    values = query.model_dump(exclude={"before", "after"}, exclude_none=True)
    return {k: v for k, v in values.items() if v != ""}


@bp.get("/c/<slug>/teams")
def teams(slug: str):
    """Teams by state and name, with their member and submission counts and the actions each one allows."""
    challenge = _challenge(slug)
    query = contract.form(console.TeamQuery, request.args.to_dict())
    page = console.team_page(get_session(), challenge, query)
    return render_template(
        "admin/teams.html",
        challenge=challenge,
        page=page,
        query=query,
        filters=_filters(query),
        states=console.TEAM_STATES,
        actions={row.team.id: admin.team_actions(row.team) for row in page.rows},
    )


@bp.get("/c/<slug>/submissions")
def submissions(slug: str):
    """Submissions by state, team, track, phase and date, newest first; each links to its page."""
    challenge = _challenge(slug)
    query = contract.form(console.SubmissionQuery, request.args.to_dict())
    page = console.submission_page(get_session(), challenge, query)
    return render_template(
        "admin/submissions.html",
        challenge=challenge,
        page=page,
        query=query,
        filters=_filters(query),
        states=console.states.STATES,
        can_disqualify=admin.can_disqualify,
    )


@bp.get("/audit")
def audit_log():
    """The audit log: what people did (the default) apart from the automatic state changes, by actor, kind and
    object, before/after as "field: old → new"."""
    query = contract.form(console.AuditQuery, request.args.to_dict())
    page = console.audit_page(get_session(), query)
    return render_template(
        "admin/audit.html",
        page=page,
        query=query,
        filters=_filters(query),
        scopes=console.AUDIT_SCOPES,
        changes=console.changes,
    )


@bp.get("/c/<slug>/export/<what>.<fmt>")
def export(slug: str, what: str, fmt: str):
    """participants, submissions or standings, as CSV (streamed) or JSON."""
    return exports.response(get_session(), _challenge(slug), what, fmt)


@bp.route("/c/<slug>/announcements", methods=["GET", "POST"])
def announcement_list(slug: str):
    """Post an announcement to every team of the challenge (in-app and by mail); the ones posted so far."""
    challenge, db = _challenge(slug), get_session()
    if request.method == "POST":
        form = contract.form(announcements.AnnouncementIn)
        try:
            posted = announcements.post(db, current_user(), challenge, form.title, form.body)
            flash(f"Announcement '{posted.title}' posted: sent to {posted.recipients} members of the teams.", "info")
        except ArenaError as exc:
            flash(exc.message, "error")
        return redirect(url_for("console.announcement_list", slug=slug))
    posted = announcements.for_challenge(db, challenge)
    return render_template("admin/announcements.html", challenge=challenge, announcements=posted)
