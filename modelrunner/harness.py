"""The program that runs inside the sandbox: load a team's model archive, run it on the hidden test images, write the
predictions in the official format, time it on synthetic 1920x1080 frames, and hand both back on one file
descriptor. arena never imports this module (it imports torch): its runner starts it as `python -m
modelrunner.harness` inside bubblewrap.

    python -m modelrunner.harness --task detection --model /model --images /images --list /input/list.txt \
        --result-fd 3 [--speed-frames 20] [--device cpu]

The result stream is one JSON line {"files": {name: nbytes}, "error": null | message} followed by the files' bytes
in that order. The model runs in this process, so it can write anything there: the runner trusts nothing it reads
(its size is capped, the predictions go through the scorer's own validation).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import platform
import resource
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

from scorer.archive import MANIFEST, parse_manifest

SPEED_FRAME = (1080, 1920)  # H, W of the 2020 speed test's images
FRAME_POOL = 8
PREDICTIONS = {"detection": "predictions.csv", "recognition": "features.bin"}


class ModelError(RuntimeError):
    """The model broke the interface (wrong output type or shape): the message says how."""


def load_model(folder: Path, device: str):
    """(callable on a batch, manifest): `detect(list of uint8 HxWx3) -> list of (K, 5)` or
    `embed(uint8 (N, S, S, 3)) -> (N, D)`, whatever the archive's kind."""
    manifest = parse_manifest((folder / MANIFEST).read_bytes())
    if manifest.kind == "torchscript":
        import torch

        model = torch.jit.load(str(folder / manifest.entry), map_location=device).eval()

        def to_tensor(array: np.ndarray):
            return torch.from_numpy(np.ascontiguousarray(array)).to(device).permute(0, 3, 1, 2).float().div_(255)

        if manifest.task == "detection":

            def run(images):
                with torch.inference_mode():
                    return [model(to_tensor(image[None])).float().cpu().numpy() for image in images]

        else:

            def run(crops):
                with torch.inference_mode():
                    return model(to_tensor(crops)).float().cpu().numpy()

        return run, manifest
    os.environ["ARENA_DEVICE"] = device  # where a module-kind model should put itself
    sys.path.insert(0, str(folder))  # the archive's own modules import one another
    spec = importlib.util.spec_from_file_location("team_model", folder / manifest.entry)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.load(str(folder))
    method = "predict" if manifest.task == "detection" else "embed"
    if not callable(getattr(model, method, None)):
        raise ModelError(f"load() returned {type(model).__name__}, which has no {method}() method")
    return getattr(model, method), manifest


def _boxes(output, image_name: str) -> np.ndarray:
    array = np.asarray(output, dtype=np.float64)
    if array.size == 0:
        return np.zeros((0, 5))
    if array.ndim != 2 or array.shape[1] != 5:
        raise ModelError(f"predict() returned shape {array.shape} for {image_name}; expected (K, 5)")
    return array


def run_detection(run, manifest, images_dir: Path, names: list[str]) -> bytes:
    from facedata.crops import load_rgb
    from scorer.formats import Detections, write_detection_submission

    index, boxes, scores = [], [], []
    for start in range(0, len(names), manifest.batch_size):
        batch = names[start : start + manifest.batch_size]
        outputs = run([np.asarray(load_rgb(images_dir / name)) for name in batch])
        if len(outputs) != len(batch):
            raise ModelError(f"predict() returned {len(outputs)} results for {len(batch)} images")
        for offset, (name, output) in enumerate(zip(batch, outputs, strict=True)):
            rows = _boxes(output, name)
            index.append(np.full(len(rows), start + offset, dtype=np.int64))
            boxes.append(rows[:, :4])
            scores.append(rows[:, 4])
    if not names:  # an empty test list (the speed test alone)
        index, boxes, scores = [np.zeros(0, dtype=np.int64)], [np.zeros((0, 4))], [np.zeros(0)]
    detections = Detections(np.concatenate(index), np.concatenate(boxes), np.concatenate(scores))
    with _scratch(".csv") as path:
        write_detection_submission(path, names, detections)
        return path.read_bytes()


def run_recognition(run, manifest, images_dir: Path, rows: list[tuple[str, list[float]]]) -> bytes:
    from facedata.crops import crop_face, load_rgb
    from scorer.formats import write_features

    enlarge = float(manifest.extra.get("enlarge_rate", 0.0))
    features = []
    for start in range(0, len(rows), manifest.batch_size):
        batch = rows[start : start + manifest.batch_size]
        crops = np.stack([crop_face(load_rgb(images_dir / n), b, enlarge, manifest.input_size) for n, b in batch])
        out = np.asarray(run(crops), dtype=np.float64)
        if out.ndim != 2 or out.shape[0] != len(batch):
            raise ModelError(f"embed() returned shape {out.shape} for {len(batch)} crops; expected (N, D)")
        features.append(out)
    with _scratch(".bin") as path:
        write_features(path, np.concatenate(features) if features else np.zeros((0, 1)))
        return path.read_bytes()


@contextlib.contextmanager
def _scratch(suffix: str):
    """A file of the writable /tmp for the official writers (which write paths), removed afterwards."""
    handle, name = tempfile.mkstemp(suffix=suffix)
    os.close(handle)
    try:
        yield Path(name)
    finally:
        os.unlink(name)


def synthetic_frames(count: int, seed: int = 2020) -> list[np.ndarray]:
    """Fixed 1920x1080 frames: smooth colour fields with bright discs, the same bytes on every machine."""
    rng = np.random.default_rng(seed)
    h, w = SPEED_FRAME
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    frames = []
    for _ in range(count):
        base = rng.uniform(0, 255, size=3).astype(np.float32)
        frame = base + 60 * np.sin(xx[..., None] / rng.uniform(50, 300) + rng.uniform(0, 6, size=3))
        for _ in range(8):
            cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(30, 200)
            frame[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = rng.uniform(0, 255, size=3)
        frames.append(np.clip(frame, 0, 255).astype(np.uint8))
    return frames


def speed_test(run, manifest, frames: int, device: str, model_bytes: int) -> dict:
    """Images per second and ms per image over `frames` synthetic 1920x1080 frames (one warm-up call first),
    cycling through a fixed pool of FRAME_POOL distinct frames so that 2,000 frames (the 2020 test) need no more
    memory than 8; recognition models embed one input_size crop of each frame's centre instead."""
    pool = synthetic_frames(min(frames, FRAME_POOL))
    if manifest.task == "recognition":
        s = manifest.input_size
        top, left = (SPEED_FRAME[0] - s) // 2, (SPEED_FRAME[1] - s) // 2
        pool = [np.ascontiguousarray(f[top : top + s, left : left + s]) for f in pool]
        call = lambda batch: run(np.stack(batch))  # noqa: E731
    else:
        call = run
    batches = [
        [pool[i % len(pool)] for i in range(start, min(start + manifest.batch_size, frames))]
        for start in range(0, frames, manifest.batch_size)
    ]
    call(batches[0])  # warm-up: lazy initialisation, allocator, kernels
    cuda = device.startswith("cuda")
    if cuda:
        import torch

        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    for batch in batches:
        call(batch)
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    result = {
        "frames": frames,
        "frame_size": [SPEED_FRAME[1], SPEED_FRAME[0]],
        "seconds": seconds,
        "images_per_second": frames / seconds if seconds > 0 else None,
        "ms_per_image": 1000 * seconds / frames,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "model_bytes": model_bytes,
        "hardware": hardware(device),
    }
    if cuda:
        result["peak_gpu_bytes"] = int(torch.cuda.max_memory_allocated())
    return result


def hardware(device: str) -> dict:
    info = {"device": device, "machine": platform.machine(), "cpu_count": os.cpu_count()}
    info["python"] = platform.python_version()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        if device.startswith("cuda"):
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return info


def _emit(fd: int, files: dict[str, bytes], error: str | None) -> None:
    header = json.dumps({"files": {name: len(data) for name, data in files.items()}, "error": error}) + "\n"
    with os.fdopen(fd, "wb", closefd=True) as out:
        out.write(header.encode())
        for data in files.values():
            out.write(data)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", choices=sorted(PREDICTIONS), required=True)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--images", type=Path, required=True)
    parser.add_argument("--list", type=Path, required=True)
    parser.add_argument("--result-fd", type=int, required=True)
    parser.add_argument("--speed-frames", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model-bytes", type=int, default=0)
    args = parser.parse_args(argv)
    files: dict[str, bytes] = {}
    try:
        run, manifest = load_model(args.model, args.device)
        if manifest.task != args.task:
            raise ModelError(f"the archive is a {manifest.task} model, the track is {args.task}")
        lines = [line.split() for line in args.list.read_text().splitlines() if line.strip()]
        if args.task == "detection":
            files[PREDICTIONS["detection"]] = run_detection(run, manifest, args.images, [r[0] for r in lines])
        else:
            rows = [(r[0], [float(v) for v in r[1:5]]) for r in lines]
            files[PREDICTIONS["recognition"]] = run_recognition(run, manifest, args.images, rows)
        if args.speed_frames:
            speed = speed_test(run, manifest, args.speed_frames, args.device, args.model_bytes)
            files["speed.json"] = json.dumps(speed).encode()
    except Exception as exc:  # the model's own failure: reported as its message, with the traceback in the log
        traceback.print_exc()
        _emit(args.result_fd, {}, f"{type(exc).__name__}: {exc}"[:1000])
        return 1
    _emit(args.result_fd, files, None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
