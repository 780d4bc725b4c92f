"""Organizer exports: participants, all submissions and the final standings, as CSV (streamed) and JSON, for
organizers only."""

from __future__ import annotations

import csv
import io

import pytest
from arena import states
from arena.models import Submission
from arena.services import teams
from arena_testkit import finished_submission, make_user, token_for


@pytest.fixture
def contest(db, challenge):
    """Two teams (Alpha of two members, Beta of one) with scored submissions, a failed one and a baseline."""
    alice, bob, carol = (make_user(db, f"{n}@example.com") for n in ("alice", "bob", "carol"))
    alpha = teams.create_team(db, alice, challenge, "Alpha", True)
    teams.join_team(db, bob, challenge, alpha.invite_code, True)
    beta = teams.create_team(db, carol, challenge, "Beta", True)
    phase, det = challenge.phases[0], challenge.tracks[0]
    finished_submission(db, alpha, phase, det, 0.7, 0.6, 1)
    finished_submission(db, beta, phase, det, 0.8, 0.5, 2, selected_final=True)
    finished_submission(db, None, phase, det, 0.75, 0.55, 3, is_baseline=True, baseline_name="R50")
    db.add(Submission(team_id=beta.id, phase_id=phase.id, track_id=det.id, state=states.FAILED, error="bad line 3"))
    db.commit()
    org = make_user(db, "org@example.com", organizer=True)
    return {"alpha": alpha, "beta": beta, "headers": token_for(db, org)}


def _csv(response) -> list[dict]:
    assert response.status_code == 200 and response.mimetype == "text/csv", response.get_data(as_text=True)
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


def test_participants_export_lists_every_member_with_team_id_and_email(client, contest):
    rows = _csv(client.get("/api/v1/admin/challenges/tiny/exports/participants?format=csv", headers=contest["headers"]))
    assert [(r["team_id"], r["team_name"], r["email"], r["captain"]) for r in rows] == [
        (str(contest["alpha"].id), "Alpha", "alice@example.com", "True"),
        (str(contest["alpha"].id), "Alpha", "bob@example.com", "False"),
        (str(contest["beta"].id), "Beta", "carol@example.com", "True"),
    ]
    assert "country" not in rows[0]  # not collected at registration


def test_submissions_export_has_every_state_and_score(client, contest):
    answer = client.get("/api/v1/admin/challenges/tiny/exports/submissions", headers=contest["headers"])
    rows = answer.get_json()["submissions"]
    assert [r["state"] for r in rows] == ["finished", "finished", "finished", "failed"]
    assert rows[0]["public_score"] == 0.7 and rows[0]["label_versions"] == "detection_gt:1"
    assert rows[2]["baseline_name"] == "R50" and rows[3]["error"] == "bad line 3"
    lines = _csv(client.get("/api/v1/admin/challenges/tiny/exports/submissions?format=csv", headers=contest["headers"]))
    assert len(lines) == 4 and lines[1]["team_name"] == "Beta" and lines[1]["selected_final"] == "True"


def test_standings_export_follows_the_board_order_with_members_and_finals(client, contest):
    rows = client.get("/api/v1/admin/challenges/tiny/exports/standings", headers=contest["headers"]).get_json()
    public = [r for r in rows["standings"] if r["split"] == "public"]
    assert [(r["rank"], r["name"]) for r in public] == [(1, "Beta"), (None, "R50"), (2, "Alpha")]
    assert public[2]["members"] == ["alice@example.com", "bob@example.com"] and public[0]["final"] is True
    private = [r for r in rows["standings"] if r["split"] == "private"]
    assert [(r["rank"], r["name"]) for r in private] == [(1, "Alpha"), (None, "R50"), (2, "Beta")]
    lines = _csv(client.get("/api/v1/admin/challenges/tiny/exports/standings?format=csv", headers=contest["headers"]))
    assert lines[2]["members"] == "alice@example.com;bob@example.com"


def test_the_exports_are_on_the_console_pages_and_for_organizers_only(client, db, contest):
    from arena_testkit import PASSWORD

    assert client.get("/api/v1/admin/challenges/tiny/exports/standings").status_code == 401
    alice = client.post("/api/v1/tokens", json={"email": "alice@example.com", "password": PASSWORD}).get_json()
    participant = {"Authorization": f"Bearer {alice['token']}"}
    assert client.get("/api/v1/admin/challenges/tiny/exports/standings", headers=participant).status_code == 403
    assert client.get("/admin/c/tiny/export/participants.csv").status_code == 302  # to the login page
    client.post("/login", data={"email": "org@example.com", "password": PASSWORD})
    page = client.get("/admin/c/tiny").get_data(as_text=True)
    assert "/admin/c/tiny/export/standings.csv" in page
    assert len(_csv(client.get("/admin/c/tiny/export/participants.csv"))) == 3
    assert client.get("/admin/c/tiny/export/participants.xml").status_code == 404
    assert client.get("/api/v1/admin/challenges/tiny/exports/nope", headers=contest["headers"]).status_code == 400
