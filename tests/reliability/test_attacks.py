"""The holes found by attacking the platform as a hostile user would (issue 17), one test (or a few) each; every one
of them failed on the main branch before the fix. PostgreSQL and the test's own Redis, as in production."""

from __future__ import annotations

import datetime as dt
import gzip
import io
import os
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from arena import states
from arena.models import ApiToken, AuditEvent, Submission
from arena.services import accounts, teams
from arena_testkit import PASSWORD, load_challenge, make_user, run_worker, token_for, upload
from reliability_kit import free_port, reloaded, wait_for
from sqlalchemy import event, text

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.timeout(180)]


# --------------------------------------------------------------------------------------------------- 1. rate limits


@pytest.fixture
def limited_app(make_app, pg_engine, redis_server):
    """Rate limits on, one reverse proxy in front (ARENA_PROXY_HOPS=1), small limits."""
    return make_app(
        pg_engine,
        redis_server.url,
        RATELIMIT_ENABLED=True,
        RATELIMIT_LOGIN="3 per minute",
        RATELIMIT_LOGIN_ADDRESS="6 per minute",
        RATELIMIT_UPLOAD="2 per minute",
        PROXY_HOPS=1,
    )


def _via(address: str) -> dict:
    return {"X-Forwarded-For": address}


def test_one_accounts_wrong_passwords_never_lock_another_account_out(limited_app):
    from arena.db import get_session

    client = limited_app.test_client()
    with limited_app.app_context():
        make_user(get_session(), "victim@example.com")
        make_user(get_session(), "bystander@example.com")
    wrong = {"email": "victim@example.com", "password": "not the password"}
    codes = [client.post("/api/v1/tokens", json=wrong, headers=_via("198.51.100.1")).status_code for _ in range(5)]
    assert codes == [401, 401, 401, 429, 429]  # the victim's account is throttled ...
    right = {"email": "bystander@example.com", "password": PASSWORD}
    # ... not another participant's, from another address behind the same proxy
    assert client.post("/api/v1/tokens", json=right, headers=_via("198.51.100.2")).status_code == 201
    # nor from the attacker's own address: the per-address limit is higher than the per-account one
    assert client.post("/api/v1/tokens", json=right, headers=_via("198.51.100.1")).status_code == 201


def test_one_address_cannot_try_many_accounts(limited_app):
    client = limited_app.test_client()
    codes = [
        client.post(
            "/api/v1/tokens",
            json={"email": f"u{i}@example.com", "password": "guess guess"},
            headers=_via("203.0.113.9"),
        ).status_code
        for i in range(8)
    ]
    assert codes[:6] == [401] * 6 and codes[6:] == [429, 429]


def test_uploads_are_limited_per_account_not_per_proxy_address(limited_app, data):
    from arena.db import get_session

    client = limited_app.test_client()
    with limited_app.app_context():
        db = get_session()
        challenge = load_challenge(db, data, per_day=100, total=100, in_flight=100)
        tokens = []
        for i in range(3):
            user = make_user(db, f"cap{i}@example.com")
            teams.create_team(db, user, challenge, f"Team {i}", True)
            tokens.append(token_for(db, user))
    csv = data.detection_csv()
    codes = [upload(client, {**t, **_via("192.0.2.7")}, csv).status_code for t in tokens for _ in range(2)]
    assert codes == [202] * 6  # three teams behind one proxy address: two uploads each, all accepted
    assert upload(client, {**tokens[0], **_via("192.0.2.8")}, csv).status_code == 429  # the account's third


# --------------------------------------------------------------------------------------------------- 2. slow clients


def _stall(port: int) -> socket.socket:
    """A form post that sends its headers and the start of its body, then nothing (the view reads the form)."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(
        b"POST /login HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 10000\r\n\r\nemail="
    )
    return sock


@pytest.mark.slow
def test_healthz_answers_while_many_clients_stall_their_uploads(pg_url, redis_server, tmp_path):
    """gunicorn as `make serve` runs it (python:arena.gunicorn_conf, two workers); 64 stalled form posts. With the
    threaded workers main ran (--workers 2 --threads 4), 16 of them made every /healthz try time out."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": pg_url,
        "REDIS_URL": redis_server.url,
        "ARENA_INSTANCE": str(tmp_path / "instance"),
        "SECRET_KEY": "test-secret",
        "WEB_CONCURRENCY": "2",
    }
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    command = [gunicorn, "--config", "python:arena.gunicorn_conf", "--bind", f"127.0.0.1:{port}", "arena:create_app()"]
    log = tmp_path / "gunicorn.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT)
    try:

        def _up():
            try:
                return urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).status == 200
            except OSError:
                return False

        wait_for(_up, 60, f"gunicorn to start; log:\n{log.read_text(errors='replace')[-2000:]}")
        stalled = [_stall(port) for _ in range(64)]
        answers = []
        for _ in range(6):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=15) as response:
                    answers.append(response.status)
            except OSError as exc:
                answers.append(type(exc).__name__)
        for sock in stalled:
            sock.close()
        assert answers == [200] * 6, log.read_text(errors="replace")[-2000:]
    finally:
        server.terminate()
        server.wait(30)


# --------------------------------------------------------------------------------------------------- 3. gzip bombs


def test_a_gzip_of_features_is_refused_when_it_expands_past_the_upload_cap(make_app, pg_engine, redis_server, data):
    """Small to upload, but expanding past what an uncompressed upload may be: refused with a message, unscored."""
    cap = 256 * 2**10
    app = make_app(pg_engine, redis_server.url, MAX_UPLOAD_BYTES=cap)
    from arena.db import get_session

    client = app.test_client()
    with app.app_context():
        db = get_session()
        challenge = load_challenge(db, data, per_day=100, total=100, in_flight=100)
        user = make_user(db, "cap@example.com")
        teams.create_team(db, user, challenge, "Team", True)
        headers = token_for(db, user)
    n = len(data.rec_labels.labels)
    bomb = gzip.compress(np.ones((n, 4096), dtype="<f8").tobytes())  # valid features, within 8 N max_dim bytes
    assert len(bomb) < cap < n * 4096 * 8
    response = upload(client, headers, bomb, track="recognition", name="features.bin.gz")
    assert response.status_code == 202
    run_worker(app)
    with app.app_context():
        sub = reloaded(get_session(), response.get_json()["id"])
        assert sub.state == states.FAILED and "expands to more than" in sub.error, sub.error


# --------------------------------------------------------------------------------------------------- 4. 500s


@pytest.fixture
def participant(app, client, db, data):
    """A logged-in (cookie) team captain of the tiny challenge, and the challenge."""
    challenge = load_challenge(db, data)
    user = make_user(db, "cap@example.com")
    teams.create_team(db, user, challenge, "Team", True)
    assert client.post("/login", data={"email": "cap@example.com", "password": PASSWORD}).status_code == 302
    return user, challenge


@pytest.mark.parametrize("value", ["abc", "", "99999999999999"])
def test_a_team_form_with_a_bad_id_is_a_400_naming_the_field(client, participant, value):
    response = client.post("/c/tiny/team", data={"action": "remove", "team_id": value, "user_id": "1"})
    assert response.status_code == 400 and "team_id" in response.get_data(as_text=True)


def test_json_nested_past_the_parsers_depth_is_a_400(client):
    response = client.post("/api/v1/register", data="[" * 50000, content_type="application/json")
    assert response.status_code == 400 and response.get_json()["error"] == "invalid"


@pytest.mark.parametrize("moment", ["2026-01-01T00:00:00+25:00", "0001-01-01T00:30:00+01:00", "9999-12-31T23:30-01:00"])
def test_an_out_of_range_time_zone_offset_is_a_400(client, db, data, moment):
    challenge = load_challenge(db, data)
    headers = token_for(db, make_user(db, "org@example.com", organizer=True))
    response = client.patch(f"/api/v1/admin/phases/{challenge.phases[0].id}", json={"ends_at": moment}, headers=headers)
    assert response.status_code == 400 and response.get_json()["field"] == "ends_at"


def test_an_out_of_range_time_zone_offset_in_a_bundle_names_the_key(db, data):
    from arena.services.challenges import BundleError, load_bundle

    load_challenge(db, data)
    text_ = (data.folder / "challenge.yaml").read_text()
    starts = next(line for line in text_.splitlines() if line.strip().startswith("starts:"))
    broken = text_.replace(starts, starts.split(":")[0] + ': "0001-01-01T00:30:00+01:00"')
    with pytest.raises(BundleError, match="out of range"):
        load_bundle(db, broken, data.folder)


def test_an_answer_stands_when_the_database_connection_dies_before_the_session_closes(app, pg_engine):
    """The backend is terminated after the view's query (the database restarted): the answer made is sent."""
    from arena.db import get_session

    @app.get("/test-only/dying-connection")
    def dying():
        session = get_session()
        pid = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
        with pg_engine.connect() as other:
            other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        return {"ok": True}

    client = app.test_client()
    response = client.get("/test-only/dying-connection")
    assert response.status_code == 200 and response.get_json() == {"ok": True}
    assert client.get("/api/v1/challenges").status_code == 200  # the pool gives the next request a live connection


# --------------------------------------------------------------------------------------------------- 5. sessions


def test_a_session_cookie_stops_working_at_logout_even_replayed(client, participant):
    cookie = client.get_cookie("session").value
    assert client.get("/account").status_code == 200
    assert client.post("/logout").status_code == 302
    client.set_cookie("session", cookie)  # the copy an attacker kept
    response = client.get("/account")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_a_password_reset_ends_every_session_and_revokes_every_token(app, client, db, participant):
    user, _challenge = participant
    cookie = client.get_cookie("session").value
    headers = token_for(db, user)
    with app.test_request_context():
        link = accounts.link_token(user, "reset")
    other = app.test_client()
    assert other.post(f"/reset/{link}", data={"password": "a brand new password"}).status_code == 302
    client.set_cookie("session", cookie)
    assert client.get("/account").status_code == 302
    refused = client.get("/api/v1/me", headers=headers)
    assert refused.status_code == 401
    db.expire_all()
    assert all(t.revoked_at is not None for t in db.query(ApiToken).filter_by(user_id=user.id))


def test_api_tokens_expire(client, db):
    user = make_user(db, "a@example.com")
    headers = token_for(db, user)
    assert client.get("/api/v1/me", headers=headers).status_code == 200
    token = db.query(ApiToken).filter_by(user_id=user.id).one()
    assert token.expires_at is not None and token.expires_at > token.created_at
    token.expires_at = token.created_at  # the token's lifetime has passed
    db.commit()
    refused = client.get("/api/v1/me", headers=headers)
    assert refused.status_code == 401 and "expired" in refused.get_json()["message"]


def test_cookies_are_secure_when_the_base_url_is_https(make_app, pg_engine, redis_server, monkeypatch):
    monkeypatch.setenv("ARENA_BASE_URL", "https://arena.example.org")
    app = make_app(pg_engine, redis_server.url)
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["PERMANENT_SESSION_LIFETIME"] <= dt.timedelta(days=31)


# --------------------------------------------------------------------------------------------------- 6. smaller


def test_registration_answers_alike_whether_the_email_is_known(client, db):
    make_user(db, "known@example.com")
    known = client.post("/api/v1/register", json={"email": "known@example.com", "password": "long enough pass"})
    new = client.post("/api/v1/register", json={"email": "new@example.com", "password": "long enough pass"})
    assert (known.status_code, known.get_json()) == (new.status_code, new.get_json())


def test_malformed_json_sent_to_final_is_a_400_and_selects_nothing(app, client, db, data, team):
    headers = team[2]
    sub_id = upload(client, headers, data.detection_csv()).get_json()["id"]
    run_worker(app)
    response = client.post(
        f"/api/v1/submissions/{sub_id}/final", data="{not json", content_type="application/json", headers=headers
    )
    assert response.status_code == 400
    assert reloaded(db, sub_id).selected_final is False


def test_a_database_drop_during_the_final_write_keeps_the_score_and_scores_once(
    app, client, db, data, team, pg_engine, monkeypatch
):
    from arena import jobs
    from sqlalchemy.orm import Session

    sub_id = upload(client, team[2], data.detection_csv()).get_json()["id"]
    scored = []
    real_score = jobs._score
    monkeypatch.setattr(jobs, "_score", lambda *a, **k: scored.append(1) or real_score(*a, **k))
    dropped = []

    def drop_once(session, _context, _instances):
        finishing = any(isinstance(o, Submission) and o.state == states.FINISHED for o in session.dirty)
        if finishing and not dropped:
            pid = session.connection().execute(text("SELECT pg_backend_pid()")).scalar_one()
            with pg_engine.connect() as other:
                other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            dropped.append(pid)

    event.listen(Session, "before_flush", drop_once)
    try:
        run_worker(app)
    finally:
        event.remove(Session, "before_flush", drop_once)
    sub = reloaded(db, sub_id)
    assert dropped and scored == [1]
    assert sub.state == states.FINISHED and sub.public_score == pytest.approx(1.0)
    finished = db.query(AuditEvent).filter(AuditEvent.object_id == sub_id, AuditEvent.action == "submission.state")
    assert [e.after["state"] for e in finished].count(states.FINISHED) == 1


def test_a_failed_baseline_post_deletes_its_stored_file_at_once(app, client, db, data):
    load_challenge(db, data)
    headers = token_for(db, make_user(db, "org@example.com", organizer=True))
    form = {
        "challenge": "tiny",
        "phase": "dev",
        "track": "detection",
        "name": "ref",
        "note": "a NUL \x00 PostgreSQL refuses to store",
        "file": (io.BytesIO(data.detection_csv()), "ref.csv"),
    }
    response = client.post("/api/v1/admin/baselines", data=form, headers=headers, content_type="multipart/form-data")
    assert response.status_code >= 400
    stored = [p for p in Path(app.config["STORAGE_DIR"]).rglob("*") if p.is_file() and "submissions" in p.parts]
    assert stored == []
