"""Boards pushed to the web process (arena/board_push.py), on PostgreSQL (LISTEN/NOTIFY is its own): a board this
process has answered is answered again with no query while unchanged, and never after a change has reached it;
changes committed by "another process" (an engine and sessions of their own, whose commits this process hears
only through PostgreSQL) are answered once `sync` returns; a lost LISTEN connection sends every read to the
database until the map has been read again; the phase's next date ends a kept answer; a hidden private board is
never kept."""

from __future__ import annotations

import datetime as dt
import random
import time

import pytest
from arena import board_push, standings
from arena import db as arena_db
from arena.models import Base, Phase, Team
from arena.services import teams
from arena_testkit import finished_submission, make_user, token_for
from sqlalchemy import event, text
from sqlalchemy.orm import sessionmaker

pytestmark = [pytest.mark.postgres, pytest.mark.redis]
API = "/api/v1/challenges/tiny/phases/dev/tracks/detection/leaderboard"
PAGE = "/c/tiny/dev/detection/leaderboard"


@pytest.fixture
def engine(postgres_engine):
    """This module runs on PostgreSQL alone (the conftest's `engine` runs each test on SQLite too)."""
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with postgres_engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    return postgres_engine


@pytest.fixture
def push(app, engine):
    """The app with BOARD_PUSH on and a fresh channel (the tables were emptied: versions start again, which
    never happens in a running contest, so the previous test's map would refuse every answer)."""
    board_push.stop(engine)
    app.config["BOARD_PUSH"] = True
    assert board_push.sync(engine), "the LISTEN connection came up"
    return board_push._channel(engine)


@pytest.fixture
def elsewhere(engine):
    """Sessions of another engine on the same schema: as another process (a worker) commits, unheard here except
    through PostgreSQL's notifications."""
    with engine.connect() as conn:
        schema = conn.execute(text("SELECT current_schema()")).scalar_one()
    url = engine.url.render_as_string(hide_password=False)
    other = arena_db.make_engine(url, connect_args={"options": f"-csearch_path={schema}"})
    maker = sessionmaker(other, expire_on_commit=False)
    standings.listen(maker)
    board_push.listen(maker)
    yield maker
    other.dispose()


class Statements:
    def __init__(self, engine):
        self.count = 0
        event.listen(engine, "before_cursor_execute", self._seen)
        self.engine = engine

    def _seen(self, *_args):
        self.count += 1

    def close(self):
        event.remove(self.engine, "before_cursor_execute", self._seen)


@pytest.fixture
def statements(engine):
    counter = Statements(engine)
    yield counter
    counter.close()


def _score(maker, team_id: int, score: float, minute: int) -> None:
    """A finished score committed elsewhere, as jobs._run commits it."""
    with maker() as session:
        phase = session.query(Phase).one()
        track = next(t for t in phase.challenge.tracks if t.slug == "detection")
        finished_submission(session, session.get(Team, team_id), phase, track, score, score, minute)


def _rows(client, headers=None):
    answer = client.get(API, headers=headers or {})
    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    return body["phase_state"], [(r["rank"], r["name"], r["score"]) for r in body["rows"]]


def _from_database(app, client):
    app.config["BOARD_PUSH"] = False
    try:
        return _rows(client)
    finally:
        app.config["BOARD_PUSH"] = True


@pytest.fixture
def read_once(client, db, challenge, push, elsewhere):
    """Team 0 scored 0.5 elsewhere, heard here, and its board read once (kept): the team."""
    (alpha,) = _teams(db, challenge, 1)
    _score(elsewhere, alpha.id, 0.5, 1)
    assert board_push.sync(db.get_bind())
    assert _rows(client)[1] == [(1, "Team 0", 0.5)]
    return alpha


def _teams(db, challenge, n: int) -> list[Team]:
    return [teams.create_team(db, make_user(db, f"t{i}@example.com"), challenge, f"Team {i}", True) for i in range(n)]


def test_a_board_answered_once_is_answered_again_with_no_query_until_it_changes(
    app, client, db, challenge, push, elsewhere, statements
):
    (alpha,) = _teams(db, challenge, 1)
    _score(elsewhere, alpha.id, 0.5, 1)
    assert board_push.sync(db.get_bind())
    first = client.get(API)
    page = client.get(PAGE)
    assert first.status_code == page.status_code == 200
    statements.count = 0
    again, page_again = client.get(API), client.get(PAGE)
    assert statements.count == 0, "answered from memory"
    assert again.get_data() == first.get_data() and page_again.get_data() == page.get_data()
    assert again.headers["ETag"] == first.headers["ETag"]
    assert client.get(API, headers={"If-None-Match": first.headers["ETag"]}).status_code == 304
    _score(elsewhere, alpha.id, 0.9, 2)  # a better score, committed by "another process"
    assert board_push.sync(db.get_bind())
    statements.count = 0
    assert _rows(client)[1] == [(1, "Team 0", 0.9)]
    assert statements.count > 0, "read from the database after the change"
    assert b"0.9" in client.get(PAGE).get_data()
    assert client.get("/readyz").get_json()["board_push"].startswith("live: ")


def test_changes_made_in_this_process_are_answered_at_once(app, client, db, challenge, push):
    (alpha,) = _teams(db, challenge, 1)
    assert _rows(client)[1] == []

    finished_submission(db, alpha, challenge.phases[0], challenge.tracks[0], 0.4, 0.4, 1)
    assert _rows(client)[1] == [(1, "Team 0", 0.4)], "no sync: this process's own commit"
    alpha.name = "Renamed"
    db.commit()
    assert _rows(client)[1] == [(1, "Renamed", 0.4)]


def test_any_history_committed_elsewhere_reads_as_the_database_once_synced(app, client, db, challenge, push, elsewhere):
    made = _teams(db, challenge, 3)
    rng = random.Random(14)
    for step in range(30):
        kind = rng.choice(["score", "score", "rename", "ban", "approve", "close", "reopen", "title"])
        with elsewhere() as session:
            if kind == "score":
                session.close()
                _score(elsewhere, rng.choice(made).id, rng.choice([0.1, 0.5, 0.9]), step)
                continue
            if kind in ("rename", "ban", "approve"):
                team = session.get(Team, rng.choice(made).id)
                if kind == "rename":
                    team.name = f"Team {step}"
                else:
                    team.status = "banned" if kind == "ban" else "approved"
            else:
                phase = session.query(Phase).one()
                if kind == "title":
                    phase.title = f"Development {step}"
                else:
                    phase.closed = kind == "close"
            session.commit()
        assert board_push.sync(db.get_bind())
        assert _rows(client) == _from_database(app, client), (step, kind)


def test_a_lost_listen_connection_reads_every_board_from_the_database_until_it_is_back(
    client, db, push, elsewhere, read_once
):
    alpha = read_once
    generation = push.generation
    pid = push.connection.info.backend_pid
    with db.get_bind().connect() as conn:
        conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    deadline = time.monotonic() + 30
    while push.usable() and push.generation == generation and time.monotonic() < deadline:
        time.sleep(0.01)  # the thread notices the closed connection
    _score(elsewhere, alpha.id, 0.8, 2)  # while it reconnects, or just after: either way no stale answer
    assert _rows(client)[1] == [(1, "Team 0", 0.8)]
    assert board_push.sync(db.get_bind(), timeout=30), "reconnected"
    assert push.generation > generation, "the map was read again"
    _score(elsewhere, alpha.id, 0.95, 3)
    assert board_push.sync(db.get_bind())
    assert _rows(client)[1] == [(1, "Team 0", 0.95)]


def test_a_stopped_channel_answers_nothing_from_memory_and_a_new_one_reads_the_map_again(
    client, db, elsewhere, statements, read_once
):
    alpha = read_once
    board_push.stop(db.get_bind())
    _score(elsewhere, alpha.id, 0.7, 2)  # nobody hears of it: the next read starts a channel that reads the map
    statements.count = 0
    assert _rows(client)[1] == [(1, "Team 0", 0.7)]
    assert statements.count > 0


def test_the_phase_next_date_ends_a_kept_answer(app, client, db, challenge, push, monkeypatch):
    phase = challenge.phases[0]
    (alpha,) = _teams(db, challenge, 1)
    finished_submission(db, alpha, phase, challenge.tracks[0], 0.4, 0.4, 1)
    assert board_push.next_date(phase, dt.datetime(2024, 1, 1)) == phase.ends_at
    assert board_push.next_date(phase, phase.ends_at) == dt.datetime.max
    phase.reveal_at = phase.ends_at + dt.timedelta(days=1)
    db.commit()
    assert board_push.next_date(phase, phase.ends_at) == phase.reveal_at
    assert _rows(client)[0] == "open"
    key = ("tiny", "dev", "detection", "public")
    assert board_push.hot(db.get_bind(), key) is not None, "kept"
    late = phase.ends_at + dt.timedelta(seconds=1)
    monkeypatch.setattr(board_push, "utcnow", lambda: late)
    assert board_push.hot(db.get_bind(), key) is None, "past the phase's end"


def test_a_hidden_private_board_is_never_kept(app, client, db, challenge, push):
    organizer = token_for(db, make_user(db, "org@example.com", organizer=True))
    private = API + "?split=private"
    assert client.get(private, headers=organizer).status_code == 200
    assert client.get(private, headers=organizer).status_code == 200
    assert client.get(private).status_code == 403, "the organizer's answer was not kept for anyone"
    assert board_push.hot(db.get_bind(), ("tiny", "dev", "detection", "private")) is None


def test_two_schemas_do_not_hear_each_other(engine):
    with engine.connect() as conn:
        schema = conn.execute(text("SELECT current_schema()")).scalar_one()
        mine = conn.execute(text("SELECT 'arena_boards_' || md5(current_schema())")).scalar_one()
        conn.execute(text("SET search_path TO public"))
        public = conn.execute(text("SELECT 'arena_boards_' || md5(current_schema())")).scalar_one()
    assert schema != "public" and mine != public


def test_the_pages_of_a_long_board_are_kept_side_by_side(app, client, db, challenge, push, statements):
    from arena.boards import PAGE_ROWS

    phase, track = challenge.phases[0], challenge.tracks[0]
    for i in range(PAGE_ROWS + 1):
        finished_submission(db, None, phase, track, 0.5, 0.5, 1, is_baseline=True, baseline_name=f"B{i:03d}")
    first = [client.get(f"{PAGE}?page={n}").get_data() for n in (1, 2, 1, 2)]
    statements.count = 0
    again = [client.get(f"{PAGE}?page={n}").get_data() for n in (1, 2)]
    assert statements.count == 0, "both pages answered from memory"
    assert again == first[:2] and first[0] != first[1] and b"page 2 of 2" in again[1]
    gz = client.get(f"{PAGE}?page=2", headers={"Accept-Encoding": "gzip"})
    assert gz.headers["Content-Encoding"] == "gzip" and statements.count == 0
