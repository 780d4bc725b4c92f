"""Organizer commands of a contest's life: rescore a set of submissions (registered by cli.init_app)."""

from __future__ import annotations

import click
from flask.cli import with_appcontext


@click.command("rescore", help="Rescore a track's submissions: all finished, failed and unscorable ones, or a set.")
@click.option("--challenge", "challenge_slug", required=True)
@click.option("--track", "track_slug", required=True)
@click.option("--state", "states_", multiple=True, help="only these states (finished, failed, unscorable); repeatable")
@click.option("--team", "team_id", type=int, default=None, help="only this team's submissions (its id)")
@click.option("--reason", default="rescore requested from the command line", help="goes to the audit log")
@with_appcontext
def rescore(challenge_slug: str, track_slug: str, states_: tuple[str, ...], team_id: int | None, reason: str):
    from sqlalchemy import select

    from .db import get_session
    from .errors import ArenaError
    from .models import Challenge, Track
    from .services import admin

    session = get_session()
    track = session.scalar(
        select(Track).join(Challenge).where(Challenge.slug == challenge_slug, Track.slug == track_slug)
    )
    if track is None:
        raise click.ClickException(f"no track '{track_slug}' in challenge '{challenge_slug}'")
    try:
        count = admin.rescore_track(session, track, None, reason, states_=states_ or None, team_id=team_id)
    except ArenaError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"{count} submissions of {challenge_slug}/{track_slug} are being rescored")
