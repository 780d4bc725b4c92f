"""The leaderboards over HTTP, shared by the API (api.py) and the pages (web.py): the visibility check of the
private split and the board as JSON or CSV, each serialised once per cached board."""

from __future__ import annotations

import csv
import io
import json

from flask import Response, current_app
from sqlalchemy import select

from .auth import current_user
from .db import get_session
from .errors import Forbidden, Invalid, NotFound
from .leaderboard import cached_leaderboard, memo
from .models import Challenge, utcnow
from .services import submissions


def find_challenge(slug: str) -> Challenge:
    challenge = get_session().scalar(select(Challenge).where(Challenge.slug == slug))
    if challenge is None:
        raise NotFound(f"no challenge '{slug}'")
    return challenge


def board_for(slug: str, phase_slug: str, track_slug: str, split: str):
    """(phase, track, board) after the visibility check of the private split."""
    session = get_session()
    phase, track = submissions.phase_and_track(session, find_challenge(slug), phase_slug, track_slug)
    if split not in ("public", "private"):
        raise Invalid(f"unknown split '{split}'; choose public or private", field="split")
    user = current_user()
    if split == "private" and not phase.private_visible(utcnow()) and not (user and user.is_organizer):
        raise Forbidden("the private leaderboard is hidden until the phase ends")
    max_age = current_app.config["LEADERBOARD_CACHE_SECONDS"]
    return phase, track, cached_leaderboard(session, phase, track, split, max_age)


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
