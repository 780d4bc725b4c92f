"""End to end on CPU: a tiny detector overfits a handful of scenes to a high ap50 (scored by `scorer`), its
checkpoint becomes a valid submission CSV, and the two command lines fail clearly on bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from scorer.detection import evaluate_detection
from scorer.formats import read_detection_labels, read_detection_submission
from starter_kit import predict_detection, train_detection

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_a_tiny_detector_overfits_a_handful_of_scenes_to_a_high_ap50(trained_run):
    out, metrics = trained_run
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in lines] == list(range(1, 21))
    ap50 = [m["val_ap50"] for m in lines]
    assert ap50[0] < 0.5, ap50  # the untrained model fails the bar: the test can fail
    assert min(ap50[-4:]) >= 0.9, ap50  # a plateau of four epochs, not one lucky epoch
    assert metrics["val_ap50"] == ap50[-1]
    assert lines[-1]["loss_total"] < lines[0]["loss_total"]
    assert all(np.isfinite(m["loss_total"]) for m in lines)
    assert {"val_coco_ap", "val_coco_ap_small", "val_coco_ar100"} <= set(lines[-1])  # COCO numbers at the end
    state = torch.load(out / "best.pt", weights_only=True)
    assert state["ap50"] == max(m["val_ap50"] for m in lines if "val_ap50" in m)
    assert (out / "config.yaml").exists() and (out / "last.pt").exists()


@pytest.mark.slow
@pytest.mark.parametrize("flip", [False, True])
def test_predict_writes_a_submission_that_scorer_reads_and_scores_high(
    trained_run, scene_dataset, tmp_path, capsys, flip
):
    out, _ = trained_run
    csv = tmp_path / "submission.csv"
    gt = scene_dataset / "hidden" / "personai_icartoonface_detval.csv"
    argv = [
        "--checkpoint",
        str(out / "last.pt"),  # the end of training, on the plateau (best.pt may be the plateau's first epoch)
        "--data",
        str(scene_dataset),
        "--out",
        str(csv),
        "--workers",
        "0",
        "--labels",
        str(gt),
        "--no-progress",
        "--max-detections",
        "20",
        "--score-threshold",
        "0",
    ]
    assert predict_detection.main(argv + (["--flip-test"] if flip else [])) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    scores = json.loads(printed[-1])
    assert scores["ap50"] >= 0.9

    labels = read_detection_labels(gt)
    detections = read_detection_submission(csv, labels.image_names, max_boxes_per_image=20)
    assert evaluate_detection(labels, detections, coco=False).ap50 == scores["ap50"]
    rows = [line.split(",") for line in csv.read_text().splitlines()]
    by_image: dict[str, list[float]] = {}
    for row in rows:
        assert row[5] == "face"
        by_image.setdefault(row[0], []).append(float(row[6]))
    assert set(by_image) <= set(labels.image_names)
    for image_scores in by_image.values():
        assert len(image_scores) <= 20
        assert image_scores == sorted(image_scores, reverse=True)  # each image's rows by descending score


def test_predict_on_an_untrained_checkpoint_respects_the_cap(scene_dataset, tmp_path, one_thread):
    from baselines.detection.config import load_config
    from baselines.detection.model import build_detector

    cfg = load_config("tiny_cpu")
    checkpoint = tmp_path / "untrained.pt"
    train_detection.save_checkpoint(checkpoint, build_detector(cfg), cfg, epoch=0, ap50=None)
    csv = tmp_path / "sub.csv"
    argv = [
        "--checkpoint",
        str(checkpoint),
        "--images",
        str(scene_dataset / "icartoonface_dettest"),
        "--out",
        str(csv),
        "--workers",
        "0",
        "--no-progress",
        "--score-threshold",
        "0",
        "--max-detections",
        "5",
    ]
    assert predict_detection.main(argv) == 0
    names = sorted(p.name for p in (scene_dataset / "icartoonface_dettest").iterdir())
    detections = read_detection_submission(csv, names, max_boxes_per_image=5)
    assert np.bincount(detections.image_index).max() <= 5


def _garbage_checkpoint(tmp_path: Path) -> Path:
    path = tmp_path / "garbage.pt"
    path.write_bytes(b"not a checkpoint")
    return path


def _foreign_checkpoint(tmp_path: Path) -> Path:
    path = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(1)}, path)
    return path


@pytest.mark.parametrize(
    ("make_checkpoint", "extra", "message"),
    [
        (lambda tmp: tmp / "missing.pt", [], "not found"),
        (_garbage_checkpoint, [], "not a readable torch checkpoint"),
        (_foreign_checkpoint, [], "not a detection checkpoint"),
        (_foreign_checkpoint, ["--max-detections", "101"], "--max-detections must be in 1..100"),
    ],
)
def test_predict_refuses_a_bad_checkpoint_or_cap_with_a_clear_message(
    scene_dataset, tmp_path, capsys, make_checkpoint, extra, message
):
    argv = [
        "--checkpoint",
        str(make_checkpoint(tmp_path)),
        "--data",
        str(scene_dataset),
        "--out",
        str(tmp_path / "s.csv"),
        "--workers",
        "0",
        *extra,
    ]
    assert predict_detection.main(argv) == 2
    assert message in capsys.readouterr().err


def test_predict_refuses_a_folder_without_images(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    argv = ["--checkpoint", "x.pt", "--images", str(tmp_path / "empty"), "--out", str(tmp_path / "s.csv")]
    assert predict_detection.main(argv) == 2
    assert "no images in" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "epoch=2"], "unknown key"),
        (["--config", "no_such_config"], "not found"),
        (["--data", "/nonexistent/dataset"], "icartoonface_dettrain.csv not found"),
        (["--set", "val_fraction=0.999999"], "no training images left"),
    ],
)
def test_train_refuses_bad_arguments_with_a_clear_message(scene_dataset, tmp_path, capsys, args, message):
    argv = ["--config", "tiny_cpu", "--data", str(scene_dataset), "--out", str(tmp_path / "run"), *args]
    assert train_detection.main(argv) == 2
    assert message in capsys.readouterr().err


@pytest.mark.slow
def test_training_runs_under_torchrun_and_resumes(scene_dataset, tmp_path, capsys, one_thread):
    """The DDP code path (torchrun, two processes, gloo on CPU), then --resume continues from last.pt."""
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    base = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "starter_kit.train_detection",
        "--config",
        "tiny_cpu",
        "--data",
        str(scene_dataset),
        "--out",
        str(out),
        "--no-progress",
        "--set",
        "val_fraction=0.8",  # holds out 2 of the 4 scenes (by the hash of their names): one to train per process
    ]
    first = subprocess.run([*base, "--set", "epochs=1"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "epoch 1:" in first.stdout
    # resuming needs no second torchrun: the same script, in this process
    assert (
        train_detection.main(
            [
                "--config",
                "tiny_cpu",
                "--data",
                str(scene_dataset),
                "--out",
                str(out),
                "--no-progress",
                "--set",
                "val_fraction=0.8",
                "--set",
                "epochs=2",
                "--resume",
            ]
        )
        == 0
    )
    second = capsys.readouterr()
    assert "resumed from" in second.out and "epoch 2:" in second.out
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in lines] == [1, 2] and lines[0]["world_size"] == 2
    best = max(m["val_ap50"] for m in lines)
    assert torch.load(out / "last.pt", weights_only=True)["best_ap50"] == best  # what a further resume starts from
    assert torch.load(out / "best.pt", weights_only=True)["ap50"] == best


def test_compact_rounds_and_drops_the_lowest_scoring_rows_to_fit_the_byte_cap(tmp_path):
    from scorer.formats import Detections, write_detection_submission

    rng = np.random.default_rng(0)
    names = [f"personai_icartoonface_detval_{i:05d}.jpg" for i in range(30)]
    count = 600
    corners = rng.uniform(0, 500, (count, 2))
    raw = Detections(
        rng.integers(0, 30, count),
        np.concatenate([corners, corners + rng.uniform(1, 80, (count, 2))], axis=1),
        rng.uniform(0, 1, count),
    )
    full, dropped = predict_detection.compact(raw, names, max_bytes=None)
    assert dropped == 0 and len(full) == count
    assert np.allclose(full.boxes, raw.boxes, atol=0.05) and np.allclose(full.scores, raw.scores, atol=5e-7)
    write_detection_submission(tmp_path / "full.csv", names, full)
    size = (tmp_path / "full.csv").stat().st_size
    assert size == sum(
        predict_detection._row_bytes(names[i], b, s)
        for i, b, s in zip(full.image_index, full.boxes, full.scores, strict=True)
    )

    cap = size // 3
    cut, dropped = predict_detection.compact(raw, names, max_bytes=cap)
    write_detection_submission(tmp_path / "cut.csv", names, cut)
    assert (tmp_path / "cut.csv").stat().st_size <= cap
    assert dropped == count - len(cut) and dropped > 0
    assert cut.scores.min() >= np.sort(full.scores)[::-1][len(cut) - 1]  # the kept rows are the best-scoring ones
    read_detection_submission(tmp_path / "cut.csv", names, max_bytes=cap)


@pytest.mark.parametrize(
    ("module", "argv", "message"),
    [
        ("train", ["--config", "tiny_cpu", "--data", "/nonexistent/dataset", "--out", "x"], "dettrain.csv not found"),
        (
            "predict",
            ["--checkpoint", "missing.pt", "--images", "/nonexistent/images", "--out", "x.csv"],
            "is not a folder of images",
        ),
    ],
)
def test_the_kit_scripts_hand_task_detection_to_the_detection_scripts(module, argv, message, capsys):
    """`python -m starter_kit.train --task detection ...` (and predict) run train_detection / predict_detection."""
    import importlib

    main = importlib.import_module(f"starter_kit.{module}").main
    assert main(["--task", "detection", *argv]) == 2
    assert message in capsys.readouterr().err
