"""Readers and writers of every iCartoonFace file (FORMATS.md), and all validation of participant files.

Every reader returns a frozen dataclass of numpy arrays and raises a `FormatError` subclass that names the
source, the line and the field of the first problem:

- `SubmissionError` for a participant's file (the platform shows its message to the team);
- `LabelError` for an organizer's file (ground truth, test lists; never shown to teams).

A reader takes a path, raw bytes or a binary file object. Text files are read alike whatever system made them:
UTF-8 with or without a byte-order mark, CRLF or LF line ends, blank lines and spaces around fields.
"""

from __future__ import annotations

import io
import itertools
import math
import os
import zipfile
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

Source = str | os.PathLike | bytes | BinaryIO

DEFAULT_MAX_BOXES_PER_IMAGE = 100
DEFAULT_MAX_DETECTION_BYTES = 20 * 2**20  # the 2020 challenge's cap on the CSV
MAX_FEATURE_DIM = 4096
_NPY_MAGIC = b"\x93NUMPY"
_GZIP_MAGIC = b"\x1f\x8b"
_ZIP_MAGIC = b"PK\x03\x04"


# --------------------------------------------------------------------------------------------------- errors


class FormatError(ValueError):
    """A file does not follow FORMATS.md. `line` is 1-based (a row of features for binary files)."""

    kind = "file"

    def __init__(self, message: str, *, line: int | None = None, field: str | None = None, source: str | None = None):
        self.message = message
        self.line = line
        self.field = field
        self.source = source
        super().__init__(str(self))

    def __str__(self) -> str:
        where = []
        if self.source:
            where.append(self.source)
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.field:
            where.append(f"field '{self.field}'")
        return f"{', '.join(where)}: {self.message}" if where else self.message

    def to_dict(self) -> dict:
        return {"kind": self.kind, "message": self.message, "line": self.line, "field": self.field}


class SubmissionError(FormatError):
    """A participant's submission is invalid: the team sees this message."""

    kind = "submission"


class LabelError(FormatError):
    """An organizer's label or list file is invalid (ground truth, test lists, verification pairs)."""

    kind = "labels"


# --------------------------------------------------------------------------------------------------- data


@dataclass(frozen=True, eq=False)
class DetectionLabels:
    """Hidden detection ground truth. Images in order of first appearance in the file.

    image_names: (I,) names; image_index: int64 (M,) index into image_names; boxes: float64 (M, 4) x1, y1, x2, y2
    """

    image_names: tuple[str, ...]
    image_index: np.ndarray
    boxes: np.ndarray

    @property
    def num_images(self) -> int:
        return len(self.image_names)


@dataclass(frozen=True, eq=False)
class Detections:
    """A detection submission. image_index: int64 (K,) into the labels' image_names, in file order;
    boxes: float64 (K, 4) x1, y1, x2, y2; scores: float64 (K,)."""

    image_index: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)


@dataclass(frozen=True, eq=False)
class BoxList:
    """Rows `name x1 y1 x2 y2`: detection train boxes, the recognition test list, the recognition train list
    (there `identities` holds the folder of each image, else it is None). boxes: float64 (M, 4)."""

    names: tuple[str, ...]
    boxes: np.ndarray
    identities: tuple[str, ...] | None = None


@dataclass(frozen=True, eq=False)
class RecognitionLabels:
    """Hidden recognition test info (`icartoonface_rectest_info.txt`).

    image_names: (N,) in test-list order; boxes: float64 (N, 4); labels: int64 (N,), -1 marks a distractor;
    pairs: int64 (P, 2) (probe, gallery) indices of same-identity images.
    """

    image_names: tuple[str, ...]
    boxes: np.ndarray
    labels: np.ndarray
    pairs: np.ndarray

    @property
    def distractor_mask(self) -> np.ndarray:
        return self.labels < 0


@dataclass(frozen=True, eq=False)
class VerificationPairs:
    """Hidden verification pairs: a, b int64 (P,) indices into the test list; same bool (P,); fold int64 (P,) 0..9."""

    a: np.ndarray
    b: np.ndarray
    same: np.ndarray
    fold: np.ndarray

    def __len__(self) -> int:
        return len(self.a)


# --------------------------------------------------------------------------------------------------- input


def _source_name(source: Source, name: str | None) -> str | None:
    if name is not None:
        return name
    if isinstance(source, str | os.PathLike):
        return os.path.basename(os.fspath(source))
    return getattr(source, "name", None) if not isinstance(source, bytes) else None


def _read_bytes(source: Source, max_bytes: int | None, error: type[FormatError], name: str | None) -> bytes:
    """All of a source's bytes, refusing more than max_bytes without reading them all."""
    if isinstance(source, bytes):
        data = source
    elif isinstance(source, str | os.PathLike):
        try:
            size = os.path.getsize(source)
            if max_bytes is not None and size > max_bytes:
                raise error(f"the file is {size:,} bytes; the limit is {max_bytes:,}", source=name)
            data = Path(source).read_bytes()
        except FileNotFoundError:
            raise error("no such file", source=name or os.fspath(source)) from None
        except IsADirectoryError:
            raise error("is a folder, not a file", source=name or os.fspath(source)) from None
    else:
        limit = -1 if max_bytes is None else max_bytes + 1
        data = source.read(limit)
    if max_bytes is not None and len(data) > max_bytes:
        raise error(f"the file is larger than the limit of {max_bytes:,} bytes", source=name)
    return data


def _unpack(data: bytes, max_bytes: int | None, error: type[FormatError], name: str | None) -> bytes:
    """The payload of a gzip or single-member zip upload (bounded: a bomb is refused, never expanded)."""
    if data.startswith(_GZIP_MAGIC):
        return _gunzip(data, max_bytes if max_bytes is not None else 2**40, error, name)
    if data.startswith(_ZIP_MAGIC):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                members = [m for m in archive.infolist() if not m.is_dir()]
                if len(members) != 1:
                    raise error(f"the zip file must hold exactly one file; it holds {len(members)}", source=name)
                member = members[0]
                if max_bytes is not None and member.file_size > max_bytes:
                    raise error(
                        f"the zip member expands to {member.file_size:,} bytes; the limit is {max_bytes:,}", source=name
                    )
                with archive.open(member) as stream:  # read in memory only: the member's name is never a path
                    out = stream.read(max_bytes + 1 if max_bytes is not None else -1)
                if max_bytes is not None and len(out) > max_bytes:
                    raise error(f"the zip member expands to more than {max_bytes:,} bytes", source=name)
                return out
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as exc:
            raise error(f"the zip file is corrupt or unsupported ({exc})", source=name) from None
    return data


def _gunzip(data: bytes, limit: int, error: type[FormatError], name: str | None) -> bytes:
    """Every member of a gzip stream (`cat a.gz b.gz` is valid gzip), never more than limit bytes of output."""
    parts: list[bytes] = []
    size = 0
    rest = data
    try:
        while rest:
            decoder = zlib.decompressobj(wbits=31)
            part = decoder.decompress(rest, limit - size + 1)
            size += len(part)
            if size > limit or decoder.unconsumed_tail:
                raise error(f"the gzip file expands to more than {limit:,} bytes", source=name)
            if not decoder.eof:
                raise error("the gzip file is truncated", source=name)
            parts.append(part)
            rest = decoder.unused_data
            if rest and not rest.startswith(_GZIP_MAGIC):
                raise error("the gzip file has trailing bytes that are not gzip", source=name)
    except zlib.error as exc:
        raise error(f"the gzip file is corrupt ({exc})", source=name) from None
    return b"".join(parts)


def _text_lines(data: bytes, error: type[FormatError], name: str | None) -> Iterator[tuple[int, str]]:
    """(1-based line number, stripped line) for every non-blank line of UTF-8 text (BOM, CRLF accepted)."""
    if b"\x00" in data:
        line = data[: data.index(b"\x00")].count(b"\n") + 1
        raise error("the file holds a NUL byte: it is binary, not text", line=line, source=name)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise error(f"not UTF-8 text (byte 0x{data[exc.start]:02x})", line=line, source=name) from None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line:
            yield number, line


def _number(text: str, field: str, line: int, error: type[FormatError], name: str | None) -> float:
    try:
        value = float(text)
    except ValueError:
        raise error(f"'{_clip(text)}' is not a number", line=line, field=field, source=name) from None
    if not math.isfinite(value):
        raise error(f"'{_clip(text)}' is not a finite number", line=line, field=field, source=name)
    return value


def _clip(text: str, width: int = 40) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


_BOX_FIELDS = ("x1", "y1", "x2", "y2")


def _box(fields: Sequence[str], line: int, error: type[FormatError], name: str | None) -> tuple[float, ...]:
    x1, y1, x2, y2 = (_number(f, key, line, error, name) for f, key in zip(fields, _BOX_FIELDS, strict=True))
    if x2 < x1:
        raise error(f"x2 = {fields[2]} is smaller than x1 = {fields[0]}", line=line, field="x2", source=name)
    if y2 < y1:
        raise error(f"y2 = {fields[3]} is smaller than y1 = {fields[1]}", line=line, field="y2", source=name)
    return x1, y1, x2, y2


def _split_csv(line: str) -> list[str]:
    return [field.strip() for field in line.split(",")]


_HEADER_WORDS = {"image", "img", "image_name", "filename", "name", "x1", "y1", "x2", "y2", "xmin", "ymin", "xmax"}


def _check_columns(fields: list[str], expected: Sequence[str], line: int, error: type[FormatError], name):
    looks_like_header = sum(field.lower() in _HEADER_WORDS for field in fields) >= 2
    if looks_like_header:
        raise error("this looks like a header row; the file must have no header", line=line, source=name)
    if len(fields) == len(expected):
        return
    raise error(
        f"expected {len(expected)} columns ({','.join(expected)}), found {len(fields)}",
        line=line,
        source=name,
    )


def _boxes_array(rows: list[tuple[float, ...]]) -> np.ndarray:
    return np.asarray(rows, dtype=np.float64).reshape(-1, 4)


def _fast_columns(data: bytes, ncols: int, sep: str | None = ",") -> list[tuple[str, ...]] | None:
    """The columns of a clean table, or None as soon as anything looks wrong (the caller then re-reads the file
    line by line with the checked reader, which names the problem). Only a speed-up: it never decides validity."""
    if b"\x00" in data:
        return None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None
    rows = [line.split(sep) for line in text.splitlines() if line and not line.isspace()]
    if not rows:
        return None
    if any(len(row) != ncols for row in rows):
        return None
    return list(zip(*rows, strict=True))


def _fast_numbers(columns: Sequence[tuple[str, ...]]) -> np.ndarray | None:
    """float64 (rows, len(columns)) when every field is a finite number, else None."""
    try:
        numbers = np.array(columns, dtype=np.float64).T
    except ValueError:
        return None
    return np.ascontiguousarray(numbers) if np.isfinite(numbers).all() else None


def _fast_boxes(columns: Sequence[tuple[str, ...]]) -> np.ndarray | None:
    boxes = _fast_numbers(columns)
    if boxes is None or (boxes[:, 2] < boxes[:, 0]).any() or (boxes[:, 3] < boxes[:, 1]).any():
        return None
    return boxes


def _stripped(column: tuple[str, ...]) -> list[str]:
    return [field.strip() for field in column]


# --------------------------------------------------------------------------------------------------- detection

_GT_COLUMNS = ("image", "x1", "y1", "x2", "y2", "face")
_SUBMISSION_COLUMNS = ("image", "x1", "y1", "x2", "y2", "face", "score")
_TRAIN_COLUMNS = ("image", "x1", "y1", "x2", "y2")


def read_detection_labels(source: Source, *, name: str | None = None) -> DetectionLabels:
    """Hidden detection GT `personai_icartoonface_detval.csv`: rows `image,x1,y1,x2,y2,face`."""
    name = _source_name(source, name)
    data = _read_bytes(source, None, LabelError, name)
    columns = _fast_columns(data, len(_GT_COLUMNS))
    if columns is not None:
        boxes = _fast_boxes(columns[1:5])
        names = _stripped(columns[0])
        if boxes is not None and all(names) and set(_stripped(columns[5])) == {"face"}:
            index_of: dict[str, int] = {}
            image_index = [index_of.setdefault(image, len(index_of)) for image in names]
            return DetectionLabels(tuple(index_of), np.asarray(image_index, dtype=np.int64), boxes)
    return _read_detection_labels_checked(data, name)


def _read_detection_labels_checked(data: bytes, name: str | None) -> DetectionLabels:
    index_of: dict[str, int] = {}
    image_index: list[int] = []
    rows: list[tuple[float, ...]] = []
    for line, text in _text_lines(data, LabelError, name):
        fields = _split_csv(text)
        _check_columns(fields, _GT_COLUMNS, line, LabelError, name)
        image = _image_name(fields[0], line, LabelError, name)
        if fields[5] != "face":
            raise LabelError(
                f"the label must be 'face', not '{_clip(fields[5])}'", line=line, field="face", source=name
            )
        rows.append(_box(fields[1:5], line, LabelError, name))
        image_index.append(index_of.setdefault(image, len(index_of)))
    if not rows:
        raise LabelError("the ground truth holds no box", source=name)
    return DetectionLabels(tuple(index_of), np.asarray(image_index, dtype=np.int64), _boxes_array(rows))


def read_detection_submission(
    source: Source,
    image_names: Sequence[str] | Mapping[str, int],
    *,
    max_boxes_per_image: int = DEFAULT_MAX_BOXES_PER_IMAGE,
    max_bytes: int | None = DEFAULT_MAX_DETECTION_BYTES,
    name: str | None = None,
) -> Detections:
    """A detection submission: rows `image,x1,y1,x2,y2,face,score`, validated against the test images.

    image_names: the test set's images (DetectionLabels.image_names) or a name → index mapping.
    gzip or zip of the CSV is accepted; max_bytes bounds both the upload and what it expands to.
    """
    name = _source_name(source, name)
    index_of = image_names if isinstance(image_names, Mapping) else {n: i for i, n in enumerate(image_names)}
    data = _unpack(_read_bytes(source, max_bytes, SubmissionError, name), max_bytes, SubmissionError, name)
    columns = _fast_columns(data, len(_SUBMISSION_COLUMNS))
    if columns is not None:
        numbers = _fast_numbers(columns[1:5] + columns[6:7])
        valid = numbers is not None and not (numbers[:, 2] < numbers[:, 0]).any()
        valid = valid and not (numbers[:, 3] < numbers[:, 1]).any() and set(_stripped(columns[5])) == {"face"}
        if valid:
            image_index = [index_of.get(image) for image in _stripped(columns[0])]
            if None not in image_index:
                image_index = np.asarray(image_index, dtype=np.int64)
                if np.bincount(image_index).max() <= max_boxes_per_image:
                    return Detections(image_index, np.ascontiguousarray(numbers[:, :4]), numbers[:, 4].copy())
    elif not data.strip():
        return Detections(np.empty(0, np.int64), np.empty((0, 4)), np.empty(0))
    return _read_detection_submission_checked(data, index_of, max_boxes_per_image, name)


def _read_detection_submission_checked(data: bytes, index_of, max_boxes_per_image: int, name) -> Detections:
    counts: dict[int, int] = {}
    image_index: list[int] = []
    rows: list[tuple[float, ...]] = []
    scores: list[float] = []
    for line, text in _text_lines(data, SubmissionError, name):
        fields = _split_csv(text)
        _check_columns(fields, _SUBMISSION_COLUMNS, line, SubmissionError, name)
        image = index_of.get(fields[0])
        if image is None:
            raise SubmissionError(
                f"'{_clip(fields[0])}' is not an image of the test set", line=line, field="image", source=name
            )
        if fields[5] != "face":
            raise SubmissionError(
                f"the label must be 'face', not '{_clip(fields[5])}'", line=line, field="face", source=name
            )
        rows.append(_box(fields[1:5], line, SubmissionError, name))
        scores.append(_number(fields[6], "score", line, SubmissionError, name))
        count = counts[image] = counts.get(image, 0) + 1
        if count > max_boxes_per_image:
            raise SubmissionError(
                f"more than {max_boxes_per_image} boxes for image '{fields[0]}'; the limit is {max_boxes_per_image}",
                line=line,
                field="image",
                source=name,
            )
        image_index.append(image)
    return Detections(np.asarray(image_index, dtype=np.int64), _boxes_array(rows), np.asarray(scores, np.float64))


def read_detection_train_boxes(source: Source, *, name: str | None = None) -> BoxList:
    """Detection train boxes `icartoonface_dettrain.csv`: rows `image,x1,y1,x2,y2` (integer corners)."""
    name = _source_name(source, name)
    data = _read_bytes(source, None, LabelError, name)
    columns = _fast_columns(data, len(_TRAIN_COLUMNS))
    if columns is not None:
        boxes = _fast_boxes(columns[1:5])
        names = _stripped(columns[0])
        if boxes is not None and all(names):
            return BoxList(tuple(names), boxes)
    names = []
    rows: list[tuple[float, ...]] = []
    for line, text in _text_lines(data, LabelError, name):
        fields = _split_csv(text)
        _check_columns(fields, _TRAIN_COLUMNS, line, LabelError, name)
        names.append(_image_name(fields[0], line, LabelError, name))
        rows.append(_box(fields[1:5], line, LabelError, name))
    return BoxList(tuple(names), _boxes_array(rows))


def _image_name(text: str, line: int, error: type[FormatError], name: str | None) -> str:
    if not text:
        raise error("the image name is empty", line=line, field="image", source=name)
    return text


def _fmt(value: float) -> str:
    """A coordinate as the official files write it: an integer when it is one, else the shortest float."""
    value = float(value)
    return str(int(value)) if value.is_integer() else repr(value)


def write_detection_labels(path: str | os.PathLike, image_names: Sequence[str], image_index, boxes) -> None:
    """Write hidden detection GT rows `image,x1,y1,x2,y2,face`."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    with open(path, "w", encoding="utf-8", newline="\n") as out:
        for image, box in zip(np.asarray(image_index), boxes, strict=True):
            out.write(f"{image_names[image]},{','.join(map(_fmt, box))},face\n")


def write_detection_submission(path: str | os.PathLike, image_names: Sequence[str], detections: Detections) -> None:
    """Write a valid submission CSV `image,x1,y1,x2,y2,face,score`, each image's rows by descending score."""
    order = np.lexsort((-detections.scores, detections.image_index))
    with open(path, "w", encoding="utf-8", newline="\n") as out:
        for i in order:
            box = ",".join(map(_fmt, detections.boxes[i]))
            out.write(f"{image_names[detections.image_index[i]]},{box},face,{float(detections.scores[i])!r}\n")


def write_detection_train_boxes(path: str | os.PathLike, boxes: BoxList) -> None:
    """Write `icartoonface_dettrain.csv` rows `image,x1,y1,x2,y2`."""
    with open(path, "w", encoding="utf-8", newline="\n") as out:
        for image, box in zip(boxes.names, boxes.boxes, strict=True):
            out.write(f"{image},{','.join(map(_fmt, box))}\n")


# --------------------------------------------------------------------------------------------------- recognition


def _whitespace_box_rows(
    data: bytes, first_fields: Sequence[str], error: type[FormatError], name: str | None, *, tab: bool = False
) -> Iterator[tuple[int, list[str], tuple[float, ...]]]:
    expected = (*first_fields, *_BOX_FIELDS)
    for line, text in _text_lines(data, error, name):
        fields = text.split("\t") if tab else text.split()
        fields = [f.strip() for f in fields]
        if len(fields) != len(expected):
            raise error(
                f"expected {len(expected)} fields ({' '.join(expected)}), found {len(fields)}", line=line, source=name
            )
        yield line, fields, _box(fields[len(first_fields) :], line, error, name)


def read_recognition_test_list(source: Source, *, name: str | None = None) -> BoxList:
    """The public test list `icartoonface_rectest_det.txt`: rows `image x1 y1 x2 y2` (whitespace-separated).
    Its order is the order of a submission's rows."""
    name = _source_name(source, name)
    data = _read_bytes(source, None, LabelError, name)
    names: list[str] = []
    rows: list[tuple[float, ...]] = []
    seen: dict[str, int] = {}
    for line, fields, box in _whitespace_box_rows(data, ("image",), LabelError, name):
        if fields[0] in seen:
            raise LabelError(
                f"'{fields[0]}' is listed twice (first at line {seen[fields[0]]})",
                line=line,
                field="image",
                source=name,
            )
        seen[fields[0]] = line
        names.append(fields[0])
        rows.append(box)
    return BoxList(tuple(names), _boxes_array(rows))


def read_recognition_train_list(source: Source, *, name: str | None = None) -> BoxList:
    """The train list `icartoonface_rectrain_det.txt`: tab-separated `relpath x1 y1 x2 y2`, the identity being
    the folder of relpath (`<identity>/<image>.jpg`)."""
    name = _source_name(source, name)
    data = _read_bytes(source, None, LabelError, name)
    names: list[str] = []
    identities: list[str] = []
    rows: list[tuple[float, ...]] = []
    for line, fields, box in _whitespace_box_rows(data, ("relpath",), LabelError, name, tab=True):
        relpath = fields[0].replace("\\", "/")
        parts = relpath.split("/")
        if len(parts) < 2 or not parts[-2] or ".." in parts or relpath.startswith("/"):
            raise LabelError(
                f"'{_clip(relpath)}' is not of the form <identity>/<image>", line=line, field="relpath", source=name
            )
        names.append(relpath)
        identities.append(parts[-2])
        rows.append(box)
    return BoxList(tuple(names), _boxes_array(rows), tuple(identities))


def read_recognition_labels(source: Source, *, name: str | None = None) -> RecognitionLabels:
    """Hidden test info `icartoonface_rectest_info.txt`: `imginfos:`, rows `image x1 y1 x2 y2 label`, then
    optionally `pairs:` and rows `probe gallery`. Without a `pairs:` section the pairs are every ordered pair
    of distinct images of one identity."""
    name = _source_name(source, name)
    data = _read_bytes(source, None, LabelError, name)
    fast = _fast_recognition_labels(data)
    return fast if fast is not None else _read_recognition_labels_checked(data, name)


def _fast_recognition_labels(data: bytes) -> RecognitionLabels | None:
    """The test info of a clean file, or None as soon as anything looks wrong (then the checked reader names it)."""
    if b"\x00" in data:
        return None
    sections = _ascii_sections(data)
    if sections is None:  # not plain ASCII with \n line ends: the line-by-line fast path
        try:
            lines = [line.split() for line in data.decode("utf-8-sig").splitlines()]
        except UnicodeDecodeError:
            return None
        lines = [fields for fields in lines if fields]
        if not lines or lines[0] != ["imginfos:"]:
            return None
        end = next((i for i, fields in enumerate(lines) if fields == ["pairs:"]), len(lines))
        rows, pair_rows = lines[1:end], lines[end + 1 :]
        if not rows or any(len(fields) != 6 for fields in rows) or any(len(fields) != 2 for fields in pair_rows):
            return None
        columns = list(zip(*rows, strict=True))
        pair_tokens = list(itertools.chain.from_iterable(pair_rows))
        has_pairs = end < len(lines)
    else:
        columns, pair_tokens, has_pairs = sections
    names = columns[0]
    boxes = _fast_boxes(columns[1:5])
    try:
        labels = np.array([int(label) for label in columns[5]], dtype=np.int64)
    except ValueError:
        return None
    if boxes is None or (labels < -1).any() or len(set(names)) != len(names):
        return None
    if not has_pairs:
        return RecognitionLabels(tuple(names), boxes, labels, all_same_identity_pairs(labels))
    index_of = {image: i for i, image in enumerate(names)}
    try:
        pairs = np.fromiter(map(index_of.__getitem__, pair_tokens), dtype=np.int64, count=len(pair_tokens))
    except KeyError:
        return None
    pairs = pairs.reshape(-1, 2)
    a, b = pairs[:, 0], pairs[:, 1]
    if (a == b).any() or (labels[a] < 0).any() or (labels[a] != labels[b]).any():
        return None
    return RecognitionLabels(tuple(names), boxes, labels, pairs)


_SPACE, _TAB, _NEWLINE = 32, 9, 10


def _ascii_sections(data: bytes) -> tuple[list[tuple[str, ...]], list[str], bool] | None:
    """(the 6 columns of the image rows, the flat tokens of the pair rows, whether a `pairs:` line is present) of a
    test info in plain ASCII with LF or CRLF line ends, its fields separated by spaces or tabs; None for anything
    else (the line-by-line path then reads it). The whole file is split once and the fields per line are counted
    with numpy (no Python object per line): at the official size (about 209,000 lines) ten times faster."""
    if b"\r\n" in data:
        data = data.replace(b"\r\n", b"\n")
    raw = np.frombuffer(data, dtype=np.uint8)
    if len(raw) == 0 or raw.max() >= 128:
        return None
    separator = (raw == _SPACE) | (raw == _TAB)
    newline = raw == _NEWLINE
    if ((raw < 32) & ~separator & ~newline).any():  # \r alone, \v, \f or another control byte
        return None
    blank = separator | newline
    starts = np.flatnonzero(~blank & np.r_[True, blank[:-1]])  # the first byte of every field
    line_of_start = np.cumsum(newline)[starts]  # the line of every field (newlines before it)
    line_ids, per_line = np.unique(line_of_start, return_counts=True)
    tokens = data.decode("ascii").split()
    if len(tokens) != len(starts) or not len(tokens) or tokens[0] != "imginfos:" or per_line[0] != 1:
        return None
    ones = np.flatnonzero(per_line[1:] == 1) + 1  # one-field lines after the first: only 'pairs:' may be one
    end_line = int(ones[0]) if len(ones) else len(per_line)
    image_rows, pair_rows = per_line[1:end_line], per_line[end_line + 1 :]
    if not len(image_rows) or (image_rows != 6).any() or (pair_rows != 2).any():
        return None
    first_pair_token = 1 + 6 * len(image_rows)
    has_pairs = end_line < len(per_line)
    if has_pairs and tokens[first_pair_token] != "pairs:":
        return None
    grid = tokens[1:first_pair_token]
    columns = [tuple(grid[column::6]) for column in range(6)]
    return columns, tokens[first_pair_token + 1 :] if has_pairs else [], has_pairs


def _read_recognition_labels_checked(data: bytes, name: str | None) -> RecognitionLabels:
    lines = iter(_text_lines(data, LabelError, name))
    first = next(lines, None)
    if first is None or first[1] != "imginfos:":
        raise LabelError("the file must start with a line 'imginfos:'", line=first[0] if first else None, source=name)
    names: list[str] = []
    rows: list[tuple[float, ...]] = []
    labels: list[int] = []
    index_of: dict[str, int] = {}
    pair_lines: list[tuple[int, str]] | None = None
    for line, text in lines:
        if pair_lines is not None:
            pair_lines.append((line, text))
            continue
        if text == "pairs:":
            pair_lines = []
            continue
        fields = text.split()
        if len(fields) != 6:
            raise LabelError(
                f"expected 6 fields (image x1 y1 x2 y2 label), found {len(fields)}", line=line, source=name
            )
        if fields[0] in index_of:
            raise LabelError(f"'{fields[0]}' is listed twice", line=line, field="image", source=name)
        try:
            label = int(fields[5])
        except ValueError:
            raise LabelError(
                f"'{_clip(fields[5])}' is not an integer identity", line=line, field="label", source=name
            ) from None
        if label < -1:
            raise LabelError(
                f"label {label}: identities are >= 0 and -1 marks a distractor", line=line, field="label", source=name
            )
        index_of[fields[0]] = len(names)
        names.append(fields[0])
        rows.append(_box(fields[1:5], line, LabelError, name))
        labels.append(label)
    if not names:
        raise LabelError("the file lists no image under 'imginfos:'", source=name)
    label_array = np.asarray(labels, dtype=np.int64)
    if pair_lines is None:
        pairs = all_same_identity_pairs(label_array)
    else:
        pairs = _read_pairs(pair_lines, index_of, label_array, name)
    return RecognitionLabels(tuple(names), _boxes_array(rows), label_array, pairs)


def _read_pairs(pair_lines, index_of: Mapping[str, int], labels: np.ndarray, name) -> np.ndarray:
    pairs: list[tuple[int, int]] = []  # plain Python values in the loop: numpy scalar access cost 3 s per 186k
    label_of = labels.tolist()
    for line, text in pair_lines:
        fields = text.split()
        if len(fields) != 2:
            raise LabelError(f"a pair has 2 fields (probe gallery), found {len(fields)}", line=line, source=name)
        for column, field in enumerate(("probe", "gallery")):
            if fields[column] not in index_of:
                raise LabelError(
                    f"'{_clip(fields[column])}' is not listed under 'imginfos:'", line=line, field=field, source=name
                )
        a, b = index_of[fields[0]], index_of[fields[1]]
        pairs.append((a, b))
        if a == b:
            raise LabelError("a pair joins an image to itself", line=line, source=name)
        if label_of[a] < 0 or label_of[a] != label_of[b]:
            raise LabelError(
                f"the pair joins different identities ({label_of[a]} and {label_of[b]})", line=line, source=name
            )
    return np.asarray(pairs, dtype=np.int64).reshape(-1, 2)


def all_same_identity_pairs(labels: np.ndarray) -> np.ndarray:
    """Every ordered pair (a, b), a != b, of images with the same identity label >= 0: int64 (P, 2), sorted."""
    labels = np.asarray(labels)
    labelled = np.flatnonzero(labels >= 0)
    order = labelled[np.argsort(labels[labelled], kind="stable")]
    sorted_labels = labels[order]
    starts = np.flatnonzero(np.r_[True, sorted_labels[1:] != sorted_labels[:-1]])
    ends = np.r_[starts[1:], len(order)]
    blocks = []
    for start, end in zip(starts, ends, strict=True):
        members = order[start:end]
        if len(members) < 2:
            continue
        a, b = np.meshgrid(members, members, indexing="ij")
        keep = a != b
        blocks.append(np.stack([a[keep], b[keep]], axis=1))
    if not blocks:
        return np.empty((0, 2), dtype=np.int64)
    pairs = np.concatenate(blocks).astype(np.int64)
    return pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]


def read_verification_pairs(
    source: Source, image_names: Sequence[str], *, name: str | None = None
) -> VerificationPairs:
    """Hidden verification pairs `icartoonface_verification_pairs.txt`: rows `image_a image_b same fold`."""
    name = _source_name(source, name)
    data = _read_bytes(source, None, LabelError, name)
    index_of = {n: i for i, n in enumerate(image_names)}
    rows: list[tuple[int, int, int, int]] = []
    for line, text in _text_lines(data, LabelError, name):
        fields = text.split()
        if len(fields) != 4:
            raise LabelError(
                f"expected 4 fields (image_a image_b same fold), found {len(fields)}", line=line, source=name
            )
        ab = []
        for field, value in zip(("image_a", "image_b"), fields[:2], strict=True):
            if value not in index_of:
                raise LabelError(f"'{_clip(value)}' is not in the test list", line=line, field=field, source=name)
            ab.append(index_of[value])
        if fields[2] not in ("0", "1"):
            raise LabelError(f"'same' must be 1 or 0, not '{_clip(fields[2])}'", line=line, field="same", source=name)
        if fields[3] not in {str(k) for k in range(10)}:
            raise LabelError(f"'fold' must be 0 to 9, not '{_clip(fields[3])}'", line=line, field="fold", source=name)
        rows.append((ab[0], ab[1], int(fields[2]), int(fields[3])))
    if not rows:
        raise LabelError("the file holds no pair", source=name)
    table = np.asarray(rows, dtype=np.int64)
    return VerificationPairs(table[:, 0], table[:, 1], table[:, 2].astype(bool), table[:, 3])


def write_recognition_test_list(path: str | os.PathLike, boxes: BoxList) -> None:
    """Write `icartoonface_rectest_det.txt` rows `image x1 y1 x2 y2`."""
    with open(path, "w", encoding="utf-8", newline="\n") as out:
        for image, box in zip(boxes.names, boxes.boxes, strict=True):
            out.write(f"{image} {' '.join(map(_fmt, box))}\n")


def write_recognition_train_list(path: str | os.PathLike, boxes: BoxList) -> None:
    """Write `icartoonface_rectrain_det.txt` rows `relpath<TAB>x1<TAB>y1<TAB>x2<TAB>y2`."""
    with open(path, "w", encoding="utf-8", newline="\n") as out:
        for relpath, box in zip(boxes.names, boxes.boxes, strict=True):
            out.write("\t".join([relpath, *map(_fmt, box)]) + "\n")


def write_recognition_labels(path: str | os.PathLike, labels: RecognitionLabels, *, with_pairs: bool = True) -> None:
    """Write `icartoonface_rectest_info.txt`: `imginfos:` rows, then (with_pairs) `pairs:` rows."""
    names = labels.image_names
    with open(path, "w", encoding="utf-8", newline="\n") as out:
        out.write("imginfos:\n")
        for image, box, label in zip(names, labels.boxes, labels.labels, strict=True):
            out.write(f"{image} {' '.join(map(_fmt, box))} {int(label)}\n")
        if with_pairs:
            out.write("pairs:\n")
            for a, b in labels.pairs:
                out.write(f"{names[a]} {names[b]}\n")


def write_verification_pairs(path: str | os.PathLike, image_names: Sequence[str], pairs: VerificationPairs) -> None:
    """Write `icartoonface_verification_pairs.txt` rows `image_a image_b same fold`."""
    with open(path, "w", encoding="utf-8", newline="\n") as out:
        for a, b, same, fold in zip(pairs.a, pairs.b, pairs.same, pairs.fold, strict=True):
            out.write(f"{image_names[a]} {image_names[b]} {int(same)} {int(fold)}\n")


# --------------------------------------------------------------------------------------------------- features


def max_feature_bytes(num_images: int, max_dim: int = MAX_FEATURE_DIM) -> int:
    """The largest valid feature upload for a test list of num_images (raw float64, plus room for a .npy header)."""
    return 8 * num_images * max_dim + 4096


def read_features(
    source: Source,
    num_images: int,
    *,
    max_dim: int = MAX_FEATURE_DIM,
    max_bytes: int | None = None,
    name: str | None = None,
) -> np.ndarray:
    """A recognition submission → float64 (N, d), row i = image i of the test list (possibly read-only).

    Raw little-endian float64 (d = bytes / 8N) or a `.npy` of shape (N, d) in float16/32/64, either of them
    alone or gzip- or zip-compressed. Checks: the size, d in [1, max_dim], every value finite, no zero row.
    Both the upload and what it expands to are bounded by what the test list can need (8 · N · max_dim bytes
    and a header) and by max_bytes (the platform's upload cap): a compressed upload never expands past what an
    uncompressed one could be, so a small gzip bomb is refused before it costs memory or time.
    """
    name = _source_name(source, name)
    limit = max_feature_bytes(num_images, max_dim)
    if max_bytes is not None:
        limit = min(limit, max_bytes)
    data = _unpack(_read_bytes(source, limit, SubmissionError, name), limit, SubmissionError, name)
    feats = (
        _npy_features(data, num_images, name) if data.startswith(_NPY_MAGIC) else _raw_features(data, num_images, name)
    )
    dim = feats.shape[1]
    if not 1 <= dim <= max_dim:
        raise SubmissionError(f"the feature dimension is {dim}; it must be 1 to {max_dim}", source=name)
    finite = np.isfinite(feats).all(axis=1)
    if not finite.all():
        row = int(np.argmin(finite))
        raise SubmissionError(
            f"row {row + 1} holds a NaN or infinite value", line=row + 1, field="features", source=name
        )
    zero = ~feats.any(axis=1)
    if zero.any():
        row = int(np.argmax(zero))
        raise SubmissionError(
            f"row {row + 1} is all zeros: its direction is undefined", line=row + 1, field="features", source=name
        )
    return feats


def _raw_features(data: bytes, num_images: int, name) -> np.ndarray:
    if num_images < 1:
        raise SubmissionError("the test list is empty", source=name)
    if not data:
        raise SubmissionError("the file is empty", source=name)
    row_bytes, rest = divmod(len(data), num_images)
    if rest or row_bytes % 8:
        raise SubmissionError(
            f"{len(data):,} bytes is not a multiple of 8 x {num_images:,} (float64 x test images); "
            "a raw file must hold N x d little-endian float64 values",
            source=name,
        )
    # a view of the bytes, no copy (read-only; native float64 on little-endian machines)
    return np.frombuffer(data, dtype="<f8").reshape(num_images, row_bytes // 8).astype(np.float64, copy=False)


def _npy_features(data: bytes, num_images: int, name) -> np.ndarray:
    try:
        array = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise SubmissionError(f"not a readable .npy file ({_clip(str(exc), 120)})", source=name) from None
    if array.dtype.kind != "f" or array.dtype.itemsize not in (2, 4, 8):
        raise SubmissionError(f"a .npy must be float16, float32 or float64, not {array.dtype}", source=name)
    if array.ndim != 2 or array.shape[0] != num_images:
        raise SubmissionError(f"a .npy must have shape ({num_images}, d); this one has {array.shape}", source=name)
    return array.astype(np.float64, copy=False)


def write_features(path: str | os.PathLike, features) -> None:
    """Write a recognition submission: raw little-endian float64, row i = image i of the test list."""
    features = np.ascontiguousarray(features, dtype="<f8")
    if features.ndim != 2:
        raise ValueError(f"features must be (N, d), not {features.shape}")
    with open(path, "wb") as out:
        out.write(features.tobytes())
