"""Hostile request shapes that schemathesis found answering 500: JSON fields of the wrong type, ids past the
database's integer range. Each is now a clear 4xx naming what is wrong."""

from __future__ import annotations

import pytest
from arena.services import teams
from arena_testkit import load_challenge, make_user, token_for

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.timeout(120)]
HUGE = 2**40


@pytest.fixture
def headers(app, db, data):
    challenge = load_challenge(db, data)
    user = make_user(db, "cap@example.com")
    teams.create_team(db, user, challenge, "Team", True)
    return token_for(db, user)


@pytest.mark.parametrize(
    ("path", "body", "field", "kind"),
    [
        ("/api/v1/register", {"email": True, "password": "long enough pass"}, "email", "a string"),
        ("/api/v1/register", {"email": "a@b.c", "password": 12345678}, "password", "a string"),
        ("/api/v1/tokens", {"email": ["x"], "password": "p"}, "email", "a string"),
        ("/api/v1/challenges/tiny/teams", {"name": {"a": 1}, "accept_rules": True}, "name", "a string"),
        ("/api/v1/challenges/tiny/teams", {"name": "N", "accept_rules": [1]}, "accept_rules", "a boolean"),
        ("/api/v1/challenges/tiny/join", {"invite_code": 5, "accept_rules": True}, "invite_code", "a string"),
        ("/api/v1/teams/1/captain", {"user_id": "two"}, "user_id", "an integer"),
        ("/api/v1/teams/1/captain", {"user_id": True}, "user_id", "an integer"),
        ("/api/v1/teams/1/merge", {"invite_code": None, "x": 1}, None, None),
    ],
)
def test_a_json_field_of_the_wrong_type_is_a_400_naming_it(client, headers, path, body, field, kind):
    response = client.post(path, json=body, headers=headers)
    assert 400 <= response.status_code < 500
    if field is not None:
        assert response.status_code == 400
        assert response.get_json() == {"error": "invalid", "message": f"'{field}' must be {kind}", "field": field}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", f"/api/v1/submissions/{HUGE}"),
        ("post", f"/api/v1/submissions/{HUGE}/cancel"),
        ("post", f"/api/v1/submissions/{HUGE}/final"),
        ("delete", f"/api/v1/tokens/{HUGE}"),
        ("post", f"/api/v1/teams/{HUGE}/members/1/remove"),
        ("get", f"/submissions/{HUGE}"),
    ],
)
def test_an_id_past_the_databases_range_is_a_404(client, headers, method, path):
    response = getattr(client, method)(path, headers=headers)
    assert response.status_code == 404


def test_a_number_past_the_databases_range_inside_a_body_is_a_400(client, headers):
    response = client.post("/api/v1/teams/1/captain", json={"user_id": HUGE}, headers=headers)
    assert response.status_code == 400 and "out of range" in response.get_json()["message"]
