"""The CUDA-only paths of the detection kit: bf16 autocast, channels_last and torch.compile in training, bf16 in
inference. Skipped on machines without a GPU (run them on the device: `pytest tests/baselines_detection -m gpu`)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (bf16/compile run only on CUDA)"),
]


@pytest.mark.parametrize("compile_model", [False, True])
def test_training_with_bf16_channels_last_and_compile_gives_finite_losses(scene_dataset, tmp_path, compile_model):
    from baselines.detection.config import load_config
    from baselines.detection.data import read_train_items
    from starter_kit.train_detection import train

    items = read_train_items(scene_dataset)
    cfg = load_config(
        "tiny_cpu", ["bf16=true", "channels_last=true", f"compile={str(compile_model).lower()}", "epochs=2", "repeat=4"]
    )
    metrics = train(cfg, tmp_path / "run", items, items[:2], progress=False)
    assert np.isfinite(metrics["loss_total"]) and 0 <= metrics["val_ap50"] <= 1
    state = torch.load(tmp_path / "run" / "best.pt", weights_only=True)
    assert all(v.device.type == "cuda" for v in state["model"].values())


def test_bf16_inference_finds_the_same_peaks_as_float32():
    from baselines.detection.config import DetectionConfig
    from baselines.detection.infer import detect
    from baselines.detection.model import build_detector

    torch.manual_seed(0)
    model = build_detector(DetectionConfig(backbone="resnet18")).cuda().eval()
    model = model.to(memory_format=torch.channels_last)
    images = [np.random.default_rng(0).integers(0, 255, (270, 480, 3), dtype=np.uint8)]
    fp32 = detect(model, images, score_threshold=0.0, max_detections=20)[0]
    bf16 = detect(model, images, score_threshold=0.0, max_detections=20, bf16=True, channels_last=True)[0]
    assert len(fp32.scores) == len(bf16.scores) == 20
    assert np.allclose(fp32.scores, bf16.scores, atol=0.05)
