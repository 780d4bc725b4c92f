"""Uploads scored by a real RQ worker: the job's rules (scores once, user errors vs crashes) and both tracks."""

from __future__ import annotations

import pytest
from arena import jobs, states
from arena.models import AuditEvent, Notification, Submission
from arena_testkit import run_worker, upload

pytestmark = pytest.mark.redis


def _sub(db, sub_id: int) -> Submission:
    db.expire_all()
    return db.get(Submission, sub_id)


def test_upload_answers_at_once_with_a_queued_submission_then_the_worker_scores_it(app, client, db, data, team_user):
    _user, headers, _team = team_user
    response = upload(client, headers, data.detection_csv())
    assert response.status_code == 202
    body = response.get_json()
    assert body["state"] == "queued" and body["public_score"] is None
    run_worker(app)
    sub = _sub(db, body["id"])
    assert sub.state == "finished"
    assert sub.public_score == pytest.approx(1.0) and sub.private_score == pytest.approx(1.0)
    assert set(sub.scores) == {"public", "private"}
    assert "pr_curve" not in sub.scores["public"], "curves are stored apart, public split only"
    assert len(sub.curve["recall"]) == len(sub.curve["precision"]) <= 200
    shown = client.get(f"/api/v1/submissions/{sub.id}", headers=headers).get_json()
    assert shown["state"] == "finished" and shown["scores"]["ap50"] == pytest.approx(1.0)
    assert db.query(Notification).count() == 1


def test_recognition_features_are_scored_on_both_splits(app, client, db, data, team_user):
    _user, headers, _team = team_user
    good = upload(client, headers, data.features(good=True), track="recognition", name="f.bin").get_json()
    bad = upload(client, headers, data.features(good=False), track="recognition", name="g.bin").get_json()
    run_worker(app)
    good_sub, bad_sub = _sub(db, good["id"]), _sub(db, bad["id"])
    assert good_sub.state == bad_sub.state == "finished"
    assert good_sub.public_score == pytest.approx(1.0)
    assert bad_sub.public_score < good_sub.public_score
    assert set(good_sub.curve["cmc"]) == {"1", "5", "10"}


@pytest.mark.parametrize(
    ("content", "line", "words"),
    [
        (b"det_000.jpg,1,2,3,4,face,0.5\nnope.jpg,1,2,3,4,face,0.5\n", 2, "not an image of the test set"),
        (b"det_000.jpg,1,2,3,4,cat,0.5\n", 1, "label must be 'face'"),
        (b"image,x1,y1,x2,y2,face,score\n", 1, "no header"),
        (b"det_000.jpg,5,2,3,4,face,0.5\n", 1, "smaller than x1"),
    ],
)
def test_a_bad_file_fails_with_the_parsers_message_and_line(app, client, db, team_user, content, line, words):
    _user, headers, _team = team_user
    sub_id = upload(client, headers, content).get_json()["id"]
    run_worker(app)
    sub = _sub(db, sub_id)
    assert sub.state == "failed"
    assert words in sub.error and sub.error_line == line
    shown = client.get(f"/api/v1/submissions/{sub_id}", headers=headers).get_json()
    assert shown["error_line"] == line and words in shown["error"]


def test_a_crash_fails_the_submission_with_a_generic_message_and_reraises(
    app, client, db, data, team_user, monkeypatch
):
    _user, headers, _team = team_user
    sub_id = upload(client, headers, data.detection_csv()).get_json()["id"]

    def boom(*_args, **_kwargs):
        raise RuntimeError("bug in the scorer")

    monkeypatch.setattr(jobs, "_score", boom)
    with app.app_context(), pytest.raises(RuntimeError, match="bug in the scorer"):
        jobs.score_submission(sub_id)
    sub = _sub(db, sub_id)
    assert sub.state == "failed" and sub.error == jobs.CRASH_MESSAGE
    assert "bug" not in sub.error, "a traceback or internal message never reaches the team"


def test_a_crash_lands_in_rqs_failed_registry(app, client, db, data, team_user, monkeypatch):
    _user, headers, _team = team_user
    sub_id = upload(client, headers, data.detection_csv()).get_json()["id"]
    monkeypatch.setattr(jobs, "_score", lambda *a: 1 / 0)
    run_worker(app)
    from arena.queue import queue

    with app.app_context():
        assert queue().failed_job_registry.count == 1
    assert _sub(db, sub_id).state == "failed"


def test_a_job_run_twice_scores_once(app, client, db, data, team_user):
    _user, headers, _team = team_user
    sub_id = upload(client, headers, data.detection_csv()).get_json()["id"]
    with app.app_context():
        assert jobs.score_submission(sub_id) == "finished"
        assert jobs.score_submission(sub_id) == "skipped"
    sub = _sub(db, sub_id)
    assert sub.attempts == 1
    runs = db.query(AuditEvent).filter_by(object_id=sub_id, action="submission.state").all()
    assert [e.after["state"] for e in runs] == ["queued", "running", "finished"]


def test_a_job_is_enqueued_by_dotted_name_with_the_id_only(app, client, data, team_user):
    _user, headers, _team = team_user
    sub_id = upload(client, headers, data.detection_csv()).get_json()["id"]
    from arena.queue import queue

    with app.app_context():
        (job,) = queue().get_jobs()
    assert job.func_name == "arena.jobs.score_submission"
    assert job.args == (sub_id,) and job.kwargs == {}


def test_activating_new_labels_rescores_every_finished_submission(app, client, db, data, team_user, challenge):
    from arena import labels
    from arena.services.admin import store_labels

    _user, headers, _team = team_user
    sub_id = upload(client, headers, data.detection_csv()).get_json()["id"]
    run_worker(app)
    assert _sub(db, sub_id).public_score == pytest.approx(1.0)
    shifted = data.det_boxes + 1000  # every box moves away: the same submission now scores 0
    from scorer import formats

    formats.write_detection_labels(data.folder / "hidden" / "gt2.csv", data.det_names, data.det_index, shifted)
    track = next(t for t in challenge.tracks if t.kind == "detection")
    with open(data.folder / "hidden" / "gt2.csv", "rb") as stream:
        version = store_labels(db, track, "detection_gt", stream)
    assert _sub(db, sub_id).state == "finished"  # a new version waits for the organizer (test_label_versions.py)
    labels.activate(db, version, reason="test")
    assert _sub(db, sub_id).state == "rescoring"
    run_worker(app)
    sub = _sub(db, sub_id)
    assert sub.state == "finished" and sub.public_score == pytest.approx(0.0) and sub.attempts == 2


def test_cancelled_submission_is_skipped_by_the_worker(app, client, db, data, team_user):
    _user, headers, _team = team_user
    sub_id = upload(client, headers, data.detection_csv()).get_json()["id"]
    assert client.post(f"/api/v1/submissions/{sub_id}/cancel", headers=headers).status_code == 200
    with app.app_context():
        assert jobs.score_submission(sub_id) == "skipped"
    assert _sub(db, sub_id).state == "cancelled"


@pytest.mark.parametrize("state", ["running", "finished", "failed", "cancelled"])
def test_only_a_queued_submission_can_be_cancelled(app, client, db, data, team_user, state):
    _user, headers, _team = team_user
    sub_id = upload(client, headers, data.detection_csv()).get_json()["id"]
    sub = _sub(db, sub_id)
    sub.state = state
    db.commit()
    response = client.post(f"/api/v1/submissions/{sub_id}/cancel", headers=headers)
    assert response.status_code == 409 and state in response.get_json()["message"]


def test_watchdog_requeues_a_silent_run_then_fails_it_and_refunds(app, client, db, data, team_user):
    import datetime as dt

    from arena.services.admin import watchdog

    _user, headers, _team = team_user
    sub_id = upload(client, headers, data.detection_csv()).get_json()["id"]
    long_ago = dt.datetime(2000, 1, 1)
    with app.app_context():
        for attempt in range(1, app.config["MAX_ATTEMPTS"] + 1):
            assert states.claim(db, sub_id) == "queued"
            sub = _sub(db, sub_id)
            sub.heartbeat_at = long_ago
            db.commit()
            result = watchdog(db)
            expected = "failed" if attempt == app.config["MAX_ATTEMPTS"] else "requeued"
            assert result[expected] == 1
    sub = _sub(db, sub_id)
    assert sub.state == "failed" and "not counted against you" in sub.error


def test_an_organizer_posts_a_baseline_by_api_and_it_is_a_marked_row(app, client, db, data, challenge, team_user):
    import io

    from arena_testkit import make_user, token_for

    headers = token_for(db, make_user(db, "org@example.com", organizer=True))
    response = client.post(
        "/api/v1/admin/baselines",
        headers=headers,
        content_type="multipart/form-data",
        data={
            "challenge": "tiny",
            "phase": "dev",
            "track": "detection",
            "name": "Oracle boxes",
            "note": "the GT itself",
            "method_name": "Oracle",
            "code_url": "https://example.org/oracle",
            "file": (io.BytesIO(data.detection_csv()), "b.csv"),
        },
    )
    assert response.status_code == 202 and response.get_json()["is_baseline"]
    run_worker(app)
    rows = client.get("/api/v1/challenges/tiny/phases/dev/tracks/detection/leaderboard").get_json()["rows"]
    assert [(r["name"], r["baseline"], r["rank"]) for r in rows] == [("Oracle boxes", True, None)]
    assert rows[0]["method"] == {
        "name": "Oracle",
        "description": None,
        "paper_url": None,
        "code_url": "https://example.org/oracle",
    }


def test_a_baseline_with_a_method_link_that_is_not_a_url_is_refused_naming_the_field(client, db, data, challenge):
    import io

    from arena_testkit import make_user, token_for

    headers = token_for(db, make_user(db, "org@example.com", organizer=True))
    form = {"challenge": "tiny", "phase": "dev", "track": "detection", "name": "B", "code_url": "ftp://x"}
    response = client.post(
        "/api/v1/admin/baselines",
        headers=headers,
        content_type="multipart/form-data",
        data={**form, "file": (io.BytesIO(data.detection_csv()), "b.csv")},
    )
    assert response.status_code == 400 and response.get_json()["field"] == "code_url"


def test_an_organizer_posts_a_baseline_from_the_command_line(app, db, data, challenge, tmp_path):
    from arena_testkit import make_user

    make_user(db, "org@example.com", organizer=True)
    make_user(db, "p@example.com")
    path = tmp_path / "b.csv"
    path.write_bytes(data.detection_csv())
    args = [
        "baseline",
        "post",
        str(path),
        "--challenge",
        "tiny",
        "--phase",
        "dev",
        "--track",
        "detection",
        "--name",
        "CenterNet R18",
        "--note",
        "run 7",
    ]
    refused = app.test_cli_runner().invoke(args=[*args, "--as", "p@example.com"])
    assert refused.exit_code == 1 and "organizers only" in refused.output
    bad = app.test_cli_runner().invoke(args=[*args, "--as", "org@example.com", "--code-url", "ftp://x"])
    assert bad.exit_code == 1 and "code_url" in bad.output
    method = ["--method-name", "CenterNet", "--code-url", "https://example.com/centernet.yaml"]
    result = app.test_cli_runner().invoke(args=[*args, "--as", "org@example.com", *method])
    assert result.exit_code == 0 and "'CenterNet R18' is queued" in result.output
    run_worker(app)
    sub = db.query(Submission).one()
    db.refresh(sub)
    assert sub.is_baseline and sub.state == "finished" and sub.note == "run 7"
    assert (sub.method_name, sub.code_url) == ("CenterNet", "https://example.com/centernet.yaml")


def _pack(kind: str, payload: bytes, name: str) -> bytes:
    import gzip
    import io
    import zipfile

    if kind == "gzip":
        return gzip.compress(payload)
    if kind == "zip":
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as archive:
            archive.writestr(name, payload)
        return out.getvalue()
    return payload


@pytest.mark.parametrize("packing", ["plain", "gzip", "zip"])
@pytest.mark.parametrize("form", ["bin", "npy"])
def test_recognition_uploads_as_bin_or_npy_plain_gzip_or_zip_are_scored(
    app, client, db, data, team_user, packing, form
):
    import io

    import numpy as np

    _user, headers, _team = team_user
    payload = data.features(good=True)
    if form == "npy":
        out = io.BytesIO()
        np.save(out, np.frombuffer(payload, dtype="<f8").reshape(30, -1).astype(np.float32))
        payload = out.getvalue()
    body = _pack(packing, payload, f"features.{form}")
    sub_id = upload(client, headers, body, track="recognition", name=f"features.{form}.{packing}").get_json()["id"]
    run_worker(app)
    sub = _sub(db, sub_id)
    assert sub.state == "finished", sub.error
    assert sub.public_score == pytest.approx(1.0)
