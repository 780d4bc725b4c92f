"""Fixtures of the detection baseline tests: a handful of drawn scenes in the official dataset layout, and one
tiny detector trained on them (shared by the overfit and prediction tests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from scorer.formats import BoxList, write_detection_labels, write_detection_train_boxes

SCENE_SIZE = 128


def draw_scene(rng: np.random.Generator, size: int = SCENE_SIZE) -> tuple[Image.Image, np.ndarray]:
    """A noisy background with 1 to 3 non-overlapping drawn faces (skin ellipse, two eyes) of 18 to 47 pixels.
    Returns the image and its boxes float64 (M, 4), inclusive corners."""
    image = Image.fromarray((rng.integers(60, 200, (size, size, 3), dtype=np.uint8) // 2 + 40).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    boxes: list[list[int]] = []
    for _ in range(int(rng.integers(1, 4))):
        for _attempt in range(50):
            side = int(rng.integers(18, 48))
            x, y = int(rng.integers(0, size - side)), int(rng.integers(0, size - side))
            if all(x + side < b[0] or b[2] < x or y + side < b[1] or b[3] < y for b in boxes):
                break
        else:
            continue
        draw.ellipse([x, y, x + side - 1, y + side - 1], fill=(250, 220, 180), outline=(0, 0, 0))
        eye = max(2, side // 8)
        draw.ellipse([x + side // 4, y + side // 3, x + side // 4 + eye, y + side // 3 + eye], fill=(0, 0, 0))
        draw.ellipse([x + 3 * side // 4 - eye, y + side // 3, x + 3 * side // 4, y + side // 3 + eye], fill=(0, 0, 0))
        boxes.append([x, y, x + side - 1, y + side - 1])
    return image, np.asarray(boxes, dtype=np.float64)


def write_dataset(root: Path, num_train: int, num_test: int, seed: int = 0) -> Path:
    """A dataset folder in the official layout: icartoonface_dettrain/ + csv, icartoonface_dettest/, hidden GT.
    The test images are the first train images again, so a model that fits the train set scores high."""
    rng = np.random.default_rng(seed)
    (root / "icartoonface_dettrain").mkdir(parents=True)
    (root / "icartoonface_dettest").mkdir()
    (root / "hidden").mkdir()
    names, boxes, scenes = [], [], []
    for i in range(num_train):
        image, found = draw_scene(rng)
        name = f"personai_icartoonface_dettrain_{i:05d}.jpg"
        image.save(root / "icartoonface_dettrain" / name, quality=95)
        scenes.append((image, found))
        names += [name] * len(found)
        boxes.append(found)
    write_detection_train_boxes(root / "icartoonface_dettrain.csv", BoxList(tuple(names), np.concatenate(boxes)))
    test_names, index, test_boxes = [], [], []
    for i, (image, found) in enumerate(scenes[:num_test]):
        name = f"personai_icartoonface_detval_{i:05d}.jpg"
        image.save(root / "icartoonface_dettest" / name, quality=95)
        test_names.append(name)
        index += [i] * len(found)
        test_boxes.append(found)
    write_detection_labels(
        root / "hidden" / "personai_icartoonface_detval.csv", test_names, index, np.concatenate(test_boxes)
    )
    return root


@pytest.fixture
def one_thread():
    """Tests that train run on one thread: the CI machine is shared, and one thread is the fastest there."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def scene_dataset(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("scenes") / "data", num_train=4, num_test=4)


@pytest.fixture(scope="session")
def trained_run(scene_dataset, tmp_path_factory) -> tuple[Path, dict]:
    """A tiny detector trained for 160 steps on the four train scenes, validated on the same scenes every epoch.
    Returns (run folder, last epoch's metrics).

    Trained to a plateau, not to a knife edge: measured on one CPU with oneDNN's AMX/AVX-512 kernels, with
    ONEDNN_MAX_CPU_ISA=AVX2 and SSE41, on one and two threads, the validation ap50 reached 1.0 between epochs 8
    and 12 and stayed there to epoch 20 in every variant (epochs 1 to 7 were below 0.1 in all of them), so the
    tests assert on the last epochs, which no kernel change has come close to moving."""
    from baselines.detection.config import load_config
    from baselines.detection.data import read_train_items
    from starter_kit.train_detection import train

    items = read_train_items(scene_dataset)
    cfg = load_config(
        "tiny_cpu",
        [
            "epochs=20",
            "repeat=8",
            "val_every=1",
            "scale_min=1.0",
            "scale_max=1.0",
            "flip=false",
            "lr=0.01",
            "warmup_steps=20",
        ],
    )
    out = tmp_path_factory.mktemp("run")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        metrics = train(cfg, out, items, items, progress=False)
    finally:
        torch.set_num_threads(threads)
    return out, metrics
