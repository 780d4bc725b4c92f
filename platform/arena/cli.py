"""Command line: `flask --app arena ...` commands and the `arena` console script (the same commands)."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup, with_appcontext


def init_app(app: Flask) -> None:
    app.cli.add_command(challenge)
    app.cli.add_command(db_group)
    app.cli.add_command(worker)
    app.cli.add_command(watchdog)
    app.cli.add_command(user_group)
    app.cli.add_command(baseline_group)
    app.cli.add_command(standings_group)
    from .cli_contest import rescore

    app.cli.add_command(rescore)
    from .demo import demo
    from .sandbox.cli import final

    app.cli.add_command(final)

    app.cli.add_command(demo)


@click.group("challenge", help="Load and inspect challenge bundles.")
def challenge():
    pass


@challenge.command("load")
@click.argument("bundle", type=click.Path(exists=True, path_type=Path))
@with_appcontext
def challenge_load(bundle: Path):
    """Create or update a challenge from BUNDLE (a folder with challenge.yaml, or a YAML file)."""
    from .db import get_session
    from .errors import ArenaError
    from .services.challenges import load_bundle, read_bundle

    try:
        text, base = read_bundle(bundle)
        loaded = load_bundle(get_session(), text, base)
    except ArenaError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"loaded challenge '{loaded.slug}': {len(loaded.tracks)} tracks, {len(loaded.phases)} phases")


@click.group("db", help="The database schema.")
def db_group():
    pass


@db_group.command("upgrade")
@with_appcontext
def db_upgrade():
    """Run the Alembic migrations up to the newest."""
    upgrade_database(current_app.config["DATABASE_URL"])
    click.echo("database is up to date")


def alembic_config(url: str):
    from alembic.config import Config

    root = Path(__file__).resolve().parents[2]
    config = Config()
    config.set_main_option("script_location", str(root / "migrations"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade_database(url: str) -> None:
    from alembic import command

    command.upgrade(alembic_config(url), "head")


@click.group("user", help="Accounts.")
def user_group():
    pass


@user_group.command("create")
@click.argument("email")
@click.password_option()
@click.option("--organizer", is_flag=True, help="give organizer rights")
@with_appcontext
def user_create(email: str, password: str, organizer: bool):
    """Create a verified account (organizers are made this way)."""
    from .db import get_session
    from .errors import ArenaError
    from .services import accounts

    session = get_session()
    try:
        user = accounts.register(session, email, password)
    except ArenaError as exc:
        raise click.ClickException(exc.message) from None
    user.verified, user.is_organizer = True, organizer
    session.commit()
    click.echo(f"created {'organizer' if organizer else 'user'} {user.email}")


@click.group("baseline", help="Reference submissions shown as marked rows on the boards.")
def baseline_group():
    pass


@baseline_group.command("post")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--challenge", "challenge_slug", required=True)
@click.option("--phase", "phase_slug", required=True)
@click.option("--track", "track_slug", required=True)
@click.option("--name", required=True, help="the row's name, e.g. 'ArcFace R50'")
@click.option("--note", default="", help="shown on the submission: config, commit, checkpoint")
@click.option("--as", "email", required=True, help="the organizer account that posts it")
@click.option("--method-name", default=None, help="the board's method column, e.g. 'ArcFace'")
@click.option("--method-description", default=None, help="what the method is: loss, backbone, data")
@click.option("--paper-url", default=None, help="http(s) link to the method's paper")
@click.option("--code-url", default=None, help="http(s) link to its code or config")
@with_appcontext
def baseline_post(file: Path, challenge_slug, phase_slug, track_slug, name, note, email, **method_fields):
    """Post FILE as a baseline submission with the method it describes (the fields participants' uploads take);
    it is scored by a worker like any other."""
    from sqlalchemy import select

    from .db import get_session
    from .errors import ArenaError
    from .models import Challenge, User
    from .services import admin, methods, submissions

    session = get_session()
    try:
        method = methods.clean(
            method_fields["method_name"],
            method_fields["method_description"],
            method_fields["paper_url"],
            method_fields["code_url"],
        )
        actor = admin.require_organizer(session.scalar(select(User).where(User.email == email.strip().lower())))
        challenge = session.scalar(select(Challenge).where(Challenge.slug == challenge_slug))
        if challenge is None:
            raise click.ClickException(f"no challenge '{challenge_slug}'")
        phase, track = submissions.phase_and_track(session, challenge, phase_slug, track_slug)
        with open(file, "rb") as stream:
            sub = admin.post_baseline(session, actor, phase, track, stream, file.name, name, note, method)
    except ArenaError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"baseline submission {sub.id} '{name}' is {sub.state}")


@click.group("standings", help="The stored leaderboards (arena/standings.py).")
def standings_group():
    pass


@standings_group.command("rebuild")
@click.option("--challenge", "slug", default=None, help="only this challenge (default: all)")
@with_appcontext
def standings_rebuild(slug: str | None):
    """Recompute the stored standings from the submissions (after `db upgrade`, or to repair them)."""
    from sqlalchemy import select

    from . import standings
    from .db import new_session
    from .models import Challenge

    session = new_session()
    try:
        challenge = None
        if slug is not None:
            challenge = session.scalar(select(Challenge).where(Challenge.slug == slug))
            if challenge is None:
                raise click.ClickException(f"no challenge '{slug}'")
        boards = standings.rebuild(session, challenge)
        session.commit()
    finally:
        session.close()
    click.echo(f"rebuilt the standings of {boards} boards (phase x track)")


@click.command("worker", help="Run an RQ worker scoring submissions, with a watchdog thread (arena/watchdog.py).")
@click.option("--burst", is_flag=True, help="stop when the queue is empty")
@click.option(
    "--watchdog-every", type=float, default=None, help="sweep every N seconds (default WATCHDOG_EVERY; 0: off)"
)
@click.option("--simple", is_flag=True, help="score in the worker process itself (no fork per job)")
@with_appcontext
def worker(burst: bool, watchdog_every: float | None, simple: bool):
    from .watchdog import run_worker

    app = current_app._get_current_object()
    every = app.config["WATCHDOG_EVERY"] if watchdog_every is None else watchdog_every
    run_worker(app, burst=burst, watchdog_every=every, simple=simple)


@click.command("watchdog", help="Requeue or fail running submissions whose worker stopped heart-beating.")
@click.option("--every", type=float, default=0, help="repeat every N seconds (0: once)")
@with_appcontext
def watchdog(every: float):
    import time

    from .db import new_session
    from .watchdog import sweep

    while True:
        session = new_session()
        try:
            click.echo(f"watchdog: {sweep(session).as_dict()}")
        finally:
            session.close()
        if not every:
            return
        time.sleep(every)


def main(argv: list[str] | None = None) -> None:
    """The `arena` console script: the flask commands of the app, without --app."""
    from . import create_app

    cli = FlaskGroup(create_app=lambda: create_app())
    cli.main(args=argv if argv is not None else sys.argv[1:], prog_name="arena")
