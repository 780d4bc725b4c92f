"""The detection integrity statistic (arena/jobs/similarity.py, `box_agreement`) equals its definition computed one
image at a time: the share of boxes of the first file that have a twin in the second (same image, IoU >= BOX_IOU,
score within BOX_SCORE_TOLERANCE), over the larger file."""

from __future__ import annotations

import numpy as np
import pytest
from arena.jobs.similarity import BOX_IOU, BOX_SCORE_TOLERANCE, box_agreement

from scorer.coco import pair_iou
from scorer.formats import Detections


def _per_image(a: Detections, b: Detections) -> tuple[float, int]:
    """The definition, image by image (the loop the vectorised statistic replaced)."""
    twins = 0
    for image in np.intersect1d(a.image_index, b.image_index):
        boxes_a, scores_a = a.boxes[a.image_index == image], a.scores[a.image_index == image]
        boxes_b, scores_b = b.boxes[b.image_index == image], b.scores[b.image_index == image]
        for box, score in zip(boxes_a, scores_a, strict=True):
            iou = pair_iou(np.repeat(box[None], len(boxes_b), 0), boxes_b, plus_one=False)
            twins += bool(((iou >= BOX_IOU) & (np.abs(scores_b - score) <= BOX_SCORE_TOLERANCE)).any())
    return twins / max(len(a), len(b), 1), twins


def _detections(rng: np.random.Generator, n: int, images: int) -> Detections:
    corner = rng.uniform(0, 200, (n, 2))
    size = rng.uniform(5, 60, (n, 2))
    return Detections(np.sort(rng.integers(0, images, n)), np.hstack([corner, corner + size]), rng.random(n))


def _near_copy(rng: np.random.Generator, d: Detections, keep: float, nudge: float, score_noise: float) -> Detections:
    """Some of `d`'s boxes nudged by up to `nudge` px and their scores moved by up to `score_noise`."""
    chosen = np.flatnonzero(rng.random(len(d)) < keep)
    boxes = d.boxes[chosen] + rng.uniform(-nudge, nudge, (len(chosen), 4))
    scores = d.scores[chosen] + rng.uniform(-score_noise, score_noise, len(chosen))
    return Detections(d.image_index[chosen], boxes, scores)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("kind", ["independent", "near_copy", "partial_copy"])
def test_box_agreement_equals_the_per_image_definition(seed, kind):
    rng = np.random.default_rng(seed)
    a = _detections(rng, int(rng.integers(50, 400)), int(rng.integers(5, 60)))
    if kind == "independent":
        b = _detections(rng, int(rng.integers(50, 400)), int(rng.integers(5, 60)))
    elif kind == "near_copy":  # twins decided by the IoU and the score tolerance, on both sides of each
        b = _near_copy(rng, a, 1.0, 1.5, 2 * BOX_SCORE_TOLERANCE)
    else:
        b = _near_copy(rng, a, 0.5, 0.3, BOX_SCORE_TOLERANCE / 2)
    share, evidence = box_agreement(a, b)
    expected_share, expected_twins = _per_image(a, b)
    assert evidence["twin_boxes"] == expected_twins
    assert share == expected_share
    if kind != "independent":
        assert 0 < expected_twins < len(a)  # the case decides some boxes each way


def test_a_file_with_no_boxes_agrees_with_nothing():
    rng = np.random.default_rng(0)
    empty = Detections(np.zeros(0, np.int64), np.zeros((0, 4)), np.zeros(0))
    a = _detections(rng, 30, 5)
    assert box_agreement(a, empty)[0] == 0.0
    assert box_agreement(empty, a)[0] == 0.0
    assert box_agreement(empty, empty)[0] == 0.0
