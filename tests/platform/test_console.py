"""The organizer console: teams, submissions and audit lists filtered and paginated in the database (pages and API),
actions offered and accepted only where the state allows them, messages that say what was done, the confirmation
step of destructive forms, and every id an admin endpoint takes found in some API answer."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from arena import states
from arena.models import AuditEvent, Submission, Team
from arena.services import admin, teams
from arena_testkit import PASSWORD, finished_submission, make_user, token_for
from sqlalchemy import event


@pytest.fixture
def organizer(db):
    user = make_user(db, "org@example.com", organizer=True)
    return user, token_for(db, user)


@pytest.fixture
def org_client(client, organizer):
    client.post("/login", data={"email": "org@example.com", "password": PASSWORD})
    return client


def _teams(db, challenge, n: int) -> list[Team]:
    made = []
    for i in range(n):
        user = make_user(db, f"member{i}@example.com")
        made.append(teams.create_team(db, user, challenge, f"Team {i:02d}", True))
    return made


def _phase_track(challenge):
    return challenge.phases[0], challenge.tracks[0]


# --------------------------------------------------------------------------------------------------- lists


def test_teams_are_filtered_by_state_and_name_and_paged_newest_first(db, client, challenge, organizer):
    _org, headers = organizer
    made = _teams(db, challenge, 5)
    made[1].status = "banned"
    made[2].hidden = True
    db.commit()
    url = "/api/v1/admin/challenges/tiny/teams"
    first = client.get(f"{url}?size=2", headers=headers).get_json()
    assert [t["name"] for t in first["teams"]] == ["Team 04", "Team 03"] and first["after"] is None
    second = client.get(f"{url}?size=2&before={first['before']}", headers=headers).get_json()
    assert [t["name"] for t in second["teams"]] == ["Team 02", "Team 01"]
    back = client.get(f"{url}?size=2&after={second['after']}", headers=headers).get_json()
    assert [t["name"] for t in back["teams"]] == ["Team 04", "Team 03"]
    last = client.get(f"{url}?size=2&before={second['before']}", headers=headers).get_json()
    assert [t["name"] for t in last["teams"]] == ["Team 00"] and last["before"] is None
    banned = client.get(f"{url}?state=banned", headers=headers).get_json()["teams"]
    assert [(t["name"], t["actions"]) for t in banned] == [("Team 01", ["unban", "hide"])]
    assert [t["name"] for t in client.get(f"{url}?state=hidden", headers=headers).get_json()["teams"]] == ["Team 02"]
    assert [t["name"] for t in client.get(f"{url}?q=m%2003", headers=headers).get_json()["teams"]] == ["Team 03"]
    assert client.get(f"{url}?q=%25", headers=headers).get_json()["teams"] == []  # % is a character, not a wildcard
    assert first["teams"][0]["members"] == 1 and first["teams"][0]["submissions"] == 0


@pytest.mark.parametrize(
    ("query", "field"),
    [("size=0", "size"), ("size=201", "size"), ("state=sleeping", "state"), ("before=x", "before")],
)
def test_a_bad_list_parameter_is_a_400_naming_it(client, challenge, organizer, query, field):
    _org, headers = organizer
    response = client.get(f"/api/v1/admin/challenges/tiny/teams?{query}", headers=headers)
    assert response.status_code == 400 and field in response.get_data(as_text=True)


def test_an_empty_filter_of_the_form_means_no_filter(org_client, client, challenge, organizer):
    _org, headers = organizer
    assert org_client.get("/admin/c/tiny/teams?state=&q=&size=").status_code == 200
    query = "state=&phase=&track=&team_id=&since=&until=&size="
    assert org_client.get(f"/admin/c/tiny/submissions?{query}").status_code == 200
    assert org_client.get("/admin/audit?scope=&actor=&kind=&object_type=&object_id=").status_code == 200
    assert client.get("/api/v1/admin/challenges/tiny/teams?q=", headers=headers).status_code == 200
    assert client.get(f"/api/v1/admin/challenges/tiny/teams?q={'x' * 201}", headers=headers).status_code == 400


def test_a_bad_filter_on_a_page_is_a_400_page_naming_it(org_client, challenge):
    response = org_client.get("/admin/c/tiny/submissions?track=nope")
    assert response.status_code == 400 and "no track &#39;nope&#39;" in response.get_data(as_text=True)
    assert org_client.get("/admin/c/tiny/teams?size=-1").status_code == 400


def test_submissions_are_filtered_by_state_team_track_phase_and_date(db, client, challenge, organizer):
    _org, headers = organizer
    alpha, beta = _teams(db, challenge, 2)
    phase, det = _phase_track(challenge)
    a1 = finished_submission(db, alpha, phase, det, 0.5, 0.5, 1)
    b1 = finished_submission(db, beta, phase, det, 0.6, 0.6, 2)
    failed = Submission(team_id=beta.id, phase_id=phase.id, track_id=challenge.tracks[1].id, state=states.FAILED)
    failed.created_at = dt.datetime(2024, 1, 3)
    db.add(failed)
    db.commit()
    url = "/api/v1/admin/challenges/tiny/submissions"

    def ids(query: str) -> list[int]:
        answer = client.get(f"{url}?{query}", headers=headers)
        assert answer.status_code == 200, answer.get_data(as_text=True)
        return [s["id"] for s in answer.get_json()["submissions"]]

    assert ids("") == [failed.id, b1.id, a1.id]
    assert ids("state=failed") == [failed.id]
    assert ids(f"team_id={alpha.id}") == [a1.id]
    assert ids("track=detection") == [b1.id, a1.id]
    assert ids("phase=dev&track=recognition") == [failed.id]
    assert ids("since=2024-01-02") == [failed.id] and ids("until=2024-01-01") == [b1.id, a1.id]
    assert ids("size=1") == [failed.id]
    row = client.get(f"{url}?state=finished&size=1", headers=headers).get_json()["submissions"][0]
    assert row["phase_id"] == phase.id and row["track_id"] == det.id and row["can_disqualify"] is True
    assert client.get(f"{url}?phase=nope", headers=headers).status_code == 400


def test_a_page_of_submissions_costs_the_same_queries_whatever_its_size(app, db, org_client, challenge, engine):
    """No query per row: the team, phase and track of every row come with the page."""
    made = _teams(db, challenge, 6)
    phase, det = _phase_track(challenge)
    for minute, team in enumerate(made):
        finished_submission(db, team, phase, det, 0.1 * minute, 0.1, minute)
    counted = []

    def count(*_args):
        counted[-1] += 1

    event.listen(engine, "before_cursor_execute", count)
    try:
        for size in (1, 6):
            counted.append(0)
            page = org_client.get(f"/admin/c/tiny/submissions?size={size}").get_data(as_text=True)
            assert page.count("data-submission=") == size
            counted.append(0)
            assert org_client.get(f"/admin/c/tiny/teams?size={size}").get_data(as_text=True).count("data-team=") == size
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert counted[0] == counted[2] and counted[1] == counted[3], counted


def test_the_audit_log_shows_actions_apart_from_state_changes_readably(db, client, org_client, challenge, organizer):
    org, headers = organizer
    (alpha,) = _teams(db, challenge, 1)
    phase, det = _phase_track(challenge)
    sub = finished_submission(db, alpha, phase, det, 0.5, 0.5, 1)
    states.transition(db, sub, states.RESCORING)
    db.commit()
    admin.moderate(db, org, alpha, "ban", "cheating")
    url = "/api/v1/admin/audit"
    actions = client.get(url, headers=headers).get_json()["events"]
    assert "submission.state" not in {e["action"] for e in actions} and actions[0]["action"] == "team.ban"
    assert actions[0]["changes"] == ["status: approved → banned"] and actions[0]["actor"] == org.email
    state_changes = client.get(f"{url}?scope=states", headers=headers).get_json()["events"]
    assert {e["action"] for e in state_changes} == {"submission.state"}
    assert state_changes[0]["changes"] == ["state: finished → rescoring"]
    assert [e["action"] for e in client.get(f"{url}?kind=team", headers=headers).get_json()["events"]] == [
        "team.ban",
        "team.create",
    ]
    assert [e["action"] for e in client.get(f"{url}?kind=team.ban", headers=headers).get_json()["events"]] == [
        "team.ban"
    ]
    by_object = client.get(f"{url}?scope=all&object_type=submission&object_id={sub.id}", headers=headers).get_json()
    assert {e["object_id"] for e in by_object["events"]} == {sub.id}
    assert client.get(f"{url}?scope=all&actor=system", headers=headers).get_json()["events"][0]["actor"] is None
    assert client.get(f"{url}?actor=nobody@example.com", headers=headers).status_code == 400
    page = org_client.get("/admin/audit?challenge=tiny").get_data(as_text=True)
    assert "status: approved → banned" in page and "{&#34;" not in page and '{"' not in page


# --------------------------------------------------------------------------------------------------- actions


@pytest.mark.parametrize(
    ("status", "hidden", "merged", "allowed"),
    [
        ("pending", False, False, ("approve", "ban", "hide")),
        ("approved", False, False, ("ban", "hide")),
        ("approved", True, False, ("ban", "unhide")),
        ("banned", False, False, ("unban", "hide")),
        ("approved", False, True, ()),
    ],
)
def test_a_team_is_offered_only_the_actions_its_state_allows(status, hidden, merged, allowed):
    team = Team(name="T", status=status, hidden=hidden, merged_into_id=7 if merged else None)
    assert admin.team_actions(team) == allowed


@pytest.mark.parametrize(("action", "status"), [("approve", "approved"), ("unban", "approved"), ("unhide", "approved")])
def test_a_disallowed_team_action_is_a_409_that_says_why(db, client, challenge, organizer, action, status):
    _org, headers = organizer
    (team,) = _teams(db, challenge, 1)
    response = client.post(f"/api/v1/admin/teams/{team.id}/{action}", json={"reason": "x"}, headers=headers)
    assert response.status_code == 409
    assert (
        "team 'Team 00' cannot be" in response.get_json()["message"]
        and "it allows: ban, hide" in response.get_json()["message"]
    )
    assert db.scalar(AuditEvent.__table__.select().where(AuditEvent.action == f"team.{action}")) is None


def test_a_ban_says_what_it_did(db, client, challenge, organizer):
    _org, headers = organizer
    (team,) = _teams(db, challenge, 1)
    phase, det = _phase_track(challenge)
    for minute in range(3):
        finished_submission(db, team, phase, det, 0.1 * minute, 0.1, minute)
    answer = client.post(f"/api/v1/admin/teams/{team.id}/ban", json={"reason": "cheating"}, headers=headers)
    assert answer.status_code == 200 and answer.get_json()["status"] == "banned"
    assert answer.get_json()["message"].startswith("Team 'Team 00' banned: its 3 finished submissions leave the boards")
    again = client.post(f"/api/v1/admin/teams/{team.id}/ban", json={"reason": "cheating"}, headers=headers)
    assert again.status_code == 409


@pytest.mark.parametrize("state", [states.CANCELLED, states.QUEUED, states.FAILED])
def test_only_a_scored_submission_can_be_disqualified(db, client, challenge, organizer, state):
    _org, headers = organizer
    (team,) = _teams(db, challenge, 1)
    phase, det = _phase_track(challenge)
    sub = Submission(team_id=team.id, phase_id=phase.id, track_id=det.id, state=state)
    db.add(sub)
    db.commit()
    response = client.post(f"/api/v1/admin/submissions/{sub.id}/disqualify", json={"reason": "x"}, headers=headers)
    assert response.status_code == 409 and f"it is {state}" in response.get_json()["message"]


def test_the_pages_offer_only_the_allowed_actions(db, org_client, challenge):
    alpha, beta = _teams(db, challenge, 2)
    beta.status = "banned"
    phase, det = _phase_track(challenge)
    finished_submission(db, alpha, phase, det, 0.5, 0.5, 1)
    db.add(Submission(team_id=alpha.id, phase_id=phase.id, track_id=det.id, state=states.CANCELLED))
    db.commit()
    page = org_client.get("/admin/c/tiny/teams").get_data(as_text=True)
    rows = dict(re.findall(r'<tr data-team="(\d+)">(.*?)</tr>', page, re.S))
    buttons = {team_id: re.findall(r'name="action" value="(\w+)"', row) for team_id, row in rows.items()}
    assert buttons == {str(alpha.id): ["ban", "hide"], str(beta.id): ["unban", "hide"]}
    page = org_client.get("/admin/c/tiny/submissions").get_data(as_text=True)
    assert page.count(">Disqualify</button>") == 1


# --------------------------------------------------------------------------------------------------- confirmation


def test_a_ban_from_the_page_is_confirmed_first_with_its_consequence(db, org_client, challenge):
    (team,) = _teams(db, challenge, 1)
    phase, det = _phase_track(challenge)
    finished_submission(db, team, phase, det, 0.5, 0.5, 1)
    form = {"what": "team", "team_id": team.id, "action": "ban", "reason": "cheating", "next": "/admin/c/tiny/teams"}
    page = org_client.post("/admin/c/tiny/action", data=form)
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and "Ban team &#39;Team 00&#39;?" in text
    assert "its 1 finished submissions leave the boards (2 board rows)" in text
    assert 'name="confirm" value="1"' in text
    db.expire_all()
    assert db.get(Team, team.id).status == "approved"
    done = org_client.post("/admin/c/tiny/action", data={**form, "confirm": "1"}, follow_redirects=True)
    assert "Team &#39;Team 00&#39; banned: its 1 finished submissions leave the boards" in done.get_data(as_text=True)
    assert done.request.path == "/admin/c/tiny/teams"
    db.expire_all()
    assert db.get(Team, team.id).status == "banned"
    refused = org_client.post("/admin/c/tiny/action", data={**form, "confirm": "1"})
    assert refused.status_code == 409 and "cannot be banned: it is banned" in refused.get_data(as_text=True)


def test_disqualify_rescore_and_closing_a_phase_are_confirmed_first(db, org_client, challenge):
    (team,) = _teams(db, challenge, 1)
    phase, det = _phase_track(challenge)
    sub = finished_submission(db, team, phase, det, 0.5, 0.5, 1)
    forms = [
        ({"what": "disqualify", "submission_id": sub.id, "reason": "copied"}, "it leaves the boards (2 board rows)"),
        ({"what": "rescore", "track_id": det.id, "reason": "new labels"}, "1 failed/finished/unscorable submissions"),
        (
            {
                "what": "phase",
                "phase_id": phase.id,
                "starts_at": "2020-01-01 00:00",
                "ends_at": "2099-01-01 00:00",
                "closed": "on",
                "reason": "deadline",
            },
            "&#39;Development&#39; closes: uploads stop",
        ),
    ]
    for form, effect in forms:
        page = org_client.post("/admin/c/tiny/action", data=form).get_data(as_text=True)
        assert 'id="confirm"' in page and effect in page, form["what"]
    db.expire_all()
    sub, phase = db.get(Submission, sub.id), db.get(type(phase), phase.id)
    assert sub.disqualified_reason is None and sub.state == states.FINISHED and not phase.closed
    done = org_client.post("/admin/c/tiny/action", data={**forms[2][0], "confirm": "1"}, follow_redirects=True)
    assert "Phase &#39;Development&#39; saved: it is closed" in done.get_data(as_text=True)


def test_a_harmless_change_needs_no_confirmation_and_says_what_was_done(db, org_client, challenge):
    (team,) = _teams(db, challenge, 1)
    form = {"what": "team", "team_id": team.id, "action": "hide", "reason": "spam"}
    done = org_client.post("/admin/c/tiny/action", data=form, follow_redirects=True).get_data(as_text=True)
    assert "Team &#39;Team 00&#39; hidden: its 0 finished submissions leave the boards" in done and "Done." not in done


def test_next_never_leaves_the_admin_pages(db, org_client, challenge):
    (team,) = _teams(db, challenge, 1)
    form = {"what": "team", "team_id": team.id, "action": "hide", "reason": "spam", "next": "//evil.example/admin/"}
    assert org_client.post("/admin/c/tiny/action", data=form).headers["Location"].endswith("/admin/c/tiny")


# --------------------------------------------------------------------------------------------------- ids


def test_every_id_an_admin_endpoint_takes_is_in_an_api_answer(app, db, client, challenge, organizer):
    """Walk the organizer routes' path parameters; each id must be found in some admin answer."""
    from arena.api import ORGANIZER, ROLE_OF

    _org, headers = organizer
    (team,) = _teams(db, challenge, 1)
    phase, det = _phase_track(challenge)
    finished_submission(db, team, phase, det, 0.5, 0.5, 1)
    found = {
        "phase_id": [
            p["id"] for p in client.get("/api/v1/admin/challenges/tiny", headers=headers).get_json()["phases"]
        ],
        "track_id": [
            t["id"] for t in client.get("/api/v1/admin/challenges/tiny", headers=headers).get_json()["tracks"]
        ],
        "version_id": [
            v["id"]
            for t in client.get("/api/v1/admin/challenges/tiny", headers=headers).get_json()["tracks"]
            for v in t["labels"]
        ],
        "team_id": [
            t["id"] for t in client.get("/api/v1/admin/challenges/tiny/teams", headers=headers).get_json()["teams"]
        ],
        "submission_id": [
            s["id"]
            for s in client.get("/api/v1/admin/challenges/tiny/submissions", headers=headers).get_json()["submissions"]
        ],
        "flag_id": "FlagOut.id of GET /admin/challenges/{slug}/flags",
    }
    assert found["phase_id"] == [phase.id] and det.id in found["track_id"] and found["version_id"]
    assert found["team_id"] == [team.id] and len(found["submission_id"]) == 1
    needed = set()
    for rule in app.url_map.iter_rules():
        if ROLE_OF.get(rule.endpoint) == ORGANIZER:
            needed |= {name for name in rule.arguments if name.endswith("_id")}
    assert needed and needed <= set(found), needed - set(found)


def test_the_label_review_states_what_an_activation_touches(db, challenge):
    from arena import labels

    (team,) = _teams(db, challenge, 1)
    phase, det = _phase_track(challenge)
    finished_submission(db, team, phase, det, 0.5, 0.5, 1)
    version = labels.versions(db, det)[0]
    assert admin.label_effect(db, version) == (
        "its 1 scored submissions are restored from their kept scores or rescored, and the track's boards "
        "(2 rows) are rebuilt on these labels"
    )
