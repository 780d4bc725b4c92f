"""`flask --app arena final ...`: the final stage's commands.

final worker --device cpu|cuda [--burst]     run model archives in the sandbox (the queue of that device)
final images CHALLENGE TRACK FOLDER          store a track's hidden test images for the sandbox
final report CHALLENGE PHASE TRACK           the reproduction table of the final submissions, as JSON
final tick SUBMISSION ITEM --by EMAIL        tick an item of a final submission's verification checklist
"""

from __future__ import annotations

import json
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from . import bwrap


@click.group("final", help="The final stage: sandboxed model runs, speed test, reproduction, verification.")
def final():
    pass


@final.command("worker", help="Run model archives in the bubblewrap sandbox, from the queue of this worker's device.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", help="the device this worker offers")
@click.option("--burst", is_flag=True, help="stop when the queue is empty")
@with_appcontext
def worker(device: str, burst: bool):
    from rq import Queue, Worker

    from .. import queue as arena_queue
    from .jobs import queue_name

    bwrap.bwrap_path()  # no bubblewrap: stop here, before taking a job
    app = current_app._get_current_object()
    app.config["SANDBOX_DEVICE"] = device  # advertised: recorded on every run this worker takes
    _sweep(app)
    name = queue_name(app.config, device)
    click.echo(f"model worker on {device}: queue {name}")
    Worker([Queue(name, connection=arena_queue.connect(app))], connection=arena_queue.connect(app)).work(burst=burst)


def _challenge_track(session, challenge_slug: str, track_slug: str | None = None):
    from sqlalchemy import select

    from ..models import Challenge, Track

    challenge = session.scalar(select(Challenge).where(Challenge.slug == challenge_slug))
    if challenge is None:
        raise click.ClickException(f"no challenge '{challenge_slug}'")
    if track_slug is None:
        return challenge, None
    track = session.scalar(select(Track).where(Track.challenge_id == challenge.id, Track.slug == track_slug))
    if track is None:
        raise click.ClickException(f"challenge '{challenge_slug}' has no track '{track_slug}'")
    return challenge, track


@final.command("images")
@click.argument("challenge_slug")
@click.argument("track_slug")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@with_appcontext
def images(challenge_slug: str, track_slug: str, folder: Path):
    """Store FOLDER's images as the hidden test images of a track (what the sandbox sees, read-only)."""
    from ..db import get_session
    from ..errors import ArenaError
    from .service import import_test_images

    session = get_session()
    _challenge, track = _challenge_track(session, challenge_slug, track_slug)
    try:
        found = import_test_images(session, None, track, folder)
    except ArenaError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"{found.num_images} test images stored for {challenge_slug}/{track_slug} ({found.sha256[:12]})")


@final.command("report")
@click.argument("challenge_slug")
@click.argument("phase_slug")
@click.argument("track_slug")
@with_appcontext
def report(challenge_slug: str, phase_slug: str, track_slug: str):
    """Print the final submissions with their reproduction, speed test and checklist (JSON)."""
    from ..db import get_session
    from .service import final_report

    session = get_session()
    challenge, _ = _challenge_track(session, challenge_slug)
    click.echo(json.dumps(final_report(session, challenge, phase_slug, track_slug), indent=2))


@final.command("tick")
@click.argument("submission_id", type=int)
@click.argument("item")
@click.option("--by", "email", required=True, help="the organizer who checked it")
@click.option("--undo", is_flag=True, help="untick it")
@with_appcontext
def tick(submission_id: int, item: str, email: str, undo: bool):
    """Tick ITEM of a final submission's verification checklist (audited)."""
    from sqlalchemy import select

    from ..db import get_session
    from ..errors import ArenaError
    from ..models import User
    from . import service

    session = get_session()
    actor = session.scalar(select(User).where(User.email == email.strip().lower()))
    try:
        click.echo(json.dumps(service.tick(session, actor, submission_id, item, not undo), indent=2))
    except ArenaError as exc:
        raise click.ClickException(exc.message) from None


def _sweep(app) -> dict:
    from ..db import new_session
    from .jobs import sweep

    session = new_session()
    try:
        counts = sweep(session, app.config)
    finally:
        session.close()
    click.echo(f"model runs whose worker stopped: {counts}")
    return counts


@final.command("sweep")
@with_appcontext
def sweep_command():
    """Requeue (or, out of attempts, fail) the model runs whose worker stopped."""
    _sweep(current_app._get_current_object())


@final.command("rerun")
@click.argument("model_id", type=int)
@click.option("--by", "email", required=True, help="the organizer asking for it")
@click.option("--reason", required=True)
@with_appcontext
def rerun(model_id: int, email: str, reason: str):
    """Queue a model run again (audited)."""
    from sqlalchemy import select

    from ..db import get_session
    from ..errors import ArenaError
    from ..models import ModelSubmission, User
    from ..services.admin import require_organizer
    from .jobs import requeue

    session = get_session()
    try:
        actor = require_organizer(session.scalar(select(User).where(User.email == email.strip().lower())))
    except ArenaError as exc:
        raise click.ClickException(exc.message) from None
    model = session.get(ModelSubmission, model_id)
    if model is None:
        raise click.ClickException(f"no model {model_id}")
    if model.state in ("queued", "running"):
        raise click.ClickException(f"model {model_id} is {model.state} already")
    requeue(session, model, reason=reason, actor_id=actor.id)
    click.echo(f"model {model_id} queued again")
