"""A hint for a file sent to the wrong track: a detection CSV uploaded to the recognition track, or a feature file
uploaded to the detection track. Only the head of the file is looked at (after gzip or zip), never parsed."""

from __future__ import annotations

import gzip
import zipfile
import zlib
from pathlib import Path

HEAD = 4096
NPY_MAGIC = b"\x93NUMPY"


def _head(path: Path) -> bytes:
    with open(path, "rb") as stream:
        head = stream.read(HEAD)
    if head[:2] == b"\x1f\x8b":
        try:
            with gzip.open(path, "rb") as stream:
                return stream.read(HEAD)
        except (OSError, EOFError, zlib.error):
            return b""
    if head[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(path) as archive:
                members = [m for m in archive.infolist() if not m.is_dir()]
                if not members:
                    return b""
                with archive.open(members[0]) as stream:
                    return stream.read(HEAD)
        except (OSError, zipfile.BadZipFile, RuntimeError, NotImplementedError, EOFError, zlib.error):
            return b""
    return head


def _looks_like_detection_csv(head: bytes) -> bool:
    """Printable text whose first line has at least 6 comma-separated fields and an image file name first."""
    if not head or b"\x00" in head:
        return False
    try:
        first = head.decode("utf-8").lstrip("\ufeff").splitlines()[0]
    except (UnicodeDecodeError, IndexError):
        return False
    fields = first.split(",")
    return len(fields) >= 6 and fields[0].strip().lower().endswith((".jpg", ".jpeg", ".png", ".bmp"))


def _looks_like_features(head: bytes) -> bool:
    """A .npy array, or binary data (NUL bytes are common in float64 features, never in a CSV)."""
    return head.startswith(NPY_MAGIC) or b"\x00" in head


def other_track_format(track_kind: str, path: Path) -> str:
    """' (hint: ...)' when the file looks like the other track's format, else ''."""
    try:
        head = _head(path)
    except OSError:
        return ""
    if track_kind == "recognition" and _looks_like_detection_csv(head):
        return (
            " (hint: this looks like a detection CSV; the recognition track takes the test set's features, "
            "a .bin or .npy file: upload the CSV to the detection track)"
        )
    if track_kind == "detection" and _looks_like_features(head):
        return (
            " (hint: this looks like a recognition feature file; the detection track takes a CSV of boxes: "
            "upload the features to the recognition track)"
        )
    return ""
