"""Upload preconditions: a track without hidden labels refuses uploads (409) before storing anything; a file in the
other track's format gets a hint that says so; a bad label file is named by the name it was uploaded under."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np
import pytest
from arena.models import LabelFile, Submission
from arena_testkit import PASSWORD, make_user, run_worker, token_for, upload

pytestmark = pytest.mark.redis


def _drop_labels(db, track) -> None:
    for label in db.query(LabelFile).filter(LabelFile.track_id == track.id):
        db.delete(label)
    db.commit()
    db.expire_all()


@pytest.mark.parametrize("track", ["detection", "recognition"])
def test_a_track_without_labels_refuses_uploads_before_storing_anything(
    app, client, db, data, challenge, team_user, track
):
    user, headers, _team = team_user
    _drop_labels(db, next(t for t in challenge.tracks if t.slug == track))
    content = data.detection_csv() if track == "detection" else data.features()
    response = upload(client, headers, content, track=track)
    assert response.status_code == 409
    assert "hidden labels" in response.get_json()["message"] and "not uploaded" in response.get_json()["message"]
    assert not list((Path(app.config["STORAGE_DIR"]) / "submissions").glob("*"))
    assert db.query(Submission).count() == 0
    client.post("/login", data={"email": user.email, "password": PASSWORD})
    page = client.post(
        "/c/tiny/submit",
        data={"target": f"dev/{track}", "file": (io.BytesIO(content), "x.csv")},
        content_type="multipart/form-data",
        follow_redirects=True,
    )
    assert "hidden labels" in page.get_data(as_text=True) and db.query(Submission).count() == 0


@pytest.mark.parametrize("packing", ["plain", "gzip"])
def test_a_detection_csv_sent_to_the_recognition_track_gets_a_hint(app, client, db, data, team_user, packing):
    _user, headers, _team = team_user
    content = data.detection_csv()
    name = "boxes.csv"
    if packing == "gzip":
        content, name = gzip.compress(content), "boxes.csv.gz"
    sub_id = upload(client, headers, content, track="recognition", name=name).get_json()["id"]
    run_worker(app)
    shown = client.get(f"/api/v1/submissions/{sub_id}", headers=headers).get_json()
    assert shown["state"] == "failed" and "looks like a detection CSV" in shown["error"]


@pytest.mark.parametrize("kind", ["bin", "npy"])
def test_features_sent_to_the_detection_track_get_a_hint(app, client, db, data, team_user, kind):
    _user, headers, _team = team_user
    content = data.features()
    if kind == "npy":
        buffer = io.BytesIO()
        np.save(buffer, np.frombuffer(content, dtype="<f8").reshape(30, 16))
        content = buffer.getvalue()
    sub_id = upload(client, headers, content, name=f"feats.{kind}").get_json()["id"]
    run_worker(app)
    shown = client.get(f"/api/v1/submissions/{sub_id}", headers=headers).get_json()
    assert shown["state"] == "failed" and "looks like a recognition feature file" in shown["error"]


def test_a_wrong_file_in_its_own_format_gets_no_hint(app, client, db, team_user):
    _user, headers, _team = team_user
    sub_id = upload(client, headers, b"nope.jpg,1,2,3,4,face,0.5\n").get_json()["id"]
    run_worker(app)
    error = client.get(f"/api/v1/submissions/{sub_id}", headers=headers).get_json()["error"]
    assert "not an image of the test set" in error and "hint" not in error


def test_a_bad_label_file_is_named_by_its_uploaded_name(client, db, challenge):
    headers = token_for(db, make_user(db, "org@example.com", organizer=True))
    track = challenge.tracks[0]
    response = client.post(
        f"/api/v1/admin/tracks/{track.id}/labels",
        headers=headers,
        data={"kind": "detection_gt", "file": (io.BytesIO(b"det_000.jpg,1,2\n"), "my_gt_v2.csv")},
        content_type="multipart/form-data",
    )
    message = response.get_json()["message"]
    assert response.status_code == 400 and "my_gt_v2.csv" in message and ".upload" not in message
