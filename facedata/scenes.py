"""Drawing one synthetic image: a cluttered background, faces placed with their nuisance, image-level degradations.

Every function takes a `numpy.random.Generator` and draws from it in a fixed order, so an image depends only on
the stream it is given (the generator derives that stream from (seed, split, item), never from worker order).
Boxes are integer corners (x1, y1, x2, y2) of the drawn face's pixels (alpha >= 128 inside the style's face
region), inclusive, as in the official files.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

from facedata import avatars

log = logging.getLogger(__name__)

# The official detection test set (hidden/personai_icartoonface_detval.csv of the 2020 challenge, 10,000 images,
# 18,647 boxes): how many images have n faces, and the 0, 5, ..., 100 % quantiles of sqrt(box area) in pixels.
# Scenes draw their face counts and sizes from these, so the scale mix is the official one (17 % of boxes under
# 32², 45 % from 32² to 96², 38 % above).
OFFICIAL_FACES_PER_IMAGE = {
    1: 6139, 2: 2213, 3: 754, 4: 353, 5: 175, 6: 105, 7: 70, 8: 56, 9: 31, 10: 23, 11: 14, 12: 20, 13: 10, 14: 6,
    15: 2, 16: 4, 17: 2, 18: 1, 20: 3, 22: 2, 23: 2, 24: 1, 27: 1, 30: 1, 31: 1, 32: 4, 33: 1, 34: 1, 36: 1, 41: 1,
    53: 1, 55: 1, 60: 1,
}  # fmt: skip
OFFICIAL_SIDE_QUANTILES = (
    16.1, 20.9, 25.5, 30.0, 34.8, 39.6, 45.3, 51.2, 57.9, 65.0, 72.6, 81.2, 90.9, 102.0, 114.5, 129.9, 149.4,
    175.5, 210.9, 271.6, 960.8,
)  # fmt: skip
MAX_SIDE = 360  # the top 2 % of official faces (up to 960 px) are drawn at this size to bound the cost
# sqrt(area) of the drawn face's box / the size of the style's head region it is drawn at (mean of 52 faces of the
# 13 styles): scenes draw at side / BOX_FILL so that the boxes, not the regions, follow the official sizes
BOX_FILL = 0.89


@dataclass(frozen=True)
class FaceNuisance:
    """Per-face nuisance: rotation in degrees, horizontal flip, and the expression/occluder parts."""

    rotation: float
    flip: bool
    expression: tuple[tuple[str, object], ...]


@dataclass(frozen=True)
class ImageNuisance:
    """Per-image degradations."""

    grayscale: bool
    blur: float
    brightness: float
    contrast: float
    saturation: float
    hue: float  # shift of the hue circle, in turns
    patches: int
    jpeg_quality: int


def sample_face_nuisance(
    identity: avatars.Identity, rng: np.random.Generator, max_rotation: float = 40.0
) -> FaceNuisance:
    rotation = float(np.clip(rng.normal(0.0, max_rotation / 2.5), -max_rotation, max_rotation))
    flip = bool(rng.random() < 0.5)
    expression = avatars.expression_options(identity, rng, occluder_probability=0.15)
    return FaceNuisance(rotation, flip, tuple(sorted(expression.items())))


def sample_image_nuisance(rng: np.random.Generator, grayscale_probability: float = 0.2) -> ImageNuisance:
    grayscale = bool(rng.random() < grayscale_probability)
    blur = float(rng.uniform(0.3, 1.6)) if rng.random() < 0.35 else 0.0
    brightness, contrast, saturation = (float(v) for v in rng.uniform([0.7, 0.7, 0.5], [1.3, 1.3, 1.5]))
    hue = float(rng.uniform(-0.06, 0.06)) if rng.random() < 0.5 else 0.0
    patches = int(rng.random() < 0.25) + int(rng.random() < 0.08)
    quality = int(rng.integers(35, 96))
    return ImageNuisance(grayscale, blur, brightness, contrast, saturation, hue, patches, quality)


def _color(rng: np.random.Generator) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(0, 256, size=3))


def background(rng: np.random.Generator, width: int, height: int, shapes: int) -> Image.Image:
    """A vertical two-colour gradient with `shapes` random ellipses, rectangles, polygons and lines."""
    top, bottom = np.array(_color(rng), float), np.array(_color(rng), float)
    t = np.linspace(0.0, 1.0, height)[:, None, None]
    pixels = (top * (1 - t) + bottom * t) * np.ones((1, width, 1))
    image = Image.fromarray(pixels.astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(shapes):
        kind = int(rng.integers(4))
        x, y = rng.uniform(-0.1, 1.1, 2) * (width, height)
        w, h = rng.uniform(0.03, 0.5, 2) * (width, height)
        box = [float(x), float(y), float(x + w), float(y + h)]
        fill = _color(rng)
        if kind == 0:
            draw.ellipse(box, fill=fill)
        elif kind == 1:
            draw.rectangle(box, fill=fill)
        elif kind == 2:
            points = [tuple(float(v) for v in p) for p in rng.uniform(-0.1, 1.1, (3, 2)) * (width, height)]
            draw.polygon(points, fill=fill)
        else:
            draw.line(box, fill=fill, width=int(rng.integers(1, 8)))
    return image


def add_clutter(image: Image.Image, rng: np.random.Generator, count: int, seed_text: str) -> None:
    """Paste `count` non-face DiceBear drawings (shapes, rings, glass, icons): hard negatives for detection."""
    for k in range(count):
        style = avatars.CLUTTER_STYLES[int(rng.integers(len(avatars.CLUTTER_STYLES)))]
        size = int(rng.integers(24, max(25, min(image.size) // 2)))
        x, y = int(rng.integers(-size // 4, image.width)), int(rng.integers(-size // 4, image.height))
        drawing = avatars.render_clutter(style, f"{seed_text}/{k}", size)
        image.paste(drawing, (x, y), drawing)


def face_render_size(identity: avatars.Identity, side: float) -> int:
    """Canvas size at which the style's face region is about `side` pixels."""
    x0, y0, x1, y1 = avatars.STYLES[identity.style].face_region
    return max(16, int(round(side / max(x1 - x0, y1 - y0))))


def paste_face(
    image: Image.Image, identity: avatars.Identity, nuisance: FaceNuisance, side: float, center: tuple[float, float]
) -> tuple[int, int, int, int] | None:
    """Draw the face with its face region about `side` pixels wide, centred at `center`; return its box
    (clipped to the image), or None when less than 4 x 4 pixels of it are visible."""
    size = face_render_size(identity, side)
    face, mask = avatars.render(identity, dict(nuisance.expression), size)
    mask_image = Image.fromarray(mask, "L")
    if nuisance.flip:
        face = face.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        mask_image = mask_image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if nuisance.rotation:
        face = face.rotate(nuisance.rotation, resample=Image.Resampling.BILINEAR, expand=True)
        mask_image = mask_image.rotate(nuisance.rotation, resample=Image.Resampling.BILINEAR, expand=True)
    mask_bbox = _bbox(np.asarray(mask_image) >= 128)
    if mask_bbox is None:
        return None
    # place so that the face region's centre lands on `center`
    mx = (mask_bbox[0] + mask_bbox[2]) / 2
    my = (mask_bbox[1] + mask_bbox[3]) / 2
    left, top = int(round(center[0] - mx)), int(round(center[1] - my))
    image.paste(face, (left, top), face)
    x1, y1 = max(0, mask_bbox[0] + left), max(0, mask_bbox[1] + top)
    x2, y2 = min(image.width - 1, mask_bbox[2] + left), min(image.height - 1, mask_bbox[3] + top)
    if x2 - x1 < 3 or y2 - y1 < 3:
        return None
    return int(x1), int(y1), int(x2), int(y2)


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if not len(rows):
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1])


def add_patches(image: Image.Image, rng: np.random.Generator, count: int, boxes) -> None:
    """Occluding patches (rectangles and ellipses) over a part of some faces."""
    draw = ImageDraw.Draw(image)
    for _ in range(count):
        if not boxes:
            return
        x1, y1, x2, y2 = boxes[int(rng.integers(len(boxes)))]
        w, h = x2 - x1 + 1, y2 - y1 + 1
        pw, ph = rng.uniform(0.2, 0.45, 2) * (w, h)
        px, py = x1 + rng.uniform(-0.1, 0.9) * w, y1 + rng.uniform(-0.1, 0.9) * h
        shape = [float(px), float(py), float(px + pw), float(py + ph)]
        if rng.random() < 0.5:
            draw.rectangle(shape, fill=_color(rng))
        else:
            draw.ellipse(shape, fill=_color(rng))


def degrade(image: Image.Image, nuisance: ImageNuisance) -> Image.Image:
    """Colour jitter, grayscale, blur."""
    image = ImageEnhance.Brightness(image).enhance(nuisance.brightness)
    image = ImageEnhance.Contrast(image).enhance(nuisance.contrast)
    image = ImageEnhance.Color(image).enhance(nuisance.saturation)
    if nuisance.hue:
        hsv = np.asarray(image.convert("HSV")).copy()
        hsv[..., 0] = (hsv[..., 0].astype(np.int16) + int(round(nuisance.hue * 256))) % 256
        image = Image.fromarray(hsv, "HSV").convert("RGB")
    if nuisance.grayscale:
        image = image.convert("L").convert("RGB")
    if nuisance.blur:
        image = image.filter(ImageFilter.GaussianBlur(nuisance.blur))
    return image


def jpeg_bytes(image: Image.Image, quality: int) -> bytes:
    """The image as baseline JPEG bytes (no EXIF, no timestamps: identical bytes for identical pixels)."""
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=quality, optimize=False, progressive=False)
    return out.getvalue()


# ---------------------------------------------------------------------------------------------- whole images


def recognition_image(identity: avatars.Identity, rng: np.random.Generator) -> tuple[bytes, tuple[int, int, int, int]]:
    """An uncropped recognition image of one character: (JPEG bytes, face box)."""
    face_nuisance = sample_face_nuisance(identity, rng)
    image_nuisance = sample_image_nuisance(rng)
    side = float(rng.uniform(56, 128))
    width, height = (int(side * f) for f in rng.uniform(1.5, 2.6, 2))
    canvas = background(rng, width, height, shapes=int(rng.integers(2, 12)))
    center = (float(rng.uniform(0.4, 0.6) * width), float(rng.uniform(0.4, 0.6) * height))
    box = paste_face(canvas, identity, face_nuisance, side, center)
    if box is None:  # cannot happen with the centre inside the canvas, kept for safety
        box = (0, 0, width - 1, height - 1)
    add_patches(canvas, rng, image_nuisance.patches, [box])
    canvas = degrade(canvas, image_nuisance)
    return jpeg_bytes(canvas, image_nuisance.jpeg_quality), box


def _inverse_cdf(quantiles, u: float) -> float:
    grid = np.linspace(0.0, 1.0, len(quantiles))
    return float(np.interp(u, grid, quantiles))


def sample_face_count(rng: np.random.Generator) -> int:
    counts = np.array(list(OFFICIAL_FACES_PER_IMAGE))
    weights = np.array(list(OFFICIAL_FACES_PER_IMAGE.values()), dtype=float)
    return int(counts[rng.choice(len(counts), p=weights / weights.sum())])


def _overlap_ok(box, boxes) -> bool:
    """Partial overlaps are allowed: IoU < 0.3 and at most half of the smaller box covered."""
    for other in boxes:
        iw = min(box[2], other[2]) - max(box[0], other[0])
        ih = min(box[3], other[3]) - max(box[1], other[1])
        if iw <= 0 or ih <= 0:
            continue
        inter = iw * ih
        area_a = (box[2] - box[0]) * (box[3] - box[1])
        area_b = (other[2] - other[0]) * (other[3] - other[1])
        if inter / (area_a + area_b - inter) >= 0.3 or inter / min(area_a, area_b) > 0.5:
            return False
    return True


def detection_image(
    rng: np.random.Generator, seed_text: str, max_faces: int = 60
) -> tuple[bytes, list[tuple[int, int, int, int]]]:
    """A cluttered scene with 1 to 60 faces of fresh characters of the main styles: (JPEG bytes, boxes)."""
    count = min(sample_face_count(rng), max_faces)
    sides = sorted(
        (min(MAX_SIDE, _inverse_cdf(OFFICIAL_SIDE_QUANTILES, float(u))) for u in rng.random(count)), reverse=True
    )
    aspect = float(rng.choice([4 / 3, 16 / 9, 3 / 4, 1.0]))
    width = float(rng.uniform(480, 800))
    needed = 2.5 * sum(s * s for s in sides)
    width = max(width, np.sqrt(needed * aspect), 1.25 * sides[0] * max(1.0, aspect))
    width = int(min(width, 1600))
    height = int(max(min(width / aspect, 1600), 1.25 * sides[0]))
    canvas = background(rng, width, height, shapes=int(rng.integers(4, 30)))
    add_clutter(canvas, rng, int(rng.integers(0, 4)), seed_text)
    boxes: list[tuple[int, int, int, int]] = []
    for k, side in enumerate(sides):
        style = avatars.MAIN_STYLES[int(rng.integers(len(avatars.MAIN_STYLES)))]
        identity = avatars.make_identity(style, f"{seed_text}/face{k}", 0, -1)
        nuisance = sample_face_nuisance(identity, rng, max_rotation=20.0)
        placed = None
        for _attempt in range(25):
            cx, cy = float(rng.uniform(0, width)), float(rng.uniform(0, height))
            guess = (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)
            inside = (
                min(guess[2], width) - max(guess[0], 0) >= 0.8 * side
                and min(guess[3], height) - max(guess[1], 0) >= 0.8 * side
            )
            if inside and _overlap_ok(guess, boxes):
                placed = (cx, cy)
                break
        if placed is None:
            continue
        box = paste_face(canvas, identity, nuisance, side / BOX_FILL, placed)
        if box is not None:
            boxes.append(box)
    if not boxes:  # every image of the official sets has a face: place one in the middle if none found room
        style = avatars.MAIN_STYLES[int(rng.integers(len(avatars.MAIN_STYLES)))]
        identity = avatars.make_identity(style, f"{seed_text}/fallback", 0, -1)
        nuisance = sample_face_nuisance(identity, rng, max_rotation=0.0)
        side = min(sides[0], 0.5 * min(width, height))
        boxes.append(paste_face(canvas, identity, nuisance, side / BOX_FILL, (width / 2, height / 2)))
    image_nuisance = sample_image_nuisance(rng, grayscale_probability=0.1)
    add_patches(canvas, rng, image_nuisance.patches, boxes)
    canvas = degrade(canvas, image_nuisance)
    return jpeg_bytes(canvas, image_nuisance.jpeg_quality), boxes
