"""Integrity flags (arena/integrity.py): after scoring, the worker flags byte-identical files across teams and
near-identical predictions across teams (recognition features, detection boxes), with the evidence, into an
organizer queue with dismiss / disqualify-with-reason actions, all audited."""

from __future__ import annotations

import numpy as np
import pytest
from arena.models import AuditEvent, IntegrityFlag, Submission
from arena_testkit import PASSWORD, make_user, run_worker, token_for, upload

pytestmark = pytest.mark.redis


@pytest.fixture
def organizer(db):
    user = make_user(db, "org@example.com", organizer=True)
    return user, token_for(db, user)


def _features(data, seed: int, noise_of: bytes | None = None, noise: float = 0.0) -> bytes:
    """Well-clustered features of an independent 'model' (seed), or another file plus relative noise."""
    n = len(data.rec_labels.labels)
    rng = np.random.default_rng(seed)
    if noise_of is not None:
        base = np.frombuffer(noise_of, dtype="<f8").reshape(n, -1)
        scale = np.linalg.norm(base, axis=1, keepdims=True) / np.sqrt(base.shape[1])
        feats = base + noise * scale * rng.normal(size=base.shape)
    else:
        labels = data.rec_labels.labels
        centers = rng.normal(size=(labels.max() + 1, 16)) * 10
        feats = rng.normal(size=(n, 16))
        feats[labels >= 0] = centers[labels[labels >= 0]] + rng.normal(size=((labels >= 0).sum(), 16)) * 0.01
    return np.ascontiguousarray(feats, dtype="<f8").tobytes()


def _detections(data, jitter: float, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    lines = []
    for image, box in zip(data.det_index, data.det_boxes, strict=True):
        x1, y1, x2, y2 = box + rng.uniform(-jitter, jitter, size=4)
        lines.append(f"{data.det_names[image]},{x1:.2f},{y1:.2f},{x2:.2f},{y2:.2f},face,{rng.uniform(0.3, 1):.3f}")
    return ("\n".join(lines) + "\n").encode()


def _flags(db) -> list[IntegrityFlag]:
    db.expire_all()
    return db.query(IntegrityFlag).order_by(IntegrityFlag.id).all()


def test_byte_identical_files_across_teams_are_flagged_with_their_checksum(app, client, db, data, three_teams):
    content = data.features()
    ids = []
    for headers in three_teams:
        ids.append(upload(client, headers, content, track="recognition", name="f.bin").get_json()["id"])
        run_worker(app)
    again = upload(client, three_teams[0], content, track="recognition", name="again.bin").get_json()["id"]
    run_worker(app)
    flags = _flags(db)
    pairs = {(f.submission_id, f.other_id) for f in flags}
    # Alpha's own earlier file is no flag; the other teams' are
    assert pairs == {(ids[1], ids[0]), (ids[2], ids[0]), (ids[2], ids[1]), (again, ids[1]), (again, ids[2])}
    assert all(f.kind == "identical_file" and f.evidence["sha256"] == db.get(Submission, ids[0]).sha256 for f in flags)


@pytest.fixture(params=["sketch of all images", "sketch of 6 images"])
def sketch_size(request, monkeypatch):
    """The tiny test sets have fewer images than a sketch holds; with 6 the sketch's screening decides first
    (arena/jobs/similarity.py): the flags and their evidence must be the same."""
    if request.param == "sketch of 6 images":
        from arena.jobs import similarity

        monkeypatch.setattr(similarity, "SKETCH_IMAGES", 6)
    return request.param


def test_near_identical_features_are_flagged_and_independent_ones_are_not(
    app, client, db, data, three_teams, sketch_size
):
    original = _features(data, seed=1)
    upload(client, three_teams[0], original, track="recognition")
    run_worker(app)
    independent = upload(client, three_teams[1], _features(data, seed=2), track="recognition").get_json()["id"]
    run_worker(app)
    noisy = upload(client, three_teams[2], _features(data, 3, original, 0.1), track="recognition").get_json()["id"]
    run_worker(app)
    assert db.get(Submission, independent).state == "finished"
    (flag,) = _flags(db)
    assert flag.kind == "similar_predictions" and flag.submission_id == noisy
    assert flag.similarity >= 0.9 and flag.evidence["mean_cosine"] >= 0.9 and flag.evidence["threshold"] == 0.9


def test_near_identical_boxes_are_flagged_and_independent_detectors_are_not(
    app, client, db, data, three_teams, sketch_size
):
    first = _detections(data, jitter=0.0, seed=1)
    upload(client, three_teams[0], first)
    run_worker(app)
    upload(client, three_teams[1], _detections(data, jitter=6.0, seed=2))  # the same faces, its own boxes
    run_worker(app)
    rows = first.decode().splitlines()
    nudged = [
        ",".join([*r.split(",")[:1], *(f"{float(v) + 0.5:.2f}" for v in r.split(",")[1:5]), *r.split(",")[5:]])
        for r in rows
    ]
    copy = upload(client, three_teams[2], ("\n".join(nudged) + "\n").encode()).get_json()["id"]
    run_worker(app)
    (flag,) = _flags(db)
    assert flag.kind == "similar_predictions" and flag.submission_id == copy
    assert flag.similarity == flag.evidence["twin_boxes"] / len(data.det_boxes) >= 0.5


def test_organizers_dismiss_or_disqualify_a_flag_with_a_reason_audited(app, client, db, data, three_teams, organizer):
    content = data.detection_csv()
    for headers in three_teams[:3]:
        upload(client, headers, content)
        run_worker(app)
    _org, org_headers = organizer
    queue = client.get("/api/v1/admin/challenges/tiny/flags", headers=org_headers).get_json()
    assert len(queue) == 3 and queue[0]["teams"][0] == "Charlie"
    first, second = queue[0], queue[1]
    no_reason = client.post(f"/api/v1/admin/flags/{first['id']}/dismiss", headers=org_headers, json={})
    assert no_reason.status_code == 400 and no_reason.get_json()["field"] == "reason"
    dismissed = client.post(f"/api/v1/admin/flags/{first['id']}/dismiss", headers=org_headers, json={"reason": "ok"})
    assert dismissed.get_json()["status"] == "dismissed"
    again = client.post(f"/api/v1/admin/flags/{first['id']}/dismiss", headers=org_headers, json={"reason": "ok"})
    assert again.status_code == 409
    target = second["other_id"]
    dq = client.post(
        f"/api/v1/admin/flags/{second['id']}/disqualify",
        headers=org_headers,
        json={"reason": "copied", "submission_id": target},
    )
    assert dq.get_json()["status"] == "disqualified"
    assert "copied" in db.get(Submission, target).disqualified_reason
    outsider = client.post(
        f"/api/v1/admin/flags/{queue[2]['id']}/disqualify",
        headers=org_headers,
        json={"reason": "x", "submission_id": 999},
    )
    assert outsider.status_code == 400 and outsider.get_json()["field"] == "submission_id"
    actions = {e.action for e in db.query(AuditEvent)}
    assert {"integrity.flag", "integrity.dismiss", "integrity.disqualify", "submission.disqualify"} <= actions
    remaining = client.get("/api/v1/admin/challenges/tiny/flags", headers=org_headers).get_json()
    assert [f["id"] for f in remaining] == [queue[2]["id"]]


def test_the_flags_page_lists_the_queue_and_dismisses(app, client, db, data, three_teams, organizer):
    for headers in three_teams[:2]:
        upload(client, headers, data.detection_csv())
        run_worker(app)
    org, _headers = organizer
    client.post("/login", data={"email": org.email, "password": PASSWORD})
    page = client.get("/admin/c/tiny/flags").get_data(as_text=True)
    (flag,) = _flags(db)
    assert f'data-flag="{flag.id}"' in page and "identical_file" in page
    done = client.post(
        "/admin/c/tiny/flags",
        data={"flag_id": flag.id, "action": "dismiss", "reason": "same baseline"},
        follow_redirects=True,
    )
    assert f"Flag {flag.id} is dismissed" in done.get_data(as_text=True)
    assert client.get("/admin/c/tiny/flags").get_data(as_text=True).count("data-flag=") == 0
