"""Generation throughput of the synthetic benchmark (facedata), and the time of each preset estimated from it.

Draws a sample of recognition images (one face each) and detection scenes (1 to 60 faces) in this one process,
times the identity planning, and prints faces per second per core and, for each preset, the estimated time on
all cores of this machine (images x seconds per image / cores). With --time-small DIR it also generates `small`
for real (2 workers by default) so the estimate stands beside the measured time.

    .venv/bin/python benchmarks/facedata_generation.py [--rec 60] [--det 20] [--time-small /tmp/small --workers 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import time

from facedata import avatars, scenes
from facedata.plan import PRESETS, image_rng
from facedata.synth import generate


def _sample(rec: int, det: int, seed: int = 12345) -> dict:
    # warm the style cache first: a worker pays it once (about 0.3 s), not per image
    for style in avatars.MAIN_STYLES + avatars.AUX_STYLES + avatars.CLUTTER_STYLES:
        avatars.components(style)
    start = time.process_time()
    identities = [
        avatars.make_identity(avatars.MAIN_STYLES[i % len(avatars.MAIN_STYLES)], f"bench{i}", i % 3, i)
        for i in range(rec)
    ]
    identity_s = (time.process_time() - start) / rec
    start = time.process_time()
    for i, identity in enumerate(identities):
        scenes.recognition_image(identity, image_rng(seed, (0, i)))
    rec_s = (time.process_time() - start) / rec
    faces = 0
    start = time.process_time()
    for i in range(det):
        _, boxes = scenes.detection_image(image_rng(seed, (1, i)), f"bench/{i}")
        faces += len(boxes)
    det_s = (time.process_time() - start) / det
    return {"identity_s": identity_s, "rec_s": rec_s, "det_s": det_s, "faces_per_det": faces / det}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rec", type=int, default=60, help="recognition images in the sample")
    parser.add_argument("--det", type=int, default=20, help="detection scenes in the sample")
    parser.add_argument("--time-small", metavar="DIR", help="also generate `small` into DIR (deleted first)")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    cores = os.cpu_count() or 1
    print(f"machine: {platform.processor() or platform.machine()}, {cores} cores, python {platform.python_version()}")
    sample = _sample(args.rec, args.det)
    rec_rate, det_rate = 1 / sample["rec_s"], sample["faces_per_det"] / sample["det_s"]
    print(
        f"sample: {args.rec} recognition images, {args.det} detection scenes ({sample['faces_per_det']:.2f} faces each)"
    )
    print(f"recognition: {sample['rec_s'] * 1000:.1f} ms CPU an image = {rec_rate:.1f} faces/s per core")
    print(f"detection:   {sample['det_s'] * 1000:.1f} ms CPU a scene = {det_rate:.1f} faces/s per core")
    print(f"planning:    {sample['identity_s'] * 1000:.1f} ms CPU an identity (in the main process)")
    print()
    print("| preset | rec images | det images | identities | CPU hours | estimated wall on all cores |")
    print("|---|---|---|---|---|---|")
    estimates = {}
    for name, preset in PRESETS.items():
        rec_images = preset.train_images + preset.test_images + preset.distractors + preset.aux_images
        det_images = preset.det_train + preset.det_test
        identities = preset.train_ids + preset.test_ids + preset.aux_ids + preset.distractors // 2
        cpu = rec_images * sample["rec_s"] + det_images * sample["det_s"]
        plan = identities * sample["identity_s"]
        wall = cpu / cores + plan
        estimates[name] = (cpu, plan)
        print(
            f"| {name} | {rec_images:,} | {det_images:,} | ~{identities:,} | {cpu / 3600:.2f} | {wall / 60:.1f} min |"
        )
    if args.time_small:
        shutil.rmtree(args.time_small, ignore_errors=True)
        start = time.perf_counter()
        generate(args.time_small, "small", seed=0, workers=args.workers)
        measured = time.perf_counter() - start
        cpu, plan = estimates["small"]
        estimate = cpu / args.workers + plan
        print()
        print(
            f"small with {args.workers} workers: measured {measured:.0f} s, estimated {estimate:.0f} s "
            f"(measured / estimated = {measured / estimate:.2f}; > 1 where other jobs share the cores)"
        )


if __name__ == "__main__":
    main()
