"""Platform benchmarks (BENCHMARKS.md ## Platform), measured side by side in one run on this machine:

1. leaderboard page and API latency (p50/p99) and throughput under `wrk` on loopback (--connections, 16), with
   5,000 teams and 200,000 finished submissions in PostgreSQL (--teams, --submissions), read from the stored
   standings (rebuilt once after the bulk load, timed) and answered from each process's memory while unchanged
   (arena/board_push.py), next to a hello-world route (/healthz) of the same gunicorn (the shipped
   arena.gunicorn_conf: gevent workers) in the same run (the ceiling), as a ratio; the public routes again at a
   steady --rate requests/s (1,000: every one of 5,000 teams reloading its board every 5 s) for the latency a
   visitor sees, since at saturation p99 is the queue's (on 2 shared cores /healthz's own p99 there is ~100 ms);
   and the organizers' dashboard
   and paginated console lists (teams, submissions, audit log) with an organizer's cookie, at
   --admin-connections (4: a contest's organizers are a handful of people);
2. an official-size detection upload (the real 2020 GT: 10,000 images, 18,647 boxes) and an official-size
   recognition upload (22,500 x 512 float64 = 92 MB) from the request to the score on the board, in seconds,
   through gunicorn, a real RQ worker and Redis;
3. the peak memory (RSS) of the web worker processes while a 100 MB file uploads, next to their idle RSS.

    python benchmarks/platform_bench.py [--duration 10] [--connections 16] [--teams 5000] [--submissions 200000]
                                        [--skip-uploads]

Needs PostgreSQL at BENCH_POSTGRES_URL (default 127.0.0.1:5432/test; a fresh schema is made and dropped),
Redis at BENCH_REDIS_URL (default 127.0.0.1:6379/14, flushed), `wrk` (apt-get install wrk) and the real detection
labels at ../shared/data/icartoonface/ (else a synthetic GT of the same size is used).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import requests

ROOT = Path(__file__).resolve().parents[1]
PG = os.environ.get("BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
REAL_GT = ROOT.parent / "shared" / "data" / "icartoonface" / "personai_icartoonface_detval.csv"
PORT = 8077
TEAMS, SUBMISSIONS = 5_000, 200_000


def _env(schema: str, instance: Path) -> dict:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=f"{PG}?options=-csearch_path%3D{schema}",
        REDIS_URL=REDIS,
        ARENA_INSTANCE=str(instance),
        ARENA_STORAGE_DIR=str(instance / "storage"),
        SECRET_KEY="bench",
        ARENA_RATELIMIT="0",
        ARENA_QUEUE="arena-bench",
    )
    return env


def populate(schema: str, labels_dir: Path, instance: Path, teams: int = TEAMS, submissions: int = SUBMISSIONS) -> dict:
    """Schema by the migrations, the bundle with labels, `teams` teams and `submissions` finished submissions (half
    per track), then the stored standings rebuilt (a bulk load bypasses the hooks that keep them), timed."""
    from sqlalchemy import create_engine, insert, text

    os.environ.update(_env(schema, instance))
    admin = create_engine(PG, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    from arena import create_app
    from arena.cli import upgrade_database
    from arena.db import get_session
    from arena.models import Membership, Submission, Team, User
    from arena.services import accounts
    from arena.services.challenges import load_bundle

    upgrade_database(os.environ["DATABASE_URL"])
    app = create_app({"ARGON2": {"time_cost": 1, "memory_cost": 64, "parallelism": 1}})
    with app.app_context():
        session = get_session()
        challenge = load_bundle(session, BUNDLE, labels_dir)
        phase = challenge.phases[0]
        det, rec = challenge.tracks
        user = accounts.register(session, "bench@example.com", "bench-password")
        user.verified = True
        session.commit()
        _token, plaintext = accounts.create_api_token(session, user, "bench")
        hashed = user.password_hash
        session.execute(
            insert(User),
            [{"email": f"u{i}@bench.local", "password_hash": hashed, "verified": True} for i in range(teams)],
        )
        ids = [
            r[0] for r in session.execute(text("SELECT id FROM \"user\" WHERE email LIKE '%@bench.local' ORDER BY id"))
        ]
        session.execute(
            insert(Team),
            [
                {
                    "challenge_id": challenge.id,
                    "name": f"Team {i:04d}",
                    "captain_id": uid,
                    "invite_code": secrets.token_urlsafe(12),
                }
                for i, uid in enumerate(ids)
            ],
        )
        team_ids = [r[0] for r in session.execute(text("SELECT id FROM team ORDER BY id"))]
        session.execute(
            insert(Membership),
            [{"challenge_id": challenge.id, "team_id": t, "user_id": u} for t, u in zip(team_ids, ids, strict=True)],
        )
        rng = np.random.default_rng(0)
        start = dt.datetime(2020, 4, 1)
        rows = []
        for k in range(submissions):
            pub, priv = float(rng.uniform(0.3, 0.95)), float(rng.uniform(0.3, 0.95))
            rows.append(
                {
                    "team_id": team_ids[k % teams],
                    "user_id": ids[k % teams],
                    "phase_id": phase.id,
                    "track_id": det.id if (k // teams) % 2 == 0 else rec.id,
                    "state": "finished",
                    "public_score": pub,
                    "private_score": priv,
                    "original_name": "x.csv",
                    "scores": {"public": {"ap50": pub, "coco_ap": pub / 2}, "private": {"ap50": priv}},
                    "created_at": start + dt.timedelta(minutes=k),
                    "finished_at": start + dt.timedelta(minutes=k),
                }
            )
        for chunk in range(0, len(rows), 5000):
            session.execute(insert(Submission), rows[chunk : chunk + 5000])
        session.commit()
        # the bench user joins a team with room to submit
        bench_team = Team(
            challenge_id=challenge.id, name="Bench", captain_id=user.id, invite_code=secrets.token_urlsafe(12)
        )
        session.add(bench_team)
        session.flush()
        session.add(Membership(challenge_id=challenge.id, team_id=bench_team.id, user_id=user.id))
        session.commit()
        session.execute(text("ANALYZE"))  # what autovacuum does soon after a bulk load
        session.commit()
        from arena import standings

        t0 = time.perf_counter()
        boards = standings.rebuild(session)
        session.commit()
        rebuild_s = time.perf_counter() - t0
        session.execute(text("ANALYZE"))
        session.commit()
        organizer = accounts.register(session, "org@example.com", "bench-password")
        organizer.verified = organizer.is_organizer = True
        session.commit()
    app.config["WTF_CSRF_ENABLED"] = False
    client = app.test_client()  # a signed session cookie that gunicorn (same SECRET_KEY) accepts
    client.post("/login", data={"email": "org@example.com", "password": "bench-password"})
    cookie = client.get_cookie("session")
    return {
        "token": plaintext,
        "slug": challenge.slug,
        "cookie": f"session={cookie.value}" if cookie else None,
        "standings_rebuild_s": rebuild_s,
        "boards": boards,
    }


BUNDLE = """
slug: bench
title: Benchmark challenge
team_size: 5
splits: {seed: bench, public_fraction: 0.5}
tracks:
  - {slug: detection, kind: detection, labels: {detection_gt: gt.csv}}
  - {slug: recognition, kind: recognition, max_upload_mb: 110, labels: {test_info: info.txt}}
phases:
  - {slug: dev, title: Development, starts: 2020-01-01, ends: 2099-01-01,
     limits: {per_day: 1000, total: 100000, in_flight: 10}}
"""


def make_labels(folder: Path) -> tuple[Path, Path, Path]:
    """Official-size labels (the real detection GT when present) and one submission of each track."""
    from scorer import formats

    folder.mkdir(parents=True, exist_ok=True)
    if REAL_GT.exists():
        shutil.copyfile(REAL_GT, folder / "gt.csv")
    else:
        rng = np.random.default_rng(1)
        names = [f"{i:05d}.jpg" for i in range(10_000)]
        index = np.sort(rng.integers(0, 10_000, 18_647))
        corners = rng.integers(0, 800, (18_647, 2)).astype(float)
        formats.write_detection_labels(folder / "gt.csv", names, index, np.hstack([corners, corners + 60]))
    gt = formats.read_detection_labels(folder / "gt.csv")
    rng = np.random.default_rng(2)
    boxes = gt.boxes + rng.normal(0, 3, gt.boxes.shape)
    boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2])
    extra = rng.integers(0, gt.num_images, 3 * len(boxes))  # plus three false positives a box
    fp_corners = rng.uniform(0, 1000, (len(extra), 2))
    all_index = np.concatenate([gt.image_index, extra])
    all_boxes = np.vstack([boxes, np.hstack([fp_corners, fp_corners + 40])])
    scores = np.concatenate([rng.uniform(0.5, 1, len(boxes)), rng.uniform(0, 0.8, len(extra))])
    order = np.argsort(all_index, kind="stable")
    formats.write_detection_submission(
        folder / "dets.csv", gt.image_names, formats.Detections(all_index[order], all_boxes[order], scores[order])
    )
    labels = np.concatenate([np.repeat(np.arange(2000), 10), -np.ones(2500, dtype=np.int64)])
    names = tuple(f"rec_{i:05d}.jpg" for i in range(len(labels)))
    rec = formats.RecognitionLabels(
        names, np.tile([0.0, 0.0, 50.0, 50.0], (len(labels), 1)), labels, formats.all_same_identity_pairs(labels)
    )
    formats.write_recognition_labels(folder / "info.txt", rec)
    centers = rng.normal(size=(2000, 512))
    feats = rng.normal(size=(len(labels), 512))
    feats[labels >= 0] = centers[labels[labels >= 0]] * 0.6 + feats[labels >= 0]
    formats.write_features(folder / "feats.bin", feats)
    return folder / "gt.csv", folder / "dets.csv", folder / "feats.bin"


def wrk(
    url: str, duration: int, connections: int, threads: int = 2, headers: tuple[str, ...] = (), rate: float = 0
) -> dict:
    """wrk's closed loop: each connection sends its next request when the last is answered (the throughput), or,
    with `rate`, after a pause of connections / rate seconds (wrk's Lua `delay()`): about `rate` requests/s
    offered, so the latency measured is the service's, not the queue of a saturated server."""
    extra = [arg for header in headers for arg in ("-H", header)]
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        if rate:
            script.write(f"function delay()\n  return {connections * 1000 / rate:.3f}\nend\n")
            script.flush()
            extra += ["-s", script.name]
        out = subprocess.run(
            ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--timeout", "10s", "--latency", *extra, url],
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    def ms(label):
        value, unit = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
        return float(value) * {"us": 1e-3, "ms": 1, "s": 1e3}[unit]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    timeouts = re.search(r"timeout (\d+)", out)
    if not re.search(r"^\s+50%", out, re.M):  # nothing completed within the run
        return {"rps": 0.0, "p50_ms": None, "p99_ms": None, "non_2xx": 0, "timeouts": int(timeouts.group(1))}
    return {
        "timeouts": int(timeouts.group(1)) if timeouts else 0,
        "bytes_per_response": _bytes_per_response(out),
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": ms("50%"),
        "p99_ms": ms("99%"),
        "non_2xx": int(errors.group(1)) if errors else 0,
    }


def _bytes_per_response(out: str) -> float | None:
    found = re.search(r"(\d+) requests in [\d.]+\w+, ([\d.]+)(B|KB|MB|GB) read", out)
    if not found:
        return None
    count, size, unit = int(found.group(1)), float(found.group(2)), found.group(3)
    return size * {"B": 1, "KB": 2**10, "MB": 2**20, "GB": 2**30}[unit] / max(count, 1)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def start_gunicorn(env: dict, workers: int, base: str) -> subprocess.Popen:
    process = subprocess.Popen(
        [
            str(ROOT / ".venv" / "bin" / "gunicorn"),
            "--config",
            "python:arena.gunicorn_conf",  # what `make serve`, the Procfile and the Dockerfile run: gevent workers
            "--bind",
            f"127.0.0.1:{PORT}",
            "--workers",
            str(workers),
            "--log-level",
            "warning",
            "arena:create_app()",
        ],
        env=env,
        cwd=ROOT,
    )
    for _ in range(150):
        if subprocess.run(["curl", "-sf", "-o", "/dev/null", f"{base}/healthz"]).returncode == 0:
            return process
        time.sleep(0.2)
    process.terminate()
    raise RuntimeError("gunicorn did not start")


def measure(
    url: str,
    args,
    cookie: str | None = None,
    headers: tuple[str, ...] = (),
    expect: str = "200",
    connections=None,
    paced: bool = True,
) -> dict:
    """The route at saturation (wrk's closed loop: throughput, and the latency of a full queue) and, for the public
    routes, at --rate requests/s offered (the latency a visitor sees at that load)."""
    headers = ((f"Cookie: {cookie}",) if cookie else ()) + headers
    curl_headers = [arg for header in headers for arg in ("-H", header)]
    warm = subprocess.run(  # warm: imports, the board built for its version; and the status wrk does not check
        ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", *curl_headers, url], capture_output=True, text=True
    )
    if warm.stdout != expect:
        raise RuntimeError(f"{url} answers {warm.stdout}, not {expect}")
    result = wrk(url, args.duration, connections or args.connections, headers=headers)
    result["connections"] = connections or args.connections
    if paced and args.rate:
        result["paced"] = wrk(url, args.duration, args.connections, threads=1, headers=headers, rate=args.rate)
    print(url, result, flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--admin-connections", type=int, default=4, help="wrk connections for the organizers' pages")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--rate",
        type=float,
        default=1000,
        help="requests/s offered in the paced runs (0: none); 1,000/s is 5,000 teams each reloading every 5 s",
    )
    parser.add_argument("--teams", type=int, default=TEAMS)
    parser.add_argument("--submissions", type=int, default=SUBMISSIONS)
    parser.add_argument("--skip-uploads", action="store_true")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is missing: apt-get install -y wrk (make bench-platform installs it)")
    schema = f"arena_bench_{uuid.uuid4().hex[:8]}"
    work = Path(tempfile.mkdtemp(prefix="arena-bench-"))
    instance = work / "instance"
    from redis import Redis

    Redis.from_url(REDIS).flushdb()
    print("making labels and submissions ...", flush=True)
    _gt, dets, feats = make_labels(work / "bundle")
    print(f"populating PostgreSQL schema {schema}: {args.teams} teams, {args.submissions} submissions ...", flush=True)
    t0 = time.perf_counter()
    info = populate(schema, work / "bundle", instance, args.teams, args.submissions)
    print(f"populated in {time.perf_counter() - t0:.0f} s; standings rebuilt in {info['standings_rebuild_s']:.1f} s")
    env = _env(schema, instance)
    base = f"http://127.0.0.1:{PORT}"
    board = f"/c/{info['slug']}/dev/detection/leaderboard"
    api = f"/api/v1/challenges/{info['slug']}/phases/dev/tracks/detection/leaderboard"
    worker = gunicorn = None
    results: dict = {
        "machine": f"{platform.node()}: {os.cpu_count()} CPUs shared, {platform.platform()}",
        "gunicorn": f"{args.workers} gevent workers (arena.gunicorn_conf)",
        "wrk": f"-t2 -c{args.connections} -d{args.duration}s; paced: -t1 -c{args.connections} at {args.rate:.0f} req/s",
        "teams": args.teams,
        "submissions": args.submissions,
        "standings_rebuild_s": info["standings_rebuild_s"],
        "boards": info["boards"],
    }
    try:
        gunicorn = start_gunicorn(env, args.workers, base)
        etag = requests.get(base + api, timeout=30).headers["ETag"]
        gz = ("Accept-Encoding: gzip",)
        console, auth = f"/admin/c/{info['slug']}", (info["cookie"], (), "200")  # the console's paginated lists
        admins = args.admin_connections  # the organizers of a contest are a handful of people, not 16 clients
        for name, path, cookie, headers, expect, connections in (
            ("hello", "/healthz", None, (), "200", None),
            ("board_page", board, None, (), "200", None),  # page 1: the top 100 rows
            ("board_page_gzip", board, None, gz, "200", None),  # as a browser asks for it
            ("board_page_deep_gzip", f"{board}?page=30", None, gz, "200", None),  # rows 2,901 to 3,000
            ("board_api", api, None, (), "200", None),  # every row of the board
            ("board_api_gzip", api, None, gz, "200", None),  # what browsers and most clients send
            ("board_api_page_gzip", f"{api}?limit=100", None, gz, "200", None),  # the top 100 rows
            ("board_api_304", api, None, (f"If-None-Match: {etag}",), "304", None),  # a client revalidating
            ("admin_challenge", f"/admin/c/{info['slug']}", *auth, admins),  # the dashboard
            ("admin_teams", f"{console}/teams?state=approved", *auth, admins),
            ("admin_submissions", f"{console}/submissions", *auth, admins),
            ("admin_submissions_filtered", f"{console}/submissions?track=detection&state=finished", *auth, admins),
            ("admin_submissions_deep", f"{console}/submissions?before={args.submissions // 2}", *auth, admins),
            ("admin_audit", "/admin/audit", *auth, admins),
            ("admin_audit_states", f"/admin/audit?scope=states&challenge={info['slug']}", *auth, admins),
            ("hello_after", "/healthz", None, (), "200", None),
        ):
            results[name] = measure(base + path, args, cookie, headers, expect, connections, paced=cookie is None)
        hello = (results["hello"]["rps"] + results["hello_after"]["rps"]) / 2
        results["hello_mean_rps"] = hello
        for name in [n for n in results if n.startswith(("board_", "admin_"))]:
            results[name]["rps_ratio_to_hello"] = results[name]["rps"] / hello
        if not args.skip_uploads:
            sys.path.insert(0, str(ROOT))
            from starter_kit.submit import Client

            client = Client(base, info["token"], timeout=600)
            pids = [gunicorn.pid, *children(gunicorn.pid)]
            idle = {pid: rss_kib(pid) for pid in pids}
            big = work / "big.bin"
            with open(big, "wb") as out:
                out.truncate(100 * 2**20)
            peak = dict(idle)
            stop = threading.Event()

            def sample():
                while not stop.is_set():
                    for pid in pids:
                        peak[pid] = max(peak[pid], rss_kib(pid))
                    time.sleep(0.02)

            sampler = threading.Thread(target=sample)
            sampler.start()
            t0 = time.perf_counter()
            big_sub = client.submit(big, info["slug"], "dev", "recognition", progress=False)
            upload_s = time.perf_counter() - t0
            stop.set()
            sampler.join()
            results["upload_100mb"] = {
                "seconds": upload_s,
                "state": big_sub["state"],
                "idle_rss_mib": {p: v / 1024 for p, v in idle.items()},
                "peak_rss_mib": {p: v / 1024 for p, v in peak.items()},
                "max_growth_mib": max(peak[p] - idle[p] for p in pids) / 1024,
            }
            print("upload_100mb", results["upload_100mb"], flush=True)
            client.cancel(big_sub["id"])
            worker = subprocess.Popen(
                [str(ROOT / ".venv" / "bin" / "flask"), "--app", "arena", "worker"],
                env=env,
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(3)
            for track, path in (("detection", dets), ("recognition", feats)):
                t0 = time.perf_counter()
                sub = client.submit(path, info["slug"], "dev", track, progress=False)
                t_upload = time.perf_counter() - t0
                done = client.wait(sub["id"], timeout=900, poll=0.2, progress=False)
                board_rows = client.leaderboard(info["slug"], "dev", track)["rows"]
                t_board = time.perf_counter() - t0
                on_board = any(r["submission_id"] == sub["id"] for r in board_rows)
                results[f"official_{track}"] = {
                    "bytes": path.stat().st_size,
                    "upload_s": t_upload,
                    "request_to_board_s": t_board,
                    "state": done["state"],
                    "public_score": done["public_score"],
                    "on_board": on_board,
                }
                print(track, results[f"official_{track}"], flush=True)
    finally:
        if gunicorn:
            gunicorn.terminate()
            gunicorn.wait(30)
        if worker:
            worker.terminate()
            worker.wait(30)
        from sqlalchemy import create_engine, text

        with create_engine(PG, isolation_level="AUTOCOMMIT").connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        Redis.from_url(REDIS).flushdb()
        shutil.rmtree(work, ignore_errors=True)
    out = ROOT / "benchmarks" / "out"
    out.mkdir(exist_ok=True)
    (out / "platform.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
