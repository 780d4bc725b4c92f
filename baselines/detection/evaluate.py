"""Score a detector on labelled images with `scorer` (the same metric as the leaderboard)."""

from __future__ import annotations

import logging
from collections.abc import Iterable

import numpy as np
import torch

from baselines.detection.data import DetectionItem, load_rgb
from baselines.detection.infer import ImageDetections, detect
from scorer.detection import DetectionScores, evaluate_detection
from scorer.formats import DetectionLabels, Detections

log = logging.getLogger(__name__)


def labels_of(items: list[DetectionItem]) -> DetectionLabels:
    """The ground truth of labelled items as scorer's DetectionLabels (images in item order)."""
    boxes = [item.boxes for item in items]
    index = np.concatenate([np.full(len(b), i, dtype=np.int64) for i, b in enumerate(boxes)]) if items else []
    return DetectionLabels(
        tuple(item.name for item in items),
        np.asarray(index, dtype=np.int64),
        np.concatenate(boxes).reshape(-1, 4) if items else np.zeros((0, 4)),
    )


def detections_of(results: Iterable[ImageDetections]) -> Detections:
    """Per-image results (in the labels' image order) → scorer's Detections."""
    results = list(results)
    index = [np.full(len(r.scores), i, dtype=np.int64) for i, r in enumerate(results)]
    return Detections(
        np.concatenate(index) if results else np.zeros(0, np.int64),
        np.concatenate([r.boxes for r in results]).reshape(-1, 4) if results else np.zeros((0, 4)),
        np.concatenate([r.scores for r in results]) if results else np.zeros(0),
    )


@torch.no_grad()
def evaluate_model(model: torch.nn.Module, items: list[DetectionItem], cfg, *, coco: bool = False) -> DetectionScores:
    """Run `detect` on every item (one image at a time: sizes differ) with the config's inference settings and
    score the result with scorer.detection.evaluate_detection (coco=False: ap50 only, COCO fields NaN)."""
    was_training = model.training
    model.eval()
    results = [
        detect(
            model,
            [load_rgb(item.path)],
            max_size=cfg.test_max_size,
            score_threshold=cfg.score_threshold,
            max_detections=cfg.max_detections,
            flip_test=cfg.flip_test,
            bf16=cfg.bf16,
            channels_last=cfg.channels_last,
        )[0]
        for item in items
    ]
    model.train(was_training)
    return evaluate_detection(labels_of(items), detections_of(results), coco=coco)
