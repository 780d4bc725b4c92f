"""`flask demo DATA` posts the committed reference runs (baselines/results/<run>/baseline.json) as baseline rows,
scored by the worker like any submission, once, and only when DATA is the data they were predicted on."""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from arena import states
from arena.models import Submission
from arena_testkit import run_worker
from sqlalchemy import select

from baselines.results_table import HIDDEN


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "tiny"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "facedata",
            "synth",
            "--preset",
            "tiny",
            "--out",
            str(out),
            "--seed",
            "0",
            "--no-progress",
        ],
        check=True,
        capture_output=True,
    )
    return out


def _results(tmp_path: Path, data: Path) -> Path:
    """A results folder like baselines/results: one recognition run (float16 .npy.gz), one detection run."""
    import hashlib

    results = tmp_path / "results"
    rec, det = results / "arcface-seed0", results / "detection-seed0"
    rec.mkdir(parents=True)
    det.mkdir()
    n = len((data / "icartoonface_rectest_det.txt").read_text().splitlines())
    buffer = io.BytesIO()
    np.save(buffer, np.random.default_rng(0).normal(size=(n, 16)).astype(np.float16))
    (rec / "features.npy.gz").write_bytes(gzip.compress(buffer.getvalue()))
    gt = (data / "hidden" / "personai_icartoonface_detval.csv").read_text().splitlines()
    (det / "submission.csv").write_text("".join(f"{line},0.9\n" for line in gt))
    for run, track, file, name in (
        (rec, "recognition", "features.npy.gz", "ArcFace (CPU reference)"),
        (det, "detection", "submission.csv", "CenterNet R18 (CPU reference)"),
    ):
        title = name.removesuffix(" (CPU reference)")
        spec = {"track": track, "file": file, "name": name, "method_name": title, "note": f"run {run.name}"}
        (run / "baseline.json").write_text(json.dumps(spec))
    hashes = {n: hashlib.sha256((data / "hidden" / n).read_bytes()).hexdigest() for n in HIDDEN}
    (results / "dataset.json").write_text(json.dumps({"data": "tiny", "hidden_sha256": hashes}))
    return results


def _baselines(app):
    from arena.db import get_session

    with app.app_context():
        session = get_session()
        session.expire_all()
        return {s.baseline_name: s.state for s in session.scalars(select(Submission).where(Submission.is_baseline))}


def test_demo_posts_the_reference_runs_once_and_the_worker_scores_them(app, tiny, tmp_path, monkeypatch):
    monkeypatch.setattr("arena.demo.RESULTS", _results(tmp_path, tiny))
    runner = app.test_cli_runner()
    result = runner.invoke(args=["demo", str(tiny)])
    assert result.exit_code == 0, result.output
    assert "baseline row 'ArcFace (CPU reference)' posted" in result.output
    assert set(_baselines(app)) == {"ArcFace (CPU reference)", "CenterNet R18 (CPU reference)"}
    run_worker(app)
    assert set(_baselines(app).values()) == {states.FINISHED}
    board = app.test_client().get("/api/v1/challenges/synthetic-demo/phases/dev/tracks/recognition/leaderboard")
    (row,) = [r for r in board.get_json()["rows"] if r["baseline"]]
    assert row["method"] == {"name": "ArcFace", "description": "run arcface-seed0", "paper_url": None, "code_url": None}
    again = runner.invoke(args=["demo", str(tiny)])  # a second `make demo` posts nothing new
    assert again.exit_code == 0 and "posted" not in again.output
    assert len(_baselines(app)) == 2


def test_demo_posts_no_baseline_row_for_other_data(app, tiny, tmp_path, monkeypatch):
    results = _results(tmp_path, tiny)
    spec = json.loads((results / "dataset.json").read_text())
    spec["hidden_sha256"]["icartoonface_rectest_info.txt"] = "0" * 64
    (results / "dataset.json").write_text(json.dumps(spec))
    monkeypatch.setattr("arena.demo.RESULTS", results)
    result = app.test_cli_runner().invoke(args=["demo", str(tiny)])
    assert result.exit_code == 0 and "baseline rows not posted" in result.output
    assert f"remove {tiny}, then `make demo` again" in result.output  # what to do about it
    assert _baselines(app) == {}
