"""The final stage's speed test, inside the bubblewrap sandbox and outside it, side by side (BENCHMARKS.md).

    python benchmarks/final_stage.py --config centernet_r18 --frames 20 --repeats 2 [--device cuda] [--json OUT]

A detector of baselines/detection (untrained: the speed does not depend on the weights) is packaged by
`starter_kit.package_model` exactly as a finalist's archive would be, then the in-sandbox harness
(`modelrunner.harness`) times it on fixed synthetic 1920x1080 frames, alternately in the sandbox
(`arena.sandbox.bwrap`, the limits of a real run) and as a plain process with the same limits, so that the
difference is the sandbox's own cost. Each row: images/s, ms/image, peak memory, the whole run's wall time
(start-up, model load and warm-up included) and the hardware the harness saw.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "platform"))

from arena.sandbox import bwrap  # noqa: E402

from baselines.detection.config import load_config  # noqa: E402
from baselines.detection.model import build_detector  # noqa: E402
from scorer.archive import unpack  # noqa: E402
from starter_kit import package_model  # noqa: E402
from starter_kit.train_detection import save_checkpoint  # noqa: E402


def _harness(model: Path, inputs: Path, frames: int, device: str, size: int, root: Path | None) -> list[str]:
    """The harness's argv; root: the paths as the sandbox sees them (None: the host's)."""
    where = (lambda p, inside: inside) if root else (lambda p, inside: str(p))
    return [
        sys.executable,
        "-m",
        "modelrunner.harness",
        "--task",
        "detection",
        "--model",
        where(model, "/model"),
        "--images",
        where(inputs, "/images"),
        "--list",
        where(inputs / "list.txt", "/input/list.txt"),
        "--result-fd",
        "{fd}",
        "--speed-frames",
        str(frames),
        "--device",
        device,
        "--model-bytes",
        str(size),
    ]


def _speed(outcome: bwrap.Outcome) -> dict:
    header, _, body = outcome.result.partition(b"\n")
    meta = json.loads(header)
    if meta.get("error"):
        raise RuntimeError(f"{meta['error']}\n{outcome.log_tail}")
    offset = 0
    for name, size in meta["files"].items():
        if name == "speed.json":
            return json.loads(body[offset : offset + size])
        offset += size
    raise RuntimeError("no speed.json")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="centernet_r18")
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", help="write the rows here too")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="final-stage-bench-"))
    cfg = load_config(args.config)
    torch.manual_seed(0)
    save_checkpoint(work / "best.pt", build_detector(cfg), cfg, epoch=0, ap50=None)
    archive = work / "model.zip"
    package_model.package(work / "best.pt", archive)
    model, inputs = work / "model", work / "input"
    model.mkdir()
    inputs.mkdir()
    unpack(archive, model)
    (inputs / "list.txt").write_text("")
    for path in [work, *work.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    gpu = args.device.startswith("cuda")
    limits = bwrap.Limits(wall_seconds=3600, memory_bytes=None if gpu else 16 * 2**30, threads=args.threads)
    packages = ("modelrunner", "scorer", "facedata", "baselines")
    code = [bwrap.Mount(ROOT / name, f"/opt/arena-code/{name}") for name in packages]
    mounts = [*code, bwrap.Mount(model, "/model"), bwrap.Mount(inputs, "/input"), bwrap.Mount(inputs, "/images")]
    size = archive.stat().st_size
    sandboxed = bwrap.command(
        _harness(model, inputs, args.frames, args.device, size, ROOT),
        mounts,
        limits,
        uid=65534,
        gpu=gpu,
        pythonpath="/opt/arena-code",
    )
    plain = _harness(model, inputs, args.frames, args.device, size, None)
    # the plain process sees what the sandbox's environment sets (the sandbox clears everything else)
    os.environ.update(OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads), PYTHONPATH=str(ROOT))
    rows = []
    for repeat in range(args.repeats):
        for name, command in (("sandbox", sandboxed), ("plain process", plain)):
            outcome = bwrap.run(command, limits)
            speed = _speed(outcome)
            rows.append({"run": name, "repeat": repeat, "wall_seconds": outcome.seconds, **speed})
            print(
                f"{name:14s} #{repeat}: {speed['images_per_second']:7.2f} images/s  {speed['ms_per_image']:8.1f} "
                f"ms/image  peak RSS {speed['peak_rss_bytes'] / 2**20:7.0f} MiB  whole run {outcome.seconds:6.1f} s"
            )
    print(json.dumps({"config": args.config, "model_bytes": size, "hardware": rows[0]["hardware"]}, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
