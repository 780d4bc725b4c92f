"""Teams: one per person per challenge, the size cap under concurrent joins, captaincy, merges within the limits."""

from __future__ import annotations

import threading

import pytest
from arena.errors import Conflict, Forbidden, Invalid, NotFound
from arena.models import Membership, Submission
from arena.services import teams
from arena_testkit import load_challenge, make_user, token_for, upload

pytestmark = pytest.mark.redis


@pytest.fixture
def challenge2(app, db, data):
    return load_challenge(db, data, team_size=2, per_day=2, total=3, in_flight=2)


def test_one_team_per_person_per_challenge(db, challenge2):
    user = make_user(db, "a@example.com")
    teams.create_team(db, user, challenge2, "One", True)
    with pytest.raises(Conflict, match="one team per person"):
        teams.create_team(db, user, challenge2, "Two", True)
    other = teams.create_team(db, make_user(db, "b@example.com"), challenge2, "Other", True)
    with pytest.raises(Conflict, match="one team per person"):
        teams.join_team(db, user, challenge2, other.invite_code, True)


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"accept_rules": False}, Invalid, "accept the challenge's rules"),
        ({"name": "x"}, Invalid, "2 to 100 characters"),
        ({"verified": False}, Forbidden, "verify your email"),
    ],
)
def test_creating_a_team_needs_rules_a_name_and_a_verified_email(db, challenge2, kwargs, error, words):
    user = make_user(db, "a@example.com", verified=kwargs.get("verified", True))
    with pytest.raises(error, match=words):
        teams.create_team(db, user, challenge2, kwargs.get("name", "Good name"), kwargs.get("accept_rules", True))


def test_registration_window_is_enforced(db, challenge2):
    import datetime as dt

    challenge2.registration_closes = dt.datetime(2000, 1, 1)
    db.commit()
    with pytest.raises(Forbidden, match="registration closed"):
        teams.create_team(db, make_user(db, "a@example.com"), challenge2, "Late", True)


def test_unknown_invite_code_is_not_found(db, challenge2):
    with pytest.raises(NotFound, match="invite code"):
        teams.join_team(db, make_user(db, "a@example.com"), challenge2, "nope", True)


def test_team_size_cap_holds_under_concurrent_joins(app, db, challenge2):
    """Six people join a team of cap 2 at the same instant: exactly one gets in (the captain is the first)."""
    from arena.db import new_session

    team = teams.create_team(db, make_user(db, "cap@example.com"), challenge2, "Full", True)
    joiners = [make_user(db, f"j{i}@example.com") for i in range(6)]
    outcomes, barrier = [], threading.Barrier(len(joiners))

    def join(user_id):
        with app.app_context():
            session = new_session()
            from arena.models import Challenge, User

            user, challenge = session.get(User, user_id), session.get(Challenge, challenge2.id)
            barrier.wait()
            try:
                teams.join_team(session, user, challenge, team.invite_code, True)
                outcomes.append("joined")
            except Conflict:
                outcomes.append("full")
            finally:
                session.close()

    threads = [threading.Thread(target=join, args=(u.id,)) for u in joiners]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["full"] * 5 + ["joined"]
    db.expire_all()
    assert db.query(Membership).filter_by(team_id=team.id).count() == 2


def test_captain_removes_members_and_hands_over_captaincy(db, challenge2):
    captain, member = make_user(db, "cap@example.com"), make_user(db, "m@example.com")
    team = teams.create_team(db, captain, challenge2, "Tee", True)
    teams.join_team(db, member, challenge2, team.invite_code, True)
    with pytest.raises(Forbidden, match="captain"):
        teams.remove_member(db, member, team.id, captain.id)
    teams.transfer_captaincy(db, captain, team.id, member.id)
    db.refresh(team)
    assert team.captain_id == member.id
    teams.remove_member(db, member, team.id, captain.id)
    assert [m.user_id for m in teams.members(db, team)] == [member.id]


@pytest.mark.parametrize(
    ("problem", "error", "words"),
    [("deadline", Forbidden, "merge deadline"), ("size", Conflict, "cap is 2"), ("limits", Conflict, "limits")],
)
def test_merges_are_refused_past_the_deadline_the_size_cap_or_the_limits(
    app, client, db, data, challenge2, problem, error, words
):
    import datetime as dt

    a_cap, b_cap = make_user(db, "a@example.com"), make_user(db, "b@example.com")
    team_a = teams.create_team(db, a_cap, challenge2, "Team A", True)
    team_b = teams.create_team(db, b_cap, challenge2, "Team B", True)
    if problem == "deadline":
        challenge2.merge_deadline = dt.datetime(2000, 1, 1)
        db.commit()
    elif problem == "size":
        teams.join_team(db, make_user(db, "c@example.com"), challenge2, team_b.invite_code, True)
    else:  # 2 + 2 uploads today: more than the daily limit of 2 of the merged team
        for cap in (a_cap, b_cap):
            headers = token_for(db, cap)
            for _ in range(2):
                response = upload(client, headers, data.detection_csv())
                assert response.status_code == 202, (cap.email, _, response.get_json())
    with pytest.raises(error, match=words):
        teams.merge_teams(db, a_cap, team_a.id, team_b.invite_code)


def test_a_merge_moves_members_and_submissions(client, db, data, challenge2):
    a_cap, b_cap = make_user(db, "a@example.com"), make_user(db, "b@example.com")
    team_a = teams.create_team(db, a_cap, challenge2, "Team A", True)
    team_b = teams.create_team(db, b_cap, challenge2, "Team B", True)
    sub_id = upload(client, token_for(db, a_cap), data.detection_csv()).get_json()["id"]
    merged = teams.merge_teams(db, a_cap, team_a.id, team_b.invite_code)
    db.expire_all()
    assert merged.id == team_b.id
    assert {m.user_id for m in teams.members(db, team_b)} == {a_cap.id, b_cap.id}
    assert db.get(Submission, sub_id).team_id == team_b.id
    assert db.get(type(team_a), team_a.id).hidden
