"""Layout readers, crops and image loading: clear errors for missing or malformed files, the enlarge-rate rule."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from facedata.crops import crop_box, crop_face, enlarged_box, load_rgb
from facedata.layout import DatasetError, Layout


@pytest.fixture
def copy_root(tiny_root, tmp_path):
    """A private copy of the tiny dataset's text files (images are not needed to test the list readers)."""
    root = tmp_path / "copy"
    shutil.copytree(tiny_root, root, ignore=shutil.ignore_patterns("*.jpg"))
    return root


READERS = {
    "icartoonface_dettrain.csv": "detection_train",
    "icartoonface_rectrain_det.txt": "recognition_train",
    "icartoonface_rectest_det.txt": "recognition_test",
    "auxiliary/icartoonface_auxiliary_det.txt": "auxiliary",
    "hidden/personai_icartoonface_detval.csv": "detection_labels",
    "hidden/icartoonface_rectest_info.txt": "recognition_labels",
    "hidden/icartoonface_verification_pairs.txt": "verification_pairs",
}


@pytest.mark.parametrize("relpath", sorted(READERS))
def test_a_missing_file_is_a_dataset_error_naming_it(copy_root, relpath):
    (copy_root / relpath).unlink()
    with pytest.raises(DatasetError, match=relpath.split("/")[-1]):
        getattr(Layout(copy_root), READERS[relpath])()
    with pytest.raises(DatasetError, match=relpath):
        Layout(copy_root).check()


@pytest.mark.parametrize(
    ("relpath", "bad_line", "expected"),
    [
        ("icartoonface_dettrain.csv", "a.jpg,1,2,3", "line 2.*expected 5 columns"),
        ("icartoonface_dettrain.csv", "a.jpg,5,2,3,9", "line 2.*x2"),
        ("icartoonface_rectrain_det.txt", "noidentity.jpg\t1\t2\t3\t4", "line 2.*identity"),
        ("icartoonface_rectest_det.txt", "a.jpg 1 2 x 4", "line 2.*'x2'.*not a number"),
        ("hidden/personai_icartoonface_detval.csv", "a.jpg,1,2,3,4,cat", "line 2.*'face'"),
        ("hidden/icartoonface_verification_pairs.txt", "a.jpg b.jpg 1 0", "line 2.*not in the test list"),
    ],
)
def test_a_malformed_line_is_a_dataset_error_naming_file_and_line(copy_root, relpath, bad_line, expected):
    path = copy_root / relpath
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], bad_line, *lines[1:]]) + "\n")
    with pytest.raises(DatasetError, match=expected) as info:
        getattr(Layout(copy_root), READERS[relpath])()
    assert path.name in str(info.value)


def test_check_passes_without_hidden_when_asked(copy_root):
    shutil.rmtree(copy_root / "hidden")
    Layout(copy_root).check(hidden=False)
    with pytest.raises(DatasetError, match="hidden"):
        Layout(copy_root).check()


def test_an_unknown_split_is_refused(tiny_root):
    with pytest.raises(DatasetError, match="unknown split 'val'"):
        Layout(tiny_root).image_path("val", "x.jpg")


def test_detection_test_images_of_a_missing_folder_is_an_error(tmp_path):
    with pytest.raises(DatasetError, match="icartoonface_dettest"):
        Layout(tmp_path).detection_test_images()


# ------------------------------------------------------------------------------------------------- crops


@pytest.mark.parametrize("rate", [0.0, 0.25, 0.5, 1.0])
def test_the_enlarge_rate_scales_the_box_by_one_plus_r_about_its_centre(rate):
    x1, y1, x2, y2 = enlarged_box((10, 20, 50, 100), rate)
    assert (x2 - x1, y2 - y1) == pytest.approx(((1 + rate) * 40, (1 + rate) * 80))
    assert ((x1 + x2) / 2, (y1 + y2) / 2) == pytest.approx((30, 60))


def test_rate_one_doubles_the_box_as_the_papers_do():
    assert enlarged_box((0, 0, 10, 20), 1.0) == pytest.approx((-5, -10, 15, 30))


@pytest.mark.parametrize(
    ("box", "rate", "message"), [((0, 0, 10, 10), -0.1, "enlarge rate"), ((10, 0, 5, 10), 1.0, "x2 < x1")]
)
def test_a_bad_box_or_rate_is_refused(box, rate, message):
    with pytest.raises(ValueError, match=message):
        enlarged_box(box, rate)


def test_crop_outside_the_image_is_black():
    image = Image.new("RGB", (20, 20), (200, 100, 50))
    crop = np.asarray(crop_box(image, (0, 0, 9, 9), 1.0))
    assert crop.shape == (20, 18, 3) or crop.shape[0] >= 18
    assert (crop[0, 0] == 0).all() and (crop[-1, -1] == (200, 100, 50)).all()


def test_crop_face_has_the_requested_size():
    image = Image.new("RGB", (64, 48), (1, 2, 3))
    face = crop_face(image, (10, 10, 30, 40), 0.5, size=32)
    assert face.shape == (32, 32, 3) and face.dtype == np.uint8


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such image"),
        (b"not a jpeg", "not a readable image"),
        (b"\xff\xd8\xff\xe0truncated", "not a readable image"),
    ],
)
def test_load_rgb_names_a_missing_or_broken_image(tmp_path, content, message):
    path = tmp_path / "x.jpg"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DatasetError, match=message) as info:
        load_rgb(path)
    assert "x.jpg" in str(info.value)


def test_load_rgb_converts_to_rgb(tmp_path):
    path = tmp_path / "gray.png"
    Image.new("L", (5, 4), 7).save(path)
    image = load_rgb(path)
    assert image.mode == "RGB" and image.size == (5, 4)


def test_the_layout_reads_the_real_2020_detection_labels(tmp_path):
    """The real-data readers on the one real file we have: the official test GT (10,000 images, 18,647 boxes)."""
    from pathlib import Path

    real = Path(__file__).resolve().parents[3] / "shared" / "data" / "icartoonface" / "personai_icartoonface_detval.csv"
    if not real.exists():
        pytest.skip(f"the real detection labels are not beside the repository ({real})")
    (tmp_path / "hidden").mkdir()
    (tmp_path / "hidden" / real.name).symlink_to(real)
    labels = Layout(tmp_path).detection_labels()
    assert (labels.num_images, len(labels.boxes)) == (10_000, 18_647)
