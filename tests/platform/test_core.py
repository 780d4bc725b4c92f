"""The state machine, stored files, and the Alembic migrations against the models."""

from __future__ import annotations

import io

import pytest
from arena import states, storage
from arena.errors import IllegalTransition, Invalid, TooLarge


@pytest.mark.parametrize(
    ("old", "new"),
    [(old, new) for old in states.STATES for new in states.STATES if new not in states.TRANSITIONS[old]],
)
def test_every_illegal_transition_raises(old, new):
    with pytest.raises(IllegalTransition, match=f"from '{old}' to '{new}'"):
        states.check(old, new)


@pytest.mark.parametrize(("old", "new"), [(o, n) for o, ns in states.TRANSITIONS.items() for n in ns])
def test_every_legal_transition_passes(old, new):
    states.check(old, new)


def test_failed_and_cancelled_are_the_only_states_refunded():
    assert set(states.STATES) - states.COUNTED == {states.FAILED, states.CANCELLED}


def test_uploads_are_hashed_and_capped_without_leaving_partial_files(tmp_path):
    import hashlib

    stored = storage.save_stream(io.BytesIO(b"abc" * 1000), tmp_path, "submissions", 10_000)
    assert stored.sha256 == hashlib.sha256(b"abc" * 1000).hexdigest() and stored.size == 3000
    with pytest.raises(TooLarge, match="limit of 100 bytes"):
        storage.save_stream(io.BytesIO(b"x" * 101), tmp_path, "submissions", 100)
    assert len(list((tmp_path / "submissions").iterdir())) == 1


@pytest.mark.parametrize("relpath", ["../outside", "/etc/passwd", "submissions/../../x"])
def test_stored_paths_cannot_leave_the_storage_folder(tmp_path, relpath):
    with pytest.raises(Invalid, match="inside the storage folder"):
        storage.resolve(tmp_path / "store", relpath)


def test_the_migrations_build_exactly_the_models(tmp_path):
    """`alembic upgrade head` on an empty SQLite database gives the schema of the models (no drift)."""
    from alembic import command
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from arena.cli import alembic_config
    from arena.models import Base
    from sqlalchemy import create_engine

    url = f"sqlite:///{tmp_path / 'm.db'}"
    command.upgrade(alembic_config(url), "head")
    engine = create_engine(url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


@pytest.mark.postgres
def test_the_migrations_match_the_models_on_postgres(postgres_engine):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from arena.models import Base

    with postgres_engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
