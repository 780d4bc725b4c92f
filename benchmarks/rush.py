"""A deadline rush on loopback: N teams upload within a W-second window (detection CSVs and recognition feature
files) to gunicorn, scored by `arena worker` processes; then how the drain time scales with 1, 2 and 4 workers.
Everything real: PostgreSQL (a schema of its own in 127.0.0.1:5432/test), a redis-server of its own on a free
port, gunicorn with the shipped settings (arena.gunicorn_conf: gevent workers), the `arena worker` command line,
the rate limits on (per account, so 5,000 teams behind one address are not refused; the phase's limits per team).

    python benchmarks/rush.py                                   # 500 teams, 60 s window, 2 workers, scaling 1/2/4
    python benchmarks/rush.py --teams 100 --dim 64 --scale-batch 40 --json rush.json
    # issue 14's rush at 10x the 2020 contest: 5,000 teams in 10 minutes, hidden labels a tenth of the official size
    python benchmarks/rush.py --teams 5000 --window 600 --det-images 1000 --rec-identities 200 --dim 128 \
        --eager 0.02 --scale-batch 0 --json rush5000.json

The hidden labels are the official size by default (the real 2020 detection GT: 10,000 images; a recognition test
set of 2,000 identities x 10 images + 2,500 distractors); --det-images and --rec-identities shrink them (the
distractors in proportion) so that a rush of thousands of uploads measures the platform (uploads, limits, queue,
standings, integrity screening) rather than thousands of official-size scorings that 2 cores cannot drain in
an hour; the per-worker scoring rate at the official size comes from a run with the defaults.

--eager F: a fraction F of the teams send per_day + 1 uploads at the same instant; the phase allows per_day, so
exactly one of each must be refused however the requests interleave (`limit_held` in the report).

Reports: accepted, refused (with status), scored, failed, lost (accepted and not finished nor failed at the end:
must be 0), upload latency p50/p99, the drain time (window start -> last submission scored), the scoring rate and,
per worker count, the time to drain a batch queued while no worker ran. `Stack` is shared with
benchmarks/soak.py.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import platform
import random
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
    limits: {per_day: PER_DAY, total: 100, in_flight: 1000}
    final_submissions: 2
"""
PER_DAY = 3


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


def make_files(
    folder: Path, dim: int, det_images: int = 10_000, rec_identities: int = 2000, seed: int = 0, per_day: int = PER_DAY
) -> dict:
    """The hidden labels (the real 2020 detection GT, or its first `det_images` images; a recognition test set of
    the official shape, `rec_identities` x 10 images + 1.25 distractors per identity image: 22,500 images at the
    official 2,000), the bundle (a team may upload `per_day` times a day) and a few submissions of each track, as
    bytes."""
    from scorer import formats

    rng = np.random.default_rng(seed)
    hidden = folder / "hidden"
    hidden.mkdir(parents=True, exist_ok=True)
    if not DET_GT.exists():
        sys.exit(f"the official detection labels are missing: {DET_GT}")
    gt = formats.read_detection_labels(DET_GT)
    if det_images < gt.num_images:
        keep = gt.image_index < det_images
        gt = formats.DetectionLabels(gt.image_names[:det_images], gt.image_index[keep], gt.boxes[keep])
    formats.write_detection_labels(hidden / "gt.csv", gt.image_names, gt.image_index, gt.boxes)
    sizes = np.full(rec_identities, 10)
    labels = np.r_[np.repeat(np.arange(rec_identities), sizes), -np.ones(rec_identities * 5 // 4, np.int64)]
    labels = labels[rng.permutation(len(labels))]
    rec = formats.RecognitionLabels(
        image_names=tuple(f"rec_{i:05d}.jpg" for i in range(len(labels))),
        boxes=np.tile([0.0, 0.0, 10.0, 10.0], (len(labels), 1)),
        labels=labels,
        pairs=formats.all_same_identity_pairs(labels),
    )
    formats.write_recognition_labels(hidden / "info.txt", rec)
    (folder / "challenge.yaml").write_text(BUNDLE.replace("PER_DAY", str(per_day)))
    det = [_detection_upload(gt, np.random.default_rng([seed, 0, k]), 2 + 2 * k) for k in range(3)]
    feats = [_features_upload(labels, dim, np.random.default_rng([seed, 1, k]), 3 - k) for k in range(3)]
    return {
        "detection": det,
        "recognition": feats,
        "rec_bytes": len(feats[0]),
        "det_bytes": len(det[0]),
        "det_images": gt.num_images,
        "det_boxes": len(gt.boxes),
        "rec_rows": len(labels),
        "gt": gt,
        "labels": labels,
        "dim": dim,
    }


def _detection_upload(gt, rng: np.random.Generator, sigma: float) -> bytes:
    """A detection CSV: every GT box jittered by `sigma` px, with a score, and one false positive per image."""
    boxes = gt.boxes + rng.normal(0, sigma, gt.boxes.shape)
    index = np.r_[gt.image_index, np.arange(gt.num_images)]
    corner = rng.uniform(0, 600, (gt.num_images, 2))
    boxes = np.vstack([boxes, np.hstack([corner, corner + rng.uniform(20, 80, (gt.num_images, 1))])])
    scores = np.r_[rng.uniform(0.3, 1, len(gt.boxes)), rng.uniform(0, 0.5, gt.num_images)]
    lines = [
        f"{gt.image_names[i]},{b[0]:.1f},{b[1]:.1f},{max(b[2], b[0] + 1):.1f},{max(b[3], b[1] + 1):.1f},face,{s:.4f}"
        for i, b, s in zip(index, boxes, scores, strict=True)
    ]
    return ("\n".join(lines) + "\n").encode()


def _features_upload(labels: np.ndarray, dim: int, rng: np.random.Generator, strength: float) -> bytes:
    """Raw float64 features (N x dim): identity centres of this model's own (so two teams' embeddings are
    unrelated, as two trained models' are) times `strength`, plus unit noise."""
    x = rng.normal(size=(len(labels), dim))
    known = labels >= 0
    x[known] += rng.normal(size=(labels.max() + 1, dim))[labels[known]] * strength
    return np.ascontiguousarray(x, dtype="<f8").tobytes()


def unique_upload(files: dict, track: str, key: int) -> bytes:
    """A submission of `track` that no other key gets: an independent team's predictions (the integrity checks
    compare every new submission with earlier ones, so a rush of a few repeated files would measure the flags of
    thousands of copies, not a contest)."""
    rng = np.random.default_rng([7, key])
    if track == "detection":
        return _detection_upload(files["gt"], rng, rng.uniform(2, 6))
    return _features_upload(files["labels"], files["dim"], rng, rng.uniform(1, 3))


# --------------------------------------------------------------------------------------------------- the stack


class Stack:
    """PostgreSQL schema + redis-server + gunicorn + `arena worker` processes, in a temp folder; all removed on
    exit."""

    def __init__(self, folder: Path, web_workers: int = 3, rate_limits: bool = True):
        self.folder, self.web_workers = folder, web_workers
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
            "ARENA_RATELIMIT": "1" if rate_limits else "0",  # the limiter counts in this stack's Redis
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
                "--config",
                "python:arena.gunicorn_conf",  # what `make serve`, the Procfile and the Dockerfile run: gevent
                "-w",
                str(self.web_workers),
                "-b",
                f"127.0.0.1:{self.web_port}",
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


def rush(
    stack: Stack, tokens: list[dict], files: dict, window: float, threads: int, eager: float = 0.0, seed: int = 1
) -> dict:
    """Each team uploads once at a uniformly random moment of the window (its track at random); a fraction `eager`
    of the teams sends PER_DAY + 1 uploads at that same moment instead (one must be refused)."""
    rng = random.Random(seed)
    eager_teams = set(rng.sample(range(len(tokens)), round(eager * len(tokens))))
    plan = sorted(
        (rng.uniform(0, window), i, rng.choice(("detection", "recognition")), copy)
        for i in range(len(tokens))
        for copy in range(PER_DAY + 1 if i in eager_teams else 1)
    )
    start = time.monotonic()

    def one(at: float, i: int, track: str, copy: int):
        time.sleep(max(0.0, start + at - time.monotonic()))
        content = unique_upload(files, track, i * (PER_DAY + 1) + copy)
        status, seconds, sub_id = submit(stack.url, tokens[i], track, content)
        return status, seconds, sub_id, i

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
    per_team: dict[int, int] = {}
    for status, _s, _id, team in results:
        per_team[team] = per_team.get(team, 0) + (status == 202)
    eager_accepted = sorted({per_team[t] for t in eager_teams})
    scored = sum(1 for s in final.values() if s == "finished")
    return {
        "teams": len(tokens),
        "uploads": len(plan),
        "eager_teams": len(eager_teams),
        "window_s": window,
        "accepted": len(accepted),
        "refused": refused,
        # every team accepted at most PER_DAY, and each eager team exactly PER_DAY of its PER_DAY + 1
        "limit_held": max(per_team.values()) <= PER_DAY and eager_accepted in ([], [PER_DAY]),
        "eager_accepted_per_team": eager_accepted,
        "scored": scored,
        "failed": sum(1 for s in final.values() if s == "failed"),
        "lost": sum(1 for s in final.values() if s not in ("finished", "failed")),
        "uploads_done_s": round(uploads_done, 1),
        "drain_s": round(drain, 1),
        "drain_after_window_s": round(drain - window, 1),
        "scored_per_s": round(scored / drain, 2),
        "upload_p50_s": round(percentile(latencies, 50), 3),
        "upload_p99_s": round(percentile(latencies, 99), 3),
        "upload_max_s": round(max(latencies), 3),
        "memory_peak_mib": {k: round(v, 1) for k, v in memory_peak.items()},
    }


def scaling(stack: Stack, tokens: list[dict], files: dict, batch: int, counts: list[int]) -> list[dict]:
    """For each worker count: queue `batch` uploads with no worker running, start the workers, time the drain.
    Each upload comes from a team of its own, counted from the last (a team's daily limit is never the limit)."""
    rows = []
    for round_, n in enumerate(counts):
        stack.stop_workers()
        ids = []
        for i in range(batch):
            track = ("detection", "recognition")[i % 2]
            key = round_ * batch + i
            content = unique_upload(files, track, 10_000_000 + key)
            status, _s, sub_id = submit(stack.url, tokens[len(tokens) - 1 - key], track, content)
            if status == 202:
                ids.append(sub_id)
        started = time.monotonic()
        stack.start_workers(n)
        waited, final = wait_drained(stack, ids, timeout=3600)
        drain_s = time.monotonic() - started
        rows.append(
            {
                "workers": n,
                "batch": len(ids),
                "drain_s": round(drain_s, 1),
                "scored_per_s": round(len(ids) / drain_s, 3),
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
    parser.add_argument("--det-images", type=int, default=10_000, help="detection GT images (official: 10,000)")
    parser.add_argument("--rec-identities", type=int, default=2000, help="test identities (official: 2,000)")
    parser.add_argument("--eager", type=float, default=0.0, help="fraction of teams that send PER_DAY + 1 at once")
    parser.add_argument("--web-workers", type=int, default=2, help="gunicorn (gevent) processes")
    parser.add_argument("--no-rate-limits", action="store_true")
    parser.add_argument("--no-rush", action="store_true", help="only the drain of --scale-batch per worker count")
    parser.add_argument("--threads", type=int, default=200, help="client threads (uploads in flight at once)")
    parser.add_argument("--scale-batch", type=int, default=60, help="uploads per worker-count run (0: skip)")
    parser.add_argument("--scale-workers", default="1,2,4")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="arena-rush-") as tmp:
        folder = Path(tmp)
        t0 = time.monotonic()
        files = make_files(folder / "bundle", args.dim, args.det_images, args.rec_identities)
        print(
            f"files: detection CSV {files['det_bytes'] / 2**20:.1f} MiB, features {files['rec_bytes'] / 2**20:.1f} MiB"
            f" ({time.monotonic() - t0:.0f} s)",
            flush=True,
        )
        with Stack(folder, args.web_workers, rate_limits=not args.no_rate_limits) as stack:
            t0 = time.monotonic()
            tokens = setup_challenge(stack, folder / "bundle", args.teams)
            print(f"{args.teams} teams with a token each in {time.monotonic() - t0:.0f} s", flush=True)
            stack.start_web()
            stack.start_workers(args.workers)
            print(f"rush: {args.teams} teams in {args.window:.0f} s against {args.workers} workers", flush=True)
            result = {}
            if not args.no_rush:
                result["rush"] = rush(stack, tokens, files, args.window, args.threads, args.eager)
                print(json.dumps(result["rush"], indent=1), flush=True)
            if args.scale_batch:
                counts = [int(c) for c in args.scale_workers.split(",")]
                result["scaling"] = scaling(stack, tokens, files, args.scale_batch, counts)
        result["machine"] = {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_avg_at_end": os.getloadavg(),
            "dim": args.dim,
            "web": f"gunicorn, {args.web_workers} gevent workers (arena.gunicorn_conf)",
            "rate_limits": not args.no_rate_limits,
            **{k: files[k] for k in ("det_bytes", "rec_bytes", "det_images", "det_boxes", "rec_rows")},
        }
        print(json.dumps(result, indent=1))
        if args.json:
            args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
