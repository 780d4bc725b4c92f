"""The packed face cache: every face of a split cropped (enlarge rate r), resized to S x S and stored in one
memory-mapped uint8 array, so that training reads faces without decoding a JPEG.

Files: `PREFIX.npy` (uint8 (N, S, S, 3), a standard .npy opened with mmap) and `PREFIX.json` (the index: names,
labels, identities, size, enlarge rate, split). Both are written under temporary names and renamed, the index
last, so a half-written pack is never mistaken for a finished one.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facedata.crops import crop_face, load_rgb
from facedata.layout import DatasetError, Layout

log = logging.getLogger(__name__)

_BLOCK = 256


@dataclass(frozen=True, eq=False)
class PackedFaces:
    """A pack opened read-only. images: uint8 memmap (N, S, S, 3); labels: int64 (N,) (-1: unknown, e.g. the test
    split); names: (N,) relpaths; identities: (C,) label -> identity folder."""

    prefix: Path
    images: np.ndarray
    labels: np.ndarray
    names: tuple[str, ...]
    identities: tuple[str, ...]
    size: int
    enlarge_rate: float
    split: str

    def __init__(self, prefix: str | os.PathLike):
        prefix = Path(prefix)
        index_path, array_path = _paths(prefix)
        if not index_path.exists() or not array_path.exists():
            raise DatasetError(f"{prefix}: no finished pack ({index_path.name} and {array_path.name} are needed)")
        index = json.loads(index_path.read_text(encoding="utf-8"))
        images = np.load(array_path, mmap_mode="r")
        if images.shape != (len(index["names"]), index["size"], index["size"], 3):
            raise DatasetError(f"{array_path}: shape {images.shape} does not match its index")
        for key, value in (
            ("prefix", prefix),
            ("images", images),
            ("labels", np.asarray(index["labels"], dtype=np.int64)),
            ("names", tuple(index["names"])),
            ("identities", tuple(index["identities"])),
            ("size", int(index["size"])),
            ("enlarge_rate", float(index["enlarge_rate"])),
            ("split", index["split"]),
        ):
            object.__setattr__(self, key, value)

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        return self.images[i], int(self.labels[i])


def _paths(prefix: Path) -> tuple[Path, Path]:
    return prefix.with_name(prefix.name + ".json"), prefix.with_name(prefix.name + ".npy")


def split_entries(layout: Layout, split: str):
    """(names, boxes float64 (N, 4), labels int64 (N,), identities) of a recognition split; labels number the
    identity folders sorted by name (-1 for the test split, whose identities are hidden)."""
    if split == "rectest":
        listing = layout.recognition_test()
        return listing.names, listing.boxes, np.full(len(listing.names), -1, dtype=np.int64), ()
    if split not in ("rectrain", "auxiliary"):
        raise DatasetError(f"cannot pack split '{split}': use rectrain, rectest or auxiliary")
    listing = layout.recognition_train() if split == "rectrain" else layout.auxiliary()
    identities = tuple(sorted(set(listing.identities)))
    label_of = {name: i for i, name in enumerate(identities)}
    labels = np.asarray([label_of[i] for i in listing.identities], dtype=np.int64)
    return listing.names, listing.boxes, labels, identities


def _pack_block(args) -> None:
    array_path, folder, names, boxes, start, size, enlarge_rate = args
    out = np.load(array_path, mmap_mode="r+")
    for k, (name, box) in enumerate(zip(names, boxes, strict=True)):
        out[start + k] = crop_face(load_rgb(Path(folder) / name), box, enlarge_rate, size)
    out.flush()


def pack_faces(
    root: str | os.PathLike | Layout,
    split: str,
    out_prefix: str | os.PathLike,
    size: int = 112,
    enlarge_rate: float = 1.0,
    workers: int = 1,
) -> PackedFaces:
    """Crop every face of `split` (rectrain, rectest, auxiliary) and store it; returns the opened pack."""
    layout = root if isinstance(root, Layout) else Layout(root)
    names, boxes, labels, identities = split_entries(layout, split)
    prefix = Path(out_prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    index_path, array_path = _paths(prefix)
    tmp_array = array_path.with_name(f".{array_path.name}.tmp{os.getpid()}.npy")
    out = np.lib.format.open_memmap(tmp_array, mode="w+", dtype=np.uint8, shape=(len(names), size, size, 3))
    del out
    folder = os.fspath(layout.split_dir(split))
    blocks = [
        (os.fspath(tmp_array), folder, names[s : s + _BLOCK], boxes[s : s + _BLOCK], s, size, enlarge_rate)
        for s in range(0, len(names), _BLOCK)
    ]
    if workers <= 1 or len(blocks) <= 1:
        for block in blocks:
            _pack_block(block)
    else:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            pool.map(_pack_block, blocks)
    os.replace(tmp_array, array_path)
    index = {
        "split": split,
        "size": size,
        "enlarge_rate": enlarge_rate,
        "names": list(names),
        "labels": labels.tolist(),
        "identities": list(identities),
        "source": os.fspath(layout.root),
    }
    tmp_index = index_path.with_name(f".{index_path.name}.tmp{os.getpid()}")
    tmp_index.write_text(json.dumps(index), encoding="utf-8")
    os.replace(tmp_index, index_path)
    log.info("packed %d faces of %s into %s", len(names), split, array_path)
    return PackedFaces(prefix)
