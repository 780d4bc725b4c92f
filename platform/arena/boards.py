"""The leaderboards over HTTP, shared by the API (api.py) and the pages (web.py): the visibility check of the
private split, the board as JSON or CSV, each serialised once per stored board version, and conditional GETs: every
board response carries a weak ETag made of the stored standings' version (and of what else its body depends on),
and a request whose If-None-Match holds it is answered 304 with no body. On PostgreSQL a board that this process
has already answered, unchanged since (board_push.py), is answered again with no query at all (`hot_board`)."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json

from flask import Response, after_this_request, current_app, request, session
from sqlalchemy import and_, select
from sqlalchemy.orm import contains_eager

from . import board_push
from .auth import current_user
from .db import get_session
from .errors import Forbidden, Invalid, NotFound
from .leaderboard import late_board, memo
from .models import Challenge, Phase, StandingBoard, Track, utcnow
from .participants import board_extras
from .services import submissions
from .standings import stored_leaderboard

GZIP_MIN_BYTES = 1024  # smaller bodies go as they are (compression would not pay)
PAGE_ROWS = 100  # rows per leaderboard page (the API answers any slice; the CSV every row)


def find_challenge(slug: str) -> Challenge:
    challenge = get_session().scalar(select(Challenge).where(Challenge.slug == slug))
    if challenge is None:
        raise NotFound(f"no challenge '{slug}'")
    return challenge


def _engine():
    return current_app.extensions["arena.engine"]


def hot_board(slug: str, phase_slug: str, track_slug: str, split: str) -> board_push.Entry | None:
    """The answer this process kept of the board when it is still the board's (board_push.py: the same stored
    version, no configuration change, before the phase's next date), else None: read it with `board_for`."""
    if split == "late" or not current_app.config["BOARD_PUSH"]:
        return None
    return board_push.hot(_engine(), (slug, phase_slug, track_slug, split))


def read_board(slug: str, phase_slug: str, track_slug: str, split: str):
    """(board, phase state): from memory when this process holds the board's current answer, else `board_for`."""
    hot = hot_board(slug, phase_slug, track_slug, split)
    if hot is not None:
        return hot.board, hot.phase_state
    phase, _track, board = board_for(slug, phase_slug, track_slug, split)
    return board, phase.state(utcnow())


def keep_page(slug: str, phase_slug: str, track_slug: str, split: str, board, page: str, kept: tuple) -> None:
    """Keep a page as an anonymous visitor sees it, (html, gzip memo name, ETag part), beside the board's kept
    answer (`hot_board(...).pages[page]`)."""
    if current_app.config["BOARD_PUSH"]:
        board_push.attach_page(_engine(), (slug, phase_slug, track_slug, split), board, page, kept)


def board_for(slug: str, phase_slug: str, track_slug: str, split: str):
    """(phase, track, board) after the visibility check of the private split. The challenge, phase, track and the
    board's stored version come in one query (a board read is then that query and, until the board changes, no
    other); a miss is looked up again piece by piece to say what does not exist. An answer that does not depend
    on the viewer (the public split, the private one once revealed) is kept for `hot_board`."""
    session = get_session()
    before = board_push.generation(_engine()) if current_app.config["BOARD_PUSH"] else None
    found = session.execute(
        select(Phase, Track, StandingBoard.version, StandingBoard.updated_at)
        .join(Phase.challenge)
        .join(Track, and_(Track.challenge_id == Phase.challenge_id, Track.slug == track_slug))
        .outerjoin(StandingBoard, and_(StandingBoard.phase_id == Phase.id, StandingBoard.track_id == Track.id))
        .options(contains_eager(Phase.challenge))
        .where(Challenge.slug == slug, Phase.slug == phase_slug)
    ).first()
    if found is None or track_slug not in found.Phase.tracks:
        phase, track = submissions.phase_and_track(session, find_challenge(slug), phase_slug, track_slug)
        version = None
    else:
        phase, track = found.Phase, found.Track
        version = None if found.version is None else (found.version, found.updated_at)
    if split not in ("public", "private", "late"):
        raise Invalid(f"unknown split '{split}'; choose public, private or late", field="split")
    revealed = phase.private_visible(utcnow())
    if split == "private" and not revealed and not ((user := current_user()) and user.is_organizer):
        raise Forbidden(
            f"the private leaderboard is hidden until the organizers reveal it (the phase is {phase.state(utcnow())})"
        )
    if split == "late":  # not stored: a short list, read when asked, never ranked
        return phase, track, late_board(session, phase, track, with_private=revealed)
    board = stored_leaderboard(session, phase, track, split, version)
    if before is not None and version is not None and board.version and (split == "public" or revealed):
        board_push.keep(_engine(), before, (slug, phase_slug, track_slug, split), phase, version[0], board)
    return phase, track, board


def page_of(board, page_arg: str | None) -> tuple[int, int]:
    """(page, pages) of the leaderboard page asked for with ?page= (1 by default; past the last: the last)."""
    pages = max(1, -(-len(board.rows) // PAGE_ROWS))
    if page_arg is None:
        return 1, pages
    if not page_arg.isdigit() or int(page_arg) < 1:
        raise Invalid(f"page must be a whole number from 1 to {pages}, not '{page_arg[:20]}'", field="page")
    return min(int(page_arg), pages), pages


def team_page(board, team_id: int) -> int | None:
    """The page that holds a team's row (memoised per board: a scan of 5,000 rows per request would not be)."""
    index = memo(board, "team-rows", lambda: {r.team_id: i for i, r in enumerate(board.rows) if r.team_id})
    return None if team_id not in index else index[team_id] // PAGE_ROWS + 1


def board_rows(board, extras: dict | None = None) -> list[dict]:
    """The rows as the JSON answers them; with `extras` (participants.board_extras), each team's entries, last
    submission time and members' display names, and each row's method."""
    rows = [
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
    if extras is not None:
        for row in rows:
            team = extras["teams"].get(row["team_id"]) or {}
            row["entries"] = team.get("entries")
            row["last_submission_at"] = team["last"].isoformat() + "Z" if team.get("last") else None
            row["members"] = team.get("members")
            row["method"] = extras["methods"].get(row["submission_id"])
    return rows


def json_board(board, phase_state: str, offset: int = 0, limit: int | None = None) -> Response:
    """The board as JSON (with the phase's state and the extra columns of participants.board_extras), serialised
    once per stored version, state, extras and slice (rows offset .. offset + limit; all of them by default; `total`
    counts every row); conditional on its ETag."""
    extras = board_extras(get_session(), board)
    # what the body depends on: it keys the memo, the gzip copy and the ETag alike
    kind = f"json-{phase_state}-{extras['digest']}-{offset}-{limit}"
    end = None if limit is None else offset + limit
    body = _body(
        board,
        kind,
        lambda: json.dumps(
            {
                "split": board.split,
                "metric": board.metric,
                "phase_state": phase_state,
                "total": len(board.rows),
                "offset": offset,
                "rows": board_rows(board, extras)[offset:end],
            }
        ),
    )
    return conditional(_encoded(Response(mimetype="application/json"), board, kind, body), board, kind)


def csv_response(board, filename: str) -> Response:
    extras = board_extras(get_session(), board)
    kind = f"csv-{extras['digest']}"
    body = _body(board, kind, lambda: _csv_text(board, extras))
    response = Response(mimetype="text/csv", headers={"Content-Disposition": f'attachment; filename="{filename}"'})
    return conditional(_encoded(response, board, kind, body), board, kind, filename)


def _body(board, kind: str, make) -> bytes:
    return memo(board, kind, lambda: make().encode())


def _encoded(response: Response, board, kind: str, body: bytes) -> Response:
    """Set the body; when the client accepts gzip, send it compressed (once per stored version, like the body):
    a board of 5,000 teams is about 1 MB of JSON and a tenth of that compressed. The swap happens once the view
    has returned (after the API contract's checks of the plain body, which the tests turn on)."""
    response.vary.add("Accept-Encoding")
    response.set_data(body)
    if len(body) >= GZIP_MIN_BYTES and "gzip" in request.accept_encodings:

        @after_this_request
        def _compressed(final: Response) -> Response:
            if final is response and final.status_code == 200:
                final.set_data(memo(board, f"{kind}.gz", lambda: gzip.compress(body, compresslevel=6, mtime=0)))
                final.headers["Content-Encoding"] = "gzip"
            return final

    return response


def conditional(response: Response, board, *depends_on) -> Response:
    """Set the board response's ETag (weak: the body is equivalent, not byte-stable across processes' renderings)
    from the board's stored version and `depends_on` (the format; for a page, the viewer), and turn it into a 304
    when the request's If-None-Match matches. A board without a version (read inside a writing transaction) and a
    page carrying flashed messages get no ETag."""
    if not board.version or session.get("_flashes"):
        return response
    tag = hashlib.sha256(repr((board.version, *depends_on)).encode()).hexdigest()[:24]
    response.set_etag(tag, weak=True)
    response.headers["Cache-Control"] = "no-cache"  # a client may keep it, and must revalidate every time
    return response.make_conditional(request)


def conditional_page(
    board, html: str, viewer, team, private_visible: bool, extras: str = "", compress_as: str | None = None
) -> Response:
    """The leaderboard page (its HTML) as a conditional response: its ETag also names what the page shows beside
    the board (the viewer, the viewer's team, whether the private split is visible, the digest of the extra
    columns that change without the standings: entries, members, methods). compress_as: a name for this exact
    HTML on this board (an anonymous visitor's page): it is then sent gzip-compressed, compressed once."""
    who = (viewer.id if viewer else None, team.id if team else None, private_visible, extras)
    response = Response(mimetype="text/html")
    if compress_as is None:
        response.set_data(html)
    else:
        response = _encoded(response, board, compress_as, memo(board, compress_as, html.encode))
    return conditional(response, board, "html", *who)


def _csv_text(board, extras: dict) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        ["rank", "name", "baseline", board.metric, "submission_id", "submitted_at", "entries", "last_submission_at"]
        + ["members", "method"]
    )
    for r, row in zip(board.rows, board_rows(board, extras), strict=True):
        writer.writerow(
            [
                r.rank or "",
                r.name,
                int(r.is_baseline),
                f"{r.score:.6f}",
                r.submission_id,
                row["submitted_at"] or "",
                "" if row["entries"] is None else row["entries"],
                row["last_submission_at"] or "",
                "; ".join(row["members"] or []),
                (row["method"] or {}).get("name") or "",
            ]
        )
    return out.getvalue()
