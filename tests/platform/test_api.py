"""The REST API: token auth, an authorization check on every object, JSON errors with real status codes, OpenAPI."""

from __future__ import annotations

import pytest
from arena.services import teams
from arena_testkit import PASSWORD, make_user, run_worker, token_for, upload

pytestmark = pytest.mark.redis


def test_register_then_exchange_the_password_for_a_token_then_revoke_it(client):
    created = client.post("/api/v1/register", json={"email": "New@Example.com", "password": PASSWORD})
    assert created.status_code == 202 and "Check your mail" in created.get_json()["message"]
    token = client.post("/api/v1/tokens", json={"email": "new@example.com", "password": PASSWORD}).get_json()
    headers = {"Authorization": f"Bearer {token['token']}"}
    assert client.get("/api/v1/me", headers=headers).status_code == 200
    assert client.delete(f"/api/v1/tokens/{token['id']}", headers=headers).status_code == 204
    refused = client.get("/api/v1/me", headers=headers)
    assert refused.status_code == 401 and "revoked" in refused.get_json()["message"]


def test_tokens_are_stored_hashed(client, db):
    from arena.models import ApiToken

    make_user(db, "a@example.com")
    plaintext = client.post("/api/v1/tokens", json={"email": "a@example.com", "password": PASSWORD}).get_json()
    stored = db.query(ApiToken).one()
    assert plaintext["token"] not in (stored.token_hash, stored.prefix) and len(stored.token_hash) == 64


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "words"),
    [
        ("post", "/api/v1/register", {"email": "bad", "password": PASSWORD}, 400, "valid email"),
        ("post", "/api/v1/register", {"email": "a@b.co", "password": "short"}, 400, "at least 8"),
        ("post", "/api/v1/tokens", {"email": "a@example.com", "password": "wrong password"}, 401, "wrong email"),
        ("get", "/api/v1/me", None, 401, "Bearer"),
        ("get", "/api/v1/challenges/nope", None, 404, "no challenge"),
        ("get", "/api/v1/no/such/route", None, 404, "not found"),
        ("delete", "/api/v1/challenges", None, 405, "not allowed"),
    ],
)
def test_errors_are_json_with_real_status_codes(client, db, method, path, body, status, words):
    make_user(db, "a@example.com")
    response = getattr(client, method)(path, json=body)
    assert response.status_code == status
    assert response.is_json and words.lower() in response.get_json()["message"].lower()


def test_a_duplicate_registration_is_answered_alike_and_the_owner_is_told(client, db, caplog):
    """No account enumeration: a known email gets the answer a new one gets; its owner gets a note by mail."""
    from arena.models import User

    body = {"email": "a@example.com", "password": PASSWORD}
    first = client.post("/api/v1/register", json=body)
    again = client.post("/api/v1/register", json={**body, "password": "another password"})
    assert (first.status_code, first.get_json()) == (again.status_code, again.get_json()) and first.status_code == 202
    assert db.query(User).filter_by(email="a@example.com").count() == 1
    assert "Someone tried to register with your email" in caplog.text


def test_a_team_never_sees_another_teams_submission(app, client, db, data, challenge, team_user):
    _alice, alice_headers, _team = team_user
    bob = make_user(db, "bob@example.com")
    teams.create_team(db, bob, challenge, "Bravo", True)
    bob_headers = token_for(db, bob)
    sub_id = upload(client, alice_headers, b"det_000.jpg,1,2,3,4,cat,0.5\n").get_json()["id"]
    run_worker(app)
    for path in (
        f"/api/v1/submissions/{sub_id}",
        f"/api/v1/submissions/{sub_id}/cancel",
        f"/api/v1/submissions/{sub_id}/final",
    ):
        method = client.get if path.endswith(str(sub_id)) else client.post
        response = method(path, headers=bob_headers, json={})
        assert response.status_code == 404, path
        assert "cat" not in response.get_data(as_text=True), "no error text of another team leaks"
    assert client.get("/api/v1/challenges/tiny/submissions", headers=bob_headers).get_json() == []
    page = client.get(f"/submissions/{sub_id}/status", headers=bob_headers)
    assert page.status_code in (302, 404)


def test_participants_never_reach_organizer_endpoints(client, db, challenge, team_user):
    _user, headers, team = team_user
    phase, track = challenge.phases[0], challenge.tracks[0]
    for method, path in [
        ("patch", f"/api/v1/admin/phases/{phase.id}"),
        ("post", f"/api/v1/admin/tracks/{track.id}/labels"),
        ("post", f"/api/v1/admin/tracks/{track.id}/rescore"),
        ("post", f"/api/v1/admin/teams/{team.id}/ban"),
        ("post", "/api/v1/admin/submissions/1/disqualify"),
        ("post", "/api/v1/admin/baselines"),
    ]:
        response = getattr(client, method)(path, headers=headers, json={"reason": "x"})
        assert response.status_code == 403, path
        assert response.get_json()["message"] == "organizers only"


def test_organizer_endpoints_phase_moderation_and_audit(client, db, challenge, team_user):
    from arena.models import AuditEvent

    organizer = make_user(db, "org@example.com", organizer=True)
    headers = token_for(db, organizer)
    _user, _headers, team = team_user
    phase = challenge.phases[0]
    extended = client.patch(
        f"/api/v1/admin/phases/{phase.id}",
        headers=headers,
        json={"ends_at": "2099-06-01T00:00:00Z", "reason": "more time"},
    )
    assert extended.status_code == 200 and extended.get_json()["ends_at"].startswith("2099-06-01")
    no_reason = client.post(f"/api/v1/admin/teams/{team.id}/ban", headers=headers, json={})
    assert no_reason.status_code == 400 and no_reason.get_json()["field"] == "reason"
    banned = client.post(f"/api/v1/admin/teams/{team.id}/ban", headers=headers, json={"reason": "cheating"})
    assert banned.get_json()["status"] == "banned"
    events = {(e.action, e.reason) for e in db.query(AuditEvent).all()}
    assert ("phase.update", "more time") in events and ("team.ban", "cheating") in events


@pytest.mark.parametrize(
    ("body", "field"),
    [({"ends_at": "tomorrow"}, "ends_at"), ({"ends_at": "2000-01-01T00:00:00Z"}, "ends_at"), ({"color": 1}, "color")],
)
def test_phase_updates_are_validated(client, db, challenge, body, field):
    headers = token_for(db, make_user(db, "org@example.com", organizer=True))
    response = client.patch(f"/api/v1/admin/phases/{challenge.phases[0].id}", headers=headers, json=body)
    assert response.status_code == 400 and response.get_json()["field"] == field


def test_upload_errors_name_the_problem(client, db, data, team_user):
    _user, headers, _team = team_user
    missing = client.post("/api/v1/challenges/tiny/submissions", headers=headers, data={"phase": "dev"})
    assert missing.status_code == 400 and missing.get_json()["field"] == "file"
    wrong_track = upload(client, headers, data.detection_csv(), track="nope")
    assert wrong_track.status_code == 404 and "no track 'nope'" in wrong_track.get_json()["message"]
    wrong_phase = upload(client, headers, data.detection_csv(), phase="nope")
    assert wrong_phase.status_code == 404 and wrong_phase.get_json()["field"] == "phase"
    empty = upload(client, headers, b"")
    assert empty.status_code == 400 and "empty" in empty.get_json()["message"]


def test_an_upload_over_the_tracks_cap_is_refused_and_leaves_no_file(app, client, db, challenge, team_user):
    _user, headers, _team = team_user
    challenge.tracks[0].max_upload_bytes = 1000
    db.commit()
    response = upload(client, headers, b"x" * 5000)
    assert response.status_code == 413 and "limit of 1,000 bytes" in response.get_json()["message"]
    from pathlib import Path

    assert not list((Path(app.config["STORAGE_DIR"]) / "submissions").glob("*"))


def test_a_closed_phase_refuses_uploads(client, db, data, challenge, team_user):
    _user, headers, _team = team_user
    challenge.phases[0].closed = True
    db.commit()
    response = upload(client, headers, data.detection_csv())
    assert response.status_code == 403 and "is closed" in response.get_json()["message"]


def test_the_openapi_document_lists_every_api_route(app, client):
    doc = client.get("/api/v1/openapi.json").get_json()
    assert doc["openapi"].startswith("3.")
    documented = {(path, method.upper()) for path, ops in doc["paths"].items() for method in ops}
    import re

    served = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1") and not rule.rule.endswith("openapi.json"):
            path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
            served |= {(path, m) for m in rule.methods - {"HEAD", "OPTIONS"}}
    assert served == documented


@pytest.mark.parametrize("path", ["/api/v1/submissions/99999999999999999999999", "/api/v1/submissions/2147483648"])
def test_ids_past_the_integer_range_are_not_found(client, db, team_user, path):
    _user, headers, _team = team_user
    response = client.get(path, headers=headers)
    assert response.status_code == 404 and response.is_json


def test_the_interactive_docs_are_served_from_the_installed_package_without_a_cdn(client):
    import re

    page = client.get("/api/docs", follow_redirects=True)
    assert page.status_code == 200 and "swagger-ui" in page.get_data(as_text=True)
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.get_data(as_text=True))
    assert assets and not [a for a in assets if "//" in a]  # every asset is relative: served by this app
    for asset in assets:
        assert client.get(f"/api/docs/{asset}").status_code == 200, asset
    assert "/api/docs" in client.get("/").get_data(as_text=True)  # the pages link the docs


def test_the_document_is_generated_from_the_models(client):
    """A route's request model is its document's schema: the types, the required fields and the bounds."""
    doc = client.get("/api/v1/openapi.json").get_json()
    body = doc["paths"]["/api/v1/teams/{team_id}/captain"]["post"]["requestBody"]["content"]["application/json"]
    schema = body["schema"]
    if "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    assert schema["required"] == ["user_id"]
    assert schema["properties"]["user_id"]["type"] == "integer"
    assert schema["properties"]["user_id"]["maximum"] == 2**31 - 1
