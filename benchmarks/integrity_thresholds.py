"""Measure the statistics behind arena's integrity flags (arena/integrity.py), to choose their thresholds.

Recognition: the mean per-image cosine of two feature files. Independent submissions come from unrelated feature
spaces (a random rotation of well-clustered features, as two separately trained models give); copies are one file
with Gaussian noise of a relative size added, or cast to float16. Detection: the share of twin boxes (same image,
IoU >= 0.95, confidence within 0.01). Independent detectors see the same faces with their own localisation error
(a share of the box size) and their own confidences; copies are one file with boxes nudged by up to a pixel and the
confidences rounded to 2 decimals.

    python benchmarks/integrity_thresholds.py      # prints a table (docs/operations.md records it)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "platform"))

from arena.jobs.similarity import box_agreement, feature_agreement  # noqa: E402

from scorer.formats import Detections  # noqa: E402

RNG = np.random.default_rng(2020)
TRIALS = 20


def _features(n=2000, d=512, ids=400):
    labels = RNG.integers(0, ids, size=n)
    centers = RNG.normal(size=(ids, d))
    return centers[labels] + 0.3 * RNG.normal(size=(n, d))


def _rotation(d=512):
    q, _r = np.linalg.qr(RNG.normal(size=(d, d)))
    return q


def recognition() -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"independent": [], "float16 copy": []}
    for noise in (0.1, 0.3, 0.5, 1.0):
        out[f"copy + noise {noise}"] = []
    for _ in range(TRIALS):
        a = _features()
        out["independent"].append(feature_agreement(a, a @ _rotation() + 0.3 * RNG.normal(size=a.shape))[0])
        out["float16 copy"].append(feature_agreement(a, a.astype(np.float16).astype(np.float64))[0])
        scale = np.linalg.norm(a, axis=1, keepdims=True) / np.sqrt(a.shape[1])
        for noise in (0.1, 0.3, 0.5, 1.0):
            noisy = a + noise * scale * RNG.normal(size=a.shape)
            out[f"copy + noise {noise}"].append(feature_agreement(a, noisy)[0])
    return out


def _detector(gt_boxes, gt_image, error):
    size = (gt_boxes[:, 2:] - gt_boxes[:, :2]).mean(axis=1, keepdims=True)
    boxes = gt_boxes + error * size * RNG.normal(size=gt_boxes.shape)
    boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 1)
    return Detections(gt_image.copy(), boxes, RNG.uniform(0.3, 1.0, size=len(gt_image)))


def detection() -> dict[str, list[float]]:
    out: dict[str, list[float]] = {f"independent, error {e}": [] for e in (0.01, 0.03, 0.05)}
    out["copy, boxes nudged 1 px, scores rounded"] = []
    for _ in range(TRIALS):
        image = np.repeat(np.arange(500), 3)
        corners = RNG.uniform(0, 900, size=(len(image), 2))
        gt = np.concatenate([corners, corners + RNG.uniform(30, 200, size=(len(image), 2))], axis=1)
        for e in (0.01, 0.03, 0.05):
            out[f"independent, error {e}"].append(box_agreement(_detector(gt, image, e), _detector(gt, image, e))[0])
        a = _detector(gt, image, 0.03)
        copy = Detections(a.image_index, a.boxes + RNG.uniform(-1, 1, size=a.boxes.shape), np.round(a.scores, 2))
        out["copy, boxes nudged 1 px, scores rounded"].append(box_agreement(a, copy)[0])
    return out


def main() -> None:
    for title, table in (("recognition: mean cosine", recognition()), ("detection: twin-box share", detection())):
        print(f"\n{title} ({TRIALS} trials each)")
        print(f"{'pair':<42} {'min':>7} {'mean':>7} {'max':>7}")
        for name, values in table.items():
            print(f"{name:<42} {min(values):7.3f} {np.mean(values):7.3f} {max(values):7.3f}")


if __name__ == "__main__":
    main()
