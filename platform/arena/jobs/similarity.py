"""How alike two submissions of one track are: the statistic that integrity.py flags on, computed cheaply.

- recognition: the mean cosine of the two features of each test image (independent models: near 0, their feature
  spaces are unrelated);
- detection: the share of boxes with a twin in the other file (same image, IoU >= BOX_IOU and confidence within
  BOX_SCORE_TOLERANCE), over the larger file.

A scored submission is compared with up to INTEGRITY_MAX_COMPARE others. Parsing each of them in full (92 MB of
features at the official size, twice per pair) would cost a hundred times the score itself, so each submission gets
a sketch: its predictions on SKETCH_IMAGES test images drawn with a seed made of the server's secret key and the
labels' sha256 (a participant cannot know which images), written once under `sketches/` in the file store (named by
the file's sha256 and a hash of the sample's seed) and read from there by any worker afterwards. The sketched
statistic screens each pair; a pair is compared in full only when it comes within SCREEN_MARGIN of the threshold,
and a flag's statistic and evidence are always the full ones. A per-image cosine lies in [-1, 1], so the mean over
512 images drawn without replacement strays from the mean over all images by more than 0.3 with probability below 2
exp(-512 * 0.3**2 / 2), about 2e-10 (Hoeffding; tests/platform/test_integrity_sketch.py checks the screening against
full comparisons).
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import numpy as np

from scorer.coco import image_pairs, pair_iou
from scorer.formats import Detections, read_detection_labels, read_detection_submission, read_features
from scorer.formats import read_recognition_labels as _read_recognition_labels

from .. import storage

SKETCH_IMAGES = 512
SCREEN_MARGIN = 0.3
SKETCH_FOLDER = "sketches"
BOX_IOU = 0.95
BOX_SCORE_TOLERANCE = 0.01


class Comparer:
    """Compares one submission (parsed once, on first need) with others of its track: `compare(other, threshold)`
    -> (statistic, evidence). storage_dir: the file store; secret: the app's secret key (seeds the sketch)."""

    def __init__(self, sub, storage_dir: str, secret: str):
        self.sub, self.storage_dir, self.secret = sub, storage_dir, secret
        self.labels = self.label_sha = self.sample = self.sample_key = None  # read on the first comparison
        self._full = self._mine = None
        self.full_parses = 0  # how many files this comparer parsed in full (the tests count them)

    def _prepare(self) -> None:
        from . import _cached, _label_path  # the package's label cache (imported here: the package imports us)

        kind = "test_info" if self.sub.track.kind == "recognition" else "detection_gt"
        path, self.label_sha = _label_path(self.sub, kind, self.storage_dir)
        reader = _read_recognition_labels if kind == "test_info" else read_detection_labels
        self.labels = _cached((kind, self.label_sha), path, reader)
        seed = hashlib.sha256(f"{self.secret}:{self.label_sha}:{SKETCH_IMAGES}".encode()).digest()
        self.sample_key = seed.hex()[:32]  # names the sample in the sketch files (a sketch is only ever compared
        # with sketches of the same images)
        rng = np.random.default_rng(int.from_bytes(seed[:8], "little"))
        num_images = len(self.labels.image_names)
        self.sample = np.sort(rng.choice(num_images, size=min(SKETCH_IMAGES, num_images), replace=False))

    def compare(self, other, threshold: float) -> tuple[float, dict]:
        if self._mine is None:
            self._prepare()
            self._mine = self.sketch(self.sub)
        screened = _statistic(self.sub.track.kind, self._mine, self.sketch(other))[0]
        if screened < threshold - SCREEN_MARGIN:
            return screened, {"screened_on_images": len(self.sample), "sketched_statistic": round(screened, 6)}
        if self._full is None:
            self._full = self._parse(self.sub)
        return _statistic(self.sub.track.kind, self._full, self._parse(other))

    def sketch(self, sub):
        """The submission's predictions on the sampled images, from the file store, made there on first need."""
        path = storage.resolve(self.storage_dir, f"{SKETCH_FOLDER}/{sub.sha256}-{self.sample_key}.npz")
        if path.exists():
            with np.load(path) as stored:
                return _from_arrays(self.sub.track.kind, stored)
        predictions = self._parse(sub)
        if sub.id == self.sub.id:
            self._full = predictions
        sketched = _restricted(self.sub.track.kind, predictions, self.sample)
        _write_atomically(path, _to_arrays(self.sub.track.kind, sketched))
        return sketched

    def _parse(self, sub):
        self.full_parses += 1
        path = storage.resolve(self.storage_dir, sub.stored_path)
        if sub.track.kind == "recognition":
            return read_features(path, len(self.labels.image_names))
        limits = {"max_boxes_per_image": sub.track.max_boxes_per_image, "max_bytes": sub.track.max_upload_bytes}
        return read_detection_submission(path, self.labels.image_names, **limits)


def prediction_similarity(sub, other, storage_dir: str, secret: str = "") -> tuple[float, dict]:
    """The full statistic of one pair (no screening): (statistic, evidence)."""
    return Comparer(sub, storage_dir, secret).compare(other, threshold=float("-inf"))


def _statistic(kind: str, a, b) -> tuple[float, dict]:
    return feature_agreement(a, b) if kind == "recognition" else box_agreement(a, b)


def _restricted(kind: str, predictions, sample: np.ndarray):
    if kind == "recognition":
        return np.asarray(predictions[sample], dtype=np.float32)
    keep = np.isin(predictions.image_index, sample)
    return Detections(predictions.image_index[keep], predictions.boxes[keep], predictions.scores[keep])


def _to_arrays(kind: str, sketched) -> dict[str, np.ndarray]:
    if kind == "recognition":
        return {"features": sketched}
    return {"image_index": sketched.image_index, "boxes": sketched.boxes, "scores": sketched.scores}


def _from_arrays(kind: str, stored):
    if kind == "recognition":
        return stored["features"]
    return Detections(stored["image_index"], stored["boxes"], stored["scores"])


def _write_atomically(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write the sketch under a temporary name and rename it: another worker never reads half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_bytes(buffer.getvalue())
    os.replace(partial, path)


def feature_agreement(a: np.ndarray, b: np.ndarray) -> tuple[float, dict]:
    """a, b: float (N, D) features of the same N test images -> (mean per-image cosine, evidence)."""
    if a.shape != b.shape:
        return 0.0, {"reason": f"different feature sizes {a.shape[1]} and {b.shape[1]}"}
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)  # a zero row has cosine 0 with anything
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    cosine = np.einsum("ij,ij->i", a, b)
    return float(cosine.mean()), {
        "mean_cosine": round(float(cosine.mean()), 6),
        "images": int(len(cosine)),
        "images_above_0.99": int((cosine > 0.99).sum()),
    }


def box_agreement(a, b) -> tuple[float, dict]:
    """a, b: Detections on the same test images -> (share of twin boxes over the larger file, evidence). A box of
    `a` is a twin when a box of `b` on its image overlaps it by IoU >= BOX_IOU with a score within
    BOX_SCORE_TOLERANCE. Every pair of boxes on a shared image at once (one array op, not a loop per image: a
    job compares with up to 200 earlier submissions' sketches)."""
    num_images = int(max(a.image_index.max(initial=-1), b.image_index.max(initial=-1))) + 1
    first, second = image_pairs(b.image_index, a.image_index, num_images)  # (box of a, box of b) on one image
    iou = pair_iou(a.boxes[first], b.boxes[second], plus_one=False)
    close = np.abs(a.scores[first] - b.scores[second]) <= BOX_SCORE_TOLERANCE
    twins = len(np.unique(first[(iou >= BOX_IOU) & close]))
    total = max(len(a), len(b), 1)
    return twins / total, {"twin_boxes": twins, "boxes": [len(a), len(b)], "iou": BOX_IOU}
