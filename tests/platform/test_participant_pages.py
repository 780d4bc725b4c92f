"""The challenge page's links, method metadata on uploads and boards, the final pick's confirmation, the shake-up
after the reveal, and the small fixes of issue 15 (one-point rank chart, pluralised counts, scores in
notifications as on the pages)."""

from __future__ import annotations

import io

import pytest
from arena import svg
from arena.formatting import shown_score
from arena.models import Notification, Phase, Submission
from arena.services import teams
from arena_testkit import PASSWORD, make_user, run_worker, token_for

pytestmark = pytest.mark.redis

METHOD = {
    "method_name": "ArcFace r50",
    "method_description": "margin 0.5, ResNet-50",
    "paper_url": "https://arxiv.org/abs/1801.07698",
    "code_url": "https://github.com/deepinsight/insightface",
}


def _upload(client, headers, content, **fields):
    return client.post(
        "/api/v1/challenges/tiny/submissions",
        data={"phase": "dev", "track": "detection", "file": (io.BytesIO(content), "d.csv"), **fields},
        headers=headers,
        content_type="multipart/form-data",
    )


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("paper_url", "ftp://example.com/p.pdf", "http:// or https://"),
        ("code_url", "not a url", "http:// or https://"),
        ("code_url", "https://", "http:// or https://"),
        ("method_description", "x" * 501, "at most 500"),
        ("method_name", "x" * 101, "at most 100"),
    ],
)
def test_bad_method_metadata_is_a_400_naming_the_field(client, db, data, challenge, team_user, field, value, words):
    _user, headers, _team = team_user
    response = _upload(client, headers, data.detection_csv(), **{**METHOD, field: value})
    assert response.status_code == 400 and response.get_json()["field"] == field
    assert words in response.get_json()["message"]
    assert db.query(Submission).count() == 0


def test_the_method_is_stored_and_shown_on_the_board_and_the_submission_page(
    app, client, db, data, challenge, team_user
):
    _user, headers, _team = team_user
    created = _upload(client, headers, data.detection_csv(), **METHOD)
    assert created.status_code == 202 and created.get_json()["method"]["name"] == "ArcFace r50"
    run_worker(app)
    board = client.get("/c/tiny/dev/detection/leaderboard").get_data(as_text=True)
    assert "ArcFace r50" in board and 'href="https://arxiv.org/abs/1801.07698"' in board
    client.post("/login", data={"email": "alice@example.com", "password": PASSWORD})
    page = client.get(f"/submissions/{created.get_json()['id']}").get_data(as_text=True)
    assert "margin 0.5, ResNet-50" in page and "github.com/deepinsight" in page


def test_the_web_form_takes_the_method_too(client, db, data, challenge, team_user):
    client.post("/login", data={"email": "alice@example.com", "password": PASSWORD})
    client.post(
        "/c/tiny/submit",
        data={"target": "dev/detection", "file": (io.BytesIO(data.detection_csv()), "d.csv"), **METHOD},
        content_type="multipart/form-data",
    )
    bad = client.post(
        "/c/tiny/submit",
        data={"target": "dev/detection", "file": (io.BytesIO(data.detection_csv()), "d.csv"), "paper_url": "x"},
        content_type="multipart/form-data",
        follow_redirects=True,
    )
    assert "paper_url" in bad.get_data(as_text=True)
    assert [s.method_name for s in db.query(Submission)] == ["ArcFace r50"]


def test_a_final_pick_without_a_method_is_a_409_when_the_phase_requires_one(
    app, client, db, data, challenge, team_user
):
    _user, headers, _team = team_user
    phase = db.query(Phase).one()
    phase.require_method_for_final = True
    db.commit()
    bare = _upload(client, headers, data.detection_csv()).get_json()["id"]
    named = _upload(client, headers, data.detection_csv(), **METHOD).get_json()["id"]
    run_worker(app)
    refused = client.post(f"/api/v1/submissions/{bare}/final", json={"selected": True}, headers=headers)
    assert refused.status_code == 409 and "method name" in refused.get_json()["message"]
    picked = client.post(f"/api/v1/submissions/{named}/final", json={"selected": True}, headers=headers)
    assert picked.status_code == 200
    assert picked.get_json()["message"] == (
        f"Submission {named} (ArcFace r50) is now your final pick for phase Development, track Detection (1 of 2); "
        "it replaces the automatic choice."
    )


def test_the_bundle_sets_require_method_for_final_per_challenge_and_phase(db, data):
    from arena.services.challenges import BundleError, parse_bundle
    from arena_testkit import BUNDLE

    text = BUNDLE.format(team_size=3, per_day=5, total=10, in_flight=2)
    assert parse_bundle(text, data.folder)["phases"][0]["require_method_for_final"] is False
    assert (
        parse_bundle("require_method_for_final: true\n" + text, data.folder)["phases"][0]["require_method_for_final"]
        is True
    )
    links = parse_bundle("links: {data: 'https://example.com/data'}\n" + text, data.folder)["links"]
    assert links == {"data": "https://example.com/data", "starter_kit": "starter_kit/README.md"}
    with pytest.raises(BundleError, match="links.videos"):
        parse_bundle("links: {videos: x}\n" + text, data.folder)


def test_the_web_pick_confirms_what_it_did(app, client, db, data, challenge, team_user):
    _user, headers, _team = team_user
    first = _upload(client, headers, data.detection_csv()).get_json()["id"]
    second = _upload(client, headers, data.detection_csv(0.5)).get_json()["id"]
    run_worker(app)
    client.post("/login", data={"email": "alice@example.com", "password": PASSWORD})
    page = client.post(f"/submissions/{first}/final", data={"selected": "1"}, follow_redirects=True)
    assert f"Submission {first} is now your final pick for phase Development" in page.get_data(as_text=True)
    page = client.post(f"/submissions/{second}/final", data={"selected": "1"}, follow_redirects=True)
    assert f"(2 of 2), beside {first}." in page.get_data(as_text=True)
    page = client.post(f"/submissions/{first}/final", data={"selected": "0"}, follow_redirects=True)
    assert f"no longer a final pick for phase Development, track Detection; your picks: {second}." in page.get_data(
        as_text=True
    )


def test_the_challenge_page_links_the_data_the_starter_kit_and_the_api(client, challenge):
    page = client.get("/c/tiny").get_data(as_text=True)
    assert 'id="link-data"' in page and "facedata/README.md" in page
    assert "starter_kit/README.md" in page and 'href="/api/docs"' in page
    assert client.get("/api/v1/challenges/tiny").get_json()["links"]["api_docs"] == "/api/docs"


def test_the_shakeup_shows_public_against_private_rank_after_the_reveal(client, db, challenge):
    from arena import standings
    from arena_testkit import finished_submission

    phase, track = challenge.phases[0], challenge.tracks[0]
    a = teams.create_team(db, make_user(db, "a@example.com"), challenge, "Aa", True)
    b = teams.create_team(db, make_user(db, "b@example.com"), challenge, "Bb", True)
    finished_submission(db, a, phase, track, public=0.9, private=0.5, minute=1)
    finished_submission(db, b, phase, track, public=0.8, private=0.7, minute=2)
    standings.rebuild(db, challenge)
    db.commit()
    url = "/api/v1/challenges/tiny/phases/dev/tracks/detection/shakeup"
    assert client.get(url).status_code == 403
    assert "once the organizers reveal" in client.get("/c/tiny/dev/detection/shakeup").get_data(as_text=True)
    phase.closed, phase.private_revealed = True, True
    db.commit()
    rows = client.get(url).get_json()["rows"]
    assert [(r["name"], r["private_rank"], r["public_rank"], r["move"]) for r in rows] == [
        ("Bb", 1, 2, 1),
        ("Aa", 2, 1, -1),
    ]
    page = client.get("/c/tiny/dev/detection/shakeup").get_data(as_text=True)
    assert "▲ 1" in page and "▼ 1" in page
    assert 'id="shakeup-link"' in client.get("/c/tiny/dev/detection/leaderboard?split=private").get_data(as_text=True)


def test_a_rank_history_of_one_point_draws_the_point():
    one = str(svg.rank_history([3]))
    assert "<circle" in one and "rank 3 (one point so far)" in one
    assert f'cx="{svg._x(0.5):.1f}" cy="{svg._y(0.5):.1f}"' in one  # in the middle, not on the frame
    assert str(svg.rank_history([])) == ""
    assert str(svg.rank_history([2, 1])).count("<circle") == 2


def test_the_home_page_pluralises(client, challenge, db):
    page = client.get("/").get_data(as_text=True)
    assert "2 tracks · 1 phase ·" in page


def test_notifications_show_rank1_as_the_pages_do(app, client, db, data, challenge, team_user):
    _user, headers, _team = team_user
    response = client.post(
        "/api/v1/challenges/tiny/submissions",
        data={"phase": "dev", "track": "recognition", "file": (io.BytesIO(data.features()), "f.bin")},
        headers=headers,
        content_type="multipart/form-data",
    )
    assert response.status_code == 202
    run_worker(app)
    sub = db.query(Submission).one()
    message = db.query(Notification).filter(Notification.message.like("%scored%")).one().message
    assert f"rank1 {shown_score(sub.public_score, 'rank1')} on the public split" in message and " %" in message


def test_organizers_still_see_emails_in_their_own_answer(client, db, challenge):
    organizer = make_user(db, "org@example.com", organizer=True)
    assert client.get("/api/v1/me", headers=token_for(db, organizer)).get_json()["email"] == "org@example.com"
