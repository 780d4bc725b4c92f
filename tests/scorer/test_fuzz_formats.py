"""Hostile uploads against scorer.formats: a clear FormatError or a correct result, never a crash, a hang or
unbounded memory (random bytes, truncations, bombs, path-traversing zip members, NaN, wrong dtypes, unicode)."""

from __future__ import annotations

import gzip
import io
import os
import tracemalloc
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scorer import formats as F
from tests.profiles import examples

IMAGES = ("a.jpg", "b.jpg", "名前.jpg")
VALID_CSV = b"a.jpg,1,2,30,40,face,0.9\n\xe5\x90\x8d\xe5\x89\x8d.jpg,5,5,50,50,face,0.5\nb.jpg,0,0,1,1,face,0.1\n"
INFO = b"imginfos:\na.jpg 0 0 9 9 0\nb.jpg 0 0 9 9 0\nc.jpg 0 0 9 9 -1\npairs:\na.jpg b.jpg\nb.jpg a.jpg\n"
FUZZ = settings(max_examples=examples(200), deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _readers():
    return {
        "detection submission": lambda data: F.read_detection_submission(data, IMAGES, max_bytes=1 << 16),
        "detection labels": F.read_detection_labels,
        "train boxes": F.read_detection_train_boxes,
        "recognition labels": F.read_recognition_labels,
        "recognition test list": F.read_recognition_test_list,
        "recognition train list": F.read_recognition_train_list,
        "verification pairs": lambda data: F.read_verification_pairs(data, ("a.jpg", "b.jpg")),
        "features": lambda data: F.read_features(data, 3, max_dim=64),
    }


@pytest.mark.parametrize("reader", sorted(_readers()))
@FUZZ
@given(data=st.binary(max_size=2048))
def test_random_bytes_give_a_clear_error_or_a_result(reader, data):
    try:
        _readers()[reader](data)
    except F.FormatError as error:
        assert str(error)


@pytest.mark.parametrize(
    ("reader", "valid"),
    [
        ("detection submission", VALID_CSV),
        ("recognition labels", INFO),
        ("features", np.arange(1.0, 13.0).reshape(3, 4).tobytes()),
        ("features", gzip.compress(np.arange(1.0, 13.0).reshape(3, 4).tobytes())),
        ("detection submission", gzip.compress(VALID_CSV)),
    ],
)
def test_every_truncation_of_a_valid_file_gives_an_error_or_a_result(reader, valid):
    read = _readers()[reader]
    for cut in range(len(valid)):
        try:
            read(valid[:cut])
        except F.FormatError as error:
            assert str(error)


@FUZZ
@given(position=st.integers(0, len(VALID_CSV) - 1), byte=st.integers(0, 255))
def test_a_flipped_byte_gives_an_error_or_a_result(position, byte):
    data = bytearray(VALID_CSV)
    data[position] = byte
    try:
        F.read_detection_submission(bytes(data), IMAGES)
    except F.FormatError as error:
        assert str(error)


def test_unicode_image_names_are_read_exactly():
    dets = F.read_detection_submission(VALID_CSV, IMAGES)
    assert dets.image_index.tolist() == [0, 2, 1]


def test_a_gzip_bomb_is_refused_without_expanding_it():
    bomb = gzip.compress(b"\n" * (200 << 20), compresslevel=9)  # 200 MB of newlines in about 200 KB
    tracemalloc.start()
    try:
        with pytest.raises(F.SubmissionError, match="expands to more than"):
            F.read_detection_submission(bomb, IMAGES, max_bytes=1 << 20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, f"peak {peak / 2**20:.1f} MiB while refusing a bomb capped at 1 MiB"


def test_a_zip_bomb_is_refused_without_expanding_it():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("features.bin", b"\0" * (100 << 20))
    tracemalloc.start()
    try:
        with pytest.raises(F.SubmissionError, match="expands to"):
            F.read_features(buffer.getvalue(), 300, max_dim=64)  # the cap is 8 x 300 x 64 + 4096 bytes
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20


def test_a_path_traversing_zip_member_is_read_in_memory_and_never_written(tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("../../../../tmp/evil.csv", VALID_CSV)
    before = set(os.listdir(tmp_path))
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        dets = F.read_detection_submission(buffer.getvalue(), IMAGES)
    finally:
        os.chdir(cwd)
    assert len(dets) == 3
    assert set(os.listdir(tmp_path)) == before


def test_concatenated_gzip_members_are_all_read():
    half = len(VALID_CSV) // 2
    cut = VALID_CSV.rindex(b"\n", 0, half) + 1
    data = gzip.compress(VALID_CSV[:cut]) + gzip.compress(VALID_CSV[cut:])
    assert len(F.read_detection_submission(data, IMAGES)) == 3


def test_a_huge_line_count_is_read_in_bounded_time_and_memory():
    blank_lines = b"\r\n" * (4 << 20)  # 8 MB of empty lines, under the 20 MB cap
    tracemalloc.start()
    try:
        dets = F.read_detection_submission(blank_lines + VALID_CSV, IMAGES)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(dets) == 3
    assert peak < 30 * len(blank_lines), f"peak {peak / 2**20:.0f} MiB for an {len(blank_lines) >> 20} MiB file"


@FUZZ
@given(
    rows=st.integers(1, 6),
    dim=st.integers(1, 16),
    bad=st.sampled_from([np.nan, np.inf, -np.inf]),
    where=st.integers(0, 1000),
)
def test_a_non_finite_value_anywhere_is_reported_at_its_row(rows, dim, bad, where):
    feats = np.ones((rows, dim))
    feats.flat[where % feats.size] = bad
    with pytest.raises(F.SubmissionError) as caught:
        F.read_features(feats.tobytes(), rows)
    assert caught.value.line == where % feats.size // dim + 1


@pytest.mark.parametrize("dtype", ["<i4", "<u1", ">f8", "<c8", "|b1", "<U3"])
def test_a_npy_of_a_non_float_dtype_is_refused_or_read_exactly(dtype):
    array = np.ones((3, 4), dtype=dtype)
    buffer = io.BytesIO()
    np.save(buffer, array)
    if np.dtype(dtype).kind == "f":
        assert np.array_equal(F.read_features(buffer.getvalue(), 3), np.ones((3, 4)))
    else:
        with pytest.raises(F.SubmissionError, match="float16, float32 or float64"):
            F.read_features(buffer.getvalue(), 3)
