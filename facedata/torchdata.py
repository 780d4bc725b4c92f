"""torch `Dataset` wrappers of both tracks (the only module of facedata that imports torch).

Images are float32 tensors (3, H, W) in [0, 1]; boxes float32 (K, 4) x1, y1, x2, y2. An optional `transform`
is applied to the tensor (a training augmentation, a normalisation).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from facedata.crops import crop_face, load_rgb
from facedata.layout import Layout
from facedata.pack import PackedFaces, split_entries

log = logging.getLogger(__name__)

Transform = Callable[[torch.Tensor], torch.Tensor] | None


def to_tensor(pixels: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) -> float32 (3, H, W) in [0, 1]."""
    pixels = np.ascontiguousarray(pixels)
    if not pixels.flags.writeable:  # a read-only memmap row: torch wants a writable buffer
        pixels = pixels.copy()
    return torch.from_numpy(pixels).permute(2, 0, 1).float().div_(255.0)


class _FaceCrops(Dataset):
    def __init__(
        self, root: str | os.PathLike | Layout, split: str, size: int, enlarge_rate: float, transform: Transform
    ):
        self.layout = root if isinstance(root, Layout) else Layout(root)
        self.split = split
        self.size = size
        self.enlarge_rate = enlarge_rate
        self.transform = transform
        self.names, self.boxes, self.labels, self.identities = split_entries(self.layout, split)

    def __len__(self) -> int:
        return len(self.names)

    def _face(self, i: int) -> torch.Tensor:
        image = load_rgb(self.layout.image_path(self.split, self.names[i]))
        face = to_tensor(crop_face(image, self.boxes[i], self.enlarge_rate, self.size))
        return self.transform(face) if self.transform else face


class RecognitionTrainSet(_FaceCrops):
    """Faces of the train split (or `split="auxiliary"`): item (float32 (3, S, S), int label); labels number the
    identity folders sorted by name (`self.identities`)."""

    def __init__(
        self, root, size: int = 112, enlarge_rate: float = 1.0, split: str = "rectrain", transform: Transform = None
    ):
        super().__init__(root, split, size, enlarge_rate, transform)

    @property
    def num_classes(self) -> int:
        return len(self.identities)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self._face(i), int(self.labels[i])


class RecognitionTestSet(_FaceCrops):
    """Faces of the test list in submission order: item (float32 (3, S, S), int row index)."""

    def __init__(self, root, size: int = 112, enlarge_rate: float = 1.0, transform: Transform = None):
        super().__init__(root, "rectest", size, enlarge_rate, transform)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self._face(i), i


class PackedFaceSet(Dataset):
    """A packed cache (facedata.pack): item (float32 (3, S, S), int label)."""

    def __init__(self, prefix: str | os.PathLike | PackedFaces, transform: Transform = None):
        self.faces = prefix if isinstance(prefix, PackedFaces) else PackedFaces(prefix)
        self.transform = transform
        self.identities = self.faces.identities

    @property
    def num_classes(self) -> int:
        return len(self.identities)

    def __len__(self) -> int:
        return len(self.faces)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        face = to_tensor(self.faces.images[i])
        return (self.transform(face) if self.transform else face), int(self.faces.labels[i])


class DetectionTrainSet(Dataset):
    """Detection train images: item (float32 (3, H, W), float32 (K, 4) boxes). Images in order of first
    appearance in `icartoonface_dettrain.csv`."""

    def __init__(self, root: str | os.PathLike | Layout, transform: Transform = None):
        self.layout = root if isinstance(root, Layout) else Layout(root)
        self.transform = transform
        listing = self.layout.detection_train()
        groups: dict[str, list[int]] = {}
        for row, name in enumerate(listing.names):
            groups.setdefault(name, []).append(row)
        self.names = tuple(groups)
        self._boxes = [listing.boxes[rows].astype(np.float32) for rows in groups.values()]

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = to_tensor(np.asarray(load_rgb(self.layout.image_path("dettrain", self.names[i]))))
        return (self.transform(image) if self.transform else image), torch.from_numpy(self._boxes[i])


class DetectionTestSet(Dataset):
    """Detection test images (sorted by name): item (float32 (3, H, W), image name)."""

    def __init__(self, root: str | os.PathLike | Layout, transform: Transform = None):
        self.layout = root if isinstance(root, Layout) else Layout(root)
        self.transform = transform
        self.names = self.layout.detection_test_images()

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, str]:
        image = to_tensor(np.asarray(load_rgb(self.layout.image_path("dettest", self.names[i]))))
        return (self.transform(image) if self.transform else image), self.names[i]


def detection_collate(batch):
    """Detection batches as lists (images differ in size): (list of images, list of boxes or names)."""
    images, targets = zip(*batch, strict=True)
    return list(images), list(targets)
