"""Uploads under concurrency and database faults, on PostgreSQL: the limit holds for 50 requests at once over real
HTTP, an upload either fully exists (row + file + checksum) or not at all, and a failing database answers 503 with
a message, never 500."""

from __future__ import annotations

import hashlib
import threading

import pytest
import requests
from arena import states
from arena.models import Submission
from arena.services import teams
from arena_testkit import load_challenge, make_user, token_for, upload
from sqlalchemy import text
from werkzeug.serving import make_server

POSTGRES_DSN = "host=127.0.0.1 port=5432 dbname=test user=postgres"
pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.timeout(180)]


@pytest.fixture
def server(app):
    """The app served over real HTTP by a threaded WSGI server (one thread per request, one session each)."""
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    thread.join(10)


def _stored_files(app) -> list:
    from pathlib import Path

    folder = Path(app.config["STORAGE_DIR"]) / "submissions"
    return sorted(folder.glob("*")) if folder.exists() else []


@pytest.mark.slow
def test_fifty_concurrent_uploads_from_one_team_against_a_limit_of_five_accept_exactly_five(app, db, data, server):
    challenge = load_challenge(db, data, per_day=5, total=100, in_flight=100)
    user = make_user(db, "cap@example.com")
    teams.create_team(db, user, challenge, "Team", True)
    headers = token_for(db, user)
    content = data.detection_csv()
    barrier, codes = threading.Barrier(50), []

    def one():
        barrier.wait()
        response = requests.post(
            f"{server}/api/v1/challenges/tiny/submissions",
            data={"phase": "dev", "track": "detection"},
            files={"file": ("sub.csv", content)},
            headers=headers,
            timeout=120,
        )
        codes.append(response.status_code)

    threads = [threading.Thread(target=one) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(150)
    assert sorted(codes) == [202] * 5 + [429] * 45
    db.expire_all()
    rows = db.query(Submission).all()
    assert len(rows) == 5
    # the 45 refused uploads left no file behind; the 5 accepted ones are stored with their checksum
    files = _stored_files(app)
    assert len(files) == 5
    assert {hashlib.sha256(f.read_bytes()).hexdigest() for f in files} == {r.sha256 for r in rows}


@pytest.fixture
def failing_inserts(pg_engine):
    """A trigger in the test schema that makes every INSERT into submission fail (a real database error)."""
    with pg_engine.begin() as conn:
        conn.execute(
            text(
                "CREATE FUNCTION refuse_insert() RETURNS trigger AS $$ BEGIN "
                "RAISE EXCEPTION 'disk full (test)'; END $$ LANGUAGE plpgsql"
            )
        )
        conn.execute(
            text("CREATE TRIGGER refuse BEFORE INSERT ON submission FOR EACH ROW EXECUTE FUNCTION refuse_insert()")
        )
    yield
    with pg_engine.begin() as conn:
        conn.execute(text("SET LOCAL lock_timeout = '20s'"))  # never hang on a session the test left open
        conn.execute(text("DROP TRIGGER refuse ON submission"))
        conn.execute(text("DROP FUNCTION refuse_insert()"))


def test_an_upload_whose_insert_fails_leaves_no_row_and_no_file_and_answers_503(app, client, db, data, request):
    challenge = load_challenge(db, data, per_day=5, total=100, in_flight=100)
    user = make_user(db, "cap@example.com")
    teams.create_team(db, user, challenge, "Team", True)
    headers = token_for(db, user)
    request.getfixturevalue("failing_inserts")
    response = upload(client, headers, data.detection_csv())
    assert response.status_code == 503
    assert response.get_json()["error"] == "unavailable" and "nothing was saved" in response.get_json()["message"]
    db.expire_all()
    count = db.query(Submission).count()
    db.rollback()  # end the read transaction (its lock would hold up the trigger's removal)
    assert count == 0 and _stored_files(app) == []


def test_pooled_connections_killed_by_a_database_restart_are_replaced_without_an_error(
    app, client, db, data, pg_engine
):
    """The server drops every connection of the pool (a restart, a failover); the next upload still goes through."""
    import psycopg

    challenge = load_challenge(db, data, per_day=5, total=100, in_flight=100)
    user = make_user(db, "cap@example.com")
    teams.create_team(db, user, challenge, "Team", True)
    headers = token_for(db, user)
    db.close()
    pids = []
    conns = [pg_engine.connect() for _ in range(3)]
    for conn in conns:
        pids.append(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())
    for conn in conns:
        conn.close()  # back to the pool, where they wait with a socket the server is about to close
    with psycopg.connect(POSTGRES_DSN, autocommit=True) as killer:
        for pid in pids:
            killer.execute("SELECT pg_terminate_backend(%s)", (pid,))
    response = upload(client, headers, data.detection_csv())
    assert response.status_code == 202 and response.get_json()["state"] == states.QUEUED


@pytest.mark.parametrize(
    ("method", "path"),
    [("get", "/api/v1/challenges"), ("get", "/api/v1/me"), ("get", "/"), ("post", "/api/v1/tokens")],
)
def test_an_unreachable_database_answers_503_never_500(make_app, redis_server, method, path):
    from arena.db import make_engine

    engine = make_engine("postgresql+psycopg://postgres@127.0.0.1:1/nowhere", connect_args={"connect_timeout": 2})
    app = make_app(engine, redis_server.url)
    body = {"json": {"email": "a@example.com", "password": "long enough pass"}} if method == "post" else {}
    response = getattr(app.test_client(), method)(path, headers={"Authorization": "Bearer arena_x"}, **body)
    assert response.status_code == 503, response.data[:300]
    assert b"Service unavailable" in response.data or response.get_json()["error"] == "unavailable"
