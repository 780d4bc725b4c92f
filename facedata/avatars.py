"""Cartoon faces from DiceBear styles (dicebear-core + dicebear-styles), rasterised offline with resvg-py.

An identity is a DiceBear style plus a fixed choice of every identity-bearing part and colour (hair, head, skin and
hair colour, ears, nose...). The parts listed in a style's `expression` (eyes, eyebrows, mouth...) and `occluders`
(glasses, masks...) are drawn per image: they are nuisance, not identity. Each style stands for one "cartoon
series"; `MAIN_STYLES` make the benchmark, `AUX_STYLES` (a different drawing style) the auxiliary domain.

`render(identity, expression, size)` returns an RGBA image (transparent background) and the face-region mask
used to take the face box from the drawn pixels.
"""

from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources

import numpy as np
from PIL import Image

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StyleSpec:
    """How a DiceBear style is used: per-image parts, and the head's region as fractions (x0, y0, x1, y1) of the
    square canvas (the face box is the drawn pixels inside it)."""

    name: str
    expression: tuple[str, ...]
    occluders: tuple[str, ...]
    face_region: tuple[float, float, float, float]
    kind: str  # "human", "robot", "line-art", "pixel", "3d"


_SPECS = (
    StyleSpec("adventurer", ("eyes", "eyebrows", "mouth"), ("glasses",), (0.15, 0.05, 0.85, 0.80), "human"),
    StyleSpec("avataaars", ("eyes", "eyebrows", "mouth"), ("accessories",), (0.28, 0.08, 0.72, 0.66), "human"),
    StyleSpec("big-ears", ("eyes", "mouth"), (), (0.18, 0.10, 0.82, 0.90), "human"),
    StyleSpec("big-smile", ("eyes", "mouth"), ("accessories",), (0.10, 0.10, 0.90, 0.85), "human"),
    StyleSpec("bottts", ("eyes", "mouth"), (), (0.05, 0.10, 0.95, 0.95), "robot"),
    StyleSpec("croodles", ("eyes", "mouth"), (), (0.15, 0.05, 0.85, 0.90), "line-art"),
    StyleSpec("lorelei", ("eyes", "eyebrows", "mouth"), ("glasses",), (0.20, 0.10, 0.80, 0.80), "line-art"),
    StyleSpec("micah", ("eyes", "eyebrows", "mouth"), ("glasses",), (0.25, 0.10, 0.75, 0.78), "human"),
    StyleSpec("miniavs", ("eyes", "mouth"), ("glasses",), (0.20, 0.10, 0.72, 0.75), "human"),
    StyleSpec("open-peeps", ("expression",), ("mask",), (0.25, 0.10, 0.85, 0.80), "human"),
    StyleSpec("personas", ("eyes", "mouth"), (), (0.25, 0.10, 0.75, 0.75), "human"),
    StyleSpec("pixel-art", ("eyes", "mouth"), ("glasses",), (0.10, 0.10, 0.90, 0.80), "pixel"),
    StyleSpec("toon-head", ("eyes", "eyebrows", "mouth"), (), (0.20, 0.10, 0.80, 0.80), "human"),
    # the auxiliary domain: sketches, flat posters and voxels
    StyleSpec(
        "notionists", ("eyes", "eyebrows", "mouth", "gesture"), ("glasses",), (0.25, 0.05, 0.75, 0.65), "line-art"
    ),
    StyleSpec("dylan", ("mood",), (), (0.15, 0.15, 0.85, 0.95), "human"),
    StyleSpec("voxel-art", ("eyes", "eyebrows", "mouth"), ("glasses",), (0.20, 0.10, 0.80, 0.70), "3d"),
)
STYLES: dict[str, StyleSpec] = {spec.name: spec for spec in _SPECS}
MAIN_STYLES: tuple[str, ...] = tuple(spec.name for spec in _SPECS[:13])
AUX_STYLES: tuple[str, ...] = ("notionists", "dylan", "voxel-art")
CLUTTER_STYLES: tuple[str, ...] = ("shapes", "rings", "glass", "icons")


@dataclass(frozen=True)
class Identity:
    """A character: its style and the DiceBear options of its identity-bearing parts (sorted key/value pairs)."""

    style: str
    options: tuple[tuple[str, object], ...]
    family: int

    def as_dict(self) -> dict:
        return {key: list(value) if isinstance(value, tuple) else value for key, value in self.options}


@cache
def _style(name: str):
    from dicebear import Style  # imported lazily: only the generator needs it

    raw = (resources.files("dicebear_styles") / f"{name}.json").read_text(encoding="utf-8")
    # Style(data) validates the definition against its JSON schema: 0.2 to 8 s a style, in every worker. The
    # files come from the pinned dicebear-styles wheel, validated by its own release, so we build the same object
    # without that step (the alias check, which is cheap, still runs).
    style = Style.__new__(Style)
    style._data = json.loads(raw)
    style._meta = style._canvas = style._components = style._colors = None
    style._validate_aliases()
    return style


@cache
def _descriptor(name: str) -> dict:
    from dicebear import OptionsDescriptor

    return OptionsDescriptor(_style(name)).to_json()


@cache
def components(name: str) -> tuple[str, ...]:
    """The style's components (parts) that have variants."""
    return tuple(key[: -len("Variant")] for key in _descriptor(name) if key.endswith("Variant"))


@cache
def variants(name: str, component: str) -> tuple[str, ...]:
    return tuple(_descriptor(name)[f"{component}Variant"]["values"])


def style_meta(name: str) -> dict:
    """Licence, creator and source of a style's art, as the style file states them."""
    meta = json.loads((resources.files("dicebear_styles") / f"{name}.json").read_text(encoding="utf-8"))["meta"]
    return {
        "license": meta.get("license", {}).get("name"),
        "license_url": meta.get("license", {}).get("url"),
        "creator": meta.get("creator", {}).get("name"),
        "source": meta.get("source", {}).get("name"),
        "source_url": meta.get("source", {}).get("url"),
    }


def _resolved(style: str, seed: str) -> dict:
    """The identity-bearing options DiceBear resolves from a seed (expression and occluder parts left out)."""
    from dicebear import Avatar

    spec = STYLES[style]
    resolved = Avatar(_style(style), {"seed": seed, "backgroundColor": []}).to_json()["options"]
    descriptor = _descriptor(style)
    options: dict[str, object] = {}
    for component in components(style):
        if component in spec.expression or component in spec.occluders or component == "animation":
            continue
        variant = resolved.get(f"{component}Variant")
        options[f"{component}Variant"] = variant
    for key, value in resolved.items():
        if key.endswith("Color") and key in descriptor and key != "backgroundColor":
            options[key] = tuple(value)
    return options


# Generator version 3 (drawn_apart): a look-alike is drawn, not only configured, differently. Its render must differ
# from its identity's by more than one expression change of that identity (LOOKALIKE_SIZE px on white, mean absolute
# difference 0-255), and by at least LOOKALIKE_MIN_DIFF. Options alone are not enough: a changed colour of a part
# that is not drawn, or a variant that draws alike, made 2.3 % of version 2's look-alikes render identically to their
# identity and 27 % closer to it than one expression change (baselines/diagnostics/lookalikes.py).
LOOKALIKE_SIZE = 64
LOOKALIKE_MIN_DIFF = 2.0
LOOKALIKE_ATTEMPTS = 40


def make_identity(style: str, family_seed: str, member: int, family: int, drawn_apart: bool = False) -> Identity:
    """Member 0 of a family is DiceBear's resolution of family_seed; member k > 0 (a look-alike) differs from it in
    exactly one identity-bearing part or colour, taken from the resolution of another seed: the first such change
    of 20 candidates (version 2), or with drawn_apart (version 3) the first of LOOKALIKE_ATTEMPTS that is also drawn
    differently (see LOOKALIKE_MIN_DIFF), and if none is, the one drawn most differently."""
    base = _resolved(style, family_seed)
    if member == 0:
        return Identity(style, tuple(sorted(base.items())), family)
    keys = sorted(k for k, v in base.items() if not (k.endswith("Variant") and len(variants(style, k[:-7])) < 2))
    rng = np.random.default_rng([member, *family_seed.encode()])
    reference, floor = _family_reference(style, family_seed) if drawn_apart else (None, 0.0)
    best: tuple[float, Identity] = (-1.0, Identity(style, tuple(sorted(base.items())), family))
    for attempt in range(LOOKALIKE_ATTEMPTS if drawn_apart else 20):
        key = keys[int(rng.integers(len(keys)))]
        other = _resolved(style, f"{family_seed}/{member}/{attempt}")
        if other.get(key) is None or other.get(key) == base.get(key):
            continue
        candidate = Identity(style, tuple(sorted({**base, key: other[key]}.items())), family)
        if not drawn_apart:
            return candidate
        difference = render_difference(reference, candidate)
        if difference > floor:
            return candidate
        if difference > best[0]:
            best = (difference, candidate)
    return best[1]


def _reference_expression(style: str, rng: np.random.Generator) -> dict:
    return expression_options(Identity(style, (), -1), rng, occluder_probability=0.0)


@lru_cache(maxsize=1024)  # 48 kB a family: bounded for the full preset's thousands of families
def _family_reference(style: str, family_seed: str) -> tuple[tuple[np.ndarray, dict], float]:
    """The family base drawn with a fixed expression draw of the family (pixels on white, the expression kept with
    them), and the floor a look-alike must exceed: the base's own difference under a second expression draw."""
    rng = np.random.default_rng([0, *family_seed.encode()])
    base = Identity(style, tuple(sorted(_resolved(style, family_seed).items())), -1)
    expression, second = _reference_expression(style, rng), _reference_expression(style, rng)
    pixels = on_white(base, expression)
    floor = max(LOOKALIKE_MIN_DIFF, float(np.abs(pixels - on_white(base, second)).mean()))
    return (pixels, expression), floor


def on_white(identity: Identity, expression: dict, size: int = LOOKALIKE_SIZE) -> np.ndarray:
    """The face drawn at size x size and composited on white: float32 (size, size, 3), 0-255."""
    image, _ = render(identity, expression, size)
    rgba = np.asarray(image, np.float32)
    alpha = rgba[..., 3:4] / 255.0
    return rgba[..., :3] * alpha + 255.0 * (1.0 - alpha)


def render_difference(reference: tuple[np.ndarray, dict], identity: Identity) -> float:
    """Mean absolute pixel difference (0-255, on white, LOOKALIKE_SIZE px) between a reference drawing and the
    identity drawn with the reference's expression."""
    pixels, expression = reference
    return float(np.abs(pixels - on_white(identity, expression)).mean())


def expression_options(identity: Identity, rng: np.random.Generator, occluder_probability: float) -> dict:
    """Per-image nuisance parts: a random variant of every expression part, an occluder part now and then."""
    spec = STYLES[identity.style]
    options: dict[str, object] = {}
    for component in spec.expression:
        values = variants(identity.style, component)
        options[f"{component}Variant"] = values[int(rng.integers(len(values)))]
    for component in spec.occluders:
        if rng.random() < occluder_probability:
            values = variants(identity.style, component)
            options[f"{component}Variant"] = values[int(rng.integers(len(values)))]
    return options


def _svg_options(identity_options: dict, expression: dict, style: str, size: int) -> dict:
    options: dict[str, object] = {"size": int(size), "backgroundColor": []}
    merged = {**identity_options, **expression}
    for component in components(style):
        variant = merged.get(f"{component}Variant")
        if variant is None:
            options[f"{component}Probability"] = 0
        else:
            options[f"{component}Variant"] = [variant]
            options[f"{component}Probability"] = 100
    for key, value in merged.items():
        if key.endswith("Color") and value is not None:
            options[key] = list(value)
    return options


def render(identity: Identity, expression: dict, size: int) -> tuple[Image.Image, np.ndarray]:
    """The face drawn on a transparent size x size canvas, and its face mask.

    Returns (RGBA image, uint8 (size, size) mask: the alpha inside the style's face region, 0 elsewhere).
    """
    import resvg_py
    from dicebear import Avatar

    options = _svg_options(identity.as_dict(), expression, identity.style, size)
    svg = Avatar(_style(identity.style), options).to_string()
    image = Image.open(io.BytesIO(bytes(resvg_py.svg_to_bytes(svg_string=svg)))).convert("RGBA")
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BILINEAR)
    x0, y0, x1, y1 = (int(round(f * size)) for f in STYLES[identity.style].face_region)
    mask = np.zeros((size, size), dtype=np.uint8)
    mask[y0:y1, x0:x1] = np.asarray(image.getchannel("A"))[y0:y1, x0:x1]
    return image, mask


def render_clutter(style: str, seed: str, size: int) -> Image.Image:
    """A non-face DiceBear drawing (shapes, rings...) on a transparent canvas, for cluttered backgrounds."""
    import resvg_py
    from dicebear import Avatar

    svg = Avatar(_style(style), {"seed": seed, "size": int(size), "backgroundColor": []}).to_string()
    image = Image.open(io.BytesIO(bytes(resvg_py.svg_to_bytes(svg_string=svg)))).convert("RGBA")
    return image if image.size == (size, size) else image.resize((size, size), Image.Resampling.BILINEAR)
