"""Who is asking: the session cookie (HTML pages) or a bearer token (the API)."""

from __future__ import annotations

import functools

from flask import redirect, request, session, url_for

from .db import get_session
from .errors import Unauthorized
from .models import User
from .services import accounts


def current_user() -> User | None:
    if "arena.user" not in request.environ:
        user = None
        header = request.headers.get("Authorization", "")
        if header.lower().startswith("bearer "):
            user = accounts.user_for_token(get_session(), header[7:].strip())
        elif session.get("user_id") is not None:
            user = get_session().get(User, session["user_id"])
            if user is not None and session.get("generation") != user.session_generation:
                user = None  # the cookie predates a logout or a password reset
                session.clear()
        request.environ["arena.user"] = user
    return request.environ["arena.user"]


def api_user() -> User:
    """The API's caller from its bearer token, or 401."""
    header = request.headers.get("Authorization", "")
    if not header.lower().startswith("bearer "):
        raise Unauthorized("send an API token: Authorization: Bearer <token>")
    user = current_user()
    if user is None:
        raise Unauthorized("the API token is not valid, has expired or was revoked")
    return user


def login_required(view):
    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        if current_user() is None:
            return redirect(url_for("web.login", next=request.full_path))
        return view(*args, **kwargs)

    return wrapped


def log_in(user: User) -> None:
    """A signed session cookie, valid PERMANENT_SESSION_LIFETIME (ARENA_SESSION_DAYS) or until the user logs out
    or resets the password, whichever comes first."""
    session.clear()
    session["user_id"] = user.id
    session["generation"] = user.session_generation
    session.permanent = True


def log_out() -> None:
    """End every session of the user (the cookie is signed, not stored: a copy of it would work otherwise)."""
    user = current_user()
    if user is not None:
        accounts.end_sessions(get_session(), user)
    session.clear()
