"""A soak: a steady stream of uploads and page reads for at least 10 minutes against gunicorn and `arena worker`
processes (the same real stack as benchmarks/rush.py), with the memory of the web and worker processes sampled.

    python benchmarks/soak.py --minutes 10 --teams 50 --every 2 --json soak.json

Reports: uploads accepted / scored / failed / lost (must be 0), upload latency p50/p99, reads and their errors,
and the resident memory (MiB) of the gunicorn processes and of the RQ workers (with their work-horses) at the
start, the end and the peak, sampled every --sample seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).parent))
from rush import Stack, make_files, percentile, setup_challenge, submit, unique_upload, wait_drained  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--teams", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--every", type=float, default=2.0, help="seconds between uploads")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--sample", type=float, default=15.0, help="seconds between memory samples")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    rng = random.Random(7)
    with tempfile.TemporaryDirectory(prefix="arena-soak-") as tmp:
        folder = Path(tmp)
        files = make_files(folder / "bundle", args.dim, per_day=1000)  # a soak is not about the daily limit
        with Stack(folder) as stack:
            tokens = setup_challenge(stack, folder / "bundle", args.teams)
            stack.start_web()
            stack.start_workers(args.workers)
            stop = threading.Event()
            reads = {"ok": 0, "errors": 0, "5xx": 0}

            def reader():
                session = requests.Session()
                while not stop.is_set():
                    path = rng.choice(
                        [
                            "/api/v1/challenges/rush/phases/final/tracks/detection/leaderboard",
                            "/api/v1/challenges/rush/phases/final/tracks/recognition/leaderboard",
                            "/c/rush",
                            "/metrics",
                        ]
                    )
                    try:
                        code = session.get(stack.url + path, timeout=60).status_code
                        reads["ok" if code < 400 else "errors"] += 1
                        reads["5xx"] += code >= 500
                    except requests.RequestException:
                        reads["errors"] += 1
                    stop.wait(0.5)

            samples = []

            def sampler():
                start = time.monotonic()
                while not stop.is_set():
                    samples.append({"t_s": round(time.monotonic() - start, 1), **stack.memory()})
                    stop.wait(args.sample)

            threads = [threading.Thread(target=reader, daemon=True), threading.Thread(target=sampler, daemon=True)]
            for t in threads:
                t.start()
            uploads, started = [], time.monotonic()
            deadline = started + args.minutes * 60
            print(f"soak: {args.minutes:.0f} min, one upload every {args.every} s, {args.workers} workers", flush=True)
            while time.monotonic() < deadline:
                i = rng.randrange(len(tokens))
                track = rng.choice(("detection", "recognition"))
                uploads.append(submit(stack.url, tokens[i], track, unique_upload(files, track, len(uploads))))
                time.sleep(max(0.0, args.every - uploads[-1][1]))
                if len(uploads) % 50 == 0:
                    print(f"  {time.monotonic() - started:.0f} s: {len(uploads)} uploads, {samples[-1]}", flush=True)
            accepted = [u[2] for u in uploads if u[0] == 202]
            waited, final = wait_drained(stack, accepted, timeout=1800)
            stop.set()
            for t in threads:
                t.join(30)
            samples.append({"t_s": round(time.monotonic() - started, 1), **stack.memory()})
        roles = ("web_mib", "web_max_process_mib", "workers_mib", "horses_mib")
        memory = {
            role: {
                "first": round(samples[0][role], 1),
                "last": round(samples[-1][role], 1),
                "peak": round(max(s[role] for s in samples), 1),
            }
            for role in roles
        }
        latencies = [u[1] for u in uploads]
        result = {
            "minutes": args.minutes,
            "soak_wall_s": round(time.monotonic() - started, 1),
            "uploads": len(uploads),
            "accepted": len(accepted),
            "refused": len(uploads) - len(accepted),
            "scored": sum(1 for s in final.values() if s == "finished"),
            "failed": sum(1 for s in final.values() if s == "failed"),
            "lost": sum(1 for s in final.values() if s not in ("finished", "failed")),
            "drain_after_stream_s": round(waited, 1),
            "upload_p50_s": round(percentile(latencies, 50), 3),
            "upload_p99_s": round(percentile(latencies, 99), 3),
            "reads": reads,
            "memory_mib": memory,
            "samples": samples,
            "cpus": os.cpu_count(),
            "load_avg_at_end": os.getloadavg(),
        }
        print(json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=1))
        if args.json:
            args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
