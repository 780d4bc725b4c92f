"""A deadline rush on loopback: N teams upload within a W-second window (detection CSVs and recognition feature
files at the official row counts) to gunicorn, scored by `arena worker` processes; then how the drain time scales
with 1, 2 and 4 workers. Everything real: PostgreSQL (a schema of its own in 127.0.0.1:5432/test), a redis-server
of its own on a free port, gunicorn, the `arena worker` command line.

    python benchmarks/rush.py                                   # 500 teams, 60 s window, 2 workers, scaling 1/2/4
    python benchmarks/rush.py --teams 100 --dim 64 --scale-batch 40 --json rush.json

Reports: accepted, refused (with status), scored, failed, lost (accepted and not finished nor failed at the end:
must be 0), upload latency p50/p99, the drain time (window start -> last submission scored) and, per worker count,
the time to drain a batch queued while no worker ran. `Stack` is shared with benchmarks/soak.py.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import requests

ROOT = Path(__file__).resolve().parents[1]
POSTGRES_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
DET_GT = ROOT.parent / "shared" / "data" / "icartoonface" / "personai_icartoonface_detval.csv"
BIN = Path(sys.executable).parent

BUNDLE = """
slug: rush
title: Deadline rush
description: "A benchmark challenge at the official sizes."
rules: "none"
team_size: 5
splits: {seed: rush, public_fraction: 0.5}
tracks:
  - {slug: detection, kind: detection, title: Detection, labels: {detection_gt: hidden/gt.csv}}
  - {slug: recognition, kind: recognition, title: Recognition, labels: {test_info: hidden/info.txt}}
phases:
  - slug: final
    title: Final
    starts: 2020-01-01
    ends: 2099-01-01
    limits: {per_day: 1000, total: 1000, in_flight: 1000}
    final_submissions: 2
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_mib(pid: int) -> float:
    """Resident memory of one process, MiB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


# --------------------------------------------------------------------------------------------------- data


def make_files(folder: Path, dim: int, seed: int = 0) -> dict:
    """The hidden labels (the real 2020 detection GT; a recognition test set of the official shape: 22,500 images,
    2,000 identities, 2,500 distractors) and a few submissions of each track, as bytes."""
    from scorer import formats

    rng = np.random.default_rng(seed)
    hidden = folder / "hidden"
    hidden.mkdir(parents=True, exist_ok=True)
    if not DET_GT.exists():
        sys.exit(f"the official detection labels are missing: {DET_GT}")
    shutil.copy(DET_GT, hidden / "gt.csv")
    gt = formats.read_detection_labels(hidden / "gt.csv")
    sizes = np.full(2000, 10)
    labels = np.r_[np.repeat(np.arange(2000), sizes), -np.ones(2500, np.int64)]
    labels = labels[rng.permutation(len(labels))]
    rec = formats.RecognitionLabels(
        image_names=tuple(f"rec_{i:05d}.jpg" for i in range(len(labels))),
        boxes=np.tile([0.0, 0.0, 10.0, 10.0], (len(labels), 1)),
        labels=labels,
        pairs=formats.all_same_identity_pairs(labels),
    )
    formats.write_recognition_labels(hidden / "info.txt", rec)
    (folder / "challenge.yaml").write_text(BUNDLE)
    det, feats = [], []
    for k in range(3):  # detection CSVs: the GT boxes jittered, with scores, and some false positives
        boxes = gt.boxes + rng.normal(0, 2 + 2 * k, gt.boxes.shape)
        lines = [
            f"{gt.image_names[i]},{b[0]:.1f},{b[1]:.1f},{max(b[2], b[0] + 1):.1f},{max(b[3], b[1] + 1):.1f},face,"
            f"{s:.4f}"
            for i, b, s in zip(gt.image_index, boxes, rng.random(len(boxes)), strict=True)
        ]
        det.append(("\n".join(lines) + "\n").encode())
    centers = rng.normal(size=(2000, dim))
    for k in range(3):  # feature files (raw float64, 22,500 x dim), noisier each time
        x = rng.normal(size=(len(labels), dim))
        known = labels >= 0
        x[known] = centers[labels[known]] * (3 - k) + x[known]
        feats.append(np.ascontiguousarray(x, dtype="<f8").tobytes())
    return {"detection": det, "recognition": feats, "rec_bytes": len(feats[0]), "det_bytes": len(det[0])}


# --------------------------------------------------------------------------------------------------- the stack


class Stack:
    """PostgreSQL schema + redis-server + gunicorn + `arena worker` processes, in a temp folder; all removed on
    exit."""

    def __init__(self, folder: Path, web_workers: int = 3, web_threads: int = 4):
        self.folder, self.web_workers, self.web_threads = folder, web_workers, web_threads
        self.schema = f"arena_bench_{uuid.uuid4().hex[:8]}"
        self.redis_port, self.web_port = free_port(), free_port()
        self.redis = self.web = None
        self.workers: list[subprocess.Popen] = []
        self.env = {
            **os.environ,
            "DATABASE_URL": f"{POSTGRES_URL}?options=-csearch_path%3D{self.schema}",
            "REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "ARENA_INSTANCE": str(folder / "instance"),
            "ARENA_STORAGE_DIR": str(folder / "storage"),
            "SECRET_KEY": "bench",
            "ARENA_RATELIMIT": "0",
            "ARENA_LOG_FORMAT": "json",
        }
        self.url = f"http://127.0.0.1:{self.web_port}"

    def __enter__(self):
        from sqlalchemy import create_engine, text

        admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{self.schema}"'))
        admin.dispose()
        self.redis = subprocess.Popen(
            ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            cwd=self.folder,
            stdout=subprocess.DEVNULL,
        )
        subprocess.run([str(BIN / "arena"), "db", "upgrade"], env=self.env, check=True, cwd=self.folder)
        return self

    def start_web(self) -> None:
        log = open(self.folder / "web.log", "wb")  # noqa: SIM115
        self.web = subprocess.Popen(
            [
                str(BIN / "gunicorn"),
                "-w",
                str(self.web_workers),
                "--threads",
                str(self.web_threads),
                "-b",
                f"127.0.0.1:{self.web_port}",
                "--timeout",
                "300",
                "arena:create_app()",
            ],
            env=self.env,
            cwd=self.folder,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.5)
        raise RuntimeError("gunicorn did not start; see web.log")

    def start_workers(self, n: int, watchdog_every: float = 30) -> None:
        for _ in range(n):
            log = open(self.folder / f"worker-{len(self.workers)}.log", "wb")  # noqa: SIM115
            self.workers.append(
                subprocess.Popen(
                    [str(BIN / "arena"), "worker", "--watchdog-every", str(watchdog_every)],
                    env=self.env,
                    cwd=self.folder,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )

    def stop_workers(self) -> None:
        for proc in self.workers:
            proc.send_signal(signal.SIGTERM)  # RQ's warm shutdown: finish the job in hand
        for proc in self.workers:
            try:
                proc.wait(120)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.workers = []

    def memory(self) -> dict[str, float]:
        """RSS in MiB: the gunicorn master and its workers, the RQ workers and their work-horses."""
        web = [self.web.pid, *children(self.web.pid)] if self.web else []
        workers = [p.pid for p in self.workers]
        horses = [c for p in self.workers for c in children(p.pid)]
        return {
            "web_mib": sum(rss_mib(p) for p in web),
            "web_max_process_mib": max((rss_mib(p) for p in web), default=0.0),
            "workers_mib": sum(rss_mib(p) for p in workers),
            "horses_mib": sum(rss_mib(p) for p in horses),
        }

    def __exit__(self, *exc):
        from sqlalchemy import create_engine, text

        self.stop_workers()
        for proc in (self.web, self.redis):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
        admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{self.schema}" CASCADE'))
        admin.dispose()


def setup_challenge(stack: Stack, bundle: Path, teams: int) -> list[dict]:
    """Load the bundle and make `teams` verified users, each captain of a team, with an API token each."""
    os.environ.update({k: v for k, v in stack.env.items() if k.startswith(("DATABASE", "REDIS", "ARENA", "SECRET"))})
    from arena import create_app
    from arena.db import get_session
    from arena.services import accounts
    from arena.services import teams as team_service
    from arena.services.challenges import load_bundle, read_bundle

    app = create_app({"ARGON2": {"time_cost": 1, "memory_cost": 64, "parallelism": 1}})
    out = []
    with app.app_context():
        session = get_session()
        text_, base = read_bundle(bundle)
        challenge = load_bundle(session, text_, base)
        for i in range(teams):
            user = accounts.register(session, f"team{i}@example.com", "correct horse battery")
            user.verified = True
            session.commit()
            team_service.create_team(session, user, challenge, f"Team {i}", True)
            _token, plaintext = accounts.create_api_token(session, user, "bench")
            out.append({"Authorization": f"Bearer {plaintext}"})
    return out


def submit(url: str, headers: dict, track: str, content: bytes) -> tuple[int, float, int | None]:
    """POST one upload; (status, seconds, submission id or None)."""
    name = "sub.csv" if track == "detection" else "feats.bin"
    started = time.perf_counter()
    try:
        response = requests.post(
            f"{url}/api/v1/challenges/rush/submissions",
            data={"phase": "final", "track": track},
            files={"file": (name, content)},
            headers=headers,
            timeout=300,
        )
    except requests.RequestException:
        return 0, time.perf_counter() - started, None
    elapsed = time.perf_counter() - started
    sub_id = response.json().get("id") if response.status_code == 202 else None
    return response.status_code, elapsed, sub_id


def states_of(stack: Stack, ids: list[int]) -> dict[int, str]:
    from sqlalchemy import create_engine, text

    engine = create_engine(stack.env["DATABASE_URL"])
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, state FROM submission")).all()
    engine.dispose()
    found = dict(rows)
    return {i: found.get(i, "missing") for i in ids}


def wait_drained(stack: Stack, ids: list[int], timeout: float) -> tuple[float, dict[int, str]]:
    """Poll until every id is finished or failed (or timeout); (seconds waited, final states)."""
    started = time.monotonic()
    while True:
        now = states_of(stack, ids)
        if all(s in ("finished", "failed") for s in now.values()) or time.monotonic() - started > timeout:
            return time.monotonic() - started, now
        time.sleep(1)


def rush(stack: Stack, tokens: list[dict], files: dict, window: float, threads: int, seed: int = 1) -> dict:
    rng = random.Random(seed)
    plan = sorted((rng.uniform(0, window), i, rng.choice(("detection", "recognition"))) for i in range(len(tokens)))
    results: list[tuple[int, float, int | None, str]] = []
    start = time.monotonic()

    def one(at: float, i: int, track: str):
        time.sleep(max(0.0, start + at - time.monotonic()))
        content = files[track][i % len(files[track])]
        status, seconds, sub_id = submit(stack.url, tokens[i], track, content)
        return status, seconds, sub_id, track

    memory_peak = {"web_mib": 0.0, "workers_mib": 0.0, "horses_mib": 0.0}
    with cf.ThreadPoolExecutor(threads) as pool:
        futures = [pool.submit(one, *p) for p in plan]
        while not all(f.done() for f in futures):
            for key, value in stack.memory().items():
                if key in memory_peak:
                    memory_peak[key] = max(memory_peak[key], value)
            time.sleep(1)
        results = [f.result() for f in futures]
    uploads_done = time.monotonic() - start
    accepted = [r[2] for r in results if r[0] == 202]
    waited, final = wait_drained(stack, accepted, timeout=7200)
    drain = time.monotonic() - start
    latencies = [r[1] for r in results]
    refused: dict[str, int] = {}
    for status, *_ in results:
        if status != 202:
            refused[str(status)] = refused.get(str(status), 0) + 1
    return {
        "teams": len(tokens),
        "window_s": window,
        "accepted": len(accepted),
        "refused": refused,
        "scored": sum(1 for s in final.values() if s == "finished"),
        "failed": sum(1 for s in final.values() if s == "failed"),
        "lost": sum(1 for s in final.values() if s not in ("finished", "failed")),
        "uploads_done_s": round(uploads_done, 1),
        "drain_s": round(drain, 1),
        "drain_after_window_s": round(drain - window, 1),
        "upload_p50_s": round(percentile(latencies, 50), 3),
        "upload_p99_s": round(percentile(latencies, 99), 3),
        "upload_max_s": round(max(latencies), 3),
        "memory_peak_mib": {k: round(v, 1) for k, v in memory_peak.items()},
    }


def scaling(stack: Stack, tokens: list[dict], files: dict, batch: int, counts: list[int]) -> list[dict]:
    """For each worker count: queue `batch` uploads with no worker running, start the workers, time the drain."""
    rows = []
    for n in counts:
        stack.stop_workers()
        ids = []
        for i in range(batch):
            track = ("detection", "recognition")[i % 2]
            status, _s, sub_id = submit(stack.url, tokens[i % len(tokens)], track, files[track][i % 3])
            if status == 202:
                ids.append(sub_id)
        started = time.monotonic()
        stack.start_workers(n)
        waited, final = wait_drained(stack, ids, timeout=3600)
        rows.append(
            {
                "workers": n,
                "batch": len(ids),
                "drain_s": round(time.monotonic() - started, 1),
                "scored": sum(1 for s in final.values() if s == "finished"),
                "lost": sum(1 for s in final.values() if s not in ("finished", "failed")),
            }
        )
        print(f"  {n} workers: {rows[-1]}", flush=True)
    if rows:
        base = rows[0]["drain_s"]
        for row in rows:
            row["speedup_vs_1"] = round(base / row["drain_s"], 2) if row["drain_s"] else None
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teams", type=int, default=500)
    parser.add_argument("--window", type=float, default=60.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--dim", type=int, default=512, help="recognition feature dimension (official rows: 22,500)")
    parser.add_argument("--threads", type=int, default=200, help="client threads (uploads in flight at once)")
    parser.add_argument("--scale-batch", type=int, default=60, help="uploads per worker-count run (0: skip)")
    parser.add_argument("--scale-workers", default="1,2,4")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="arena-rush-") as tmp:
        folder = Path(tmp)
        t0 = time.monotonic()
        files = make_files(folder / "bundle", args.dim)
        print(
            f"files: detection CSV {files['det_bytes'] / 2**20:.1f} MiB, features {files['rec_bytes'] / 2**20:.1f} MiB"
            f" ({time.monotonic() - t0:.0f} s)",
            flush=True,
        )
        with Stack(folder) as stack:
            tokens = setup_challenge(stack, folder / "bundle", args.teams)
            stack.start_web()
            stack.start_workers(args.workers)
            print(f"rush: {args.teams} teams in {args.window:.0f} s against {args.workers} workers", flush=True)
            result = {"rush": rush(stack, tokens, files, args.window, args.threads)}
            print(json.dumps(result["rush"], indent=1), flush=True)
            if args.scale_batch:
                counts = [int(c) for c in args.scale_workers.split(",")]
                result["scaling"] = scaling(stack, tokens, files, args.scale_batch, counts)
        result["machine"] = {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_avg_at_end": os.getloadavg(),
            "dim": args.dim,
            "det_bytes": files["det_bytes"],
            "rec_bytes": files["rec_bytes"],
        }
        print(json.dumps(result, indent=1))
        if args.json:
            args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
