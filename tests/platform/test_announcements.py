"""Announcements: an organizer posts one to every team of a challenge; it is stored, audited, sent in-app and by mail
to every member, listed by the API and shown by the challenge page's partial."""

from __future__ import annotations

import pytest
from arena import announcements
from arena.models import AuditEvent, Notification
from arena.services import teams
from arena_testkit import PASSWORD, make_user, token_for


@pytest.fixture
def members(db, challenge):
    alice, bob, carol = (make_user(db, f"{n}@example.com") for n in ("alice", "bob", "carol"))
    alpha = teams.create_team(db, alice, challenge, "Alpha", True)
    teams.join_team(db, bob, challenge, alpha.invite_code, True)
    teams.create_team(db, carol, challenge, "Beta", True)
    return alice, bob, carol


def test_an_announcement_reaches_every_member_in_app_and_by_mail(app, client, db, challenge, members, caplog):
    org = make_user(db, "org@example.com", organizer=True)
    make_user(db, "loner@example.com")  # in no team: not told
    headers = token_for(db, org)
    body = {"title": "Deadline moved", "body": "The **dev** phase ends on Friday."}
    with caplog.at_level("WARNING", logger="arena.notify"):
        answer = client.post("/api/v1/admin/challenges/tiny/announcements", json=body, headers=headers)
    assert answer.status_code == 201 and answer.get_json()["recipients"] == 3
    told = {n.user_id for n in db.query(Notification).filter(Notification.message == "Announcement: Deadline moved")}
    assert told == {m.id for m in members}
    mailed = [
        r.getMessage() for r in caplog.records if "Subject: [Tiny cartoon faces] Deadline moved" in r.getMessage()
    ]
    assert len(mailed) == 3 and any("To: bob@example.com" in m for m in mailed)
    event = db.query(AuditEvent).filter_by(action="announcement.post").one()
    assert event.actor_id == org.id and event.after == {"title": "Deadline moved", "recipients": 3}
    listed = client.get("/api/v1/challenges/tiny/announcements").get_json()
    assert [(a["title"], a["recipients"]) for a in listed] == [("Deadline moved", 3)]


@pytest.mark.parametrize(
    ("body", "field"), [({"title": "  "}, "title"), ({"title": "x" * 201}, "title"), ({}, "title")]
)
def test_an_announcement_without_a_proper_title_is_a_400(client, db, challenge, body, field):
    headers = token_for(db, make_user(db, "org@example.com", organizer=True))
    answer = client.post("/api/v1/admin/challenges/tiny/announcements", json=body, headers=headers)
    assert answer.status_code == 400 and answer.get_json()["field"] == field


def test_participants_cannot_announce(client, db, challenge, members):
    headers = token_for(db, members[0])
    answer = client.post("/api/v1/admin/challenges/tiny/announcements", json={"title": "hi"}, headers=headers)
    assert answer.status_code == 403


def test_the_partial_renders_the_latest_announcements_as_markdown(app, db, challenge, members):
    org = make_user(db, "org@example.com", organizer=True)
    announcements.post(db, org, challenge, "First", "one")
    announcements.post(db, org, challenge, "Second", "Read the *rules* <script>x</script>")
    posted = announcements.for_challenge(db, challenge)
    assert [a.title for a in posted] == ["Second", "First"]
    with app.test_request_context("/c/tiny"):
        from flask import render_template

        html = render_template("_announcements.html", announcements=posted)
    assert "<em>rules</em>" in html and "<script>" not in html and html.index("Second") < html.index("First")
    assert 'id="announcement-' in html


def test_the_console_page_posts_an_announcement(client, db, challenge, members):
    make_user(db, "org@example.com", organizer=True)
    client.post("/login", data={"email": "org@example.com", "password": PASSWORD})
    done = client.post(
        "/admin/c/tiny/announcements", data={"title": "Welcome", "body": "Hello"}, follow_redirects=True
    ).get_data(as_text=True)
    assert "Announcement &#39;Welcome&#39; posted: sent to 3 members" in done and "<td>Welcome</td>" in done


def test_the_challenge_page_shows_the_announcements(client, db, challenge):
    org = make_user(db, "org@example.com", organizer=True)
    assert 'id="announcements"' not in client.get("/c/tiny").get_data(as_text=True)  # none yet: no section
    announcements.post(db, org, challenge, "Deadline moved", "The **dev** phase ends on Friday.")
    page = client.get("/c/tiny").get_data(as_text=True)
    assert 'id="announcements"' in page and "Deadline moved" in page and "<strong>dev</strong>" in page
