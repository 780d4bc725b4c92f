"""`python -m scorer`: JSON output, exit status 2 and one line for an invalid submission, 1 for other failures."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from scorer.demo import write_example

DETECTION_KEYS = {
    "ap50", "coco_ap", "coco_ap50", "coco_ap75", "coco_ap_small", "coco_ap_medium", "coco_ap_large", "coco_ar100",
    "num_gt", "num_detections", "num_images", "pr_curve",
}  # fmt: skip
RECOGNITION_KEYS = {
    "rank1", "cmc", "verification_accuracy", "verification_auc", "tar_at_far_1e-3", "num_pairs", "num_distractors",
    "dim",
}  # fmt: skip


def _scorer(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scorer", *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    return write_example(tmp_path_factory.mktemp("example"))


def test_detection_json_has_every_metric_of_the_contract(example):
    run = _scorer("detection", str(example["gt.csv"]), str(example["detections.csv"]), "--json")
    assert run.returncode == 0, run.stderr
    scores = json.loads(run.stdout)
    assert set(scores) == DETECTION_KEYS
    assert 0.0 < scores["ap50"] <= 1.0
    assert scores["num_images"] == 200


def test_recognition_json_has_every_metric_of_the_contract(example):
    run = _scorer(
        "recognition", str(example["info.txt"]), str(example["features.bin"]),
        "--verification-pairs", str(example["pairs.txt"]), "--json",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    scores = json.loads(run.stdout)
    assert set(scores) == RECOGNITION_KEYS
    assert scores["cmc"]["1"] == scores["rank1"]
    assert scores["dim"] == 64 and scores["num_distractors"] == 100
    assert 0.0 < scores["verification_auc"] <= 1.0


def test_an_invalid_submission_exits_2_with_one_line_naming_the_line(example, tmp_path):
    bad = tmp_path / "bad.csv"
    rows = example["detections.csv"].read_text().splitlines()
    rows[4] = rows[4].replace(",face,", ",cat,")
    bad.write_text("\n".join(rows) + "\n")
    run = _scorer("detection", str(example["gt.csv"]), str(bad), "--json")
    assert run.returncode == 2
    assert run.stdout == ""
    assert run.stderr.strip().count("\n") == 0
    assert "line 5" in run.stderr and "'face'" in run.stderr


def test_a_feature_file_of_the_wrong_size_exits_2(example, tmp_path):
    bad = tmp_path / "short.bin"
    bad.write_bytes(example["features.bin"].read_bytes()[:-8])
    run = _scorer("recognition", str(example["info.txt"]), str(bad))
    assert run.returncode == 2
    assert "not a multiple of 8" in run.stderr


def test_a_broken_label_file_exits_1_and_does_not_blame_the_submission(example, tmp_path):
    broken = tmp_path / "gt.csv"
    broken.write_text("a.jpg,1,2,3\n")
    run = _scorer("detection", str(broken), str(example["detections.csv"]))
    assert run.returncode == 1
    assert "invalid label file" in run.stderr


def test_the_human_readable_output_lists_the_primary_metric(example):
    run = _scorer("detection", str(example["gt.csv"]), str(example["detections.csv"]))
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("ap50")
