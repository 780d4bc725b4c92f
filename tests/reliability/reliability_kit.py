"""Helpers of the reliability tests and benchmarks (importable by name: conftest puts this folder on sys.path)."""

from __future__ import annotations

import socket
import time

import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, timeout: float, what, every: float = 0.1):
    """Poll predicate() until it returns a truthy value (returned); fail the test with `what` after timeout.
    `what` is a string or a function that makes one at the moment of failure (e.g. to include a worker's log as it
    is then, not as it was when the wait began)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what() if callable(what) else what}")
        time.sleep(every)


def reloaded(db, sub_id: int):
    """The submission row as the database has it now (other processes change it under the test)."""
    from arena.models import Submission

    db.expire_all()
    return db.get(Submission, sub_id)
