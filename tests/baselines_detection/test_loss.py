"""The CenterNet loss (baselines.detection.loss): finite for any logits, the hand-computed focal value, masking."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from baselines.detection.loss import centernet_loss, focal_loss, gather_at
from baselines.detection.targets import encode


def _batch(boxes_per_image, size=64):
    targets = [
        encode(np.asarray(b, dtype=np.float64).reshape(-1, 4), (size, size), max_objects=8) for b in boxes_per_image
    ]
    return {
        k: torch.stack([t.as_tensors()[k] for t in targets]) for k in ("heatmap", "index", "size", "offset", "mask")
    }


def _outputs(batch_size, size=64, fill=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    h = size // 4
    maps = {
        "heatmap": torch.randn(batch_size, 1, h, h, generator=g),
        "size": torch.randn(batch_size, 2, h, h, generator=g),
        "offset": torch.randn(batch_size, 2, h, h, generator=g),
    }
    if fill is not None:
        maps["heatmap"].fill_(fill)
    return maps


def test_focal_loss_matches_the_hand_computed_value():
    # one centre (target 1) and one far negative (target 0), both at logit 0 (p = 0.5):
    # positive: -log(0.5) * (1 - 0.5)^2; negative: -log(0.5) * 0.5^2 * (1 - 0)^4; divided by one centre
    logits = torch.zeros(1, 1, 1, 2)
    target = torch.tensor([[[[1.0, 0.0]]]])
    assert focal_loss(logits, target).item() == pytest.approx(2 * math.log(2) * 0.25, rel=1e-6)


def test_focal_loss_gives_a_near_target_negative_less_weight():
    logits = torch.zeros(1, 1, 1, 2)
    near = focal_loss(logits, torch.tensor([[[[1.0, 0.9]]]]))
    far = focal_loss(logits, torch.tensor([[[[1.0, 0.0]]]]))
    assert near < far


@pytest.mark.parametrize("fill", [None, 1e4, -1e4, 0.0])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_loss_is_finite_for_any_logits_and_dtype(fill, dtype):
    batch = _batch([[[5, 5, 30, 30], [40, 10, 60, 20]], [[0, 0, 63, 63]]])
    outputs = {k: v.to(dtype) for k, v in _outputs(2, fill=fill).items()}
    terms = centernet_loss(outputs, batch)
    for name, value in terms.as_floats().items():
        assert math.isfinite(value), name
    assert terms.total.item() == pytest.approx(terms.heatmap.item() + terms.size.item() + terms.offset.item(), rel=1e-5)


def test_loss_of_images_without_faces_is_finite_and_has_no_box_terms():
    terms = centernet_loss(_outputs(2), _batch([[], []]))
    assert math.isfinite(terms.total.item())
    assert terms.size.item() == 0 and terms.offset.item() == 0


def test_the_box_terms_vanish_when_the_prediction_equals_the_targets():
    batch = _batch([[[5, 5, 30, 30]], [[10, 20, 50, 40]]])
    outputs = _outputs(2)
    for name in ("size", "offset"):
        dense = torch.zeros_like(outputs[name]).view(2, 2, -1)
        dense.scatter_(2, batch["index"][:, None, :].expand(-1, 2, -1), batch[name].transpose(1, 2))
        outputs[name] = dense.view_as(outputs[name])
    terms = centernet_loss(outputs, batch)
    assert terms.size.item() == 0 and terms.offset.item() == 0


def test_gather_at_reads_the_flat_cell_of_each_object():
    maps = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).view(2, 3, 4, 5)
    index = torch.tensor([[0, 7], [19, 3]])
    picked = gather_at(maps, index)
    assert picked.shape == (2, 2, 3)
    assert picked[0, 1].tolist() == [maps[0, c, 1, 2].item() for c in range(3)]
    assert picked[1, 0].tolist() == [maps[1, c, 3, 4].item() for c in range(3)]
