"""Logging of the web and worker processes: one line per record, text or JSON (ARENA_LOG_FORMAT=json), each with the
submission and job it concerns when there is one (`bind(submission_id=..)` around the work)."""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import os

_CONTEXT: contextvars.ContextVar[dict | None] = contextvars.ContextVar("arena_log_context", default=None)
FIELDS = ("submission_id", "job_id")


class ContextFilter(logging.Filter):
    """Put the bound fields (submission_id, job_id) on every record, None when unbound."""

    def filter(self, record: logging.LogRecord) -> bool:
        bound = _CONTEXT.get() or {}
        for field in FIELDS:
            if not hasattr(record, field):
                setattr(record, field, bound.get(field))
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, pid, submission_id, job_id (and exc on errors)."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        for field in FIELDS:
            value = getattr(record, field, None)
            if value is not None:
                out[field] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        tags = " ".join(f"{f}={getattr(record, f)}" for f in FIELDS if getattr(record, f, None) is not None)
        return f"{line} [{tags}]" if tags else line


class _ArenaHandler(logging.StreamHandler):
    """Marks the handler we installed, so that configuring twice (one app per test) does not add a second one."""


def configure(fmt: str | None = None, level: int = logging.INFO) -> None:
    """Install our handler on the root logger (once); fmt 'json' or 'text' (default: ARENA_LOG_FORMAT or text)."""
    import logging.handlers  # noqa: F401

    fmt = (fmt or os.environ.get("ARENA_LOG_FORMAT", "text")).lower()
    root = logging.getLogger()
    handler = next((h for h in root.handlers if isinstance(h, _ArenaHandler)), None)
    if handler is None:
        handler = _ArenaHandler()
        handler.addFilter(ContextFilter())
        root.addHandler(handler)
    handler.setFormatter(
        JsonFormatter() if fmt == "json" else TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    if root.level == logging.NOTSET or root.level > level:
        root.setLevel(level)


@contextlib.contextmanager
def bind(**fields):
    """Log records made inside carry these fields (submission_id, job_id)."""
    token = _CONTEXT.set({**(_CONTEXT.get() or {}), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _CONTEXT.reset(token)
