"""Fixtures of the reliability tests: the PostgreSQL schema of tests/platform/conftest.py (loaded from there, not
copied), a redis-server of each test's own on a free port (started, stopped and restarted by the test), and
worker processes started as the real `arena worker` command line, which a test may SIGKILL."""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[2]
PLATFORM_TESTS = ROOT / "tests" / "platform"


def _load_platform_conftest():
    spec = importlib.util.spec_from_file_location("_platform_conftest", PLATFORM_TESTS / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # also puts tests/platform on sys.path (arena_testkit)
    return module


sys.path.insert(0, str(Path(__file__).parent))
_platform = _load_platform_conftest()
from reliability_kit import free_port, wait_for  # noqa: E402

postgres_engine = _platform.postgres_engine  # a fresh, migrated schema per session (the same fixture, not a copy)
POSTGRES_URL = _platform.POSTGRES_URL
ARENA = str(Path(sys.executable).with_name("arena"))


class RedisServer:
    """A redis-server of the test's own (no persistence: a restart loses every key, like a crash)."""

    def __init__(self, folder: Path):
        self.folder, self.port, self.proc = folder, free_port(), None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        from redis import Redis

        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            cwd=self.folder,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        conn = Redis.from_url(self.url, socket_connect_timeout=1)

        def _up():
            try:
                return conn.ping()
            except Exception:
                return False

        wait_for(_up, 10, f"redis-server on port {self.port}")
        conn.close()

    def stop(self) -> None:
        """SIGKILL: the server dies as in a crash, with its data."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None


@pytest.fixture
def redis_server(tmp_path):
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def pg_engine(postgres_engine):
    _platform._empty(postgres_engine)
    return postgres_engine


@pytest.fixture
def pg_url(pg_engine) -> str:
    """The URL of the test schema, for another process (the schema travels as a libpq option)."""
    with pg_engine.connect() as conn:
        schema = conn.execute(text("SELECT current_schema()")).scalar_one()
    return f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"


BASE_CONFIG = {
    "TESTING": True,
    "SECRET_KEY": "test-secret",
    "WTF_CSRF_ENABLED": False,
    "RATELIMIT_ENABLED": False,
    "RATELIMIT_STORAGE_URI": "memory://",
    "ARGON2": {"time_cost": 1, "memory_cost": 64, "parallelism": 1},
    "HEARTBEAT_SECONDS": 0.2,
    "WATCHDOG_STALE_SECONDS": 2,
    "WATCHDOG_GRACE_SECONDS": 1,
    "MAX_ATTEMPTS": 2,
    "RQ_QUEUE": "arena-reliability",
    "BOARD_PUSH": False,  # as in tests/platform: tests/platform/test_board_push.py tests it, with sync()
}


@pytest.fixture
def make_app(tmp_path, monkeypatch):
    """make_app(engine, redis_url, **config) -> an app on that database and Redis, files under tmp_path."""
    from arena import create_app

    monkeypatch.setenv("ARENA_INSTANCE", str(tmp_path / "instance"))

    def _make(engine, redis_url: str, **config):
        app = create_app(
            {
                **BASE_CONFIG,
                "DATABASE_URL": str(engine.url),
                "ENGINE": engine,
                "REDIS_URL": redis_url,
                "STORAGE_DIR": str(tmp_path / "storage"),
                **config,
            }
        )
        return app

    return _make


@pytest.fixture
def app(make_app, pg_engine, redis_server):
    """The app on PostgreSQL and the test's own Redis."""
    return make_app(pg_engine, redis_server.url)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def db(app):
    from arena.db import get_session

    with app.app_context():
        yield get_session()


@pytest.fixture
def data(tmp_path):
    from arena_testkit import make_data

    return make_data(tmp_path / "bundle")


class Workers:
    """`arena worker` processes of a test; all killed at the end."""

    def __init__(self, env: dict[str, str], folder: Path):
        self.env, self.folder, self.procs = env, folder, []

    def start(self, *args: str, **env: str) -> subprocess.Popen:
        log = open(self.folder / f"worker-{len(self.procs)}.log", "wb")  # noqa: SIM115 (closed with the process)
        proc = subprocess.Popen(
            [ARENA, "worker", *args],
            env={**self.env, **env},
            cwd=self.folder,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        proc.log_file = log  # type: ignore[attr-defined]
        self.procs.append(proc)
        return proc

    @staticmethod
    def children(proc: subprocess.Popen) -> list[int]:
        path = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
        try:
            return [int(pid) for pid in path.read_text().split()]
        except OSError:
            return []

    def kill(self, proc: subprocess.Popen) -> None:
        """SIGKILL the worker and its work-horse at once (the machine died): nobody marks anything."""
        victims = [proc.pid, *self.children(proc)]
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait(10)

    def log(self, proc: subprocess.Popen) -> str:
        proc.log_file.flush()
        return Path(proc.log_file.name).read_text(errors="replace")[-3000:]

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                self.kill(proc)
            proc.log_file.close()


@pytest.fixture
def workers(app, pg_url, redis_server, tmp_path):
    """Start `arena worker` processes on the app's database, Redis, queue and files."""
    env = {
        **os.environ,
        "DATABASE_URL": pg_url,
        "REDIS_URL": redis_server.url,
        "ARENA_QUEUE": app.config["RQ_QUEUE"],
        "ARENA_INSTANCE": str(tmp_path / "worker-instance"),
        "ARENA_STORAGE_DIR": app.config["STORAGE_DIR"],
        "SECRET_KEY": "test-secret",
        "ARENA_HEARTBEAT_SECONDS": str(app.config["HEARTBEAT_SECONDS"]),
        "ARENA_WATCHDOG_STALE_SECONDS": str(app.config["WATCHDOG_STALE_SECONDS"]),
        "ARENA_WATCHDOG_GRACE_SECONDS": str(app.config["WATCHDOG_GRACE_SECONDS"]),
        "ARENA_MAX_ATTEMPTS": str(app.config["MAX_ATTEMPTS"]),
        "ARENA_RATELIMIT": "0",
    }
    env.pop("ARENA_TEST_SCORING_DELAY_SECONDS", None)
    pool = Workers(env, tmp_path)
    yield pool
    pool.stop_all()


@pytest.fixture
def team(app, db, data):
    """A challenge with generous limits and one approved team: (challenge, team, its captain's token headers)."""
    from arena.services import teams
    from arena_testkit import load_challenge, make_user, token_for

    challenge = load_challenge(db, data, per_day=100, total=100, in_flight=100)
    user = make_user(db, "cap@example.com")
    return challenge, teams.create_team(db, user, challenge, "Team", True), token_for(db, user)
