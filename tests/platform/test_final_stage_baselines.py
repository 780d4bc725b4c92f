"""The final stage end to end with the baselines: a checkpoint of baselines/ (tiny CPU configurations: an
untrained seeded embedder on images whose identities share a colour, a detector trained for seconds) -> the kit's
ordinary prediction file, uploaded and scored -> `starter_kit.package_model` -> the platform's archive check -> the
bubblewrap sandbox on the hidden images -> the ordinary scorer: the reproduced score equals the uploaded one."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from arena.models import ModelSubmission, Submission
from arena_testkit import upload

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed (make test does)")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def final_app(app, tmp_path):
    app.config.update(SANDBOX_WALL_SECONDS=300, SANDBOX_THREADS=1, SPEED_FRAMES=1)
    return app


@pytest.fixture
def images(tmp_path, data):
    """The hidden test images of both tracks: coloured scenes with a bright square where the boxes are."""
    from PIL import Image

    rng = np.random.default_rng(3)
    folder = tmp_path / "test_images"
    folder.mkdir()
    for i, name in enumerate(data.det_names):
        canvas = rng.integers(0, 80, size=(360, 400, 3), dtype=np.uint8)
        for box in data.det_boxes[data.det_index == i].astype(int):
            canvas[box[1] : box[3] + 1, box[0] : box[2] + 1] = (230, 200, 40)
        Image.fromarray(canvas).save(folder / name, format="PNG")
    colours = rng.integers(0, 256, size=(len(data.rec_labels.labels), 3))  # an identity's images share a colour
    for name, label, own in zip(data.rec_labels.image_names, data.rec_labels.labels, colours, strict=True):
        colour = colours[label] if label >= 0 else own
        noisy = np.clip(colour + rng.integers(-12, 12, size=(24, 24, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(noisy).save(folder / name, format="PNG")
    return folder


def _stage(db, data, challenge, images):
    from arena.sandbox import service
    from arena.services.challenges import load_bundle

    text = (data.folder / "challenge.yaml").read_text()
    load_bundle(db, text.replace("final_submissions: 2", "final_submissions: 2\n    accepts_models: true"), data.folder)
    for track in challenge.tracks:
        service.import_test_images(db, None, track, images)


def _upload_and_score(final_app, client, headers, content: bytes, track: str) -> int:
    from arena_testkit import run_worker

    response = upload(client, headers, content, track=track, name="predictions")
    assert response.status_code == 202, response.get_json()
    run_worker(final_app)
    return response.get_json()["id"]


def _reproduce(final_app, db, team_user, challenge, archive: Path, track: str, sub_id: int) -> dict:
    from arena.sandbox import service
    from arena.sandbox.jobs import run_model

    user, _headers, _team = team_user
    model = service.submit_model(db, user, challenge, "dev", track, io.BytesIO(archive.read_bytes()), "m.zip", sub_id)
    with final_app.app_context():
        run_model(model.id)
    db.expire_all()
    model = db.get(ModelSubmission, model.id)
    assert model.state == "finished", (model.error, model.log_tail)
    return service.reproduction(model)


def test_a_packaged_recognition_baseline_reproduces_its_uploaded_features(
    final_app, client, db, challenge, data, team_user, images, tmp_path
):
    from facedata.crops import crop_face, load_rgb
    from scorer.formats import write_features
    from starter_kit import package_model, train
    from starter_kit.config import load_config
    from starter_kit.predict import embed_faces, load_embedder

    _stage(db, data, challenge, images)
    cfg = load_config(
        [ROOT / "baselines/configs/arcface.yaml", ROOT / "baselines/configs/cpu_smoke.yaml"],
        [f"runtime.run_dir={tmp_path / 'run'}", "data.enlarge_rate=0.5"],
        defaults=train.DEFAULTS,
        open=train.OPEN_SECTIONS,
    )
    torch.manual_seed(0)
    checkpoint = tmp_path / "checkpoint.pt"
    torch.save({"model": train.build_train_model(cfg, num_classes=6).state_dict(), "config": cfg}, checkpoint)
    embedder, _ = load_embedder(checkpoint, torch.device("cpu"))
    size, rate = cfg["data"]["image_size"], cfg["data"]["enlarge_rate"]
    labels = data.rec_labels
    pairs = zip(labels.image_names, labels.boxes, strict=True)
    crops = np.stack([crop_face(load_rgb(images / name), box, rate, size) for name, box in pairs])
    features = embed_faces(embedder, crops, torch.device("cpu"), bf16=False, channels_last=False)
    write_features(tmp_path / "features.bin", features)
    sub_id = _upload_and_score(final_app, client, team_user[1], (tmp_path / "features.bin").read_bytes(), "recognition")

    archive = tmp_path / "embedder.zip"
    assert package_model.main(["--checkpoint", str(checkpoint), "--out", str(archive)]) == 0
    report = _reproduce(final_app, db, team_user, challenge, archive, "recognition", sub_id)
    submitted = db.get(Submission, sub_id)
    assert report["splits"]["private"]["submitted"] == submitted.private_score > 0  # not 0 == 0
    assert report["verdict"] == "reproduced", report
    assert report["max_difference"] == pytest.approx(0, abs=1e-9)


def test_a_packaged_detection_baseline_reproduces_its_uploaded_boxes(
    final_app, client, db, challenge, data, team_user, images, tmp_path
):
    from baselines.detection.config import load_config
    from baselines.detection.data import DetectionItem
    from starter_kit import package_model, predict_detection
    from starter_kit.train_detection import train

    _stage(db, data, challenge, images)
    cfg = load_config(
        "tiny_cpu", ["epochs=6", "repeat=4", "val_every=6", "scale_min=1.0", "scale_max=1.0", "flip=false", "lr=0.01"]
    )
    items = [DetectionItem(images / n, data.det_boxes[data.det_index == i]) for i, n in enumerate(data.det_names)]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the machine is shared
    try:
        train(cfg, tmp_path / "run", items, items[:4], progress=False)
    finally:
        torch.set_num_threads(threads)
    checkpoint = next((tmp_path / "run").glob("*.pt"))
    det_images = tmp_path / "det_images"
    det_images.mkdir()
    for name in data.det_names:
        shutil.copy(images / name, det_images / name)
    out = tmp_path / "predictions.csv"
    argv = ["--checkpoint", str(checkpoint), "--images", str(det_images), "--out", str(out)]
    assert predict_detection.main([*argv, "--workers", "0", "--device", "cpu", "--no-progress"]) == 0
    sub_id = _upload_and_score(final_app, client, team_user[1], out.read_bytes(), "detection")

    archive = tmp_path / "detector.zip"
    assert package_model.main(["--checkpoint", str(checkpoint), "--out", str(archive)]) == 0
    report = _reproduce(final_app, db, team_user, challenge, archive, "detection", sub_id)
    assert report["splits"]["private"]["submitted"] > 0  # a trained detector: the equality below is not 0 == 0
    assert report["splits"]["private"]["difference"] == pytest.approx(0, abs=1e-9)
    assert report["speed"]["frame_size"] == [1920, 1080] and report["speed"]["ms_per_image"] > 0
