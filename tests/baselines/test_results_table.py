"""RESULTS.md's generated block and the demo's baseline specs come from the runs' own files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from baselines import results_table
from baselines.results_table import END, HIDDEN, START


def _run(results: Path, name: str, rank1: float, val: float, cpu: float = 10.0) -> None:
    run = results / name
    run.mkdir(parents=True)
    scores = {"rank1": rank1, "cmc": {"5": rank1 + 0.1, "10": rank1 + 0.2}}
    scores |= {"verification_accuracy": 0.6, "verification_auc": 0.65}
    (run / "scores.json").write_text(json.dumps(scores))
    rows = ["epoch,images_per_s,val_rank1,cpu_s", f"1,50,0.1,{cpu}", f"2,70,{val},{cpu}", f"3,90,{val},{cpu}"]
    (run / "metrics.csv").write_text("\n".join(rows) + "\n")
    (run / "features.npy.gz").write_bytes(b"x")


@pytest.fixture
def results(tmp_path) -> Path:
    results = tmp_path / "results"
    _run(results, "softmax-seed0", 0.10, 0.40)
    _run(results, "softmax-seed1", 0.12, 0.44)
    _run(results, "arcface-seed0", 0.30, 0.60)
    (results / "machine.txt").write_text("cpu: a test machine\n")
    return results


def test_block_reports_mean_and_spread_over_seeds_and_the_targets(results):
    block = results_table.generated_block(results)
    assert block.startswith(START) and block.endswith(END) and "cpu: a test machine" in block
    softmax = next(line for line in block.splitlines() if line.startswith("| SoftMax |"))
    assert "| 0, 1 | 11.00 ± 1.41 |" in softmax  # mean and sample s.d. of 10 % and 12 %
    assert "| 3 | 80 | 30 |" in softmax  # epochs, median images/s after the first epoch, CPU seconds
    assert "Best test rank-1: ArcFace, 30.00 %" in block
    assert "SoftMax vs the best margin loss (ArcFace): +19.00 points" in block and "1.41" in block
    assert "over the 3 runs: Pearson 1.00" in block
    assert "No detection run has finished." in block


def test_write_replaces_only_the_generated_block_and_writes_the_baseline_specs(results, tmp_path):
    markdown = tmp_path / "RESULTS.md"
    markdown.write_text(f"# title\n\n{START}\nold\n{END}\n\nafter\n")
    data = tmp_path / "data"
    (data / "hidden").mkdir(parents=True)
    for name in HIDDEN:
        (data / "hidden" / name).write_text(name)
    results_table.write_results(results, markdown)
    results_table.write_baseline_specs(results, data)
    text = markdown.read_text()
    assert text.startswith("# title\n") and text.endswith("\n\nafter\n") and "old" not in text
    spec = json.loads((results / "arcface-seed0" / "baseline.json").read_text())
    assert spec["track"] == "recognition" and spec["file"] == "features.npy.gz" and "arcface.yaml" in spec["note"]
    assert not (results / "softmax-seed1" / "baseline.json").exists()  # one row per method: seed 0
    assert set(json.loads((results / "dataset.json").read_text())["hidden_sha256"]) == set(HIDDEN)
