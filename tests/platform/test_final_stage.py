"""The final stage (arena/sandbox): a team's model archive runs in bubblewrap on the hidden test images, is scored by
the ordinary scorer and timed; a model that breaks out, hangs or writes garbage is stopped with a clear message and
costs the team nothing. The models here are tiny module-kind archives: each test image carries its index in its
pixels, so an honest "model" can answer exactly what the team uploaded."""

from __future__ import annotations

import io
import shutil
import textwrap

import numpy as np
import pytest
from arena.models import ModelSubmission, Submission
from arena_testkit import upload

from scorer.archive import Manifest, write_archive

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed (make test does)")

GOOD_DETECTOR = """
import json, os
import numpy as np

class Model:
    def __init__(self, folder):
        self.boxes = json.load(open(os.path.join(folder, "boxes.json")))

    def predict(self, images):
        out = []
        for image in images:
            rows = self.boxes.get(str(int(image[0, 0, 0]) // 10), [])
            out.append(np.array([[*box, 0.5] for box in rows]).reshape(-1, 5))
        return out

def load(folder):
    return Model(folder)
"""

GOOD_EMBEDDER = """
import numpy as np

def load(folder):
    return Model(np.load(folder + "/features.npy"))

class Model:
    def __init__(self, features):
        self.features = features

    def embed(self, crops):
        return self.features[np.minimum(crops[:, 0, 0, 0].astype(int) // 5, len(self.features) - 1)]
"""

BAD = {
    "network": (
        "import socket\nsocket.create_connection(('127.0.0.1', 6379), timeout=2)",
        "the sandbox has no network",
    ),
    "outside": ("open({secret!r}).read()", "sees only its own folder"),
    "write_images": ("open('/images/det_000.jpg', 'wb').write(b'x')", "sees only its own folder"),
    "fork_bomb": (
        "import os, time\nwhile True:\n    if os.fork() == 0:\n        time.sleep(30)\n        os._exit(0)",
        "at most 24 processes",
    ),
    "memory": ("block = bytearray(8 * 2**30)", "past its memory limit"),
    "database": (
        "import socket\nsocket.create_connection(('127.0.0.1', 5432), timeout=2)",
        "the sandbox has no network",
    ),
    "never_ends": ("import time\ntime.sleep(3600)", "wall-time limit of 6 s"),
    "spins": ("while True:\n    pass", "more than its 2 s of CPU time"),
    "floods_its_output": (
        "import os, sys\nfd = int(sys.argv[sys.argv.index('--result-fd') + 1])\nos.write(fd, b'x' * 3_000_000)",
        "more than the 1,000,000 bytes of results",
    ),
    "crash": ("raise RuntimeError('weights not found')", "RuntimeError: weights not found"),
    "garbage": ("return [np.array([[10, 10, 5, 5, 0.9]]) for _ in images]", "not a valid submission"),
}

LIMITS = {  # the limit each case runs into, set low so that the tests stay short
    "never_ends": {"SANDBOX_WALL_SECONDS": 6},
    "spins": {"SANDBOX_CPU_SECONDS": 2},
    "floods_its_output": {"SANDBOX_RESULT_BYTES": 1_000_000},
}


def _bad_detector(body: str) -> str:
    return (
        "import numpy as np\n\nclass Model:\n    def predict(self, images):\n"
        + textwrap.indent(body, " " * 8)
        + "\n\ndef load(folder):\n    return Model()\n"
    )


@pytest.fixture
def final_app(app, tmp_path):
    app.config.update(
        SANDBOX_WALL_SECONDS=20,
        SANDBOX_PROCESSES=24,
        SANDBOX_MEMORY_BYTES=2 * 2**30,
        SANDBOX_THREADS=1,
        SPEED_FRAMES=2,
        SANDBOX_WORK_DIR=str(tmp_path / "sandbox"),
    )
    return app


@pytest.fixture
def stage(final_app, db, challenge, data, team_user, client, tmp_path):
    """The challenge's dev phase open to models, its test images stored, and a finished perfect submission of the
    team on each track: {track: submission id}."""
    from arena.sandbox import service
    from arena.services.challenges import load_bundle
    from arena_testkit import run_worker
    from PIL import Image

    text = (
        (data.folder / "challenge.yaml")
        .read_text()
        .replace("final_submissions: 2", "final_submissions: 2\n    accepts_models: true")
    )
    load_bundle(db, text, data.folder)
    images = tmp_path / "test_images"
    images.mkdir()
    for i, name in enumerate(data.det_names):
        Image.fromarray(np.full((400, 400, 3), 10 * i, dtype=np.uint8)).save(images / name, format="PNG")
    for i, name in enumerate(data.rec_labels.image_names):
        Image.fromarray(np.full((40, 40, 3), 5 * i, dtype=np.uint8)).save(images / name, format="PNG")
    for track in challenge.tracks:
        service.import_test_images(db, None, track, images)
    _user, headers, _team = team_user
    ids = {}
    for track, content in (("detection", data.detection_csv(1.0)), ("recognition", data.features(True))):
        response = upload(client, headers, content, track=track, name="sub.bin")
        assert response.status_code == 202, response.get_json()
        ids[track] = response.get_json()["id"]
    run_worker(final_app)
    return ids


def _detector_archive(tmp_path, data, source=GOOD_DETECTOR) -> bytes:
    boxes = {str(i): [] for i in range(len(data.det_names))}
    for image, box in zip(data.det_index, data.det_boxes, strict=True):
        boxes[str(int(image))].append([float(v) for v in box])
    import json

    manifest = Manifest(task="detection", kind="module", entry="model.py", requirements=("numpy",), batch_size=4)
    path = write_archive(tmp_path / "det.zip", manifest, {"model.py": source, "boxes.json": json.dumps(boxes)})
    return path.read_bytes()


def _submit(db, team_user, challenge, track, content, sub_id):
    from arena.sandbox import service

    user, _headers, _team = team_user
    return service.submit_model(db, user, challenge, "dev", track, io.BytesIO(content), "model.zip", sub_id)


def _run(final_app, db, model_id) -> ModelSubmission:
    from arena.sandbox.jobs import run_model

    with final_app.app_context():
        run_model(model_id)
    db.expire_all()
    return db.get(ModelSubmission, model_id)


def test_a_good_detector_reproduces_its_submitted_score_and_is_timed(
    final_app, db, challenge, data, team_user, stage, tmp_path
):
    from arena.sandbox import service

    model = _submit(db, team_user, challenge, "detection", _detector_archive(tmp_path, data), stage["detection"])
    model = _run(final_app, db, model.id)
    assert model.state == "finished", (model.error, model.log_tail)
    report = service.reproduction(model)
    submitted = db.get(Submission, stage["detection"])
    assert report["splits"]["public"]["submitted"] == submitted.public_score
    assert report["splits"]["public"]["reproduced"] == pytest.approx(submitted.public_score, abs=1e-12)
    assert report["splits"]["private"]["difference"] == pytest.approx(0, abs=1e-12)
    assert report["verdict"] == "reproduced"
    speed = model.speed
    assert speed["frames"] == 2 and speed["frame_size"] == [1920, 1080]
    assert speed["images_per_second"] > 0 and speed["ms_per_image"] > 0
    assert speed["model_bytes"] == model.size and speed["peak_rss_bytes"] > 0
    assert speed["hardware"]["device"] == "cpu"
    assert model.worker["device"] == "cpu"


def test_a_good_embedder_reproduces_its_features(final_app, db, challenge, data, team_user, stage, tmp_path):
    features = np.frombuffer(data.features(True), dtype="<f8").reshape(len(data.rec_labels.labels), -1)
    np.save(tmp_path / "features.npy", features)
    manifest = Manifest(task="recognition", kind="module", entry="model.py", input_size=16, extra={"enlarge_rate": 0})
    archive = write_archive(
        tmp_path / "rec.zip", manifest, {"model.py": GOOD_EMBEDDER, "features.npy": tmp_path / "features.npy"}
    )
    model = _submit(db, team_user, challenge, "recognition", archive.read_bytes(), stage["recognition"])
    model = _run(final_app, db, model.id)
    assert model.state == "finished", (model.error, model.log_tail)
    from arena.sandbox import service

    assert service.reproduction(model)["verdict"] == "reproduced"


def test_a_model_that_scores_differently_is_not_reproduced(final_app, db, challenge, data, team_user, stage, tmp_path):
    """A model whose boxes all moved far off scores 0 while its team uploaded a perfect file."""
    from arena.sandbox import service

    source = GOOD_DETECTOR.replace("[*box, 0.5]", "[box[0] + 200, box[1] + 200, box[2] + 200, box[3] + 200, 0.5]")
    model = _submit(
        db, team_user, challenge, "detection", _detector_archive(tmp_path, data, source), stage["detection"]
    )
    report = service.reproduction(_run(final_app, db, model.id))
    assert report["verdict"] == "not reproduced"
    assert report["max_difference"] > challenge.reproduction_tolerance


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_model_that_breaks_the_rules_fails_with_a_clear_message(
    final_app, db, challenge, data, team_user, stage, tmp_path, case
):
    """Network, files outside the view, a fork bomb, a huge allocation, a model that never ends, a crash and
    garbage: each stops the run with its own message and the tail of its output; the team's submission, the
    database and the other files are untouched."""
    secret = final_app.config["STORAGE_DIR"] + "/" + db.get(Submission, stage["recognition"]).stored_path
    body, message = BAD[case]
    final_app.config.update(LIMITS.get(case, {}))
    source = _bad_detector(body.format(secret=secret))
    before = open(secret, "rb").read()
    submitted = db.get(Submission, stage["detection"])
    scores_before = dict(submitted.scores)
    model = _submit(
        db, team_user, challenge, "detection", _detector_archive(tmp_path, data, source), stage["detection"]
    )
    model = _run(final_app, db, model.id)
    assert model.state == "failed"
    assert message in model.error, (model.error, model.log_tail)
    assert model.scores is None
    assert open(secret, "rb").read() == before
    db.expire_all()
    submitted = db.get(Submission, stage["detection"])
    assert submitted.state == "finished" and submitted.scores == scores_before
    if case in ("crash", "network", "outside"):
        assert "Traceback" in model.log_tail  # the tail of the model's own output comes with the message


# --------------------------------------------------------------------------------------------------- the HTTP edge


def _post_model(client, headers, content: bytes, sub_id, **fields):
    form = {"phase": "dev", "track": "detection", "submission_id": str(sub_id), **fields}
    form["file"] = (io.BytesIO(content), "model.zip")
    return client.post("/api/v1/challenges/tiny/models", data=form, headers=headers, content_type="multipart/form-data")


def test_the_api_takes_a_model_and_a_worker_of_its_device_runs_it(
    final_app, client, db, data, team_user, stage, tmp_path
):
    from arena.queue import connect
    from arena.sandbox.jobs import queue_name
    from rq import Queue, SimpleWorker

    _user, headers, _team = team_user
    response = _post_model(client, headers, _detector_archive(tmp_path, data), stage["detection"])
    assert response.status_code == 202, response.get_json()
    body = response.get_json()
    assert body["state"] == "queued" and body["device"] == "cpu" and body["manifest"]["entry"] == "model.py"
    assert "private" not in body["reproduction"]["splits"]  # a team never sees the private split through its model
    with final_app.app_context():
        final_app.config["SANDBOX_DEVICE"] = "cpu"
        assert Queue(queue_name(final_app.config, "cuda"), connection=connect()).count == 0  # the job says cpu
        SimpleWorker([Queue(queue_name(final_app.config, "cpu"), connection=connect())], connection=connect()).work(
            burst=True
        )
    got = client.get(f"/api/v1/models/{body['id']}", headers=headers).get_json()
    assert got["state"] == "finished", got
    assert got["reproduction"]["splits"]["public"]["difference"] == pytest.approx(0, abs=1e-12)
    assert got["worker"]["device"] == "cpu" and got["reproduction"]["speed"]["images_per_second"] > 0


@pytest.mark.parametrize(
    "change, status, field",
    [
        ({"file": b"not a zip"}, 400, "archive"),
        ({"device": "tpu"}, 400, "device"),
        ({"submission_id": "999"}, 404, "submission_id"),
        ({"track": "recognition"}, 404, "submission_id"),  # the detection submission is not of that track
    ],
)
def test_a_model_that_cannot_run_is_refused_before_it_is_queued(
    client, db, data, team_user, stage, tmp_path, change, status, field
):
    _user, headers, _team = team_user
    change = dict(change)  # the parameter is shared by the sqlite and postgres runs
    content = change.pop("file", None) or _detector_archive(tmp_path, data)
    response = _post_model(client, headers, content, change.pop("submission_id", stage["detection"]), **change)
    assert response.status_code == status, response.get_json()
    assert response.get_json()["field"] == field
    assert db.query(ModelSubmission).count() == 0


def test_a_phase_that_takes_no_models_refuses_them(client, db, challenge, data, team_user, stage, tmp_path):
    challenge.phases[0].accepts_models = False
    db.commit()
    _user, headers, _team = team_user
    response = _post_model(client, headers, _detector_archive(tmp_path, data), stage["detection"])
    assert response.status_code == 403 and "does not accept model archives" in response.get_json()["message"]


def test_another_team_cannot_see_a_model_run(final_app, client, db, challenge, data, team_user, stage, tmp_path):
    from arena.services import teams
    from arena_testkit import make_user, token_for

    _user, headers, _team = team_user
    model_id = _post_model(client, headers, _detector_archive(tmp_path, data), stage["detection"]).get_json()["id"]
    other = make_user(db, "bob@example.com")
    teams.create_team(db, other, challenge, "Beta", True)
    assert client.get(f"/api/v1/models/{model_id}", headers=token_for(db, other)).status_code == 404


def test_the_console_shows_the_reproduction_and_audits_the_checklist(
    final_app, client, db, challenge, data, team_user, stage, tmp_path
):
    from arena.models import AuditEvent
    from arena.services import submissions
    from arena_testkit import PASSWORD, make_user

    user, headers, _team = team_user
    submissions.select_final(db, user, stage["detection"], True)
    model_id = _post_model(client, headers, _detector_archive(tmp_path, data), stage["detection"]).get_json()["id"]
    _run(final_app, db, model_id)
    organizer = make_user(db, "org@example.com", organizer=True)
    client.post("/login", data={"email": organizer.email, "password": PASSWORD})
    assert "/admin/c/tiny/dev/detection/final" in client.get("/admin/c/tiny").get_data(as_text=True)
    page = client.get("/admin/c/tiny/dev/detection/final")
    assert page.status_code == 200 and "reproduced" in page.get_data(as_text=True)
    response = client.post(
        "/admin/c/tiny/dev/detection/final",
        data={"submission_id": stage["detection"], "item": "model_archive", "checked": "1"},
    )
    assert response.status_code == 302
    rows = client.get("/admin/c/tiny/dev/detection/final.json").get_json()["finals"]
    assert rows[0]["checklist"]["model_archive"]["checked"] is True
    assert rows[0]["checklist"]["method_description"]["checked"] is False
    assert rows[0]["reproduction"]["verdict"] == "reproduced"
    event = db.query(AuditEvent).filter_by(action="final_check").one()
    assert event.actor_id == organizer.id and event.after["model_archive"]["checked"] is True
    lines = client.get("/admin/c/tiny/dev/detection/final.csv").get_data(as_text=True).splitlines()
    assert lines[0].startswith("submission_id,team,") and ",reproduced," in lines[1] and lines[1].endswith(",0,1,0")


def test_participants_cannot_open_the_console(client, team_user, stage):
    from arena_testkit import PASSWORD

    user, _headers, _team = team_user
    client.post("/login", data={"email": user.email, "password": PASSWORD})
    assert client.get("/admin/c/tiny/dev/detection/final").status_code == 403


def test_a_run_without_test_images_fails_as_our_fault_and_keeps_the_traceback(
    final_app, db, challenge, data, team_user, stage, tmp_path
):
    """The organizers' omission is not the team's: the message says so and the job re-raises for RQ's registry."""
    from arena.models import TestImageSet
    from arena.sandbox.jobs import OURS_MESSAGE, SandboxError

    model = _submit(db, team_user, challenge, "detection", _detector_archive(tmp_path, data), stage["detection"])
    db.query(TestImageSet).delete()
    db.commit()
    with pytest.raises(SandboxError, match="no test images"):
        _run(final_app, db, model.id)
    db.expire_all()
    model = db.get(ModelSubmission, model.id)
    assert model.state == "failed" and model.error == OURS_MESSAGE


def test_a_model_run_is_taken_once(final_app, db, challenge, data, team_user, stage, tmp_path):
    """A second run of the same job (RQ retried it, two workers raced) finds it no longer queued and skips."""
    from arena.sandbox.jobs import run_model

    model = _submit(db, team_user, challenge, "detection", _detector_archive(tmp_path, data), stage["detection"])
    _run(final_app, db, model.id)
    with final_app.app_context():
        assert run_model(model.id) == "skipped"
    db.expire_all()
    assert db.get(ModelSubmission, model.id).attempts == 1


def test_the_2020_bundle_opens_its_final_phase_to_models():
    from pathlib import Path

    from arena.services.challenges import parse_bundle, read_bundle

    spec = parse_bundle(*read_bundle(Path(__file__).resolve().parents[2] / "challenges" / "icartoonface-2020"))
    assert [p["accepts_models"] for p in spec["phases"]] == [False, True]
    assert spec["reproduction_tolerance"] == 0.005


@pytest.mark.parametrize("value", ["-0.1", "2", "'close'", "true"])
def test_a_reproduction_tolerance_outside_0_to_1_is_a_bundle_error(value):
    from arena.services.challenges import BundleError, parse_bundle

    text = f"slug: t\ntitle: T\nreproduction_tolerance: {value}\ntracks: []\nphases: []\n"
    with pytest.raises(BundleError, match="reproduction_tolerance"):
        parse_bundle(text, None)


def test_a_run_whose_worker_stopped_is_queued_again_then_failed(
    final_app, db, challenge, data, team_user, stage, tmp_path
):
    """The sweep (at every model worker's start, and `final sweep`): a run still `running` past its wall time and
    the job's margin is queued again while it has attempts left, then failed with a message."""
    import datetime as dt

    from arena.models import AuditEvent, utcnow
    from arena.queue import connect
    from arena.sandbox.jobs import STOPPED_MESSAGE, queue_name, sweep
    from rq import Queue

    model = _submit(db, team_user, challenge, "detection", _detector_archive(tmp_path, data), stage["detection"])
    long_ago = utcnow() - dt.timedelta(seconds=final_app.config["SANDBOX_WALL_SECONDS"] + 400)
    with final_app.app_context():
        model.state, model.started_at, model.attempts = "running", long_ago, 1
        db.commit()
        assert sweep(db, final_app.config) == {"requeued": 1, "failed": 0}
        assert model.state == "queued" and model.job_id.endswith(f"-model-{model.id}-2")
        assert Queue(queue_name(final_app.config, "cpu"), connection=connect()).count == 2
        model.state, model.started_at, model.attempts = "running", long_ago, 3
        db.commit()
        assert sweep(db, final_app.config) == {"requeued": 0, "failed": 1}
        assert model.state == "failed" and model.error == STOPPED_MESSAGE
        fresh = _submit(db, team_user, challenge, "detection", _detector_archive(tmp_path, data), stage["detection"])
        fresh.state, fresh.started_at = "running", utcnow()
        db.commit()
        assert sweep(db, final_app.config) == {"requeued": 0, "failed": 0}  # a live run is left alone
    assert db.query(AuditEvent).filter_by(action="model_requeued").count() == 1


def test_the_team_is_told_how_its_model_ran(final_app, db, challenge, data, team_user, stage, tmp_path):
    from arena.models import Notification

    user, _headers, _team = team_user
    model = _submit(db, team_user, challenge, "detection", _detector_archive(tmp_path, data), stage["detection"])
    _run(final_app, db, model.id)
    messages = [n.message for n in db.query(Notification).filter_by(user_id=user.id)]
    assert any(m.startswith(f"Model {model.id} ran in the sandbox: ap50 1.0000") for m in messages), messages


def test_an_organizer_can_run_a_model_again(final_app, db, challenge, data, team_user, stage, tmp_path):
    from arena_testkit import make_user

    make_user(db, "org@example.com", organizer=True)
    model = _submit(db, team_user, challenge, "detection", _detector_archive(tmp_path, data), stage["detection"])
    runner = final_app.test_cli_runner()
    args = ["final", "rerun", str(model.id), "--by", "org@example.com", "--reason", "new images"]
    assert "queued already" in runner.invoke(args=args).output
    model = _run(final_app, db, model.id)
    result = runner.invoke(args=args)
    assert result.exit_code == 0, result.output
    db.expire_all()
    model = db.get(ModelSubmission, model.id)
    assert model.state == "queued" and model.scores is None
    assert "organizers only" in runner.invoke(args=[*args[:3], "--by", "alice@example.com", *args[5:]]).output
