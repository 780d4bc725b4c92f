"""The participants' pages of issue 15, on the blueprint of web.py: the account's display name and password, the
public team page, invites by email (send, revoke, accept) and the shake-up of a revealed board."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from pydantic import Field

from . import contract, participants
from .auth import current_user, log_in, login_required
from .boards import find_challenge
from .contract import FormId, Model
from .db import get_session
from .errors import ArenaError
from .models import Team, utcnow
from .services import accounts, invites, submissions
from .web import bp


class ProfileForm(Model):
    display_name: str = Field("", max_length=100)


class PasswordForm(Model):
    current_password: str = Field("", max_length=1024)
    new_password: str = Field("", max_length=1024)


@bp.post("/account/profile")
@login_required
def account_profile():
    form = contract.form(ProfileForm)
    try:
        accounts.set_display_name(get_session(), current_user(), form.display_name)
        flash("Your display name is saved.", "info")
    except ArenaError as exc:
        flash(exc.message, "error")
    return redirect(url_for("web.account"))


@bp.post("/account/password")
@login_required
def account_password():
    form = contract.form(PasswordForm)
    user = current_user()
    try:
        accounts.change_password(get_session(), user, form.current_password, form.new_password)
    except ArenaError as exc:
        flash(exc.message, "error")
        return redirect(url_for("web.account"))
    log_in(user)  # this browser stays logged in; every other session has ended
    flash("Your password is changed; your other browser sessions are logged out.", "info")
    return redirect(url_for("web.account"))


def _visible_team(slug: str, team_id: int) -> Team:
    try:
        challenge = find_challenge(slug)
    except ArenaError:
        abort(404)
    team = get_session().get(Team, team_id)
    if team is None or team.challenge_id != challenge.id or team.hidden or team.merged_into_id is not None:
        abort(404)
    return team


@bp.get("/c/<slug>/teams/<int:team_id>")
def team_page(slug: str, team_id: int):
    team = _visible_team(slug, team_id)
    view = participants.team_view(get_session(), team, utcnow())
    return render_template("team.html", challenge=team.challenge, team=view)


class InviteForm(Model):
    team_id: FormId = 0
    email: str = Field("", max_length=254)
    revoke: FormId | None = None


@bp.post("/c/<slug>/invites")
@login_required
def invite_action(slug: str):
    form = contract.form(InviteForm, {k: v for k, v in request.form.items() if v != ""})
    db, user = get_session(), current_user()
    try:
        if form.revoke is not None:
            invites.revoke(db, user, form.revoke)
            flash("Invite revoked.", "info")
        else:
            sent = invites.invite(db, user, form.team_id, form.email)
            flash(f"We mailed an invite to {sent.email}.", "info")
    except ArenaError as exc:
        flash(exc.message, "error")
    return redirect(url_for("web.challenge", slug=slug))


@bp.route("/invites/<token>", methods=["GET", "POST"])
@login_required
def invite_accept(token: str):
    db = get_session()
    try:
        invite = invites.from_token(db, token)
    except ArenaError as exc:
        flash(exc.message, "error")
        return redirect(url_for("web.index"))
    challenge = invite.team.challenge
    if request.method == "POST":
        try:
            invites.accept(db, current_user(), token, request.form.get("accept_rules") == "on")
        except ArenaError as exc:
            flash(exc.message, "error")
            return render_template("invite.html", invite=invite, challenge=challenge), exc.status
        flash(f"You joined team {invite.team.name}.", "info")
        return redirect(url_for("web.challenge", slug=challenge.slug))
    return render_template("invite.html", invite=invite, challenge=challenge)


@bp.get("/c/<slug>/<phase_slug>/<track_slug>/shakeup")
def shakeup(slug: str, phase_slug: str, track_slug: str):
    db = get_session()
    try:
        challenge = find_challenge(slug)
        phase, track = submissions.phase_and_track(db, challenge, phase_slug, track_slug)
    except ArenaError:
        abort(404)
    user = current_user()
    revealed = phase.private_visible(utcnow()) or bool(user and user.is_organizer)  # the private board's rule
    rows = participants.shakeup(db, phase, track) if revealed else []
    return render_template("shakeup.html", challenge=challenge, phase=phase, track=track, rows=rows, revealed=revealed)
