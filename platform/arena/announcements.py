"""Announcements: an organizer's message to every team of a challenge (a title and a Markdown body), stored,
audited, sent in-app (a Notification per member) and by mail (notify.send_mail, which logs it without SMTP), and
shown on the challenge page (`for_challenge`, templates/_announcements.html)."""

from __future__ import annotations

from pydantic import Field
from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from . import audit, notify
from .contract import Body
from .errors import Invalid
from .models import Announcement, Challenge, Membership, Notification, Team, User

SHOWN = 20  # the challenge page shows the latest SHOWN


class AnnouncementIn(Body):
    title: str = Field(max_length=200)
    body: str = Field("", max_length=20_000)


def post(session: Session, actor: User, challenge: Challenge, title: str, body: str) -> Announcement:
    """Store an announcement and send it to every member of every team of the challenge (banned and hidden teams
    included: they are told too; merged teams have no members left)."""
    title, body = " ".join((title or "").split()), (body or "").strip()
    if not title:
        raise Invalid("an announcement needs a title", field="title")
    announcement = Announcement(challenge_id=challenge.id, title=title, body=body, author_id=actor.id)
    session.add(announcement)
    session.flush()
    members = session.execute(
        select(Membership.user_id, User.email)
        .join(Team, Team.id == Membership.team_id)
        .join(User, User.id == Membership.user_id)
        .where(Team.challenge_id == challenge.id)
        .order_by(Membership.user_id)
    ).all()
    link = f"/c/{challenge.slug}#announcement-{announcement.id}"
    session.add_all(
        Notification(user_id=user_id, message=f"Announcement: {title}"[:500], link=link) for user_id, _ in members
    )
    announcement.recipients = len(members)
    audit.record(
        session,
        "announcement.post",
        announcement,
        actor_id=actor.id,
        challenge_id=challenge.id,
        after={"title": title, "recipients": len(members)},
    )
    session.commit()
    subject = f"[{challenge.title}] {title}"[:200]
    for _user_id, email in members:  # after the commit: a slow mail server never holds the transaction
        notify.send_mail(email, subject, f"{body}\n\n-- the organizers of {challenge.title}")
    return announcement


def for_challenge(session: Session, challenge: Challenge, limit: int = SHOWN) -> list[Announcement]:
    """The challenge's latest announcements, newest first (public: the challenge page shows them)."""
    return list(
        session.scalars(
            select(Announcement)
            .options(joinedload(Announcement.author))
            .where(Announcement.challenge_id == challenge.id)
            .order_by(Announcement.id.desc())
            .limit(limit)
        )
    )
