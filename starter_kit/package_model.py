"""Package a checkpoint as a model archive for the final stage, where the platform re-runs it in a sandbox on the
hidden test images and times it (the archive's format: scorer/archive.py and starter_kit/README.md).

    python -m starter_kit.package_model --checkpoint runs/arcface/checkpoint.pt --out model.zip
    python -m starter_kit.package_model --checkpoint runs/det_r18/best.pt --out detector.zip

- a recognition checkpoint of `starter_kit.train` becomes a TorchScript archive: the embedder traced with the
  ImageNet normalisation, the mirror-image sum and the L2 normalisation of `starter_kit.predict` inside, so that
  the platform's crops (the run's size and enlarge rate) give the features `predict` writes;
- a detection checkpoint of `starter_kit.train_detection` becomes a module archive: the checkpoint and a small
  `model.py` that rebuilds the detector with `baselines.detection` (which the runner offers as icartoonface-arena)
  and calls the same `detect` as `starter_kit.predict_detection`.
The archive is checked with the platform's own validation before the command reports success.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import io
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from scorer.archive import ArchiveError, Manifest, validate_archive, write_archive

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

DETECTOR_MODULE = '''"""A baselines/detection detector packaged by starter_kit.package_model.

load(folder).predict(images): one (K, 5) array of x1, y1, x2, y2, score per uint8 (H, W, 3) image.
"""

import os
from pathlib import Path

import numpy as np
import torch

from baselines.detection.config import DetectionConfig, make_config
from baselines.detection.infer import detect
from baselines.detection.model import build_detector


class Detector:
    def __init__(self, folder):
        state = torch.load(Path(folder) / "detector.pt", map_location="cpu", weights_only=True)
        cfg = make_config(state["config"], source="detector.pt config")
        self.cfg = DetectionConfig(**{**cfg.to_dict(), "pretrained": None})
        self.model = build_detector(self.cfg)
        self.model.load_state_dict(state["model"])
        self.model.to(os.environ.get("ARENA_DEVICE", "cpu")).eval()

    @torch.inference_mode()
    def predict(self, images):
        found = detect(
            self.model,
            list(images),
            max_size=self.cfg.test_max_size,
            score_threshold=self.cfg.score_threshold,
            max_detections=self.cfg.max_detections,
            flip_test=self.cfg.flip_test,
            bf16=self.cfg.bf16,
        )
        return [np.concatenate([d.boxes, d.scores[:, None]], axis=1) for d in found]


def load(folder):
    return Detector(folder)
'''


class PackagedEmbedder(nn.Module):
    """float (N, 3, S, S) in [0, 1] -> L2-normalised (N, D): predict's normalisation, mirror sum and norm."""

    def __init__(self, embedder: nn.Module, flip: bool = True):
        super().__init__()
        self.embedder, self.flip = embedder, flip
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        x = (crops - self.mean) / self.std
        emb = self.embedder(x).float()
        if self.flip:
            emb = emb + self.embedder(torch.flip(x, dims=[3])).float()
        return F.normalize(emb, dim=1)


def _arena_version() -> str:
    try:
        return importlib.metadata.version("icartoonface-arena")
    except importlib.metadata.PackageNotFoundError:
        return "0.1.0"


def _torch_requirement() -> str:
    return f"torch=={torch.__version__.split('+')[0]}"


def package_recognition(checkpoint: Path, out: Path, *, flip: bool = True) -> Manifest:
    from starter_kit.predict import load_embedder

    embedder, config = load_embedder(checkpoint, torch.device("cpu"))
    size = int(config["data"]["image_size"])
    model = PackagedEmbedder(embedder.eval(), flip).eval()
    with torch.no_grad():
        traced = torch.jit.trace(model, torch.rand(2, 3, size, size))
    buffer = io.BytesIO()
    torch.jit.save(traced, buffer)
    manifest = Manifest(
        task="recognition",
        kind="torchscript",
        entry="embedder.ts",
        requirements=(_torch_requirement(),),
        input_size=size,
        batch_size=64,
        extra={"enlarge_rate": float(config["data"]["enlarge_rate"]), "source": "starter_kit.train"},
    )
    write_archive(out, manifest, {"embedder.ts": buffer.getvalue()})
    return manifest


def package_detection(checkpoint: Path, out: Path) -> Manifest:
    manifest = Manifest(
        task="detection",
        kind="module",
        entry="model.py",
        requirements=(_torch_requirement(), f"icartoonface-arena=={_arena_version()}", "numpy"),
        batch_size=1,
        extra={"source": "starter_kit.train_detection"},
    )
    write_archive(out, manifest, {"model.py": DETECTOR_MODULE, "detector.pt": checkpoint})
    return manifest


def task_of(checkpoint: Path) -> str:
    """recognition (starter_kit.train: 'embedder.*' weights) or detection (train_detection: a DetectionConfig)."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise ValueError(f"{checkpoint}: not a checkpoint of starter_kit.train or starter_kit.train_detection")
    if any(key.startswith("embedder.") for key in state["model"]):
        return "recognition"
    return "detection"


def package(checkpoint: str | Path, out: str | Path, *, flip: bool = True) -> Manifest:
    """Write the archive of checkpoint to out and check it as the platform will; returns its manifest."""
    checkpoint, out = Path(checkpoint), Path(out)
    task = task_of(checkpoint)
    if task == "recognition":
        package_recognition(checkpoint, out, flip=flip)
    else:
        package_detection(checkpoint, out)
    offers = {"torch": torch.__version__.split("+")[0], "numpy": importlib.metadata.version("numpy")}
    offers["icartoonface-arena"] = _arena_version()
    return validate_archive(out, task, offers)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="checkpoint.pt of starter_kit.train or train_detection")
    parser.add_argument("--out", required=True, help="the archive to write (.zip)")
    parser.add_argument("--no-flip", action="store_true", help="recognition: no mirror-image sum")
    args = parser.parse_args(argv)
    try:
        manifest = package(args.checkpoint, args.out, flip=not args.no_flip)
    except (ArchiveError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    size = Path(args.out).stat().st_size
    print(f"{args.out}: {manifest.task} model ({manifest.kind}, {size:,} bytes), requirements {manifest.requirements}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
