"""The COCO secondary detection metrics (FORMATS.md §1) equal pycocotools' COCOeval('bbox') within 1e-12.

pycocotools is the reference (a dev dependency); scorer/ never imports it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scorer.detection import evaluate_detection
from scorer.formats import Detections, read_detection_labels
from tests.profiles import examples
from tests.scorer._det_reference import (
    brute_force_ap50,
    detection_cases,
    make_detections,
    make_labels,
    pycocotools_stats,
)

pytest.importorskip("pycocotools", reason="pycocotools (the reference) is a dev dependency")

ROOT = Path(__file__).resolve().parents[2]
REAL_GT = ROOT.parent / "shared" / "data" / "icartoonface" / "personai_icartoonface_detval.csv"
COCO_KEYS = ("coco_ap", "coco_ap50", "coco_ap75", "coco_ap_small", "coco_ap_medium", "coco_ap_large", "coco_ar100")


def test_the_scorer_reimplements_cocoeval_without_importing_it():
    # pycocotools and faster-coco-eval are dev dependencies: scorer/ must work without them.
    for module in ("scorer/coco.py", "scorer/detection.py"):
        tree = ast.parse((ROOT / module).read_text())
        imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert not {m for m in imported if m.split(".")[0] in ("pycocotools", "faster_coco_eval")}, module


def assert_equal_to_pycocotools(labels, dets, images=None) -> dict:
    ours = evaluate_detection(labels, dets, images).to_dict()
    reference = pycocotools_stats(labels, dets, images)
    for key in COCO_KEYS:
        assert ours[key] == pytest.approx(reference[key], abs=1e-12, rel=0), key
    return ours


@st.composite
def cases_with_detections(draw):
    labels, dets = draw(detection_cases(max_images=4, max_gt=6, max_det=10))
    split = draw(st.sampled_from([None, "mask"]))
    images = None
    if split:
        images = np.array(draw(st.lists(st.booleans(), min_size=labels.num_images, max_size=labels.num_images)))
    keep = np.ones(len(dets), bool) if images is None else images[dets.image_index]
    if not keep.any():  # pycocotools' loadRes cannot read an empty result list: give the split one detection
        image = int(np.flatnonzero(images)[0]) if images is not None and images.any() else 0
        if images is not None:
            images[image] = True
        dets = Detections(
            np.r_[dets.image_index, image], np.vstack([dets.boxes, [[1, 1, 30, 30]]]), np.r_[dets.scores, 0.5]
        )
    return labels, dets, images


@settings(max_examples=examples(40), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases_with_detections())
def test_coco_numbers_equal_pycocotools_on_random_boxes(case):
    assert_equal_to_pycocotools(*case)


def test_equal_iou_goes_to_the_last_box_as_in_pycocotools():
    # The first detection has IoU 90/110 = .818 with both boxes (w = x2 - x1, no +1). pycocotools keeps the LAST
    # box of equal IoU, R; the exact copy of L then takes L at every threshold. For IoU <= .80 both are hits
    # (AP 1); at .85, .90, .95 the first detection misses: ranked FP, TP -> 51 recall points at precision .5.
    labels = make_labels([(0, [0, 0, 10, 10]), (0, [2, 0, 12, 10])])
    dets = make_detections([(0, [1, 0, 11, 10], 0.9), (0, [0, 0, 10, 10], 0.8)])
    ours = assert_equal_to_pycocotools(labels, dets)
    assert ours["coco_ap"] == pytest.approx((7 + 3 * 51 * 0.5 / 101) / 10, abs=1e-15)
    assert ours["coco_ap75"] == pytest.approx(1.0, abs=1e-15)
    assert ours["coco_ar100"] == pytest.approx((7 + 3 * 0.5) / 10, abs=1e-15)
    assert ours["ap50"] == 0.5  # the primary metric gives ties to the FIRST box: L, then the copy of L is a duplicate


def test_a_box_inside_the_area_range_is_preferred_to_a_better_ignored_one():
    # S is small (31 x 32 = 992 < 32²), M medium (33 x 32 = 1056). The detection equals M: IoU 1 with M, 992/1056
    # = .939 with S. For the 'small' range M is ignored and the detection takes S while .939 reaches the
    # threshold (9 of 10 thresholds, AP 1 each); at .95 it takes the ignored M and is ignored itself (AP 0).
    labels = make_labels([(0, [0, 0, 31, 32]), (0, [0, 0, 33, 32])])
    dets = make_detections([(0, [0, 0, 33, 32], 0.9)])
    ours = assert_equal_to_pycocotools(labels, dets)
    assert ours["coco_ap_small"] == pytest.approx(0.9, abs=1e-15)
    assert ours["coco_ap_medium"] == pytest.approx(1.0, abs=1e-15)  # 1 / (1 + eps): pycocotools' precision
    assert ours["coco_ap"] == pytest.approx(51 / 101, abs=1e-15)  # 'all': one of two boxes found, at precision 1
    assert ours["coco_ap_large"] == -1.0  # no large box: undefined, pycocotools' -1


@pytest.mark.parametrize(
    ("false_positive", "expected_small"),
    [
        ([100, 100, 132, 132], 0.5),  # 32 x 32 = 1024, on the limit: inside 'small' (limits inclusive), it counts
        ([100, 100, 133, 132], 1.0),  # 33 x 32 = 1056: outside 'small', an unmatched detection there is ignored
    ],
    ids=["area-on-the-limit", "area-past-the-limit"],
)
def test_an_unmatched_detection_counts_only_inside_the_area_range(false_positive, expected_small):
    labels = make_labels([(0, [0, 0, 10, 10])])
    dets = make_detections([(0, false_positive, 0.9), (0, [0, 0, 10, 10], 0.8)])
    ours = assert_equal_to_pycocotools(labels, dets)
    assert ours["coco_ap_small"] == pytest.approx(expected_small, abs=1e-15)  # ranked FP, TP: precision .5
    assert ours["coco_ap"] == pytest.approx(0.5, abs=1e-15)  # 'all' counts the false positive either way


def test_undefined_area_ranges_are_minus_one_as_in_pycocotools():
    labels = make_labels([(0, [0, 0, 10, 10])])  # one small box: no medium or large box anywhere
    ours = assert_equal_to_pycocotools(labels, make_detections([(0, [0, 0, 10, 10], 0.5)]))
    assert ours["coco_ap_small"] == pytest.approx(1.0, abs=1e-15)
    assert (ours["coco_ap_medium"], ours["coco_ap_large"]) == (-1.0, -1.0)


def test_only_the_100_best_detections_of_an_image_count():
    # 130 detections on one image, the true positives ranked below 100 on image 0: pycocotools' maxDets = 100.
    rng = np.random.default_rng(7)
    gt = [[x, y, x + 20, y + 20] for x in range(0, 200, 40) for y in range(0, 200, 40)]
    labels = make_labels([(0, b) for b in gt] + [(1, b) for b in gt[:5]])
    rows = [(0, [300 + i, 300, 320 + i, 320], 0.9 - i * 1e-3) for i in range(110)]  # 110 confident misses
    rows += [(0, b, 0.1) for b in gt] + [(1, b, 0.5) for b in gt[:5]]
    rows = [rows[i] for i in rng.permutation(len(rows))]
    ours = assert_equal_to_pycocotools(labels, make_detections(rows))
    assert ours["coco_ar100"] == pytest.approx(5 / 30, abs=1e-15)  # image 0's hits fall beyond its 100th place
    assert ours["num_detections"] == len(rows)


def test_no_detection_scores_zero_where_a_box_exists_and_minus_one_elsewhere():
    # pycocotools cannot load an empty result list; its accumulate() gives 0 precision and recall here.
    labels = make_labels([(0, [0, 0, 10, 10]), (1, [0, 0, 50, 50])])
    scores = evaluate_detection(labels, make_detections([])).to_dict()
    assert [scores[k] for k in COCO_KEYS] == [0.0, 0.0, 0.0, 0.0, 0.0, -1.0, 0.0]


@pytest.mark.slow
def test_coco_numbers_equal_pycocotools_on_the_real_test_labels():
    if not REAL_GT.exists():
        pytest.skip(f"the 2020 test labels are not at {REAL_GT}")
    labels = read_detection_labels(REAL_GT)
    rng = np.random.default_rng(2020)
    boxes = labels.boxes
    size = np.tile(boxes[:, 2:] - boxes[:, :2] + 1, 2)
    # every box found once with jitter (float corners), a fifth twice, plus 5,000 random false positives
    twice = rng.choice(len(boxes), len(boxes) // 5, replace=False)
    index = np.r_[np.arange(len(boxes)), twice]
    jittered = boxes[index] + rng.normal(0, 0.08, (len(index), 4)) * size[index]
    fp_xy = rng.uniform(0, 500, (5000, 2))
    det_boxes = np.vstack([jittered, np.c_[fp_xy, fp_xy + rng.uniform(5, 120, (5000, 2))]])
    det_boxes[:, 2:] = np.maximum(det_boxes[:, 2:], det_boxes[:, :2])
    dets = Detections(
        np.r_[labels.image_index[index], rng.integers(0, labels.num_images, 5000)],
        np.round(det_boxes, 1),
        np.round(rng.random(len(det_boxes)), 3),  # rounded: many score ties
    )
    ours = assert_equal_to_pycocotools(labels, dets)
    assert ours["num_gt"] == 18_647 and ours["num_images"] == 10_000
    assert ours["ap50"] == pytest.approx(brute_force_ap50(labels, dets)[0], abs=1e-12)


def test_the_benchmark_runs_and_its_coco_numbers_agree(tmp_path):
    from benchmarks.scoring_detection import run
    from scorer.formats import write_detection_labels

    rng = np.random.default_rng(3)
    image_index = np.repeat(np.arange(40), rng.integers(1, 4, 40))
    xy = rng.uniform(0, 300, (len(image_index), 2))
    boxes = np.round(np.c_[xy, xy + rng.uniform(10, 140, (len(image_index), 2))])
    gt = tmp_path / "gt.csv"
    write_detection_labels(gt, [f"img_{i}.jpg" for i in range(40)], image_index, boxes)
    out = run(gt, num_detections=300, repeats=1, seed=1)
    assert [row[0] for row in out["rows"]][:2] == ["ours: ap50 alone", "ours: full metric set (ap50 + COCO)"]
    assert all(wall >= 0 and cpu >= 0 for _, wall, cpu in out["rows"])
    assert out["max_abs_diff"]["ours vs pycocotools"] <= 1e-12
    assert out["inputs"]["detections"] == 300
