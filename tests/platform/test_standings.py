"""Stored standings (arena/standings.py) always equal the leaderboard query, whatever happened before: random
histories of every event that can move a board, each through the code path the platform uses, on SQLite and
PostgreSQL; the rebuild command; the concurrency of two workers finishing scores of one board."""

from __future__ import annotations

import datetime as dt
import itertools
import threading

import pytest
from arena import standings, states
from arena.errors import ArenaError
from arena.leaderboard import SPLITS, leaderboard
from arena.models import Standing, StandingBoard, Submission
from arena.services import admin, submissions, teams
from arena.standings import stored_leaderboard
from arena_testkit import make_user
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete

from tests.profiles import examples

pytestmark = pytest.mark.redis  # the rescore event enqueues on the real Redis

SCORES = st.sampled_from([0.1, 0.5, 0.5, 0.9, 0.9])
TEAM = st.integers(0, 2)
SUB = st.integers(0, 30)  # an index into the submissions made so far (modulo their number)
SUBMIT = st.tuples(st.just("submit"), st.one_of(TEAM, st.none()), SCORES, SCORES, st.integers(0, 2))
EVENT = st.one_of(
    SUBMIT,
    st.tuples(st.just("finish"), SUB, SCORES, SCORES),
    st.tuples(st.just("fail"), SUB),
    st.tuples(st.just("rescore"), st.integers(0, 1)),
    st.tuples(st.just("disqualify"), SUB),
    st.tuples(st.sampled_from(["pick", "unpick"]), SUB),
    st.tuples(st.sampled_from(["ban", "hide", "unhide", "approve"]), TEAM),
    st.tuples(st.just("merge"), TEAM, TEAM),
    st.tuples(st.just("ranking"), st.sampled_from(["best", "latest"]), st.integers(1, 3)),
)
_world = itertools.count()


def _boards_agree(db, phase, tracks) -> None:
    db.expire_all()
    for track in tracks:
        for split in SPLITS:
            assert stored_leaderboard(db, phase, track, split) == leaderboard(db, phase, track, split), (track, split)


def _fresh_world(db, challenge):
    """Three new teams (with their captains) and no submission: what each example starts from."""
    db.execute(delete(Standing))
    db.execute(delete(StandingBoard))
    db.execute(delete(Submission))
    db.commit()
    world = next(_world)
    captains = [make_user(db, f"c{world}-{i}@example.com") for i in range(3)]
    made = [teams.create_team(db, user, challenge, f"W{world} T{i}", True) for i, user in enumerate(captains)]
    phase = challenge.phases[0]
    phase.ranking, phase.final_count = "best", 2
    db.commit()
    return captains, made, phase


def _apply(db, event, ctx) -> None:
    captains, made, phase, tracks, subs, organizer, clock = ctx
    kind = event[0]
    pick = subs[event[1] % len(subs)] if subs and isinstance(event[1], int) and kind not in _TEAM_EVENTS else None
    if kind == "submit":
        _kind, team, public, private, track = event
        sub = Submission(
            team_id=None if team is None else made[team].id,
            phase_id=phase.id,
            track_id=tracks[track % len(tracks)].id,
            state=states.QUEUED,
            is_baseline=team is None,
            baseline_name=None if team is not None else "base",
            created_at=clock[0] + dt.timedelta(seconds=len(subs) // 2),  # two at a time share a moment: ties
        )
        db.add(sub)
        db.commit()
        subs.append(sub)
        _finish(db, sub, public, private)
    elif kind == "finish" and pick is not None and pick.state in states.CLAIMABLE:
        _finish(db, pick, event[2], event[3])
    elif kind == "fail" and pick is not None and pick.state in states.CLAIMABLE:
        assert states.claim(db, pick.id) is not None
        pick = db.get(Submission, pick.id, populate_existing=True)
        pick.error = "broken"
        states.transition(db, pick, states.FAILED, reason="broken")  # as jobs._fail
        db.commit()
    elif kind == "rescore":
        admin.rescore_track(db, tracks[event[1] % len(tracks)], actor_id=organizer.id, reason="labels replaced")
    elif kind == "disqualify" and pick is not None:
        admin.disqualify(db, organizer, pick, "copied")
    elif kind in ("pick", "unpick") and pick is not None and pick.team_id is not None:
        captain = next(c for c, t in zip(captains, made, strict=True) if t.id == pick.team_id)
        submissions.select_final(db, captain, pick.id, kind == "pick")
    elif kind in _TEAM_EVENTS and kind != "merge":
        admin.moderate_team(db, organizer, made[event[1]], kind, "moderation")
    elif kind == "merge" and event[1] != event[2]:
        team, target = made[event[1]], made[event[2]]
        teams.merge_teams(db, captains[event[1]], team.id, target.invite_code)
    elif kind == "ranking":
        phase.ranking, phase.final_count = event[1], event[2]  # as a reloaded bundle sets them
        db.commit()


_TEAM_EVENTS = ("ban", "hide", "unhide", "approve", "merge")


def _finish(db, sub, public, private) -> None:
    """What jobs._run does once the scorer returned: claim, store the scores, finish, commit."""
    assert states.claim(db, sub.id) is not None
    sub = db.get(Submission, sub.id, populate_existing=True)
    sub.scores = {"public": {"m": public}, "private": {"m": private}}
    sub.public_score, sub.private_score = public, private
    states.transition(db, sub, states.FINISHED)
    db.commit()


_TWO = [("submit", 0, 0.5, 0.9, 0), ("submit", 1, 0.9, 0.1, 0), ("submit", 0, 0.9, 0.5, 0)]


@settings(max_examples=examples(25), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    history=st.tuples(st.lists(SUBMIT, min_size=2, max_size=4), st.lists(EVENT, max_size=12)).map(
        lambda parts: parts[0] + parts[1]
    )
)
# every kind of event at least once, on a board that it moves
@example(history=[*_TWO, ("ban", 0), ("approve", 0)])
@example(history=[*_TWO, ("hide", 1), ("unhide", 1)])
@example(history=[*_TWO, ("disqualify", 2), ("fail", 2)])
@example(history=[*_TWO, ("pick", 0), ("pick", 1), ("unpick", 0)])
@example(history=[*_TWO, ("rescore", 0), ("finish", 1, 0.1, 0.1), ("fail", 0), ("finish", 2, 0.5, 0.1)])
@example(history=[*_TWO, ("ranking", "latest", 1), ("ranking", "best", 1)])
@example(history=[*_TWO, ("merge", 0, 1), ("submit", None, 0.9, 0.9, 0)])
def test_the_stored_standings_equal_the_query_after_every_event_of_any_history(db, challenge, history):
    organizer = make_user(db, f"org{next(_world)}@example.com", organizer=True)
    captains, made, phase = _fresh_world(db, challenge)
    tracks = list(challenge.tracks)
    ctx = (captains, made, phase, tracks, [], organizer, [dt.datetime(2024, 1, 1)])
    for event in history:
        try:
            _apply(db, event, ctx)
        except ArenaError:  # refused by the service (a pick of an unfinished submission, a merge over the cap)
            db.rollback()
        _boards_agree(db, phase, tracks)


def test_the_rebuild_command_restores_wiped_standings(app, db, challenge):
    captains, made, phase = _fresh_world(db, challenge)
    tracks = list(challenge.tracks)
    ctx = (captains, made, phase, tracks, [], make_user(db, "o@example.com", organizer=True), [dt.datetime(2024, 1, 1)])
    for event in [("submit", 0, 0.5, 0.9, 0), ("submit", 1, 0.9, 0.1, 0), ("submit", None, 0.7, 0.7, 1)]:
        _apply(db, event, ctx)
    expected = [leaderboard(db, phase, t, s) for t in tracks for s in SPLITS]
    assert expected[0].rows, "the board is not empty"
    db.execute(delete(Standing))
    db.commit()
    result = app.test_cli_runner().invoke(args=["standings", "rebuild", "--challenge", "tiny"])
    assert result.exit_code == 0 and "rebuilt the standings of 2 boards" in result.output
    db.expire_all()
    assert [stored_leaderboard(db, phase, t, s) for t in tracks for s in SPLITS] == expected


def test_the_rebuild_command_names_an_unknown_challenge(app):
    result = app.test_cli_runner().invoke(args=["standings", "rebuild", "--challenge", "nope"])
    assert result.exit_code != 0 and "no challenge 'nope'" in result.output


def test_a_label_version_switch_has_a_hook_that_recomputes_the_track(db, challenge):
    captains, made, phase = _fresh_world(db, challenge)
    tracks = list(challenge.tracks)
    ctx = (captains, made, phase, tracks, [], make_user(db, "o@example.com", organizer=True), [dt.datetime(2024, 1, 1)])
    _apply(db, ("submit", 0, 0.5, 0.5, 0), ctx)
    db.execute(delete(Standing))  # as if the scores of another label version were now active
    db.commit()
    standings.refresh_track(db, tracks[0])
    db.commit()
    _boards_agree(db, phase, tracks)


def test_a_worker_finishing_while_another_holds_the_board_recomputes_after_it_commits(app, db, challenge):
    """Worker A has written its team's row (better score) and not committed; worker B finishes another submission
    of the same team meanwhile. B waits on the board's version row, then recomputes seeing A's score: the stored
    row is A's best, as the query says (without the lock B would store its own, or collide with A's row)."""
    from arena.db import new_session

    captains, made, phase = _fresh_world(db, challenge)
    track = challenge.tracks[0]
    ctx = (captains, made, phase, [track], [], None, [dt.datetime(2024, 1, 1)])
    _apply(db, ("submit", 1, 0.2, 0.2, 0), ctx)  # the board's version row exists
    first, second = (
        Submission(team_id=made[0].id, phase_id=phase.id, track_id=track.id, state=states.QUEUED) for _ in range(2)
    )
    db.add_all([first, second])
    db.commit()
    ids = first.id, second.id
    errors = []

    def worker_b():
        with app.app_context():
            session = new_session()
            try:
                _finish(session, session.get(Submission, ids[1]), 0.5, 0.5)
            except Exception as exc:  # surfaced below
                errors.append(exc)
            finally:
                session.close()

    with app.app_context():
        session_a = new_session()
        assert states.claim(session_a, ids[0]) is not None
        sub = session_a.get(Submission, ids[0], populate_existing=True)
        sub.scores, sub.public_score, sub.private_score = {"public": {}, "private": {}}, 0.9, 0.9
        states.transition(session_a, sub, states.FINISHED)
        standings.apply_pending(session_a)  # A's row is written and the board locked, not committed
        thread = threading.Thread(target=worker_b)
        thread.start()
        thread.join(timeout=1.0)  # B runs up to the board's lock (on PostgreSQL) or to the database lock (SQLite)
        session_a.commit()
        session_a.close()
    thread.join()
    assert not errors
    _boards_agree(db, phase, [track])
    team_row = next(r for r in stored_leaderboard(db, phase, track, "public").rows if r.team_id == made[0].id)
    assert team_row.score == 0.9
