"""Train the CenterNet-style face detector of `baselines.detection` on a dataset folder in the iCartoonFace layout.

    python -m starter_kit.train_detection --config centernet_r18 --data DIR --out runs/det_r18 [--set key=value ...]
    torchrun --nproc_per_node=8 -m starter_kit.train_detection --config centernet_r50 --data DIR --out runs/det_r50

The run folder receives `config.yaml` (the resolved config), `metrics.jsonl` (one line per epoch: losses,
images/s, validation ap50), `last.pt` each epoch and `best.pt` at the best validation ap50. A checkpoint holds
`model` (state dict), `config` (dict), `epoch` and `ap50`; `starter_kit/predict_detection.py` turns it into a
submission. Validation uses a seeded hold-out of the training images (`val_fraction`, see
baselines.detection.data.split_train_val), scored with `scorer` exactly as the leaderboard scores the test set.
bf16 autocast, channels_last and torch.compile apply on CUDA only; multi-GPU through torchrun (DDP).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
import yaml
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from baselines.detection.config import ConfigError, DetectionConfig, load_config
from baselines.detection.data import DetectionItem, DetectionTrainSet, read_train_items, split_train_val
from baselines.detection.evaluate import evaluate_model
from baselines.detection.loss import centernet_loss
from baselines.detection.model import build_detector


def _setup_distributed() -> tuple[int, int, torch.device]:
    """(rank, world size, device); initialises the process group when launched by torchrun with WORLD_SIZE > 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    else:
        device = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return rank, world, device


def _lr_at(step: int, total: int, cfg: DetectionConfig) -> float:
    """Linear warm-up for warmup_steps, then cosine decay to zero at the last step."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def save_checkpoint(
    path: Path,
    model: torch.nn.Module,
    cfg: DetectionConfig,
    epoch: int,
    ap50: float | None,
    optimizer: torch.optim.Optimizer | None = None,
    best_ap50: float | None = None,
) -> None:
    """Write atomically: `model`, `config`, `epoch`, `ap50` (this epoch's validation, None if none ran), and for
    resuming `optimizer` and `best_ap50` (the best validation so far)."""
    state = {"model": model.state_dict(), "config": cfg.to_dict(), "epoch": epoch, "ap50": ap50}
    if optimizer is not None:
        state["optimizer"] = optimizer.state_dict()
        state["best_ap50"] = best_ap50
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def train(
    cfg: DetectionConfig,
    out_dir: str | Path,
    train_items: list[DetectionItem],
    val_items: list[DetectionItem],
    *,
    max_steps: int | None = None,
    progress: bool = True,
    resume: bool = False,
) -> dict:
    """Train, validate each `val_every` epochs and save checkpoints into out_dir. Returns the last epoch's metrics."""
    rank, world, device = _setup_distributed()
    main_process = rank == 0
    out = Path(out_dir)
    if main_process:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), encoding="utf-8")
    torch.manual_seed(cfg.seed)
    cuda = device.type == "cuda"

    model = build_detector(cfg).to(device)
    if cuda and cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    start_epoch, best = 0, -1.0
    if resume and (out / "last.pt").exists():
        state = torch.load(out / "last.pt", map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        if "optimizer" in state:
            optimizer.load_state_dict(state["optimizer"])
        start_epoch = state["epoch"] + 1
        best = state.get("best_ap50") if state.get("best_ap50") is not None else -1.0
        if main_process:
            print(f"resumed from {out / 'last.pt'} at epoch {start_epoch}")
    net = torch.compile(model) if cuda and cfg.compile else model
    if world > 1:
        net = DistributedDataParallel(net, device_ids=[device.index] if cuda else None)

    dataset = DetectionTrainSet(train_items * cfg.repeat, cfg, seed=cfg.seed)
    sampler = DistributedSampler(dataset, world, rank, shuffle=True, seed=cfg.seed) if world > 1 else None
    generator = torch.Generator().manual_seed(cfg.seed)
    drop_last = len(dataset) >= cfg.batch_size * world
    loader_args = dict(batch_size=cfg.batch_size, num_workers=cfg.workers, pin_memory=cuda, drop_last=drop_last)
    steps_per_epoch = max(1, len(dataset) // (cfg.batch_size * world) if drop_last else 1)
    total_steps = steps_per_epoch * cfg.epochs if max_steps is None else min(max_steps, steps_per_epoch * cfg.epochs)
    step = start_epoch * steps_per_epoch
    metrics: dict = {}
    run_started = time.perf_counter()
    for epoch in range(start_epoch, cfg.epochs):
        if step >= total_steps:
            break
        dataset.set_epoch(epoch)
        if sampler is not None:
            sampler.set_epoch(epoch)
        loader = DataLoader(dataset, sampler=sampler, shuffle=sampler is None, generator=generator, **loader_args)
        net.train()
        sums = {"total": 0.0, "heatmap": 0.0, "size": 0.0, "offset": 0.0}
        seen, batches, started = 0, 0, time.perf_counter()
        bar = tqdm(
            loader,
            desc=f"epoch {epoch + 1}/{cfg.epochs}",
            disable=not (progress and main_process),
            leave=False,
            dynamic_ncols=True,
        )
        for batch in bar:
            if step >= total_steps:
                break
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            images = batch["image"]
            if cuda and cfg.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            for group in optimizer.param_groups:
                group["lr"] = _lr_at(step, total_steps, cfg)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda and cfg.bf16):
                outputs = net(images)
            terms = centernet_loss(outputs, batch, size_weight=cfg.size_weight, offset_weight=cfg.offset_weight)
            if not torch.isfinite(terms.total):
                raise FloatingPointError(f"the loss is not finite at step {step}: {terms.as_floats()}")
            optimizer.zero_grad(set_to_none=True)
            terms.total.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            for name, value in terms.as_floats().items():
                sums[name] += value
            seen += len(images) * world
            batches += 1
            step += 1
            bar.set_postfix(loss=f"{sums['total'] / batches:.3f}", lr=f"{optimizer.param_groups[0]['lr']:.2e}")
        bar.close()
        seconds = time.perf_counter() - started
        metrics = {
            "epoch": epoch + 1,
            "step": step,
            **{f"loss_{k}": v / max(1, batches) for k, v in sums.items()},
            "images_per_s": seen / seconds if seconds > 0 else 0.0,
            "epoch_seconds": seconds,
            "world_size": world,
        }
        last = epoch + 1 == cfg.epochs or step >= total_steps
        if main_process and val_items and ((epoch + 1) % cfg.val_every == 0 or last):
            scores = evaluate_model(model, val_items, cfg, coco=last)
            metrics["val_ap50"] = scores.ap50
            if last:
                metrics.update({f"val_{k}": v for k, v in scores.to_dict().items() if k.startswith("coco_")})
        metrics["wall_seconds"] = time.perf_counter() - run_started  # this process's run so far, validation included
        if main_process:
            ap50 = metrics.get("val_ap50")
            if ap50 is not None and ap50 > best:
                best = ap50
                save_checkpoint(out / "best.pt", model, cfg, epoch, ap50)
            save_checkpoint(out / "last.pt", model, cfg, epoch, ap50, optimizer, best_ap50=best if best >= 0 else None)
            with open(out / "metrics.jsonl", "a", encoding="utf-8") as log_file:
                log_file.write(json.dumps(metrics) + "\n")
            shown = f", val ap50 {ap50:.4f}" if ap50 is not None else ""
            print(f"epoch {epoch + 1}: loss {metrics['loss_total']:.4f}, {metrics['images_per_s']:.1f} images/s{shown}")
        if world > 1:
            dist.barrier()
    if main_process and not (out / "best.pt").exists() and (out / "last.pt").exists():
        # no validation ran (val_fraction 0): the last checkpoint is the one to use
        (out / "best.pt").write_bytes((out / "last.pt").read_bytes())
    if world > 1:
        dist.destroy_process_group()
    return metrics


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--config", default="centernet_r18", help="a config name under baselines/detection/configs/ or a YAML path"
    )
    parser.add_argument(
        "--data", required=True, help="dataset folder (icartoonface_dettrain/ + icartoonface_dettrain.csv)"
    )
    parser.add_argument("--out", required=True, help="run folder for config, metrics and checkpoints")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    parser.add_argument("--max-steps", type=int, default=None, help="stop after this many optimiser steps")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    try:
        cfg = load_config(args.config, args.set)
        items = read_train_items(args.data)
    except (ConfigError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    train_items, val_items = split_train_val(items, cfg.val_fraction, cfg.seed, cfg.max_val_images)
    if not train_items:
        print(f"error: no training images left in {args.data} after holding out the validation images", file=sys.stderr)
        return 2
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"{len(train_items)} training images, {len(val_items)} validation images, config {args.config}")
    train(
        cfg,
        args.out,
        train_items,
        val_items,
        max_steps=args.max_steps,
        progress=not args.no_progress,
        resume=args.resume,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
