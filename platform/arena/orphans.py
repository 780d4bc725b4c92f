"""Upload files that no row refers to: a web process that died between storing the file and committing its row
leaves one (a failed request deletes its own). The watchdog removes them once they are old enough that no upload
can still be on its way (ORPHAN_AGE_SECONDS, an hour by default), at most every ORPHAN_EVERY_SECONDS."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import storage
from .models import Submission

log = logging.getLogger(__name__)
FOLDER = "submissions"
_last_run = {"at": 0.0}


def old_files(storage_dir: str, older_than: float, now: float | None = None) -> dict[str, Path]:
    """{relative path: path} of the upload files last written more than `older_than` seconds ago."""
    folder = storage.root(storage_dir) / FOLDER
    if not folder.is_dir():
        return {}
    cutoff = (now or time.time()) - older_than
    out = {}
    for path in folder.iterdir():
        try:
            if path.is_file() and path.stat().st_mtime < cutoff:
                out[f"{FOLDER}/{path.name}"] = path
        except FileNotFoundError:  # removed meanwhile
            continue
    return out


def remove(session: Session, storage_dir: str, older_than: float = 3600.0) -> int:
    """Delete the old upload files that no submission row names; return how many."""
    candidates = old_files(storage_dir, older_than)
    if not candidates:
        return 0
    known: set[str] = set()
    names = list(candidates)
    for start in range(0, len(names), 1000):
        chunk = names[start : start + 1000]
        known.update(session.scalars(select(Submission.stored_path).where(Submission.stored_path.in_(chunk))))
    removed = 0
    for relpath, path in candidates.items():
        if relpath not in known:
            path.unlink(missing_ok=True)
            removed += 1
            log.warning("removed %s: an upload file with no submission row", relpath)
    return removed


def maybe_remove(session: Session, config) -> int:
    """remove() at most every ORPHAN_EVERY_SECONDS per process (the sweep runs far more often)."""
    every = float(config.get("ORPHAN_EVERY_SECONDS", 600))
    if time.monotonic() - _last_run["at"] < every:
        return 0
    _last_run["at"] = time.monotonic()
    return remove(session, config["STORAGE_DIR"], float(config.get("ORPHAN_AGE_SECONDS", 3600)))
