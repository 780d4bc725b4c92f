"""Accounts: hashed passwords, email verification and reset links (logged without SMTP, mailed with it)."""

from __future__ import annotations

import re

import pytest
from arena.errors import Invalid, Unauthorized
from arena.services import accounts
from arena_testkit import PASSWORD, make_user

pytestmark = pytest.mark.redis


def _link(caplog, kind: str) -> str:
    found = re.findall(rf"http://\S+/{kind}/(\S+)", caplog.text)
    assert found, f"no {kind} link in the log"
    return found[-1]


def test_passwords_are_stored_as_argon2_hashes(db):
    user = make_user(db, "a@example.com")
    assert user.password_hash.startswith("$argon2id$") and PASSWORD not in user.password_hash


def test_the_verification_link_is_logged_without_smtp_and_verifies(client, db, caplog):
    client.post("/api/v1/register", json={"email": "v@example.com", "password": PASSWORD})
    token = _link(caplog, "verify")
    assert "verified" in client.get(f"/verify/{token}", follow_redirects=True).get_data(as_text=True)
    from arena.models import User

    db.expire_all()
    assert db.query(User).filter_by(email="v@example.com").one().verified


@pytest.mark.parametrize("token", ["garbage", "eyJ1aWQiOjF9.bad.sig"])
def test_a_forged_verification_link_is_refused(client, db, token):
    make_user(db, "a@example.com", verified=False)
    page = client.get(f"/verify/{token}", follow_redirects=True).get_data(as_text=True)
    assert "not valid" in page


def test_password_reset_link_works_once(client, db, caplog):
    make_user(db, "r@example.com")
    client.post("/forgot", data={"email": "r@example.com"})
    token = _link(caplog, "reset")
    assert client.post(f"/reset/{token}", data={"password": "a new password"}).status_code == 302
    assert accounts.authenticate(db, "r@example.com", "a new password")
    reused = client.post(f"/reset/{token}", data={"password": "another password"})
    assert reused.status_code == 400 and "not valid any more" in reused.get_data(as_text=True)


def test_asking_a_reset_for_an_unknown_email_says_the_same(client, db, caplog):
    known = make_user(db, "k@example.com")
    assert known
    answers = [
        client.post("/forgot", data={"email": e}, follow_redirects=True).get_data(as_text=True)
        for e in ("k@example.com", "nobody@example.com")
    ]
    assert answers[0] == answers[1]


@pytest.mark.parametrize(("email", "password"), [("a@example.com", "wrong password"), ("zz@example.com", PASSWORD)])
def test_wrong_credentials_give_one_message(db, email, password):
    make_user(db, "a@example.com")
    with pytest.raises(Unauthorized, match="wrong email or password"):
        accounts.authenticate(db, email, password)


def test_login_and_logout_with_the_session_cookie(client, db):
    make_user(db, "a@example.com")
    assert client.post("/login", data={"email": "a@example.com", "password": PASSWORD}).status_code == 302
    assert "a@example.com" in client.get("/account").get_data(as_text=True)
    client.post("/logout")
    assert client.get("/account").status_code == 302


def test_login_redirects_only_to_local_paths(client, db):
    make_user(db, "a@example.com")
    response = client.post("/login?next=//evil.example/x", data={"email": "a@example.com", "password": PASSWORD})
    assert response.headers["Location"] == "/"


def test_tokens_are_created_and_revoked_on_the_account_page(client, db):
    make_user(db, "a@example.com")
    client.post("/login", data={"email": "a@example.com", "password": PASSWORD})
    page = client.post("/account", data={"name": "laptop"}).get_data(as_text=True)
    plaintext = re.search(r'id="new-token">(arena_[^<]+)<', page).group(1)
    headers = {"Authorization": f"Bearer {plaintext}"}
    assert client.get("/api/v1/me", headers=headers).status_code == 200
    token_id = accounts.list_tokens(db, accounts.authenticate(db, "a@example.com", PASSWORD))[0].id
    client.post("/account", data={"revoke": str(token_id)})
    assert client.get("/api/v1/me", headers=headers).status_code == 401


def test_mail_goes_through_smtp_when_configured(app, client, db):
    """A real SMTP server (aiosmtpd) receives the verification mail."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Sink

    class Keep(Sink):
        def __init__(self):
            self.messages = []

        async def handle_DATA(self, server, session, envelope):
            self.messages.append(envelope)
            return "250 OK"

    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    handler = Keep()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=port)
        client.post("/api/v1/register", json={"email": "m@example.com", "password": PASSWORD})
    finally:
        controller.stop()
    (envelope,) = handler.messages
    assert envelope.rcpt_tos == ["m@example.com"] and b"/verify/" in envelope.content


@pytest.mark.parametrize("password", ["", "short"])
def test_reset_refuses_a_short_password(app, db, password):
    user = make_user(db, "a@example.com")
    with app.test_request_context():
        token = accounts.link_token(user, "reset")
    with pytest.raises(Invalid, match="at least 8"):
        accounts.reset_password(db, token, password)


def test_a_failing_mail_server_does_not_break_registration(app, client, caplog):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens here once the probe closes
    app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=port)
    response = client.post("/api/v1/register", json={"email": "f@example.com", "password": PASSWORD})
    assert response.status_code == 202 and "could not mail f@example.com" in caplog.text
