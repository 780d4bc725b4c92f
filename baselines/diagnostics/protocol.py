"""Why is test rank-1 so far below validation rank-1? The test protocol taken apart, on submitted features.

    python baselines/diagnostics/protocol.py --data data/small \
        --features softmax=baselines/results/softmax-seed0/features.npy.gz ... [--raw 32] [--json out.json]

For each feature file (and raw pixels at --raw x --raw, the floor), rank-1 of the official protocol (every
ordered same-identity pair (a, b): a hit iff cos(a, b) beats every distractor, FORMATS.md §2) and the same with
the distractor set changed or the probes restricted:

- `official`: all 1,500 distractors (checked against `scorer.recognition`, which must give the same number);
- `seen` / `unseen`: probes of identities trained on / not trained on;
- `lookalike_only` / `random_only`: only the distractors that are look-alikes of a test identity (another member of
  its family: the generator's plan says which) / only the other ones;
- `no_kin`: every distractor except the look-alikes of the probe's own identity;
- `own_kin_only`: only the look-alikes of the probe's own identity;
- `lookalike_as_many_as_random`: as many look-alike distractors (a seeded draw) as there are random ones;
- `random_192`: 192 random (non-look-alike) distractors, the validation split's gallery size (seeded draw);
- `closed_set`: no distractors, the other test identities' images compete (closed-set identification).

It also checks the data: the hidden labels against the generator's plan (every test image's label and identity,
a seen test identity being the training folder the plan says), and the crops the test and the training read
(`data_checks`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from baselines.diagnostics import write_report  # noqa: E402
from facedata.layout import DatasetError, Layout  # noqa: E402
from facedata.pack import PackedFaces, pack_faces  # noqa: E402
from facedata.plan import plan_of  # noqa: E402
from scorer.formats import read_features, read_recognition_labels  # noqa: E402
from scorer.recognition import evaluate_recognition  # noqa: E402


def test_roles(data: Path) -> dict[str, np.ndarray]:
    """Per test row, from the generator's plan: label (hidden), identity index, family, is a look-alike
    distractor (a distractor whose family is a test identity's family), kin_label (the test label of that family's
    test identity, -1 otherwise), seen (the identity is a training identity)."""
    manifest = json.loads((data / "manifest.json").read_text())
    plan = plan_of(manifest)
    test = plan.split("rectest")
    train = plan.split("rectrain")
    train_identities = {item.identity for item in train}
    label = np.array([t.label for t in test])
    identity = np.array([t.identity for t in test])
    family = np.array([plan.identities[i].family for i in identity])
    label_of_family: dict[int, list[int]] = {}
    for lab, fam in {(int(a), int(b)) for a, b in zip(label, family, strict=True) if a >= 0}:
        label_of_family.setdefault(fam, []).append(lab)
    kin = np.array(
        [label_of_family.get(int(f), [-1])[0] if lab < 0 else -1 for lab, f in zip(label, family, strict=True)]
    )
    seen_label = {int(lab) for lab, i in zip(label, identity, strict=True) if lab >= 0 and int(i) in train_identities}
    return {
        "label": label,
        "identity": identity,
        "family": family,
        "lookalike": (label < 0) & (kin >= 0),
        "kin_label": kin,
        "seen_labels": np.array(sorted(seen_label)),
        "names": np.array([t.name for t in test]),
        "plan": plan,
    }


def rank1_with(sims: np.ndarray, labels: np.ndarray, distractors_of, probes=None) -> float:
    """Rank-1 over the ordered same-identity pairs (a, b) (a in probes when given): a hit iff sims[a, b] is above
    every sims[a, d] for d in distractors_of(a) (an index array; empty: a hit)."""
    hits = total = 0
    for a in np.flatnonzero(labels >= 0):
        if probes is not None and not probes[a]:
            continue
        mates = np.flatnonzero(labels == labels[a])
        mates = mates[mates != a]
        if not len(mates):
            continue
        d = distractors_of(a)
        best = sims[a, d].max() if len(d) else -np.inf
        hits += int((sims[a, mates] > best).sum())
        total += len(mates)
    return hits / max(total, 1)


def analyse(features: np.ndarray, roles: dict, info) -> dict[str, float]:
    unit = features / np.linalg.norm(features, axis=1, keepdims=True).clip(1e-12)
    sims = unit @ unit.T
    labels = roles["label"]
    distractor = labels < 0
    look = roles["lookalike"]
    kin = roles["kin_label"]
    all_d = np.flatnonzero(distractor)
    look_d, rand_d = np.flatnonzero(look), np.flatnonzero(distractor & ~look)
    rand_192 = np.sort(np.random.default_rng(0).choice(rand_d, size=min(192, len(rand_d)), replace=False))
    look_same = np.sort(np.random.default_rng(1).choice(look_d, size=min(len(rand_d), len(look_d)), replace=False))
    seen = np.isin(labels, roles["seen_labels"])
    out = {
        "official": rank1_with(sims, labels, lambda a: all_d),
        "scorer_official": evaluate_recognition(info, features.astype(np.float64)).rank1,
        "seen": rank1_with(sims, labels, lambda a: all_d, probes=seen),
        "unseen": rank1_with(sims, labels, lambda a: all_d, probes=~seen & (labels >= 0)),
        "lookalike_only": rank1_with(sims, labels, lambda a: look_d),
        "random_only": rank1_with(sims, labels, lambda a: rand_d),
        "lookalike_as_many_as_random": rank1_with(sims, labels, lambda a: look_same),
        "no_kin": rank1_with(sims, labels, lambda a: all_d[kin[all_d] != labels[a]]),
        "own_kin_only": rank1_with(sims, labels, lambda a: all_d[kin[all_d] == labels[a]]),
        "random_192": rank1_with(sims, labels, lambda a: rand_192),
        "closed_set": rank1_with(sims, labels, lambda a: np.flatnonzero((labels >= 0) & (labels != labels[a]))),
    }
    return {k: round(100 * v, 2) for k, v in out.items()}


def packed(data: Path, split: str, size: int, enlarge_rate: float, cache: Path) -> PackedFaces:
    """The split's faces through the training pipeline's pack (facedata.pack, as starter_kit.data.load_faces)."""
    prefix = Path(cache) / f"{split}_s{size}_r{enlarge_rate:g}"
    try:
        return PackedFaces(prefix)
    except (OSError, DatasetError):
        return pack_faces(data, split, prefix, size=size, enlarge_rate=enlarge_rate)


def raw_pixels(data: Path, size: int, cache: Path, enlarge_rate: float) -> np.ndarray:
    """The test crops (the pipeline's pack) at size x size, mean-centred per image: the floor."""
    faces = packed(data, "rectest", size, enlarge_rate, cache)
    x = np.asarray(faces.images, dtype=np.float32).reshape(len(faces), -1)
    return x - x.mean(axis=1, keepdims=True)


def data_checks(data: Path, roles: dict, info, cache: Path) -> dict:
    """The hidden labels against the plan; the seen test identities against their training folders (raw-pixel
    nearest training image of each seen test image: is it of the planned folder, against chance); the test and the
    training crops' pixel statistics (one pipeline: same crop, size, colour)."""
    plan = roles["plan"]
    layout = Layout(data)
    listing = layout.recognition_test()
    checks: dict = {
        "test_names_match_plan": tuple(listing.names) == tuple(roles["names"]),
        "hidden_labels_match_plan": bool(np.array_equal(info.labels, roles["label"])),
    }
    train_items = plan.split("rectrain")
    folder_of_identity = {item.identity: item.name.split("/")[0] for item in train_items}
    train = packed(data, "rectrain", 32, 1.0, cache)
    test = packed(data, "rectest", 32, 1.0, cache)
    # training folder of each train image (the pack's label order is the sorted folder names)
    train_folder = np.array([train.identities[i] for i in train.labels])
    seen_rows = np.flatnonzero(np.isin(roles["label"], roles["seen_labels"]))
    planned = np.array([folder_of_identity[int(roles["identity"][r])] for r in seen_rows])
    xt = np.asarray(train.images, np.float32).reshape(len(train), -1)
    xs = np.asarray(test.images, np.float32)[seen_rows].reshape(len(seen_rows), -1)
    xt -= xt.mean(1, keepdims=True)
    xs -= xs.mean(1, keepdims=True)
    xt /= np.linalg.norm(xt, axis=1, keepdims=True)
    xs /= np.linalg.norm(xs, axis=1, keepdims=True)
    nearest = np.argmax(xs @ xt.T, axis=1)
    hit = float(np.mean(train_folder[nearest] == planned))
    checks["seen_test_nearest_train_image_is_planned_folder"] = round(hit, 4)
    checks["chance"] = round(1.0 / len(train.identities), 4)
    # the folder's name in the plan vs the training list: every train image's identity folder as listed
    listed = layout.recognition_train()
    checks["train_folders_match_plan"] = tuple(listed.identities) == tuple(i.name.split("/")[0] for i in train_items)
    # crop statistics (mean and std of the pixels, per channel): one pipeline gives the same distribution
    train64 = np.asarray(packed(data, "rectrain", 64, 1.0, cache).images, np.float32)
    test64 = np.asarray(packed(data, "rectest", 64, 1.0, cache).images, np.float32)
    checks["train_crop_mean_std"] = [round(float(v), 1) for v in (*train64.mean((0, 1, 2)), *train64.std((0, 1, 2)))]
    checks["test_crop_mean_std"] = [round(float(v), 1) for v in (*test64.mean((0, 1, 2)), *test64.std((0, 1, 2)))]
    box = lambda b: (b[:, 2] - b[:, 0]).mean()  # noqa: E731
    checks["mean_box_width_train_test"] = [round(float(box(listed.boxes)), 1), round(float(box(listing.boxes)), 1)]
    return checks


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data/small", type=Path)
    parser.add_argument("--features", nargs="*", default=[], help="name=path of a submission (.npy.gz or .bin)")
    parser.add_argument("--raw", type=int, default=32, help="raw pixels at this size as a floor (0: none)")
    parser.add_argument("--raw-enlarge", type=float, nargs="*", default=[1.0, 0.0], help="enlarge rates of raw pixels")
    parser.add_argument("--cache", type=Path, default=Path("runs/diagnostics_cache"))
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--no-checks", action="store_true")
    args = parser.parse_args(argv)
    roles = test_roles(args.data)
    info = read_recognition_labels(Layout(args.data).rec_test_info)
    report: dict = {
        "test": {
            "labelled_images": int((roles["label"] >= 0).sum()),
            "distractors": int((roles["label"] < 0).sum()),
            "lookalike_distractors": int(roles["lookalike"].sum()),
            "seen_identities": len(roles["seen_labels"]),
        },
        "rank1": {},
    }
    if not args.no_checks:
        report["data_checks"] = data_checks(args.data, roles, info, args.cache)
    sources = [(name, path) for name, path in (item.split("=", 1) for item in args.features)]
    if args.raw:
        sources[:0] = [(f"raw_pixels_{args.raw}_r{r:g}", r) for r in args.raw_enlarge]
    for name, path in sources:
        if isinstance(path, float):
            feats = raw_pixels(args.data, args.raw, args.cache, path)
        else:
            feats = read_features(path, len(roles["label"])).astype(np.float64)
        report["rank1"][name] = analyse(feats, roles, info)
        print(name, report["rank1"][name], flush=True)
    write_report(report, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
