"""The challenge dashboard: teams, active teams, submissions per day per track, failures by reason, the queue."""

from __future__ import annotations

import datetime as dt

from arena import dashboard, states
from arena.models import Submission, utcnow
from arena.services import teams
from arena_testkit import PASSWORD, finished_submission, make_user, token_for


def test_the_dashboard_counts_teams_activity_submissions_and_failures(app, client, db, challenge):
    alice, bob, carol = (make_user(db, f"{n}@example.com") for n in ("alice", "bob", "carol"))
    alpha = teams.create_team(db, alice, challenge, "Alpha", True)
    beta = teams.create_team(db, bob, challenge, "Beta", True)
    teams.create_team(db, carol, challenge, "Gamma", True)  # never submits
    beta.status = "banned"
    phase, det, rec = challenge.phases[0], challenge.tracks[0], challenge.tracks[1]
    old = finished_submission(db, beta, phase, det, 0.5, 0.5, 1)  # 2024: not active now
    today = utcnow()
    for error in ("line 3: bad box", "line 3: bad box", "too many boxes"):
        db.add(Submission(team_id=alpha.id, phase_id=phase.id, track_id=rec.id, state=states.FAILED, error=error))
    db.add(Submission(team_id=alpha.id, phase_id=phase.id, track_id=det.id, state=states.QUEUED))
    db.commit()
    dash = dashboard.summary(db, challenge, now=today)
    assert dash.teams == 3 and dash.teams_by_status == {"approved": 2, "banned": 1}
    assert dash.active_teams == 1 and dash.submitting_teams == 2  # Alpha uploaded today, Beta only in 2024
    assert dash.submissions == 5 and dash.by_state == {"failed": 3, "finished": 1, "queued": 1}
    day = today.date().isoformat()
    assert dash.per_day == {"detection": {day: 1}, "recognition": {day: 3}}  # 2024 is outside the last 30 days
    assert dash.failures == [("line 3: bad box", 2), ("too many boxes", 1)]
    assert 'id="per-day-chart"' in dash.chart and "recognition: 3" in dash.chart
    assert old.created_at < today - dt.timedelta(days=dashboard.DAYS)

    headers = token_for(db, make_user(db, "org@example.com", organizer=True))
    answer = client.get("/api/v1/admin/challenges/tiny/dashboard", headers=headers).get_json()
    assert answer["active_teams"] == 1 and answer["per_day"]["recognition"] == [{"day": day, "count": 3}]
    assert answer["queue"]["error"] is None and answer["queue"]["queued"] == 0  # rows made here were not enqueued
    client.post("/login", data={"email": "org@example.com", "password": PASSWORD})
    page = client.get("/admin/c/tiny").get_data(as_text=True)
    assert 'id="dash-active">1<' in page and "line 3: bad box" in page and "<svg" in page
