"""The participants' API endpoints of issue 15, on the blueprint of api.py (its `route()` helper, read its how-to):
quota, display name and password, public team pages, invites by email, the shake-up of a revealed board."""

from __future__ import annotations

from flask import jsonify
from pydantic import Field, RootModel

from . import participants
from .api import PARTICIPANT, PUBLIC, BoardPath, QuotaOut, Registered, SlugPath, TeamPath, UserOut, route, user_out
from .auth import api_user, current_user
from .boards import find_challenge
from .contract import Body, Model
from .db import get_session
from .errors import Forbidden, NotFound
from .models import Team, utcnow
from .services import accounts, invites, submissions, teams


@route("get", "/challenges/<slug>/phases/<phase_slug>/tracks/<track_slug>/quota", role=PARTICIPANT, out=QuotaOut)
def get_quota(path: BoardPath):
    """Your team's submissions left today, in total and in flight, and when the daily count resets."""
    from .limits import quota

    session, user = get_session(), api_user()
    challenge = find_challenge(path.slug)
    phase, track = submissions.phase_and_track(session, challenge, path.phase_slug, path.track_slug)
    team = teams.user_team(session, user, challenge)
    if team is None:
        raise NotFound("you have no team in this challenge")
    return participants.quota_view(quota(session, [team.id], phase, utcnow()), phase, track)


# --------------------------------------------------------------------------------------------------- account


class ProfileIn(Body):
    display_name: str | None = Field(None, max_length=100)


class PasswordIn(Body):
    current_password: str = Field(max_length=1024)
    new_password: str = Field(max_length=1024)


@route("patch", "/me", role=PARTICIPANT, out=UserOut)
def update_me(body: ProfileIn):
    """Set your display name (what other participants see of you; blank clears it)."""
    return user_out(accounts.set_display_name(get_session(), api_user(), body.display_name))


@route("post", "/me/password", role=PARTICIPANT, out=Registered)
def change_password(body: PasswordIn):
    """Change your password (the current one required); every logged-in browser session ends, tokens stay."""
    accounts.change_password(get_session(), api_user(), body.current_password, body.new_password)
    return {"message": "Your password is changed; log in again in your browsers."}


# --------------------------------------------------------------------------------------------------- teams


class TeamBoardOut(Model):
    phase: str
    phase_title: str
    track: str
    track_title: str
    metric: str
    split: str
    rank: int | None
    score: float
    submission_id: int
    submitted_at: str | None


class PublicTeamOut(Model):
    """A team as every visitor sees it: members by display name (never an email)."""

    id: int
    name: str
    members: list[str]
    submissions: int
    created_at: str | None
    best: list[TeamBoardOut]


class PublicTeamPath(SlugPath):
    team_id: int


def public_team(slug: str, team_id: int) -> Team:
    """The team if every visitor may see it (of this challenge, not hidden nor merged away), else NotFound."""
    challenge = find_challenge(slug)
    team = get_session().get(Team, team_id)
    if team is None or team.challenge_id != challenge.id or team.hidden or team.merged_into_id is not None:
        raise NotFound(f"no team {team_id} in challenge '{slug}'")
    return team


@route("get", "/challenges/<slug>/teams/<int:team_id>", role=PUBLIC, out=PublicTeamOut)
def get_public_team(path: PublicTeamPath):
    """A team's public page: name, members' display names, submission count, best scores per board."""
    return participants.team_view(get_session(), public_team(path.slug, path.team_id), utcnow())


class InviteIn(Body):
    email: str = Field(max_length=254)


class InviteOut(Model):
    id: int
    email: str
    created_at: str
    state: str


class InviteList(RootModel[list[InviteOut]]):
    pass


class InvitePath(Model):
    invite_id: int


class AcceptIn(Body):
    token: str = Field(max_length=1000)
    accept_rules: bool


@route("post", "/teams/<int:team_id>/invites", role=PARTICIPANT, status=201, out=InviteOut)
def invite(path: TeamPath, body: InviteIn):
    """Captain: invite an email address to the team (a link is mailed to it)."""
    return invites.view(invites.invite(get_session(), api_user(), path.team_id, body.email)), 201


@route("get", "/teams/<int:team_id>/invites", role=PARTICIPANT, out=InviteList)
def list_invites(path: TeamPath):
    """Captain: the team's pending invites."""
    return jsonify([invites.view(i) for i in invites.pending(get_session(), api_user(), path.team_id)])


@route("post", "/invites/<int:invite_id>/revoke", role=PARTICIPANT, out=InviteOut)
def revoke_invite(path: InvitePath):
    """Captain: revoke a pending invite."""
    return invites.view(invites.revoke(get_session(), api_user(), path.invite_id))


@route("post", "/invites/accept", role=PARTICIPANT, out=PublicTeamOut)
def accept_invite(body: AcceptIn):
    """Accept the rules and join the team of an invite (the token of the mailed link)."""
    session = get_session()
    team = invites.accept(session, api_user(), body.token, body.accept_rules)
    return participants.team_view(session, team, utcnow())


# --------------------------------------------------------------------------------------------------- shake-up


class ShakeupRow(Model):
    team_id: int | None
    name: str
    private_rank: int
    private_score: float
    public_rank: int | None
    public_score: float | None
    move: int | None


class ShakeupOut(Model):
    metric: str
    rows: list[ShakeupRow]


@route("get", "/challenges/<slug>/phases/<phase_slug>/tracks/<track_slug>/shakeup", role=PUBLIC, out=ShakeupOut)
def get_shakeup(path: BoardPath):
    """After the reveal: each team's private rank beside its public rank and the move (positive: up)."""
    session = get_session()
    phase, track = submissions.phase_and_track(session, find_challenge(path.slug), path.phase_slug, path.track_slug)
    user = current_user()
    if not phase.private_visible(utcnow()) and not (user and user.is_organizer):  # the private board's rule
        raise Forbidden(f"the shake-up shows once the private board is revealed (the phase is {phase.state(utcnow())})")
    return {"metric": track.metric, "rows": participants.shakeup(session, phase, track)}
