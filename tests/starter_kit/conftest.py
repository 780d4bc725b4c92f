"""A miniature recognition dataset in the official layout, written with scorer.formats and Pillow.

Each identity is a fixed random 4 x 4 colour pattern; each image shows it inside a box at a random place on a
noisy background, so that a tiny CNN learns it in a few steps. It stands apart from `facedata`'s generator so that
the kit's own tests do not depend on the generator's look; `test_end_to_end.py` also runs on `facedata synth tiny`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from scorer.formats import (
    BoxList,
    RecognitionLabels,
    VerificationPairs,
    all_same_identity_pairs,
    write_recognition_labels,
    write_recognition_test_list,
    write_recognition_train_list,
    write_verification_pairs,
)

SIDE, BOX = 64, 24


def _draw(pattern: np.ndarray, rng: np.random.Generator, path: Path) -> tuple[int, int, int, int]:
    canvas = rng.integers(0, 60, size=(SIDE, SIDE, 3), dtype=np.uint8)
    face = np.kron(pattern, np.ones((BOX // 4, BOX // 4, 1), dtype=np.uint8))
    x1, y1 = (int(v) for v in rng.integers(BOX // 2, SIDE - BOX - BOX // 2, size=2))
    canvas[y1 : y1 + BOX, x1 : x1 + BOX] = np.clip(face.astype(int) + rng.integers(-20, 20, face.shape), 0, 255)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(canvas).save(path, quality=95)
    return x1, y1, x1 + BOX - 1, y1 + BOX - 1


def write_mini_dataset(
    root: Path, *, train_ids=10, per_train=8, test_ids=4, per_test=4, distractors=6, aux_ids=4, per_aux=6, seed=0
) -> Path:
    rng = np.random.default_rng(seed)
    patterns = rng.integers(0, 256, size=(train_ids + test_ids + distractors + aux_ids, 4, 4, 3), dtype=np.uint8)

    def identity_folder(folder: Path, prefix: str, first: int, count: int, per: int) -> BoxList:
        names, boxes, identities = [], [], []
        for k in range(count):
            identity = f"{prefix}_{k:05d}"
            for j in range(per):
                rel = f"{identity}/{identity}_{j:04d}.jpg"
                boxes.append(_draw(patterns[first + k], rng, folder / rel))
                names.append(rel)
                identities.append(identity)
        return BoxList(tuple(names), np.asarray(boxes, dtype=np.float64), tuple(identities))

    write_recognition_train_list(
        root / "icartoonface_rectrain_det.txt",
        identity_folder(root / "icartoonface_rectrain", "personai_icartoonface_rectrain", 0, train_ids, per_train),
    )
    (root / "auxiliary").mkdir(parents=True, exist_ok=True)
    write_recognition_train_list(
        root / "auxiliary" / "icartoonface_auxiliary_det.txt",
        identity_folder(root / "auxiliary", "aux", train_ids + test_ids + distractors, aux_ids, per_aux),
    )
    labels = [k for k in range(test_ids) for _ in range(per_test)] + [-1] * distractors
    order = rng.permutation(len(labels))
    names, boxes, shuffled = [], [], []
    for row, i in enumerate(order):
        name = f"personai_icartoonface_rectest_{row:05d}.jpg"
        pattern = (
            patterns[train_ids + labels[i]] if labels[i] >= 0 else patterns[train_ids + test_ids + i % distractors]
        )
        boxes.append(_draw(pattern, rng, root / "icartoonface_rectest" / name))
        names.append(name)
        shuffled.append(labels[i])
    test = BoxList(tuple(names), np.asarray(boxes, dtype=np.float64))
    write_recognition_test_list(root / "icartoonface_rectest_det.txt", test)
    label_array = np.asarray(shuffled, dtype=np.int64)
    (root / "hidden").mkdir(exist_ok=True)
    write_recognition_labels(
        root / "hidden" / "icartoonface_rectest_info.txt",
        RecognitionLabels(test.names, test.boxes, label_array, all_same_identity_pairs(label_array)),
    )
    same = all_same_identity_pairs(label_array)[:10]
    labelled = np.flatnonzero(label_array >= 0)
    diff = [(a, b) for a in labelled for b in labelled if label_array[a] != label_array[b]][:10]
    a = np.r_[same[:, 0], [p[0] for p in diff]].astype(np.int64)
    b = np.r_[same[:, 1], [p[1] for p in diff]].astype(np.int64)
    write_verification_pairs(
        root / "hidden" / "icartoonface_verification_pairs.txt",
        test.names,
        VerificationPairs(a, b, np.r_[np.ones(len(same), bool), np.zeros(len(diff), bool)], np.arange(len(a)) % 10),
    )
    return root


@pytest.fixture(scope="session")
def mini_dataset(tmp_path_factory) -> Path:
    return write_mini_dataset(tmp_path_factory.mktemp("mini") / "data")


@pytest.fixture
def make_mini_dataset():
    """write_mini_dataset itself, for tests that need their own (small, re-generated) copy."""
    return write_mini_dataset
