"""Fixtures of the platform tests: every app-level test runs twice, on SQLite (a fresh file per test) and on the
PostgreSQL of this machine (a fresh schema per test session, built by the Alembic migrations, emptied per test);
the queue is the real Redis at 127.0.0.1:6379 (database 13; each test's keys are deleted before and after it)."""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).parent))

from arena import create_app  # noqa: E402
from arena.db import make_engine  # noqa: E402
from arena.models import Base  # noqa: E402
from arena_testkit import Data, load_challenge, make_data, make_user, token_for  # noqa: E402

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/13")


SQLITE_ONLY = ("test_browser.py", "test_api_fuzz.py")  # one run is enough; the other tests cover both databases


def pytest_collection_modifyitems(config, items):
    """Drop the PostgreSQL variant of the browser and fuzz tests before their (costly) fixtures are built."""
    items[:] = [item for item in items if not (item.fspath.basename in SQLITE_ONLY and "[postgres" in item.name)]


@pytest.fixture(scope="session")
def postgres_engine():
    """An engine whose search_path is a schema of its own, migrated with Alembic once; dropped at the end."""
    schema = f"arena_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:  # no server: the postgres half of the suite cannot run here
        pytest.skip(f"PostgreSQL at {POSTGRES_URL} is not reachable: {exc}")
    engine = make_engine(POSTGRES_URL, connect_args={"options": f"-csearch_path={schema}"})
    from alembic import command
    from arena.cli import alembic_config

    config = alembic_config(POSTGRES_URL)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
    yield engine
    engine.dispose()
    with admin.connect() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def _empty(engine) -> None:
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request, tmp_path):
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'arena.db'}")
        Base.metadata.create_all(engine)
        yield engine
        engine.dispose()
    else:
        engine = request.getfixturevalue("postgres_engine")
        _empty(engine)
        yield engine


@pytest.fixture
def queue_name() -> str:
    return f"arena-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def redis_conn(queue_name):
    """The real Redis, emptied of this test's keys before and after. Every key of a test (its queue, registries
    and jobs) carries its own queue name, so concurrent runs of the suite on one Redis never touch each other."""
    from redis import Redis

    conn = Redis.from_url(REDIS_URL)
    try:
        conn.ping()
    except Exception as exc:
        pytest.skip(f"Redis at {REDIS_URL} is not reachable: {exc}")

    def empty():
        keys = list(conn.scan_iter(f"*{queue_name}*"))
        if keys:
            conn.delete(*keys)

    empty()
    yield conn
    empty()


@pytest.fixture
def app(engine, redis_conn, queue_name, tmp_path, monkeypatch):
    monkeypatch.setenv("ARENA_INSTANCE", str(tmp_path / "instance"))
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test-secret",
            "DATABASE_URL": str(engine.url),
            "ENGINE": engine,
            "REDIS_URL": REDIS_URL,
            "STORAGE_DIR": str(tmp_path / "storage"),
            "WTF_CSRF_ENABLED": False,
            "RATELIMIT_ENABLED": False,
            "RATELIMIT_STORAGE_URI": "memory://",
            "HEARTBEAT_SECONDS": 0.05,
            # boards pushed to the process (board_push.py) are tested on their own (test_board_push.py), with
            # sync(): elsewhere a board read right after another process's commit must not depend on how soon
            # the notification arrives
            "BOARD_PUSH": False,
            # a queue of its own: a worker of another test run on this Redis never takes this test's jobs
            "RQ_QUEUE": queue_name,
            "ARGON2": {"time_cost": 1, "memory_cost": 64, "parallelism": 1},
        }
    )
    app.extensions["arena.redis"] = redis_conn
    yield app


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def db(app):
    from arena.db import get_session

    with app.app_context():
        yield get_session()


# --------------------------------------------------------------------------------------------------- data


@pytest.fixture
def data(tmp_path) -> Data:
    return make_data(tmp_path / "bundle")


@pytest.fixture
def challenge(app, db, data):
    """The tiny challenge loaded from its bundle folder (with labels)."""
    return load_challenge(db, data)


@pytest.fixture
def team_user(db, client, challenge):
    """(user, headers, team) of a verified user captaining team 'Alpha'."""
    from arena.services import teams

    user = make_user(db, "alice@example.com")
    team = teams.create_team(db, user, challenge, "Alpha", True)
    return user, token_for(db, user), team


@pytest.fixture
def three_teams(db, challenge, team_user):
    """Bearer headers of three teams' members: team_user's (Alpha), then Bravo's and Charlie's."""
    from arena.services import teams

    out = [team_user[1]]
    for name in ("Bravo", "Charlie"):
        user = make_user(db, f"{name.lower()}@example.com")
        teams.create_team(db, user, challenge, name, True)
        out.append(token_for(db, user))
    return out


@pytest.fixture
def logged_in(live_server, db, team_user, tmp_path, monkeypatch, capsys):
    """`starter_kit.submit login` done against the live server with team_user's token; its URL."""
    from starter_kit import submit

    _user, headers, _team = team_user
    monkeypatch.setenv("ARENA_CREDENTIALS", str(tmp_path / "creds.json"))
    monkeypatch.delenv("ARENA_URL", raising=False)
    monkeypatch.delenv("ARENA_TOKEN", raising=False)
    token = headers["Authorization"].split()[1]
    assert submit.main(["login", "--url", live_server, "--token", token]) == 0
    assert "alice@example.com" in capsys.readouterr().out
    return live_server


@pytest.fixture
def live_server(app):
    """The app on a real HTTP port (werkzeug, threaded) with a worker thread draining the queue: (url, app)."""
    import threading
    import time

    from arena_testkit import run_worker
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    stop = threading.Event()

    def drain():
        while not stop.is_set():
            run_worker(app, in_thread=True)
            time.sleep(0.2)

    working = threading.Thread(target=drain, daemon=True)
    working.start()
    yield f"http://127.0.0.1:{server.server_port}"
    stop.set()
    server.shutdown()
    serving.join(5)
    working.join(10)
