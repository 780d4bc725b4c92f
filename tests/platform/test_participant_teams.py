"""Teams as people see them: display names (an email is never shown to another participant), the public team
page, invites by email, password change."""

from __future__ import annotations

import re
import threading

import pytest
from arena.errors import Conflict, Invalid
from arena.models import Membership, Submission, TeamInvite, User
from arena.services import accounts, invites, teams
from arena_testkit import PASSWORD, make_user, run_worker, token_for, upload

pytestmark = pytest.mark.redis


def _login(client, email, password=PASSWORD):
    return client.post("/login", data={"email": email, "password": password})


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("ab", "3 to 40"),
        ("x" * 41, "3 to 40"),
        ("a@b.example", "letters, digits"),
        ("-dash first", "letters, digits"),
        ("<script>", "letters, digits"),
    ],
)
def test_a_bad_display_name_is_a_400_naming_the_field(client, db, team_user, name, why):
    _user, headers, _team = team_user
    response = client.patch("/api/v1/me", json={"display_name": name}, headers=headers)
    assert response.status_code == 400 and response.get_json()["field"] == "display_name"
    assert why in response.get_json()["message"]


def test_display_names_are_unique_without_case(client, db, team_user):
    _user, headers, _team = team_user
    assert client.patch("/api/v1/me", json={"display_name": "Cartoon  Fan"}, headers=headers).status_code == 200
    db.expire_all()
    assert db.query(User).filter_by(email="alice@example.com").one().display_name == "Cartoon Fan"
    other = token_for(db, make_user(db, "bob@example.com"))
    taken = client.patch("/api/v1/me", json={"display_name": "cartoon fan"}, headers=other)
    assert taken.status_code == 409 and taken.get_json()["field"] == "display_name"
    with pytest.raises(Conflict):
        accounts.register(db, "carol@example.com", PASSWORD, "CARTOON FAN")


def test_registration_takes_a_display_name(client, db, challenge):
    response = client.post("/register", data={"email": "n@example.com", "password": PASSWORD, "display_name": "Newbie"})
    assert response.status_code == 302
    db.expire_all()
    assert db.query(User).filter_by(email="n@example.com").one().display_name == "Newbie"
    bad = client.post("/register", data={"email": "m@example.com", "password": PASSWORD, "display_name": "x@y.z"})
    assert bad.status_code == 400 and "display name" in bad.get_data(as_text=True)


def _two_teams(app, client, db, data, challenge, team_user):
    """Alice captains Alpha with Dave; Bob captains Beta; both teams have a scored submission."""
    alice, alice_headers, alpha = team_user
    accounts.set_display_name(db, alice, "Alice A")
    dave = make_user(db, "dave@example.com")
    teams.join_team(db, dave, challenge, alpha.invite_code, True)
    bob = make_user(db, "bob@example.com")
    accounts.set_display_name(db, bob, "Bob B")
    beta = teams.create_team(db, bob, challenge, "Beta", True)
    bob_headers = token_for(db, bob)
    assert upload(client, alice_headers, data.detection_csv()).status_code == 202
    assert upload(client, bob_headers, data.detection_csv(0.5)).status_code == 202
    run_worker(app)
    return alpha, beta, bob_headers


def test_no_page_or_answer_shows_another_participant_an_email(app, client, db, data, challenge, team_user):
    alpha, beta, bob_headers = _two_teams(app, client, db, data, challenge, team_user)
    sub_id = db.query(Submission).filter_by(team_id=beta.id).one().id
    _login(client, "bob@example.com")
    pages = [
        "/",
        "/c/tiny",
        "/c/tiny/dev/detection/leaderboard",
        f"/c/tiny/teams/{alpha.id}",
        f"/c/tiny/teams/{beta.id}",
        f"/submissions/{sub_id}",
        "/account",
        "/c/tiny/dev/detection/leaderboard.json",
        "/c/tiny/dev/detection/leaderboard.csv",
    ]
    answers = [
        "/api/v1/challenges",
        "/api/v1/challenges/tiny",
        "/api/v1/challenges/tiny/team",
        f"/api/v1/challenges/tiny/teams/{alpha.id}",
        "/api/v1/challenges/tiny/phases/dev/tracks/detection/leaderboard",
        "/api/v1/challenges/tiny/submissions",
    ]
    seen = [client.get(p).get_data(as_text=True) for p in pages]
    seen += [client.get(p, headers=bob_headers).get_data(as_text=True) for p in answers]
    for text in seen:
        others = set(re.findall(r"[\w.+-]+@[\w-]+\.[\w.]+", text)) - {"bob@example.com"}
        assert not others, others
    board = seen[2]
    assert "Alice A" in board and "user " in board  # Dave has no display name: "user <id>"
    assert "Alice A" in seen[3] and "Bob B" in seen[1]


def test_the_public_team_page_shows_members_count_and_best_scores(app, client, db, data, challenge, team_user):
    alpha, _beta, _bob = _two_teams(app, client, db, data, challenge, team_user)
    answer = client.get(f"/api/v1/challenges/tiny/teams/{alpha.id}").get_json()
    assert answer["name"] == "Alpha" and answer["submissions"] == 1 and answer["members"][0] == "Alice A"
    assert [(b["track"], b["split"], b["rank"], b["score"]) for b in answer["best"]] == [
        ("detection", "public", 1, 1.0)
    ]  # the private split stays hidden until the reveal, as on the board
    page = client.get(f"/c/tiny/teams/{alpha.id}").get_data(as_text=True)
    assert "Alice A" in page and "1.0000" in page
    board = client.get("/c/tiny/dev/detection/leaderboard").get_data(as_text=True)
    assert f'href="/c/tiny/teams/{alpha.id}"' in board
    assert client.get("/c/tiny/teams/99999").status_code == 404
    assert client.get("/api/v1/challenges/tiny/teams/99999").status_code == 404


def test_the_board_shows_entries_last_submission_and_members(app, client, db, data, challenge, team_user):
    _alpha, _beta, bob_headers = _two_teams(app, client, db, data, challenge, team_user)
    assert upload(client, bob_headers, b"broken\n").status_code == 202  # failed: refunded, not an entry
    run_worker(app)
    page = client.get("/c/tiny/dev/detection/leaderboard").get_data(as_text=True)
    beta_row = re.search(r'<tr data-team="\d+">(?:(?!</tr>).)*Beta(?:(?!</tr>).)*</tr>', page, re.S).group(0)
    assert '<td class="num entries">1</td>' in beta_row and "Bob B" in beta_row
    assert upload(client, bob_headers, data.detection_csv(0.5)).status_code == 202  # a second entry
    run_worker(app)
    page = client.get("/c/tiny/dev/detection/leaderboard").get_data(as_text=True)
    beta_row = re.search(r'<tr data-team="\d+">(?:(?!</tr>).)*Beta(?:(?!</tr>).)*</tr>', page, re.S).group(0)
    assert '<td class="num entries">2</td>' in beta_row
    rows = client.get("/api/v1/challenges/tiny/phases/dev/tracks/detection/leaderboard").get_json()["rows"]
    beta = next(r for r in rows if r["name"] == "Beta")
    assert beta["entries"] == 2 and beta["members"] == ["Bob B"] and beta["last_submission_at"].endswith("Z")
    csv_lines = client.get("/c/tiny/dev/detection/leaderboard.csv").get_data(as_text=True).splitlines()
    assert any(line.startswith("2,Beta,0,") and ",2," in line and line.endswith(",Bob B,") for line in csv_lines)


def test_an_email_invite_is_mailed_listed_revocable_and_joins(app, client, db, challenge, team_user, caplog):
    alice, headers, alpha = team_user
    sent = client.post(f"/api/v1/teams/{alpha.id}/invites", json={"email": "Eve@Example.com"}, headers=headers)
    assert sent.status_code == 201 and sent.get_json()["email"] == "eve@example.com"
    link = re.search(r"/invites/(\S+)", caplog.text).group(1)
    assert [i["email"] for i in client.get(f"/api/v1/teams/{alpha.id}/invites", headers=headers).get_json()] == [
        "eve@example.com"
    ]
    eve = make_user(db, "eve@example.com")
    eve_headers = token_for(db, eve)
    mallory = token_for(db, make_user(db, "mallory@example.com"))
    wrong = client.post("/api/v1/invites/accept", json={"token": link, "accept_rules": True}, headers=mallory)
    assert wrong.status_code == 403
    no_rules = client.post("/api/v1/invites/accept", json={"token": link, "accept_rules": False}, headers=eve_headers)
    assert no_rules.status_code == 400 and no_rules.get_json()["field"] == "accept_rules"
    joined = client.post("/api/v1/invites/accept", json={"token": link, "accept_rules": True}, headers=eve_headers)
    assert joined.status_code == 200 and joined.get_json()["id"] == alpha.id
    again = client.post("/api/v1/invites/accept", json={"token": link, "accept_rules": True}, headers=eve_headers)
    assert again.status_code == 400 and "accepted already" in again.get_json()["message"]
    assert client.get(f"/api/v1/teams/{alpha.id}/invites", headers=headers).get_json() == []
    # a revoked invite's link stops working
    second = client.post(f"/api/v1/teams/{alpha.id}/invites", json={"email": "fay@example.com"}, headers=headers)
    token = re.findall(r"/invites/(\S+)", caplog.text)[-1]
    assert client.post(f"/api/v1/invites/{second.get_json()['id']}/revoke", headers=headers).status_code == 200
    fay = token_for(db, make_user(db, "fay@example.com"))
    revoked = client.post("/api/v1/invites/accept", json={"token": token, "accept_rules": True}, headers=fay)
    assert revoked.status_code == 400 and "revoked" in revoked.get_json()["message"]
    bad = client.post(f"/api/v1/teams/{alpha.id}/invites", json={"email": "not-an-email"}, headers=headers)
    assert bad.status_code == 400 and bad.get_json()["field"] == "email"
    assert (
        client.post(f"/api/v1/teams/{alpha.id}/invites", json={"email": "x@y.zz"}, headers=eve_headers).status_code
        == 403
    )


def test_invites_respect_the_team_cap_under_concurrency(app, db, challenge, team_user):
    """Team size 3: the captain and one member are in; of three invitees accepting at once, one gets in."""
    alice, _headers, alpha = team_user
    teams.join_team(db, make_user(db, "m1@example.com"), challenge, alpha.invite_code, True)
    links = []
    with app.test_request_context():
        for i in range(3):
            make_user(db, f"inv{i}@example.com")
            links.append(invites.link(invites.invite(db, alice, alpha.id, f"inv{i}@example.com")).rsplit("/", 1)[1])
    results = []

    def accept(i):
        with app.test_request_context():
            from arena.db import get_session

            session = get_session()
            user = session.query(User).filter_by(email=f"inv{i}@example.com").one()
            try:
                invites.accept(session, user, links[i], True)
                results.append("in")
            except Conflict:
                results.append("full")

    threads = [threading.Thread(target=accept, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    db.expire_all()
    assert sorted(results) == ["full", "full", "in"]
    assert db.query(Membership).filter_by(team_id=alpha.id).count() == 3
    assert db.query(TeamInvite).filter(TeamInvite.accepted_at.is_not(None)).count() == 1


def test_the_captain_invites_and_revokes_on_the_challenge_page(client, db, challenge, team_user):
    _login(client, "alice@example.com")
    _user, _headers, alpha = team_user
    client.post("/c/tiny/invites", data={"team_id": alpha.id, "email": "gus@example.com"})
    page = client.get("/c/tiny").get_data(as_text=True)
    assert 'id="invites"' in page and "gus@example.com" in page  # the captain sees whom they invited
    invite = db.query(TeamInvite).one()
    client.post("/c/tiny/invites", data={"revoke": invite.id})
    assert "gus@example.com" not in client.get("/c/tiny").get_data(as_text=True)


def test_password_change_needs_the_current_one_and_ends_other_sessions(app, client, db, team_user):
    _user, headers, _team = team_user
    other = app.test_client()
    _login(client, "alice@example.com")
    _login(other, "alice@example.com")
    wrong = client.post("/account/password", data={"current_password": "nope", "new_password": "new password 1"})
    assert wrong.status_code == 302 and "current password is wrong" in client.get("/account").get_data(as_text=True)
    short = client.post(
        "/api/v1/me/password", json={"current_password": PASSWORD, "new_password": "x"}, headers=headers
    )
    assert short.status_code == 400 and short.get_json()["field"] == "new_password"
    client.post("/account/password", data={"current_password": PASSWORD, "new_password": "new password 1"})
    assert client.get("/account").status_code == 200  # this browser stays logged in
    assert other.get("/account").status_code == 302  # the other session has ended
    assert _login(client, "alice@example.com").status_code == 401
    assert _login(client, "alice@example.com", "new password 1").status_code == 302
    api = client.post(
        "/api/v1/me/password", json={"current_password": "new password 1", "new_password": PASSWORD}, headers=headers
    )
    assert api.status_code == 200 and client.get("/account").status_code == 302


def test_checked_display_name_blank_is_none(db, team_user):
    assert accounts.checked_display_name(db, "   ") is None
    with pytest.raises(Invalid):
        accounts.checked_display_name(db, "a\tb@")


def test_the_mailed_link_opens_a_page_that_joins_the_team(app, client, db, challenge, team_user, caplog):
    _alice, headers, alpha = team_user
    client.post(f"/api/v1/teams/{alpha.id}/invites", json={"email": "hal@example.com"}, headers=headers)
    path = re.search(r"http://[^/\s]+(/invites/\S+)", caplog.text).group(1)
    make_user(db, "hal@example.com")
    assert client.get(path).status_code == 302  # log in first
    _login(client, "hal@example.com")
    page = client.get(path).get_data(as_text=True)
    assert "Join team Alpha" in page and "Be nice." in page
    joined = client.post(path, data={"accept_rules": "on"}, follow_redirects=True)
    assert "You joined team Alpha." in joined.get_data(as_text=True)
    db.expire_all()
    assert db.query(Membership).filter_by(team_id=alpha.id).count() == 2
    assert "accepted already" in client.get(path, follow_redirects=True).get_data(as_text=True)
