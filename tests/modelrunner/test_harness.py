"""The in-sandbox harness's own parts (modelrunner/harness.py), outside any sandbox: the speed test's frames and
batches, and the check of a model's outputs."""

from __future__ import annotations

import numpy as np
import pytest

from modelrunner import harness
from scorer.archive import Manifest


def test_the_speed_test_frames_are_fixed_1920x1080_scenes():
    first, again = harness.synthetic_frames(2), harness.synthetic_frames(2)
    assert [f.shape for f in first] == [(1080, 1920, 3)] * 2 and all(f.dtype == np.uint8 for f in first)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(first[0], first[1])


@pytest.mark.parametrize("frames, batch", [(3, 1), (10, 4)])
def test_the_speed_test_runs_every_frame_once_after_one_warm_up_batch(frames, batch):
    seen = []

    def predict(images):
        seen.append(len(images))
        return [np.zeros((0, 5)) for _ in images]

    manifest = Manifest(task="detection", kind="module", entry="model.py", batch_size=batch)
    result = harness.speed_test(predict, manifest, frames, "cpu", model_bytes=123)
    assert sum(seen[1:]) == frames and seen[0] == min(batch, frames)
    assert result["frames"] == frames and result["model_bytes"] == 123
    assert result["ms_per_image"] == pytest.approx(1000 * result["seconds"] / frames)
    assert result["hardware"]["device"] == "cpu"


def test_a_recognition_speed_test_embeds_crops_of_the_declared_size():
    shapes = []

    def embed(crops):
        shapes.append(crops.shape)
        return np.ones((len(crops), 8))

    manifest = Manifest(task="recognition", kind="module", entry="model.py", input_size=32, batch_size=2)
    harness.speed_test(embed, manifest, 3, "cpu", model_bytes=1)
    assert set(shapes) <= {(2, 32, 32, 3), (1, 32, 32, 3)}


@pytest.mark.parametrize("output", [np.zeros((2, 4)), np.zeros(5), [[1, 2, 3]]])
def test_boxes_of_the_wrong_shape_are_the_models_error(output):
    with pytest.raises(harness.ModelError, match=r"expected \(K, 5\)"):
        harness._boxes(output, "a.jpg")
