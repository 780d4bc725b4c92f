"""Detection inference speed at 1920×1080, as the 2020 contest's final stage measured it (2,000 images).

    python benchmarks/detection_inference.py --config centernet_r18 [--checkpoint best.pt] --images 2000 \
        --size 1920x1080 --device cuda --json OUT.json

Side by side, in one run, on the same frames:
  model fp32 b1        forward + peak decoding (boxes to the host), frames already on the device, batch 1, fp32
  model bf16 b1        the same under bf16 autocast (CUDA only; skipped on CPU)
  model bf16 b8        batch 8
  model bf16 b1 flip   with the flip test (two forward passes)
  end to end           JPEG files → decode (loader workers) → device → detect → CSV rows (the predict script's path)
Each row: images/s, ms/image and the ratio to the first row. The speed does not depend on the weights (decoding
takes a fixed top 100 per image), so without --checkpoint an untrained model of the config is timed.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from baselines.detection.config import load_config  # noqa: E402
from baselines.detection.evaluate import detections_of  # noqa: E402
from baselines.detection.model import build_detector  # noqa: E402
from baselines.detection.targets import decode  # noqa: E402
from scorer.formats import write_detection_submission  # noqa: E402
from starter_kit.predict_detection import load_detector, predict  # noqa: E402


def _frame(args: tuple[int, int, int, str]) -> str:
    """A deterministic 1920×1080-like frame: smooth colour gradients and a few bright ellipses, as JPEG."""
    seed, width, height, path = args
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = rng.uniform(0, 255, 3)[:, None, None] * (0.5 + 0.5 * np.sin(x / rng.uniform(40, 200) + y / 300))
    image = np.clip(base.transpose(1, 2, 0) + rng.normal(0, 8, (height, width, 3)), 0, 255).astype(np.uint8)
    Image.fromarray(image).save(path, quality=90)
    return path


def write_frames(folder: Path, count: int, width: int, height: int, workers: int) -> list[Path]:
    paths = [str(folder / f"frame_{i:05d}.jpg") for i in range(count)]
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_frame, [(i, width, height, p) for i, p in enumerate(paths)], chunksize=8))
    return [Path(p) for p in paths]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_model(model, frames: torch.Tensor, device, *, batch: int, bf16: bool, flip: bool, count: int) -> float:
    """Seconds for `count` images through the model and the peak decoding (boxes copied to the host), the frames
    already on the device, zero-padded to multiples of 32. frames: uint8 (F, 3, H, W), cycled."""
    height, width = frames.shape[-2:]
    padded = torch.zeros(len(frames), 3, -(-height // 32) * 32, -(-width // 32) * 32, dtype=torch.uint8)
    padded[:, :, :height, :width] = frames
    x = padded.to(device).float().div_(255)
    if device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    batches = [x[(k * batch) % len(x) :][:batch] for k in range(-(-count // batch))]

    def run(chunks) -> None:
        for chunk in chunks:
            with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                out = model(chunk)
                heatmap = out["heatmap"].float().sigmoid()
                size = out["size"].float()
                if flip:
                    flipped = model(chunk.flip(3))
                    heatmap = (heatmap + flipped["heatmap"].float().sigmoid().flip(3)) / 2
                    size = (size + flipped["size"].float().flip(3)) / 2
            boxes, scores = decode(heatmap, size, out["offset"].float(), stride=model.stride, top_k=100)
            boxes.cpu(), scores.cpu()

    run(batches[:3])  # warm-up (cudnn autotuning, allocator)
    _sync(device)
    started = time.perf_counter()
    run(batches)
    _sync(device)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="centernet_r18")
    parser.add_argument("--checkpoint", help="a train_detection checkpoint (its config wins over --config)")
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--size", default="1920x1080", help="WIDTHxHEIGHT")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--workers", type=int, default=8, help="processes writing and decoding JPEGs")
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = True
    if args.checkpoint:
        model, cfg = load_detector(args.checkpoint, device)
    else:
        cfg = load_config(args.config)
        model = build_detector(cfg).to(device).eval()
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    print(
        f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else platform.processor()})"
        f", torch {torch.__version__}, backbone {cfg.backbone}, {args.images} images at {width}x{height}"
    )

    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        paths = write_frames(Path(tmp), args.images, width, height, args.workers)
        print(f"wrote {len(paths)} JPEG frames in {time.perf_counter() - started:.1f} s")
        frames = torch.stack(
            [
                torch.from_numpy(np.array(Image.open(p).convert("RGB"))).permute(2, 0, 1)
                for p in paths[: min(16, len(paths))]
            ]
        )
        cases = [
            ("model fp32 b1", 1, False, False),
            ("model bf16 b1", 1, True, False),
            ("model bf16 b8", 8, True, False),
            ("model bf16 b1 flip", 1, True, True),
        ]
        for name, batch, bf16, flip in cases:
            if bf16 and device.type != "cuda":
                continue
            seconds = time_model(model, frames, device, batch=batch, bf16=bf16, flip=flip, count=args.images)
            rows.append({"case": name, "images": len(range(0, args.images, batch)) * batch, "seconds": seconds})
        run_cfg = cfg.__class__(**{**cfg.to_dict(), "bf16": device.type == "cuda", "flip_test": False})
        predict(model, run_cfg, paths[: min(8, len(paths))], workers=0, progress=False)  # warm-up
        _sync(device)
        started = time.perf_counter()
        results = predict(model, run_cfg, paths, batch_size=1, workers=args.workers, progress=False)
        write_detection_submission(Path(tmp) / "submission.csv", [p.name for p in paths], detections_of(results))
        _sync(device)
        rows.append(
            {"case": "end to end (JPEG → CSV)", "images": args.images, "seconds": time.perf_counter() - started}
        )

    first = rows[0]["images"] / rows[0]["seconds"]
    print(f"\n| case | images/s | ms/image | ratio to '{rows[0]['case']}' |\n|---|---:|---:|---:|")
    for row in rows:
        row["images_per_s"] = row["images"] / row["seconds"]
        row["ms_per_image"] = 1000 * row["seconds"] / row["images"]
        row["ratio"] = row["images_per_s"] / first
        print(f"| {row['case']} | {row['images_per_s']:.1f} | {row['ms_per_image']:.2f} | {row['ratio']:.2f} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"device": str(device), "size": [width, height], "rows": rows}, indent=1))
    return rows


if __name__ == "__main__":
    main()
