"""The SQLAlchemy engine of an app and the session of a request (or of a job run inside an app context)."""

from __future__ import annotations

import contextlib
import logging

from flask import Flask, current_app, g, has_request_context, request
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from . import board_push, standings

log = logging.getLogger(__name__)


def make_engine(url: str, **kwargs) -> Engine:
    """An engine; SQLite gets WAL, foreign keys and a busy timeout so that a web and a worker process share it."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


def init_app(app: Flask, engine: Engine | None = None) -> None:
    engine = engine or make_engine(app.config["DATABASE_URL"])
    app.extensions["arena.engine"] = engine
    app.extensions["arena.sessionmaker"] = maker = sessionmaker(engine, expire_on_commit=False)
    standings.listen(maker)  # the stored boards follow every change, in its transaction
    board_push.listen(maker)  # ... and every web process hears of it at the commit (after standings' hooks)
    app.teardown_request(_close_request_session)
    app.teardown_appcontext(_close_session)


def get_session() -> Session:
    """The session of the current request, else of the current app context (a job, a CLI command), created on
    first use. Keyed on the request itself: a request never shares a session with an app context around it."""
    if has_request_context():
        session = request.environ.get("arena.db_session")
        if session is None:
            session = request.environ["arena.db_session"] = current_app.extensions["arena.sessionmaker"]()
        return session
    if "db_session" not in g:
        g.db_session = current_app.extensions["arena.sessionmaker"]()
    return g.db_session


def new_session() -> Session:
    """A session apart from the request's (for threads and the concurrency-sensitive paths)."""
    return current_app.extensions["arena.sessionmaker"]()


def _close_request_session(_exc) -> None:
    _close_quietly(request.environ.pop("arena.db_session", None))


def _close_session(_exc) -> None:
    _close_quietly(g.pop("db_session", None))


def _close_quietly(session: Session | None) -> None:
    """Close a request's session after its answer is made. A connection that died meanwhile (the database
    restarted, the backend terminated) makes close()'s rollback raise: the answer stands, the dead connection is
    dropped from the pool (an exception here would turn the finished answer into the server's HTML 500)."""
    if session is None:
        return
    try:
        session.close()
    except Exception as exc:
        log.warning("closing a database session failed (%s); its connection is discarded", exc.__class__.__name__)
        with contextlib.suppress(Exception):
            session.invalidate()
