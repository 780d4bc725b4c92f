"""What participants see of each other and of their own standing, shared by the API and the pages: a team's public
view (members' display names, never emails), the quota a team has left, the board's extra columns (entries, last
submission, members, method) and the shake-up of a revealed board (public rank against private rank)."""

from __future__ import annotations

import datetime as dt
import hashlib

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from . import limits
from .leaderboard import Board, memo
from .models import Membership, Phase, Submission, Team, Track, User
from .services import methods
from .standings import stored_leaderboard
from .states import COUNTED


def _iso(moment: dt.datetime | None) -> str | None:
    return moment.isoformat() + "Z" if moment else None


def challenge_links(challenge) -> dict[str, str]:
    """Where participants get the data and the starter kit (the bundle's links, else the repository's READMEs),
    and the API's interactive docs."""
    from .services.challenges import DEFAULT_LINKS

    return {**DEFAULT_LINKS, **(challenge.links or {}), "api_docs": "/api/docs"}


def quota_view(quota: limits.Quota, phase: Phase, track: Track) -> dict:
    """A team's quota in a phase as the API answers it (the limits count the phase's tracks together)."""
    return {
        "phase": phase.slug,
        "track": track.slug,
        "per_day": phase.max_per_day,
        "used_today": quota.used_today,
        "left_today": quota.left_today,
        "total": phase.max_total,
        "used_total": quota.used_total,
        "left_total": quota.left_total,
        "max_in_flight": phase.max_in_flight,
        "in_flight": quota.in_flight,
        "left_in_flight": quota.left_in_flight,
        "left": quota.left,
        "resets_at": _iso(quota.resets_at),
    }


def team_quotas(session: Session, team: Team, now: dt.datetime) -> list[dict]:
    """The quota of every phase × track of the team's challenge (limits.quota: the numbers the check uses)."""
    out = []
    for phase in team.challenge.phases:
        quota = limits.quota(session, [team.id], phase, now)
        for track in team.challenge.tracks:
            if track.slug in phase.tracks:
                out.append(quota_view(quota, phase, track))
    return out


def member_names(session: Session, team_ids: list[int]) -> dict[int, list[str]]:
    """{team id: its members' display names, in joining order}: what other participants may see of people."""
    names: dict[int, list[str]] = {}
    if not team_ids:
        return names
    rows = session.execute(
        select(Membership.team_id, User.id, User.display_name)
        .join(User, User.id == Membership.user_id)
        .where(Membership.team_id.in_(team_ids))
        .order_by(Membership.id)
    )
    for team_id, user_id, display_name in rows:
        names.setdefault(team_id, []).append(display_name or f"user {user_id}")
    return names


def board_extras(session: Session, board: Board) -> dict:
    """The board's extra columns: {"teams": {team id: {"entries", "last", "members"}}, "methods": {submission id:
    method}, "digest"}. Entries are the team's counted submissions (failed and cancelled ones are refunded) on this
    phase × track. Read once per stored board version (leaderboard.memo, like the board's renderings): at 5,000
    teams they cost a count over the track's submissions and a read of every shown submission, far more than the
    board itself, so a request must not pay them. They are therefore as of the board's last change (every score
    of the board changes it): an upload still in the queue, or a member who joined since, shows with the next one."""
    return memo(board, "extras", lambda: _board_extras(session, board))


def _board_extras(session: Session, board: Board) -> dict:
    team_ids = [r.team_id for r in board.rows if r.team_id is not None]
    teams: dict[int, dict] = {}
    if team_ids:
        counts = session.execute(
            select(Submission.team_id, func.count(Submission.id), func.max(Submission.created_at))
            .where(
                Submission.phase_id == board.phase_id,
                Submission.track_id == board.track_id,
                Submission.team_id.in_(team_ids),
                Submission.state.in_(COUNTED),
            )
            .group_by(Submission.team_id)
        )
        names = member_names(session, team_ids)
        for team_id, entries, last in counts:
            teams[team_id] = {"entries": entries, "last": last, "members": names.get(team_id, [])}
        for team_id in team_ids:
            teams.setdefault(team_id, {"entries": 0, "last": None, "members": names.get(team_id, [])})
    shown = {}
    sub_ids = [r.submission_id for r in board.rows]
    if sub_ids:
        columns = (Submission.method_name, Submission.method_description, Submission.paper_url, Submission.code_url)
        for sub in session.execute(select(Submission.id, *columns).where(Submission.id.in_(sub_ids))):
            shown[sub.id] = methods.view(sub)
    digest = hashlib.sha256(repr((sorted(teams.items()), sorted(shown.items(), key=lambda kv: kv[0]))).encode())
    return {"teams": teams, "methods": shown, "digest": digest.hexdigest()[:16]}


def shakeup(session: Session, phase: Phase, track: Track) -> list[dict]:
    """Every ranked team of the revealed board: its private rank, its public rank and the move (positive: up),
    in private order. Call it only once the private board is visible."""
    public = {r.team_id: r for r in stored_leaderboard(session, phase, track, "public").rows if r.rank}
    out = []
    for row in stored_leaderboard(session, phase, track, "private").rows:
        if not row.rank:
            continue
        before = public.get(row.team_id)
        out.append(
            {
                "team_id": row.team_id,
                "name": row.name,
                "private_rank": row.rank,
                "private_score": row.score,
                "public_rank": before.rank if before else None,
                "public_score": before.score if before else None,
                "move": (before.rank - row.rank) if before else None,
            }
        )
    return out


def team_view(session: Session, team: Team, now: dt.datetime) -> dict:
    """A team as every visitor may see it: name, members' display names, counted submissions, and its best score
    on each board (the public split; the private one only once its phase is revealed, as on the boards)."""
    count = session.scalar(
        select(func.count(Submission.id)).where(Submission.team_id == team.id, Submission.state.in_(COUNTED))
    )
    boards = []
    for phase in team.challenge.phases:
        splits = ("public", "private") if phase.private_visible(now) else ("public",)
        for track in team.challenge.tracks:
            if track.slug not in phase.tracks:
                continue
            for split in splits:
                rows = stored_leaderboard(session, phase, track, split).rows
                row = next((r for r in rows if r.team_id == team.id), None)
                if row is not None:
                    boards.append(
                        {
                            "phase": phase.slug,
                            "phase_title": phase.title,
                            "track": track.slug,
                            "track_title": track.title,
                            "metric": track.metric,
                            "split": split,
                            "rank": row.rank,
                            "score": row.score,
                            "submission_id": row.submission_id,
                            "submitted_at": _iso(row.submitted_at),
                        }
                    )
    return {
        "id": team.id,
        "name": team.name,
        "members": member_names(session, [team.id]).get(team.id, []),
        "submissions": count or 0,
        "created_at": _iso(team.created_at),
        "best": boards,
    }
