"""The organizers' label files as the platform checks them: parse an upload (`validate_labels`) and say what a new
version changes against the active one (`label_diff`). arena/labels.py calls these; the scorer's readers stay in
the job package (DESIGN.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from scorer.formats import LabelError, read_detection_labels, read_recognition_labels, read_verification_pairs


def validate_labels(kind: str, path: Path, track_labels: dict[str, Path], name: str | None = None) -> int:
    """Parse an organizer's label file; return its number of test images. Raises LabelError (organizer's fault)
    whose message names the file as `name` (the name it was uploaded under, not the stored one).
    track_labels: the track's other current label files by kind (the pairs need the test list)."""
    if kind == "detection_gt":
        return read_detection_labels(path, name=name).num_images
    if kind == "test_info":
        return len(read_recognition_labels(path, name=name).image_names)
    if kind == "verification_pairs":
        info = track_labels.get("test_info")
        if info is None:
            raise LabelError("upload the test info (test_info) before the verification pairs")
        names = read_recognition_labels(info).image_names
        return len(read_verification_pairs(path, names, name=name).a)
    raise LabelError(f"unknown label kind '{kind}'; choose one of detection_gt, test_info, verification_pairs")


def label_error_types() -> tuple[type[Exception], ...]:
    return (LabelError,)


_EXAMPLES = 5


def _changes(old: set, new: set, what: str) -> dict:
    added, removed = sorted(new - old, key=str), sorted(old - new, key=str)
    return {
        f"{what}_added": len(added),
        f"{what}_removed": len(removed),
        f"{what}_examples": {
            "added": [str(a) for a in added[:_EXAMPLES]],
            "removed": [str(r) for r in removed[:_EXAMPLES]],
        },
    }


def label_diff(kind: str, old: Path | None, new: Path, test_info: Path | None = None) -> dict:
    """What a label file changes against the active one of its kind (old None: nothing active yet): counts of the
    images, boxes, identities, distractors and pairs added and removed, with a few examples of each.
    test_info: the active test info, which names the images of verification pairs."""
    diff: dict = {"kind": kind}
    if kind == "detection_gt":
        labels = [read_detection_labels(p) if p else None for p in (old, new)]
        sets = [_boxes(lab) if lab else set() for lab in labels]
        diff |= _changes(*(set(lab.image_names) if lab else set() for lab in labels), "images")
        diff |= _changes(*sets, "boxes")
    elif kind == "test_info":
        labels = [read_recognition_labels(p) if p else None for p in (old, new)]
        diff |= _changes(*(set(lab.image_names) if lab else set() for lab in labels), "images")
        diff |= _changes(*(_identities(lab) for lab in labels), "identities")
        diff |= _changes(*(_distractors(lab) for lab in labels), "distractors")
    elif kind == "verification_pairs":
        if test_info is None:
            raise LabelError("upload the test info (test_info) before the verification pairs")
        names = read_recognition_labels(test_info).image_names
        pairs = [_pairs(read_verification_pairs(p, names), names) if p else set() for p in (old, new)]
        diff |= _changes(*pairs, "pairs")
    else:
        raise LabelError(f"unknown label kind '{kind}'")
    return diff


def _boxes(labels) -> set:
    return {
        (labels.image_names[i], *(round(float(v), 2) for v in box))
        for i, box in zip(labels.image_index, labels.boxes, strict=True)
    }


def _identities(labels) -> set:
    return set() if labels is None else {int(v) for v in np.unique(labels.labels[labels.labels >= 0])}


def _distractors(labels) -> set:
    if labels is None:
        return set()
    return {name for name, label in zip(labels.image_names, labels.labels, strict=True) if label < 0}


def _pairs(pairs, names) -> set:
    return {(names[a], names[b], bool(s)) for a, b, s in zip(pairs.a, pairs.b, pairs.same, strict=True)}
