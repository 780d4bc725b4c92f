"""Recognition scoring benchmarks: ours against the 2020 official scorer, and the distractor search at scale.

    python benchmarks/scoring_recognition.py                 # both tables (the scale run takes minutes)
    python benchmarks/scoring_recognition.py --only official
    python benchmarks/scoring_recognition.py --only scale --scale-probes 2000 --scale-distractors 10000

1. Official size (22,500 x 512 float64: 2,000 identities of 5 to 17 images, 2,500 distractors, about 186,500
   ordered pairs), written to a temp dir as the info file and the raw .bin: parse + validate + score (rank-1 and
   CMC) with each backend, against a reimplementation of the 2020 script (sklearn cosine distances over the full
   matrix, then an argsort walk over distractors + mate for every pair). The reference runs on a random fraction
   of the pairs: its matrix time is extrapolated by the rows computed, its walk by the pairs walked (linear), and
   both give the same rank-1 on that fraction.
2. Scale: P probes against D distractors at d = 512, float32 features, numpy (float64 GEMM) and faiss (float32)
   side by side, each in its own process: seconds, peak memory above the loaded inputs, GFLOP/s = 2 P D d / time
   and that as a fraction of this machine's GEMM rate in the same precision, measured in the same run (once in the
   parent, and in each child right before and after its search: on a shared machine the adjacent rate is the
   fairer yardstick).

`official_rows()` and `scale_rows()` return the rows (dicts) that `benchmarks/scoring.py` prints.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from scorer import formats
from scorer.formats import RecognitionLabels, all_same_identity_pairs
from scorer.recognition import cmc, evaluate_recognition

DIM = 512


# --------------------------------------------------------------------------------------------------- data


def official_like_labels(
    rng: np.random.Generator, identities: int = 2000, images: int = 20_000, distractors: int = 2500
) -> np.ndarray:
    """int64 (images + distractors,): identity sizes 5 to 17 summing to `images` (about 186,500 ordered pairs for
    the official numbers), distractors (-1) interleaved at random."""
    sizes = np.clip(np.rint(rng.normal(images / identities, 1.8, identities)), 5, 17).astype(np.int64)
    while sizes.sum() != images:
        step = 1 if sizes.sum() < images else -1
        candidates = np.flatnonzero((sizes + step >= 5) & (sizes + step <= 17))
        sizes[rng.choice(candidates)] += step
    labels = np.r_[np.repeat(np.arange(identities), sizes), -np.ones(distractors, np.int64)]
    return labels[rng.permutation(len(labels))]


def clustered_features(
    rng: np.random.Generator, labels: np.ndarray, dim: int = DIM, noise: float = 2.0, dtype=np.float64
) -> np.ndarray:
    """(N, dim): identity centres plus noise; distractors are noise around random centres."""
    centres = rng.standard_normal((int(labels.max()) + 1, dim), dtype=np.float32)
    features = rng.standard_normal((len(labels), dim), dtype=np.float32) * np.float32(noise)
    labelled = labels >= 0
    features[labelled] += centres[labels[labelled]]
    features[~labelled] += rng.standard_normal((int((~labelled).sum()), dim), dtype=np.float32)
    return features.astype(dtype, copy=False)


def make_labels(labels: np.ndarray) -> RecognitionLabels:
    names = tuple(f"{i:05d}.jpg" for i in range(len(labels)))
    boxes = np.tile([10.0, 10.0, 90.0, 90.0], (len(labels), 1))
    return RecognitionLabels(names, boxes, labels, all_same_identity_pairs(labels))


# --------------------------------------------------------------------------------------------------- official


def official_walk(features: np.ndarray, labels: np.ndarray, pairs: np.ndarray, block: int = 512):
    """The 2020 script: cosine distances of the probes to every test image (rows of the full N x N matrix), then
    for each pair an argsort over distractors + mate. Returns (hits bool (P,), matrix seconds, walk seconds)."""
    from sklearn.metrics.pairwise import cosine_distances

    distractors = np.flatnonzero(labels < 0)
    probes, probe_slot = np.unique(pairs[:, 0], return_inverse=True)
    start, cpu_start = time.perf_counter(), time.process_time()
    rows = np.concatenate(
        [cosine_distances(features[probes[i : i + block]], features) for i in range(0, len(probes), block)]
    )
    matrix_seconds, matrix_cpu = time.perf_counter() - start, time.process_time() - cpu_start
    hits = np.zeros(len(pairs), dtype=bool)
    start, cpu_start = time.perf_counter(), time.process_time()
    for index, ((_, mate), slot) in enumerate(zip(pairs.tolist(), probe_slot.tolist(), strict=True)):
        gallery = np.append(distractors, mate)
        order = np.argsort(rows[slot, gallery])
        hits[index] = gallery[order[0]] == mate
    walk_seconds, walk_cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return hits, matrix_seconds, walk_seconds, len(probes), matrix_cpu, walk_cpu


def official_rows(walk_fraction: float = 0.02, seed: int = 0) -> list[dict]:
    """The official-size table: one row per backend of ours, one for the 2020 scorer, with ratios."""
    rng = np.random.default_rng(seed)
    label_array = official_like_labels(rng)
    features = clustered_features(rng, label_array)
    num_images = len(label_array)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        info, feature_file = Path(tmp) / "icartoonface_rectest_info.txt", Path(tmp) / "features.bin"
        formats.write_recognition_labels(info, make_labels(label_array))
        formats.write_features(feature_file, features)
        import faiss  # noqa: F401  (imported once per worker process, as in a running worker: not timed)

        for backend in ("faiss", "numpy"):
            start, cpu_start = time.perf_counter(), time.process_time()
            labels = formats.read_recognition_labels(info)
            parsed_labels = time.perf_counter()
            read = formats.read_features(feature_file, len(labels.image_names))
            parsed = time.perf_counter()
            scores = evaluate_recognition(labels, read, backend=backend)
            done, cpu_done = time.perf_counter(), time.process_time()
            rows.append(
                {
                    "scorer": f"ours ({backend})",
                    "parse_labels_s": parsed_labels - start,
                    "parse_features_s": parsed - parsed_labels,
                    "score_s": done - parsed,
                    "total_s": done - start,
                    "cpu_s": cpu_done - cpu_start,
                    "rank1": scores.rank1,
                    "cmc": scores.cmc,
                    "num_pairs": scores.num_pairs,
                }
            )
    pairs = labels.pairs
    sample = np.sort(rng.choice(len(pairs), max(1, int(round(walk_fraction * len(pairs)))), replace=False))
    hits, matrix_s, walk_s, probes_done, matrix_cpu, walk_cpu = official_walk(read, labels.labels, pairs[sample])
    ours_on_sample = cmc(
        RecognitionLabels(labels.image_names, labels.boxes, labels.labels, pairs[sample]), read, ks=(1,)
    )["1"]
    matrix_full = matrix_s * num_images / probes_done
    walk_full = walk_s * len(pairs) / len(sample)
    reference_total = matrix_full + walk_full
    reference_cpu = matrix_cpu * num_images / probes_done + walk_cpu * len(pairs) / len(sample)
    rows.append(
        {
            "scorer": "2020 official (sklearn + argsort walk)",
            "pairs_walked": int(len(sample)),
            "matrix_rows_computed": int(probes_done),
            "matrix_s_measured": matrix_s,
            "walk_s_measured": walk_s,
            "matrix_s_extrapolated": matrix_full,
            "walk_s_extrapolated": walk_full,
            "total_s": reference_total,
            "cpu_s": reference_cpu,
            "rank1_on_sample": float(hits.mean()),
            "ours_rank1_on_sample": ours_on_sample,
        }
    )
    for row in rows[:-1]:
        row["speedup_vs_official"] = reference_total / row["total_s"]
        row["cpu_speedup_vs_official"] = reference_cpu / row["cpu_s"]
        # a job on a running worker: the hidden labels are parsed once per worker process (arena.jobs), so a
        # submission costs its own parse + validate + score
        row["per_job_s"] = row["parse_features_s"] + row["score_s"]
        row["per_job_speedup_vs_official"] = reference_total / row["per_job_s"]
    return rows


# --------------------------------------------------------------------------------------------------- scale


def gemm_rate(dtype, size: int = 4096, inner: int = DIM, repeats: int = 3) -> float:
    """GFLOP/s of this machine's best of `repeats` (size x inner) @ (inner x size) products in dtype."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, inner)).astype(dtype)
    b = rng.standard_normal((inner, size)).astype(dtype)
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * size * size * inner / best / 1e9


def _timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (Linux >= 4.0) so that VmHWM measures what follows."""
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
        return True
    except OSError:
        return False


def _peak_rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def scale_child(backend: str, probes: int, distractors: int, block_size: int | None, seed: int = 1) -> dict:
    """One scale measurement in this process: generate the float32 data, then time the search."""
    rng = np.random.default_rng(seed)
    per_identity = 10
    labels = np.r_[np.repeat(np.arange(probes // per_identity), per_identity), -np.ones(distractors, np.int64)]
    features = clustered_features(rng, labels, dtype=np.float32)
    recognition_labels = make_labels(labels)
    before = _rss_bytes()
    if not _reset_peak_rss():
        print("warning: cannot reset the peak RSS; it includes the data generation", file=sys.stderr)
    precision = np.float64 if backend == "numpy" else np.float32
    rate_before = gemm_rate(precision)  # the GEMM rate of this process just before and just after the search:
    tracemalloc.start()  # the same moment of a shared machine, not a quiet instant of another process
    kwargs = {} if block_size is None else {"block_size": block_size}
    start = time.perf_counter()
    result = cmc(recognition_labels, features, backend=backend, **kwargs)
    seconds = time.perf_counter() - start
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    peak_rss = _peak_rss_bytes()
    rate_after = gemm_rate(precision)
    return {
        "backend": backend,
        "probes": int((labels >= 0).sum()),
        "distractors": distractors,
        "dim": DIM,
        "seconds": seconds,
        "input_mib": features.nbytes / 2**20,
        "peak_rss_above_inputs_mib": max(0, peak_rss - before) / 2**20,
        "numpy_traced_peak_mib": traced_peak / 2**20,
        "cmc": result,
        "adjacent_gemm_gflops": (rate_before, rate_after),
    }


def scale_rows(
    probes: int = 20_000, distractors: int = 100_000, block_size: int | None = None, threads: int | None = None
) -> list[dict]:
    """The scale table: numpy and faiss, each in a fresh process, with the machine's GEMM rate of the same run.
    threads: the BLAS/OpenMP threads of the children and of the GEMM references (None: the libraries' default,
    every core); one thread per process is what a worker of a many-worker deployment runs, and on a shared machine
    it is also the measurement the neighbours disturb least."""
    env = dict(os.environ)
    if threads is not None:
        env.update(dict.fromkeys(("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"), str(threads)))
    with threadpool_limits(limits=threads):
        rates = {"float64": gemm_rate(np.float64), "float32": gemm_rate(np.float32)}
    rows = []
    for backend, precision in (("faiss", "float32"), ("numpy", "float64")):
        command = [
            sys.executable,
            __file__,
            "--scale-child",
            backend,
            "--scale-probes",
            str(probes),
            "--scale-distractors",
            str(distractors),
        ]
        if block_size is not None:
            command += ["--block-size", str(block_size)]
        output = subprocess.run(command, check=True, capture_output=True, text=True, env=env).stdout
        row = json.loads(output.strip().splitlines()[-1])
        gflops = 2 * row["probes"] * distractors * DIM / row["seconds"] / 1e9
        row.update(
            {
                "gemm_precision": precision,
                "gflops": gflops,
                "machine_gemm_gflops": rates[precision],
                "fraction_of_gemm": gflops / rates[precision],
                "fraction_of_adjacent_gemm": gflops / (sum(row["adjacent_gemm_gflops"]) / 2),
                "threads": threads or "all",
            }
        )
        rows.append(row)
    if rows[0]["cmc"] != rows[1]["cmc"]:
        raise AssertionError(f"the backends disagree: {rows[0]['cmc']} vs {rows[1]['cmc']}")
    return rows


# --------------------------------------------------------------------------------------------------- main


def machine() -> str:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, numpy {np.__version__}, "
        f"load average {load} at the start"
    )


def _print_official(rows: list[dict]) -> None:
    print(
        "| scorer | parse labels s | parse+validate features s | score s | total wall s | total CPU s | rank-1 "
        "| official ÷ ours (wall) | official ÷ ours (CPU) | per job, labels cached s | official ÷ per job (wall) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows[:-1]:
        print(
            f"| {row['scorer']} | {row['parse_labels_s']:.2f} | {row['parse_features_s']:.2f} | "
            f"{row['score_s']:.2f} | {row['total_s']:.2f} | {row['cpu_s']:.2f} | {row['rank1']:.4f} | "
            f"{row['speedup_vs_official']:.0f}× | {row['cpu_speedup_vs_official']:.0f}× | "
            f"{row['per_job_s']:.2f} | {row['per_job_speedup_vs_official']:.0f}× |"
        )
    ref = rows[-1]
    print(
        f"| {ref['scorer']} | | | matrix {ref['matrix_s_extrapolated']:.1f} + walk {ref['walk_s_extrapolated']:.1f}"
        f" (extrapolated) | {ref['total_s']:.1f} | {ref['cpu_s']:.1f} | {ref['rank1_on_sample']:.4f} (sample) "
        "| 1× | 1× | | 1× |"
    )
    print(
        f"\nreference measured on {ref['pairs_walked']:,} of {rows[0]['num_pairs']:,} pairs "
        f"({ref['matrix_rows_computed']:,} matrix rows: {ref['matrix_s_measured']:.2f} s, walk "
        f"{ref['walk_s_measured']:.2f} s); rank-1 on that sample: official {ref['rank1_on_sample']:.6f}, "
        f"ours {ref['ours_rank1_on_sample']:.6f}"
    )


def _print_scale(rows: list[dict]) -> None:
    print(
        "| backend | probes x distractors x d | seconds | GFLOP/s | machine GEMM GFLOP/s | fraction | "
        "GEMM GFLOP/s before / after, same process | fraction of their mean | "
        "peak RSS above inputs MiB | numpy peak MiB | rank-1 |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        before, after = row["adjacent_gemm_gflops"]
        print(
            f"| {row['backend']} | {row['probes']:,} x {row['distractors']:,} x {row['dim']} | "
            f"{row['seconds']:.1f} | {row['gflops']:.1f} | {row['machine_gemm_gflops']:.1f} "
            f"({row['gemm_precision']}) | {row['fraction_of_gemm']:.2f} | {before:.1f} / {after:.1f} | "
            f"{row['fraction_of_adjacent_gemm']:.2f} | {row['peak_rss_above_inputs_mib']:.0f} | "
            f"{row['numpy_traced_peak_mib']:.0f} | {row['cmc']['1']:.4f} |"
        )
    print(
        f"\nthreads: {rows[0]['threads']}; inputs: {rows[0]['input_mib']:.0f} MiB of float32 features; "
        f"faiss / numpy time ratio {rows[0]['seconds'] / rows[1]['seconds']:.2f}"
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["official", "scale"])
    parser.add_argument("--walk-fraction", type=float, default=0.02)
    parser.add_argument("--scale-probes", type=int, default=20_000)
    parser.add_argument("--scale-distractors", type=int, default=100_000)
    parser.add_argument("--block-size", type=int)
    parser.add_argument("--threads", type=int, help="BLAS/OpenMP threads of the scale run (default: all cores)")
    parser.add_argument("--scale-child", choices=["numpy", "faiss"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.scale_child:
        print(json.dumps(scale_child(args.scale_child, args.scale_probes, args.scale_distractors, args.block_size)))
        return 0
    print(f"machine: {machine()}")
    if args.only in (None, "official"):
        print("\n### Recognition, official size\n")
        _print_official(official_rows(args.walk_fraction))
    if args.only in (None, "scale"):
        print("\n### Scale: distractor search\n")
        _print_scale(scale_rows(args.scale_probes, args.scale_distractors, args.block_size, args.threads))
    return 0


if __name__ == "__main__":
    sys.exit(main())
