"""An upload either fully exists (row + file + checksum) or not at all: files left by a web process that died
between the file and the row are removed by the watchdog once old; files with a row, and young ones, are kept."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from arena import orphans
from arena.models import Submission
from arena.services import teams
from arena_testkit import load_challenge, make_user, token_for, upload

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.timeout(120)]


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_only_old_files_without_a_row_are_removed(app, client, db, data):
    challenge = load_challenge(db, data)
    user = make_user(db, "cap@example.com")
    teams.create_team(db, user, challenge, "Team", True)
    sub_id = upload(client, token_for(db, user), data.detection_csv()).get_json()["id"]
    folder = Path(app.config["STORAGE_DIR"]) / "submissions"
    kept = folder / db.get(Submission, sub_id).stored_path.split("/")[-1]
    old_orphan, young_orphan = folder / "dead.upload", folder / "arriving.upload"
    old_orphan.write_bytes(b"x")
    young_orphan.write_bytes(b"x")
    for path in (kept, old_orphan):
        _age(path, 7200)
    assert orphans.remove(db, app.config["STORAGE_DIR"], older_than=3600) == 1
    assert sorted(p.name for p in folder.iterdir()) == sorted([kept.name, young_orphan.name])


@pytest.mark.parametrize(("every", "expected"), [(0, 1), (3600, 0)], ids=["due", "ran-recently"])
def test_the_sweep_looks_for_orphans_at_most_every_so_often(app, db, every, expected):
    folder = Path(app.config["STORAGE_DIR"]) / "submissions"
    folder.mkdir(parents=True, exist_ok=True)
    orphan = folder / "dead.upload"
    orphan.write_bytes(b"x")
    _age(orphan, 7200)
    orphans._last_run["at"] = time.monotonic()
    config = {**app.config, "ORPHAN_EVERY_SECONDS": every, "ORPHAN_AGE_SECONDS": 3600}
    assert orphans.maybe_remove(db, config) == expected
