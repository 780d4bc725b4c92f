"""How hard the synthetic benchmark is for a trivial method: raw-pixel features of the test faces, scored with the
official protocol (scorer.recognition.evaluate_recognition: rank-1 against every distractor, CMC, verification).

    .venv/bin/python benchmarks/facedata_difficulty.py DATASET_DIR

Features: the face crop (enlarge rate r) resized to 32 x 32 (RGB or gray), flattened, mean-removed. The crop is
taken from the public test list's boxes, exactly as a participant would.
"""

from __future__ import annotations

import argparse

import numpy as np

from facedata.crops import crop_face, load_rgb
from facedata.layout import Layout
from scorer.recognition import evaluate_recognition


def raw_pixel_features(layout: Layout, enlarge_rate: float, size: int, gray: bool) -> np.ndarray:
    """float32 (N, size * size * channels), row i = image i of the test list."""
    listing = layout.recognition_test()
    rows = []
    for name, box in zip(listing.names, listing.boxes, strict=True):
        face = crop_face(load_rgb(layout.image_path("rectest", name)), box, enlarge_rate, size).astype(np.float32)
        vector = (face.mean(axis=2) if gray else face).ravel()
        vector -= vector.mean()
        vector[0] += 1e-3  # a flat crop would be an all-zero row, which has no direction
        rows.append(vector)
    return np.stack(rows)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root")
    parser.add_argument("--size", type=int, default=32)
    args = parser.parse_args(argv)
    layout = Layout(args.root)
    labels = layout.recognition_labels()
    pairs = layout.verification_pairs()
    print(
        f"{len(labels.image_names):,} test images, {int(labels.distractor_mask.sum()):,} distractors, "
        f"{len(labels.pairs):,} rank-1 pairs, {len(pairs):,} verification pairs"
    )
    print("| raw-pixel features | rank-1 | rank-5 | rank-10 | verification acc. | AUC |")
    print("|---|---|---|---|---|---|")
    for rate in (0.0, 0.5, 1.0):
        for gray in (False, True):
            features = raw_pixel_features(layout, rate, args.size, gray)
            s = evaluate_recognition(labels, features, pairs)
            name = f"{args.size}x{args.size} {'gray' if gray else 'RGB'}, r = {rate}"
            print(
                f"| {name} | {s.rank1:.2%} | {s.cmc['5']:.2%} | {s.cmc['10']:.2%} | "
                f"{s.verification_accuracy:.2%} | {s.verification_auc:.3f} |"
            )


if __name__ == "__main__":
    main()
