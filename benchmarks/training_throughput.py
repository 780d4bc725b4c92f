"""Training throughput of the starter kit as a fraction of the model's own ceiling, measured in one run.

    python benchmarks/training_throughput.py --data data/small --backbone resnet50 --size 224 --batch 256

Four measurements with the same model, batch and step function (`starter_kit.train.train_step`: uint8 -> normalise
-> augment on the device -> bf16 forward/backward -> SGD step), one after the other in one process:

- ceiling_eager / ceiling_compiled: a random uint8 batch that already sits on the GPU, reused every step (the data
  pipeline removed);
- pipeline_eager / pipeline_compiled: batches from the kit's loader over facedata's packed cache (loader processes,
  pinned memory, host-to-device copy), as train.py runs them;
- loader_alone: the loader's batches with no step at all (an upper bound of what the pipeline can cost).

The target of issue 7 is pipeline_compiled >= 80 % of ceiling_compiled. Prints a table and one JSON line.

On a CPU (issue 12: target 85 %), the CPU reference protocol's way: `--layer cpu --threads 1 --workers 0` (the
baselines/configs/cpu.yaml layer: bf16 autocast on the CPU, batches gathered in the training process), eager only.
`--rounds R` alternates ceiling and pipeline R times and reports the median of each, so that a machine whose load
changes during the run (other work on shared cores) biases neither side:

    python benchmarks/training_throughput.py --data data/small --layer cpu --backbone resnet18 --size 64 \
        --batch 64 --threads 1 --workers 0 --steps 20 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from starter_kit.config import load_config  # noqa: E402
from starter_kit.predict import pick_device, resolve_bf16  # noqa: E402
from starter_kit.train import DEFAULTS, OPEN_SECTIONS, TrainData, build_train_model, train_step  # noqa: E402


def _batches(data: TrainData, loader):
    epoch = 0
    while True:
        data.sampler.set_epoch(epoch)
        yield from loader
        epoch += 1


def _measure(step, batches, steps: int, warmup: int, device: torch.device, batch: int) -> float:
    for _ in range(warmup):
        step(next(batches))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    for _ in range(steps):
        step(next(batches))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return steps * batch / (time.perf_counter() - started)


def run(args) -> dict:
    overrides = [
        f"data.root={args.data}",
        f"data.image_size={args.size}",
        f"data.workers={args.workers}",
        f"data.pack_workers={args.workers}",
        f"model.backbone={args.backbone}",
        f"optim.batch_size={args.batch}",
        "data.val_fraction=0.0",
        f"runtime.device={args.device}",
    ]
    if args.cache_dir:
        overrides.append(f"data.cache_dir={args.cache_dir}")
    files = [ROOT / "baselines" / "configs" / f"{name}.yaml" for name in (args.config, args.layer) if name]
    cfg = load_config(files, overrides, defaults=DEFAULTS, open=OPEN_SECTIONS)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    cuda = device.type == "cuda"
    cfg["runtime"]["bf16"] = resolve_bf16(cfg["runtime"]["bf16"], device)  # as starter_kit.train: "auto" resolved
    if cuda:
        torch.backends.cudnn.benchmark = True
    data = TrainData(cfg, 0, 1)
    model = build_train_model(cfg, data.num_classes).to(device)
    channels_last = cuda
    if channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    generator = torch.Generator().manual_seed(0)

    def step(batch):
        images, labels, domains = batch
        train_step(
            model,
            optimizer,
            images,
            labels,
            domains,
            device=device,
            bf16=cfg["runtime"]["bf16"],
            channels_last=channels_last,
            augment_generator=generator,
        )

    resident = (
        torch.randint(0, 256, (args.batch, args.size, args.size, 3), dtype=torch.uint8, device=device),
        torch.randint(0, data.num_classes, (args.batch,), device=device),
        torch.ones(args.batch, dtype=torch.int64, device=device),
    )

    def on_device():
        while True:
            yield resident

    loader = data.loader(args.workers, pin=cuda)
    results = {}
    modes = ["eager", "compiled"] if cuda or args.compile_on_cpu else ["eager"]
    batches = _batches(data, loader)
    for mode in modes:
        if mode == "compiled":
            model.embedder.compile()
        warmup = args.warmup if mode == "eager" else args.warmup + 5
        ceiling, pipeline = [], []
        for round_ in range(args.rounds):
            ceiling.append(_measure(step, on_device(), args.steps, warmup if round_ == 0 else 1, device, args.batch))
            pipeline.append(_measure(step, batches, args.steps, warmup if round_ == 0 else 1, device, args.batch))
        results[f"ceiling_{mode}"] = statistics.median(ceiling)
        results[f"pipeline_{mode}"] = statistics.median(pipeline)
    fetch_started = time.perf_counter()  # the loader alone: the pipeline's own cost, whatever the machine's load
    for _ in range(args.steps):
        next(batches)
    results["loader_alone"] = args.steps * args.batch / (time.perf_counter() - fetch_started)
    last = modes[-1]
    return {
        "backbone": args.backbone,
        "size": args.size,
        "batch": args.batch,
        "steps": args.steps,
        "rounds": args.rounds,
        "threads": torch.get_num_threads(),
        "bf16": cfg["runtime"]["bf16"],
        "device": torch.cuda.get_device_name(device) if cuda else platform.processor() or "cpu",
        "torch": torch.__version__,
        "images_per_s": {k: round(v, 1) for k, v in results.items()},
        "pipeline_over_ceiling": round(results[f"pipeline_{last}"] / results[f"ceiling_{last}"], 3),
        "compiled_over_eager_ceiling": round(results["ceiling_compiled"] / results["ceiling_eager"], 3)
        if "ceiling_compiled" in results
        else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="dataset root (facedata layout)")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--config", default="arcface", help="a file of baselines/configs (without .yaml)")
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--compile-on-cpu", action="store_true")
    parser.add_argument("--layer", default=None, help="a config layer put after --config (cpu: the CPU protocol)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (the CPU protocol: 1)")
    parser.add_argument("--rounds", type=int, default=1, help="alternate ceiling and pipeline this many times")
    args = parser.parse_args(argv)
    result = run(args)
    print(f"{'mode':<20} {'images/s':>10}")
    for mode, value in result["images_per_s"].items():
        print(f"{mode:<20} {value:>10.1f}")
    print(
        f"pipeline / ceiling ({'compiled' if result['compiled_over_eager_ceiling'] else 'eager'}): "
        f"{result['pipeline_over_ceiling']:.1%}"
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
