"""Detection track metrics (FORMATS.md §1): the primary `ap50` and the COCO-style secondary numbers.

`ap50` is the official iCartoonFace "mAP" with our two deliberate deviations (matching in score order, stable ties):

1. IoU with inclusive pixels (+1);
2. per image, detections in descending score order (stable); each takes the box of highest IoU (ties: first in GT
   file order); a true positive iff that IoU >= 0.5 and the box is not yet matched, else a false positive (no fall
   back to the second-best box);
3. all detections ranked by descending score, stably, images in order of first appearance in the GT, each image's
   detections in the order of step 2;
4. all-point AP (VOC2010+).

No loop is needed: within one image the ranking of step 3 is the order of step 2, so one ranking serves both, and a
detection whose best box has IoU >= 0.5 is a true positive iff it is the first detection in that ranking whose best
box is that box (a false positive never marks its box).

The secondary numbers are pycocotools' COCOeval('bbox'), reimplemented in `scorer.coco`. Where pycocotools reports
an undefined number as -1 (no box of the split in an area range, e.g. `coco_ap_large` when every face is smaller
than 96², or every number on an empty split), so do we: -1 is kept as is, in the dataclass and in JSON.

A split is the `images` argument: a bool mask (num_images,) over labels.image_names, or an int index array
(repeats count once); only the boxes and detections of those images count, and num_gt, num_detections and
num_images are those of the split.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from scorer.coco import coco_metrics, image_pairs, pair_iou, score_ranking
from scorer.formats import DetectionLabels, Detections

log = logging.getLogger(__name__)

IOU_THRESHOLD = 0.5
METRIC_NAMES = (
    "ap50",
    "coco_ap",
    "coco_ap50",
    "coco_ap75",
    "coco_ap_small",
    "coco_ap_medium",
    "coco_ap_large",
    "coco_ar100",
    "num_gt",
    "num_detections",
    "num_images",
)


@dataclass(frozen=True, eq=False)
class PRCurve:
    """The precision/recall curve of `ap50`: one point per ranked detection (all-point, before the envelope).

    recall: float64 (K,), precision: float64 (K,), K = the number of detections counted.
    """

    recall: np.ndarray
    precision: np.ndarray

    def __len__(self) -> int:
        return len(self.recall)

    def downsample(self, points: int = 200) -> PRCurve:
        """At most `points` points for a plot, keeping the shape: the curve is cut into points // 2 runs of
        consecutive detections and each run keeps its lowest and its highest precision point (in rank order), so
        every saw-tooth drop and peak stays visible; the first and the last point are always kept."""
        if points < 2:
            raise ValueError(f"points must be at least 2, not {points}")
        n = len(self.recall)
        if n <= points:
            return self
        buckets = (points - 2) // 2
        edges = np.linspace(1, n - 1, buckets + 1).astype(np.int64)  # inner points 1 .. n-2 in `buckets` runs
        edges = np.unique(edges)
        starts, ends = edges[:-1], edges[1:]
        keep = [np.array([0, n - 1])]
        if len(starts):
            prec = self.precision
            lows = np.array([s + np.argmin(prec[s:e]) for s, e in zip(starts, ends, strict=True)])
            highs = np.array([s + np.argmax(prec[s:e]) for s, e in zip(starts, ends, strict=True)])
            keep += [lows, highs]
        index = np.unique(np.concatenate(keep))
        return PRCurve(self.recall[index], self.precision[index])


@dataclass(frozen=True, eq=False)
class DetectionScores:
    """Every number of the detection track for one split. COCO numbers are pycocotools' (-1 where undefined, e.g.
    no box in an area range; NaN when evaluate_detection ran with coco=False)."""

    ap50: float
    coco_ap: float
    coco_ap50: float
    coco_ap75: float
    coco_ap_small: float
    coco_ap_medium: float
    coco_ap_large: float
    coco_ar100: float
    num_gt: int
    num_detections: int
    num_images: int
    pr_curve: PRCurve

    def to_dict(self, curve_points: int | None = 200) -> dict:
        """JSON-ready: FORMATS.md's keys (NaN becomes None) plus "pr_curve": {"recall": [...], "precision": [...]},
        downsampled to curve_points (None: every point)."""
        out: dict = {}
        for key in METRIC_NAMES:
            value = getattr(self, key)
            if isinstance(value, int):
                out[key] = value
            else:
                out[key] = None if math.isnan(value) else float(value)
        curve = self.pr_curve if curve_points is None else self.pr_curve.downsample(curve_points)
        out["pr_curve"] = {"recall": curve.recall.tolist(), "precision": curve.precision.tolist()}
        return out


# --------------------------------------------------------------------------------------------------- subsets


def image_mask(labels: DetectionLabels, images: np.ndarray | None) -> np.ndarray:
    """The split as a bool mask (num_images,): None = all images; a bool mask of that length; or int indices."""
    num_images = labels.num_images
    if images is None:
        return np.ones(num_images, dtype=bool)
    images = np.asarray(images)
    if images.dtype == bool:
        if images.shape != (num_images,):
            raise ValueError(f"a bool image mask must have shape ({num_images},), not {images.shape}")
        return images
    if images.size == 0:
        return np.zeros(num_images, dtype=bool)
    if images.dtype.kind not in "iu" or images.ndim != 1:
        raise ValueError(f"images must be a bool mask or a 1-d int index array, not {images.dtype} {images.shape}")
    bad = (images < 0) | (images >= num_images)
    if bad.any():
        raise ValueError(f"image index {int(images[np.argmax(bad)])} is outside 0..{num_images - 1}")
    mask = np.zeros(num_images, dtype=bool)
    mask[images] = True
    return mask


def _check(labels: DetectionLabels, detections: Detections) -> None:
    """Programming errors (a parsed submission never has them): shapes and image indices in range."""
    k = len(detections.scores)
    if detections.boxes.shape != (k, 4) or detections.image_index.shape != (k,):
        raise ValueError(
            f"detections must have boxes ({k}, 4) and image_index ({k},), not {detections.boxes.shape} and "
            f"{detections.image_index.shape}"
        )
    if k and (detections.image_index.min() < 0 or detections.image_index.max() >= labels.num_images):
        raise ValueError(f"a detection's image_index is outside 0..{labels.num_images - 1}")


@dataclass(frozen=True, eq=False)
class _Subset:
    """The boxes and detections of one split, in file order. gt_*: (G,), (G, 4); det_*: (D,), (D, 4), (D,)."""

    gt_image: np.ndarray
    gt_boxes: np.ndarray
    det_image: np.ndarray
    det_boxes: np.ndarray
    det_scores: np.ndarray
    num_images: int


def _subset(labels: DetectionLabels, detections: Detections, images) -> _Subset:
    _check(labels, detections)
    mask = image_mask(labels, images)
    gt_keep = mask[labels.image_index]
    det_keep = mask[detections.image_index]
    return _Subset(
        labels.image_index[gt_keep],
        np.ascontiguousarray(labels.boxes[gt_keep]),  # C order: fast row gathers below
        detections.image_index[det_keep],
        np.ascontiguousarray(detections.boxes[det_keep]),
        detections.scores[det_keep],
        int(mask.sum()),
    )


# --------------------------------------------------------------------------------------------------- ap50


def _first_of_runs(keys: np.ndarray) -> np.ndarray:
    """bool (n,): True at the first element of each run of equal values."""
    first = np.ones(len(keys), dtype=bool)
    first[1:] = keys[1:] != keys[:-1]
    return first


def _ranked_true_positives(sub: _Subset, num_images: int) -> np.ndarray:
    """bool (D,): steps 1 to 3 of ap50, the true-positive flag of each detection in the global ranking."""
    ranked = score_ranking(sub.det_scores, sub.det_image, num_images)
    pair_det, pair_gt = image_pairs(sub.gt_image, sub.det_image[ranked], num_images)  # det = position in ranking
    det_boxes = np.take(sub.det_boxes, ranked, axis=0)
    ious = pair_iou(np.take(det_boxes, pair_det, axis=0), np.take(sub.gt_boxes, pair_gt, axis=0), plus_one=True)
    close = ious >= IOU_THRESHOLD
    pair_det, pair_gt, ious = pair_det[close], pair_gt[close], ious[close]
    tp = np.zeros(len(ranked), dtype=bool)
    if len(pair_det) == 0:
        return tp
    # The best box of each detection: highest IoU, ties the first in file order (pairs come grouped by detection,
    # boxes in file order). Boxes below 0.5 never win, and when the best box is below 0.5 the detection is a false
    # positive whichever box it is.
    starts = np.flatnonzero(_first_of_runs(pair_det))
    segment = np.cumsum(_first_of_runs(pair_det)) - 1
    top = ious == np.maximum.reduceat(ious, starts)[segment]
    first_top = np.flatnonzero(top)[_first_of_runs(segment[top])]
    det_with_box, box = pair_det[first_top], pair_gt[first_top]
    # A box goes to the first detection that takes it; a false positive never marks its box.
    winner = np.full(len(sub.gt_image), len(ranked), dtype=np.int64)
    np.minimum.at(winner, box, det_with_box)
    tp[winner[winner < len(ranked)]] = True
    return tp


def _curve(tp: np.ndarray, num_gt: int) -> PRCurve:
    tp_sum = np.cumsum(tp, dtype=np.float64)
    fp_sum = np.cumsum(~tp, dtype=np.float64)
    recall = tp_sum / num_gt if num_gt else np.zeros_like(tp_sum)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = tp_sum / (tp_sum + fp_sum)
    return PRCurve(recall, precision)


def _all_point_ap(curve: PRCurve) -> float:
    """Step 4, VOC2010+ all-point AP: the area under the precision envelope."""
    mrec = np.concatenate(([0.0], curve.recall, [1.0]))
    mpre = np.concatenate(([0.0], curve.precision, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    i = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


def _primary(sub: _Subset, num_images: int) -> tuple[float, PRCurve]:
    num_gt = len(sub.gt_image)
    curve = _curve(_ranked_true_positives(sub, num_images), num_gt)
    return (_all_point_ap(curve) if num_gt else 0.0), curve


def pr_curve(labels: DetectionLabels, detections: Detections, images: np.ndarray | None = None) -> PRCurve:
    """The precision/recall curve of ap50 over the detections of the split, in ranking order."""
    return _primary(_subset(labels, detections, images), labels.num_images)[1]


def ap50(labels: DetectionLabels, detections: Detections, images: np.ndarray | None = None) -> float:
    """The primary metric: single-class all-point AP at IoU >= 0.5 (+1 pixels). 0.0 when the split has no box."""
    return _primary(_subset(labels, detections, images), labels.num_images)[0]


def evaluate_detection(
    labels: DetectionLabels, detections: Detections, images: np.ndarray | None = None, *, coco: bool = True
) -> DetectionScores:
    """ap50, its PR curve and the COCO numbers (coco=False leaves them NaN, for speed) for one split."""
    sub = _subset(labels, detections, images)
    value, curve = _primary(sub, labels.num_images)
    if coco:
        c = coco_metrics(sub.gt_boxes, sub.gt_image, sub.det_boxes, sub.det_scores, sub.det_image, labels.num_images)
        coco_values = (c.ap, c.ap50, c.ap75, c.ap_small, c.ap_medium, c.ap_large, c.ar100)
    else:
        coco_values = (math.nan,) * 7
    scores = DetectionScores(
        value,
        *coco_values,
        num_gt=len(sub.gt_image),
        num_detections=len(sub.det_image),
        num_images=sub.num_images,
        pr_curve=curve,
    )
    log.info(
        "detection: ap50 %.4f on %d boxes, %d detections, %d images",
        value,
        scores.num_gt,
        scores.num_detections,
        scores.num_images,
    )
    return scores
