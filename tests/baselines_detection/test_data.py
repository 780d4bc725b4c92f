"""Training data of the detector (baselines.detection.data): augmentation keeps boxes on their faces, the seeded
validation split, and clear errors for a broken dataset folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from baselines.detection.config import load_config
from baselines.detection.data import (
    DetectionItem,
    DetectionTrainSet,
    augment,
    list_images,
    read_train_items,
    split_train_val,
)


def _painted(height: int, width: int, boxes: np.ndarray) -> np.ndarray:
    """Black image with inclusive box k painted 255 in colour channel k (each face has its own channel)."""
    image = np.zeros((height, width, 3), dtype=np.uint8)
    for k, (x1, y1, x2, y2) in enumerate(boxes.astype(int)):
        image[y1 : y2 + 1, x1 : x2 + 1, k] = 255
    return image


@pytest.mark.parametrize("scale_range", [(1.0, 1.0), (0.5, 1.5)])
@pytest.mark.parametrize("fit", [False, True])
@pytest.mark.parametrize("face_crop", [0.0, 1.0])
def test_augmented_boxes_stay_on_the_pixels_of_their_faces(scale_range, fit, face_crop):
    boxes = np.array([[10, 20, 49, 59], [70, 5, 99, 24], [30, 80, 44, 94]], dtype=np.float64)
    image = _painted(120, 160, boxes)
    checked = 0
    for seed in range(12):
        rng = np.random.default_rng(seed)
        out, out_boxes = augment(
            image, boxes, rng, size=96, scale_range=scale_range, flip=True, min_box_size=4, fit=fit, face_crop=face_crop
        )
        assert out.shape == (96, 96, 3) and out.dtype == np.uint8
        for x1, y1, x2, y2 in out_boxes:
            assert 0 <= x1 <= x2 <= 95 and 0 <= y1 <= y2 <= 95
        for k in range(len(boxes)):
            ys, xs = np.nonzero(out[:, :, k] > 127)
            if len(xs) == 0:
                continue
            painted = (xs.min(), ys.min(), xs.max(), ys.max())  # the face's pixels, as the augmented image shows them
            # a face wholly inside the crop must keep its box (one cut by the crop edge may be dropped)
            if min(painted) > 1 and max(painted) < 94 and min(painted[2] - painted[0], painted[3] - painted[1]) > 6:
                # bilinear resizing blends the face's edge pixels: its box may lie up to 1.5 pixels outside them
                on_it = [box for box in out_boxes if np.abs(np.asarray(box) - painted).max() <= 1.5]
                assert len(on_it) == 1, f"seed {seed}: face {k} at {painted} has no box on it: {out_boxes.tolist()}"
                checked += 1
    assert checked >= 6  # the property was checked on enough faces to mean something


def test_augmentation_at_scale_one_without_flip_only_translates():
    boxes = np.array([[10, 20, 49, 59]], dtype=np.float64)
    image = _painted(64, 64, boxes)
    out, out_boxes = augment(image, boxes, np.random.default_rng(0), size=64, scale_range=(1, 1), flip=False)
    assert np.array_equal(out, image)
    assert np.array_equal(out_boxes, boxes)


def test_a_flip_mirrors_the_box_with_inclusive_pixels():
    boxes = np.array([[0, 0, 9, 9]], dtype=np.float64)
    image = _painted(32, 32, boxes)
    for seed in range(20):  # find a seed whose coin flips
        out, out_boxes = augment(image, boxes, np.random.default_rng(seed), size=32, scale_range=(1, 1), flip=True)
        if not np.array_equal(out, image):
            assert out_boxes.tolist() == [[22.0, 0.0, 31.0, 9.0]]
            assert out[0:10, 22:32, 0].min() == 255 and out[:, :22].max() == 0
            return
    pytest.fail("no flip in 20 seeds")


def test_a_training_item_is_reproducible_from_seed_epoch_and_index(tmp_path):
    from PIL import Image

    boxes = np.array([[10, 10, 40, 40]], dtype=np.float64)
    path = tmp_path / "a.png"
    Image.fromarray(_painted(100, 80, boxes)).save(path)
    cfg = load_config("tiny_cpu", ["input_size=64"])
    data = DetectionTrainSet([DetectionItem(path, boxes)], cfg, seed=3)
    first = data[0]
    assert first["image"].shape == (3, 64, 64) and first["heatmap"].shape == (1, 16, 16)
    assert data[0]["image"].equal(first["image"])
    data.set_epoch(1)
    assert not data[0]["image"].equal(first["image"])


def test_the_validation_split_is_seeded_disjoint_and_stable_when_images_are_added():
    items = [DetectionItem(Path(f"img_{i:04d}.jpg"), np.zeros((0, 4))) for i in range(400)]
    train, val = split_train_val(items, 0.1, seed=7)
    assert {i.name for i in train}.isdisjoint({i.name for i in val})
    assert len(train) + len(val) == 400 and 20 <= len(val) <= 60
    assert [i.name for i in split_train_val(items, 0.1, seed=7)[1]] == [i.name for i in val]
    assert [i.name for i in split_train_val(items, 0.1, seed=8)[1]] != [i.name for i in val]
    more = items + [DetectionItem(Path(f"new_{i}.jpg"), np.zeros((0, 4))) for i in range(50)]
    assert {i.name for i in val} <= {i.name for i in split_train_val(more, 0.1, seed=7)[1]}
    assert len(split_train_val(items, 0.1, seed=7, max_val=5)[1]) == 5


def test_read_train_items_groups_the_boxes_of_each_image(scene_dataset):
    items = read_train_items(scene_dataset)
    assert len(items) == 4
    assert sum(len(i.boxes) for i in items) == len(
        (scene_dataset / "icartoonface_dettrain.csv").read_text().splitlines()
    )
    assert all(i.path.exists() for i in items)


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        ("no_csv", "icartoonface_dettrain.csv not found"),
        ("no_image", "is listed in"),
    ],
)
def test_a_broken_dataset_folder_is_an_error_naming_the_file(scene_dataset, tmp_path, breakage, message):
    root = tmp_path / "data"
    shutil.copytree(scene_dataset, root)
    if breakage == "no_csv":
        (root / "icartoonface_dettrain.csv").unlink()
    else:
        next((root / "icartoonface_dettrain").iterdir()).unlink()
    with pytest.raises(FileNotFoundError, match=message):
        read_train_items(root)


def test_list_images_of_a_missing_folder_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a folder of images"):
        list_images(tmp_path / "nowhere")


def test_face_crops_hold_a_face_of_a_large_image():
    boxes = np.array([[900, 700, 939, 739]], dtype=np.float64)  # one small face in a corner of a large image
    image = _painted(800, 1000, boxes)
    kept = [
        len(augment(image, boxes, np.random.default_rng(seed), size=128, scale_range=(1, 1), face_crop=1.0)[1])
        for seed in range(10)
    ]
    assert kept == [1] * 10
    # a plain random crop of the same image rarely holds the face: the option is what makes the difference
    plain = [
        len(augment(image, boxes, np.random.default_rng(seed), size=128, scale_range=(1, 1))[1]) for seed in range(10)
    ]
    assert sum(plain) < 5
