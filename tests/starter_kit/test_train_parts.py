"""Pieces of train.py: the learning-rate schedule, model building from a config, the training step."""

from __future__ import annotations

import pytest
import torch

from baselines.backbones import build_backbone
from starter_kit.config import load_config
from starter_kit.train import DEFAULTS, OPEN_SECTIONS, build_train_model, lr_at, train_step

OPTIM = {"lr": 0.1, "epochs": 10, "milestones": [0.4, 0.6, 0.8], "lr_decay": 0.1, "warmup_epochs": 0.0}


@pytest.mark.parametrize(("progress", "expected"), [(0.0, 0.1), (3.99, 0.1), (4.0, 0.01), (6.5, 0.001), (9.9, 1e-4)])
def test_learning_rate_steps_down_tenfold_at_each_milestone_fraction(progress, expected):
    assert lr_at(progress, OPTIM) == pytest.approx(expected)


def test_warm_up_rises_linearly_to_the_base_rate():
    optim = OPTIM | {"warmup_epochs": 2.0}
    assert lr_at(0.5, optim) < lr_at(1.0, optim) < lr_at(1.99, optim) < 0.1
    assert lr_at(2.0, optim) == pytest.approx(0.1)


def _cfg(*overrides):
    return load_config(
        None, ["model.backbone=tiny_cnn", "model.embedding_dim=8", *overrides], defaults=DEFAULTS, open=OPEN_SECTIONS
    )


def test_pretrained_torchvision_weights_reach_the_backbone(tmp_path):
    source = build_backbone("tiny_cnn", num_classes=10)
    path = tmp_path / "tv.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}}, path)
    model = build_train_model(_cfg(f"model.pretrained={path}"), num_classes=3)
    assert torch.equal(model.embedder.backbone.stages[2][0].weight, source.stages[2][0].weight)


def test_init_from_copies_the_embedder_of_an_earlier_checkpoint(tmp_path):
    earlier = build_train_model(_cfg(), num_classes=5)
    path = tmp_path / "checkpoint.pt"
    torch.save({"model": earlier.state_dict()}, path)
    model = build_train_model(_cfg(f"model.init_from={path}"), num_classes=3)
    assert torch.equal(model.embedder.fc.weight, earlier.embedder.fc.weight)


@pytest.mark.slow
def test_a_training_step_lowers_the_loss_on_a_repeated_batch():
    torch.manual_seed(0)
    model = build_train_model(_cfg("loss.name=cosface", "loss.scale=16.0"), num_classes=4)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    images = torch.randint(0, 256, (8, 16, 16, 3), dtype=torch.uint8)
    labels, domains = torch.arange(8) % 4, torch.ones(8, dtype=torch.int64)
    losses = [
        float(
            train_step(
                model,
                optimizer,
                images,
                labels,
                domains,
                device=torch.device("cpu"),
                bf16=True,
                channels_last=False,
                augment_generator=None,
            )[0]
        )
        for _ in range(8)
    ]
    assert losses[-1] < losses[0]
