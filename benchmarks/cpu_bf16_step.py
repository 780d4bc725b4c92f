"""One training step of the CPU protocol's model in float32 and under bf16 autocast, on this CPU, in one run.

    .venv/bin/python benchmarks/cpu_bf16_step.py [--steps 2] [--threads 1]

The model, batch and step of baselines/configs/cpu.yaml (ResNet-18 at 64 x 64, batch 64, starter_kit.train's
train_step with augmentation) on a random batch in memory, alternating float32 and bf16 steps after one warm-up
each. Prints the median seconds per step of each, their ratio, and whether starter_kit.predict.native_bf16 (what
runtime.bf16=auto follows) says this CPU has fast bf16 kernels.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from starter_kit.config import load_config  # noqa: E402
from starter_kit.predict import native_bf16  # noqa: E402
from starter_kit.train import DEFAULTS, OPEN_SECTIONS, build_train_model, train_step  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2, help="timed steps of each precision")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    configs = [ROOT / "baselines" / "configs" / name for name in ("softmax.yaml", "cpu.yaml")]
    cfg = load_config(configs, defaults=DEFAULTS, open=OPEN_SECTIONS)
    size, batch, classes = cfg["data"]["image_size"], cfg["optim"]["batch_size"], 261
    device = torch.device("cpu")
    images = torch.randint(0, 256, (batch, size, size, 3), dtype=torch.uint8)
    labels, domains = torch.randint(0, classes, (batch,)), torch.ones(batch, dtype=torch.int64)
    runs = {}
    for bf16 in (False, True):
        torch.manual_seed(0)
        model = build_train_model(cfg, classes, 0)
        runs[bf16] = (model, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9), torch.Generator())
    seconds: dict[bool, list[float]] = {False: [], True: []}
    for round_ in range(args.steps + 1):  # round 0 warms up
        for bf16, (model, optimizer, generator) in runs.items():
            started = time.perf_counter()
            train_step(model, optimizer, images, labels, domains, device=device, bf16=bf16, channels_last=False,
                       augment_generator=generator)  # fmt: skip
            if round_:
                seconds[bf16].append(time.perf_counter() - started)
    fp32, bf16 = statistics.median(seconds[False]), statistics.median(seconds[True])
    report = {"float32_s_per_step": round(fp32, 3), "bf16_s_per_step": round(bf16, 3)}
    report |= {"bf16_over_float32": round(bf16 / fp32, 2), "native_bf16": native_bf16(device)}
    report |= {"threads": args.threads, "torch": torch.__version__}
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
