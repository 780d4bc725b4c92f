"""Exports for organizers, CSV (streamed, row by row) or JSON: a challenge's participants, all its submissions, and
its final standings per phase × track × split.

- participants: one row per member: team id, name, status, hidden, the member's user id and email, captain or
  not. Users have no display name column, so the email stands for the member; countries are not collected at
  registration, so there is no country column.
- submissions: every state, scores of both splits, the label versions active now for its track (a submission's
  scores are those of the active labels: labels.py keeps the others per version).
- standings: the stored boards (standings.stored_leaderboard, the ordering of leaderboard.ranked), with team ids,
  members and each team's final picks; the private split is exported whatever its visibility (organizers only).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator

from flask import Response, current_app
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from . import labels
from .errors import NotFound
from .leaderboard import SPLITS
from .models import Challenge, Membership, Submission, Team, User
from .standings import stored_leaderboard

WHAT = ("participants", "submissions", "standings")
FORMATS = ("csv", "json")
CHUNK = 1000  # rows read per round trip when streaming submissions
PARTICIPANT_FIELDS = ("team_id", "team_name", "status", "hidden", "user_id", "email", "captain")
SUBMISSION_FIELDS = (
    "id",
    "team_id",
    "team_name",
    "baseline_name",
    "phase",
    "track",
    "state",
    "created_at",
    "finished_at",
    "public_score",
    "private_score",
    "disqualified_reason",
    "late",
    "selected_final",
    "final_auto",
    "label_versions",
    "error",
)
STANDING_FIELDS = ("phase", "track", "split", "rank", "team_id", "name", "members", "score", "submission_id", "final")


def _time(value) -> str | None:
    return value.isoformat() + "Z" if value else None


def participants(session: Session, challenge: Challenge) -> Iterator[dict]:
    rows = session.execute(
        select(Team, Membership.user_id, User.email)
        .join(Membership, Membership.team_id == Team.id)
        .join(User, User.id == Membership.user_id)
        .where(Team.challenge_id == challenge.id)
        .order_by(Team.id, Membership.user_id)
    )
    for team, user_id, email in rows:
        yield {
            "team_id": team.id,
            "team_name": team.name,
            "status": team.status,
            "hidden": team.hidden,
            "user_id": user_id,
            "email": email,
            "captain": team.captain_id == user_id,
        }


def submissions(session: Session, challenge: Challenge) -> Iterator[dict]:
    phases = {p.id: p.slug for p in challenge.phases}
    tracks = {t.id: t.slug for t in challenge.tracks}
    active = {t.id: ",".join(f"{v.kind}:{v.version}" for v in _active_versions(session, t)) for t in challenge.tracks}
    names = dict(session.execute(select(Team.id, Team.name).where(Team.challenge_id == challenge.id)).all())
    query = (
        select(Submission)
        .where(Submission.phase_id.in_(list(phases)))
        .order_by(Submission.id)
        .execution_options(yield_per=CHUNK)
    )
    for sub in session.scalars(query):
        yield {
            "id": sub.id,
            "team_id": sub.team_id,
            "team_name": names.get(sub.team_id),
            "baseline_name": sub.baseline_name if sub.is_baseline else None,
            "phase": phases[sub.phase_id],
            "track": tracks.get(sub.track_id),
            "state": sub.state,
            "created_at": _time(sub.created_at),
            "finished_at": _time(sub.finished_at),
            "public_score": sub.public_score,
            "private_score": sub.private_score,
            "disqualified_reason": sub.disqualified_reason,
            "late": sub.late,
            "selected_final": sub.selected_final,
            "final_auto": sub.final_auto,
            "label_versions": active.get(sub.track_id, ""),
            "error": sub.error,
        }


def _active_versions(session: Session, track) -> list:
    ids = labels.active_version_ids(track)
    return [v for v in labels.versions(session, track) if v.id in ids]


def standings(session: Session, challenge: Challenge) -> Iterator[dict]:
    members: dict[int, list[str]] = {}
    for team_id, email in session.execute(
        select(Membership.team_id, User.email)
        .join(User, User.id == Membership.user_id)
        .where(Membership.challenge_id == challenge.id)
        .order_by(Membership.team_id, User.email)
    ):
        members.setdefault(team_id, []).append(email)
    tracks = {t.slug: t for t in challenge.tracks}
    for phase in challenge.phases:
        finals = set(
            session.scalars(
                select(Submission.id).where(
                    Submission.phase_id == phase.id,
                    or_(Submission.selected_final.is_(True), Submission.final_auto.is_(True)),
                )
            )
        )
        for slug in phase.tracks:
            track = tracks.get(slug)
            if track is None:
                continue
            for split in SPLITS:
                for row in stored_leaderboard(session, phase, track, split).rows:
                    yield {
                        "phase": phase.slug,
                        "track": slug,
                        "split": split,
                        "rank": row.rank,
                        "team_id": row.team_id,
                        "name": row.name,
                        "members": members.get(row.team_id, []),
                        "score": row.score,
                        "submission_id": row.submission_id,
                        "final": row.submission_id in finals,
                    }


ROWS = {"participants": participants, "submissions": submissions, "standings": standings}
FIELDS = {"participants": PARTICIPANT_FIELDS, "submissions": SUBMISSION_FIELDS, "standings": STANDING_FIELDS}


def _cell(value) -> object:
    if isinstance(value, list):
        return ";".join(map(str, value))
    return "" if value is None else value


def csv_lines(fields: tuple[str, ...], rows: Iterable[dict]) -> Iterator[str]:
    """The CSV text, one line at a time (a header, then a line per row): what a streamed response sends."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(fields)
    for row in rows:
        writer.writerow([_cell(row[f]) for f in fields])
        if buffer.tell() > 16_384:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def response(session: Session, challenge: Challenge, what: str, fmt: str) -> Response:
    """The export `what` of the challenge as a download: CSV streamed, or a JSON document."""
    if what not in WHAT:
        raise NotFound(f"no export '{what}'; choose one of {', '.join(WHAT)}", field="what")
    if fmt not in FORMATS:
        raise NotFound(f"no format '{fmt}'; choose one of {', '.join(FORMATS)}", field="format")
    name = f"{challenge.slug}-{what}.{fmt}"
    headers = {"Content-Disposition": f"attachment; filename={name}"}
    if fmt == "json":
        body = json.dumps({"challenge": challenge.slug, what: list(ROWS[what](session, challenge))}, indent=1)
        return Response(body, mimetype="application/json", headers=headers)
    return Response(
        _stream(current_app.extensions["arena.sessionmaker"], challenge.id, what), mimetype="text/csv", headers=headers
    )


def _stream(maker, challenge_id: int, what: str) -> Iterator[str]:
    """The CSV of an export, read as it is sent, in a session of its own: the request's session is closed once
    the view returns, before the body is sent."""
    with maker() as session:
        yield from csv_lines(FIELDS[what], ROWS[what](session, session.get(Challenge, challenge_id)))
