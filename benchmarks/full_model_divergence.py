"""Where does the 2020 full model diverge? Its first training steps, logged step by step.

    python benchmarks/full_model_divergence.py --init runs/.../softmax-seed0/checkpoint.pt \
        --data data/small --steps 64 [key=value overrides, e.g. method.grl_schedule=constant]

Starts the full model from a softmax checkpoint exactly as `starter_kit.train` does (the CPU layer
baselines/configs/cpu.yaml, lr warm-up included), and prints per step: the loss parts (cls, uir, da), the
embedding norm, the domain classifier's weight norm, the gradient reversal weight in force, and whether anything
is not finite. Stops at the first non-finite loss. --legacy reproduces the first version's domain loss (gamma L_da
with a constant reversal: the domain classifier then learns at gamma times the learning rate), which diverged.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from starter_kit.config import load_config  # noqa: E402
from starter_kit.data import normalize  # noqa: E402
from starter_kit.predict import resolve_bf16  # noqa: E402
from starter_kit.train import DEFAULTS, OPEN_SECTIONS, TrainData, _param_groups, build_train_model, lr_at  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--init", required=True, help="the softmax checkpoint the full model starts from")
    parser.add_argument("--data", default="data/small")
    parser.add_argument("--cache", default="runs/diagnostics_cache")
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--legacy",
        action="store_true",
        help="the first version's domain loss: gamma L_da with a constant reversal (the classifier at gamma x its lr)",
    )
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    overrides = ["method.grl_schedule=constant"] if args.legacy else []
    cfg = load_config(
        ["baselines/configs/full_model.yaml", "baselines/configs/cpu.yaml"],
        [f"data.root={args.data}", f"data.cache_dir={args.cache}", f"model.init_from={args.init}", *overrides]
        + list(args.overrides),
        defaults=DEFAULTS,
        open=OPEN_SECTIONS,
    )
    torch.manual_seed(cfg["seed"])
    bf16 = resolve_bf16(cfg["runtime"]["bf16"], torch.device("cpu"))
    data = TrainData(cfg, 0, 1)
    model = build_train_model(cfg, data.num_classes, data.num_aux_classes)
    for module in model.modules():
        if hasattr(module, "set_total_steps"):
            module.set_total_steps(len(data.sampler) * cfg["optim"]["epochs"])
    optim = cfg["optim"]
    optimizer = torch.optim.SGD(_param_groups(model, optim["weight_decay"]), lr=optim["lr"], momentum=optim["momentum"])
    steps_per_epoch = len(data.sampler)
    rows = []
    batches = iter(data.loader(0, False))
    model.train()
    for step in range(args.steps):
        try:
            images, labels, domains = next(batches)
        except StopIteration:
            data.sampler.set_epoch(step // steps_per_epoch)
            batches = iter(data.loader(0, False))
            images, labels, domains = next(batches)
        lr = lr_at(step / steps_per_epoch, optim)
        for group in optimizer.param_groups:
            group["lr"] = lr
        x = normalize(images)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            emb = model.embedder(x)
            loss, parts = model.objective(emb, labels, domains)
            if args.legacy:  # + (gamma - 1) L_da for the classifier alone: it then descends gamma L_da, as before
                net = model.objective.domain_classifier.net
                extra = F.binary_cross_entropy_with_logits(net(emb.detach()).squeeze(1).float(), domains.float())
                loss = loss + (cfg["method"]["gamma"] - 1.0) * extra
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad = torch.sqrt(sum((p.grad.float() ** 2).sum() for p in model.embedder.parameters() if p.grad is not None))
        optimizer.step()
        reverse = model.objective.domain_classifier.reverse
        row = {
            "step": step,
            "lr": round(lr, 5),
            "loss": float(loss.detach()),
            **{k: round(float(v), 4) for k, v in parts.items()},
            "emb_norm": round(float(emb.float().norm(dim=1).mean()), 2),
            "dom_w_norm": round(float(model.objective.domain_classifier.net[0].weight.norm()), 2),
            "grl": round(float(reverse.weight()), 4),
            "embedder_grad_norm": round(float(grad), 3),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
        if not torch.isfinite(loss):
            break
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=0) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
