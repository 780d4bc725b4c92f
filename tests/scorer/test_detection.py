"""The primary detection metric `ap50` (FORMATS.md §1), its PR curve, splits and the JSON form of the scores.

Hand-computed cases write the expected value out; `brute_force_ap50` (tests/scorer/_det_reference.py) is the
official algorithm as plain loops, compared with the vectorised scorer on random inputs.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scorer.detection import METRIC_NAMES, PRCurve, ap50, evaluate_detection, image_mask, pr_curve
from scorer.formats import DetectionLabels, Detections
from tests.profiles import examples
from tests.scorer._det_reference import brute_force_ap50, detection_cases, make_detections, make_labels

A = [0, 0, 9, 9]  # 10 x 10 pixels with the +1 convention
B = [20, 0, 29, 9]  # far from A

# --------------------------------------------------------------------------------------------------- hand cases


def test_duplicate_detection_is_a_false_positive():
    labels = make_labels([(0, A), (0, B)])
    dets = make_detections([(0, A, 0.9), (0, A, 0.8), (0, B, 0.7)])
    # ranked TP, FP, TP: recall .5 .5 1, precision 1 .5 2/3 -> AP = .5 * 1 + .5 * 2/3
    curve = pr_curve(labels, dets)
    np.testing.assert_allclose(curve.recall, [0.5, 0.5, 1.0])
    np.testing.assert_allclose(curve.precision, [1.0, 0.5, 2 / 3])
    assert ap50(labels, dets) == pytest.approx(5 / 6, abs=1e-15)


def test_a_duplicate_does_not_fall_back_to_the_second_best_box():
    # C overlaps A with IoU 70/130 >= .5; the second copy of A still takes A (taken) and is a false positive.
    c = [3, 0, 12, 9]
    labels = make_labels([(0, A), (0, c)])
    dets = make_detections([(0, A, 0.9), (0, A, 0.8)])
    assert ap50(labels, dets) == pytest.approx(0.5, abs=1e-15)  # TP then FP out of 2 boxes


@pytest.mark.parametrize(
    ("box", "expected"),
    [
        ([0, 0, 9, 19], 1.0),  # 10x20 over 10x10: IoU 100 / 200 = 0.5 exactly: a true positive
        ([0, 0, 9, 20], 0.0),  # 10x21: IoU 100 / 210 < 0.5: a false positive
    ],
    ids=["iou-exactly-0.5-counts", "iou-just-below-0.5-misses"],
)
def test_iou_of_exactly_one_half_counts(box, expected):
    labels = make_labels([(0, A)])
    assert ap50(labels, make_detections([(0, box, 1.0)])) == expected


@pytest.mark.parametrize(
    ("gt", "det"),
    [
        # IoU (+1) = 100/200 = .5, a hit; without +1 it would be 81/171 = .47, a miss
        ([0, 0, 9, 9], [0, 0, 9, 19]),
        # a one-pixel box (x2 == x1) found exactly: IoU (+1) = 1; without +1 its area is 0
        ([5, 5, 5, 5], [5, 5, 5, 5]),
    ],
    ids=["half-overlap", "one-pixel-box"],
)
def test_iou_counts_pixels_inclusively(gt, det):
    assert ap50(make_labels([(0, gt)]), make_detections([(0, det, 0.5)])) == 1.0


def test_matching_follows_score_order_not_row_order():
    # The 2020 script matched rows in file order: the low-score row would take the box and the high-score row be a
    # false positive (AP .5). In score order the 0.9 detection takes the box: ranked TP, FP -> AP 1.
    labels = make_labels([(0, A)])
    dets = make_detections([(0, [0, 0, 9, 11], 0.3), (0, A, 0.9)])
    assert ap50(labels, dets) == 1.0


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        # same score, same image: the false positive comes first in the file -> ranked FP, TP: AP = .5 * .5
        ([(0, [50, 50, 60, 60], 0.5), (0, A, 0.5)], 0.25),
        # the true positive first in the file -> ranked TP, FP: AP = .5 * 1
        ([(0, A, 0.5), (0, [50, 50, 60, 60], 0.5)], 0.5),
    ],
    ids=["fp-first-in-file", "tp-first-in-file"],
)
def test_score_ties_keep_file_order(rows, expected):
    labels = make_labels([(0, A), (0, B)])
    assert ap50(labels, make_detections(rows)) == expected


@pytest.mark.parametrize(
    ("gt_rows", "expected"),
    [
        # image 0 (first in the GT) holds the true positive: ranked TP, FP -> AP .5
        ([(0, A), (1, B)], 0.5),
        # the same detections, but the image of the false positive comes first in the GT: FP, TP -> AP .25
        ([(1, A), (0, B)], 0.25),
    ],
    ids=["tp-image-first", "fp-image-first"],
)
def test_score_ties_across_images_follow_gt_image_order(gt_rows, expected):
    # image 0 always gets a detection on A, image 1 a detection on A too; only the image holding box A gets a hit.
    labels = make_labels(gt_rows)
    dets = make_detections([(1, A, 0.5), (0, A, 0.5)])
    assert ap50(labels, dets) == expected


@pytest.mark.parametrize(
    ("gt_rows", "expected"),
    [
        # the midway detection has equal IoU (90/110) with both boxes and takes the first in the file, L; the
        # exact copy of R then takes R: TP, TP -> AP 1
        ([(0, [0, 0, 9, 9]), (0, [2, 0, 11, 9])], 1.0),
        # R first in the file: the midway detection takes R, the copy of R is a duplicate: TP, FP -> AP .5
        ([(0, [2, 0, 11, 9]), (0, [0, 0, 9, 9])], 0.5),
    ],
    ids=["left-box-first", "right-box-first"],
)
def test_equal_iou_goes_to_the_first_box_in_file_order(gt_rows, expected):
    dets = make_detections([(0, [1, 0, 10, 9], 0.9), (0, [2, 0, 11, 9], 0.8)])
    assert ap50(make_labels(gt_rows), dets) == expected


def test_images_without_detections_count_their_boxes_as_misses():
    labels = make_labels([(0, A), (1, A), (2, A), (2, B)])
    dets = make_detections([(2, B, 0.4), (0, A, 0.9)])
    scores = evaluate_detection(labels, dets)
    assert scores.ap50 == 0.5  # two hits out of four boxes, both at precision 1
    assert (scores.num_gt, scores.num_detections, scores.num_images) == (4, 2, 3)


def test_no_detection_at_all_scores_zero():
    scores = evaluate_detection(make_labels([(0, A)]), make_detections([]))
    assert scores.ap50 == 0.0
    assert len(scores.pr_curve) == 0
    assert scores.coco_ap == 0.0 and scores.coco_ar100 == 0.0


@pytest.mark.parametrize(
    "images", [np.zeros(2, dtype=bool), np.array([], dtype=np.int64), []], ids=["empty-mask", "empty-index", "list"]
)
def test_an_empty_split_scores_zero_without_error(images):
    labels = make_labels([(0, A), (1, B)])
    dets = make_detections([(0, A, 0.9), (1, B, 0.9)])
    scores = evaluate_detection(labels, dets, images)
    assert scores.ap50 == 0.0
    assert (scores.num_gt, scores.num_detections, scores.num_images) == (0, 0, 0)
    assert scores.coco_ap == -1.0  # pycocotools' "undefined": no box in the split
    json.dumps(scores.to_dict(), allow_nan=False)


def test_detections_only_outside_the_split_count_for_nothing():
    labels = make_labels([(0, A), (1, B)])
    dets = make_detections([(0, A, 0.9), (0, B, 0.8)])
    scores = evaluate_detection(labels, dets, np.array([1]))
    assert scores.ap50 == 0.0
    assert (scores.num_gt, scores.num_detections, scores.num_images) == (1, 0, 1)
    # The split's box is small: AP 0 where it counts, -1 (undefined) for the empty medium and large ranges.
    assert (scores.coco_ap, scores.coco_ap_small, scores.coco_ap_medium, scores.coco_ap_large) == (0.0, 0.0, -1.0, -1.0)


# --------------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("images", "message"),
    [
        (np.ones(3, dtype=bool), "shape (2,)"),
        (np.array([0, 2]), "image index 2 is outside 0..1"),
        (np.array([-1]), "image index -1 is outside"),
        (np.array([0.0, 1.0]), "bool mask or a 1-d int index array"),
        (np.array([[0, 1]]), "bool mask or a 1-d int index array"),
    ],
    ids=["mask-length", "index-too-large", "index-negative", "float-index", "2d-index"],
)
def test_a_bad_split_argument_is_a_clear_error(images, message):
    labels = make_labels([(0, A), (1, B)])
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        evaluate_detection(labels, make_detections([(0, A, 1.0)]), images)


@pytest.mark.parametrize(
    ("dets", "message"),
    [
        (Detections(np.array([0, 5]), np.zeros((2, 4)), np.ones(2)), "image_index is outside 0..1"),
        (Detections(np.array([0]), np.zeros((2, 4)), np.ones(2)), "detections must have boxes"),
        (Detections(np.array([0, 0]), np.zeros((2, 3)), np.ones(2)), "detections must have boxes"),
    ],
    ids=["image-out-of-range", "index-length", "box-columns"],
)
def test_inconsistent_detections_are_a_clear_error(dets, message):
    with pytest.raises(ValueError, match=message):
        ap50(make_labels([(0, A), (1, B)]), dets)


# --------------------------------------------------------------------------------------------------- reference


@st.composite
def cases_with_split(draw):
    labels, dets = draw(detection_cases())
    kind = draw(st.sampled_from(["all", "mask", "index"]))
    if kind == "all":
        return labels, dets, None
    mask = np.array(draw(st.lists(st.booleans(), min_size=labels.num_images, max_size=labels.num_images)))
    return labels, dets, mask if kind == "mask" else np.flatnonzero(mask)


@settings(max_examples=examples(100), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases_with_split())
def test_ap50_equals_the_brute_force_official_algorithm(case):
    labels, dets, images = case
    expected, recall, precision = brute_force_ap50(labels, dets, images)
    scores = evaluate_detection(labels, dets, images, coco=False)
    assert scores.ap50 == pytest.approx(expected, abs=1e-12)
    np.testing.assert_allclose(scores.pr_curve.recall, recall, rtol=0, atol=1e-15)
    np.testing.assert_allclose(scores.pr_curve.precision, precision, rtol=0, atol=1e-15)
    assert ap50(labels, dets, images) == scores.ap50


def _restrict(labels: DetectionLabels, dets: Detections, mask: np.ndarray) -> tuple[DetectionLabels, Detections]:
    """A copy of the labels and the detections holding only the images of mask (renumbered, order kept)."""
    new_index = np.cumsum(mask) - 1
    gt_keep, det_keep = mask[labels.image_index], mask[dets.image_index]
    sub_labels = DetectionLabels(
        tuple(n for n, keep in zip(labels.image_names, mask, strict=True) if keep),
        new_index[labels.image_index[gt_keep]],
        labels.boxes[gt_keep],
    )
    sub_dets = Detections(new_index[dets.image_index[det_keep]], dets.boxes[det_keep], dets.scores[det_keep])
    return sub_labels, sub_dets


@settings(max_examples=examples(40), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(detection_cases(), st.data())
def test_a_split_scores_like_the_files_filtered_to_it(case, data):
    labels, dets = case
    mask = np.array(data.draw(st.lists(st.booleans(), min_size=labels.num_images, max_size=labels.num_images)))
    if not mask.any():
        mask[0] = True  # a file holds at least one image
    split = evaluate_detection(labels, dets, mask).to_dict(curve_points=None)
    filtered = evaluate_detection(*_restrict(labels, dets, mask)).to_dict(curve_points=None)
    assert split == filtered
    assert evaluate_detection(labels, dets, np.flatnonzero(mask)).to_dict(curve_points=None) == split


def test_a_split_given_as_mask_or_as_indices_is_the_same():
    labels = make_labels([(0, A), (1, B), (2, A)])
    dets = make_detections([(0, A, 0.9), (1, A, 0.8), (2, A, 0.7)])
    np.testing.assert_array_equal(image_mask(labels, np.array([2, 0, 2])), [True, False, True])
    assert ap50(labels, dets, np.array([0, 2])) == ap50(labels, dets, np.array([True, False, True])) == 1.0


# --------------------------------------------------------------------------------------------------- outputs


def test_to_dict_has_exactly_the_contract_keys_and_is_json():
    labels = make_labels([(0, A), (1, B)])
    dets = make_detections([(0, A, 0.9), (1, [20, 0, 28, 9], 0.5), (1, [0, 0, 5, 5], 0.1)])
    for coco in (True, False):
        out = evaluate_detection(labels, dets, coco=coco).to_dict()
        assert list(out) == [*METRIC_NAMES, "pr_curve"]
        assert set(METRIC_NAMES) == {
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
        }  # fmt: skip  (FORMATS.md §1 names, written out)
        assert set(out["pr_curve"]) == {"recall", "precision"}
        assert json.loads(json.dumps(out, allow_nan=False)) == out
        assert isinstance(out["num_gt"], int) and isinstance(out["ap50"], float)
    assert out["coco_ap"] is None  # coco=False: not computed, null in JSON


def test_coco_false_leaves_the_coco_numbers_nan():
    scores = evaluate_detection(make_labels([(0, A)]), make_detections([(0, A, 1.0)]), coco=False)
    assert scores.ap50 == 1.0
    assert all(math.isnan(getattr(scores, name)) for name in METRIC_NAMES if name.startswith("coco_"))


def _sawtooth(n: int, seed: int = 0) -> PRCurve:
    rng = np.random.default_rng(seed)
    tp = rng.random(n) < 0.6
    tp_sum, count = np.cumsum(tp), np.arange(1, n + 1)
    return PRCurve(tp_sum / tp.sum(), tp_sum / count)


def test_downsample_keeps_the_ends_and_the_extremes_within_the_budget():
    curve = _sawtooth(5000)
    small = curve.downsample(200)
    assert len(small) <= 200
    assert (small.recall[0], small.precision[0]) == (curve.recall[0], curve.precision[0])
    assert (small.recall[-1], small.precision[-1]) == (curve.recall[-1], curve.precision[-1])
    assert small.precision.max() == curve.precision.max() and small.precision.min() == curve.precision.min()
    assert np.all(np.diff(small.recall) >= 0)  # still in ranking order
    # every kept point is a point of the curve
    pairs = set(zip(curve.recall.tolist(), curve.precision.tolist(), strict=True))
    assert set(zip(small.recall.tolist(), small.precision.tolist(), strict=True)) <= pairs


def test_downsample_of_a_short_curve_returns_it_whole():
    curve = _sawtooth(150)
    assert curve.downsample(200) is curve


@pytest.mark.parametrize("points", [0, 1, -5])
def test_downsample_needs_at_least_two_points(points):
    with pytest.raises(ValueError, match="at least 2"):
        _sawtooth(500).downsample(points)


@pytest.mark.parametrize("num_images", [3, 2**16, 2**16 + 5], ids=["few", "16-bit-limit", "beyond-16-bit"])
def test_score_ties_across_images_follow_image_order_at_any_image_count(num_images):
    # The ranking sorts image indices with a 16-bit radix sort when they fit, else a wider stable sort.
    last = num_images - 1
    labels = make_labels([(0, A), (last, B)], num_images=num_images)
    hit_first = make_detections([(last, [50, 50, 60, 60], 0.5), (0, A, 0.5)])  # image 0's hit ranks first
    assert ap50(labels, hit_first) == 0.5
    hit_last = make_detections([(last, B, 0.5), (0, [50, 50, 60, 60], 0.5)])  # image 0's miss ranks first
    assert ap50(labels, hit_last) == 0.25
    assert evaluate_detection(labels, hit_last).coco_ap50 == pytest.approx(0.5 * 51 / 101, abs=1e-12)
