"""scorer.formats: every validation rule has a test, every writer reads back, the real GT file reads."""

from __future__ import annotations

import gzip
import io
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scorer import formats as F
from scorer.formats import LabelError, SubmissionError
from tests.profiles import examples

REAL_GT = (
    Path(__file__).resolve().parents[2].parent
    / "shared"
    / "data"
    / "icartoonface"
    / ("personai_icartoonface_detval.csv")
)
IMAGES = ("a.jpg", "b.jpg", "c.jpg")


def _submission(text: str, **kwargs) -> F.Detections:
    return F.read_detection_submission(text.encode(), IMAGES, **kwargs)


# ----------------------------------------------------------------------------------------------- detection


def test_submission_rows_are_read_in_file_order():
    dets = _submission("b.jpg,1,2,3,4,face,0.5\na.jpg,0,0,10,10,face,0.9\n")
    assert dets.image_index.tolist() == [1, 0]
    assert dets.boxes.tolist() == [[1, 2, 3, 4], [0, 0, 10, 10]]
    assert dets.scores.tolist() == [0.5, 0.9]


def test_files_from_any_system_read_alike():
    plain = _submission("a.jpg,1,2,3,4,face,0.5\nb.jpg,1.5,2,3,4,face,1e-3\n")
    windows = _submission("\ufeffa.jpg , 1, 2 ,3,4 ,face, 0.5\r\n\r\n  \r\nb.jpg,1.5,2,3,4,face,1e-3\r\n")
    assert np.array_equal(plain.boxes, windows.boxes)
    assert np.array_equal(plain.scores, windows.scores)
    assert np.array_equal(plain.image_index, windows.image_index)


def test_an_empty_submission_is_valid_and_scores_every_face_as_a_miss():
    assert len(_submission("")) == 0


def test_a_one_pixel_wide_box_is_allowed():
    assert _submission("a.jpg,5,5,5,5,face,1\n").boxes.tolist() == [[5, 5, 5, 5]]


@pytest.mark.parametrize(
    ("text", "line", "field", "words"),
    [
        ("a.jpg,1,2,3,4,face\n", 1, None, "expected 7 columns"),
        ("a.jpg,1,2,3,4,face,0.5,9\n", 1, None, "found 8"),
        ("image,x1,y1,x2,y2,face,score\n", 1, None, "no header"),
        ("a.jpg,1,2,3,4,face,0.5\na.jpg,one,2,3,4,face,0.5\n", 2, "x1", "not a number"),
        ("a.jpg,1,2,nan,4,face,0.5\n", 1, "x2", "not a finite number"),
        ("a.jpg,1,2,3,inf,face,0.5\n", 1, "y2", "not a finite number"),
        ("a.jpg,1,2,3,4,face,NaN\n", 1, "score", "not a finite number"),
        ("a.jpg,1,2,3,4,face,\n", 1, "score", "not a number"),
        ("a.jpg,1,2,3,4,cat,0.5\n", 1, "face", "must be 'face'"),
        ("a.jpg,5,2,3,4,face,0.5\n", 1, "x2", "smaller than x1"),
        ("a.jpg,1,5,3,4,face,0.5\n", 1, "y2", "smaller than y1"),
        ("a.jpg,1,2,3,4,face,0.5\n\nz.jpg,1,2,3,4,face,0.5\n", 3, "image", "not an image of the test set"),
        ("a.jpg,1,2,3,4,face,0.5\n" * 3, 3, "image", "more than 2 boxes"),
        ("a.jpg,1,2,3,4,face,0.5\x00\n", 1, None, "NUL byte"),
    ],
)
def test_each_invalid_submission_row_is_named(text, line, field, words):
    with pytest.raises(SubmissionError) as caught:
        _submission(text, max_boxes_per_image=2)
    error = caught.value
    assert words in error.message
    assert error.line == line
    assert error.field == field
    assert (f"line {line}" in str(error)) == (line is not None)


def test_non_utf8_text_names_its_line():
    with pytest.raises(SubmissionError, match="line 2.*not UTF-8"):
        F.read_detection_submission(b"a.jpg,1,2,3,4,face,0.5\n\xff.jpg,1,2,3,4,face,1\n", IMAGES)


def test_a_file_over_the_size_cap_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "big.csv"
    path.write_text("a.jpg,1,2,3,4,face,0.5\n" * 100)
    with pytest.raises(SubmissionError, match="limit"):
        F.read_detection_submission(path, IMAGES, max_bytes=1000)


def test_gzip_and_zip_uploads_read_like_the_plain_file():
    text = b"a.jpg,1,2,3,4,face,0.5\nc.jpg,0,0,9,9,face,0.25\n"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("../../etc/passwd", text)  # a hostile name is never used as a path
    for payload in (gzip.compress(text), buffer.getvalue()):
        dets = F.read_detection_submission(payload, IMAGES)
        assert dets.scores.tolist() == [0.5, 0.25]


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        (gzip.compress(b"a.jpg,1,2,3,4,face,0.5\n" * 10_000), "expands to more than"),
        (gzip.compress(b"a.jpg,1,2,3,4,face,0.5\n")[:-12], "truncated"),
        (b"\x1f\x8b" + b"garbage" * 10, "corrupt"),
        (b"PK\x03\x04" + b"garbage" * 10, "corrupt"),
    ],
)
def test_compressed_uploads_that_are_bombs_or_broken_are_refused(payload, words):
    with pytest.raises(SubmissionError, match=words):
        F.read_detection_submission(payload, IMAGES, max_bytes=50_000)


def test_a_zip_with_several_files_is_refused():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("one.csv", "a.jpg,1,2,3,4,face,0.5\n")
        archive.writestr("two.csv", "a.jpg,1,2,3,4,face,0.5\n")
    with pytest.raises(SubmissionError, match="exactly one file"):
        F.read_detection_submission(buffer.getvalue(), IMAGES)


def test_a_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(SubmissionError, match="no such file"):
        F.read_detection_submission(tmp_path / "absent.csv", IMAGES)


def test_detection_writers_read_back(tmp_path):
    gt_path, sub_path, train_path = tmp_path / "gt.csv", tmp_path / "sub.csv", tmp_path / "train.csv"
    boxes = np.array([[0, 0, 9, 9], [1.5, 2, 3, 4.25], [5, 5, 6, 6]])
    F.write_detection_labels(gt_path, IMAGES, np.array([2, 0, 2]), boxes)
    labels = F.read_detection_labels(gt_path)
    assert labels.image_names == ("c.jpg", "a.jpg")
    assert labels.image_index.tolist() == [0, 1, 0]
    assert np.array_equal(labels.boxes, boxes)

    dets = F.Detections(np.array([0, 1, 0]), boxes, np.array([0.1, 0.7, 0.9]))
    F.write_detection_submission(sub_path, labels.image_names, dets)
    back = F.read_detection_submission(sub_path, labels.image_names)
    assert back.scores.tolist() == [0.9, 0.1, 0.7]  # each image's rows by descending score
    assert back.boxes.tolist() == [boxes[2].tolist(), boxes[0].tolist(), boxes[1].tolist()]

    train = F.BoxList(("x.jpg", "y.jpg"), boxes[:2])
    F.write_detection_train_boxes(train_path, train)
    assert F.read_detection_train_boxes(train_path).names == ("x.jpg", "y.jpg")


@pytest.mark.parametrize(
    ("text", "line", "field", "words"),
    [
        ("a.jpg,1,2,3,4\n", 1, None, "expected 6 columns"),
        ("a.jpg,1,2,3,4,person\n", 1, "face", "must be 'face'"),
        ("a.jpg,1,2,3,x,face\n", 1, "y2", "not a number"),
        (",1,2,3,4,face\n", 1, "image", "empty"),
        ("", None, None, "no box"),
    ],
)
def test_each_invalid_ground_truth_row_is_a_label_error(text, line, field, words):
    with pytest.raises(LabelError) as caught:
        F.read_detection_labels(text.encode())
    assert words in caught.value.message
    assert (caught.value.line, caught.value.field) == (line, field)


@pytest.mark.parametrize(
    ("text", "line", "field", "words"),
    [
        ("a.jpg,1,2,3\n", 1, None, "expected 5 columns"),
        ("a.jpg,1,2,3,-4\n", 1, "y2", "smaller than y1"),
    ],
)
def test_each_invalid_train_box_row_is_a_label_error(text, line, field, words):
    with pytest.raises(LabelError) as caught:
        F.read_detection_train_boxes(text.encode())
    assert words in caught.value.message
    assert (caught.value.line, caught.value.field) == (line, field)


@pytest.mark.skipif(not REAL_GT.exists(), reason="the shared real GT file is not beside this checkout")
def test_the_real_2020_detection_ground_truth_reads_at_official_scale():
    labels = F.read_detection_labels(REAL_GT)
    assert labels.num_images == 10_000
    assert len(labels.boxes) == 18_647
    per_image = np.bincount(labels.image_index)
    assert per_image.min() >= 1 and per_image.max() <= 60


# ----------------------------------------------------------------------------------------------- recognition

INFO = """imginfos:
p0.jpg 0 0 10 10 0
p1.jpg 0 0 10 10 0
p2.jpg 0 0 10 10 0
q0.jpg 0 0 10 10 7
q1.jpg 0 0 10 10 7
d0.jpg 0 0 10 10 -1
"""


def test_without_a_pairs_section_the_pairs_are_all_ordered_same_identity_pairs():
    labels = F.read_recognition_labels(INFO.encode())
    assert labels.labels.tolist() == [0, 0, 0, 7, 7, -1]
    assert {tuple(p) for p in labels.pairs.tolist()} == {(0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1), (3, 4), (4, 3)}
    assert labels.distractor_mask.tolist() == [False] * 5 + [True]


def test_the_pairs_section_is_read_in_its_order():
    labels = F.read_recognition_labels((INFO + "pairs:\nq1.jpg q0.jpg\np0.jpg p2.jpg\n").encode())
    assert labels.pairs.tolist() == [[4, 3], [0, 2]]


@pytest.mark.parametrize(
    ("text", "line", "field", "words"),
    [
        ("p0.jpg 0 0 1 1 0\n", 1, None, "must start with a line 'imginfos:'"),
        ("imginfos:\n", None, None, "lists no image"),
        ("imginfos:\np0.jpg 0 0 1 1\n", 2, None, "expected 6 fields"),
        ("imginfos:\np0.jpg 0 0 1 1 zero\n", 2, "label", "not an integer"),
        ("imginfos:\np0.jpg 0 0 1 1 -2\n", 2, "label", "-1 marks a distractor"),
        ("imginfos:\np0.jpg 0 0 1 1 0\np0.jpg 0 0 1 1 0\n", 3, "image", "listed twice"),
        ("imginfos:\np0.jpg 2 0 1 1 0\n", 2, "x2", "smaller than x1"),
        (INFO + "pairs:\np0.jpg q0.jpg\n", 9, None, "different identities"),
        (INFO + "pairs:\np0.jpg d0.jpg\n", 9, None, "different identities"),
        (INFO + "pairs:\np0.jpg p0.jpg\n", 9, None, "to itself"),
        (INFO + "pairs:\np0.jpg zz.jpg\n", 9, "gallery", "not listed"),
        (INFO + "pairs:\np0.jpg\n", 9, None, "2 fields"),
    ],
)
def test_each_invalid_test_info_row_is_a_label_error(text, line, field, words):
    with pytest.raises(LabelError) as caught:
        F.read_recognition_labels(text.encode())
    assert words in caught.value.message
    assert (caught.value.line, caught.value.field) == (line, field)


def test_recognition_writers_read_back(tmp_path):
    labels = F.read_recognition_labels(INFO.encode())
    F.write_recognition_labels(tmp_path / "info.txt", labels)
    back = F.read_recognition_labels(tmp_path / "info.txt")
    assert back.image_names == labels.image_names
    assert np.array_equal(back.pairs, labels.pairs) and np.array_equal(back.labels, labels.labels)

    test_list = F.BoxList(labels.image_names, labels.boxes)
    F.write_recognition_test_list(tmp_path / "det.txt", test_list)
    assert F.read_recognition_test_list(tmp_path / "det.txt").names == labels.image_names

    train = F.BoxList(("id0/a.jpg", "id1/b.jpg"), np.array([[0, 0, 5, 5], [1, 1, 4, 4]]), ("id0", "id1"))
    F.write_recognition_train_list(tmp_path / "train.txt", train)
    read = F.read_recognition_train_list(tmp_path / "train.txt")
    assert read.identities == ("id0", "id1") and np.array_equal(read.boxes, train.boxes)

    pairs = F.VerificationPairs(np.array([0, 3]), np.array([1, 5]), np.array([True, False]), np.array([0, 9]))
    F.write_verification_pairs(tmp_path / "pairs.txt", labels.image_names, pairs)
    read_pairs = F.read_verification_pairs(tmp_path / "pairs.txt", labels.image_names)
    assert read_pairs.same.tolist() == [True, False] and read_pairs.fold.tolist() == [0, 9]


@pytest.mark.parametrize(
    ("text", "field", "words"),
    [
        ("a.jpg 0 0 1\n", None, "expected 5 fields"),
        ("a.jpg 0 0 1 1\na.jpg 0 0 1 1\n", "image", "listed twice"),
    ],
)
def test_each_invalid_test_list_row_is_a_label_error(text, field, words):
    with pytest.raises(LabelError, match=words) as caught:
        F.read_recognition_test_list(text.encode())
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("text", "field", "words"),
    [
        ("id0/a.jpg\t0\t0\t1\n", None, "expected 5 fields"),
        ("a.jpg\t0\t0\t1\t1\n", "relpath", "<identity>/<image>"),
        ("../a.jpg\t0\t0\t1\t1\n", "relpath", "<identity>/<image>"),
    ],
)
def test_each_invalid_train_list_row_is_a_label_error(text, field, words):
    with pytest.raises(LabelError, match=words) as caught:
        F.read_recognition_train_list(text.encode())
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("text", "field", "words"),
    [
        ("p0.jpg p1.jpg 1\n", None, "expected 4 fields"),
        ("p0.jpg zz.jpg 1 0\n", "image_b", "not in the test list"),
        ("p0.jpg p1.jpg yes 0\n", "same", "1 or 0"),
        ("p0.jpg p1.jpg 1 10\n", "fold", "0 to 9"),
        ("\n", None, "no pair"),
    ],
)
def test_each_invalid_verification_pair_is_a_label_error(text, field, words):
    names = F.read_recognition_labels(INFO.encode()).image_names
    with pytest.raises(LabelError, match=words) as caught:
        F.read_verification_pairs(text.encode(), names)
    assert caught.value.field == field


# ----------------------------------------------------------------------------------------------- features


def test_raw_float64_features_read_back_exactly(tmp_path):
    feats = np.random.default_rng(0).normal(size=(6, 5))
    F.write_features(tmp_path / "f.bin", feats)
    assert (tmp_path / "f.bin").stat().st_size == 6 * 5 * 8
    assert np.array_equal(F.read_features(tmp_path / "f.bin", 6), feats)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_npy_features_of_any_float_width_are_accepted(dtype):
    feats = np.random.default_rng(1).normal(size=(4, 3)).astype(dtype)
    buffer = io.BytesIO()
    np.save(buffer, feats)
    read = F.read_features(buffer.getvalue(), 4)
    assert read.dtype == np.float64 and np.array_equal(read, feats.astype(np.float64))


def test_compressed_features_are_accepted():
    feats = np.arange(1, 13, dtype=np.float64).reshape(4, 3)
    assert np.array_equal(F.read_features(gzip.compress(feats.tobytes()), 4), feats)


def _npy(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("payload", "line", "words"),
    [
        (b"", None, "empty"),
        (np.ones((4, 3)).tobytes()[:-8], None, "not a multiple of 8 x 4"),
        (np.ones(4 * 3, dtype=np.float32).tobytes(), None, "not a multiple of 8 x 4"),
        (np.ones((4, 5000)).tobytes(), None, "larger than the limit"),
        (np.array([[1.0, 2], [np.nan, 1], [1, 1], [1, 1]]).tobytes(), 2, "NaN or infinite"),
        (np.array([[1.0, 2], [1, 1], [1, 1], [-np.inf, 1]]).tobytes(), 4, "NaN or infinite"),
        (np.array([[1.0, 2], [1, 1], [0, 0], [1, 1]]).tobytes(), 3, "all zeros"),
        (_npy(np.ones((3, 2))), None, "shape (4, d)"),
        (_npy(np.ones(8)), None, "shape (4, d)"),
        (_npy(np.ones((4, 2), dtype=np.int64)), None, "float16, float32 or float64"),
        (_npy(np.ones((4, 2), dtype=np.complex128)), None, "float16, float32 or float64"),
        (_npy(np.ones((4, 0))), None, "dimension is 0"),
        (_npy(np.ones((4, 2)))[:-5], None, "not a readable .npy"),
        (b"\x93NUMPY" + b"\x01\x00" + b"junk" * 10, None, "not a readable .npy"),
    ],
)
def test_each_invalid_feature_file_is_named(payload, line, words):
    with pytest.raises(SubmissionError, match=re.escape(words)) as caught:
        F.read_features(payload, 4, max_dim=4096)
    assert caught.value.line == line


def test_a_pickled_npy_is_refused_without_unpickling():
    payload = _npy(np.array([[object()]] * 4, dtype=object))
    with pytest.raises(SubmissionError, match="not a readable .npy"):
        F.read_features(payload, 4)


def test_a_feature_dimension_over_the_cap_is_refused():
    with pytest.raises(SubmissionError, match="dimension is 9; it must be 1 to 8"):
        F.read_features(np.ones((2, 9)).tobytes(), 2, max_dim=8)


# ----------------------------------------------------------------------------------------------- fast path

_field = st.one_of(
    st.sampled_from(["a.jpg", "b.jpg", " c.jpg ", "z.jpg", "", "face", " face", "cat", "x1", "nan", "inf"]),
    st.floats(-5, 2000, allow_nan=False).map(repr),
    st.integers(-3, 2000).map(str),
)
_number_text = st.one_of(st.floats(0, 2000, allow_nan=False).map(repr), st.integers(0, 2000).map(str))


@st.composite
def _row(draw):
    """A valid submission row, sometimes with one field replaced, dropped or added."""
    x1, y1, w, h = draw(_number_text), draw(_number_text), draw(_number_text), draw(_number_text)
    image = draw(st.sampled_from(["a.jpg", "b.jpg", " c.jpg "]))
    fields = [image, x1, y1, repr(float(x1) + float(w)), repr(float(y1) + float(h)), "face", draw(_number_text)]
    mutation = draw(st.sampled_from(["none"] * 6 + ["replace", "drop", "add"]))
    position = draw(st.integers(0, 6))
    if mutation == "replace":
        fields[position] = draw(_field)
    elif mutation == "drop":
        del fields[position]
    elif mutation == "add":
        fields.insert(position, draw(_field))
    return ",".join(fields if draw(st.booleans()) else fields[:6])


_file = st.lists(st.one_of(_row(), st.just(""), st.just("  ")), max_size=12).flatmap(
    lambda rows: st.sampled_from(["\n", "\r\n"]).map(lambda end: end.join(rows).encode())
)


def _outcome(read, data):
    try:
        result = read(data)
    except F.FormatError as error:
        return ("error", str(error))
    return ("ok", [np.asarray(getattr(result, key)).tolist() for key in sorted(vars(result))])


@settings(max_examples=examples(300), deadline=None)
@given(_file)
def test_the_fast_submission_reader_agrees_with_the_line_by_line_reader(data):
    index_of = {name: i for i, name in enumerate(IMAGES)}
    fast = _outcome(lambda d: F.read_detection_submission(d, IMAGES, max_boxes_per_image=3), data)
    checked = _outcome(lambda d: F._read_detection_submission_checked(d, index_of, 3, None), data)
    assert fast == checked


@settings(max_examples=examples(300), deadline=None)
@given(_file)
def test_the_fast_label_reader_agrees_with_the_line_by_line_reader(data):
    assert _outcome(F.read_detection_labels, data) == _outcome(
        lambda d: F._read_detection_labels_checked(d, None), data
    )


_info_field = st.sampled_from(["p0.jpg", "q0.jpg", "d0.jpg", "zz.jpg", "0", "7", "-1", "-2", "x", "1.5", "nan", ""])


@st.composite
def _info_file(draw):
    """The INFO file with a pairs: section, sometimes with one line replaced, dropped or given an extra field."""
    lines = INFO.splitlines() + ["pairs:", "p0.jpg p1.jpg", "q1.jpg q0.jpg", "p2.jpg p0.jpg"]
    for _ in range(draw(st.integers(0, 2))):
        position = draw(st.integers(0, len(lines) - 1))
        action = draw(st.sampled_from(["replace field", "drop", "add field", "drop pairs"]))
        fields = lines[position].split()
        if action == "replace field" and fields:
            fields[draw(st.integers(0, len(fields) - 1))] = draw(_info_field)
            lines[position] = " ".join(fields)
        elif action == "drop":
            del lines[position]
        elif action == "add field":
            lines[position] += " " + draw(_info_field)
        elif action == "drop pairs" and "pairs:" in lines:
            lines = lines[: lines.index("pairs:")]
    return ("\n".join(lines) + "\n").encode()


@settings(max_examples=examples(300), deadline=None)
@given(_info_file())
def test_the_fast_test_info_reader_agrees_with_the_line_by_line_reader(data):
    checked = _outcome(lambda d: F._read_recognition_labels_checked(d, None), data)
    assert _outcome(F.read_recognition_labels, data) == checked


@st.composite
def _spaced_info_file(draw):
    """An _info_file laid out as organizers' files are: tabs or runs of spaces between fields, spaces around the
    line, blank lines, CRLF or LF ends, sometimes a byte-order mark or a lone CR (which the ASCII path refuses)."""
    lines = draw(_info_file()).decode().splitlines()
    separator = st.sampled_from([" ", "  ", "\t", " \t "])
    out = []
    for line in lines:
        fields = line.split()
        text = "".join(f + draw(separator) for f in fields[:-1]) + (fields[-1] if fields else "")
        out.append(draw(st.sampled_from(["", " ", "\t"])) + text + draw(st.sampled_from(["", " "])))
        if draw(st.integers(0, 9)) == 0:
            out.append(draw(st.sampled_from(["", "  "])))
    end = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    prefix = draw(st.sampled_from(["", "", "\ufeff"]))
    return (prefix + end.join(out) + end).encode()


@settings(max_examples=examples(300), deadline=None)
@given(_spaced_info_file())
def test_the_ascii_test_info_path_agrees_with_the_line_by_line_reader_whatever_the_spacing(data):
    checked = _outcome(lambda d: F._read_recognition_labels_checked(d, None), data)
    assert _outcome(F.read_recognition_labels, data) == checked


def test_a_clean_test_info_takes_the_ascii_path_and_a_lone_cr_does_not():
    text = INFO + "pairs:\nq1.jpg q0.jpg\np0.jpg p2.jpg\n"
    columns, pair_tokens, has_pairs = F._ascii_sections(text.replace("\n", "\r\n").encode())
    assert has_pairs and pair_tokens == ["q1.jpg", "q0.jpg", "p0.jpg", "p2.jpg"]
    assert list(columns[0]) == list(F.read_recognition_labels(INFO.encode()).image_names)
    assert F._ascii_sections(text.replace("\n", "\r").encode()) is None
    assert F._ascii_sections(("\ufeff" + text).encode()) is None
