"""Command line: `python -m facedata synth|check|pack ...` (see facedata/README.md)."""

from __future__ import annotations

import argparse
import os
import sys
import time

from facedata.layout import DatasetError, Layout
from facedata.plan import DEFAULT_VERSION, VERSIONS


def _synth(args) -> int:
    from facedata.synth import generate

    start = time.perf_counter()
    manifest = generate(
        args.out, args.preset, args.seed, args.workers, progress=not args.no_progress, version=args.version
    )
    seconds = time.perf_counter() - start
    sizes = ", ".join(f"{k} {v:,}" for k, v in manifest["sizes"].items())
    print(f"wrote {args.out} ({args.preset}, seed {args.seed}) in {seconds:.1f} s: {sizes}")
    return 0


def _check(args) -> int:
    layout = Layout(args.root)
    layout.check(hidden=not args.public_only, auxiliary=not args.no_auxiliary)
    train = layout.detection_train()
    print(f"detection train: {len(set(train.names)):,} images, {len(train.names):,} boxes")
    print(f"detection test: {len(layout.detection_test_images()):,} images")
    rec = layout.recognition_train()
    print(f"recognition train: {len(set(rec.identities)):,} identities, {len(rec.names):,} images")
    test = layout.recognition_test()
    print(f"recognition test: {len(test.names):,} images")
    if not args.no_auxiliary:
        aux = layout.auxiliary()
        print(f"auxiliary: {len(set(aux.identities)):,} identities, {len(aux.names):,} images")
    if not args.public_only:
        gt = layout.detection_labels()
        print(f"hidden detection GT: {gt.num_images:,} images, {len(gt.boxes):,} boxes")
        info = layout.recognition_labels()
        print(f"hidden recognition info: {int((info.labels < 0).sum()):,} distractors, {len(info.pairs):,} pairs")
        pairs = layout.verification_pairs()
        print(f"hidden verification pairs: {int(pairs.same.sum()):,} same, {int((~pairs.same).sum()):,} different")
    missing = [n for n in test.names if not layout.image_path("rectest", n).exists()]
    if missing:
        raise DatasetError(f"{len(missing)} test images listed but absent, e.g. {missing[0]}")
    return 0


def _pack(args) -> int:
    from facedata.pack import pack_faces

    start = time.perf_counter()
    faces = pack_faces(
        args.root, args.split, args.out, size=args.size, enlarge_rate=args.enlarge_rate, workers=args.workers
    )
    print(f"packed {len(faces):,} faces of {args.split} into {args.out}.* in {time.perf_counter() - start:.1f} s")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m facedata", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    synth = sub.add_parser("synth", help="generate the synthetic dataset")
    synth.add_argument("--preset", choices=("tiny", "small", "full"), default="tiny")
    synth.add_argument("--out", required=True)
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes (default: all cores)")
    synth.add_argument("--no-progress", action="store_true")
    synth.add_argument(
        "--version",
        type=int,
        choices=VERSIONS,
        default=DEFAULT_VERSION,
        help=f"generator version (default {DEFAULT_VERSION}; 3: look-alikes drawn apart, see facedata/README.md)",
    )
    synth.set_defaults(run=_synth)
    check = sub.add_parser("check", help="check that a dataset folder is complete and readable")
    check.add_argument("root")
    check.add_argument("--public-only", action="store_true", help="do not look for hidden/")
    check.add_argument("--no-auxiliary", action="store_true", help="the real dataset has no auxiliary set")
    check.set_defaults(run=_check)
    pack = sub.add_parser("pack", help="pre-crop and resize the faces of a split into a memory-mapped array")
    pack.add_argument("root")
    pack.add_argument("--split", choices=("rectrain", "rectest", "auxiliary"), default="rectrain")
    pack.add_argument("--out", required=True, help="path prefix: PREFIX.u8 and PREFIX.json are written")
    pack.add_argument("--size", type=int, default=112)
    pack.add_argument("--enlarge-rate", type=float, default=1.0)
    pack.add_argument("--workers", type=int, default=1)
    pack.set_defaults(run=_pack)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (DatasetError, ValueError) as exc:  # a missing or malformed dataset, a folder of another run
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the output cannot be written (a file in the way, no space, no permission)
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
