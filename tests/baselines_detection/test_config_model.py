"""Configs (baselines.detection.config) and the detector (model, features): every shipped config loads, bad keys
and values are clear errors, the detector works on the registry's backbones at stride 4."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from baselines.detection.config import CONFIG_DIR, ConfigError, DetectionConfig, load_config
from baselines.detection.features import build_backbone
from baselines.detection.infer import detect
from baselines.detection.model import build_detector


@pytest.mark.parametrize("path", sorted(CONFIG_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_config_loads_and_builds(path):
    cfg = load_config(path)
    assert isinstance(cfg, DetectionConfig)
    assert load_config(path.stem) == cfg  # by name too
    backbone = build_backbone(cfg.backbone)
    assert len(backbone.channels) == 4


def test_overrides_apply_in_order_and_parse_yaml_values():
    cfg = load_config("tiny_cpu", ["epochs=3", "flip=false", "lr=1e-3", "epochs=5", "pretrained=null"])
    assert (cfg.epochs, cfg.flip, cfg.lr, cfg.pretrained) == (5, False, 1e-3, None)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["epoch=3"], "unknown key"),
        (["epochs=three"], "'epochs' must be int"),
        (["flip=1"], "'flip' must be bool"),
        (["epochs=true"], "'epochs' must be int, not a boolean"),
        (["input_size=100"], "multiple of 32"),
        (["scale_min=2", "scale_max=1"], "scale_min <= scale_max"),
        (["stride=8"], "'stride' must be 4"),
        (["val_fraction=1.5"], "'val_fraction' must be in"),
        (["fit_crop=true"], "set 'test_max_size'"),
        (["face_crop=1.5"], "'face_crop' is a probability"),
        (["epochs"], "must read key=value"),
    ],
)
def test_a_bad_override_is_an_error_naming_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config("tiny_cpu", overrides)


@pytest.mark.parametrize(
    ("text", "message"),
    [("- a\n- b\n", "must be a mapping"), ("epochs: [1\n", "not valid YAML"), ("lr: fast\n", "'lr' must be float")],
)
def test_a_bad_config_file_is_an_error_naming_the_file(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_an_unknown_config_name_lists_the_shipped_ones():
    with pytest.raises(ConfigError, match="tiny_cpu"):
        load_config("no_such_config")


def test_an_unknown_backbone_lists_the_valid_names():
    with pytest.raises(KeyError, match="resnet50"):
        build_backbone("resnet5000")


def test_a_backbone_without_stride_4_to_32_maps_is_refused_with_the_reason():
    # the registry's tiny_cnn keeps full resolution in its first stage
    with pytest.raises(ValueError, match=r"strides \(1, 2, 4, 8\).*tiny_det"):
        build_backbone("tiny_cnn")


@pytest.mark.parametrize("backbone", ["tiny_det", "resnet18"])
def test_the_detector_outputs_maps_at_stride_4_for_non_square_inputs(backbone):
    model = build_detector(DetectionConfig(backbone=backbone, neck_channels=32, head_channels=16)).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, 96, 160))
    assert out["heatmap"].shape == (1, 1, 24, 40)
    assert out["size"].shape == out["offset"].shape == (1, 2, 24, 40)
    # the heatmap prior: every cell starts near probability 0.1 (focal-loss initialisation)
    assert 0.02 < out["heatmap"].sigmoid().mean().item() < 0.3


@pytest.mark.parametrize("max_size", [0, 64])
@pytest.mark.parametrize("flip_test", [False, True])
def test_detect_caps_sorts_and_keeps_boxes_inside_any_image_size(max_size, flip_test):
    torch.manual_seed(0)
    model = build_detector(DetectionConfig(backbone="tiny_det", neck_channels=16, head_channels=8)).eval()
    images = [np.zeros((50, 77, 3), np.uint8), np.full((130, 40, 3), 200, np.uint8)]
    found = detect(model, images, max_size=max_size, score_threshold=0.0, max_detections=7, flip_test=flip_test)
    for image, result in zip(images, found, strict=True):
        assert 1 <= len(result.scores) <= 7 and result.boxes.shape == (len(result.scores), 4)
        assert np.all(np.diff(result.scores) <= 0)
        height, width = image.shape[:2]
        assert np.all((result.boxes[:, 0] >= 0) & (result.boxes[:, 2] <= width - 1))
        assert np.all((result.boxes[:, 1] >= 0) & (result.boxes[:, 3] <= height - 1))
        assert np.all(result.boxes[:, 2:] >= result.boxes[:, :2])


def test_detect_in_channels_last_memory_format_gives_the_same_boxes():
    """The GPU path runs channels_last; decoding must not assume contiguous maps."""
    torch.manual_seed(0)
    model = build_detector(DetectionConfig(backbone="tiny_det", neck_channels=16, head_channels=8)).eval()
    images = [np.random.default_rng(1).integers(0, 255, (70, 90, 3), dtype=np.uint8)]
    plain = detect(model, images, score_threshold=0.0, max_detections=10)[0]
    model = model.to(memory_format=torch.channels_last)
    last = detect(model, images, score_threshold=0.0, max_detections=10, channels_last=True)[0]
    assert np.allclose(plain.boxes, last.boxes, atol=1e-3) and np.allclose(plain.scores, last.scores, atol=1e-5)
