"""Flask extensions, created unbound and init_app-ed by the factory, and the keys of the rate limits.

Rate-limit keys (docs/operations.md): a request of a logged-in user (bearer token or session cookie) counts
against that account, whatever its address; an anonymous one against its client address, which is the address
the configured number of proxies in front report (ARENA_PROXY_HOPS, Werkzeug's ProxyFix in the factory). A
password form (login, token, registration, reset request) is limited twice: per account named in the form
(RATELIMIT_LOGIN) and per address (RATELIMIT_LOGIN_ADDRESS), so that one account's wrong passwords never lock
another account out, and one address cannot try many accounts."""

from __future__ import annotations

from flask import current_app, request
from flask_limiter import Limiter
from flask_wtf.csrf import CSRFProtect


def client_address() -> str:
    return f"address:{request.remote_addr or 'unknown'}"


def caller_key() -> str:
    """The account of an authenticated request, else the client address."""
    from .auth import current_user

    user = current_user()
    return f"user:{user.id}" if user is not None else client_address()


def login_account_key() -> str:
    """The account a password form names (its email, normalised), for the per-account limit of logins."""
    from .services.accounts import normalise_email

    try:
        data = request.get_json(silent=True) if request.is_json else request.form
    except RecursionError:  # a body nested past the parser's depth: the view answers 400
        data = None
    email = data.get("email") if hasattr(data, "get") else None
    return f"login:{normalise_email(email) if isinstance(email, str) else ''}"


csrf = CSRFProtect()
limiter = Limiter(key_func=caller_key)


def login_limit() -> str:
    return current_app.config["RATELIMIT_LOGIN"]


def login_address_limit() -> str:
    return current_app.config["RATELIMIT_LOGIN_ADDRESS"]


def upload_limit() -> str:
    return current_app.config["RATELIMIT_UPLOAD"]


def password_form_limits(methods: list[str] | None = None):
    """Both limits of a password form: per account named in it and per client address."""

    def decorator(view):
        view = limiter.limit(login_limit, key_func=login_account_key, methods=methods)(view)
        return limiter.limit(login_address_limit, key_func=client_address, methods=methods)(view)

    return decorator
