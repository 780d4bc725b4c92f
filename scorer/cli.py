"""`python -m scorer`: score a detection or recognition submission from files (FORMATS.md §4).

Exit status: 0 scored, 2 the submission is invalid (one line on stderr naming the problem and its line),
1 anything else (a broken label file, a missing file, a bug).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from scorer import formats

EXIT_INVALID_SUBMISSION = 2
EXIT_FAILURE = 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m scorer", description=__doc__.splitlines()[0])
    tracks = parser.add_subparsers(dest="track", required=True)

    det = tracks.add_parser("detection", help="score a detection CSV against the hidden GT CSV")
    det.add_argument("labels", type=Path, help="hidden GT, rows image,x1,y1,x2,y2,face")
    det.add_argument("submission", type=Path, help="submission, rows image,x1,y1,x2,y2,face,score (or .gz/.zip)")
    det.add_argument("--max-boxes-per-image", type=int, default=formats.DEFAULT_MAX_BOXES_PER_IMAGE)
    det.add_argument("--max-bytes", type=int, default=formats.DEFAULT_MAX_DETECTION_BYTES)
    det.add_argument("--no-coco", action="store_true", help="only ap50 and the PR curve (faster)")

    rec = tracks.add_parser("recognition", help="score a feature file against the hidden test info")
    rec.add_argument("labels", type=Path, help="hidden icartoonface_rectest_info.txt")
    rec.add_argument("submission", type=Path, help="raw float64 N x d (.bin) or .npy, optionally .gz/.zip")
    rec.add_argument("--verification-pairs", type=Path, help="hidden icartoonface_verification_pairs.txt")
    rec.add_argument("--max-dim", type=int, default=formats.MAX_FEATURE_DIM)

    for sub in (det, rec):
        sub.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    return parser


def _score_detection(args) -> dict:
    from scorer.detection import evaluate_detection

    labels = formats.read_detection_labels(args.labels)
    detections = formats.read_detection_submission(
        args.submission,
        labels.image_names,
        max_boxes_per_image=args.max_boxes_per_image,
        max_bytes=args.max_bytes,
    )
    return evaluate_detection(labels, detections, coco=not args.no_coco).to_dict()


def _score_recognition(args) -> dict:
    from scorer.recognition import evaluate_recognition

    labels = formats.read_recognition_labels(args.labels)
    verification = None
    if args.verification_pairs is not None:
        verification = formats.read_verification_pairs(args.verification_pairs, labels.image_names)
    features = formats.read_features(args.submission, len(labels.image_names), max_dim=args.max_dim)
    return evaluate_recognition(labels, features, verification).to_dict()


def _print_table(scores: dict) -> None:
    for key, value in scores.items():
        if key == "pr_curve":
            continue
        if isinstance(value, dict):
            value = "  ".join(f"@{k}: {v:.4f}" for k, v in value.items())
        elif isinstance(value, float) and np.isfinite(value):
            value = f"{value:.4f}"
        print(f"{key:<24}{value}")


def _finite_or_none(value):
    """JSON has no NaN: an undefined metric is null."""
    if isinstance(value, dict):
        return {key: _finite_or_none(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_or_none(item) for item in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        scores = _score_detection(args) if args.track == "detection" else _score_recognition(args)
    except formats.SubmissionError as error:
        print(f"invalid submission: {error}", file=sys.stderr)
        return EXIT_INVALID_SUBMISSION
    except formats.LabelError as error:
        print(f"invalid label file: {error}", file=sys.stderr)
        return EXIT_FAILURE
    if args.json:
        json.dump(_finite_or_none(scores), sys.stdout, allow_nan=False)
        sys.stdout.write("\n")
    else:
        _print_table(scores)
    return 0
