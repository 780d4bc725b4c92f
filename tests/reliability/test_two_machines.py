"""Two worker machines (docs/operations.md, "A contest of 5,000 teams"): two `arena worker` processes, each with
an instance folder of its own, share one PostgreSQL, one Redis and one storage folder, as two machines would."""

from __future__ import annotations

import pytest
from arena import states
from arena.leaderboard import SPLITS, leaderboard
from arena.models import Submission
from arena.queue import connect
from arena.standings import stored_leaderboard
from arena_testkit import upload
from reliability_kit import wait_for
from rq import Worker
from rq.job import Job

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow, pytest.mark.timeout(240)]


def test_two_workers_with_their_own_instance_folders_score_one_queue_once_each(
    app, client, db, data, team, workers, tmp_path
):
    machines = [tmp_path / "machine-a", tmp_path / "machine-b"]
    procs = [workers.start("--watchdog-every", "0.5", ARENA_INSTANCE=str(folder)) for folder in machines]
    conn = connect(app)
    wait_for(
        lambda: len(Worker.all(connection=conn, queue=None)) >= 2,
        60,
        f"both workers to listen; logs:\n{workers.log(procs[0])}\n{workers.log(procs[1])}",
    )
    _challenge, _team, headers = team
    ids = []
    for k in range(6):  # both tracks: each machine parses the hidden labels into its own cache
        if k % 2:
            response = upload(client, headers, data.features(k % 4 == 1), track="recognition", name=f"f{k}.bin")
        else:
            response = upload(client, headers, data.detection_csv(quality=0.5 + k / 20))
        ids.append(response.get_json()["id"])

    def scored():
        db.expire_all()
        return all(db.get(Submission, i).state == states.FINISHED for i in ids)

    wait_for(scored, 120, f"every submission scored; logs:\n{workers.log(procs[0])}\n{workers.log(procs[1])}")
    db.expire_all()
    subs = [db.get(Submission, i) for i in ids]
    assert all(s.attempts == 1 for s in subs), "each scored once"
    by_worker = {Job.fetch(s.job_id, connection=conn).worker_name for s in subs}
    assert len(by_worker) == 2, f"both machines scored: {by_worker}"
    assert all(folder.is_dir() for folder in machines), "each machine made its own instance folder"
    assert not any((folder / "storage").exists() for folder in machines), "files live in the shared folder only"
    phase = subs[0].phase
    for track in phase.challenge.tracks:  # both machines wrote the stored boards: they still equal the query
        for split in SPLITS:
            assert stored_leaderboard(db, phase, track, split) == leaderboard(db, phase, track, split)
