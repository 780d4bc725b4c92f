"""COCO-style detection metrics: pycocotools' COCOeval('bbox') for one category, in vectorised numpy.

This reproduces `COCOeval.evaluate()` + `accumulate()` + `summarize()` of pycocotools 2.0 for a single class with
iscrowd 0, the default parameters (IoU thresholds .50:.05:.95, 101 recall thresholds, area ranges all / small /
medium / large, maxDets 100), and boxes given as corners (x1, y1, x2, y2) that pycocotools would see as
[x1, y1, x2 - x1, y2 - y1]. Every step keeps pycocotools' arithmetic and orders so the numbers are the same:

- per image, detections sorted by descending score with a stable sort (file order on ties), the first 100 kept;
- IoU as pycocotools' C `bbIou`: w = min(x + w) - max(x), no +1 pixel, union da + ga - i;
- the greedy match at each IoU threshold: a detection takes, among ground-truth boxes not yet matched whose IoU is
  at least the threshold, the one of highest IoU, preferring boxes inside the area range ("not ignored") over
  ignored ones, and on equal IoU the last one in pycocotools' gt order (not ignored first, then file order);
- a matched detection inherits its box's ignore flag; an unmatched one is ignored when its own area is outside the
  range;
- images in increasing index order (pycocotools sorts imgIds), all detections ranked by a stable sort on descending
  score, precision made monotone from the right, then read at the 101 recall thresholds (searchsorted, left);
- a summary value is the mean of the entries that are not -1; where nothing is defined (no ground truth in an area
  range) it is -1, exactly as pycocotools reports it.

Matching without a Python loop over images: only pairs with IoU >= 0.5 can ever match. A detection with a single
such box that no other detection can take gets it wherever the IoU reaches the threshold, with no loop at all
(most pairs at the official size). The rest loop over the rank of a detection among its image's remaining ones
(at most 100 steps): within one step every image has at most one detection, so all images are matched at once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)  # as pycocotools
RECALL_THRESHOLDS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
AREA_RANGES = {  # pycocotools' areaRng, in its order
    "all": (0.0**2, 1e5**2),
    "small": (0.0**2, 32.0**2),
    "medium": (32.0**2, 96.0**2),
    "large": (96.0**2, 1e5**2),
}
MAX_DETECTIONS = 100


@dataclass(frozen=True, eq=False)
class CocoScores:
    """The COCO summary numbers of pycocotools' `stats` that the detection track reports (-1 where undefined).

    precision: float64 (A, T, R) = pycocotools' eval['precision'][:, :, 0, :, maxDets=100] with the area axis
    first (A = 4 area ranges, T = 10 IoU thresholds, R = 101 recall thresholds); recall: float64 (A, T).
    """

    ap: float
    ap50: float
    ap75: float
    ap_small: float
    ap_medium: float
    ap_large: float
    ar100: float
    precision: np.ndarray
    recall: np.ndarray


def image_pairs(gt_image: np.ndarray, det_image: np.ndarray, num_images: int) -> tuple[np.ndarray, np.ndarray]:
    """Every (detection, ground truth) pair on the same image.

    gt_image: int (G,), det_image: int (D,), values in [0, num_images). Returns det, gt: int64 (P,), P = the sum
    over detections of the number of boxes on their image, grouped by detection in increasing index, and within a
    detection the boxes in increasing index (file order).
    """
    gt_order = np.argsort(gt_image, kind="stable")
    counts = np.bincount(gt_image, minlength=num_images)
    starts = np.cumsum(counts) - counts
    per_det = counts[det_image]
    total = int(per_det.sum())
    det = np.repeat(np.arange(len(det_image), dtype=np.int64), per_det)
    first = np.cumsum(per_det) - per_det
    offsets = np.arange(total, dtype=np.int64) - np.repeat(first, per_det)
    gt = gt_order[np.repeat(starts[det_image], per_det) + offsets]
    return det, gt.astype(np.int64, copy=False)


def pair_iou(det_boxes: np.ndarray, gt_boxes: np.ndarray, *, plus_one: bool) -> np.ndarray:
    """IoU of paired corner boxes, float64 (P,) from det_boxes, gt_boxes float64 (P, 4) x1, y1, x2, y2.

    plus_one=True: the official scorer's inclusive pixels (width x2 - x1 + 1). plus_one=False: pycocotools' bbIou
    on [x, y, w, h] boxes with w = x2 - x1, computed in its order of operations (x + w, da + ga - i).
    """
    if plus_one:
        iw = np.minimum(det_boxes[:, 2], gt_boxes[:, 2]) - np.maximum(det_boxes[:, 0], gt_boxes[:, 0]) + 1.0
        ih = np.minimum(det_boxes[:, 3], gt_boxes[:, 3]) - np.maximum(det_boxes[:, 1], gt_boxes[:, 1]) + 1.0
        np.maximum(iw, 0.0, out=iw)
        np.maximum(ih, 0.0, out=ih)
        inter = iw * ih
        det_area = (det_boxes[:, 2] - det_boxes[:, 0] + 1.0) * (det_boxes[:, 3] - det_boxes[:, 1] + 1.0)
        gt_area = (gt_boxes[:, 2] - gt_boxes[:, 0] + 1.0) * (gt_boxes[:, 3] - gt_boxes[:, 1] + 1.0)
        union = det_area + gt_area - inter
        with np.errstate(invalid="ignore", divide="ignore"):
            iou = np.where(inter > 0, inter / union, 0.0)
        return iou
    dx, dy = det_boxes[:, 0], det_boxes[:, 1]
    dw, dh = det_boxes[:, 2] - dx, det_boxes[:, 3] - dy
    gx, gy = gt_boxes[:, 0], gt_boxes[:, 1]
    gw, gh = gt_boxes[:, 2] - gx, gt_boxes[:, 3] - gy
    w = np.minimum(dw + dx, gw + gx) - np.maximum(dx, gx)
    h = np.minimum(dh + dy, gh + gy) - np.maximum(dy, gy)
    inter = w * h
    union = (dw * dh + gw * gh) - inter
    overlap = (w > 0) & (h > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(overlap, inter / np.where(overlap, union, 1.0), 0.0)


def score_ranking(det_scores: np.ndarray, det_image: np.ndarray, num_images: int) -> np.ndarray:
    """int64 (D,): detections by descending score, then image index, then file order.

    det_scores: float64 (D,), det_image: int (D,) in [0, num_images). This is both the ap50 ranking and
    pycocotools' (images in sorted id order, each image's detections by a stable sort on score, then one stable
    sort on score of them all). Two stable sorts: by image first (a radix sort when indices fit 16 bits), then by
    score.
    """
    image_key = det_image.astype(np.uint16) if num_images <= 2**16 else det_image
    by_image = np.argsort(image_key, kind="stable")
    return by_image[np.argsort(-det_scores[by_image], kind="stable")]


def _rank_within_image(det_image: np.ndarray) -> np.ndarray:
    """int64 (D,): the position of each detection among those of its image, for det_image sorted (grouped)."""
    n = len(det_image)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    new = np.r_[True, det_image[1:] != det_image[:-1]]
    group_start = np.maximum.accumulate(np.where(new, np.arange(n), 0))
    return np.arange(n, dtype=np.int64) - group_start


def _segment_starts(keys: np.ndarray) -> np.ndarray:
    """Start positions of the runs of equal values in a grouped int array (non-empty)."""
    return np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])


def _match(
    pair_det: np.ndarray,
    pair_gt: np.ndarray,
    pair_iou: np.ndarray,
    det_image: np.ndarray,
    gt_ignored: np.ndarray,
    num_dets: int,
) -> tuple[np.ndarray, np.ndarray]:
    """pycocotools' greedy matching at every IoU threshold and area range at once.

    pair_*: (P,) candidate pairs with IoU >= 0.5 (no other pair can ever match); det_image: int (D,) the image of
    each detection, detections grouped by image and in score order within it (pycocotools' order); gt_ignored:
    bool (A, G). Returns matched: bool (A, T, D) and the ignore flag of the box each detection matched,
    matched_ignored: bool (A, T, D).
    """
    num_areas, num_gt = gt_ignored.shape
    thresholds = np.minimum(IOU_THRESHOLDS, 1 - 1e-10)[None, :, None]  # (1, T, 1)
    num_thr = len(IOU_THRESHOLDS)
    matched = np.zeros((num_areas, num_thr, num_dets), dtype=bool)
    matched_ignored = np.zeros((num_areas, num_thr, num_dets), dtype=bool)
    gt_taken = np.zeros((num_areas, num_thr, num_gt + 1), dtype=bool)  # the last column is "no box"
    ignored_or_none = np.c_[gt_ignored, np.zeros(num_areas, dtype=bool)]  # (A, G + 1)
    # A pair whose detection has no other candidate box and whose box no other candidate detection needs no
    # loop: the detection takes the box wherever the IoU reaches the threshold. Most pairs are of this kind.
    alone = (np.bincount(pair_det, minlength=num_dets)[pair_det] == 1) & (
        np.bincount(pair_gt, minlength=num_gt)[pair_gt] == 1
    )
    hit = pair_iou[alone][None, None, :] >= thresholds  # (1, T, n)
    matched[:, :, pair_det[alone]] = hit
    matched_ignored[:, :, pair_det[alone]] = hit & gt_ignored[:, pair_gt[alone]][:, None, :]
    pair_det, pair_gt, pair_iou = pair_det[~alone], pair_gt[~alone], pair_iou[~alone]
    if len(pair_det) == 0:
        return matched, matched_ignored
    # The rest, one step per rank: only the order of an image's detections matters, so rank them among those
    # still in play. Pairs grouped by that rank, then by detection; within a detection in gt (file) order.
    dets_left = np.unique(pair_det)
    rank = np.zeros(num_dets, dtype=np.int64)
    rank[dets_left] = _rank_within_image(det_image[dets_left])
    order = np.lexsort((pair_gt, pair_det, rank[pair_det]))
    pair_det, pair_gt, pair_iou = pair_det[order], pair_gt[order], pair_iou[order]
    ranks = rank[pair_det]
    bounds = np.r_[_segment_starts(ranks), len(ranks)]
    areas = np.arange(num_areas)[:, None, None]
    thr_idx = np.arange(num_thr)[None, :, None]
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        dets, gts, ious = pair_det[lo:hi], pair_gt[lo:hi], pair_iou[lo:hi]
        starts = _segment_starts(dets)  # one segment per detection
        seg = np.cumsum(np.r_[False, dets[1:] != dets[:-1]])  # (p,) segment of each pair
        candidate = (ious[None, None, :] >= thresholds) & ~gt_taken[:, :, gts]  # (A, T, p)
        kept = ~gt_ignored[:, gts][:, None, :]  # (A, 1, p)
        # A detection considers ignored boxes only when no box inside the area range is a candidate.
        has_kept = np.logical_or.reduceat(candidate & kept, starts, axis=2)  # (A, T, s)
        usable = candidate & (kept == has_kept[:, :, seg])
        value = np.where(usable, ious[None, None, :], -np.inf)
        best = np.maximum.reduceat(value, starts, axis=2)  # (A, T, s)
        # On equal IoU pycocotools keeps the last box in its order: the largest file index among equals.
        top = usable & (value == best[:, :, seg])
        chosen = np.maximum.reduceat(np.where(top, gts[None, None, :], -1), starts, axis=2)  # (A, T, s), -1: none
        hit = chosen >= 0
        seg_dets = dets[starts]
        gt_taken[areas, thr_idx, np.where(hit, chosen, num_gt)] = True
        matched[:, :, seg_dets] = hit
        matched_ignored[:, :, seg_dets] = ignored_or_none[areas, np.where(hit, chosen, num_gt)]
    return matched, matched_ignored


def _summary(values: np.ndarray) -> float:
    """pycocotools' _summarize: the mean of the entries > -1, or -1 when there is none."""
    defined = values[values > -1]
    return -1.0 if len(defined) == 0 else float(np.mean(defined))


def coco_metrics(
    gt_boxes: np.ndarray,
    gt_image: np.ndarray,
    det_boxes: np.ndarray,
    det_scores: np.ndarray,
    det_image: np.ndarray,
    num_images: int,
) -> CocoScores:
    """COCOeval('bbox') summary for one category, equal to pycocotools.

    gt_boxes: float64 (G, 4) and det_boxes: float64 (D, 4) corners x1, y1, x2, y2; gt_image: int (G,) and
    det_image: int (D,) image indices in [0, num_images) (images are taken in increasing index, like pycocotools'
    sorted imgIds); det_scores: float64 (D,). Detections in file order (it decides score ties).
    """
    gt_boxes = np.ascontiguousarray(gt_boxes, dtype=np.float64).reshape(-1, 4)  # C order: fast row gathers
    det_boxes = np.ascontiguousarray(det_boxes, dtype=np.float64).reshape(-1, 4)
    det_scores = np.asarray(det_scores, dtype=np.float64)
    gt_image = np.asarray(gt_image, dtype=np.int64)
    det_image = np.asarray(det_image, dtype=np.int64)

    # Per image: descending score, stable; keep the first MAX_DETECTIONS. `order` is pycocotools' per-image order.
    ranking = score_ranking(det_scores, det_image, num_images)
    image_key = det_image.astype(np.uint16) if num_images <= 2**16 else det_image
    order = ranking[np.argsort(image_key[ranking], kind="stable")]
    order = order[_rank_within_image(det_image[order]) < MAX_DETECTIONS]
    position = np.full(len(det_scores), -1, dtype=np.int64)
    position[order] = np.arange(len(order))
    boxes, images = np.take(det_boxes, order, axis=0), det_image[order]
    num_dets = len(order)

    gt_area = (gt_boxes[:, 2] - gt_boxes[:, 0]) * (gt_boxes[:, 3] - gt_boxes[:, 1])
    det_area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    ranges = np.array(list(AREA_RANGES.values()))  # (A, 2)
    gt_ignored = (gt_area[None, :] < ranges[:, :1]) | (gt_area[None, :] > ranges[:, 1:])  # (A, G)
    det_outside = (det_area[None, :] < ranges[:, :1]) | (det_area[None, :] > ranges[:, 1:])  # (A, D)

    pair_det, pair_gt = image_pairs(gt_image, images, num_images)
    ious = pair_iou(np.take(boxes, pair_det, axis=0), np.take(gt_boxes, pair_gt, axis=0), plus_one=False)
    close = ious >= IOU_THRESHOLDS[0]
    matched, matched_ignored = _match(pair_det[close], pair_gt[close], ious[close], images, gt_ignored, num_dets)
    det_ignored = np.where(matched, matched_ignored, det_outside[:, None, :])  # (A, T, D)

    # accumulate(): all kept detections by a stable sort on descending score of the per-image sequence.
    ranked = position[ranking]
    ranked = ranked[ranked >= 0]
    num_areas, num_thr = len(ranges), len(IOU_THRESHOLDS)
    npig = np.count_nonzero(~gt_ignored, axis=1)  # (A,) boxes inside each area range
    precision = -np.ones((num_areas, num_thr, len(RECALL_THRESHOLDS)))  # -1: undefined, as pycocotools
    recall = -np.ones((num_areas, num_thr))
    for a in np.flatnonzero(npig > 0):  # one area range at a time bounds the memory: (T, D) floats
        if num_dets == 0:
            precision[a], recall[a] = 0.0, 0.0
            continue
        counted = ~det_ignored[a]
        tps = np.ascontiguousarray((matched[a] & counted)[:, ranked])  # (T, D)
        fps = np.ascontiguousarray((~matched[a] & counted)[:, ranked])
        # Counting in int32 over an int8 view is several times faster than numpy's bool cumsum; counts are exact.
        tp_sum = np.cumsum(tps.view(np.int8), axis=1, dtype=np.int32).astype(float)
        fp_sum = np.cumsum(fps.view(np.int8), axis=1, dtype=np.int32).astype(float)
        rc = tp_sum / npig[a]
        pr = tp_sum / (fp_sum + tp_sum + np.spacing(1))
        recall[a] = rc[:, -1]
        pr = np.flip(np.maximum.accumulate(np.flip(pr, axis=1), axis=1), axis=1)  # monotone from the right
        precision[a] = 0.0
        for t in range(num_thr):
            inds = np.searchsorted(rc[t], RECALL_THRESHOLDS, side="left")
            inside = inds < num_dets
            precision[a, t, inside] = pr[t, inds[inside]]

    all_, small, medium, large = range(num_areas)
    t50 = np.where(IOU_THRESHOLDS == 0.5)[0]
    t75 = np.where(IOU_THRESHOLDS == 0.75)[0]
    scores_ = CocoScores(
        ap=_summary(precision[all_]),
        ap50=_summary(precision[all_, t50]),
        ap75=_summary(precision[all_, t75]),
        ap_small=_summary(precision[small]),
        ap_medium=_summary(precision[medium]),
        ap_large=_summary(precision[large]),
        ar100=_summary(recall[all_]),
        precision=precision,
        recall=recall,
    )
    log.debug("coco metrics on %d boxes, %d detections: AP %.4f", len(gt_image), num_dets, scores_.ap)
    return scores_
