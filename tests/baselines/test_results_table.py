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
    dataset = json.loads((results / "dataset.json").read_text())
    assert set(dataset["hidden_sha256"]) == set(HIDDEN)
    assert dataset["data"] == "data: not generated (no manifest.json)"  # the real data's layout, say
    (data / "manifest.json").write_text(json.dumps({"preset": "small", "seed": 0, "generator_version": "2"}))
    results_table.write_baseline_specs(results, data)
    assert (
        json.loads((results / "dataset.json").read_text())["data"]
        == "python -m facedata synth --preset small --seed 0 --version 2"
    )


def _protocol_report(official: float, scorer: float) -> dict:
    values = {key: 10.0 + i for i, (key, _) in enumerate(results_table.DIAGNOSTIC_COLUMNS)}
    values |= {"official": official, "scorer_official": scorer}
    test = {"labelled_images": 1000, "distractors": 1500, "lookalike_distractors": 1024, "seen_identities": 90}
    return {"test": test, "rank1": {"softmax_r0": values}}


def test_diagnostics_block_tabulates_the_protocol_variants_and_refuses_a_disagreeing_official(results):
    folder = results / "diagnostics"
    folder.mkdir()
    assert results_table.diagnostics_block(results) == ""
    (folder / "protocol_a.json").write_text(json.dumps(_protocol_report(14.03, 14.03)))
    block = results_table.generated_block(results)
    row = next(line for line in block.splitlines() if line.startswith("| softmax_r0 |"))
    assert row == "| softmax_r0 | 14.03 | " + " | ".join(f"{10.0 + i:.2f}" for i in range(1, 10)) + " |"
    assert "1,024 look-alikes" in block and block.index(row) < block.index(END)
    (folder / "protocol_a.json").write_text(json.dumps(_protocol_report(14.03, 13.9)))
    with pytest.raises(ValueError, match="differs from the scorer"):
        results_table.diagnostics_block(results)


def test_block_shows_the_last_epochs_training_accuracy_and_the_tables_compute(results):
    run = results / "arcface-seed0"
    rows = ["epoch,images_per_s,val_rank1,cpu_s,acc", "1,50,0.1,30,0.01", "2,70,0.6,30,0.2", "3,90,0.6,30,0.25"]
    (run / "metrics.csv").write_text("\n".join(rows) + "\n")
    det = results / "detection-seed0"
    det.mkdir()
    (det / "train_cpu_s").write_text("60\n")
    block = results_table.generated_block(results)
    arcface = next(line for line in block.splitlines() if line.startswith("| ArcFace |"))
    assert "| 25.00 | 60.00 | 3 |" in arcface  # training accuracy of the last epoch, then validation rank-1
    softmax = next(line for line in block.splitlines() if line.startswith("| SoftMax |"))
    assert "| - | 42.00 ± 2.83 |" in softmax  # no acc column in its metrics: no number made up
    # 2 softmax runs x 30 CPU s + arcface 90 + detection 60 = 210 s: 4 CPU-minutes, 2 minutes of the 2 cores
    assert "Compute of the 4 runs: 4 CPU-minutes of training and validation, 2 minutes of the 2 cores" in block


def test_experiments_are_tabulated_beside_the_table_and_never_counted_in_it(results):
    import yaml

    folder = results / "experiments" / "2026-12-06"
    run = folder / "softmax-v3-48px"
    run.mkdir(parents=True)
    config = {
        "name": "softmax-seed0",
        "data": {"root": "data/small_v3", "image_size": 48},
        "loss": {"name": "softmax"},
        "runtime": {"bf16": False},
    }
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    (run / "metrics.csv").write_text("epoch,steps,images_per_s,cpu_s\n1,32,50,20.5\n2,32,60,21.5\n")
    (run / "scores.json").write_text(
        json.dumps({"rank1": 0.1875, "cmc": {"5": 0.3, "10": 0.5}, "verification_accuracy": 0.61})
    )
    (folder / "data.json").write_text(json.dumps({"data/small_v3": {"label": "v3", "command": "synth --version 3"}}))
    (folder / "machine.txt").write_text("cpu: an AVX2 machine\ntorch x\n")
    block = results_table.generated_block(results)
    row = next(line for line in block.splitlines() if line.startswith("| [softmax-v3-48px]"))
    assert "(results/experiments/2026-12-06/softmax-v3-48px/) | SoftMax | v3 | 48 | 2 |" in row
    assert row.endswith("| 64 | float32 | 18.75 | 50.00 | 61.00 | 42 |")
    assert "(machine: cpu: an AVX2 machine; torch x); seed 0 each. Data: v3: `synth --version 3`." in block
    softmax = next(line for line in block.splitlines() if line.startswith("| SoftMax |"))
    assert "| 0, 1 |" in softmax  # the table's runs only: the experiment is not a seed of the SoftMax row


def test_an_earlier_table_is_compared_method_by_method_and_never_counted_in_this_one(results):
    earlier = results / "earlier" / "generator-v2"
    _run(earlier, "softmax-seed0", 0.08, 0.40)
    _run(earlier, "softmax-seed1", 0.10, 0.40)
    _run(earlier, "cosface-seed0", 0.05, 0.30)
    (earlier / "dataset.json").write_text(json.dumps({"data": "facedata synth --preset small --seed 0"}))
    (earlier / "machine.txt").write_text("cpu: an older machine\n\ntorch y\n")
    block = results_table.generated_block(results)
    assert "(data: `facedata synth --preset small --seed 0`; machine: cpu: an older machine; torch y)" in block
    softmax_rows = [line for line in block.splitlines() if line.startswith("| SoftMax |")]
    assert softmax_rows[0].startswith("| SoftMax | 0, 1 | 11.00 ± 1.41 |")  # this table: the earlier runs not in it
    assert softmax_rows[1] == "| SoftMax | 2 | 9.00 ± 1.41 | 2 | 11.00 ± 1.41 | +2.00 |"
    assert "| CosFace | 1 | 5.00 | 0 | - | - |" in block  # no run of it now: no change made up
    assert "Validation rank-1 vs test rank-1 over the 3 runs" in block
    assert "Detection (seed 0)" not in block  # neither table has a detection run
    for folder, ap50 in ((earlier, 0.25), (results, 0.3)):
        (folder / "detection-seed0").mkdir()
        (folder / "detection-seed0" / "scores.json").write_text(json.dumps({"ap50": ap50, "coco_ap": ap50 / 4}))
    assert "Detection (seed 0): ap50 25.00 then, 30.00 now; COCO AP 6.25 then, 7.50 now." in (
        results_table.earlier_block(results, results_table.recognition_runs(results))
    )


def test_the_committed_results_md_is_what_the_committed_runs_generate():
    """baselines/RESULTS.md's generated block is exactly what results_table makes of baselines/results/ (no number
    typed by hand, none left stale after a run was added or changed)."""
    root = Path(__file__).resolve().parents[2] / "baselines"
    assert results_table.generated_block(root / "results") in (root / "RESULTS.md").read_text()
