"""Health, readiness and metrics: /healthz (the process answers), /readyz (the database and the file store work;
the queue is reported but not required: uploads are accepted while Redis is down), /metrics (Prometheus text).

Also the answer to an infrastructure failure inside any request (the database or Redis unreachable): a 503 with
a clear message, never a 500."""

from __future__ import annotations

import hmac
import logging
import tempfile

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from sqlalchemy import text
from sqlalchemy.exc import DataError, DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.routing import IntegerConverter

from . import metrics, storage
from .db import get_session, new_session

log = logging.getLogger(__name__)
bp = Blueprint("health", __name__)
UNAVAILABLE = "the database or the queue failed under this request; nothing was saved. Please retry in a minute"


@bp.get("/healthz")
def healthz():
    return jsonify({"status": "ok"})


def _check_database() -> str | None:
    session = new_session()
    try:
        session.execute(text("SELECT 1"))
        return None
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    finally:
        session.close()


def _check_storage() -> str | None:
    try:
        with tempfile.NamedTemporaryFile(dir=storage.root(current_app.config["STORAGE_DIR"]), prefix=".ready"):
            return None
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"[:200]


def _check_redis() -> str | None:
    from . import queue

    try:
        queue.connect().ping()
        return None
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"[:200]


@bp.get("/readyz")
def readyz():
    problems = {"database": _check_database(), "storage": _check_storage(), "redis": _check_redis()}
    checks = {name: "ok" if problem is None else problem for name, problem in problems.items()}
    ready = problems["database"] is None and problems["storage"] is None
    body = {"status": "ready" if ready else "unavailable", "checks": checks}
    if problems["redis"] is not None:
        body["note"] = "the queue is down: uploads are stored and will be scored when it is back"
    if current_app.config.get("BOARD_PUSH"):
        from . import board_push

        body["board_push"] = board_push.state(current_app.extensions["arena.engine"])
    return jsonify(body), 200 if ready else 503


@bp.get("/metrics")
def metrics_page():
    token = current_app.config.get("METRICS_TOKEN")
    if token:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), token.encode()):
            return Response("a metrics token is required\n", status=401, mimetype="text/plain")
    try:
        body = metrics.render(get_session())
    except (OperationalError, DBAPIError, PoolTimeout) as exc:
        log.warning("metrics: the database cannot be reached (%s)", exc)
        return Response("# the database cannot be reached\narena_database_up 0\n", status=503, mimetype="text/plain")
    return Response(body, mimetype="text/plain; version=0.0.4; charset=utf-8")


def _unavailable(exc: Exception):
    """The database or the queue failed under a request: roll back, log, answer 503 (JSON under /api/)."""
    log.error("infrastructure error under %s %s: %s", request.method, request.path, exc)
    try:
        get_session().rollback()
    except Exception:  # the session is as broken as its connection; the teardown closes it
        pass
    if request.path.startswith("/api/"):
        response = jsonify({"error": "unavailable", "message": UNAVAILABLE})
    else:
        response = Response(f"<h1>Service unavailable</h1><p>{UNAVAILABLE}</p>", mimetype="text/html")
    response.status_code = 503
    response.headers["Retry-After"] = "30"
    return response


def _out_of_range(exc: DataError):
    """A value the database cannot hold (an integer past its range, a malformed number): the caller's fault, 400."""
    log.info("data error under %s %s: %s", request.method, request.path, str(exc).splitlines()[0])
    try:
        get_session().rollback()
    except Exception:
        pass
    message = "a value in the request is out of range or malformed"
    if request.path.startswith("/api/"):
        return jsonify({"error": "invalid", "message": message}), 400
    return Response(f"<h1>Bad request</h1><p>{message}</p>", status=400, mimetype="text/html")


class BoundedIntConverter(IntegerConverter):
    """`<int:...>` in a URL: ids past the database's integer range match no route (404), instead of reaching the
    database as a value it cannot hold."""

    def __init__(self, url_map, fixed_digits=0, min=None, max=2**31 - 1, signed=False):  # noqa: A002
        super().__init__(url_map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)


def bound_ids(app: Flask) -> None:
    """Call before the blueprints are registered (their rules take the converter when they are added)."""
    app.url_map.converters["int"] = BoundedIntConverter


def init_app(app) -> None:
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeout

    app.register_blueprint(bp)
    for exc_type in (OperationalError, DBAPIError, PoolTimeout, RedisConnectionError, RedisTimeout):
        app.register_error_handler(exc_type, _unavailable)
    app.register_error_handler(DataError, _out_of_range)
