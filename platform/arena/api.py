"""The REST API under /api/v1: bearer-token auth, JSON in and out, errors as JSON with real status codes.
The OpenAPI document of every route below is served at /api/v1/openapi.json (openapi.py)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

from flask import Blueprint, Response, jsonify, request
from sqlalchemy import select
from werkzeug.exceptions import HTTPException

from . import openapi
from .auth import api_user, current_user
from .db import get_session
from .errors import ArenaError, Forbidden, Invalid, NotFound
from .extensions import limiter, login_limit, upload_limit
from .leaderboard import memo, rank_history
from .models import Challenge, Phase, Submission, Team, Track, utcnow
from .services import accounts, admin, submissions, teams
from .standings import stored_leaderboard

bp = Blueprint("api", __name__, url_prefix="/api/v1")


@bp.errorhandler(ArenaError)
def _arena_error(exc: ArenaError):
    return jsonify(exc.to_dict()), exc.status


@bp.app_errorhandler(HTTPException)
def _http_error(exc: HTTPException):
    """JSON under /api/ (unknown routes and methods included); the usual HTML page elsewhere."""
    if not request.path.startswith("/api/"):
        return exc
    return jsonify({"error": exc.name.lower().replace(" ", "_"), "message": exc.description}), exc.code


_BOOLEAN_FIELDS = frozenset({"accept_rules", "selected", "closed", "private_revealed"})


class _Body(dict):
    """A request's JSON object whose get() checks the value's type (a wrong type is a 400 naming the field, not
    a crash): a str default or none wants a string, an int default an integer; the boolean fields take a boolean
    or a string ("true", "1", ...)."""

    def get(self, key, default=None):
        value = super().get(key, default)
        if value is None or value is default:
            return value
        if key in _BOOLEAN_FIELDS:
            wanted, name = (bool, str), "a boolean"
        elif isinstance(default, int) and not isinstance(default, bool):
            wanted, name = (int,), "an integer"
        else:
            wanted, name = (str,), "a string"
        if not isinstance(value, wanted) or (isinstance(value, bool) and bool not in wanted):
            raise Invalid(f"'{key}' must be {name}", field=str(key))
        return value


def _json() -> dict:
    data = request.get_json(silent=True)
    if data is None:
        data = request.form.to_dict()
    if not isinstance(data, dict):
        raise Invalid("the body must be a JSON object")
    return _Body(data)


def _challenge(slug: str) -> Challenge:
    challenge = get_session().scalar(select(Challenge).where(Challenge.slug == slug))
    if challenge is None:
        raise NotFound(f"no challenge '{slug}'")
    return challenge


def _bool(value) -> bool:
    return value is True or str(value).lower() in ("1", "true", "yes", "on")


@bp.get("/openapi.json")
def openapi_document():
    return jsonify(openapi.document())


# --------------------------------------------------------------------------------------------------- accounts


@bp.post("/register")
@limiter.limit(login_limit)
def register():
    data = _json()
    user = accounts.register(get_session(), data.get("email", ""), data.get("password", ""))
    return jsonify({"id": user.id, "email": user.email, "verified": user.verified}), 201


@bp.post("/tokens")
@limiter.limit(login_limit)
def create_token():
    data = _json()
    session = get_session()
    user = accounts.authenticate(session, data.get("email", ""), data.get("password", ""))
    token, plaintext = accounts.create_api_token(session, user, data.get("name", "api"))
    return jsonify({"id": token.id, "name": token.name, "token": plaintext}), 201


@bp.delete("/tokens/<int:token_id>")
def revoke_token(token_id: int):
    accounts.revoke_token(get_session(), api_user(), token_id)
    return "", 204


@bp.get("/me")
def me():
    user = api_user()
    return jsonify({"id": user.id, "email": user.email, "verified": user.verified, "organizer": user.is_organizer})


# --------------------------------------------------------------------------------------------------- challenges


def _challenge_dict(challenge: Challenge) -> dict:
    return {
        "slug": challenge.slug,
        "title": challenge.title,
        "team_size": challenge.team_size,
        "tracks": [{"slug": t.slug, "kind": t.kind, "title": t.title, "metric": t.metric} for t in challenge.tracks],
        "phases": [
            {
                "slug": p.slug,
                "title": p.title,
                "starts_at": p.starts_at.isoformat() + "Z",
                "ends_at": p.ends_at.isoformat() + "Z",
                "open": p.is_open(utcnow()),
                "tracks": p.tracks,
                "limits": {"per_day": p.max_per_day, "total": p.max_total, "in_flight": p.max_in_flight},
            }
            for p in challenge.phases
        ],
    }


@bp.get("/challenges")
def list_challenges():
    rows = get_session().scalars(select(Challenge).order_by(Challenge.id))
    return jsonify([_challenge_dict(c) for c in rows])


@bp.get("/challenges/<slug>")
def get_challenge(slug: str):
    return jsonify(_challenge_dict(_challenge(slug)))


def _team_dict(team: Team, with_code: bool) -> dict:
    out = {
        "id": team.id,
        "name": team.name,
        "status": team.status,
        "captain_id": team.captain_id,
        "members": [{"id": m.user_id, "email": m.user.email} for m in team.members],
    }
    if with_code:
        out["invite_code"] = team.invite_code
    return out


@bp.post("/challenges/<slug>/teams")
def create_team(slug: str):
    data = _json()
    team = teams.create_team(
        get_session(), api_user(), _challenge(slug), data.get("name", ""), _bool(data.get("accept_rules"))
    )
    return jsonify(_team_dict(team, True)), 201


@bp.post("/challenges/<slug>/join")
def join_team(slug: str):
    data = _json()
    team = teams.join_team(
        get_session(), api_user(), _challenge(slug), data.get("invite_code", ""), _bool(data.get("accept_rules"))
    )
    return jsonify(_team_dict(team, True))


@bp.get("/challenges/<slug>/team")
def my_team(slug: str):
    team = teams.user_team(get_session(), api_user(), _challenge(slug))
    if team is None:
        raise NotFound("you have no team in this challenge")
    return jsonify(_team_dict(team, True))


@bp.post("/teams/<int:team_id>/members/<int:user_id>/remove")
def remove_member(team_id: int, user_id: int):
    teams.remove_member(get_session(), api_user(), team_id, user_id)
    return "", 204


@bp.post("/teams/<int:team_id>/captain")
def transfer_captain(team_id: int):
    data = _json()
    teams.transfer_captaincy(get_session(), api_user(), team_id, int(data.get("user_id", 0)))
    return "", 204


@bp.post("/teams/<int:team_id>/merge")
def merge_team(team_id: int):
    target = teams.merge_teams(get_session(), api_user(), team_id, _json().get("invite_code", ""))
    return jsonify(_team_dict(target, True))


# --------------------------------------------------------------------------------------------------- submissions


@bp.post("/challenges/<slug>/submissions")
@limiter.limit(upload_limit)
def submit(slug: str):
    user = api_user()
    upload = request.files.get("file")
    if upload is None:
        raise Invalid("send the file as multipart form field 'file'", field="file")
    sub = submissions.submit(
        get_session(),
        user,
        _challenge(slug),
        request.form.get("phase", ""),
        request.form.get("track", ""),
        upload.stream,
        upload.filename,
        request.form.get("note", ""),
    )
    return jsonify(submissions.public_view(sub)), 202


@bp.get("/challenges/<slug>/submissions")
def my_submissions(slug: str):
    rows = submissions.team_submissions(get_session(), api_user(), _challenge(slug))
    return jsonify([submissions.public_view(s) for s in rows])


@bp.get("/submissions/<int:submission_id>")
def get_submission(submission_id: int):
    sub = submissions.visible_submission(get_session(), api_user(), submission_id)
    return jsonify(submissions.public_view(sub))


@bp.post("/submissions/<int:submission_id>/cancel")
def cancel_submission(submission_id: int):
    sub = submissions.cancel(get_session(), api_user(), submission_id)
    return jsonify(submissions.public_view(sub))


@bp.post("/submissions/<int:submission_id>/final")
def select_final(submission_id: int):
    selected = _bool(_json().get("selected", True))
    sub = submissions.select_final(get_session(), api_user(), submission_id, selected)
    return jsonify(submissions.public_view(sub))


# --------------------------------------------------------------------------------------------------- leaderboards


def board_for(slug: str, phase_slug: str, track_slug: str, split: str):
    """(phase, track, board) after the visibility check of the private split."""
    session = get_session()
    phase, track = submissions.phase_and_track(session, _challenge(slug), phase_slug, track_slug)
    if split not in ("public", "private"):
        raise Invalid(f"unknown split '{split}'; choose public or private", field="split")
    user = current_user()
    if split == "private" and not phase.private_visible(utcnow()) and not (user and user.is_organizer):
        raise Forbidden("the private leaderboard is hidden until the phase ends")
    return phase, track, stored_leaderboard(session, phase, track, split)


def board_rows(board) -> list[dict]:
    return [
        {
            "rank": r.rank,
            "name": r.name,
            "team_id": r.team_id,
            "submission_id": r.submission_id,
            "score": r.score,
            "baseline": r.is_baseline,
            "submitted_at": r.submitted_at.isoformat() + "Z" if r.submitted_at else None,
            "scores": r.scores,
        }
        for r in board.rows
    ]


@bp.get("/challenges/<slug>/phases/<phase_slug>/tracks/<track_slug>/leaderboard")
def get_leaderboard(slug: str, phase_slug: str, track_slug: str):
    split = request.args.get("split", "public")
    _phase, _track, board = board_for(slug, phase_slug, track_slug, split)
    if request.args.get("format") == "csv":
        return csv_response(board, f"{slug}-{phase_slug}-{track_slug}-{split}.csv")
    return json_board(board)


def json_board(board) -> Response:
    """The board as JSON, serialised once per cached board."""
    body = memo(
        board, "json", lambda: json.dumps({"split": board.split, "metric": board.metric, "rows": board_rows(board)})
    )
    return Response(body, mimetype="application/json")


def csv_response(board, filename: str) -> Response:
    body = memo(board, "csv", lambda: _csv_text(board))
    return Response(body, mimetype="text/csv", headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def _csv_text(board) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["rank", "name", "baseline", board.metric, "submission_id", "submitted_at"])
    for r in board.rows:
        writer.writerow(
            [
                r.rank or "",
                r.name,
                int(r.is_baseline),
                f"{r.score:.6f}",
                r.submission_id,
                r.submitted_at.isoformat() + "Z" if r.submitted_at else "",
            ]
        )
    return out.getvalue()


@bp.get("/challenges/<slug>/phases/<phase_slug>/tracks/<track_slug>/history/<int:team_id>")
def get_rank_history(slug: str, phase_slug: str, track_slug: str, team_id: int):
    session = get_session()
    phase, track = submissions.phase_and_track(session, _challenge(slug), phase_slug, track_slug)
    team = session.get(Team, team_id)
    if team is None or team.hidden or team.challenge_id != phase.challenge_id:
        raise NotFound(f"no team {team_id}")
    return jsonify(
        [
            {"at": s.at.isoformat() + "Z", "rank": s.rank, "score": s.score}
            for s in rank_history(session, phase, track, team_id)
        ]
    )


# --------------------------------------------------------------------------------------------------- organizers


def _organizer():
    return admin.require_organizer(api_user())


def _time(value, field: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise Invalid(f"'{value}' is not an ISO date-time", field=field) from None
    return moment.astimezone(dt.UTC).replace(tzinfo=None) if moment.tzinfo else moment


@bp.patch("/admin/phases/<int:phase_id>")
def update_phase(phase_id: int):
    actor = _organizer()
    session = get_session()
    phase = admin.get_or_404(session, Phase, phase_id)
    data = _json()
    changes = {}
    for key in ("starts_at", "ends_at"):
        if key in data:
            changes[key] = _time(data[key], key)
    for key in ("closed", "private_revealed"):
        if key in data:
            changes[key] = _bool(data[key])
    unknown = set(data) - {"starts_at", "ends_at", "closed", "private_revealed", "reason"}
    if unknown:
        raise Invalid(f"unknown field '{sorted(unknown)[0]}'", field=sorted(unknown)[0])
    admin.update_phase(session, actor, phase, changes, data.get("reason"))
    return jsonify(
        {
            "id": phase.id,
            "starts_at": phase.starts_at.isoformat() + "Z",
            "ends_at": phase.ends_at.isoformat() + "Z",
            "closed": phase.closed,
            "private_revealed": phase.private_revealed,
        }
    )


@bp.post("/admin/tracks/<int:track_id>/labels")
def upload_labels(track_id: int):
    actor = _organizer()
    session = get_session()
    track = admin.get_or_404(session, Track, track_id)
    upload = request.files.get("file")
    if upload is None:
        raise Invalid("send the labels as multipart form field 'file'", field="file")
    label = admin.store_labels(session, track, request.form.get("kind", ""), upload.stream, actor_id=actor.id)
    return jsonify(
        {"kind": label.kind, "sha256": label.sha256, "size": label.size, "num_images": label.num_images}
    ), 201


@bp.post("/admin/tracks/<int:track_id>/rescore")
def rescore(track_id: int):
    actor = _organizer()
    session = get_session()
    count = admin.rescore_track(
        session, admin.get_or_404(session, Track, track_id), actor.id, _json().get("reason") or "rescore requested"
    )
    return jsonify({"rescoring": count}), 202


@bp.post("/admin/teams/<int:team_id>/<action>")
def moderate_team(team_id: int, action: str):
    actor = _organizer()
    session = get_session()
    team = admin.moderate_team(session, actor, admin.get_or_404(session, Team, team_id), action, _json().get("reason"))
    return jsonify({"id": team.id, "status": team.status, "hidden": team.hidden})


@bp.post("/admin/submissions/<int:submission_id>/disqualify")
def disqualify(submission_id: int):
    actor = _organizer()
    session = get_session()
    sub = admin.disqualify(session, actor, admin.get_or_404(session, Submission, submission_id), _json().get("reason"))
    return jsonify(submissions.public_view(sub))


@bp.post("/admin/baselines")
def post_baseline():
    actor = _organizer()
    session = get_session()
    upload = request.files.get("file")
    if upload is None:
        raise Invalid("send the file as multipart form field 'file'", field="file")
    form = request.form
    phase, track = submissions.phase_and_track(
        session, _challenge(form.get("challenge", "")), form.get("phase", ""), form.get("track", "")
    )
    sub = admin.post_baseline(
        session, actor, phase, track, upload.stream, upload.filename, form.get("name", ""), form.get("note", "")
    )
    return jsonify(submissions.public_view(sub)), 202
