"""CenterNet-style target encoding and decoding for one class (face).

Box convention: integer-cornered boxes `x1, y1, x2, y2` with inclusive pixels, as the official files and the
scorer's IoU use them. Internally a box covers the continuous interval [x1, x2 + 1) where pixel i spans [i, i + 1):
its width is `x2 - x1 + 1` and its centre `(x1 + x2 + 1) / 2`. Decoding inverts exactly that.

At output stride s, a box is encoded at the cell (ix, iy) = floor(centre / s):
- heatmap: an elliptical Gaussian centred on that cell, peak exactly 1, sigma = alpha * size / (6 s) per axis;
  overlapping faces take the elementwise maximum;
- offset: centre / s - (ix, iy), in [0, 1);
- size: log(width / s), log(height / s).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Targets:
    """Training targets of one image at output size (h, w), padded to K objects.

    heatmap: float32 (1, h, w); index: int64 (K,) flat cell index iy * w + ix; size: float32 (K, 2) log(w/s),
    log(h/s); offset: float32 (K, 2); mask: float32 (K,) 1 for a real object, 0 for padding.
    """

    heatmap: np.ndarray
    index: np.ndarray
    size: np.ndarray
    offset: np.ndarray
    mask: np.ndarray

    def as_tensors(self) -> dict[str, torch.Tensor]:
        return {name: torch.from_numpy(getattr(self, name)) for name in ("heatmap", "index", "size", "offset", "mask")}


def encode(
    boxes: np.ndarray,
    image_size: tuple[int, int],
    *,
    stride: int = 4,
    max_objects: int = 128,
    alpha: float = 0.54,
) -> Targets:
    """Encode boxes float (M, 4) inclusive x1, y1, x2, y2 inside an image of (height, width) pixels.

    The height and width must be multiples of the stride. Boxes whose centre falls outside the image are
    skipped; beyond `max_objects`, the largest boxes are kept (and a warning logged).
    """
    height, width = image_size
    if height % stride or width % stride:
        raise ValueError(f"image size {image_size} is not a multiple of the stride {stride}")
    h, w = height // stride, width // stride
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    bw = boxes[:, 2] - boxes[:, 0] + 1
    bh = boxes[:, 3] - boxes[:, 1] + 1
    cx = (boxes[:, 0] + boxes[:, 2] + 1) / 2 / stride
    cy = (boxes[:, 1] + boxes[:, 3] + 1) / 2 / stride
    keep = (bw > 0) & (bh > 0) & (cx >= 0) & (cx < w) & (cy >= 0) & (cy < h)
    if keep.sum() > max_objects:
        log.warning("%d boxes in one image; keeping the %d largest", int(keep.sum()), max_objects)
        area = np.where(keep, bw * bh, -1.0)
        keep = np.zeros_like(keep)
        keep[np.argsort(-area, kind="stable")[:max_objects]] = True
    bw, bh, cx, cy = bw[keep], bh[keep], cx[keep], cy[keep]
    ix = np.minimum(np.floor(cx), w - 1).astype(np.int64)
    iy = np.minimum(np.floor(cy), h - 1).astype(np.int64)

    heatmap = np.zeros((1, h, w), dtype=np.float32)
    if len(ix):
        sigma_x = np.maximum(alpha * bw / stride / 6, 1e-3)
        sigma_y = np.maximum(alpha * bh / stride / 6, 1e-3)
        gx = np.exp(-((np.arange(w)[None, :] - ix[:, None]) ** 2) / (2 * sigma_x[:, None] ** 2))  # (M, w)
        gy = np.exp(-((np.arange(h)[None, :] - iy[:, None]) ** 2) / (2 * sigma_y[:, None] ** 2))  # (M, h)
        heatmap[0] = np.max(gy[:, :, None] * gx[:, None, :], axis=0)

    count = len(ix)
    index = np.zeros(max_objects, dtype=np.int64)
    size = np.zeros((max_objects, 2), dtype=np.float32)
    offset = np.zeros((max_objects, 2), dtype=np.float32)
    mask = np.zeros(max_objects, dtype=np.float32)
    index[:count] = iy * w + ix
    size[:count, 0] = np.log(bw / stride)
    size[:count, 1] = np.log(bh / stride)
    offset[:count, 0] = cx - ix
    offset[:count, 1] = cy - iy
    mask[:count] = 1
    return Targets(heatmap, index, size, offset, mask)


def dense_maps(targets: Targets, output_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Scatter the sparse size and offset targets into dense maps float32 (2, h, w) each (zeros elsewhere)."""
    h, w = output_size
    size = np.zeros((2, h * w), dtype=np.float32)
    offset = np.zeros((2, h * w), dtype=np.float32)
    real = targets.mask > 0
    size[:, targets.index[real]] = targets.size[real].T
    offset[:, targets.index[real]] = targets.offset[real].T
    return size.reshape(2, h, w), offset.reshape(2, h, w)


@torch.no_grad()
def decode(
    heatmap: torch.Tensor, size: torch.Tensor, offset: torch.Tensor, *, stride: int = 4, top_k: int = 100
) -> tuple[torch.Tensor, torch.Tensor]:
    """Peaks of the heatmap → boxes, in input pixels.

    heatmap: float (B, 1, h, w) probabilities (after the sigmoid); size, offset: float (B, 2, h, w).
    Returns boxes float32 (B, k, 4) inclusive x1, y1, x2, y2 and scores float32 (B, k), k = min(top_k, h*w),
    each image's rows by descending score. A peak is a cell equal to the maximum of its 3×3 neighbourhood.
    """
    batch, _, h, w = heatmap.shape
    heatmap = heatmap.float()
    peaks = heatmap * (F.max_pool2d(heatmap, 3, stride=1, padding=1) == heatmap)
    scores, index = peaks.reshape(batch, -1).topk(min(top_k, h * w), dim=1)
    ys = torch.div(index, w, rounding_mode="floor").float()
    xs = (index % w).float()
    gather = index[:, None, :].expand(-1, 2, -1)
    off = offset.float().reshape(batch, 2, -1).gather(2, gather)  # (B, 2, k)
    wh = size.float().reshape(batch, 2, -1).gather(2, gather).exp() * stride
    cx = (xs + off[:, 0]) * stride
    cy = (ys + off[:, 1]) * stride
    boxes = torch.stack([cx - wh[:, 0] / 2, cy - wh[:, 1] / 2, cx + wh[:, 0] / 2 - 1, cy + wh[:, 1] / 2 - 1], dim=2)
    return boxes, scores
