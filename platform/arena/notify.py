"""Notifications: in-app always; by email when SMTP_HOST is configured (else the mail is written to the log)."""

from __future__ import annotations

import logging
import smtplib
from email.message import EmailMessage

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from .formatting import shown_score
from .models import Membership, Notification, Submission

log = logging.getLogger(__name__)


def send_mail(to: str, subject: str, body: str) -> bool:
    """Send one mail, or log it when no SMTP server is configured (the embedded default). A mail server that
    fails is logged, never raised: the action that mails (a registration, a score) has happened."""
    config = current_app.config
    if not config.get("SMTP_HOST"):
        # the embedded default (make demo): the mail, its links included, is printed in the web server's terminal,
        # framed so that it stands out of the request log; the pages say so (frontend.MAIL_NOTE)
        rule = "-" * 72
        log.warning(
            "mail NOT sent (no SMTP_HOST configured), here it is:\n%s\nTo: %s\nSubject: %s\n\n%s\n%s",
            rule,
            to,
            subject,
            body.rstrip("\n"),
            rule,
        )
        return False
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = config["MAIL_FROM"], to, subject
    message.set_content(body)
    try:
        with smtplib.SMTP(config["SMTP_HOST"], config["SMTP_PORT"], timeout=10) as smtp:
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException):
        log.exception("could not mail %s through %s:%s", to, config["SMTP_HOST"], config["SMTP_PORT"])
        return False
    return True


def submission_done(session: Session, sub: Submission, extra: str = "") -> None:
    """Tell every member of the submission's team that it finished or failed (the caller commits)."""
    if sub.team_id is None:
        return
    if sub.state == "finished":
        shown = shown_score(sub.public_score, sub.track.metric)
        text = f"Submission {sub.id} is scored: {sub.track.metric} {shown} on the public split"
    else:
        text = f"Submission {sub.id} failed: {sub.error}"
    tell_team(session, sub, text + extra)


def tell_team(session: Session, sub: Submission, text: str) -> None:
    """Notify every member of the submission's team (in-app, and by mail when SMTP is configured)."""
    if sub.team_id is None:
        return
    members = session.scalars(select(Membership).where(Membership.team_id == sub.team_id))
    for member in members:
        session.add(Notification(user_id=member.user_id, message=text[:500], link=f"/submissions/{sub.id}"))
        if current_app.config.get("SMTP_HOST"):
            send_mail(member.user.email, f"[{sub.phase.challenge.title}] {text[:80]}", text)
