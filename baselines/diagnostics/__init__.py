"""Reproducible measurements of the benchmark and its protocol (baselines/RESULTS.md cites their outputs)."""

from __future__ import annotations

import json
from pathlib import Path


def write_report(report: dict, path: Path | None) -> None:
    """Print a diagnostic's report as JSON and, when path is given, write it there (the file RESULTS.md reads)."""
    text = json.dumps(report, indent=1, default=str)
    print(text)
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
