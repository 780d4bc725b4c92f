"""`flask --app arena demo DATA`: a synthetic challenge from a `python -m facedata synth` folder, loaded with its
hidden labels, plus demo accounts; with --serve, then the web server, a worker and the embedded Redis until Ctrl+C
(arena/supervise.py). Run by `make demo` (which generates DATA in a separate process first)."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import shutil
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import select

DEMO_PASSWORD = "demo-password"
DEMO_USERS = (("organizer@demo.local", True), ("alice@demo.local", False), ("bob@demo.local", False))
HIDDEN = {
    "detection_gt": "personai_icartoonface_detval.csv",
    "test_info": "icartoonface_rectest_info.txt",
    "verification_pairs": "icartoonface_verification_pairs.txt",
}


def bundle_text(start: dt.date, has_pairs: bool) -> str:
    pairs = "\n      verification_pairs: hidden/icartoonface_verification_pairs.txt" if has_pairs else ""
    return f"""slug: synthetic-demo
title: Synthetic cartoon faces (demo)
description: |
  A demo challenge on the embedded **synthetic** iCartoonFace benchmark (`python -m facedata synth`), in the
  official layout and formats. The test images and lists are in the demo data folder; the hidden labels are loaded.
rules: Demo rules. Be kind; one team per person.
team_size: 3
splits: {{seed: synthetic-demo, public_fraction: 0.5}}
tracks:
  - slug: detection
    kind: detection
    title: Detection
    labels: {{detection_gt: hidden/personai_icartoonface_detval.csv}}
  - slug: recognition
    kind: recognition
    title: Recognition
    labels:
      test_info: hidden/icartoonface_rectest_info.txt{pairs}
phases:
  - slug: dev
    title: Development
    starts: {start.isoformat()}
    ends: {(start + dt.timedelta(days=60)).isoformat()}
    limits: {{per_day: 20, total: 200, in_flight: 3}}
"""


@click.command("demo", help="Load a synthetic challenge from a facedata synth folder and create demo accounts.")
@click.argument("data", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--serve",
    is_flag=True,
    help="then run the web server, a worker and the embedded Redis until Ctrl+C, which stops all three (make demo)",
)
@click.option("--bind", default="127.0.0.1:8000", show_default=True, help="the web server's address (with --serve)")
@with_appcontext
def demo(data: Path, serve: bool, bind: str):
    _load(data)
    if serve:
        from .db import get_session
        from .supervise import serve as supervise

        get_session().close()  # nothing of the loading stays open while the children run
        click.get_current_context().exit(supervise(current_app._get_current_object(), bind))


@contextlib.contextmanager
def _mail_not_printed():
    """The mail log (arena.notify: what is printed when no SMTP server is configured) off for a moment."""
    logger = logging.getLogger("arena.notify")
    disabled, logger.disabled = logger.disabled, True
    try:
        yield
    finally:
        logger.disabled = disabled


def _load(data: Path) -> None:
    from .db import get_session
    from .models import User
    from .services import accounts, teams
    from .services.challenges import load_bundle

    hidden = data / "hidden"
    if not (hidden / HIDDEN["detection_gt"]).exists():
        raise click.ClickException(f"{data} has no hidden/ labels: run `python -m facedata synth --out {data}`")
    bundle = Path(current_app.instance_path) / "demo-bundle"
    (bundle / "hidden").mkdir(parents=True, exist_ok=True)
    for name in HIDDEN.values():
        if (hidden / name).exists():
            shutil.copyfile(hidden / name, bundle / "hidden" / name)
    text = bundle_text(dt.date.today() - dt.timedelta(days=1), (hidden / HIDDEN["verification_pairs"]).exists())
    (bundle / "challenge.yaml").write_text(text)
    session = get_session()
    challenge = load_bundle(session, text, bundle)
    for email, organizer in DEMO_USERS:
        user = session.scalar(select(User).where(User.email == email))
        if user is None:
            with _mail_not_printed():  # verified at once: a printed verification link would only confuse
                user = accounts.register(session, email, DEMO_PASSWORD)
        user.verified, user.is_organizer = True, organizer
        session.commit()
        if email.startswith("alice") and teams.user_team(session, user, challenge) is None:
            teams.create_team(session, user, challenge, "Team Alice", True)
    organizer = session.scalar(select(User).where(User.email == DEMO_USERS[0][0]))
    for line in post_reference_baselines(session, organizer, challenge, data, RESULTS):
        click.echo(line)
    click.echo(f"demo challenge '{challenge.slug}' loaded from {data}")
    click.echo(f"test lists for participants: {data}/icartoonface_rectest_det.txt and {data}/icartoonface_dettest/")
    for email, organizer in DEMO_USERS:
        click.echo(f"  login {email} / {DEMO_PASSWORD}{' (organizer)' if organizer else ''}")


# The reference runs of baselines/RESULTS.md: their committed submissions (recognition: float16 .npy.gz, detection:
# CSV) are posted as baseline rows when the demo data is the data they were predicted on (`small`, seed 0).
RESULTS = Path(__file__).resolve().parents[2] / "baselines" / "results"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def post_reference_baselines(session, organizer, challenge, data: Path, results: Path = RESULTS) -> list[str]:
    """Post every `results/<run>/baseline.json` run (its submission file) once as a baseline row of the `dev` phase;
    scored by the worker like any submission. Returns lines to print (what was posted or why not)."""
    from .models import Submission
    from .services import admin, methods, submissions

    dataset = results / "dataset.json"
    if not dataset.exists():
        return []
    expected = json.loads(dataset.read_text())
    for name, digest in expected["hidden_sha256"].items():
        if not (data / "hidden" / name).exists() or _sha256(data / "hidden" / name) != digest:
            return [
                f"baseline rows not posted: {data} is not the data of {results} ({expected['data']}); to see them,"
                f" generate that data into an empty folder (e.g. remove {data}, then `make demo` again)"
            ]
    lines = []
    for spec_path in sorted(results.glob("*/baseline.json")):
        spec = json.loads(spec_path.read_text())
        phase, track = submissions.phase_and_track(session, challenge, "dev", spec["track"])
        posted = session.scalar(
            select(Submission).where(
                Submission.phase_id == phase.id,
                Submission.track_id == track.id,
                Submission.is_baseline.is_(True),
                Submission.baseline_name == spec["name"],
            )
        )
        if posted is not None:
            continue
        file = spec_path.parent / spec["file"]
        with open(file, "rb") as stream:
            method = methods.clean(spec.get("method_name"), spec["note"])
            admin.post_baseline(session, organizer, phase, track, stream, file.name, spec["name"], spec["note"], method)
        lines.append(f"  baseline row '{spec['name']}' posted ({spec['track']}, {file.relative_to(results.parent)})")
    return lines
