"""Loader throughput: faces per second from the JPEG files (decode, crop, resize) and from the packed cache
(facedata.pack: a memory-mapped uint8 array), side by side in one process, one core, as a ratio.

    .venv/bin/python benchmarks/facedata_loader.py DATASET_DIR [--size 112] [--items 400]

DATASET_DIR is a generated dataset (`python -m facedata synth --preset small --out DIR`) or the real one.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time

import numpy as np
import torch

from facedata.pack import pack_faces
from facedata.torchdata import PackedFaceSet, RecognitionTrainSet


def _rate(dataset, order) -> float:
    start = time.perf_counter()
    for i in order:
        dataset[int(i)]
    return len(order) / (time.perf_counter() - start)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root")
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--enlarge-rate", type=float, default=1.0)
    parser.add_argument("--items", type=int, default=400, help="faces read from JPEG (the pack reads all)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; one process, one thread")
    jpeg = RecognitionTrainSet(args.root, args.size, args.enlarge_rate)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        pack_faces(args.root, "rectrain", os.path.join(tmp, "train"), args.size, args.enlarge_rate, workers=1)
        pack_s = time.perf_counter() - start
        packed = PackedFaceSet(os.path.join(tmp, "train"))
        jpeg_rate = _rate(jpeg, rng.choice(len(jpeg), size=min(args.items, len(jpeg)), replace=False))
        packed_rate = _rate(packed, rng.permutation(len(packed)))
    print(f"{len(jpeg):,} train faces, {args.size} x {args.size}, enlarge rate {args.enlarge_rate}")
    print(f"packing once: {pack_s:.1f} s ({len(jpeg) / pack_s:.0f} faces/s)")
    print("| source | faces/s (one core, random order, to float tensor) |")
    print("|---|---|")
    print(f"| JPEG files (RecognitionTrainSet) | {jpeg_rate:,.0f} |")
    print(f"| packed cache (PackedFaceSet) | {packed_rate:,.0f} |")
    print(f"packed / JPEG = {packed_rate / jpeg_rate:.1f}x")


if __name__ == "__main__":
    main()
