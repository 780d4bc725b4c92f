"""HTML pages and web security: CSRF on forms, cookie flags, rate limits, escaping, no path from a user's name."""

from __future__ import annotations

import io
import re

import pytest
from arena.models import Submission
from arena_testkit import PASSWORD, make_user, run_worker

pytestmark = pytest.mark.redis


def _login(client, email):
    return client.post("/login", data={"email": email, "password": PASSWORD})


def test_pages_render_without_javascript(client, db, challenge):
    for path in ("/", "/login", "/register", "/forgot", "/c/tiny", "/c/tiny/dev/detection/leaderboard"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert "<script" not in response.get_data(as_text=True), path


def test_a_participant_registers_joins_uploads_and_sees_the_score_in_html(app, client, db, data, challenge):
    assert client.post("/register", data={"email": "p@example.com", "password": PASSWORD}).status_code == 302
    assert client.post("/login", data={"email": "p@example.com", "password": PASSWORD}).status_code == 302
    from arena.models import User
    from arena.services import accounts

    user = db.query(User).filter_by(email="p@example.com").one()
    with app.test_request_context():
        token = accounts.link_token(user, "verify")
    client.get(f"/verify/{token}")
    client.post("/c/tiny/team", data={"action": "create", "name": "Web team", "accept_rules": "on"})
    page = client.get("/c/tiny").get_data(as_text=True)
    assert "Web team" in page and "invite-code" in page
    response = client.post(
        "/c/tiny/submit",
        data={"target": "dev/detection", "file": (io.BytesIO(data.detection_csv()), "dets.csv")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 302
    sub_id = int(response.headers["Location"].rsplit("/", 1)[1])
    assert "queued" in client.get(f"/submissions/{sub_id}").get_data(as_text=True)
    run_worker(app)
    detail = client.get(f"/submissions/{sub_id}").get_data(as_text=True)
    assert "finished" in detail and "1.0000" in detail and "<svg" in detail
    board = client.get("/c/tiny/dev/detection/leaderboard").get_data(as_text=True)
    assert "Web team" in board


def test_a_failed_submission_page_shows_the_message_and_line(app, client, db, challenge, team_user):
    _login(client, "alice@example.com")
    response = client.post(
        "/c/tiny/submit",
        data={
            "target": "dev/detection",
            "file": (io.BytesIO(b"det_000.jpg,1,2,3,4,face,0.5\ndet_000.jpg,1,2,3,4,face,NaN\n"), "x.csv"),
        },
        content_type="multipart/form-data",
    )
    sub_id = int(response.headers["Location"].rsplit("/", 1)[1])
    run_worker(app)
    page = client.get(f"/submissions/{sub_id}").get_data(as_text=True)
    assert "line 2" in page and "field &#39;score&#39;" in page and "not a finite number" in page


@pytest.mark.parametrize(
    ("path", "form"),
    [
        ("/login", {"email": "a@example.com", "password": PASSWORD}),
        ("/register", {"email": "b@example.com", "password": PASSWORD}),
        ("/c/tiny/team", {"action": "create", "name": "Team csrf", "accept_rules": "on"}),
        ("/logout", {}),
    ],
)
def test_forms_without_the_csrf_token_are_refused(app, client, db, challenge, path, form):
    make_user(db, "a@example.com")
    app.config["WTF_CSRF_ENABLED"] = True
    response = client.post(path, data=form)
    assert response.status_code == 400 and "CSRF" in response.get_data(as_text=True)


def test_forms_with_the_csrf_token_pass(app, client, db):
    make_user(db, "a@example.com")
    app.config["WTF_CSRF_ENABLED"] = True
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    response = client.post("/login", data={"email": "a@example.com", "password": PASSWORD, "csrf_token": token})
    assert response.status_code == 302


def test_the_api_needs_no_csrf_token_it_uses_bearer_tokens(app, client):
    app.config["WTF_CSRF_ENABLED"] = True
    assert client.post("/api/v1/register", json={"email": "c@example.com", "password": PASSWORD}).status_code == 202


def test_session_cookie_is_httponly_and_samesite(client, db):
    make_user(db, "a@example.com")
    response = _login(client, "a@example.com")
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


@pytest.mark.parametrize(("path", "limit_key"), [("/login", "RATELIMIT_LOGIN"), ("/api/v1/tokens", "RATELIMIT_LOGIN")])
def test_login_is_rate_limited(engine, redis_conn, queue_name, tmp_path, monkeypatch, path, limit_key):
    from arena import create_app

    monkeypatch.setenv("ARENA_INSTANCE", str(tmp_path / "instance"))
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "x",
            "DATABASE_URL": str(engine.url),
            "ENGINE": engine,
            "WTF_CSRF_ENABLED": False,
            "RATELIMIT_STORAGE_URI": "memory://",
            "ARGON2": {"time_cost": 1, "memory_cost": 64, "parallelism": 1},
            "RQ_QUEUE": queue_name,
            limit_key: "3 per minute",
            "STORAGE_DIR": str(tmp_path / "s"),
        }
    )
    client = app.test_client()
    body = {"email": "x@example.com", "password": "wrongwrong"}
    send = {"json": body} if path.startswith("/api/") else {"data": body}  # the API takes JSON bodies only
    codes = [client.post(path, **send).status_code for _ in range(5)]
    assert codes[:3] != [429] * 3 and codes[3:] == [429, 429]


def test_uploads_are_rate_limited(engine, redis_conn, queue_name, tmp_path, monkeypatch, data):
    from arena import create_app
    from arena.db import get_session
    from arena_testkit import load_challenge, token_for, upload

    monkeypatch.setenv("ARENA_INSTANCE", str(tmp_path / "instance"))
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "x",
            "DATABASE_URL": str(engine.url),
            "ENGINE": engine,
            "RATELIMIT_STORAGE_URI": "memory://",
            "ARGON2": {"time_cost": 1, "memory_cost": 64, "parallelism": 1},
            "RQ_QUEUE": queue_name,
            "RATELIMIT_UPLOAD": "2 per minute",
            "STORAGE_DIR": str(tmp_path / "s"),
            "REDIS_URL": "redis://127.0.0.1:6379/13",
        }
    )
    app.extensions["arena.redis"] = redis_conn
    with app.app_context():
        db = get_session()
        load_challenge(db, data)
        headers = token_for(db, make_user(db, "a@example.com"))
    client = app.test_client()
    codes = [upload(client, headers, b"x").status_code for _ in range(3)]
    assert codes[2] == 429


def test_user_text_is_escaped_and_markdown_is_sanitised(client, db, challenge, team_user):
    challenge.description = "hello <script>alert(1)</script> **bold**"
    db.commit()
    page = client.get("/c/tiny").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page and "<strong>bold</strong>" in page


@pytest.mark.parametrize("name", ["../../etc/passwd", "..\\..\\x.csv", "/abs/path.csv", "a\x00b.csv"])
def test_no_path_from_a_user_supplied_name_reaches_the_filesystem(app, client, db, data, team_user, name):
    from arena_testkit import upload

    _user, headers, _team = team_user
    sub_id = upload(client, headers, data.detection_csv(), name=name).get_json()["id"]
    db.expire_all()
    sub = db.get(Submission, sub_id)
    assert sub.stored_path.startswith("submissions/") and re.fullmatch(
        r"submissions/[0-9a-f]{32}\.upload", sub.stored_path
    )
    assert "/" not in sub.original_name and "\\" not in sub.original_name and "\x00" not in sub.original_name


def test_organizer_pages_are_for_organizers_only(client, db, challenge, team_user):
    _login(client, "alice@example.com")
    for path in ("/admin/", "/admin/c/tiny", "/admin/audit", "/admin/queue"):
        assert client.get(path).status_code == 403, path


def test_organizer_pages_show_audit_queue_and_challenge(app, client, db, data, challenge, team_user):
    from arena_testkit import upload

    make_user(db, "org@example.com", organizer=True)
    _user, headers, team = team_user
    upload(client, headers, data.detection_csv())
    _login(client, "org@example.com")
    assert "submission.state" in client.get("/admin/audit?scope=states").get_data(as_text=True)
    queue_page = client.get("/admin/queue").get_data(as_text=True)
    assert "1 waiting" in queue_page
    response = client.post(
        "/admin/c/tiny/action", data={"what": "team", "team_id": team.id, "action": "hide", "reason": "spam"}
    )
    assert response.status_code == 302
    db.expire_all()
    assert db.get(type(team), team.id).hidden
    assert "Alpha" in client.get("/admin/c/tiny/teams").get_data(as_text=True)
