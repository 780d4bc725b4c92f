"""The packed cache equals the on-the-fly crops; the torch datasets yield the documented shapes and labels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from facedata.layout import DatasetError, Layout
from facedata.pack import PackedFaces, pack_faces
from facedata.torchdata import (
    DetectionTestSet,
    DetectionTrainSet,
    PackedFaceSet,
    RecognitionTestSet,
    RecognitionTrainSet,
    detection_collate,
)


@pytest.mark.parametrize("split", ["rectrain", "rectest", "auxiliary"])
def test_the_pack_holds_the_same_pixels_as_the_crops(tiny_root, tmp_path, split):
    faces = pack_faces(tiny_root, split, tmp_path / split, size=48, enlarge_rate=0.5)
    dataset = (
        RecognitionTestSet(tiny_root, 48, 0.5)
        if split == "rectest"
        else RecognitionTrainSet(tiny_root, 48, 0.5, split=split)
    )
    assert len(faces) == len(dataset) and faces.images.shape == (len(dataset), 48, 48, 3)
    for i in (0, len(dataset) - 1):
        expected = (dataset[i][0] * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        np.testing.assert_array_equal(faces.images[i], expected)
    if split != "rectest":
        np.testing.assert_array_equal(faces.labels, dataset.labels)
        assert faces.identities == dataset.identities
    else:
        assert (faces.labels == -1).all(), "test identities are hidden: the pack does not know them"


def test_packing_with_two_workers_gives_the_same_array(tiny_root, tmp_path):
    one = pack_faces(tiny_root, "rectrain", tmp_path / "one", size=32, workers=1)
    two = pack_faces(tiny_root, "rectrain", tmp_path / "two", size=32, workers=2)
    np.testing.assert_array_equal(one.images, two.images)


def test_a_missing_pack_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetError, match="no finished pack"):
        PackedFaces(tmp_path / "nothing")


def test_a_pack_whose_array_does_not_match_its_index_is_refused(tiny_root, tmp_path):
    pack_faces(tiny_root, "auxiliary", tmp_path / "aux", size=16)
    np.save(tmp_path / "aux.npy", np.zeros((1, 16, 16, 3), np.uint8))
    with pytest.raises(DatasetError, match="does not match"):
        PackedFaces(tmp_path / "aux")


def test_packing_the_detection_split_is_refused(tiny_root, tmp_path):
    with pytest.raises(DatasetError, match="cannot pack split 'dettrain'"):
        pack_faces(tiny_root, "dettrain", tmp_path / "x")


def test_recognition_train_labels_number_identity_folders_in_sorted_order(tiny_root):
    dataset = RecognitionTrainSet(tiny_root, size=32)
    assert list(dataset.identities) == sorted(dataset.identities)
    listing = Layout(tiny_root).recognition_train()
    for i in (0, len(dataset) - 1):
        assert dataset.identities[dataset[i][1]] == listing.identities[i]
    image, label = dataset[0]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32 and 0 <= image.min() <= image.max() <= 1


def test_packed_face_set_batches_through_a_dataloader(tiny_root, tmp_path):
    pack_faces(tiny_root, "rectrain", tmp_path / "train", size=32)
    loader = DataLoader(PackedFaceSet(tmp_path / "train"), batch_size=8, shuffle=False)
    images, labels = next(iter(loader))
    assert images.shape == (8, 3, 32, 32) and labels.dtype == torch.int64


def test_recognition_test_set_rows_follow_the_test_list(tiny_root):
    dataset = RecognitionTestSet(tiny_root, size=24)
    assert dataset[5][1] == 5 and len(dataset) == len(Layout(tiny_root).recognition_test().names)


def test_detection_sets_yield_images_with_their_boxes(tiny_root):
    train = DetectionTrainSet(tiny_root)
    listing = Layout(tiny_root).detection_train()
    assert sum(len(train[i][1]) for i in range(len(train))) == len(listing.names)
    images, boxes = detection_collate([train[0], train[1]])
    assert images[0].shape[0] == 3 and boxes[0].shape[1] == 4 and boxes[0].dtype == torch.float32
    height, width = images[0].shape[1:]
    assert (boxes[0][:, 2] < width).all() and (boxes[0][:, 3] < height).all()
    test = DetectionTestSet(tiny_root)
    assert test[0][1] == Layout(tiny_root).detection_test_images()[0]
