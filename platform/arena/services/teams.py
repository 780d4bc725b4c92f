"""Teams: create, join by invite code (the size cap holds under concurrent joins), captaincy, removal, merges."""

from __future__ import annotations

import secrets

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .. import audit
from ..errors import Conflict, Forbidden, Invalid, LimitReached, NotFound
from ..limits import check_limits, lock_team
from ..models import Challenge, Membership, Submission, Team, User, utcnow
from .accounts import require_verified


def user_team(session: Session, user: User | None, challenge: Challenge) -> Team | None:
    if user is None:
        return None
    return session.scalar(
        select(Team).join(Membership).where(Membership.user_id == user.id, Membership.challenge_id == challenge.id)
    )


def _check_registration(challenge: Challenge, accept_rules: bool) -> None:
    now = utcnow()
    if challenge.registration_opens and now < challenge.registration_opens:
        raise Forbidden(f"registration opens on {challenge.registration_opens:%Y-%m-%d %H:%M} UTC")
    if challenge.registration_closes and now >= challenge.registration_closes:
        raise Forbidden(f"registration closed on {challenge.registration_closes:%Y-%m-%d %H:%M} UTC")
    if not accept_rules:
        raise Invalid("accept the challenge's rules to join it", field="accept_rules")


def create_team(session: Session, user: User, challenge: Challenge, name: str, accept_rules: bool) -> Team:
    require_verified(user)
    _check_registration(challenge, accept_rules)
    name = " ".join((name or "").split())
    if not 2 <= len(name) <= 100:
        raise Invalid("a team name has 2 to 100 characters", field="name")
    if user_team(session, user, challenge) is not None:
        raise Conflict("you are in a team of this challenge already: one team per person per challenge")
    team = Team(
        challenge_id=challenge.id,
        name=name,
        invite_code=secrets.token_urlsafe(12),
        captain_id=user.id,
        status="pending" if challenge.teams_need_approval else "approved",
    )
    session.add(team)
    try:
        session.flush()
        session.add(Membership(challenge_id=challenge.id, team_id=team.id, user_id=user.id))
        audit.record(session, "team.create", team, actor_id=user.id, challenge_id=challenge.id, after={"name": name})
        session.commit()
    except IntegrityError:
        session.rollback()
        raise Conflict("that team name is taken, or you joined a team meanwhile", field="name") from None
    return team


def join_team(session: Session, user: User, challenge: Challenge, invite_code: str, accept_rules: bool) -> Team:
    """Join the team with this invite code. The member count is checked after locking the team row, so the size
    cap holds when many people join at once; the unique (challenge, user) key keeps one team per person."""
    require_verified(user)
    _check_registration(challenge, accept_rules)
    team = session.scalar(
        select(Team).where(Team.invite_code == (invite_code or "").strip(), Team.challenge_id == challenge.id)
    )
    if team is None or team.merged_into_id is not None:
        raise NotFound("no team of this challenge has that invite code", field="invite_code")
    return join(session, user, team)


def join(session: Session, user: User, team: Team) -> Team:
    """Add the user to the team, under the team lock (the size cap), once the caller checked the registration
    window and the rules: the one way in for invite codes and email invites alike."""
    challenge = team.challenge
    if team.merged_into_id is not None:
        raise NotFound("this team was merged into another one")
    if team.status == "banned":
        raise Forbidden("this team is banned")
    session.commit()  # end any read transaction: the lock below must be the transaction's first statement
    lock_team(session, team.id)
    members = session.scalar(select(func.count(Membership.id)).where(Membership.team_id == team.id))
    if members >= challenge.team_size:
        session.rollback()
        raise Conflict(f"the team is full: at most {challenge.team_size} members")
    session.add(Membership(challenge_id=challenge.id, team_id=team.id, user_id=user.id))
    audit.record(session, "team.join", team, actor_id=user.id, challenge_id=challenge.id, after={"user": user.id})
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise Conflict("you are in a team of this challenge already: one team per person per challenge") from None
    return team


def captain_of(session: Session, user: User, team_id: int) -> Team:
    team = session.get(Team, team_id)
    if (
        team is None
        or session.scalar(select(Membership.id).where(Membership.team_id == team_id, Membership.user_id == user.id))
        is None
    ):
        raise NotFound(f"no team {team_id}")
    if team.captain_id != user.id:
        raise Forbidden("only the team's captain can do this")
    return team


def remove_member(session: Session, captain: User, team_id: int, user_id: int) -> None:
    team = captain_of(session, captain, team_id)
    if user_id == captain.id:
        raise Invalid("the captain cannot remove themself; hand over captaincy first")
    membership = session.scalar(select(Membership).where(Membership.team_id == team.id, Membership.user_id == user_id))
    if membership is None:
        raise NotFound(f"user {user_id} is not a member of this team")
    session.delete(membership)
    audit.record(
        session,
        "team.remove_member",
        team,
        actor_id=captain.id,
        challenge_id=team.challenge_id,
        before={"user": user_id},
    )
    session.commit()


def transfer_captaincy(session: Session, captain: User, team_id: int, user_id: int) -> None:
    team = captain_of(session, captain, team_id)
    if (
        session.scalar(select(Membership.id).where(Membership.team_id == team.id, Membership.user_id == user_id))
        is None
    ):
        raise NotFound(f"user {user_id} is not a member of this team")
    audit.record(
        session,
        "team.captain",
        team,
        actor_id=captain.id,
        challenge_id=team.challenge_id,
        before={"captain": team.captain_id},
        after={"captain": user_id},
    )
    team.captain_id = user_id
    session.commit()


def merge_teams(session: Session, captain: User, team_id: int, target_invite_code: str) -> Team:
    """Merge the captain's team into the team with this invite code (Kaggle style): before the challenge's merge
    deadline, only if the members fit the size cap and the two teams' submissions together fit every phase's limits.
    The merged team keeps the target's name and captain; members and submissions move to it."""
    team = captain_of(session, captain, team_id)
    challenge = team.challenge
    now = utcnow()
    if challenge.merge_deadline and now >= challenge.merge_deadline:
        raise Forbidden(f"the merge deadline was {challenge.merge_deadline:%Y-%m-%d %H:%M} UTC")
    target = session.scalar(
        select(Team).where(Team.invite_code == (target_invite_code or "").strip(), Team.challenge_id == challenge.id)
    )
    if target is None or target.id == team.id or target.merged_into_id is not None:
        raise NotFound("no other team of this challenge has that invite code", field="invite_code")
    session.commit()
    for locked in sorted((team.id, target.id)):  # a fixed order: two merges cannot deadlock
        lock_team(session, locked)
    members = session.scalar(select(func.count(Membership.id)).where(Membership.team_id.in_((team.id, target.id))))
    if members > challenge.team_size:
        session.rollback()
        raise Conflict(f"the merged team would have {members} members; the cap is {challenge.team_size}")
    for phase in challenge.phases:
        try:
            check_limits(session, [team.id, target.id], phase, now, extra=0)
        except LimitReached as exc:
            session.rollback()
            raise Conflict(f"the merged team would exceed the limits of phase '{phase.title}': {exc}") from None
    session.execute(update(Membership).where(Membership.team_id == team.id).values(team_id=target.id))
    session.execute(update(Submission).where(Submission.team_id == team.id).values(team_id=target.id))
    team.merged_into_id, team.hidden = target.id, True
    audit.record(
        session,
        "team.merge",
        team,
        actor_id=captain.id,
        challenge_id=challenge.id,
        before={"team": team.id},
        after={"team": target.id},
    )
    session.commit()
    return target


def members(session: Session, team: Team) -> list[Membership]:
    return list(session.scalars(select(Membership).where(Membership.team_id == team.id).order_by(Membership.id)))
