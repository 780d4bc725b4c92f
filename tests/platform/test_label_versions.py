"""Versioned hidden labels (arena/labels.py): each upload a new version, the active one chosen explicitly after a
diff (page and API dry run), scores kept per label version so that switching back restores the boards, submissions
that no longer fit new labels marked unscorable (not failed, not notified) and rescored by any later rescore;
organizers rescore any set (all, by state, by team) from the API, the pages and the command line."""

from __future__ import annotations

import io

import pytest
from arena.models import LabelVersion, Notification, Submission
from arena.services import teams
from arena_testkit import PASSWORD, load_challenge, make_user, run_worker, token_for, upload

from scorer import formats

pytestmark = pytest.mark.redis

BOARD = "/api/v1/challenges/tiny/phases/dev/tracks/detection/leaderboard"


@pytest.fixture
def organizer(db):
    user = make_user(db, "org@example.com", organizer=True)
    return user, token_for(db, user)


def _labels_file(data, name: str, *, shift: float = 0.0, images: int = 20) -> bytes:
    keep = data.det_index < images
    path = data.folder / "hidden" / name
    formats.write_detection_labels(path, data.det_names[:images], data.det_index[keep], data.det_boxes[keep] + shift)
    return path.read_bytes()


def _post_labels(client, headers, track, content: bytes, name: str):
    return client.post(
        f"/api/v1/admin/tracks/{track.id}/labels",
        headers=headers,
        data={"kind": "detection_gt", "file": (io.BytesIO(content), name)},
        content_type="multipart/form-data",
    )


def _activate(client, headers, version_id, **body):
    return client.post(f"/api/v1/admin/labels/{version_id}/activate", headers=headers, json=body)


def _sub(db, sub_id) -> Submission:
    db.expire_all()
    return db.get(Submission, sub_id)


def _scored(app, client, headers, content) -> int:
    sub_id = upload(client, headers, content).get_json()["id"]
    run_worker(app)
    return sub_id


def test_an_upload_is_a_new_version_that_waits_and_its_dry_run_shows_the_diff(
    app, client, db, data, challenge, team_user, organizer
):
    _user, headers, _team = team_user
    _org, org_headers = organizer
    track = challenge.tracks[0]
    sub_id = _scored(app, client, headers, data.detection_csv())
    new = _post_labels(client, org_headers, track, _labels_file(data, "gt_moved.csv", shift=1000), "gt_moved.csv")
    assert new.status_code == 201
    version = new.get_json()
    assert version["version"] == 2 and version["active"] is False and version["name"] == "gt_moved.csv"
    assert _sub(db, sub_id).state == "finished" and client.get(BOARD).get_json()["rows"][0]["score"] == 1.0
    dry = _activate(client, org_headers, version["id"], dry_run=True).get_json()
    changes = dry["diff"]["changes"]
    assert dry["activated"] is False and dry["diff"]["active_version"] == 1
    assert (changes["images_added"], changes["images_removed"]) == (0, 0)
    assert (changes["boxes_added"], changes["boxes_removed"]) == (len(data.det_boxes), len(data.det_boxes))
    assert _sub(db, sub_id).state == "finished"
    no_reason = _activate(client, org_headers, version["id"])
    assert no_reason.status_code == 400 and no_reason.get_json()["field"] == "reason"
    listed = client.get(f"/api/v1/admin/tracks/{track.id}/labels", headers=org_headers).get_json()
    assert [(v["version"], v["active"]) for v in listed] == [(2, False), (1, True)]
    again = _post_labels(client, org_headers, track, _labels_file(data, "same.csv", shift=1000), "same.csv")
    assert again.get_json()["id"] == version["id"]  # the same bytes: the same version, not a third one


def test_switching_labels_back_restores_the_board_without_a_rescore(
    app, client, db, data, challenge, team_user, organizer
):
    _user, headers, _team = team_user
    _org, org_headers = organizer
    track = challenge.tracks[0]
    sub_id = _scored(app, client, headers, data.detection_csv())
    first = db.query(LabelVersion).filter_by(track_id=track.id, version=1).one()
    moved = _post_labels(client, org_headers, track, _labels_file(data, "gt_moved.csv", shift=1000), "m.csv")
    done = _activate(client, org_headers, moved.get_json()["id"], reason="new boxes").get_json()
    assert done["activated"] is True and done["rescoring"] == 1 and done["restored"] == 0
    run_worker(app)
    assert _sub(db, sub_id).public_score == pytest.approx(0.0) and _sub(db, sub_id).attempts == 2
    back = _activate(client, org_headers, first.id, reason="the new boxes were wrong").get_json()
    assert back["restored"] == 1 and back["rescoring"] == 0
    sub = _sub(db, sub_id)
    assert sub.state == "finished" and sub.public_score == pytest.approx(1.0) and sub.attempts == 2
    assert client.get(BOARD).get_json()["rows"][0]["score"] == 1.0


def test_labels_that_drop_images_mark_submissions_unscorable_not_failed(
    app, client, db, data, challenge, team_user, organizer
):
    user, headers, _team = team_user
    _org, org_headers = organizer
    track = challenge.tracks[0]
    sub_id = _scored(app, client, headers, data.detection_csv())
    notes_before = db.query(Notification).filter_by(user_id=user.id).count()
    fewer = _post_labels(client, org_headers, track, _labels_file(data, "gt_15.csv", images=15), "gt_15.csv")
    diff = _activate(client, org_headers, fewer.get_json()["id"], dry_run=True).get_json()["diff"]["changes"]
    assert diff["images_removed"] == 5 and diff["boxes_removed"] == 10
    _activate(client, org_headers, fewer.get_json()["id"], reason="fewer images")
    run_worker(app)
    sub = _sub(db, sub_id)
    assert sub.state == "unscorable" and "not a fault of your file" in sub.error
    assert db.query(Notification).filter_by(user_id=user.id).count() == notes_before  # no failure notification
    assert client.get(BOARD).get_json()["rows"] == []
    shown = client.get(f"/api/v1/submissions/{sub_id}", headers=headers).get_json()
    assert shown["state"] == "unscorable" and shown["public_score"] is None
    # any later rescore takes it again: still unscorable on these labels, never failed
    rescored = client.post(f"/api/v1/admin/tracks/{track.id}/rescore", headers=org_headers, json={"reason": "again"})
    assert rescored.get_json()["rescoring"] == 1
    run_worker(app)
    assert _sub(db, sub_id).state == "unscorable"
    first = db.query(LabelVersion).filter_by(track_id=track.id, version=1).one()
    assert _activate(client, org_headers, first.id, reason="undo").get_json()["restored"] == 1
    assert _sub(db, sub_id).state == "finished" and client.get(BOARD).get_json()["rows"][0]["score"] == 1.0


def test_organizers_rescore_by_state_and_by_team(app, client, db, data, challenge, team_user, organizer):
    _user, headers, team = team_user
    _org, org_headers = organizer
    track = challenge.tracks[0]
    other = make_user(db, "b@example.com")
    other_team = teams.create_team(db, other, challenge, "Bravo", True)
    good = _scored(app, client, headers, data.detection_csv())
    bad = _scored(app, client, headers, b"nope.jpg,1,2,3,4,face,0.5\n")
    theirs = _scored(app, client, token_for(db, other), data.detection_csv())
    assert _sub(db, bad).state == "failed"
    url = f"/api/v1/admin/tracks/{track.id}/rescore"
    failed_only = client.post(url, headers=org_headers, json={"reason": "r", "states": ["failed"]})
    assert failed_only.status_code == 202 and failed_only.get_json()["rescoring"] == 1
    assert _sub(db, bad).state == "rescoring" and _sub(db, good).state == "finished"
    run_worker(app)
    by_team = client.post(url, headers=org_headers, json={"reason": "r", "team_id": other_team.id}).get_json()
    assert by_team["rescoring"] == 1 and _sub(db, theirs).state == "rescoring" and _sub(db, good).state == "finished"
    run_worker(app)
    wrong = client.post(url, headers=org_headers, json={"reason": "r", "states": ["queued"]})
    assert wrong.status_code == 400 and wrong.get_json()["field"].startswith("states")
    assert team.id != other_team.id


def test_rescore_from_the_command_line_and_the_page(app, client, db, data, challenge, team_user, organizer):
    _user, headers, _team = team_user
    org, _org_headers = organizer
    bad = _scored(app, client, headers, b"nope.jpg,1,2,3,4,face,0.5\n")
    result = app.test_cli_runner().invoke(
        args=["rescore", "--challenge", "tiny", "--track", "detection", "--state", "failed"]
    )
    assert result.exit_code == 0 and "1 submissions" in result.output and _sub(db, bad).state == "rescoring"
    run_worker(app)
    client.post("/login", data={"email": org.email, "password": PASSWORD})
    page = client.post(
        "/admin/c/tiny/action",
        data={"what": "rescore", "track_id": challenge.tracks[0].id, "state": "failed", "reason": "page"},
        follow_redirects=True,
    )
    assert "1 submissions are being rescored" in page.get_data(as_text=True)


def test_the_review_page_shows_the_diff_and_confirms_the_activation(app, client, db, data, challenge, organizer):
    org, _org_headers = organizer
    client.post("/login", data={"email": org.email, "password": PASSWORD})
    track = challenge.tracks[0]
    uploaded = client.post(
        "/admin/c/tiny/action",
        data={
            "what": "labels",
            "track_id": track.id,
            "kind": "detection_gt",
            "file": (io.BytesIO(_labels_file(data, "gt_15.csv", images=15)), "gt_15.csv"),
        },
        content_type="multipart/form-data",
        follow_redirects=True,
    )
    page = uploaded.get_data(as_text=True)
    assert 'id="diff"' in page and "review its changes" in page and "det_019.jpg" in page
    version = db.query(LabelVersion).filter_by(track_id=track.id, version=2).one()
    assert version.id not in {lab.version_id for lab in track.labels}
    done = client.post(f"/admin/labels/{version.id}", data={"reason": "checked"}, follow_redirects=True)
    assert "version 2 is active" in done.get_data(as_text=True)
    db.expire_all()
    assert {lab.version_id for lab in db.get(type(track), track.id).labels} == {version.id}


def test_loading_the_bundle_again_keeps_the_labels_the_organizer_chose(app, client, db, data, challenge, organizer):
    _org, org_headers = organizer
    track = challenge.tracks[0]
    moved = _post_labels(client, org_headers, track, _labels_file(data, "gt_moved.csv", shift=1000), "m.csv")
    _activate(client, org_headers, moved.get_json()["id"], reason="new")
    load_challenge(db, data)  # what a restart of `make demo` does
    db.expire_all()
    active = {lab.version_id for lab in db.get(type(track), track.id).labels}
    assert active == {moved.get_json()["id"]}
    assert db.query(LabelVersion).filter_by(track_id=track.id).count() == 2
