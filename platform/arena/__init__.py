"""arena: the iCartoonFace challenge platform (Flask). `create_app` only wires things up; nothing runs at import.

flask --app arena run | challenge load BUNDLE | worker | watchdog | db upgrade
gunicorn 'arena:create_app()'
"""

from __future__ import annotations

import os
from pathlib import Path

from flask import Flask

__all__ = ["create_app"]


def _row_id_converter():
    from werkzeug.routing import IntegerConverter

    class RowId(IntegerConverter):
        """<int:...> in our routes: 0 to 2**31 - 1, the range of an integer primary key on both databases."""

        def __init__(self, url_map, *args, **kwargs):
            kwargs.setdefault("max", 2**31 - 1)
            super().__init__(url_map, *args, **kwargs)

    return RowId


def create_app(test_config: dict | None = None) -> Flask:
    from . import cli, config, db, health, logs
    from .api import bp as api_bp
    from .extensions import csrf, limiter
    from .sandbox.http import api as final_api_bp
    from .sandbox.http import pages as final_pages_bp
    from .web import bp as web_bp
    from .web_admin import bp as admin_bp

    instance = os.environ.get("ARENA_INSTANCE") or str(Path.cwd() / "instance")
    app = Flask(__name__, instance_path=instance, instance_relative_config=True)
    app.url_map.converters["int"] = (
        _row_id_converter()
    )  # ids past the database's integer range are a 404, not an overflow
    app.config.from_mapping(config.load(app.instance_path))
    if test_config:
        app.config.update(test_config)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    logs.configure()
    db.init_app(app, app.config.get("ENGINE"))
    csrf.init_app(app)
    limiter.init_app(app)
    health.bound_ids(app)  # before the blueprints: an id past the database's integer range is a 404
    app.register_blueprint(web_bp)
    app.register_blueprint(admin_bp)
    app.register_blueprint(api_bp)
    csrf.exempt(api_bp)  # the API authenticates with bearer tokens, never with the cookie
    app.register_blueprint(final_api_bp)  # the final stage (arena/sandbox/http.py)
    app.register_blueprint(final_pages_bp)
    csrf.exempt(final_api_bp)
    health.init_app(app)  # /healthz, /readyz, /metrics; 503 (never 500) when the database or Redis fails
    cli.init_app(app)
    return app
