"""Train a cartoon-face recognizer: one linear script.

    python -m starter_kit.train baselines/configs/arcface.yaml data.root=data/small optim.epochs=5
    python -m starter_kit.train baselines/configs/cosface.yaml baselines/configs/cpu_smoke.yaml data.root=data/tiny
    torchrun --nproc_per_node=8 -m starter_kit.train baselines/configs/arcface.yaml data.root=/data/icartoonface

Config: DEFAULTS <- the YAML file (and its `_base_` chain) <- `section.key=value` overrides (starter_kit.config).
The run folder (runtime.run_dir, default runs/<name>) receives config.yaml, metrics.csv (one row per epoch), train.log
and checkpoint.pt (rewritten each epoch; a rerun of the same command resumes from it). Validation rank-1 / CMC each
epoch uses `scorer.recognition` on a validation split built like the test (`starter_kit.data.split_validation`:
seen and unseen identities, distractors).

On a GPU: bf16 autocast, channels_last and torch.compile (runtime.*); several GPUs through torchrun (DDP). On a CPU:
bf16 autocast where the CPU has bf16 kernels (runtime.bf16=auto: AVX-512 or AMX; about twice the speed of float32
there, and 25x slower than float32 on an AVX2-only CPU, which therefore trains in float32; baselines/RESULTS.md),
and runtime.threads torch threads per run (1 lets two runs share a 2-core machine with no contention).
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from baselines.backbones import load_torchvision_weights
from baselines.heads import Embedder
from baselines.methods import METHODS, build_objective
from scorer.formats import RecognitionLabels, all_same_identity_pairs
from starter_kit.config import ConfigError, dump, load_config
from starter_kit.data import (
    BatchGather,
    MixedBatchSampler,
    augment,
    choose_aux_identities,
    load_faces,
    normalize,
    relabel,
    split_validation,
)
from starter_kit.predict import embed_faces, pick_device, resolve_bf16

log = logging.getLogger("starter_kit.train")

DEFAULTS: dict = {
    "name": "run",
    "seed": 0,
    "data": {
        "root": "data/small",
        "cache_dir": None,  # packed faces; default <root>/packed
        "image_size": 112,  # the side of the square crops the model sees
        "enlarge_rate": 1.0,  # crop = (1 + r) x the box; the papers' 2x boxes
        "val_fraction": 0.1,  # labelled validation identities as a share of the train identities (0: none)
        "num_aux_classes": None,  # auxiliary identities used by the fusion methods (None: all)
        "aux_fraction": None,  # share of each batch from the auxiliary domain (None: the method's default)
        "workers": 4,  # loader processes gathering batches
        "pack_workers": 4,  # processes that build the packed cache
    },
    "model": {
        "backbone": "resnet50",
        "embedding_dim": 512,
        "dropout": 0.0,
        "pretrained": None,  # a torchvision checkpoint for the backbone
        "init_from": None,  # a checkpoint of ours: its embedder initialises this one (e.g. softmax pretraining)
    },
    "head": "norm_linear",
    "loss": {"name": "arcface"},
    "criterion": {"name": "cross_entropy"},
    "method": {"name": "plain"},
    "optim": {
        "epochs": 30,
        "batch_size": 128,  # global: split evenly over the processes
        "lr": 0.1,
        "momentum": 0.9,
        "weight_decay": 5e-4,  # not on biases and norm weights
        "milestones": [0.4, 0.6, 0.8],  # fractions of the epochs where lr is multiplied by lr_decay
        "lr_decay": 0.1,
        "warmup_epochs": 0.0,
        "max_steps_per_epoch": None,  # cap for smoke runs and benchmarks
    },
    "runtime": {
        "run_dir": None,  # default runs/<name>
        "device": "auto",
        "bf16": "auto",  # bf16 autocast where the device has fast bf16 kernels (predict.native_bf16), else float32
        "compile": True,  # torch.compile of the embedder, CUDA only
        "channels_last": True,  # CUDA only (nothing on top of bf16 on the CPU)
        "threads": None,  # torch threads of this process (None: torch's default, all cores)
        "augment": True,
        "resume": True,
        "progress": True,
        "val_batch_size": 256,
    },
}
OPEN_SECTIONS = ("loss", "criterion", "method")


class TrainModel(nn.Module):
    """Embedder + objective, one module so that DDP synchronises every parameter."""

    def __init__(self, embedder: Embedder, objective: nn.Module):
        super().__init__()
        self.embedder, self.objective = embedder, objective

    def forward(self, images: torch.Tensor, labels: torch.Tensor, domains: torch.Tensor):
        return self.objective(self.embedder(images), labels, domains)


def build_train_model(cfg: dict, num_classes: int, num_aux_classes: int = 0) -> TrainModel:
    """The embedder (with model.pretrained / model.init_from weights) and the method's objective, on the CPU."""
    m = cfg["model"]
    embedder = Embedder(m["backbone"], m["embedding_dim"], m["dropout"])
    if m["pretrained"]:
        load_torchvision_weights(embedder.backbone, m["pretrained"])
    objective = build_objective(
        cfg["method"]["name"],
        embedding_dim=m["embedding_dim"],
        num_classes=num_classes,
        num_aux_classes=num_aux_classes,
        head=cfg["head"],
        loss=cfg["loss"],
        criterion=cfg["criterion"],
        method_args={k: v for k, v in cfg["method"].items() if k != "name"},
    )
    if m["init_from"]:
        init = torch.load(m["init_from"], map_location="cpu", weights_only=False)["model"]
        embedder.load_state_dict({k.removeprefix("embedder."): v for k, v in init.items() if k.startswith("embedder.")})
        log.info("embedder initialised from %s", m["init_from"])
    return TrainModel(embedder, objective)


def lr_at(progress: float, optim: dict) -> float:
    """The learning rate after `progress` epochs: linear warm-up, then step decay at the milestone fractions."""
    if progress < optim["warmup_epochs"]:
        return optim["lr"] * (progress + 1e-3) / optim["warmup_epochs"]
    passed = sum(progress >= m * optim["epochs"] - 1e-9 for m in optim["milestones"])
    return optim["lr"] * optim["lr_decay"] ** passed


def _distributed() -> tuple[int, int]:
    """(rank, world size); joins the process group when started by torchrun (RANK in the environment)."""
    if "RANK" not in os.environ:
        return 0, 1
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), dist.get_world_size()


def _barrier(world: int) -> None:
    if world > 1 or dist.is_initialized():
        dist.barrier()


def _setup_logging(run_dir: Path, rank: int) -> logging.Handler | None:
    if rank != 0:
        return None
    handler = logging.FileHandler(run_dir / "train.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.INFO)
    return handler


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (no_decay if param.ndim <= 1 else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


class TrainData:
    """Everything the loop needs from the dataset, built once (rank 0 packs the cache, the others wait)."""

    def __init__(self, cfg: dict, rank: int, world: int):
        d = cfg["data"]
        method = METHODS[cfg["method"]["name"]] if cfg["method"]["name"] in METHODS else None
        kw = dict(
            size=d["image_size"],
            enlarge_rate=d["enlarge_rate"],
            cache_dir=d["cache_dir"] or Path(d["root"]) / "packed",
            workers=d["pack_workers"],
        )
        splits = ["rectrain"] + (["auxiliary"] if method and method.uses_aux else [])
        if rank == 0:
            for split in splits:
                load_faces(d["root"], split, **kw)
        _barrier(world)
        faces = load_faces(d["root"], "rectrain", **kw)
        split = split_validation(faces.labels, faces.identities, d["val_fraction"], cfg["seed"], faces.names)
        self.train_identities = split.train
        self.train_labels = np.full(len(faces), -1, dtype=np.int64)
        self.train_labels[split.train_rows] = relabel(faces, split.train)[split.train_rows]
        self.val_rows, self.val_labels = split.val_rows, split.val_labels
        self.faces = faces
        cartoon_rows = np.flatnonzero(self.train_labels >= 0)
        self.num_aux_classes, aux_images, aux_labels, aux_rows = 0, None, None, None
        if len(splits) > 1:
            aux = load_faces(d["root"], "auxiliary", **kw)
            chosen = choose_aux_identities(aux.identities, d["num_aux_classes"], cfg["seed"])
            aux_images, aux_labels = aux.images, relabel(aux, chosen)
            aux_rows = np.flatnonzero(aux_labels >= 0) + len(faces)
            self.num_aux_classes = len(chosen)
        aux_fraction = (
            d["aux_fraction"] if d["aux_fraction"] is not None else (method.default_aux_fraction if method else None)
        )
        per_rank = cfg["optim"]["batch_size"] // world
        self.sampler = MixedBatchSampler(
            cartoon_rows, aux_rows, per_rank, aux_fraction=aux_fraction, seed=cfg["seed"], rank=rank, world_size=world
        )
        self.dataset = BatchGather(faces.images, self.train_labels, aux_images, aux_labels)
        self.num_classes = len(split.train)
        log.info(
            "train: %d identities, %d images; validation: %d seen + %d unseen identities, %d distractor "
            "identities, %d images (%d distractors); auxiliary: %d identities",
            self.num_classes,
            len(cartoon_rows),
            len(split.seen),
            len(split.unseen),
            len(split.distractors),
            len(self.val_rows),
            int((self.val_labels < 0).sum()),
            self.num_aux_classes,
        )

    def loader(self, workers: int, pin: bool) -> torch.utils.data.DataLoader:
        return torch.utils.data.DataLoader(
            self.dataset,
            batch_size=None,
            sampler=self.sampler,
            num_workers=workers,
            pin_memory=pin,
            persistent_workers=workers > 0,
            prefetch_factor=4 if workers > 0 else None,
        )


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    images: torch.Tensor,
    labels: torch.Tensor,
    domains: torch.Tensor,
    *,
    device: torch.device,
    bf16: bool,
    channels_last: bool,
    augment_generator: torch.Generator | None,
) -> tuple[torch.Tensor, dict]:
    """One SGD step on a batch from the loader: images uint8 (B, S, S, 3), labels and domains int64 (B,), on any
    device. Normalisation and augmentation (when a generator is given) run on `device`. Returns the detached
    (loss, parts)."""
    images = images.to(device, non_blocking=True)
    labels, domains = labels.to(device, non_blocking=True), domains.to(device, non_blocking=True)
    x = normalize(images, channels_last)
    if augment_generator is not None:
        x = augment(x, augment_generator, channels_last=channels_last)
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16):
        loss, parts = model(x, labels, domains)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach(), parts


def validate(embedder: nn.Module, data: TrainData, device: torch.device, cfg: dict) -> dict[str, float]:
    """rank-1 and CMC@5/10 of the held-out identities (their own images as probes and gallery, the distractor
    identities' images as distractors), with scorer.recognition. Empty when there is no validation split."""
    if len(data.val_rows) == 0 or not (data.val_labels >= 0).any():
        return {}
    from scorer.recognition import evaluate_recognition

    rt = cfg["runtime"]
    rows = data.val_rows  # sorted (np.flatnonzero): memmap reads in order
    feats = embed_faces(
        embedder,
        data.faces.images[rows],
        device,
        batch_size=rt["val_batch_size"],
        bf16=rt["bf16"],
        channels_last=rt["channels_last"],
    )
    names = tuple(data.faces.names[i] for i in rows)
    pairs = all_same_identity_pairs(data.val_labels)
    labels = RecognitionLabels(names, np.zeros((len(names), 4)), data.val_labels, pairs)
    scores = evaluate_recognition(labels, feats.astype(np.float64))
    return {"val_rank1": scores.rank1, "val_cmc5": scores.cmc["5"], "val_cmc10": scores.cmc["10"]}


def _save(path: Path, state: dict) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _append_csv(path: Path, row: dict) -> None:
    new = not path.exists()
    with open(path, "a", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)


def train(cfg: dict) -> dict:
    """Run (or resume) the training of a resolved config; returns the last epoch's metrics row."""
    rank, world = _distributed()
    device = pick_device(cfg["runtime"]["device"])
    cuda = device.type == "cuda"
    # config.yaml records what ran: "auto" is resolved here, on this machine
    cfg["runtime"]["bf16"] = resolve_bf16(cfg["runtime"]["bf16"], device)
    if cuda:
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    rt, optim_cfg = cfg["runtime"], cfg["optim"]
    run_dir = Path(rt["run_dir"] or Path("runs") / cfg["name"])
    if rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        dump(cfg, run_dir / "config.yaml")
    handler = _setup_logging(run_dir, rank)
    try:
        return _train(cfg, rank, world, device, cuda, rt, optim_cfg, run_dir)
    finally:
        if handler is not None:
            logging.getLogger().removeHandler(handler)
            handler.close()


def _train(cfg, rank, world, device, cuda, rt, optim_cfg, run_dir: Path) -> dict:
    if rt["threads"]:
        torch.set_num_threads(int(rt["threads"]))
    torch.manual_seed(cfg["seed"] + rank)
    data = TrainData(cfg, rank, world)
    model = build_train_model(cfg, data.num_classes, data.num_aux_classes)
    embedder = model.embedder
    channels_last = rt["channels_last"] and cuda
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(
        _param_groups(model, optim_cfg["weight_decay"]), lr=optim_cfg["lr"], momentum=optim_cfg["momentum"]
    )
    checkpoint_path = run_dir / "checkpoint.pt"
    start_epoch, last_row = 0, {}
    if rt["resume"] and checkpoint_path.exists():
        state = torch.load(checkpoint_path, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch, last_row = state["epoch"], state.get("metrics", {})
        log.info("resumed from %s at epoch %d", checkpoint_path, start_epoch)
    if rt["compile"] and cuda:
        embedder.compile()
    ddp = (
        nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if cuda else None)
        if (dist.is_initialized())
        else model
    )
    loader = data.loader(cfg["data"]["workers"], pin=cuda)
    steps = len(data.sampler)
    if optim_cfg["max_steps_per_epoch"]:
        steps = min(steps, optim_cfg["max_steps_per_epoch"])
    for module in model.modules():  # schedules that follow the fraction of training done (SphereFace's lambda)
        if hasattr(module, "set_total_steps"):
            module.set_total_steps(steps * optim_cfg["epochs"])
    generator = torch.Generator().manual_seed(cfg["seed"] * 1000 + rank)
    for epoch in range(start_epoch, optim_cfg["epochs"]):
        data.sampler.set_epoch(epoch)
        ddp.train()
        sums: dict[str, torch.Tensor] = {}
        seen, started, cpu_started = 0, time.perf_counter(), time.process_time()
        batches = iter(loader)
        bar = None
        if rank == 0 and rt["progress"]:
            from tqdm import tqdm

            bar = tqdm(total=steps, desc=f"epoch {epoch + 1}/{optim_cfg['epochs']}", unit="batch", leave=False)
        for step in range(steps):
            images, labels, domains = next(batches)
            lr = lr_at(epoch + step / steps, optim_cfg)
            for group in optimizer.param_groups:
                group["lr"] = lr
            loss, parts = train_step(
                ddp,
                optimizer,
                images,
                labels,
                domains,
                device=device,
                bf16=rt["bf16"],
                channels_last=channels_last,
                augment_generator=generator if rt["augment"] else None,
            )
            for key, value in {"loss": loss.detach(), **parts}.items():
                sums[key] = sums.get(key, 0.0) + value.float()
            seen += len(labels)
            if bar is not None:
                bar.update()
                if step % 20 == 0:
                    bar.set_postfix(loss=f"{float(loss):.3f}", lr=f"{lr:.4g}")
        del batches
        if bar is not None:
            bar.close()
        if cuda:
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - started
        means = {k: float(v) / max(steps, 1) for k, v in sums.items()}
        if dist.is_initialized():
            packed = torch.tensor([means[k] for k in sorted(means)], device=device)
            dist.all_reduce(packed)
            means = {k: float(v) / world for k, v in zip(sorted(means), packed.tolist(), strict=True)}
        row = {
            "epoch": epoch + 1,
            "steps": steps,
            "lr": lr_at(epoch + 1 - 1e-6, optim_cfg),
            **{k: round(v, 6) for k, v in means.items()},
            "images_per_s": round(seen * world / seconds, 1),
            "epoch_s": round(seconds, 2),
        }
        if rank == 0:
            row.update({k: round(v, 6) for k, v in validate(embedder, data, device, cfg).items()})
            row["cpu_s"] = round(time.process_time() - cpu_started, 1)  # this process's CPU s: training + validation
            _append_csv(run_dir / "metrics.csv", row)
            _save(
                checkpoint_path,
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "epoch": epoch + 1,
                    "config": cfg,
                    "metrics": row,
                    "train_identities": data.train_identities,
                },
            )
            log.info("epoch %d: %s", epoch + 1, row)
        _barrier(world)
        last_row = row
    return last_row


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:2] == ["--task", "detection"]:  # the detection track has its own script: starter_kit/train_detection.py
        from starter_kit.train_detection import main as train_detection

        return train_detection(argv[2:])
    if argv[:2] == ["--task", "recognition"]:
        argv = argv[2:]
    parser = argparse.ArgumentParser(prog="python -m starter_kit.train", description=__doc__.splitlines()[0])
    parser.add_argument(
        "items",
        nargs="*",
        metavar="CONFIG.yaml | section.key=value",
        help="config files, layered in order (e.g. baselines/configs/arcface.yaml), then overrides "
        "read as YAML (optim.epochs=5)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    files = [item for item in args.items if "=" not in item]
    overrides = [item for item in args.items if "=" in item]
    try:
        cfg = load_config(files, overrides, defaults=DEFAULTS, open=OPEN_SECTIONS)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    try:
        row = train(cfg)
    except (KeyError, ValueError) as exc:
        print(f"error: {exc.args[0] if isinstance(exc, KeyError) else exc}", file=sys.stderr)
        return 1
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    if row and int(os.environ.get("RANK", 0)) == 0:
        shown = {k: v for k, v in row.items() if k in ("epoch", "loss", "acc", "val_rank1", "images_per_s")}
        print(f"done: {shown}; run folder {cfg['runtime']['run_dir'] or Path('runs') / cfg['name']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
