"""The scoring benchmarks of issue 3 in one run: `python benchmarks/scoring.py [--only detection|recognition]`.

Runs `benchmarks/scoring_detection.py` (ours vs pycocotools vs faster-coco-eval on the real 2020 test GT with
50,000 detections) and `benchmarks/scoring_recognition.py` (official size against a reimplementation of the 2020
scorer, then the 20,000 × 100,000 distractor-search scale run). Each script also runs alone with its own options.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import scoring_detection  # noqa: E402
import scoring_recognition  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["detection", "recognition"])
    args = parser.parse_args(argv)
    if args.only in (None, "detection"):
        print("## Detection\n")
        scoring_detection.main([])
    if args.only in (None, "recognition"):
        print("\n## Recognition\n")
        return scoring_recognition.main([])
    return 0


if __name__ == "__main__":
    sys.exit(main())
