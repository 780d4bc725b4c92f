"""Inference on whole images of any size: optional resize, padding to a multiple of 32, optional flip test,
peak decoding, boxes back in the original pixels, clipped, thresholded and capped per image."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from baselines.detection.targets import decode

PAD_MULTIPLE = 32


@dataclass(frozen=True)
class ImageDetections:
    """boxes float64 (k, 4) inclusive x1, y1, x2, y2 in the image's pixels; scores float64 (k,), descending."""

    boxes: np.ndarray
    scores: np.ndarray


def _prepare(image: np.ndarray, max_size: int) -> tuple[np.ndarray, float, float]:
    height, width = image.shape[:2]
    if max_size and max(height, width) != max_size:
        scale = max_size / max(height, width)
        new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
        image = np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.BILINEAR))
    return image, image.shape[1] / width, image.shape[0] / height


def _batch(images: list[np.ndarray], device: torch.device) -> torch.Tensor:
    """uint8 (H_i, W_i, 3) images → float (B, 3, H, W) in [0, 1], zero-padded at the bottom and right to a common
    size that is a multiple of 32."""
    height = max(i.shape[0] for i in images)
    width = max(i.shape[1] for i in images)
    height, width = -(-height // PAD_MULTIPLE) * PAD_MULTIPLE, -(-width // PAD_MULTIPLE) * PAD_MULTIPLE
    batch = torch.zeros(len(images), 3, height, width, dtype=torch.uint8)
    for k, image in enumerate(images):
        pixels = image if image.flags.writeable else image.copy()  # torch wants a writable array
        batch[k, :, : image.shape[0], : image.shape[1]] = torch.from_numpy(pixels).permute(2, 0, 1)
    return batch.to(device, non_blocking=True).float().div_(255)


@torch.no_grad()
def detect(
    model: torch.nn.Module,
    images: list[np.ndarray],
    *,
    max_size: int = 0,
    score_threshold: float = 0.01,
    max_detections: int = 100,
    flip_test: bool = False,
    bf16: bool = False,
    channels_last: bool = False,
) -> list[ImageDetections]:
    """Detect faces on uint8 (H, W, 3) RGB images (one batch; sizes may differ). The model must be in eval mode.

    max_size: 0 keeps the original size, else the longer side is resized to it. At most max_detections boxes per
    image, those scoring at least score_threshold, by descending score.
    """
    device = next(model.parameters()).device
    prepared = [_prepare(image, max_size) for image in images]
    batch = _batch([p[0] for p in prepared], device)
    if channels_last:
        batch = batch.contiguous(memory_format=torch.channels_last)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16 and device.type == "cuda"):
        outputs = model(batch)
        heatmap, size, offset = outputs["heatmap"].float().sigmoid(), outputs["size"].float(), outputs["offset"].float()
        if flip_test:
            flipped = model(batch.flip(3))
            heatmap = (heatmap + flipped["heatmap"].float().sigmoid().flip(3)) / 2
            size = (size + flipped["size"].float().flip(3)) / 2
    heatmap = heatmap.float()
    boxes, scores = decode(heatmap, size, offset, stride=model.stride, top_k=max_detections)
    boxes, scores = boxes.cpu().double().numpy(), scores.cpu().double().numpy()
    results = []
    for k, (image, (_, sx, sy)) in enumerate(zip(images, prepared, strict=True)):
        b = boxes[k].copy()
        b[:, 2:] += 1  # half-open, scaled back, clipped to the image, then inclusive again
        b[:, [0, 2]] = np.clip(b[:, [0, 2]] / sx, 0, image.shape[1])
        b[:, [1, 3]] = np.clip(b[:, [1, 3]] / sy, 0, image.shape[0])
        # a peak in the padding (or a box squeezed to nothing by the clipping) is no detection
        keep = (scores[k] >= score_threshold) & (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])
        b = b[keep]
        b[:, 0] = np.minimum(b[:, 0], image.shape[1] - 1)
        b[:, 1] = np.minimum(b[:, 1], image.shape[0] - 1)
        b[:, 2:] = np.maximum(b[:, 2:] - 1, b[:, :2])  # x2 >= x1 even for a box under one pixel wide
        results.append(ImageDetections(b, scores[k][keep]))
    return results
