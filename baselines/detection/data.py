"""Detection training data: the train list of a dataset folder, a seeded train/validation split, scale and flip
augmentation to a square crop, and a torch Dataset yielding images with their encoded targets.

Boxes follow the official convention (inclusive integer corners, see targets.py). Augmentation works on the
half-open form [x1, x2 + 1) so that scaling, cropping and flipping are exact, and converts back.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from baselines.detection.targets import encode
from scorer.formats import read_detection_train_boxes

log = logging.getLogger(__name__)

TRAIN_DIR = "icartoonface_dettrain"
TRAIN_CSV = "icartoonface_dettrain.csv"
TEST_DIR = "icartoonface_dettest"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


@dataclass(frozen=True)
class DetectionItem:
    """One image and its boxes float64 (M, 4), inclusive x1, y1, x2, y2."""

    path: Path
    boxes: np.ndarray

    @property
    def name(self) -> str:
        return self.path.name


def read_train_items(root: str | Path) -> list[DetectionItem]:
    """The images of `root/icartoonface_dettrain/` with their boxes from `icartoonface_dettrain.csv`, in the
    order of first appearance in the CSV. A listed image that is missing raises FileNotFoundError naming it."""
    root = Path(root)
    csv = root / TRAIN_CSV
    if not csv.exists():
        raise FileNotFoundError(f"{csv} not found: is {root} a detection dataset folder?")
    listing = read_detection_train_boxes(csv)
    grouped: dict[str, list[np.ndarray]] = {}
    for name, box in zip(listing.names, listing.boxes, strict=True):
        grouped.setdefault(name, []).append(box)
    items = []
    for name, boxes in grouped.items():
        path = root / TRAIN_DIR / name
        if not path.exists():
            raise FileNotFoundError(f"{path} is listed in {csv} but missing")
        items.append(DetectionItem(path, np.asarray(boxes, dtype=np.float64).reshape(-1, 4)))
    return items


def list_images(folder: str | Path) -> list[Path]:
    """The image files of a folder (jpg, jpeg, png, bmp), sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder of images")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def split_train_val(items: list[DetectionItem], val_fraction: float, seed: int, max_val: int | None = None):
    """A seeded split by image name: an image is held out iff sha1(f"{seed}:{name}") as a fraction of 2**64 is
    below val_fraction (stable when images are added or removed), then at most max_val of them (first by that
    hash). Returns (train_items, val_items)."""
    keys = [int.from_bytes(hashlib.sha1(f"{seed}:{item.name}".encode()).digest()[:8], "big") / 2**64 for item in items]
    held = sorted((k, i) for i, k in enumerate(keys) if k < val_fraction)
    if max_val is not None:
        held = held[:max_val]
    val_index = {i for _, i in held}
    train = [item for i, item in enumerate(items) if i not in val_index]
    val = [items[i] for i in sorted(val_index)]
    return train, val


def load_rgb(path: str | Path) -> np.ndarray:
    """An image file as uint8 (H, W, 3) RGB (a writable array)."""
    with Image.open(path) as image:
        return np.array(image.convert("RGB"))


def _holding(origins: tuple[int, int], centre: int, size: int) -> tuple[int, int]:
    """The crop origins within `origins` (inclusive) whose crop [origin, origin + size) holds `centre`."""
    low = max(origins[0], centre - size + 1)
    return low, max(low, min(origins[1], centre))


def augment(
    image: np.ndarray,
    boxes: np.ndarray,
    rng: np.random.Generator,
    *,
    size: int,
    scale_range: tuple[float, float] = (0.6, 1.4),
    flip: bool = True,
    min_box_size: float = 2.0,
    fit: bool = False,
    face_crop: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Random scale, a random size×size crop (zero padding where the scaled image is smaller) and a random
    horizontal flip. The scale is drawn from scale_range relative to the native resolution, or with fit=True
    relative to the image whose longer side fits `size` (then predict with test_max_size = size, the same scale).
    With probability face_crop the crop is drawn among those that hold the centre of a random face (more
    positives per crop when faces are sparse in large images).

    image: uint8 (H, W, 3); boxes: float (M, 4) inclusive. Returns uint8 (size, size, 3) and the boxes float64
    (M', 4) that keep their centre inside the crop, clipped to it, at least min_box_size wide and high.
    """
    height, width = image.shape[:2]
    scale = (size / max(height, width) if fit else 1.0) * rng.uniform(*scale_range)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    resized = np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.BILINEAR))
    sx, sy = new_w / width, new_h / height
    # crop origin in the resized image; negative = padding before the image
    x_range = (min(0, new_w - size), max(0, new_w - size))
    y_range = (min(0, new_h - size), max(0, new_h - size))
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if len(boxes) and rng.random() < face_crop:
        x1, y1, x2, y2 = boxes[int(rng.integers(len(boxes)))]
        cx, cy = int((x1 + x2 + 1) / 2 * sx), int((y1 + y2 + 1) / 2 * sy)
        x_range = _holding(x_range, cx, size)
        y_range = _holding(y_range, cy, size)
    x0 = int(rng.integers(x_range[0], x_range[1] + 1))
    y0 = int(rng.integers(y_range[0], y_range[1] + 1))
    canvas = np.zeros((size, size, 3), dtype=np.uint8)
    src_x, src_y = max(0, x0), max(0, y0)
    dst_x, dst_y = max(0, -x0), max(0, -y0)
    cw = min(new_w - src_x, size - dst_x)
    ch = min(new_h - src_y, size - dst_y)
    canvas[dst_y : dst_y + ch, dst_x : dst_x + cw] = resized[src_y : src_y + ch, src_x : src_x + cw]

    half_open = boxes.copy()
    half_open[:, 2:] += 1
    half_open[:, [0, 2]] = half_open[:, [0, 2]] * sx - x0
    half_open[:, [1, 3]] = half_open[:, [1, 3]] * sy - y0
    cx = (half_open[:, 0] + half_open[:, 2]) / 2
    cy = (half_open[:, 1] + half_open[:, 3]) / 2
    inside = (cx >= 0) & (cx < size) & (cy >= 0) & (cy < size)
    half_open = np.clip(half_open[inside], 0, size)
    big = (half_open[:, 2] - half_open[:, 0] >= min_box_size) & (half_open[:, 3] - half_open[:, 1] >= min_box_size)
    half_open = half_open[big]
    if flip and rng.random() < 0.5:
        canvas = canvas[:, ::-1]
        half_open[:, [0, 2]] = size - half_open[:, [2, 0]]
    half_open[:, 2:] -= 1
    return np.ascontiguousarray(canvas), half_open


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) → float32 (3, H, W) in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float().div_(255)


class DetectionTrainSet(torch.utils.data.Dataset):
    """Augmented square crops with their CenterNet targets.

    Item: dict of `image` float32 (3, S, S) and the Targets tensors `heatmap` (1, S/4, S/4), `index` (K,),
    `size` (K, 2), `offset` (K, 2), `mask` (K,). Each item's randomness comes from (seed, epoch, index), so a run is
    reproducible whatever the number of loader workers; call set_epoch each epoch.
    """

    def __init__(self, items: list[DetectionItem], cfg, *, seed: int = 0):
        self.items = items
        self.cfg = cfg
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        item = self.items[index]
        rng = np.random.default_rng((self.seed, self.epoch, index))
        image, boxes = augment(
            load_rgb(item.path),
            item.boxes,
            rng,
            size=self.cfg.input_size,
            scale_range=(self.cfg.scale_min, self.cfg.scale_max),
            flip=self.cfg.flip,
            min_box_size=self.cfg.min_box_size,
            fit=self.cfg.fit_crop,
            face_crop=self.cfg.face_crop,
        )
        targets = encode(
            boxes,
            (self.cfg.input_size, self.cfg.input_size),
            stride=self.cfg.stride,
            max_objects=self.cfg.max_objects,
            alpha=self.cfg.gaussian_alpha,
        )
        return {"image": to_tensor(image), **targets.as_tensors()}
