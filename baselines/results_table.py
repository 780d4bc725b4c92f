"""The tables of baselines/RESULTS.md, made from the runs' own files, and the demo board's baseline specs.

    python baselines/results_table.py baselines/results --write baselines/RESULTS.md   # the CPU table (run_all.sh cpu)
    python baselines/results_table.py runs/baselines --gpu "NVIDIA H100 80GB HBM3"      # the GPU runs' rows

CPU layout (`bash baselines/run_all.sh cpu`): RESULTS/<method>-seed<k>/ holds config.yaml, metrics.csv (one row per
epoch, starter_kit.train), train.log, scores.json (the scorer's --json output on the hidden test) and, for seed 0,
features.npy.gz (the float16 submission); RESULTS/detection-seed0/ holds metrics.jsonl, scores.json and
submission.csv; RESULTS/machine.txt names the machine. With --write, the generated block of RESULTS.md (between
its `<!-- generated -->` markers) is replaced, and each seed-0 run gets a baseline.json that `flask demo` posts as
a baseline row (RESULTS/dataset.json: the sha256 of the hidden files the runs were scored on).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import re
import statistics
import sys
from pathlib import Path

ORDER = [
    "softmax",
    "sphereface",
    "cosface",
    "arcface",
    "combined",
    "focal_arcface",
    "inter_fusion",
    "intra_fusion",
    "full_model",
]
TITLES = {
    "softmax": "SoftMax",
    "sphereface": "SphereFace",
    "cosface": "CosFace",
    "arcface": "ArcFace",
    "combined": "combined margin",
    "focal_arcface": "focal loss on ArcFace",
    "inter_fusion": "inter-face fusion, all auxiliary identities",
    "intra_fusion": "intra-face fusion, all auxiliary identities",
    "full_model": "full model (2020)",
    "arcface_fp32": "ArcFace in float32 (bf16 check)",
}
MARGIN_LOSSES = ("sphereface", "cosface", "arcface", "combined", "focal_arcface")
HEADER = (
    "| method | rank-1 | CMC@5 | CMC@10 | verification acc. | AUC | epochs | images/s | wall time | GPU |\n"
    "|---|---|---|---|---|---|---|---|---|---|"
)
START, END = "<!-- generated: baselines/results_table.py -->", "<!-- end of generated -->"
LINK = "results/"  # the run folders, relative to baselines/RESULTS.md
HIDDEN = ("icartoonface_rectest_info.txt", "icartoonface_verification_pairs.txt", "personai_icartoonface_detval.csv")


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def _epochs(run_dir: Path) -> list[dict]:
    with open(run_dir / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def _machine(folder: Path) -> str:
    """The folder's machine.txt on one line ('-' when there is none)."""
    path = folder / "machine.txt"
    return "; ".join(line for line in path.read_text().splitlines() if line.strip()) if path.exists() else "-"


def _speed(epochs: list[dict]) -> float:
    """Median images/s over the epochs after the first (the first holds loader and allocator start-up)."""
    speeds = [float(e["images_per_s"]) for e in epochs[1:]] or [float(e["images_per_s"]) for e in epochs]
    return statistics.median(speeds)


# ---------------------------------------------------------------------------------------------- the GPU rows


def row(run_dir: Path, gpu: str) -> str | None:
    """One GPU table row (run_all.sh's run folders), or None when the run has no scores yet."""
    scores_path = run_dir / "scores.json"
    if not scores_path.exists():
        return None
    scores = json.loads(scores_path.read_text())
    epochs = _epochs(run_dir)
    wall = run_dir / "wall_s"
    wall_text = f"{int(wall.read_text()) / 60:.1f} min" if wall.exists() else "-"
    return (
        f"| {run_dir.name} | {_pct(scores['rank1'])} | {_pct(scores['cmc']['5'])} | {_pct(scores['cmc']['10'])} | "
        f"{_pct(scores.get('verification_accuracy'))} | {_pct(scores.get('verification_auc'))} | {len(epochs)} | "
        f"{_speed(epochs):,.0f} | {wall_text} | {gpu} |"
    )


def table(work: Path, gpu: str) -> str:
    names = [n for n in ORDER if (work / n).is_dir()] + sorted(
        p.name for p in work.iterdir() if p.is_dir() and p.name not in ORDER and (p / "scores.json").exists()
    )
    rows = [r for r in (row(work / n, gpu) for n in names) if r]
    return "\n".join([HEADER, *rows])


# ---------------------------------------------------------------------------------------------- the CPU table


def recognition_runs(results: Path) -> dict[str, list[dict]]:
    """method -> its finished runs (seed order), each {seed, scores, epochs, dir}."""
    runs: dict[str, list[dict]] = {}
    for scores_path in sorted(results.glob("*-seed*/scores.json")):
        run_dir = scores_path.parent
        match = re.fullmatch(r"(.+)-seed(\d+)", run_dir.name)
        if not match or not (run_dir / "metrics.csv").exists():
            continue
        method, seed = match.group(1), int(match.group(2))
        runs.setdefault(method, []).append(
            {"seed": seed, "scores": json.loads(scores_path.read_text()), "epochs": _epochs(run_dir), "dir": run_dir}
        )
    for items in runs.values():
        items.sort(key=lambda r: r["seed"])
    return dict(sorted(runs.items(), key=lambda kv: (ORDER.index(kv[0]) if kv[0] in ORDER else len(ORDER), kv[0])))


def _mean_spread(values: list[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (None for a single value)."""
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def _cell(values: list[float]) -> str:
    mean, spread = _mean_spread(values)
    return f"{100 * mean:.2f}" if spread is None else f"{100 * mean:.2f} ± {100 * spread:.2f}"


def _val(run: dict) -> float | None:
    last = run["epochs"][-1]
    return float(last["val_rank1"]) if last.get("val_rank1") not in (None, "") else None


def _train_acc(run: dict) -> float | None:
    last = run["epochs"][-1]
    return float(last["acc"]) if last.get("acc") not in (None, "") else None


def _cpu_seconds(epochs: list[dict]) -> float:
    """CPU seconds of training and validation over a run's epochs (metrics.csv's cpu_s)."""
    return sum(float(e.get("cpu_s") or 0.0) for e in epochs)


def cpu_table(runs: dict[str, list[dict]]) -> str:
    lines = [
        "| method | seeds | test rank-1 | CMC@5 | CMC@10 | verification acc. | AUC | training acc. (last epoch) | "
        "validation rank-1 | epochs | images/s | CPU s per run |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for method, items in runs.items():
        scores = [r["scores"] for r in items]
        vals = [v for v in (_val(r) for r in items) if v is not None]
        accs = [a for a in (_train_acc(r) for r in items) if a is not None]
        epochs = sorted({len(r["epochs"]) for r in items})
        lines.append(
            f"| {TITLES.get(method, method)} | {', '.join(str(r['seed']) for r in items)} | "
            f"{_cell([s['rank1'] for s in scores])} | {_cell([s['cmc']['5'] for s in scores])} | "
            f"{_cell([s['cmc']['10'] for s in scores])} | {_cell([s['verification_accuracy'] for s in scores])} | "
            f"{_cell([s['verification_auc'] for s in scores])} | {_cell(accs) if accs else '-'} | "
            f"{_cell(vals) if vals else '-'} | "
            f"{'/'.join(map(str, epochs))} | {statistics.fmean(_speed(r['epochs']) for r in items):,.0f} | "
            f"{statistics.fmean(_cpu_seconds(r['epochs']) for r in items):,.0f} |"
        )
    return "\n".join(lines)


def per_run_table(runs: dict[str, list[dict]]) -> str:
    lines = [
        "| run | test rank-1 | CMC@5 | CMC@10 | verification acc. | AUC | validation rank-1 (last epoch) |",
        "|---|---|---|---|---|---|---|",
    ]
    for items in runs.values():
        for r in items:
            s = r["scores"]
            lines.append(
                f"| [{r['dir'].name}]({LINK}{r['dir'].name}/) | {_pct(s['rank1'])} | {_pct(s['cmc']['5'])} | "
                f"{_pct(s['cmc']['10'])} | {_pct(s['verification_accuracy'])} | {_pct(s['verification_auc'])} | "
                f"{_pct(_val(r))} |"
            )
    return "\n".join(lines)


def _ranks(values: list[float]) -> list[float]:
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2
        i = j + 1
    return ranks


def _pearson(x: list[float], y: list[float]) -> float:
    mx, my = statistics.fmean(x), statistics.fmean(y)
    sx = sum((a - mx) ** 2 for a in x) ** 0.5
    sy = sum((b - my) ** 2 for b in y) ** 0.5
    return sum((a - mx) * (b - my) for a, b in zip(x, y, strict=True)) / (sx * sy) if sx and sy else float("nan")


def findings(runs: dict[str, list[dict]]) -> str:
    """The targets of the benchmark and the validation/test agreement, computed from the runs."""
    out = []
    means = {m: statistics.fmean(r["scores"]["rank1"] for r in items) for m, items in runs.items()}
    if means:
        best = max(means, key=means.get)
        out.append(f"- Best test rank-1: {TITLES.get(best, best)}, {100 * means[best]:.2f} % (target: 50 %).")
    spreads = [statistics.stdev([r["scores"]["rank1"] for r in items]) for items in runs.values() if len(items) >= 2]
    margins = {m: means[m] for m in MARGIN_LOSSES if m in means}
    if "softmax" in means and margins:
        best_margin = max(margins, key=margins.get)
        gap = means[best_margin] - means["softmax"]
        spread_text = (
            f"the largest seed spread (sample s.d. over the methods with 2+ seeds) is {100 * max(spreads):.2f}"
            if spreads
            else "no method has 2 seeds yet: no spread"
        )
        out.append(
            f"- SoftMax vs the best margin loss ({TITLES[best_margin]}): {100 * gap:+.2f} points; {spread_text}."
        )
    if "softmax" in runs and len(runs["softmax"]) >= 2:
        spread = statistics.stdev(r["scores"]["rank1"] for r in runs["softmax"])
        near = [m for m in means if m != "softmax" and abs(means[m] - means["softmax"]) < 3 * spread]
        if near:
            seeds = ", ".join(f"{TITLES.get(m, m)} ({len(runs[m])})" for m in near)
            out.append(f"- Rows within 3x the SoftMax seed spread of SoftMax (seeds run; the issue asks 3): {seeds}.")
    pairs = [(v, r["scores"]["rank1"]) for items in runs.values() for r in items if (v := _val(r)) is not None]
    if len(pairs) >= 3:
        vals, tests = [p[0] for p in pairs], [p[1] for p in pairs]
        out.append(
            f"- Validation rank-1 vs test rank-1 over the {len(pairs)} runs: Pearson {_pearson(vals, tests):.2f}, "
            f"Spearman {_pearson(_ranks(vals), _ranks(tests)):.2f}; validation mean {100 * statistics.fmean(vals):.1f}"
            f" %, test mean {100 * statistics.fmean(tests):.1f} %."
        )
    return "\n".join(out)


def budget_line(results: Path, runs: dict[str, list[dict]]) -> str:
    """The table's compute: the CPU seconds of every recognition run (metrics.csv) and of the detection training."""
    seconds = sum(_cpu_seconds(r["epochs"]) for items in runs.values() for r in items)
    det = results / "detection-seed0" / "train_cpu_s"
    if det.exists():
        seconds += float(det.read_text().strip())
    n = sum(len(items) for items in runs.values()) + det.exists()
    return (
        f"- Compute of the {n} runs: {seconds / 60:,.0f} CPU-minutes of training and validation, "
        f"{seconds / 120:,.0f} minutes of the 2 cores (the issue's budget for the whole table: 90)."
    )


def detection_table(results: Path) -> str:
    run = results / "detection-seed0"
    if not (run / "scores.json").exists():
        return "No detection run has finished."
    s = json.loads((run / "scores.json").read_text())
    epochs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    cpu = (run / "train_cpu_s").read_text().strip() if (run / "train_cpu_s").exists() else "-"
    speed = statistics.median(e["images_per_s"] for e in epochs[1:] or epochs)
    return "\n".join(
        [
            "| run | ap50 | COCO AP | AP75 | AP small | AP medium | AP large | AR@100 | epochs | images/s | CPU s |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
            f"| [detection-seed0]({LINK}detection-seed0/) | {_pct(s['ap50'])} | {_pct(s['coco_ap'])} | "
            f"{_pct(s['coco_ap75'])} | {_pct(s['coco_ap_small'])} | {_pct(s['coco_ap_medium'])} | "
            f"{_pct(s['coco_ap_large'])} | {_pct(s['coco_ar100'])} | {len(epochs)} | {speed:.1f} | {cpu} |",
        ]
    )


DIAGNOSTIC_COLUMNS = (
    ("official", "official"),
    ("seen", "seen probes"),
    ("unseen", "unseen probes"),
    ("lookalike_only", "look-alike distractors only"),
    ("random_only", "random distractors only"),
    ("lookalike_as_many_as_random", "as many look-alikes as random ones"),
    ("no_kin", "all but the probe's own look-alikes"),
    ("own_kin_only", "only the probe's own look-alikes"),
    ("random_192", "192 random (the validation's gallery size)"),
    ("closed_set", "closed set (other test identities compete)"),
)


def diagnostics_block(results: Path) -> str:
    """The tables of baselines/diagnostics/ (their JSON outputs in RESULTS/diagnostics/), or '' when none."""
    folder = results / "diagnostics"
    out = []
    for path in sorted(folder.glob("protocol*.json")):
        report = json.loads(path.read_text())
        t = report["test"]
        out.append(
            f"From `{LINK}diagnostics/{path.name}` (test: {t['labelled_images']:,} labelled images, "
            f"{t['distractors']:,} distractors of which {t['lookalike_distractors']:,} look-alikes of a test identity, "
            f"{t['seen_identities']} seen identities); rank-1 %:\n"
        )
        out.append("| features | " + " | ".join(title for _, title in DIAGNOSTIC_COLUMNS) + " |")
        out.append("|---|" + "---|" * len(DIAGNOSTIC_COLUMNS))
        for name, values in report["rank1"].items():
            # the diagnostics' cosines are numpy's float64 products, the scorer's its canonical ones: near-ties may
            # round apart (a few pairs in thousands); more than that means the diagnostic's protocol is wrong
            if abs(values["official"] - values["scorer_official"]) > 0.1:
                raise ValueError(f"{path}: {name}'s official rank-1 differs from the scorer's")
            out.append(f"| {name} | " + " | ".join(f"{values[key]:.2f}" for key, _ in DIAGNOSTIC_COLUMNS) + " |")
        checks = report.get("data_checks")
        if checks:
            out.append("")
            out.append(
                f"Data checks: test names as the plan {checks['test_names_match_plan']}, hidden labels as the plan "
                f"{checks['hidden_labels_match_plan']}, training folders as the plan "
                f"{checks['train_folders_match_plan']};"
                f" a seen test image's raw-pixel nearest training image is of its planned folder "
                f"{100 * checks['seen_test_nearest_train_image_is_planned_folder']:.1f} % of the time (chance "
                f"{100 * checks['chance']:.2f} %); crop pixel mean / s.d. per channel, train "
                f"{checks['train_crop_mean_std']} and test {checks['test_crop_mean_std']}; mean box width train / test "
                f"{checks['mean_box_width_train_test']} px."
            )
        out.append("")
    looks = folder / "lookalikes.json"
    if looks.exists():
        r = json.loads(looks.read_text())
        top = ", ".join(f"{k} {v}" for k, v in list(r["changed_part_counts"].items())[:6])
        out.append(
            f"Look-alikes in pixels (`{LINK}diagnostics/lookalikes.json`, baselines/diagnostics/lookalikes.py: "
            f"{r['compared']} of the {r['lookalike_identities']} look-alike identities rendered at {r['size']} px with "
            f"the same expression as their test identity): mean absolute difference "
            f"{r['lookalike_vs_identity_mean_abs_diff']}"
            f" (median {r['lookalike_vs_identity_median']}) against {r['identity_other_expression_mean_abs_diff']} for"
            f" the identity with another expression; {100 * r['lookalike_closer_than_expression_change_share']:.1f} %"
            f" of the look-alikes are closer to their identity than an expression change, "
            f"{100 * r['lookalike_below_0.5_share']:.1f} % differ by under 0.5 and "
            f"{100 * r['lookalike_renders_identical_share']:.1f} % render identically. Parts changed most: {top}."
        )
    steps = {kind: folder / f"full_model_steps_{kind}.json" for kind in ("legacy", "dann")}
    if all(p.exists() for p in steps.values()):
        out.append("")
        parts = []
        labels = (
            ("legacy", "the first version (gamma L_da, constant reversal)"),
            ("dann", "the DANN form on the raw embedding (it still diverged later in the run, at epoch 5)"),
        )
        for kind, label in labels:
            rows = json.loads(steps[kind].read_text())
            finite = [r for r in rows if math.isfinite(r["loss"])]
            bad = next((r["step"] for r in rows if not math.isfinite(r["loss"])), None)
            fate = f"non-finite at step {bad}" if bad is not None else f"finite for all {len(rows)} steps"
            parts.append(
                f"{label}: {fate}, domain loss at most {max(r['da'] for r in finite):,.3g}, embedding norm at most "
                f"{max(r['emb_norm'] for r in finite):,.3g} (from {rows[0]['emb_norm']:g})"
            )
        out.append(
            "The full model's first steps from the softmax checkpoint (benchmarks/full_model_divergence.py, "
            f"`{LINK}diagnostics/full_model_steps_*.json`): " + "; ".join(parts) + "."
        )
    return "\n".join(out).strip()


def experiments_block(results: Path) -> str:
    """The experiments beside the table (RESULTS/experiments/<set>/<run>/: config.yaml, metrics.csv, train.log,
    scores.json; <set>/data.json: each data root's label and command; <set>/machine.txt): one row per run, with
    the settings that differ between them read from its config.yaml. Empty when there are none."""
    import yaml

    out = []
    for folder in sorted(p for p in (results / "experiments").glob("*") if p.is_dir()):
        data = json.loads((folder / "data.json").read_text()) if (folder / "data.json").exists() else {}
        machine = _machine(folder)
        rows = []
        for run_dir in sorted(p for p in folder.iterdir() if (p / "scores.json").exists()):
            cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
            scores, epochs = json.loads((run_dir / "scores.json").read_text()), _epochs(run_dir)
            steps = sum(int(e["steps"]) for e in epochs)
            cpu = _cpu_seconds(epochs)
            precision = "bf16" if cfg["runtime"]["bf16"] is True else "float32"
            method = (cfg.get("method") or {}).get("name", "plain")
            if method == "plain":  # a loss (and criterion): focal on arcface is the table's focal_arcface
                focal = (cfg.get("criterion") or {}).get("name") == "focal"
                method = f"focal_{cfg['loss']['name']}" if focal else cfg["loss"]["name"]
            label = data.get(cfg["data"]["root"], {}).get("label", cfg["data"]["root"])
            rows.append(
                f"| [{run_dir.name}]({LINK}experiments/{folder.name}/{run_dir.name}/) | {TITLES.get(method, method)} | "
                f"{label} | {cfg['data']['image_size']} | {len(epochs)} | "
                f"{steps} | {precision} | {_pct(scores['rank1'])} | {_pct(scores['cmc']['10'])} | "
                f"{_pct(scores.get('verification_accuracy'))} | {cpu:,.0f} |"
            )
        if rows:
            made = "; ".join(f"{d['label']}: `{d['command']}`" for d in data.values())
            out += [
                f"Experiments `{LINK}experiments/{folder.name}/` (machine: {machine}); seed 0 each. Data: {made}.",
                "| run | method | data | crop px | epochs | steps | precision | test rank-1 | CMC@10 | "
                "verification acc. | CPU s |\n|---|---|---|---|---|---|---|---|---|---|---|\n" + "\n".join(rows),
            ]
    return "\n\n".join(out)


def earlier_block(results: Path, runs: dict[str, list[dict]]) -> str:
    """Each earlier table kept under RESULTS/earlier/<name>/ (its run folders, machine.txt and dataset.json, as
    run_all.sh wrote them for another dataset) beside this one: rank-1 per method, then and now. Empty when none."""
    out = []
    for folder in sorted(p for p in (results / "earlier").glob("*") if p.is_dir()):
        then = recognition_runs(folder)
        if not then:
            continue
        dataset = folder / "dataset.json"
        data = json.loads(dataset.read_text())["data"] if dataset.exists() else "-"
        machine = _machine(folder)
        lines = [
            f"`{LINK}earlier/{folder.name}/` (data: `{data}`; machine: {machine}): scored on other hidden files, so "
            "not on the demo board.",
            "",
            "| method | seeds then | test rank-1 then | seeds now | test rank-1 now | change of the mean (points) |",
            "|---|---|---|---|---|---|",
        ]
        for method, items in then.items():
            before = [r["scores"]["rank1"] for r in items]
            after = [r["scores"]["rank1"] for r in runs.get(method, [])]
            change = f"{100 * (statistics.fmean(after) - statistics.fmean(before)):+.2f}" if after else "-"
            lines.append(
                f"| {TITLES.get(method, method)} | {len(before)} | {_cell(before)} | {len(after)} | "
                f"{_cell(after) if after else '-'} | {change} |"
            )
        det = [folder / "detection-seed0" / "scores.json", results / "detection-seed0" / "scores.json"]
        if all(path.exists() for path in det):
            then_det, now_det = (json.loads(path.read_text()) for path in det)
            lines += [
                "",
                f"Detection (seed 0): ap50 {_pct(then_det['ap50'])} then, {_pct(now_det['ap50'])} now; COCO AP "
                f"{_pct(then_det['coco_ap'])} then, {_pct(now_det['coco_ap'])} now.",
            ]
        out.append("\n".join(lines))
    return "\n\n".join(out)


def generated_block(results: Path) -> str:
    runs = recognition_runs(results)
    machine = _machine(results)
    return "\n\n".join(
        [
            START,
            f"Machine: {machine}.",
            "### Recognition (test = the hidden `small` test set; mean ± sample s.d. over the seeds)",
            cpu_table(runs) if runs else "No recognition run has finished.",
            "\n".join(line for line in (findings(runs), budget_line(results, runs)) if line),
            "### Every run",
            per_run_table(runs) if runs else "-",
            "### Detection (the hidden detection test set of `small`)",
            detection_table(results),
            *(
                ["### The test protocol taken apart (baselines/diagnostics/)", block]
                if (block := diagnostics_block(results))
                else []
            ),
            *(
                ["### Earlier tables (the same protocol on other data)", block]
                if (block := earlier_block(results, runs))
                else []
            ),
            *(
                ["### Experiments beside the table (not table rows: other data or schedules)", block]
                if (block := experiments_block(results))
                else []
            ),
            END,
        ]
    )


def write_baseline_specs(results: Path, data: Path) -> None:
    """baseline.json for every seed-0 run with a submission, and dataset.json (the hidden files' sha256)."""
    hashes = {n: hashlib.sha256((data / "hidden" / n).read_bytes()).hexdigest() for n in HIDDEN}
    manifest = json.loads((data / "manifest.json").read_text()) if (data / "manifest.json").exists() else {}
    if manifest:
        from facedata.synth import synth_command  # here: the art libraries it imports are not on every machine

        command = synth_command(manifest)
    else:
        command = f"{data.name}: not generated (no manifest.json)"
    (results / "dataset.json").write_text(json.dumps({"data": command, "hidden_sha256": hashes}, indent=1) + "\n")
    for run in sorted(results.glob("*-seed0")):
        method = run.name.removesuffix("-seed0")
        if method == "detection" and (run / "submission.csv").exists():
            spec, title = {"track": "detection", "file": "submission.csv"}, "CenterNet R18"
            config = "baselines/detection/configs/centernet_r18_cpu.yaml"
        elif (run / "features.npy.gz").exists() and method in TITLES:
            spec, title = {"track": "recognition", "file": "features.npy.gz"}, TITLES[method]
            config = f"baselines/configs/{method}.yaml + baselines/configs/cpu.yaml"
        else:
            continue
        spec["name"] = f"{title} (CPU reference)"
        spec["method"] = method
        spec["method_name"] = title  # the board's method column
        spec["note"] = f"method: {method}; config: {config}; run: baselines/results/{run.name}/ (baselines/RESULTS.md)"
        (run / "baseline.json").write_text(json.dumps(spec, indent=1) + "\n")


def write_results(results: Path, markdown: Path) -> None:
    text = markdown.read_text()
    block = generated_block(results)
    if START in text and END in text:
        text = text[: text.index(START)] + block + text[text.index(END) + len(END) :]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    markdown.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path, help="the folder holding one folder per run")
    parser.add_argument("--gpu", default=None, help="the GPU's name: print the GPU runs' table")
    parser.add_argument("--write", type=Path, default=None, help="RESULTS.md whose generated block is replaced")
    parser.add_argument("--data", type=Path, default=Path("data/small"), help="the data the runs were scored on")
    args = parser.parse_args(argv)
    if args.gpu is not None:
        print(table(args.work, args.gpu))
        return 0
    if args.write:
        write_results(args.work, args.write)
        if (args.data / "hidden").is_dir():
            write_baseline_specs(args.work, args.data)
    else:
        print(generated_block(args.work))
    return 0


if __name__ == "__main__":
    sys.exit(main())
