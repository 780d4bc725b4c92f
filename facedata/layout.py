"""The iCartoonFace folder layout (FORMATS.md), for the real dataset and the synthetic one alike.

`Layout(root)` names every path; its readers return `scorer.formats` dataclasses and turn a missing or malformed
file into a `DatasetError` that names the file (and, through the `scorer.formats` message, the line and field).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from scorer import formats

log = logging.getLogger(__name__)

SPLITS = ("dettrain", "dettest", "rectrain", "rectest", "auxiliary")


class DatasetError(ValueError):
    """A dataset file or folder is missing or malformed; the message names it."""


@dataclass(frozen=True)
class Layout:
    """Paths of every file of the layout under `root` (see facedata/README.md)."""

    root: Path

    def __init__(self, root: str | os.PathLike):
        object.__setattr__(self, "root", Path(root))

    # ------------------------------------------------------------------ paths
    @property
    def det_train_dir(self) -> Path:
        return self.root / "icartoonface_dettrain"

    @property
    def det_train_csv(self) -> Path:
        return self.root / "icartoonface_dettrain.csv"

    @property
    def det_test_dir(self) -> Path:
        return self.root / "icartoonface_dettest"

    @property
    def rec_train_dir(self) -> Path:
        return self.root / "icartoonface_rectrain"

    @property
    def rec_train_list(self) -> Path:
        return self.root / "icartoonface_rectrain_det.txt"

    @property
    def rec_test_dir(self) -> Path:
        return self.root / "icartoonface_rectest"

    @property
    def rec_test_list(self) -> Path:
        return self.root / "icartoonface_rectest_det.txt"

    @property
    def aux_dir(self) -> Path:
        return self.root / "auxiliary"

    @property
    def aux_list(self) -> Path:
        return self.aux_dir / "icartoonface_auxiliary_det.txt"

    @property
    def hidden_dir(self) -> Path:
        return self.root / "hidden"

    @property
    def det_test_gt(self) -> Path:
        return self.hidden_dir / "personai_icartoonface_detval.csv"

    @property
    def rec_test_info(self) -> Path:
        return self.hidden_dir / "icartoonface_rectest_info.txt"

    @property
    def verification_pairs_file(self) -> Path:
        return self.hidden_dir / "icartoonface_verification_pairs.txt"

    # README alias: `Layout.verification_pairs` is the reader, the path is `verification_pairs_file`.

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    def split_dir(self, split: str) -> Path:
        """The image folder of a split: one of SPLITS."""
        dirs = {
            "dettrain": self.det_train_dir,
            "dettest": self.det_test_dir,
            "rectrain": self.rec_train_dir,
            "rectest": self.rec_test_dir,
            "auxiliary": self.aux_dir,
        }
        if split not in dirs:
            raise DatasetError(f"unknown split '{split}'; valid: {', '.join(SPLITS)}")
        return dirs[split]

    def image_path(self, split: str, name: str) -> Path:
        """Path of image `name` (for rectrain/auxiliary, `<identity>/<image>.jpg`) of a split."""
        return self.split_dir(split) / name

    def public_files(self) -> list[Path]:
        return [self.det_train_csv, self.rec_train_list, self.rec_test_list, self.aux_list]

    def hidden_files(self) -> list[Path]:
        return [self.det_test_gt, self.rec_test_info, self.verification_pairs_file]

    def check(self, *, hidden: bool = True, auxiliary: bool = True) -> None:
        """Raise DatasetError listing every missing file or folder of the layout."""
        wanted = [self.det_train_dir, self.det_test_dir, self.rec_train_dir, self.rec_test_dir]
        wanted += [self.det_train_csv, self.rec_train_list, self.rec_test_list]
        if auxiliary:
            wanted += [self.aux_dir, self.aux_list]
        if hidden:
            wanted += self.hidden_files()
        missing = [str(p.relative_to(self.root)) for p in wanted if not p.exists()]
        if missing:
            raise DatasetError(f"{self.root}: missing {', '.join(missing)}")

    # ------------------------------------------------------------------ readers
    def detection_train(self) -> formats.BoxList:
        return _read(formats.read_detection_train_boxes, self.det_train_csv)

    def detection_test_images(self) -> tuple[str, ...]:
        if not self.det_test_dir.is_dir():
            raise DatasetError(f"{self.det_test_dir}: no such folder")
        return tuple(sorted(p.name for p in self.det_test_dir.iterdir() if p.suffix.lower() in (".jpg", ".png")))

    def detection_labels(self) -> formats.DetectionLabels:
        return _read(formats.read_detection_labels, self.det_test_gt)

    def recognition_train(self) -> formats.BoxList:
        return _read(formats.read_recognition_train_list, self.rec_train_list)

    def recognition_test(self) -> formats.BoxList:
        return _read(formats.read_recognition_test_list, self.rec_test_list)

    def recognition_labels(self) -> formats.RecognitionLabels:
        return _read(formats.read_recognition_labels, self.rec_test_info)

    def verification_pairs(self) -> formats.VerificationPairs:
        names = self.recognition_test().names
        return _read(lambda p: formats.read_verification_pairs(p, names), self.verification_pairs_file)

    def auxiliary(self) -> formats.BoxList:
        return _read(formats.read_recognition_train_list, self.aux_list)


def _read(reader, path: Path):
    if not path.exists():
        raise DatasetError(f"{path}: no such file")
    try:
        return reader(path)
    except formats.FormatError as exc:
        raise DatasetError(f"{path.parent}/{exc}") from exc
