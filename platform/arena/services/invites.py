"""Invites by email: a captain invites an address; the invitee gets a signed link by mail (notify.send_mail, the
log when no SMTP is configured) and joins by accepting it, under the same rules and the same size cap as a join by
invite code (teams.join). Pending invites are listed and revocable; accepting or revoking ends an invite."""

from __future__ import annotations

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import audit, notify
from ..errors import Conflict, Forbidden, Invalid, NotFound
from ..models import Team, TeamInvite, User, utcnow
from . import teams
from .accounts import _EMAIL, normalise_email, require_verified

INVITE_AGE = 14 * 24 * 3600  # seconds a mailed invite link stays valid
MAX_PENDING = 20


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="arena-invite")


def view(invite: TeamInvite) -> dict:
    state = "accepted" if invite.accepted_at else "revoked" if invite.revoked_at else "pending"
    return {"id": invite.id, "email": invite.email, "created_at": invite.created_at.isoformat() + "Z", "state": state}


def link(invite: TeamInvite) -> str:
    token = _serializer().dumps({"invite": invite.id, "email": invite.email})
    return f"{current_app.config['BASE_URL']}/invites/{token}"


def invite(session: Session, captain: User, team_id: int, email: str) -> TeamInvite:
    """Invite an address to the captain's team and mail it the link (a second invite of the same address mails
    the link again)."""
    team = teams.captain_of(session, captain, team_id)
    email = normalise_email(email)
    if not _EMAIL.match(email):
        raise Invalid("enter a valid email address", field="email")
    open_invites = pending(session, captain, team_id)
    existing = next((i for i in open_invites if i.email == email), None)
    if existing is None:
        if len(open_invites) >= MAX_PENDING:
            raise Conflict(f"at most {MAX_PENDING} pending invites; revoke one first")
        existing = TeamInvite(team_id=team.id, email=email, invited_by_id=captain.id)
        session.add(existing)
        session.flush()
        audit.record(session, "team.invite", team, actor_id=captain.id, challenge_id=team.challenge_id)
        session.commit()
    who = captain.shown_name
    notify.send_mail(
        email,
        f"[{team.challenge.title}] {who} invites you to team {team.name}",
        f"{who} invites you to join team {team.name} in {team.challenge.title}.\n"
        f"Log in (or register with this address), then open this link to accept:\n{link(existing)}\n",
    )
    return existing


def pending(session: Session, captain: User, team_id: int) -> list[TeamInvite]:
    teams.captain_of(session, captain, team_id)
    return list(
        session.scalars(
            select(TeamInvite)
            .where(TeamInvite.team_id == team_id, TeamInvite.accepted_at.is_(None), TeamInvite.revoked_at.is_(None))
            .order_by(TeamInvite.id)
        )
    )


def revoke(session: Session, captain: User, invite_id: int) -> TeamInvite:
    found = session.get(TeamInvite, invite_id)
    if found is None:
        raise NotFound(f"no invite {invite_id}")
    teams.captain_of(session, captain, found.team_id)  # NotFound for anyone but the team's members
    if found.accepted_at is not None:
        raise Conflict("this invite was accepted already")
    if found.revoked_at is None:
        found.revoked_at = utcnow()
        session.commit()
    return found


def from_token(session: Session, token: str) -> TeamInvite:
    """The pending invite of a link, or Invalid saying why the link does not work."""
    try:
        data = _serializer().loads(token, max_age=INVITE_AGE)
    except SignatureExpired:
        raise Invalid("this invite has expired; ask the captain for a new one", field="token") from None
    except BadSignature:
        raise Invalid("this invite link is not valid", field="token") from None
    found = session.get(TeamInvite, data.get("invite"))
    if found is None or found.email != data.get("email") or found.revoked_at is not None:
        raise Invalid("this invite was revoked", field="token")
    if found.accepted_at is not None:
        raise Invalid("this invite was accepted already", field="token")
    return found


def accept(session: Session, user: User, token: str, accept_rules: bool) -> Team:
    """Join the invite's team: the invite is for this user's (verified) address; the registration window, the
    rules and the size cap are checked as for a join by code."""
    require_verified(user)
    found = from_token(session, token)
    if normalise_email(user.email) != found.email:
        raise Forbidden("this invite is for another email address; log in with the invited one")
    team = found.team
    teams._check_registration(team.challenge, accept_rules)
    found_id = found.id
    team = teams.join(session, user, team)  # commits the membership (or raises: the invite stays pending)
    found = session.get(TeamInvite, found_id)
    found.accepted_at = utcnow()
    session.commit()
    return team
