"""Leaderboards: best (or latest) per team, ties to the earlier submission, baselines marked, final picks, exports,
rank history (the private board's visibility: test_phases.py)."""

from __future__ import annotations

import json

import pytest
from arena import states
from arena.leaderboard import leaderboard
from arena.models import Team
from arena.services import teams
from arena_testkit import finished_submission, make_user, run_worker, token_for, upload

pytestmark = pytest.mark.redis


@pytest.fixture
def board_setup(db, challenge):
    users = [make_user(db, f"u{i}@example.com") for i in range(3)]
    team_list = [teams.create_team(db, u, challenge, f"Team {i}", True) for i, u in enumerate(users)]
    return challenge, challenge.phases[0], challenge.tracks[0], team_list


def test_best_submission_per_team_with_ties_to_the_earlier_one(db, board_setup):
    _c, phase, track, (a, b, c) = board_setup
    finished_submission(db, a, phase, track, 0.5, 0.5, 1)
    best_a = finished_submission(db, a, phase, track, 0.8, 0.1, 2)
    finished_submission(db, b, phase, track, 0.8, 0.9, 3)  # same score, later: ranked after a
    finished_submission(db, c, phase, track, 0.9, 0.2, 4)
    rows = leaderboard(db, phase, track, "public").rows
    assert [(r.rank, r.name) for r in rows] == [(1, "Team 2"), (2, "Team 0"), (3, "Team 1")]
    assert rows[1].submission_id == best_a.id


def test_latest_ranking_takes_each_teams_newest_submission(db, board_setup):
    _c, phase, track, (a, *_rest) = board_setup
    phase.ranking = "latest"
    db.commit()
    finished_submission(db, a, phase, track, 0.9, 0.9, 1)
    newest = finished_submission(db, a, phase, track, 0.3, 0.3, 2)
    (row,) = leaderboard(db, phase, track, "public").rows
    assert row.submission_id == newest.id


@pytest.mark.parametrize("excluded", ["failed", "disqualified", "hidden", "banned"])
def test_failed_disqualified_hidden_and_banned_are_not_on_the_board(db, board_setup, excluded):
    _c, phase, track, (a, *_rest) = board_setup
    sub = finished_submission(db, a, phase, track, 0.9, 0.9, 1)
    if excluded == "failed":
        sub.state = states.FAILED
    elif excluded == "disqualified":
        sub.disqualified_reason = "copied"
    elif excluded == "hidden":
        a.hidden = True
    else:
        a.status = "banned"
    db.commit()
    assert leaderboard(db, phase, track, "public").rows == ()


def test_baselines_are_marked_rows_that_take_no_rank(db, board_setup):
    _c, phase, track, (a, b, _c2) = board_setup
    finished_submission(db, a, phase, track, 0.9, 0.9, 1)
    finished_submission(db, None, phase, track, 0.7, 0.7, 2, is_baseline=True, baseline_name="ArcFace R50")
    finished_submission(db, b, phase, track, 0.5, 0.5, 3)
    rows = leaderboard(db, phase, track, "public").rows
    assert [(r.rank, r.name, r.is_baseline) for r in rows] == [
        (1, "Team 0", False),
        (None, "ArcFace R50", True),
        (2, "Team 1", False),
    ]


def test_private_board_uses_the_picked_finals_else_the_best_public_ones(db, board_setup):
    _c, phase, track, (a, b, _c2) = board_setup
    phase.final_count = 1
    db.commit()
    finished_submission(db, a, phase, track, 0.9, 0.1, 1)  # best public of a: its default final
    finished_submission(db, a, phase, track, 0.5, 0.95, 2)  # better private, but not picked
    finished_submission(db, b, phase, track, 0.6, 0.3, 3)
    picked = finished_submission(db, b, phase, track, 0.4, 0.8, 4, selected_final=True)
    rows = leaderboard(db, phase, track, "private").rows
    assert [(r.name, r.score) for r in rows] == [("Team 1", 0.8), ("Team 0", 0.1)]
    assert rows[0].submission_id == picked.id


def test_csv_and_json_exports(client, db, board_setup):
    _c, phase, track, (a, b, _c2) = board_setup
    finished_submission(db, a, phase, track, 0.9, 0.9, 1)
    finished_submission(db, None, phase, track, 0.7, 0.7, 2, is_baseline=True, baseline_name="Baseline one")
    text = client.get("/c/tiny/dev/detection/leaderboard.csv").get_data(as_text=True)
    lines = text.strip().splitlines()
    assert lines[0] == "rank,name,baseline,ap50,submission_id,submitted_at,entries,last_submission_at,members,method"
    assert lines[1].startswith("1,Team 0,0,0.900000") and lines[2].startswith(",Baseline one,1,0.700000")
    rows = client.get("/c/tiny/dev/detection/leaderboard.json").get_json()["rows"]
    assert [r["rank"] for r in rows] == [1, None]


def test_rank_history_follows_the_scored_submissions(app, client, db, data, challenge, team_user):
    _user, headers, team = team_user
    other = make_user(db, "o@example.com")
    teams.create_team(db, other, challenge, "Other", True)
    upload(client, headers, data.detection_csv(quality=0.5))
    run_worker(app)
    upload(client, token_for(db, other), data.detection_csv())
    run_worker(app)
    history = client.get(f"/api/v1/challenges/tiny/phases/dev/tracks/detection/history/{team.id}").get_json()
    assert [h["rank"] for h in history] == [1, 2]
    page = client.get("/c/tiny/dev/detection/leaderboard", headers=headers)
    assert page.status_code == 200


def test_a_score_writes_one_history_row_and_a_passed_team_ends_at_its_current_rank(app, client, db, data, challenge):
    """Three teams score in turn: three rows in all (the old rule wrote one per team whose rank moved, up to one
    per team per score), and each history is the team's rank when it scored, then its rank on the board now."""
    from arena.models import RankSnapshot

    board_url = "/api/v1/challenges/tiny/phases/dev/tracks/detection/leaderboard"
    team_ids, rank_when_scored = [], []
    for name, quality in (("Ann", 0.6), ("Bob", 0.8), ("Cat", 1.0)):
        user = make_user(db, f"{name.lower()}@example.com")
        team_ids.append(teams.create_team(db, user, challenge, name, True).id)
        upload(client, token_for(db, user), data.detection_csv(quality=quality))
        run_worker(app)
        rows = client.get(board_url).get_json()["rows"]
        rank_when_scored.append(next(r["rank"] for r in rows if r["team_id"] == team_ids[-1]))
    now = {r["team_id"]: r["rank"] for r in client.get(board_url).get_json()["rows"]}
    assert db.query(RankSnapshot).count() == 3
    assert sorted(now.values()) == [1, 2, 3]
    assert any(now[t] > first for t, first in zip(team_ids, rank_when_scored, strict=True))  # somebody was passed
    for team_id, first in zip(team_ids, rank_when_scored, strict=True):
        history = client.get(f"/api/v1/challenges/tiny/phases/dev/tracks/detection/history/{team_id}").get_json()
        assert [h["rank"] for h in history] == ([first] if first == now[team_id] else [first, now[team_id]])


def test_a_hidden_team_has_no_public_history(client, db, board_setup):
    _c, _phase, _track, (a, *_rest) = board_setup
    db.get(Team, a.id).hidden = True
    db.commit()
    assert client.get(f"/api/v1/challenges/tiny/phases/dev/tracks/detection/history/{a.id}").status_code == 404


def test_final_picks_are_capped(client, db, board_setup, team_user):
    _c, phase, track, _teams = board_setup
    _user, headers, team = team_user
    ids = [finished_submission(db, team, phase, track, 0.1 * i, 0.1, i).id for i in range(1, 4)]
    for sub_id in ids[:2]:
        assert client.post(f"/api/v1/submissions/{sub_id}/final", headers=headers, json={}).status_code == 200
    third = client.post(f"/api/v1/submissions/{ids[2]}/final", headers=headers, json={})
    assert third.status_code == 409 and "at most 2" in third.get_json()["message"]


def test_a_stored_board_is_reused_until_it_changes_and_never_stale(db, board_setup):
    from arena.standings import stored_leaderboard

    _c, phase, track, (a, b, _c2) = board_setup
    finished_submission(db, a, phase, track, 0.5, 0.5, 1)
    first = stored_leaderboard(db, phase, track, "public")
    assert stored_leaderboard(db, phase, track, "public") is first, "one version, one Board (renderings memoised)"
    finished_submission(db, b, phase, track, 0.9, 0.9, 2)
    assert [r.name for r in stored_leaderboard(db, phase, track, "public").rows] == ["Team 1", "Team 0"]


def test_final_picks_close_when_the_phase_ends(client, db, board_setup, team_user):
    _c, phase, track, _teams = board_setup
    _user, headers, team = team_user
    sub = finished_submission(db, team, phase, track, 0.5, 0.5, 1)
    phase.closed = True
    db.commit()
    response = client.post(f"/api/v1/submissions/{sub.id}/final", headers=headers, json={})
    assert response.status_code == 403 and "close when the phase ends" in response.get_json()["message"]


@pytest.mark.parametrize("state", [states.RESCORING, states.QUEUED, states.RUNNING])
def test_a_submission_being_rescored_keeps_its_row(db, board_setup, state):
    _c, phase, track, (a, *_rest) = board_setup
    sub = finished_submission(db, a, phase, track, 0.7, 0.7, 1)
    sub.state = state
    fresh = finished_submission(db, a, phase, track, None, None, 2)
    fresh.state = state  # a first run has no score yet: not on the board
    db.commit()
    rows = leaderboard(db, phase, track, "public").rows
    assert [(r.submission_id, r.score) for r in rows] == [(sub.id, 0.7)]


def test_a_cached_board_is_rendered_once_and_the_page_still_marks_my_team(client, db, board_setup, team_user):
    from arena import leaderboard as lb

    _c, phase, track, (a, *_rest) = board_setup
    _user, headers, team = team_user
    finished_submission(db, team, phase, track, 0.5, 0.5, 1)
    board = lb.leaderboard(db, phase, track, "public")
    calls = []
    assert lb.memo(board, "x", lambda: calls.append(1) or "body") == lb.memo(board, "x", lambda: calls.append(1))
    assert calls == [1]
    client.post("/login", data={"email": "alice@example.com", "password": "correct horse battery"})
    page = client.get("/c/tiny/dev/detection/leaderboard").get_data(as_text=True)
    assert f'tr[data-team="{team.id}"]' in page and f'data-team="{team.id}"' in page


def test_the_board_api_and_page_answer_304_until_the_board_changes(client, db, board_setup, team_user):
    _c, phase, track, (a, b, _c2) = board_setup
    finished_submission(db, a, phase, track, 0.5, 0.5, 1)
    api = "/api/v1/challenges/tiny/phases/dev/tracks/detection/leaderboard"
    first = client.get(api)
    etag = first.headers["ETag"]
    assert first.status_code == 200 and etag.startswith('W/"')
    again = client.get(api, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.get_data() == b""
    csv_tag = client.get(api + "?format=csv").headers["ETag"]
    assert csv_tag != etag, "each format has its own tag"
    page = client.get("/c/tiny/dev/detection/leaderboard")
    assert (
        client.get("/c/tiny/dev/detection/leaderboard", headers={"If-None-Match": page.headers["ETag"]}).status_code
        == 304
    )
    client.post("/login", data={"email": "alice@example.com", "password": "correct horse battery"})
    mine = client.get("/c/tiny/dev/detection/leaderboard", headers={"If-None-Match": page.headers["ETag"]})
    assert mine.status_code == 200, "a signed-in viewer sees their team marked: another page, another tag"
    finished_submission(db, b, phase, track, 0.9, 0.9, 2)
    changed = client.get(api, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag
    assert [r["name"] for r in changed.get_json()["rows"]] == ["Team 1", "Team 0"]


def test_the_openapi_document_declares_the_boards_304():
    from arena import create_app

    app = create_app({"TESTING": True, "SECRET_KEY": "x", "DATABASE_URL": "sqlite://"})
    document = app.test_client().get("/api/v1/openapi.json").get_json()
    (operation,) = [
        paths["get"] for path, paths in document["paths"].items() if path.endswith("/tracks/{track_slug}/leaderboard")
    ]
    assert "304" in operation["responses"]


def test_a_large_board_is_sent_gzip_compressed_to_a_client_that_accepts_it(client, db, board_setup, monkeypatch):
    import gzip
    import json

    from arena import boards

    monkeypatch.setattr(boards, "GZIP_MIN_BYTES", 10)  # three rows stand for the 5,000 of a real board
    _c, phase, track, teams_ = board_setup
    for minute, team in enumerate(teams_):
        finished_submission(db, team, phase, track, 0.1 * (minute + 1), 0.5, minute)
    api = "/api/v1/challenges/tiny/phases/dev/tracks/detection/leaderboard"
    plain = client.get(api)
    packed = client.get(api, headers={"Accept-Encoding": "gzip, deflate"})
    assert "Content-Encoding" not in plain.headers and packed.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in packed.headers["Vary"]
    assert json.loads(gzip.decompress(packed.get_data())) == plain.get_json()
    assert packed.headers["ETag"] == plain.headers["ETag"], "a weak tag: the same board either way"


def test_an_unchanged_board_costs_one_query_per_request(app, client, db, board_setup):
    """The challenge, phase, track and the stored board's version come in one statement; the board itself is the
    process's copy of that version (boards.board_for, standings.stored_leaderboard). After a change: read again."""
    from sqlalchemy import event

    _c, phase, track, team_list = board_setup
    for i, team in enumerate(team_list):
        finished_submission(db, team, phase, track, 0.1 * (i + 1), 0.1, i)
    url = f"/api/v1/challenges/tiny/phases/{phase.slug}/tracks/{track.slug}/leaderboard"
    statements: list[str] = []
    engine = app.extensions["arena.engine"]
    listener = lambda _conn, _cursor, sql, *_rest: statements.append(sql)  # noqa: E731
    event.listen(engine, "before_cursor_execute", listener)
    try:
        first = client.get(url)
        statements.clear()
        again = client.get(url)
        assert len(statements) == 1, statements
        assert again.get_json()["rows"] == first.get_json()["rows"] and len(first.get_json()["rows"]) == 3
        finished_submission(db, team_list[0], phase, track, 0.9, 0.1, 9)
        changed = client.get(url).get_json()["rows"]
        assert changed[0]["team_id"] == team_list[0].id  # the new best is read, never a stale copy
    finally:
        event.remove(engine, "before_cursor_execute", listener)


def test_query_models_generate_their_schema_once_and_no_caller_can_change_it():
    from arena.api import BoardQuery

    shared = BoardQuery.model_json_schema()  # what flask-openapi3 reads on every request: one read-only object
    assert BoardQuery.model_json_schema() is shared
    with pytest.raises(TypeError):
        shared["properties"]["limit"] = {}
    with pytest.raises(AttributeError):  # lists are tuples
        shared["properties"]["split"]["enum"].append("x")
    copied = BoardQuery.model_json_schema(mode="validation")  # the OpenAPI document's call: a copy of its own
    copied["properties"].clear()
    assert BoardQuery.model_json_schema(mode="validation")["properties"]
    assert BoardQuery.model_json_schema(mode="validation") == json.loads(json.dumps(shared, default=dict))
