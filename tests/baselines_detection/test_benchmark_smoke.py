"""The inference-speed benchmark runs (its timings are only meaningful on the GPU machine; nothing is asserted on
them here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_inference_benchmark_produces_every_cpu_row(tmp_path):
    out = tmp_path / "rows.json"
    command = [
        sys.executable,
        str(ROOT / "benchmarks" / "detection_inference.py"),
        "--config",
        "tiny_cpu",
        "--images",
        "2",
        "--size",
        "96x64",
        "--device",
        "cpu",
        "--workers",
        "1",
        "--json",
        str(out),
    ]
    done = subprocess.run(
        command, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rows = json.loads(out.read_text())["rows"]
    assert [row["case"] for row in rows] == ["model fp32 b1", "end to end (JPEG → CSV)"]  # bf16 rows: CUDA only
    assert all(row["images"] == 2 and row["seconds"] > 0 for row in rows)
    assert "| model fp32 b1 |" in done.stdout
