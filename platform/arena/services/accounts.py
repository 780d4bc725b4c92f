"""Accounts: registration, passwords (argon2), email verification and reset links, API tokens."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .. import notify
from ..errors import Conflict, Forbidden, Invalid, NotFound, Unauthorized
from ..models import ApiToken, User, utcnow

log = logging.getLogger(__name__)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MIN_PASSWORD = 8
TOKEN_PREFIX = "arena_"
TOKEN_TOUCH = dt.timedelta(minutes=5)
REGISTERED = "Check your mail: we sent the address a link to verify it (or, if it has an account, a note). Then log in."
LINK_AGE = {"verify": 7 * 24 * 3600, "reset": 3600}


def _hasher() -> PasswordHasher:
    """argon2id with the library's defaults, or ARGON2 config parameters (the tests use cheap ones)."""
    return PasswordHasher(**current_app.config.get("ARGON2", {}))


def normalise_email(email: str) -> str:
    return (email or "").strip().lower()


DISPLAY_NAME = re.compile(r"^[^\W_][\w .\-]*$")  # letters or digits first, then also spaces, '.', '_' and '-'
DISPLAY_MIN, DISPLAY_MAX = 3, 40


def checked_display_name(session: Session, name: str | None, user: User | None = None) -> str | None:
    """A display name as stored (spaces collapsed; blank is None), or Invalid naming the rule it breaks, or
    Conflict when another account has it (compared without case). No '@': a display name never looks like an
    email address."""
    name = " ".join((name or "").split())
    if not name:
        return None
    if not DISPLAY_MIN <= len(name) <= DISPLAY_MAX:
        raise Invalid(f"a display name has {DISPLAY_MIN} to {DISPLAY_MAX} characters", field="display_name")
    if not DISPLAY_NAME.match(name):
        raise Invalid(
            "a display name starts with a letter or a digit and has only letters, digits, spaces, '.', '_' and '-'",
            field="display_name",
        )
    taken = session.scalar(select(User.id).where(func.lower(User.display_name) == name.lower()))
    if taken is not None and (user is None or taken != user.id):
        raise Conflict(f"the display name '{name}' is taken", field="display_name")
    return name


def set_display_name(session: Session, user: User, name: str | None) -> User:
    """Set (or with a blank, clear) the user's display name."""
    user.display_name = checked_display_name(session, name, user)
    try:
        session.commit()
    except IntegrityError:  # someone took it between the check and the write
        session.rollback()
        raise Conflict(f"the display name '{name}' is taken", field="display_name") from None
    return user


def change_password(session: Session, user: User, current: str, new: str) -> User:
    """A new password, the current one required; like a reset it ends every session cookie of the user (the
    caller logs the current browser in again) and keeps the API tokens (the user proved to know the password)."""
    try:
        _hasher().verify(user.password_hash, current or "")
    except (VerificationError, InvalidHashError):
        raise Invalid("the current password is wrong", field="current_password") from None
    if len(new or "") < MIN_PASSWORD:
        raise Invalid(f"the new password must have at least {MIN_PASSWORD} characters", field="new_password")
    user.password_hash = _hasher().hash(new)
    end_sessions(session, user)  # commits
    return user


def register(session: Session, email: str, password: str, display_name: str | None = None) -> User:
    """A new account (a verification link is mailed); Conflict if the email has one. For the CLI and the tests:
    the web and the API use register_quietly, which tells no one whether an email has an account."""
    email = _checked(email, password)
    if session.scalar(select(User.id).where(User.email == email)) is not None:
        raise Conflict("an account with this email exists already", field="email")
    name = checked_display_name(session, display_name)
    user = User(email=email, password_hash=_hasher().hash(password), display_name=name)
    session.add(user)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise Conflict("this email or display name was registered just now", field="display_name") from None
    send_verification(user)
    return user


def register_quietly(session: Session, email: str, password: str, display_name: str | None = None) -> None:
    """Register, answering alike whether the email was new: a new address gets its verification link, a known
    one a note saying so (the owner learns of the attempt; the caller learns nothing). The password is hashed
    either way, so the answer takes as long."""
    email = _checked(email, password)
    checked_display_name(session, display_name)  # a taken display name is said (names are public; emails not)
    try:
        register(session, email, password, display_name)
    except Conflict:
        session.rollback()
        _hasher().hash(password)
        link = f"{current_app.config['BASE_URL']}/forgot"
        notify.send_mail(
            email,
            "Someone tried to register with your email",
            f"Your address has an account already. If that was you, log in, or set a new password: {link}\n",
        )


def _checked(email: str, password: str) -> str:
    email = normalise_email(email)
    if not _EMAIL.match(email) or len(email) > 254:
        raise Invalid("enter a valid email address", field="email")
    if len(password or "") < MIN_PASSWORD:
        raise Invalid(f"the password must have at least {MIN_PASSWORD} characters", field="password")
    return email


def end_sessions(session: Session, user: User) -> None:
    """Every session cookie of this user stops working (logout, password reset): auth.py compares generations."""
    user.session_generation = (user.session_generation or 0) + 1
    session.commit()


def authenticate(session: Session, email: str, password: str) -> User:
    user = session.scalar(select(User).where(User.email == normalise_email(email)))
    if user is None:
        _hasher().hash(password or "x")  # same cost whether the account exists or not
        raise Unauthorized("wrong email or password")
    try:
        _hasher().verify(user.password_hash, password or "")
    except (VerificationError, InvalidHashError):
        raise Unauthorized("wrong email or password") from None
    return user


def _serializer(purpose: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=f"arena-{purpose}")


def link_token(user: User, purpose: str) -> str:
    """A signed token for an email link. A reset token is bound to the current password hash: single use."""
    return _serializer(purpose).dumps({"uid": user.id, "pw": user.password_hash[-16:]})


def _user_from_token(session: Session, token: str, purpose: str) -> User:
    try:
        data = _serializer(purpose).loads(token, max_age=LINK_AGE[purpose])
    except SignatureExpired:
        raise Invalid("this link has expired; ask for a new one") from None
    except BadSignature:
        raise Invalid("this link is not valid") from None
    user = session.get(User, data.get("uid"))
    if user is None or user.password_hash[-16:] != data.get("pw"):
        raise Invalid("this link is not valid any more")
    return user


def send_verification(user: User) -> str:
    link = f"{current_app.config['BASE_URL']}/verify/{link_token(user, 'verify')}"
    notify.send_mail(user.email, "Verify your email", f"Open this link to verify your email:\n{link}\n")
    return link


def verify_email(session: Session, token: str) -> User:
    user = _user_from_token(session, token, "verify")
    user.verified = True
    session.commit()
    return user


def request_password_reset(session: Session, email: str) -> None:
    """Mail a reset link if the account exists; say nothing either way (no account enumeration)."""
    user = session.scalar(select(User).where(User.email == normalise_email(email)))
    if user is not None:
        link = f"{current_app.config['BASE_URL']}/reset/{link_token(user, 'reset')}"
        notify.send_mail(user.email, "Reset your password", f"Open this link to set a new password:\n{link}\n")


def reset_password(session: Session, token: str, password: str) -> User:
    user = _user_from_token(session, token, "reset")
    if len(password or "") < MIN_PASSWORD:
        raise Invalid(f"the password must have at least {MIN_PASSWORD} characters", field="password")
    user.password_hash = _hasher().hash(password)
    now = utcnow()
    for token in session.scalars(select(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))):
        token.revoked_at = now  # whoever knew the old password may have made tokens with it
    end_sessions(session, user)  # commits
    return user


def _token_hash(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def create_api_token(session: Session, user: User, name: str) -> tuple[ApiToken, str]:
    """A new token; only its sha256 is stored, the plaintext is returned once."""
    name = (name or "").strip()[:100] or "token"
    active = session.scalar(
        select(func.count(ApiToken.id)).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
    )
    if active >= 20:
        raise Conflict("at most 20 active tokens; revoke one first")
    plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
    expires = utcnow() + dt.timedelta(days=current_app.config["TOKEN_DAYS"])
    token = ApiToken(
        user_id=user.id, name=name, token_hash=_token_hash(plaintext), prefix=plaintext[:12], expires_at=expires
    )
    session.add(token)
    session.commit()
    return token, plaintext


def user_for_token(session: Session, plaintext: str) -> User | None:
    """The user of an active token (not revoked, not expired), else None."""
    token = session.scalar(
        select(ApiToken).where(ApiToken.token_hash == _token_hash(plaintext or ""), ApiToken.revoked_at.is_(None))
    )
    now = utcnow()
    if token is None or (token.expires_at is not None and token.expires_at <= now):
        return None
    if token.last_used_at is None or now - token.last_used_at > TOKEN_TOUCH:  # not a write on every request
        token.last_used_at = now
        session.commit()
    return token.user


def revoke_token(session: Session, user: User, token_id: int) -> ApiToken:
    token = session.get(ApiToken, token_id)
    if token is None or token.user_id != user.id:
        raise NotFound(f"no token {token_id}")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        session.commit()
    return token


def list_tokens(session: Session, user: User) -> list[ApiToken]:
    return list(session.scalars(select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id)))


def require_verified(user: User) -> None:
    if not user.verified:
        raise Forbidden("verify your email address first (the link was sent when you registered)")
