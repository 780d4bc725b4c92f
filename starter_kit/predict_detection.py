"""Turn a detection checkpoint into a valid submission CSV, checked with scorer's own reader.

    python -m starter_kit.predict_detection --checkpoint runs/det_r18/best.pt --data DIR --out submission.csv
    python -m starter_kit.predict_detection --checkpoint best.pt --images FOLDER --out sub.csv --flip-test \
        [--labels DIR/hidden/personai_icartoonface_detval.csv]

Rows are `image,x1,y1,x2,y2,face,score`, each image's rows by descending score, at most `--max-detections` per
image (the challenge's cap, default 100). The file is read back with `scorer.formats.read_detection_submission`
before the command reports success; with `--labels` it is also scored (ap50 and the COCO metrics, as JSON).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from baselines.detection.config import ConfigError, DetectionConfig, make_config
from baselines.detection.data import TEST_DIR, list_images, load_rgb
from baselines.detection.evaluate import detections_of
from baselines.detection.infer import detect
from baselines.detection.model import build_detector
from scorer.formats import (
    DEFAULT_MAX_BOXES_PER_IMAGE,
    DEFAULT_MAX_DETECTION_BYTES,
    Detections,
    FormatError,
    read_detection_labels,
    read_detection_submission,
    write_detection_submission,
)

BOX_DECIMALS = 1  # a tenth of a pixel: finer changes no IoU that matters
SCORE_DECIMALS = 6


def _row_bytes(name: str, box: np.ndarray, score: float) -> int:
    """The length of the row write_detection_submission writes (integers without '.0', else the shortest repr)."""
    coords = ",".join(str(int(v)) if float(v).is_integer() else repr(float(v)) for v in box)
    return len(f"{name},{coords},face,{float(score)!r}\n".encode())


def compact(detections: Detections, image_names: list[str], max_bytes: int | None) -> tuple[Detections, int]:
    """Round boxes to BOX_DECIMALS and scores to SCORE_DECIMALS, then, if the CSV would exceed max_bytes, drop the
    lowest-scoring rows of the whole file until it fits: the global ranking is what AP integrates, so the cut
    removes only the tail of the precision/recall curve. Returns (detections, rows dropped)."""
    boxes = np.round(detections.boxes, BOX_DECIMALS) + 0.0  # + 0.0: no '-0.0'
    scores = np.round(detections.scores, SCORE_DECIMALS)
    keep = np.ones(len(scores), dtype=bool)
    if max_bytes is not None and len(scores):
        sizes = np.array(
            [_row_bytes(image_names[i], b, sc) for i, b, sc in zip(detections.image_index, boxes, scores, strict=True)]
        )
        order = np.argsort(-scores, kind="stable")
        fits = np.cumsum(sizes[order]) <= max_bytes
        keep[:] = False
        keep[order[fits]] = True
    dropped = int((~keep).sum())
    return Detections(detections.image_index[keep], boxes[keep], scores[keep]), dropped


class CheckpointError(ValueError):
    """A checkpoint that is missing or not one of train_detection's."""


def load_detector(path: str | Path, device: torch.device, overrides: dict | None = None):
    """(model in eval mode on device, its DetectionConfig) from a train_detection checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a truncated or foreign file: torch raises many kinds
        raise CheckpointError(f"{path} is not a readable torch checkpoint ({type(error).__name__}: {error})") from error
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise CheckpointError(f"{path} is not a detection checkpoint (it needs 'model' and 'config')")
    cfg = make_config({**state["config"], **(overrides or {})}, source=f"{path} config")
    cfg = DetectionConfig(**{**cfg.to_dict(), "pretrained": None})  # the weights come from the checkpoint
    model = build_detector(cfg)
    model.load_state_dict(state["model"])
    return model.to(device).eval(), cfg


class _Images(Dataset):
    def __init__(self, paths: list[Path]):
        self.paths = paths

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[int, np.ndarray]:
        return index, load_rgb(self.paths[index])


def _collate(batch):
    return [i for i, _ in batch], [image for _, image in batch]


def predict(
    model, cfg: DetectionConfig, paths: list[Path], *, batch_size: int = 1, workers: int = 2, progress: bool = True
):
    """ImageDetections for every path, in order. Images of one batch are padded to a common size."""
    results = [None] * len(paths)
    loader = DataLoader(_Images(paths), batch_size=batch_size, num_workers=workers, collate_fn=_collate)
    for indices, images in tqdm(loader, desc="detect", disable=not progress, dynamic_ncols=True):
        found = detect(
            model,
            images,
            max_size=cfg.test_max_size,
            score_threshold=cfg.score_threshold,
            max_detections=cfg.max_detections,
            flip_test=cfg.flip_test,
            bf16=cfg.bf16,
            channels_last=cfg.channels_last and next(model.parameters()).is_cuda,
        )
        for i, detections in zip(indices, found, strict=True):
            results[i] = detections
    return results


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="best.pt or last.pt of a train_detection run")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help=f"dataset folder: predicts on DATA/{TEST_DIR}/")
    source.add_argument("--images", help="a folder of images to predict on")
    parser.add_argument("--out", required=True, help="the submission CSV to write")
    parser.add_argument("--flip-test", action="store_true", help="average with the horizontally flipped image")
    parser.add_argument("--max-size", type=int, default=None, help="resize the longer side to this (0 = original)")
    parser.add_argument(
        "--max-detections",
        type=int,
        default=DEFAULT_MAX_BOXES_PER_IMAGE,
        help="boxes per image at most (the challenge's cap)",
    )
    parser.add_argument("--score-threshold", type=float, default=None)
    parser.add_argument(
        "--max-bytes",
        type=int,
        default=DEFAULT_MAX_DETECTION_BYTES,
        help="keep the CSV under this size by dropping the lowest-scoring rows (the 2020 cap: 20 MiB)",
    )
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2, help="image decoding processes")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--labels", help="ground truth CSV: score the written file and print the metrics as JSON")
    parser.add_argument("--no-progress", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    overrides = {"max_detections": args.max_detections}
    if args.flip_test:
        overrides["flip_test"] = True
    if args.max_size is not None:
        overrides["test_max_size"] = args.max_size
    if args.score_threshold is not None:
        overrides["score_threshold"] = args.score_threshold
    try:
        if not 1 <= args.max_detections <= DEFAULT_MAX_BOXES_PER_IMAGE:
            raise ConfigError(
                f"--max-detections must be in 1..{DEFAULT_MAX_BOXES_PER_IMAGE}, not {args.max_detections}"
            )
        paths = list_images(args.images if args.images else Path(args.data) / TEST_DIR)
        if not paths:
            raise FileNotFoundError(f"no images in {args.images or Path(args.data) / TEST_DIR}")
        model, cfg = load_detector(args.checkpoint, torch.device(args.device), overrides)
    except (CheckpointError, ConfigError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    results = predict(
        model, cfg, paths, batch_size=args.batch_size, workers=args.workers, progress=not args.no_progress
    )
    seconds = time.perf_counter() - started
    names = [p.name for p in paths]
    detections, dropped = compact(detections_of(results), names, args.max_bytes)
    if dropped:
        print(f"dropped the {dropped} lowest-scoring boxes to stay under {args.max_bytes} bytes")
    write_detection_submission(args.out, names, detections)
    try:
        checked = read_detection_submission(
            args.out, names, max_boxes_per_image=args.max_detections, max_bytes=args.max_bytes
        )
    except FormatError as error:  # would be a bug of ours: say so plainly
        print(f"error: the written file does not pass scorer's reader: {error}", file=sys.stderr)
        return 1
    print(f"wrote {args.out}: {len(checked)} boxes on {len(names)} images ({len(names) / seconds:.1f} images/s)")
    if args.labels:
        from scorer.detection import evaluate_detection

        try:
            labels = read_detection_labels(args.labels)
            scored = read_detection_submission(
                args.out, labels.image_names, max_boxes_per_image=args.max_detections, max_bytes=args.max_bytes
            )
        except FormatError as error:
            print(f"error: cannot score against {args.labels}: {error}", file=sys.stderr)
            return 2
        metrics = evaluate_detection(labels, scored).to_dict()
        metrics.pop("pr_curve", None)
        print(json.dumps(metrics))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
