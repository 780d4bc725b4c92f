"""The final stage's HTTP edge, kept thin and apart until the declarative contracts of the REST API land (then these
routes become contracts like the others): the REST API of model archives and the organizers' console page with the
reproduction table, its export and the verification checklist.

    POST /api/v1/challenges/<slug>/models       multipart: phase, track, submission_id, device, file -> 202
    GET  /api/v1/models/<id>                    the team's (or an organizer's) view of a model run
    GET  /admin/c/<slug>/<phase>/<track>/final  the console page; .json and .csv: the final-standings export
    POST /admin/c/<slug>/<phase>/<track>/final  tick or untick a checklist item (audited)
"""

from __future__ import annotations

import csv
import functools
import io

from flask import Blueprint, Response, abort, flash, jsonify, redirect, render_template, request, url_for
from sqlalchemy import select

from ..auth import api_user, current_user
from ..db import get_session
from ..errors import ArenaError, Invalid, NotFound
from ..models import Challenge, ModelSubmission, Submission
from . import service

api = Blueprint("final_api", __name__, url_prefix="/api/v1")
pages = Blueprint("final_admin", __name__, url_prefix="/admin")


def organizer_required(view):
    """An organizer's page: the login page for nobody, 403 for a participant (as web_admin's pages)."""

    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        user = current_user()
        if user is None:
            return redirect(url_for("web.login", next=request.full_path))
        if not user.is_organizer:
            abort(403)
        return view(*args, **kwargs)

    return wrapped


@api.errorhandler(ArenaError)
def _arena_error(exc: ArenaError):
    return jsonify(exc.to_dict()), exc.status


def _challenge(slug: str) -> Challenge:
    challenge = get_session().scalar(select(Challenge).where(Challenge.slug == slug))
    if challenge is None:
        raise NotFound(f"no challenge '{slug}'")
    return challenge


def model_view(model: ModelSubmission, organizer: bool) -> dict:
    """A model run as its team sees it (no private split before the reveal: the reproduction's public half only);
    an organizer sees the whole reproduction."""
    report = service.reproduction(model)
    if not organizer:
        report["splits"] = {"public": report["splits"]["public"]}
        report.pop("max_difference", None)
        report.pop("verdict", None)
    return {
        "id": model.id,
        "state": model.state,
        "phase": model.phase.slug,
        "track": model.track.slug,
        "submission_id": model.submission_id,
        "file_name": model.original_name,
        "size": model.size,
        "sha256": model.sha256,
        "device": model.device,
        "manifest": model.manifest,
        "error": model.error,
        "log_tail": model.log_tail,
        "worker": model.worker,
        "created_at": model.created_at.isoformat() + "Z",
        "finished_at": model.finished_at.isoformat() + "Z" if model.finished_at else None,
        "reproduction": report,
    }


@api.post("/challenges/<slug>/models")
def submit_model(slug: str):
    user = api_user()
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise Invalid("attach the model archive as the multipart field 'file'", field="file")
    try:
        submission_id = int(request.form.get("submission_id", ""))
    except ValueError:
        raise Invalid("'submission_id' must be the id of your finished submission", field="submission_id") from None
    model = service.submit_model(
        get_session(),
        user,
        _challenge(slug),
        request.form.get("phase", ""),
        request.form.get("track", ""),
        upload.stream,
        upload.filename,
        submission_id,
        request.form.get("device", "cpu"),
    )
    return jsonify(model_view(model, user.is_organizer)), 202


@api.get("/models/<int:model_id>")
def get_model(model_id: int):
    user = api_user()
    db = get_session()
    model = db.get(ModelSubmission, model_id)
    if model is None or model.submission is None:
        raise NotFound(f"no model {model_id}")
    from ..services.submissions import visible_submission

    visible_submission(db, user, model.submission_id)  # the same rule as its submission: its team or organizers
    return jsonify(model_view(model, user.is_organizer))


# --------------------------------------------------------------------------------------------------- console


CSV_COLUMNS = (
    "submission_id",
    "team",
    "public_score",
    "private_score",
    "reproduced_public",
    "reproduced_private",
    "max_difference",
    "tolerance",
    "verdict",
    "images_per_second",
    "ms_per_image",
    "peak_rss_bytes",
    "model_bytes",
    "device",
    *service.CHECKLIST,
)


def _csv_row(row: dict) -> dict:
    rep, speed = row["reproduction"], row["reproduction"].get("speed") or {}
    splits = rep.get("splits", {})
    out = {
        "submission_id": row["submission_id"],
        "team": row["team"],
        "public_score": row["public_score"],
        "private_score": row["private_score"],
        "reproduced_public": splits.get("public", {}).get("reproduced"),
        "reproduced_private": splits.get("private", {}).get("reproduced"),
        "max_difference": rep.get("max_difference"),
        "tolerance": rep.get("tolerance"),
        "verdict": rep["verdict"],
        "images_per_second": speed.get("images_per_second"),
        "ms_per_image": speed.get("ms_per_image"),
        "peak_rss_bytes": speed.get("peak_rss_bytes"),
        "model_bytes": speed.get("model_bytes"),
        "device": (speed.get("hardware") or {}).get("device"),
    }
    out.update({key: int(item["checked"]) for key, item in row["checklist"].items()})
    return out


@pages.route("/c/<slug>/<phase_slug>/<track_slug>/final", methods=["GET", "POST"])
@pages.get("/c/<slug>/<phase_slug>/<track_slug>/final.<fmt>")
@organizer_required
def final_stage(slug: str, phase_slug: str, track_slug: str, fmt: str = "html"):
    db = get_session()
    challenge = db.scalar(select(Challenge).where(Challenge.slug == slug))
    if challenge is None:
        abort(404)
    if request.method == "POST":
        try:
            sub_id = int(request.form.get("submission_id", "0"))
            service.tick(db, current_user(), sub_id, request.form.get("item", ""), request.form.get("checked") == "1")
            flash(f"Checklist of submission {sub_id} updated.", "info")
        except (ArenaError, ValueError) as exc:
            flash(getattr(exc, "message", str(exc)), "error")
        return redirect(url_for(".final_stage", slug=slug, phase_slug=phase_slug, track_slug=track_slug))
    try:
        rows = service.final_report(db, challenge, phase_slug, track_slug)
    except ArenaError:
        abort(404)
    if fmt == "json":
        return jsonify({"challenge": slug, "phase": phase_slug, "track": track_slug, "finals": rows})
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(_csv_row(row) for row in rows)
        name = f"{slug}-{phase_slug}-{track_slug}-final.csv"
        return Response(
            out.getvalue(), mimetype="text/csv", headers={"Content-Disposition": f"attachment; filename={name}"}
        )
    if fmt != "html":
        abort(404)
    models = {
        row["submission_id"]: db.scalars(
            select(ModelSubmission).where(ModelSubmission.submission_id == row["submission_id"])
        ).all()
        for row in rows
    }
    subs = {s.id: s for s in db.scalars(select(Submission).where(Submission.id.in_(list(models))))}
    return render_template(
        "admin/final.html",
        challenge=challenge,
        phase_slug=phase_slug,
        track_slug=track_slug,
        rows=rows,
        models=models,
        subs=subs,
    )
