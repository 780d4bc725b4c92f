"""Target encoding and decoding (baselines.detection.targets): decoding the encoded targets gives the boxes back."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from baselines.detection.targets import decode, dense_maps, encode
from tests.profiles import examples


def _round_trip(boxes: np.ndarray, image_size: tuple[int, int], stride: int = 4):
    targets = encode(boxes, image_size, stride=stride, max_objects=64)
    h, w = image_size[0] // stride, image_size[1] // stride
    size, offset = dense_maps(targets, (h, w))
    decoded, scores = decode(
        torch.from_numpy(targets.heatmap)[None],
        torch.from_numpy(size)[None],
        torch.from_numpy(offset)[None],
        stride=stride,
        top_k=64,
    )
    keep = scores[0] == 1.0  # the centres; the Gaussian tails score below 1
    return targets, decoded[0][keep].double().numpy()


def _same_rows(a: np.ndarray, b: np.ndarray) -> bool:
    """The same boxes up to float32 rounding, in any order."""
    a, b = np.round(a, 2) + 0.0, np.round(b, 2) + 0.0  # + 0.0 turns -0.0 into 0.0
    order_a = np.lexsort(a.T[::-1])
    order_b = np.lexsort(b.T[::-1])
    return a.shape == b.shape and np.allclose(a[order_a], b[order_b], atol=1e-3)


@pytest.mark.parametrize(
    "boxes",
    [
        [[10, 12, 40, 50]],
        [[10, 12, 40, 50], [60, 60, 61, 63], [100, 5, 127, 30]],  # a 2-pixel-wide face among others
        [[0, 0, 0, 0]],  # a one-pixel box (x2 == x1) at the corner
        [[0, 0, 127, 95]],  # the whole image
        [[3.5, 7.25, 20.75, 30.5]],  # non-integer corners
    ],
)
def test_decoding_the_encoded_targets_gives_the_boxes_back(boxes):
    boxes = np.asarray(boxes, dtype=np.float64)
    _, decoded = _round_trip(boxes, (96, 128))
    assert _same_rows(decoded, boxes), decoded


@settings(max_examples=examples(40), deadline=None)
@given(st.data())
def test_round_trip_holds_for_random_boxes_with_distinct_centre_cells(data):
    height, width = 64 * data.draw(st.integers(1, 3)), 64 * data.draw(st.integers(1, 3))
    count = data.draw(st.integers(1, 12))
    boxes, cells = [], set()
    for _ in range(count):
        x1 = data.draw(st.integers(0, width - 1))
        y1 = data.draw(st.integers(0, height - 1))
        x2 = data.draw(st.integers(x1, width - 1))
        y2 = data.draw(st.integers(y1, height - 1))
        cell = (int((x1 + x2 + 1) / 2 // 4), int((y1 + y2 + 1) / 2 // 4))
        if cell not in cells:  # one box per cell: a cell can only decode one box
            cells.add(cell)
            boxes.append([x1, y1, x2, y2])
    boxes = np.asarray(boxes, dtype=np.float64)
    _, decoded = _round_trip(boxes, (height, width))
    assert _same_rows(decoded, boxes)


def test_heatmap_is_one_exactly_at_the_centre_cells_and_below_one_elsewhere():
    boxes = np.array([[10, 12, 40, 50], [60, 60, 90, 70]], dtype=np.float64)
    targets = encode(boxes, (96, 128))
    ones = np.argwhere(targets.heatmap[0] == 1.0)
    expected = [[int((12 + 50 + 1) / 2 // 4), int((10 + 40 + 1) / 2 // 4)], [int((60 + 70 + 1) / 2 // 4), 18]]
    assert sorted(ones.tolist()) == sorted(expected)
    assert targets.heatmap.max() == 1.0 and targets.heatmap.min() >= 0.0
    assert targets.mask.sum() == 2
    assert np.all((targets.offset[:2] >= 0) & (targets.offset[:2] < 1))


def test_a_box_whose_centre_is_outside_the_image_is_not_encoded():
    boxes = np.array([[10, 10, 20, 20], [120, 10, 200, 20]], dtype=np.float64)  # centre x 160.5 > 128
    targets = encode(boxes, (64, 128))
    assert targets.mask.sum() == 1


def test_beyond_max_objects_the_largest_boxes_are_kept():
    boxes = np.array([[0, 0, 3, 3], [20, 20, 59, 59], [8, 40, 13, 45]], dtype=np.float64)
    targets = encode(boxes, (64, 64), max_objects=1)
    assert targets.mask.tolist() == [1.0]
    assert np.allclose(np.exp(targets.size[0]) * 4, [40, 40])


def test_no_boxes_gives_an_empty_heatmap_and_no_objects():
    targets = encode(np.zeros((0, 4)), (32, 32))
    assert targets.heatmap.shape == (1, 8, 8) and targets.heatmap.max() == 0 and targets.mask.sum() == 0


@pytest.mark.parametrize("image_size", [(30, 32), (32, 30), (33, 33)])
def test_an_image_size_that_is_not_a_multiple_of_the_stride_is_refused(image_size):
    with pytest.raises(ValueError, match="not a multiple of the stride 4"):
        encode(np.array([[1, 1, 5, 5]]), image_size)


def test_decode_reports_only_local_maxima_by_descending_score():
    heatmap = torch.zeros(1, 1, 8, 8)
    heatmap[0, 0, 2, 2] = 0.9
    heatmap[0, 0, 2, 3] = 0.8  # next to a higher cell: not a peak
    heatmap[0, 0, 6, 6] = 0.7
    boxes, scores = decode(heatmap, torch.zeros(1, 2, 8, 8), torch.zeros(1, 2, 8, 8), top_k=3)
    assert scores[0, :2].tolist() == pytest.approx([0.9, 0.7])
    assert scores[0, 2] == 0
    # size log(1) = 0 → a 4-pixel box at stride 4 whose centre is the cell's corner
    assert boxes[0, 0].tolist() == pytest.approx([6.0, 6.0, 9.0, 9.0])
