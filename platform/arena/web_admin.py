"""Organizer pages: challenges (bundle load), phases, labels, rescoring, moderation, baselines, audit log, queue."""

from __future__ import annotations

import functools
from typing import Annotated, Literal

from flask import Blueprint, Response, abort, flash, jsonify, redirect, render_template, request, url_for
from pydantic import BeforeValidator, Field
from sqlalchemy import select

from . import contract, dashboard, integrity, labels, states
from .auth import current_user
from .contract import FormId, Model, parse_time
from .db import get_session
from .errors import ArenaError, Conflict, Invalid
from .models import Challenge, IntegrityFlag, LabelVersion, Phase, Submission, Team, Track, utcnow
from .services import admin
from .services.challenges import load_bundle

FORMATS = ("html", "json", "csv")

bp = Blueprint("admin", __name__, url_prefix="/admin")


def organizer_required(view):
    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        user = current_user()
        if user is None:
            return redirect(url_for("web.login", next=request.full_path))
        if not user.is_organizer:
            abort(403)
        return view(*args, **kwargs)

    return wrapped


def _challenge(slug: str) -> Challenge:
    challenge = get_session().scalar(select(Challenge).where(Challenge.slug == slug))
    if challenge is None:
        abort(404)
    return challenge


@bp.route("/", methods=["GET", "POST"])
@organizer_required
def index():
    if request.method == "POST":
        upload = request.files.get("bundle")
        text = upload.read().decode("utf-8", "replace") if upload and upload.filename else request.form.get("yaml", "")
        try:
            loaded = load_bundle(get_session(), text, None, actor_id=current_user().id)
            flash(f"Loaded challenge '{loaded.slug}'.", "info")
        except ArenaError as exc:
            flash(exc.message, "error")
    challenges = get_session().scalars(select(Challenge).order_by(Challenge.id)).all()
    return render_template("admin/index.html", challenges=challenges)


@bp.get("/c/<slug>")
@organizer_required
def challenge(slug: str):
    """The challenge's console: its dashboard, phases, tracks and labels; the lists are pages of their own."""
    challenge = _challenge(slug)
    db = get_session()
    return render_template(
        "admin/challenge.html",
        challenge=challenge,
        dash=dashboard.summary(db, challenge),
        queue_info=dashboard.queue_info(),
        versions={t.id: labels.versions(db, t) for t in challenge.tracks},
        active={t.id: labels.active_version_ids(t) for t in challenge.tracks},
        rescorable=sorted(states.RESCORABLE),
    )


OptionalId = Annotated[FormId | None, BeforeValidator(lambda v: None if v == "" else v)]  # "" in a form: none


class ActionForm(Model):
    """The forms of the organizer's challenge page, one per `what`; the ids are checked here (a 400 naming the
    field), the dates by contract.parse_time when the phase form is sent."""

    what: Literal["phase", "labels", "rescore", "team", "disqualify", "baseline"]
    phase_id: FormId = 0
    track_id: FormId = 0
    team_id: FormId = 0
    submission_id: FormId = 0
    starts_at: str = ""
    ends_at: str = ""
    closed: str = ""
    private_revealed: str = ""
    reason: str | None = Field(None, max_length=500)
    kind: str = ""
    action: str = ""
    track: str = ""
    name: str = Field("", max_length=200)
    note: str = Field("", max_length=500)
    state: Literal[("", *sorted(states.RESCORABLE))] = ""  # type: ignore[valid-type]  # rescore: "" is all
    rescore_team: OptionalId = None
    confirm: str = ""  # "1": the confirmation page was seen (destructive actions)
    next: str = ""  # where to go back to: the console list the form was sent from


def _confirm(title: str, effect: str, slug: str):
    """The confirmation step of a destructive action: the page says what it will do and posts the same form
    again with confirm=1 (works without JavaScript)."""
    fields = [(k, v) for k, v in request.form.items(multi=True) if k not in ("confirm", "csrf_token")]
    nxt = request.form.get("next", "")
    back = nxt if nxt.startswith("/admin/") and not nxt.startswith("//") else url_for("admin.challenge", slug=slug)
    return render_template("admin/confirm.html", title=title, effect=effect, fields=fields, back=back)


@bp.post("/c/<slug>/action")
@organizer_required
def action(slug: str):
    """Every form of the challenge page. Destructive ones (a ban, a disqualification, a rescore of everything,
    closing or revealing a phase) first answer the confirmation page unless the form carries confirm=1."""
    challenge = _challenge(slug)
    db, actor, form = get_session(), current_user(), contract.form(ActionForm)
    confirmed = form.confirm == "1"
    upload = request.files.get("file")
    local = form.next.startswith("/admin/") and not form.next.startswith("//")  # never an open redirect
    back = redirect(form.next if local else url_for("admin.challenge", slug=slug))
    try:
        if form.what == "phase":
            phase = admin.get_or_404(db, Phase, form.phase_id)
            changes = {
                "starts_at": parse_time(form.starts_at, "starts_at"),
                "ends_at": parse_time(form.ends_at, "ends_at"),
                "closed": form.closed == "on",
                "private_revealed": form.private_revealed == "on",
            }
            effect = admin.phase_effect(db, phase, changes)
            if effect and not confirmed:
                return _confirm(f"Change phase '{phase.title}'", effect, slug)
            admin.update_phase(db, actor, phase, changes, form.reason)
            message = f"Phase '{phase.title}' saved: it is {phase.state(utcnow())}" + (
                f"; {effect}." if effect else "."
            )
        elif form.what == "labels":
            track = admin.get_or_404(db, Track, form.track_id)
            if upload is None or not upload.filename:
                raise Invalid("choose a label file", field="file")
            version = admin.store_labels(
                db, track, form.kind, upload.stream, actor_id=actor.id, filename=upload.filename
            )
            db.refresh(track)
            if version.id not in labels.active_version_ids(track):
                flash(f"Stored as {version.kind} version {version.version}: review its changes and confirm.", "info")
                return redirect(url_for("admin.label_version", version_id=version.id))
            message = f"{version.kind} version {version.version} stored and active (the first of its kind)."
        elif form.what == "rescore":
            track = admin.get_or_404(db, Track, form.track_id)
            states_ = (form.state,) if form.state else None
            if not confirmed and states_ is None and form.rescore_team is None:  # rescore all: confirmed first
                effect = admin.rescore_effect(db, track, states_, form.rescore_team)
                return _confirm(f"Rescore track '{track.title}'", effect, slug)
            count = admin.rescore_track(
                db, track, actor.id, form.reason or "rescore requested", states_=states_, team_id=form.rescore_team
            )
            message = f"{count} submissions are being rescored."
        elif form.what == "team":
            team = admin.get_or_404(db, Team, form.team_id)
            if form.action == "ban" and not confirmed and form.action in admin.team_actions(team):
                effect = admin.team_effect(db, team, "ban")
                return _confirm(f"Ban team '{team.name}'", f"{effect}; its members can no longer submit", slug)
            message = admin.moderate(db, actor, team, form.action, form.reason)[1]
        elif form.what == "disqualify":
            sub = admin.get_or_404(db, Submission, form.submission_id)
            if not confirmed and admin.can_disqualify(sub):
                return _confirm(f"Disqualify submission {sub.id}", admin.disqualify_effect(db, sub), slug)
            effect = admin.disqualify_effect(db, sub)
            admin.disqualify(db, actor, sub, form.reason)
            message = f"Submission {sub.id} disqualified: {effect}."
        else:
            phase = admin.get_or_404(db, Phase, form.phase_id)
            track = db.scalar(select(Track).where(Track.challenge_id == challenge.id, Track.slug == form.track))
            if track is None or upload is None or not upload.filename:
                raise Invalid("choose a track and a file")
            sub = admin.post_baseline(db, actor, phase, track, upload.stream, upload.filename, form.name, form.note)
            message = f"Baseline '{sub.baseline_name}' posted as submission {sub.id}: it is being scored."
        flash(message, "info")
    except Conflict as exc:
        if form.what in ("team", "disqualify"):  # an action the state does not allow: the 409 page says why
            raise
        flash(exc.message, "error")
    except ArenaError as exc:
        flash(exc.message, "error")
    return back


class ReasonForm(Model):
    reason: str | None = Field(None, max_length=500)


class FlagForm(ReasonForm):
    flag_id: FormId
    action: Literal["dismiss", "disqualify"]
    submission_id: OptionalId = None  # disqualify: which of the two (default: the later one)


@bp.route("/labels/<int:version_id>", methods=["GET", "POST"])
@organizer_required
def label_version(version_id: int):
    """A label version's diff against the active one, and the confirmation that activates it."""
    db = get_session()
    version = db.get(LabelVersion, version_id)
    if version is None:
        abort(404)
    track = db.get(Track, version.track_id)
    if request.method == "POST":
        try:
            result = admin.activate_labels(db, current_user(), version, contract.form(ReasonForm).reason)
            flash(
                f"{version.kind} version {version.version} is active: {result['restored']} submissions restored "
                f"from their kept scores, {result['rescoring']} being rescored.",
                "info",
            )
            return redirect(url_for("admin.challenge", slug=track.challenge.slug))
        except ArenaError as exc:
            flash(exc.message, "error")
    try:
        diff = labels.diff(db, version)
    except ArenaError as exc:
        diff = None
        flash(exc.message, "error")
    effect = admin.label_effect(db, version)
    return render_template("admin/labels.html", version=version, track=track, diff=diff, effect=effect)


@bp.route("/c/<slug>/flags", methods=["GET", "POST"])
@organizer_required
def flags(slug: str):
    """The integrity queue: open flags with their evidence, dismiss or disqualify with a reason."""
    challenge = _challenge(slug)
    db = get_session()
    if request.method == "POST":
        form = contract.form(FlagForm)
        try:
            flag = admin.get_or_404(db, IntegrityFlag, form.flag_id)
            integrity.resolve(db, current_user(), flag, form.action, form.reason, form.submission_id)
            flash(f"Flag {flag.id} is {flag.status}.", "info")
        except ArenaError as exc:
            flash(exc.message, "error")
        return redirect(url_for("admin.flags", slug=slug))
    status = request.args.get("status", "open")
    rows = [integrity.view(f) for f in integrity.queue(db, challenge.id, None if status == "all" else status)]
    return render_template("admin/flags.html", challenge=challenge, flags=rows, status=status)


@bp.get("/queue")
@organizer_required
def queue_page():
    db = get_session()
    by_state = {
        state: db.scalars(
            select(Submission).where(Submission.state == state).order_by(Submission.id.desc()).limit(100)
        ).all()
        for state in ("queued", "running", "rescoring", "failed")
    }
    return render_template("admin/queue.html", by_state=by_state, info=dashboard.queue_info(), now=utcnow())


@bp.route("/c/<slug>/<phase_slug>/<track_slug>/final", methods=["GET", "POST"])
@bp.get("/c/<slug>/<phase_slug>/<track_slug>/final.<fmt>")
@organizer_required
def final_stage(slug: str, phase_slug: str, track_slug: str, fmt: str = "html"):
    """The final stage (arena/sandbox): each final submission beside its reproduced score, the verdict, the speed
    test and the winner-verification checklist (POST ticks one item, audited); .json and .csv: the export."""
    from .sandbox import service as final

    challenge, db = _challenge(slug), get_session()
    if request.method == "POST":
        try:
            tick = contract.form(final.TickForm)
            final.tick(db, current_user(), tick.submission_id, tick.item, tick.checked)
            flash(f"Checklist of submission {tick.submission_id} updated.", "info")
        except ArenaError as exc:
            flash(exc.message, "error")
        return redirect(url_for("admin.final_stage", slug=slug, phase_slug=phase_slug, track_slug=track_slug))
    if fmt not in FORMATS:
        abort(404)
    try:
        rows = final.final_report(db, challenge, phase_slug, track_slug)
    except ArenaError:
        abort(404)
    if fmt == "json":
        return jsonify({"challenge": slug, "phase": phase_slug, "track": track_slug, "finals": rows})
    if fmt == "csv":
        name = f"{slug}-{phase_slug}-{track_slug}-final.csv"
        headers = {"Content-Disposition": f"attachment; filename={name}"}
        return Response(final.final_csv(rows), mimetype="text/csv", headers=headers)
    runs = {row["submission_id"]: final.model_runs(db, row["submission_id"]) for row in rows}
    subs = {s.id: s for s in db.scalars(select(Submission).where(Submission.id.in_(list(runs))))}
    return render_template(
        "admin/final.html",
        challenge=challenge,
        phase_slug=phase_slug,
        track_slug=track_slug,
        rows=rows,
        runs=runs,
        subs=subs,
    )
