"""`flask --app arena demo DATA`: a synthetic challenge from a `python -m facedata synth` folder, loaded with its
hidden labels, plus demo accounts. Run by `make demo` (which generates DATA in a separate process first)."""

from __future__ import annotations

import datetime as dt
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
@with_appcontext
def demo(data: Path):
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
            user = accounts.register(session, email, DEMO_PASSWORD)
        user.verified, user.is_organizer = True, organizer
        session.commit()
        if email.startswith("alice") and teams.user_team(session, user, challenge) is None:
            teams.create_team(session, user, challenge, "Team Alice", True)
    click.echo(f"demo challenge '{challenge.slug}' loaded from {data}")
    click.echo(f"test lists for participants: {data}/icartoonface_rectest_det.txt and {data}/icartoonface_dettest/")
    for email, organizer in DEMO_USERS:
        click.echo(f"  login {email} / {DEMO_PASSWORD}{' (organizer)' if organizer else ''}")
