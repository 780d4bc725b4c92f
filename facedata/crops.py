"""Image loading and face crops with the papers' enlarge rate.

The enlarge rate r makes the crop (1 + r) times the box in width and height around the box's centre: r = 0 is the
box itself and r = 1.0 doubles it, as PaddleClas and both iCartoonFace papers do (the papers study r in [0, 1]).
Box corners are those of the official files (x1, y1, x2, y2, pixel coordinates); width is x2 - x1.
"""

from __future__ import annotations

import logging
import os

import numpy as np
from PIL import Image, UnidentifiedImageError

from facedata.layout import DatasetError

log = logging.getLogger(__name__)


def load_rgb(path: str | os.PathLike) -> Image.Image:
    """An image file as a loaded RGB PIL image; DatasetError naming the file when missing or unreadable."""
    try:
        with Image.open(path) as image:
            image.load()
            return image.convert("RGB") if image.mode != "RGB" else image.copy()
    except FileNotFoundError:
        raise DatasetError(f"{path}: no such image") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise DatasetError(f"{path}: not a readable image ({exc})") from None


def enlarged_box(box, enlarge_rate: float) -> tuple[float, float, float, float]:
    """The box (x1, y1, x2, y2) grown to (1 + r) times its width and height about its centre."""
    if enlarge_rate < 0:
        raise ValueError(f"the enlarge rate must be >= 0, not {enlarge_rate}")
    x1, y1, x2, y2 = (float(v) for v in box)
    if x2 < x1 or y2 < y1:
        raise ValueError(f"box {tuple(box)} has x2 < x1 or y2 < y1")
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    half_w, half_h = (1 + enlarge_rate) * (x2 - x1) / 2, (1 + enlarge_rate) * (y2 - y1) / 2
    return cx - half_w, cy - half_h, cx + half_w, cy + half_h


def crop_box(image: Image.Image, box, enlarge_rate: float = 1.0) -> Image.Image:
    """The enlarged box cut out of the image (integer-rounded corners, at least 1 pixel); parts outside the
    image are black."""
    x1, y1, x2, y2 = enlarged_box(box, enlarge_rate)
    left, top = int(round(x1)), int(round(y1))
    right, bottom = max(int(round(x2)), left + 1), max(int(round(y2)), top + 1)
    return image.crop((left, top, right, bottom))


def crop_face(image: Image.Image, box, enlarge_rate: float = 1.0, size: int = 112) -> np.ndarray:
    """The enlarged crop resized to size x size (bilinear): uint8 (size, size, 3)."""
    crop = crop_box(image, box, enlarge_rate).resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(crop.convert("RGB"), dtype=np.uint8)
