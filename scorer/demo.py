"""`python -m scorer.demo [DIR]`: write a small synthetic example of every file and score it with the command line.

It shows a participant what valid files look like and what the scorer prints. The boxes and features are random
(seeded): the scores mean nothing beyond showing that a better-than-chance submission scores above chance.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

from scorer import formats
from scorer.cli import main as score


def write_example(out: Path, seed: int = 0) -> dict[str, Path]:
    """Write detection GT + submission and recognition info + features + verification pairs under out."""
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    paths = {name: out / name for name in ("gt.csv", "detections.csv", "info.txt", "features.bin", "pairs.txt")}

    names = [f"demo_{i:04d}.jpg" for i in range(200)]
    faces = rng.integers(1, 6, size=len(names))
    image_index = np.repeat(np.arange(len(names)), faces)
    xy = rng.uniform(0, 1800, size=(len(image_index), 2))
    size = rng.uniform(16, 200, size=(len(image_index), 1))
    boxes = np.round(np.hstack([xy, xy + size]))
    formats.write_detection_labels(paths["gt.csv"], names, image_index, boxes)
    labels = formats.read_detection_labels(paths["gt.csv"])
    found = rng.random(len(boxes)) < 0.8
    jitter = rng.normal(0, 0.08, size=(found.sum(), 4)) * np.repeat(size[found], 4, axis=1)
    false_alarms = 100
    fa_image = rng.integers(0, len(names), false_alarms)
    fa_xy = rng.uniform(0, 1800, size=(false_alarms, 2))
    det_boxes = np.vstack([boxes[found] + jitter, np.hstack([fa_xy, fa_xy + 50])])
    det_boxes[:, 2:] = np.maximum(det_boxes[:, 2:], det_boxes[:, :2])
    detections = formats.Detections(
        np.concatenate([image_index[found], fa_image]),
        det_boxes,
        np.concatenate([rng.uniform(0.4, 1.0, found.sum()), rng.uniform(0.0, 0.7, false_alarms)]),
    )
    formats.write_detection_submission(paths["detections.csv"], labels.image_names, detections)

    identity = np.repeat(np.arange(50), rng.integers(5, 18, size=50))
    identity = np.concatenate([identity, np.full(100, -1)])
    test_names = tuple(f"rectest_{i:05d}.jpg" for i in range(len(identity)))
    rec_labels = formats.RecognitionLabels(
        test_names,
        np.tile([10.0, 10, 110, 110], (len(identity), 1)),
        identity,
        formats.all_same_identity_pairs(identity),
    )
    formats.write_recognition_labels(paths["info.txt"], rec_labels)
    centres = rng.normal(size=(50, 64))
    feats = rng.normal(size=(len(identity), 64)) * 1.2
    feats[identity >= 0] += centres[identity[identity >= 0]]
    formats.write_features(paths["features.bin"], feats)
    labelled = np.flatnonzero(identity >= 0)
    a = rng.choice(labelled, 600)
    same = np.arange(600) % 2 == 0
    b = np.array(
        [
            rng.choice(np.flatnonzero(identity == identity[x])) if s else rng.choice(labelled)
            for x, s in zip(a, same, strict=True)
        ]
    )
    keep = (a != b) & ((identity[a] == identity[b]) == same)
    pairs = formats.VerificationPairs(a[keep], b[keep], same[keep], np.arange(keep.sum()) % 10)
    formats.write_verification_pairs(paths["pairs.txt"], test_names, pairs)
    return paths


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0]) if argv else Path(tempfile.mkdtemp(prefix="scorer-demo-"))
    paths = write_example(out)
    print(f"example files in {out}\n\n$ python -m scorer detection gt.csv detections.csv")
    status = score(["detection", str(paths["gt.csv"]), str(paths["detections.csv"])])
    print("\n$ python -m scorer recognition info.txt features.bin --verification-pairs pairs.txt")
    status |= score(
        [
            "recognition",
            str(paths["info.txt"]),
            str(paths["features.bin"]),
            "--verification-pairs",
            str(paths["pairs.txt"]),
        ]
    )
    return status


if __name__ == "__main__":
    sys.exit(main())
