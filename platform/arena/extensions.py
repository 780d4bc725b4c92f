"""Flask extensions, created unbound and init_app-ed by the factory."""

from __future__ import annotations

from flask import current_app
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_wtf.csrf import CSRFProtect

csrf = CSRFProtect()
limiter = Limiter(key_func=get_remote_address)


def login_limit() -> str:
    return current_app.config["RATELIMIT_LOGIN"]


def upload_limit() -> str:
    return current_app.config["RATELIMIT_UPLOAD"]
