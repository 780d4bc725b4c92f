"""HTML pages for participants: plain Jinja forms that work without JavaScript (a little JS polls live status)."""

from __future__ import annotations

import hashlib
from typing import Literal

import markdown
import nh3
from flask import Blueprint, abort, flash, jsonify, redirect, render_template, request, session, url_for
from markupsafe import Markup
from pydantic import Field, field_validator
from sqlalchemy import select

from . import announcements, contract, limits, participants, phases, svg
from .auth import current_user, log_in, log_out, login_required
from .boards import (
    PAGE_ROWS,
    board_for,
    conditional_page,
    csv_response,
    hot_board,
    json_board,
    keep_page,
    page_of,
    read_board,
    team_page,
)
from .contract import Credentials, FormId, Model
from .db import get_session
from .errors import ArenaError
from .extensions import limiter, password_form_limits, upload_limit
from .formatting import shown_score
from .leaderboard import memo, rank_history
from .models import Challenge, Notification, utcnow
from .services import accounts, invites, methods, submissions, teams

bp = Blueprint("web", __name__)


@bp.app_context_processor
def _globals():
    return {"current_user": current_user(), "now": utcnow()}


@bp.app_errorhandler(ArenaError)
def _arena_error(exc: ArenaError):
    """An error a page's view did not turn into a flashed message (a form value no browser would send, such as
    team_id=abc): an HTML page naming the field, with the error's status (never a 500)."""
    title = f"Bad value for '{exc.field}'" if exc.field else "This request cannot be served"
    return render_template("error.html", title=title, message=exc.message, code=exc.status), exc.status


@bp.app_template_filter("markdown")
def _markdown(text: str) -> Markup:
    return Markup(nh3.clean(markdown.markdown(text or "", extensions=["tables", "fenced_code"])))


bp.app_template_filter("score")(shown_score)  # FORMATS.md: rank-1 as 92.47 %, mAP as 0.9291 (arena.formatting)


@bp.app_template_filter("plural")
def _plural(count: int, word: str) -> str:
    """'1 phase', '2 phases'."""
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _challenge(slug: str) -> Challenge:
    challenge = get_session().scalar(select(Challenge).where(Challenge.slug == slug))
    if challenge is None:
        abort(404)
    return challenge


def _back(endpoint: str, **values):
    return redirect(url_for(endpoint, **values))


@bp.get("/")
def index():
    challenges = get_session().scalars(select(Challenge).order_by(Challenge.id)).all()
    return render_template("index.html", challenges=challenges)


# --------------------------------------------------------------------------------------------------- accounts


class RegisterForm(Credentials):
    display_name: str = Field("", max_length=100)


@bp.route("/register", methods=["GET", "POST"])
@password_form_limits(methods=["POST"])
def register():
    if request.method == "POST":
        try:
            form = contract.form(RegisterForm)
            accounts.register_quietly(get_session(), form.email, form.password, form.display_name)
        except ArenaError as exc:
            flash(exc.message, "error")
            return render_template("register.html"), exc.status
        # alike whether the email was new: nobody learns which addresses have accounts. "mail": base.html says where
        # the link went when no SMTP server is configured (the demo)
        flash(accounts.REGISTERED, "info mail")
        return _back("web.login")
    return render_template("register.html")


@bp.route("/login", methods=["GET", "POST"])
@password_form_limits(methods=["POST"])
def login():
    if request.method == "POST":
        try:
            form = contract.form(Credentials)
            user = accounts.authenticate(get_session(), form.email, form.password)
        except ArenaError as exc:
            flash(exc.message, "error")
            return render_template("login.html"), exc.status
        log_in(user)
        target = request.args.get("next", "")
        return redirect(target if target.startswith("/") and not target.startswith("//") else url_for("web.index"))
    return render_template("login.html")


@bp.post("/logout")
def logout():
    log_out()
    return _back("web.index")


@bp.get("/verify/<token>")
def verify(token: str):
    try:
        accounts.verify_email(get_session(), token)
        flash("Your email is verified.", "info")
    except ArenaError as exc:
        flash(exc.message, "error")
    return _back("web.index")


@bp.post("/verify/resend")
@login_required
def resend_verification():
    accounts.send_verification(current_user())
    flash("We sent a new verification link.", "info mail")
    return _back("web.account")


@bp.route("/forgot", methods=["GET", "POST"])
@password_form_limits(methods=["POST"])
def forgot():
    if request.method == "POST":
        accounts.request_password_reset(get_session(), request.form.get("email", ""))
        flash("If an account has this email, we sent it a link to reset the password.", "info mail")
        return _back("web.login")
    return render_template("forgot.html")


@bp.route("/reset/<token>", methods=["GET", "POST"])
def reset(token: str):
    if request.method == "POST":
        try:
            accounts.reset_password(get_session(), token, request.form.get("password", ""))
        except ArenaError as exc:
            flash(exc.message, "error")
            return render_template("reset.html"), exc.status
        flash("Your password is changed; log in with it.", "info")
        return _back("web.login")
    return render_template("reset.html")


class TokenForm(Model):
    """The account page: make a token (name) or revoke one (revoke: its id)."""

    name: str = Field("", max_length=100)
    revoke: FormId | None = None

    @field_validator("revoke", mode="before")
    @classmethod
    def _blank_is_none(cls, value):
        return None if value == "" else value


@bp.route("/account", methods=["GET", "POST"])
@login_required
def account():
    user = current_user()
    new_token = None
    if request.method == "POST":
        form = contract.form(TokenForm)
        try:
            if form.revoke is not None:
                accounts.revoke_token(get_session(), user, form.revoke)
                flash("Token revoked.", "info")
            else:
                _token, new_token = accounts.create_api_token(get_session(), user, form.name)
        except ArenaError as exc:
            flash(exc.message, "error")
    notes = (
        get_session()
        .scalars(select(Notification).where(Notification.user_id == user.id).order_by(Notification.id.desc()).limit(20))
        .all()
    )
    return render_template(
        "account.html", tokens=accounts.list_tokens(get_session(), user), new_token=new_token, notifications=notes
    )


# --------------------------------------------------------------------------------------------------- challenges


@bp.get("/c/<slug>")
def challenge(slug: str):
    challenge = _challenge(slug)
    user = current_user()
    team = teams.user_team(get_session(), user, challenge)
    subs = submissions.team_submissions(get_session(), user, challenge) if team else []
    now = utcnow()
    quotas = participants.team_quotas(get_session(), team, now) if team else []
    return render_template(
        "challenge.html",
        challenge=challenge,
        phase_states={p.id: p.state(now) for p in challenge.phases},
        upload_phases=[p for p in challenge.phases if phases.accepts_uploads(p, now)],
        team=team,
        submissions=subs,
        members=teams.members(get_session(), team) if team else [],
        quotas=quotas,
        links=participants.challenge_links(challenge),
        invites=invites.pending(get_session(), user, team.id) if team and team.captain_id == user.id else [],
        announcements=announcements.for_challenge(get_session(), challenge),
    )


class TeamForm(Model):
    """The team forms of the challenge page (one form per action)."""

    action: Literal["create", "join", "remove", "captain", "merge"]
    name: str = Field("", max_length=200)
    invite_code: str = Field("", max_length=200)
    accept_rules: Literal["on", ""] = ""
    team_id: FormId = 0
    user_id: FormId = 0


@bp.post("/c/<slug>/team")
@login_required
def team_action(slug: str):
    challenge = _challenge(slug)
    form, user, db = contract.form(TeamForm), current_user(), get_session()
    accept = form.accept_rules == "on"
    try:
        if form.action == "create":
            teams.create_team(db, user, challenge, form.name, accept)
            flash("Team created. Share its invite code with your teammates.", "info")
        elif form.action == "join":
            teams.join_team(db, user, challenge, form.invite_code, accept)
            flash("You joined the team.", "info")
        elif form.action == "remove":
            teams.remove_member(db, user, form.team_id, form.user_id)
        elif form.action == "captain":
            teams.transfer_captaincy(db, user, form.team_id, form.user_id)
        else:
            teams.merge_teams(db, user, form.team_id, form.invite_code)
            flash("The teams are merged.", "info")
    except ArenaError as exc:
        flash(exc.message, "error")
    return _back("web.challenge", slug=slug)


METHOD_FIELDS = ("method_name", "method_description", "paper_url", "code_url")


@bp.post("/c/<slug>/submit")
@login_required
@limiter.limit(upload_limit)
def submit(slug: str):
    challenge = _challenge(slug)
    upload = request.files.get("file")
    try:
        if upload is None or not upload.filename:
            flash("choose a file to upload", "error")
            return _back("web.challenge", slug=slug)
        phase_slug, _, track_slug = request.form.get("target", "").partition("/")
        sub = submissions.submit(
            get_session(),
            current_user(),
            challenge,
            phase_slug,
            track_slug,
            upload.stream,
            upload.filename,
            request.form.get("note", ""),
            methods.clean(*(request.form.get(key, "") for key in METHOD_FIELDS)),
        )
    except ArenaError as exc:
        flash(exc.message, "error")
        return _back("web.challenge", slug=slug)
    left = limits.quota(get_session(), [sub.team_id], sub.phase, utcnow())
    flash(
        f"Submission {sub.id} is queued for scoring. Left: {left.left_today} today, {left.left_total} in total "
        f"(the daily count resets at {left.resets_at:%Y-%m-%d %H:%M} UTC).",
        "info",
    )
    return _back("web.submission", submission_id=sub.id)


@bp.get("/submissions/<int:submission_id>")
@login_required
def submission(submission_id: int):
    try:
        sub = submissions.visible_submission(get_session(), current_user(), submission_id)
    except ArenaError:
        abort(404)
    plot = None
    if sub.curve and sub.state == "finished":
        if "recall" in sub.curve:
            plot = svg.pr_curve(sub.curve["recall"], sub.curve["precision"])
        elif "cmc" in sub.curve:
            plot = svg.cmc_curve(sub.curve["cmc"])
    now = utcnow()
    return render_template(
        "submission.html",
        sub=sub,
        plot=plot,
        phase_state=sub.phase.state(now),
        picks_open=phases.picks_open(sub.phase, now) and not sub.late and not sub.disqualified_reason,
    )


@bp.get("/submissions/<int:submission_id>/status")
@login_required
def submission_status(submission_id: int):
    """The live status the submission page polls (the same authorization as the page)."""
    try:
        sub = submissions.visible_submission(get_session(), current_user(), submission_id)
    except ArenaError:
        abort(404)
    return jsonify(submissions.public_view(sub))


@bp.post("/submissions/<int:submission_id>/<action>")
@login_required
def submission_action(submission_id: int, action: str):
    db, user = get_session(), current_user()
    try:
        if action == "cancel":
            submissions.cancel(db, user, submission_id)
            flash("Submission cancelled; it does not count against your limits.", "info")
        elif action == "final":
            before = submissions.final_picks(db, submissions.visible_submission(db, user, submission_id))
            sub = submissions.select_final(db, user, submission_id, request.form.get("selected") == "1")
            flash(submissions.final_confirmation(db, sub, before), "info")
        else:
            abort(404)
    except ArenaError as exc:
        if exc.status == 404:
            abort(404)
        flash(exc.message, "error")
    return _back("web.submission", submission_id=submission_id)


# --------------------------------------------------------------------------------------------------- boards


@bp.get("/c/<slug>/<phase_slug>/<track_slug>/leaderboard")
def leaderboard(slug: str, phase_slug: str, track_slug: str):
    split, page_arg = request.args.get("split", "public"), request.args.get("page")
    anonymous = current_user() is None and not session.get("_flashes")
    hot = hot_board(slug, phase_slug, track_slug, split) if anonymous else None
    if hot is not None and (kept := hot.pages.get(page_arg or "1")) is not None:  # kept by the request below
        html, compress_as, etag_part = kept
        return conditional_page(hot.board, html, None, None, hot.private_visible, etag_part, compress_as)
    try:
        phase, track, board = board_for(slug, phase_slug, track_slug, split)
        page, pages = page_of(board, page_arg)
    except ArenaError as exc:
        if exc.status == 404:
            abort(404)
        if exc.field == "page":
            abort(400, description=exc.message)
        flash(exc.message, "error")
        return _back("web.challenge", slug=slug)
    team = teams.user_team(get_session(), current_user(), phase.challenge)
    history = None
    if team is not None:
        history = svg.rank_history([s.rank for s in rank_history(get_session(), phase, track, team.id)])
    extras = participants.board_extras(get_session(), board)
    first = (page - 1) * PAGE_ROWS
    table = memo(
        board,
        f"html-{extras['digest']}-{page}",
        lambda: Markup(
            render_template(
                "_board_table.html",
                board=board,
                rows=board.rows[first : first + PAGE_ROWS],
                extras=extras,
                challenge=phase.challenge,
            )
        ),
    )
    html = render_template(
        "leaderboard.html",
        challenge=phase.challenge,
        phase=phase,
        track=track,
        board=board,
        table=table,
        split=split,
        page=page,
        pages=pages,
        first=first,
        shown=len(board.rows[first : first + PAGE_ROWS]),
        my_page=team_page(board, team.id) if team is not None else None,
        my_team=team,
        history=history,
        phase_state=phase.state(utcnow()),
        private_visible=phase.private_visible(utcnow()),
    )
    etag_part = f"page-{page}-{phase.state(utcnow())}-{extras['digest']}"
    if not anonymous:
        return conditional_page(board, html, current_user(), team, phase.private_visible(utcnow()), etag_part)
    compress_as = "page-" + hashlib.sha256(html.encode()).hexdigest()[:24]  # one gzip copy per distinct page
    if page_arg in (None, str(page)):  # the page asked for is the page shown: keep it for the next visitor
        keep_page(slug, phase_slug, track_slug, split, board, str(page), (html, compress_as, etag_part))
    return conditional_page(board, html, None, None, phase.private_visible(utcnow()), etag_part, compress_as)


@bp.get("/c/<slug>/<phase_slug>/<track_slug>/leaderboard.<fmt>")
def leaderboard_export(slug: str, phase_slug: str, track_slug: str, fmt: str):
    split = request.args.get("split", "public")
    try:
        board, phase_state = read_board(slug, phase_slug, track_slug, split)
    except ArenaError as exc:
        return jsonify(exc.to_dict()), exc.status
    if fmt == "csv":
        return csv_response(board, f"{slug}-{phase_slug}-{track_slug}-{split}.csv")
    if fmt == "json":
        return json_board(board, phase_state)
    abort(404)


from . import web_participants  # noqa: E402,F401  the participants' pages of issue 15, on this blueprint
