"""Two hot paths of a scoring worker, each beside what it replaced or what bounds it, in one run (BENCHMARKS.md):

1. the numpy distractor search (`scorer.search.approximate_kth`, with the floor filter of `_merge_block`) against
   the same loop's GEMMs alone (the normalised tiles multiplied, nothing kept): the search's share of the product;
2. an integrity comparison's read of the other submission: the full feature file at the official size (22,500 x
   512 float64, `scorer.formats.read_features`) against its stored sketch (512 rows, float32 .npz).

    OMP_NUM_THREADS=1 python benchmarks/search_and_sketch.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scorer import search  # noqa: E402
from scorer.formats import read_features  # noqa: E402


def search_share(probes: int = 2048, distractors: int = 32768, dim: int = 512) -> tuple[float, float]:
    """(seconds of the GEMMs alone, seconds of the search) over the same tiles and blocks."""
    rng = np.random.default_rng(0)
    features = rng.standard_normal((distractors, dim)).astype(np.float32)
    probe_unit = search.unit_rows(rng.standard_normal((probes, dim)))
    found = search.distinct_distractors(features, np.arange(distractors))
    block = search.DEFAULT_BLOCK_SIZE
    start = time.perf_counter()
    for _, tile, _counts in search.distractor_tiles(features, found, search._tile_size(block)):
        for first in range(0, probes, block):
            probe_unit[first : first + block] @ tile.T
    gemm = time.perf_counter() - start
    start = time.perf_counter()
    search.approximate_kth(probe_unit, features, found, (1, 5, 10), backend="numpy")
    return gemm, time.perf_counter() - start


def sketch_read(folder: Path, rows: int = 22_500, dim: int = 512) -> tuple[float, float]:
    """(seconds to parse the full feature file, seconds to read its sketch)."""
    rng = np.random.default_rng(0)
    features = rng.standard_normal((rows, dim))
    full, sketch = folder / "features.bin", folder / "sketch.npz"
    features.astype("<f8").tofile(full)
    np.savez(sketch, features=features[:512].astype(np.float32))
    start = time.perf_counter()
    read_features(full, rows)
    parse = time.perf_counter() - start
    start = time.perf_counter()
    with np.load(sketch) as stored:
        stored["features"]
    return parse, time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    print("| repeat | GEMMs alone s | search s | GEMM share of the search | full parse ms | sketch read ms | ratio |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as folder:
        for repeat in range(1, args.repeats + 1):
            gemm, found = search_share()
            parse, read = sketch_read(Path(folder))
            print(
                f"| {repeat} | {gemm:.2f} | {found:.2f} | {gemm / found:.2f} | {parse * 1e3:.0f} | {read * 1e3:.1f} "
                f"| {parse / read:.0f}x |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
