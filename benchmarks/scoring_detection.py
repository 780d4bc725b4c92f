"""Detection scoring speed at the official size, side by side with pycocotools and faster-coco-eval.

Inputs: the real 2020 test GT (10,000 images, 18,647 boxes) and 50,000 seeded detections: every GT box jittered
once or twice (some of them far off), plus false positives placed at random, at most 100 per image.
Timed in one run, best of `repeats` each: our `ap50` alone; our full metric set (`evaluate_detection`); pycocotools
COCOeval (evaluate + accumulate + summarize, stdout suppressed); faster-coco-eval's COCOeval_faster on the same
boxes. The COCO datasets are built before the clock starts for both libraries. The script also checks that the
three COCO results agree and prints the largest absolute difference.

    python benchmarks/scoring_detection.py [--gt PATH] [--detections 50000] [--repeats 3] [--seed 0]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from scorer.detection import ap50, evaluate_detection
from scorer.formats import DetectionLabels, Detections, read_detection_labels

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_GT = ROOT.parent / "shared" / "data" / "icartoonface" / "personai_icartoonface_detval.csv"
STAT_NAMES = ("coco_ap", "coco_ap50", "coco_ap75", "coco_ap_small", "coco_ap_medium", "coco_ap_large")


def make_detections(labels: DetectionLabels, num_detections: int, seed: int = 0, cap: int = 100) -> Detections:
    """Seeded detections: each GT box jittered (sigma 5 % of its size, a quarter of them 25 %), a second jittered
    copy of a fifth of them (duplicates), then random false positives up to num_detections; at most cap an image."""
    rng = np.random.default_rng(seed)
    boxes, images = labels.boxes, labels.image_index
    size = np.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]] * 2, axis=1) + 1.0

    def jitter(idx: np.ndarray, scale: np.ndarray) -> np.ndarray:
        return boxes[idx] + rng.normal(0.0, 1.0, (len(idx), 4)) * size[idx] * scale[:, None]

    first = np.arange(len(boxes))
    second = rng.choice(len(boxes), size=len(boxes) // 5, replace=False)
    scale = np.where(rng.random(len(first)) < 0.25, 0.25, 0.05)
    parts = [
        (images[first], jitter(first, scale), rng.beta(5, 2, len(first))),
        (images[second], jitter(second, np.full(len(second), 0.15)), rng.beta(2, 3, len(second))),
    ]
    num_fp = max(num_detections - len(first) - len(second), 0)
    fp_images = rng.integers(0, labels.num_images, num_fp)
    xy = rng.uniform(0, 600, (num_fp, 2))
    wh = rng.uniform(8, 150, (num_fp, 2))
    parts.append((fp_images, np.concatenate([xy, xy + wh], axis=1), rng.beta(2, 5, num_fp)))
    image_index = np.concatenate([p[0] for p in parts])
    det_boxes = np.concatenate([p[1] for p in parts])
    det_boxes[:, 2:] = np.maximum(det_boxes[:, 2:], det_boxes[:, :2])  # valid boxes: x2 >= x1
    det_boxes = np.round(det_boxes, 2)
    scores = np.round(np.concatenate([p[2] for p in parts]), 4)  # rounding makes score ties, as real files have
    perm = rng.permutation(len(scores))[:num_detections]
    image_index, det_boxes, scores = image_index[perm], det_boxes[perm], scores[perm]
    keep = _first_per_image(image_index, cap)
    return Detections(image_index[keep], det_boxes[keep], scores[keep])


def _first_per_image(image_index: np.ndarray, cap: int) -> np.ndarray:
    order = np.argsort(image_index, kind="stable")
    sorted_images = image_index[order]
    starts = np.searchsorted(sorted_images, sorted_images, side="left")
    keep = np.zeros(len(image_index), dtype=bool)
    keep[order[np.arange(len(order)) - starts < cap]] = True
    return keep


def _coco_inputs(labels: DetectionLabels, detections: Detections) -> tuple[dict, list[dict]]:
    gt_xywh = np.c_[labels.boxes[:, :2], labels.boxes[:, 2:] - labels.boxes[:, :2]]
    dt_xywh = np.c_[detections.boxes[:, :2], detections.boxes[:, 2:] - detections.boxes[:, :2]]
    annotations = [
        {"id": k + 1, "image_id": int(i) + 1, "category_id": 1, "bbox": b, "area": b[2] * b[3], "iscrowd": 0}
        for k, (i, b) in enumerate(zip(labels.image_index.tolist(), gt_xywh.tolist(), strict=True))
    ]
    gt = {
        "images": [{"id": i + 1} for i in range(labels.num_images)],
        "categories": [{"id": 1, "name": "face"}],
        "annotations": annotations,
    }
    results = [
        {"image_id": int(i) + 1, "category_id": 1, "bbox": b, "score": s}
        for i, b, s in zip(detections.image_index.tolist(), dt_xywh.tolist(), detections.scores.tolist(), strict=True)
    ]
    return gt, results


def _pycocotools_runner(gt_data: dict, results: list[dict]):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = gt_data
        gt.createIndex()
        dt = gt.loadRes([dict(r) for r in results])

    def run() -> np.ndarray:
        with contextlib.redirect_stdout(io.StringIO()):
            evaluator = COCOeval(gt, dt, "bbox")
            evaluator.evaluate()
            evaluator.accumulate()
            evaluator.summarize()
        return np.asarray(evaluator.stats)

    return run


def _faster_runner(gt_data: dict, results: list[dict]):
    from faster_coco_eval import COCO, COCOeval_faster

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(gt_data)
        dt = gt.loadRes([dict(r) for r in results])

    def run() -> np.ndarray:
        with contextlib.redirect_stdout(io.StringIO()):
            evaluator = COCOeval_faster(gt, dt, "bbox", print_function=lambda *a, **k: None)
            evaluator.evaluate()
            evaluator.accumulate()
            evaluator.summarize()
        return np.asarray(evaluator.stats)

    return run


def _best_of(fn, repeats: int):
    """(best wall seconds, best CPU seconds of this process, the last result). CPU time is the steadier figure on a
    shared machine: other people's work slows the wall clock, much less the CPU time."""
    walls, cpus, result = [], [], None
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = fn()
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - start_cpu)
    return (min(walls), min(cpus)), result


def run(gt_path: Path = DEFAULT_GT, num_detections: int = 50_000, repeats: int = 3, seed: int = 0) -> dict:
    """Time the four scorers; returns {"rows": [(name, wall seconds, CPU seconds)], "max_abs_diff": {...},
    "inputs": {...}}."""
    labels = read_detection_labels(gt_path)
    detections = make_detections(labels, num_detections, seed)
    gt_data, results = _coco_inputs(labels, detections)
    pycoco = _pycocotools_runner(gt_data, results)
    faster = _faster_runner(gt_data, results)

    t_ap50, value = _best_of(lambda: ap50(labels, detections), repeats)
    t_full, ours = _best_of(lambda: evaluate_detection(labels, detections), repeats)
    t_pycoco, stats_pycoco = _best_of(pycoco, repeats)
    t_faster, stats_faster = _best_of(faster, repeats)

    ours_stats = np.array([getattr(ours, n) for n in STAT_NAMES] + [ours.coco_ar100])
    pick = [0, 1, 2, 3, 4, 5, 8]  # COCOeval.stats indices of the numbers above (stats[8] = AR@100)
    return {
        "rows": [
            ("ours: ap50 alone", *t_ap50),
            ("ours: full metric set (ap50 + COCO)", *t_full),
            ("pycocotools COCOeval", *t_pycoco),
            ("faster-coco-eval COCOeval_faster", *t_faster),
        ],
        "max_abs_diff": {
            "ours vs pycocotools": float(np.max(np.abs(ours_stats - stats_pycoco[pick]))),
            "faster-coco-eval vs pycocotools": float(np.max(np.abs(stats_faster[pick] - stats_pycoco[pick]))),
        },
        "inputs": {
            "boxes": len(labels.boxes),
            "images": labels.num_images,
            "detections": len(detections),
            "ap50": value,
            "coco_ap": ours.coco_ap,
        },
    }


def main(argv: list[str] | None = None) -> dict:
    """Run and print the table. argv None (a call from another script) means the defaults, not sys.argv."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gt", type=Path, default=DEFAULT_GT)
    parser.add_argument("--detections", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args([] if argv is None else argv)
    if not args.gt.exists():
        raise SystemExit(f"no ground truth at {args.gt} (pass --gt)")
    out = run(args.gt, args.detections, args.repeats, args.seed)
    inputs = out["inputs"]
    print(
        f"{inputs['images']:,} images, {inputs['boxes']:,} GT boxes, {inputs['detections']:,} detections; "
        f"ap50 {inputs['ap50']:.4f}, coco_ap {inputs['coco_ap']:.4f}"
    )
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.2f}; best of {args.repeats}"
    )
    rows = out["rows"]
    full_wall, full_cpu = rows[1][1], rows[1][2]
    print(f"| {'scorer':<36} | {'wall s':>7} | {'÷ our full set':>14} | {'CPU s':>7} | {'÷ our full set':>14} |")
    print(f"|{'-' * 38}|{'-' * 9}|{'-' * 16}|{'-' * 9}|{'-' * 16}|")
    for name, wall, cpu in rows:
        print(f"| {name:<36} | {wall:7.3f} | {wall / full_wall:13.2f}x | {cpu:7.3f} | {cpu / full_cpu:13.2f}x |")
    for name, diff in out["max_abs_diff"].items():
        print(f"max |difference| of the 7 COCO numbers, {name}: {diff:.3g}")
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
