"""The RESULTS.md table from the run folders that baselines/run_all.sh leaves: one markdown row per run.

    python baselines/results_table.py runs/baselines --gpu "NVIDIA H100 80GB HBM3"

Reads each RUN/scores.json (scorer's --json output), RUN/metrics.csv (starter_kit.train) and RUN/wall_s. images/s is
the median over the epochs after the first (the first holds cuDNN autotuning and loader start-up).
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
from pathlib import Path

ORDER = [
    "softmax",
    "sphereface",
    "cosface",
    "arcface",
    "combined",
    "focal_arcface",
    "inter_fusion",
    "intra_fusion",
    "full_model",
]
HEADER = (
    "| method | rank-1 | CMC@5 | CMC@10 | verification acc. | AUC | epochs | images/s | wall time | GPU |\n"
    "|---|---|---|---|---|---|---|---|---|---|"
)


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def row(run_dir: Path, gpu: str) -> str | None:
    """One table row, or None when the run has no scores yet."""
    scores_path = run_dir / "scores.json"
    if not scores_path.exists():
        return None
    scores = json.loads(scores_path.read_text())
    with open(run_dir / "metrics.csv", newline="") as f:
        epochs = list(csv.DictReader(f))
    speeds = [float(e["images_per_s"]) for e in epochs[1:]] or [float(e["images_per_s"]) for e in epochs]
    wall = run_dir / "wall_s"
    wall_text = f"{int(wall.read_text()) / 60:.1f} min" if wall.exists() else "-"
    return (
        f"| {run_dir.name} | {_pct(scores['rank1'])} | {_pct(scores['cmc']['5'])} | {_pct(scores['cmc']['10'])} | "
        f"{_pct(scores.get('verification_accuracy'))} | {_pct(scores.get('verification_auc'))} | {len(epochs)} | "
        f"{statistics.median(speeds):,.0f} | {wall_text} | {gpu} |"
    )


def table(work: Path, gpu: str) -> str:
    names = [n for n in ORDER if (work / n).is_dir()] + sorted(
        p.name for p in work.iterdir() if p.is_dir() and p.name not in ORDER and (p / "scores.json").exists()
    )
    rows = [r for r in (row(work / n, gpu) for n in names) if r]
    return "\n".join([HEADER, *rows])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path, help="the folder holding one folder per run")
    parser.add_argument("--gpu", default="-", help="the GPU's name, for the table")
    args = parser.parse_args(argv)
    print(table(args.work, args.gpu))
    return 0


if __name__ == "__main__":
    sys.exit(main())
