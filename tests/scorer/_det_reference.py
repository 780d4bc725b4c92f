"""Independent references for the detection metrics tests, and the hypothesis strategy that feeds them.

- `brute_force_ap50`: FORMATS.md §1 written as plain Python loops, the way the 2020 script did it, with our two
  deviations (score order within an image, stable ties).
- `pycocotools_stats`: pycocotools' own COCOeval('bbox') on the same boxes.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np
from hypothesis import strategies as st

from scorer.formats import DetectionLabels, Detections


def brute_force_ap50(labels: DetectionLabels, detections: Detections, images=None) -> tuple[float, list, list]:
    """(ap, recall, precision) computed one detection at a time."""
    keep = set(range(labels.num_images)) if images is None else _as_set(images)
    gts: dict[int, list[list[float]]] = {}
    for image, box in zip(labels.image_index.tolist(), labels.boxes.tolist(), strict=True):
        if image in keep:
            gts.setdefault(image, []).append(box)
    num_gt = sum(len(v) for v in gts.values())
    dets: dict[int, list[tuple[float, list[float]]]] = {}
    for image, box, score in zip(
        detections.image_index.tolist(), detections.boxes.tolist(), detections.scores.tolist(), strict=True
    ):
        if image in keep:
            dets.setdefault(image, []).append((score, box))

    def iou(a, b):
        iw = max(min(a[2], b[2]) - max(a[0], b[0]) + 1, 0)
        ih = max(min(a[3], b[3]) - max(a[1], b[1]) + 1, 0)
        inter = iw * ih
        if inter == 0:
            return 0.0
        union = (a[2] - a[0] + 1) * (a[3] - a[1] + 1) + (b[2] - b[0] + 1) * (b[3] - b[1] + 1) - inter
        return inter / union

    sequence = []  # (score, is_tp) in images' GT order, each image's detections in step-2 order
    for image in range(labels.num_images):
        if image not in dets:
            continue
        boxes = gts.get(image, [])
        matched = [False] * len(boxes)
        ordered = sorted(dets[image], key=lambda d: -d[0])  # sorted() is stable
        for score, box in ordered:
            best, best_iou = -1, -1.0
            for g, gt in enumerate(boxes):
                value = iou(box, gt)
                if value > best_iou:  # strictly greater: ties keep the first box
                    best, best_iou = g, value
            if best >= 0 and best_iou >= 0.5 and not matched[best]:
                matched[best] = True
                sequence.append((score, True))
            else:
                sequence.append((score, False))
    sequence = sorted(sequence, key=lambda s: -s[0])
    tp = fp = 0
    recall, precision = [], []
    for _, is_tp in sequence:
        tp += is_tp
        fp += not is_tp
        recall.append(tp / num_gt if num_gt else 0.0)
        precision.append(tp / (tp + fp))
    if num_gt == 0:
        return 0.0, recall, precision
    mrec = [0.0, *recall, 1.0]
    mpre = [0.0, *precision, 0.0]
    for i in range(len(mpre) - 2, -1, -1):
        mpre[i] = max(mpre[i], mpre[i + 1])
    ap = 0.0
    for i in range(len(mrec) - 1):
        if mrec[i + 1] != mrec[i]:
            ap += (mrec[i + 1] - mrec[i]) * mpre[i + 1]
    return ap, recall, precision


def make_labels(rows: list[tuple[int, list[float]]], num_images: int | None = None) -> DetectionLabels:
    """rows of (image, [x1, y1, x2, y2]); images named img_0, img_1, ... in index order."""
    num_images = num_images if num_images is not None else max(r[0] for r in rows) + 1
    return DetectionLabels(
        tuple(f"img_{i}" for i in range(num_images)),
        np.array([r[0] for r in rows], dtype=np.int64),
        np.array([r[1] for r in rows], dtype=np.float64).reshape(-1, 4),
    )


def make_detections(rows: list[tuple[int, list[float], float]]) -> Detections:
    """rows of (image, [x1, y1, x2, y2], score) in file order."""
    return Detections(
        np.array([r[0] for r in rows], dtype=np.int64),
        np.array([r[1] for r in rows], dtype=np.float64).reshape(-1, 4),
        np.array([r[2] for r in rows], dtype=np.float64),
    )


def _as_set(images) -> set[int]:
    images = np.asarray(images)
    return set(np.flatnonzero(images).tolist()) if images.dtype == bool else set(images.tolist())


COCO_STAT_NAMES = ("coco_ap", "coco_ap50", "coco_ap75", "coco_ap_small", "coco_ap_medium", "coco_ap_large")


def coco_datasets(labels: DetectionLabels, detections: Detections, images=None) -> tuple[dict, list[dict]]:
    """The GT dataset and the result list pycocotools reads: boxes [x1, y1, x2 - x1, y2 - y1], area w*h, ids from 1,
    image id = index + 1 (so pycocotools' sorted imgIds follow the index), detections in file order."""
    keep = set(range(labels.num_images)) if images is None else _as_set(images)
    annotations = []
    for k, (image, box) in enumerate(zip(labels.image_index.tolist(), labels.boxes.tolist(), strict=True)):
        if image in keep:
            x1, y1, x2, y2 = box
            w, h = x2 - x1, y2 - y1
            annotations.append(
                {
                    "id": k + 1,
                    "image_id": image + 1,
                    "category_id": 1,
                    "bbox": [x1, y1, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
    gt = {
        "images": [{"id": i + 1} for i in sorted(keep)],
        "categories": [{"id": 1, "name": "face"}],
        "annotations": annotations,
    }
    results = []
    for image, box, score in zip(
        detections.image_index.tolist(), detections.boxes.tolist(), detections.scores.tolist(), strict=True
    ):
        if image in keep:
            x1, y1, x2, y2 = box
            results.append(
                {"image_id": image + 1, "category_id": 1, "bbox": [x1, y1, x2 - x1, y2 - y1], "score": score}
            )
    return gt, results


def pycocotools_stats(labels: DetectionLabels, detections: Detections, images=None) -> dict[str, float]:
    """COCOeval('bbox').stats under our names (needs at least one detection: pycocotools' loadRes fails on none)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt_data, results = coco_datasets(labels, detections, images)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = gt_data
        gt.createIndex()
        dt = gt.loadRes(results)
        evaluator = COCOeval(gt, dt, "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    stats = evaluator.stats
    return {**dict(zip(COCO_STAT_NAMES, stats[:6].tolist(), strict=True)), "coco_ar100": float(stats[8])}


# --------------------------------------------------------------------------------------------------- hypothesis

# Sizes around pycocotools' area limits (32², 96²) and tiny ones (0 and 1 pixel wide).
_SIZES = st.sampled_from([0, 1, 2, 3, 5, 8, 31, 32, 33, 40, 95, 96, 97, 120])
_OFFSETS = st.sampled_from([0, 0, 0, 1, -1, 2, -2, 0.5, -0.5, 3, 10, -7, 0.25])
_SCORES = st.sampled_from([0.1, 0.3, 0.5, 0.5, 0.5, 0.7, 0.9, 1.0, 0.0])


@st.composite
def gt_box(draw):
    x, y = draw(st.integers(0, 12)) * 4, draw(st.integers(0, 12)) * 4
    return [x, y, x + draw(_SIZES), y + draw(_SIZES)]


@st.composite
def det_near(draw, boxes):
    """A detection: a copy of a GT box (shifted, resized or exact), a box midway between two GT boxes (equal
    IoU with both), or a free box."""
    choice = draw(st.integers(0, 4)) if boxes else 0
    if choice == 4:
        a, b = draw(st.sampled_from(boxes)), draw(st.sampled_from(boxes))
        return [(u + v) / 2 for u, v in zip(a, b, strict=True)], draw(_SCORES)
    if choice:
        x1, y1, x2, y2 = draw(st.sampled_from(boxes))
        dx1, dy1, dx2, dy2 = (draw(_OFFSETS) for _ in range(4))
        x1, y1 = x1 + dx1, y1 + dy1
        box = [x1, y1, max(x1, x2 + dx2), max(y1, y2 + dy2)]
    else:
        box = draw(gt_box())
    return box, draw(_SCORES)


@st.composite
def detection_cases(draw, max_images: int = 4, max_gt: int = 6, max_det: int = 9, allow_boxless: bool = True):
    """(labels, detections): a few images with 1..max_gt boxes each and 0..max_det detections each, detections
    in a random file order (not grouped by image), and at times one last image with detections but no box."""
    num_images = draw(st.integers(1, max_images))
    image_index, boxes = [], []
    for image in range(num_images):
        own: list[list[float]] = []
        for _ in range(draw(st.integers(1, max_gt))):
            if own and draw(st.booleans()):  # a shifted copy: overlapping boxes, equal IoU for midway detections
                x1, y1, x2, y2 = draw(st.sampled_from(own))
                dx, dy = draw(st.sampled_from([0, 1, 2, 4])), draw(st.sampled_from([0, 1, 2]))
                own.append([x1 + dx, y1 + dy, x2 + dx, y2 + dy])
            else:
                own.append(draw(gt_box()))
        image_index += [image] * len(own)
        boxes += own
    perm = draw(st.permutations(range(len(boxes))))  # GT rows need not be grouped by image
    image_index = [image_index[i] for i in perm]
    boxes = [boxes[i] for i in perm]
    det_rows = []
    for image in range(num_images):
        own = [b for i, b in zip(image_index, boxes, strict=True) if i == image]
        for _ in range(draw(st.integers(0, max_det))):
            box, score = draw(det_near(own))
            det_rows.append((image, box, score))
    # Sometimes an image without any box (the API allows it; a GT file cannot list one): its detections all miss.
    boxless = draw(st.integers(0, 1)) if allow_boxless else 0
    for image in range(num_images, num_images + boxless):
        det_rows += [(image, *draw(det_near([]))) for _ in range(draw(st.integers(1, 3)))]
    det_rows = draw(st.permutations(det_rows))
    order = _first_appearance(image_index, num_images) + list(range(num_images, num_images + boxless))
    labels = DetectionLabels(
        tuple(f"img_{i:03d}.jpg" for i in order),
        np.asarray(_renumber(image_index, num_images), dtype=np.int64),
        np.asarray(boxes, dtype=np.float64).reshape(-1, 4),
    )
    remap = {old: new for new, old in enumerate(order)}
    detections = Detections(
        np.asarray([remap[r[0]] for r in det_rows], dtype=np.int64),
        np.asarray([r[1] for r in det_rows], dtype=np.float64).reshape(-1, 4),
        np.asarray([r[2] for r in det_rows], dtype=np.float64),
    )
    return labels, detections


def _first_appearance(image_index: list[int], num_images: int) -> list[int]:
    seen: dict[int, None] = {}
    for i in image_index:
        seen.setdefault(i, None)
    return list(seen)


def _renumber(image_index: list[int], num_images: int) -> list[int]:
    remap = {old: new for new, old in enumerate(_first_appearance(image_index, num_images))}
    return [remap[i] for i in image_index]
