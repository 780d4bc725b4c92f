"""arena: the iCartoonFace challenge platform (Flask). `create_app` only wires things up; nothing runs at import.

flask --app arena run | challenge load BUNDLE | worker | watchdog | db upgrade
gunicorn 'arena:create_app()'
"""

from __future__ import annotations

import os
from pathlib import Path

from flask import Flask, redirect, url_for

__all__ = ["create_app"]


def _row_id_converter():
    from werkzeug.routing import IntegerConverter

    class RowId(IntegerConverter):
        """<int:...> in our routes: 0 to 2**31 - 1, the range of an integer primary key on both databases."""

        def __init__(self, url_map, *args, **kwargs):
            kwargs.setdefault("max", 2**31 - 1)
            super().__init__(url_map, *args, **kwargs)

    return RowId


def _openapi_app(instance: str) -> Flask:
    """The Flask app, flask-openapi3's subclass: it generates the API's OpenAPI document from the routes' models
    and serves the interactive docs (Swagger UI, its assets from the installed flask-openapi3-swagger) at
    /api/docs."""
    from flask_openapi3 import Info, OpenAPI

    from .contract import Error, validation_error_response

    app = OpenAPI(
        __name__,
        instance_path=instance,
        instance_relative_config=True,
        info=Info(title="iCartoonFace arena API", version="1"),
        security_schemes={"token": {"type": "http", "scheme": "bearer"}},
        validation_error_status=400,
        validation_error_model=Error,
        validation_error_callback=validation_error_response,
        doc_prefix="/api/docs",
    )
    app.view_functions["openapi.openapi"] = lambda: redirect(url_for("swagger.swagger"))
    return app


def create_app(test_config: dict | None = None) -> Flask:
    from . import cli, config, db, frontend, health, logs
    from .api_admin import bp as api_bp  # api.py's blueprint, the console's routes added to it
    from .extensions import csrf, limiter
    from .web import bp as web_bp
    from .web_admin import bp as admin_bp
    from .web_console import bp as console_bp

    instance = os.environ.get("ARENA_INSTANCE") or str(Path.cwd() / "instance")
    app = _openapi_app(instance)
    app.url_map.converters["int"] = (
        _row_id_converter()
    )  # ids past the database's integer range are a 404, not an overflow
    app.config.from_mapping(config.load(app.instance_path))
    if test_config:
        app.config.update(test_config)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    if app.config["PROXY_HOPS"]:  # behind reverse proxies: the client's address and scheme are what they say
        from werkzeug.middleware.proxy_fix import ProxyFix

        hops = app.config["PROXY_HOPS"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
    logs.configure()
    db.init_app(app, app.config.get("ENGINE"))
    csrf.init_app(app)
    limiter.init_app(app)
    health.bound_ids(app)  # before the blueprints: an id past the database's integer range is a 404
    app.register_blueprint(web_bp)
    app.register_blueprint(admin_bp)
    app.register_blueprint(console_bp)
    app.register_api(api_bp)
    # the tests check every API response against its declared model (a drift between document and answer fails)
    app.validate_response = bool(app.config.get("API_VALIDATE_RESPONSES", app.testing))
    frontend.init_app(app)  # after the blueprints: the error pages (HTML, or JSON under /api/), static caching
    csrf.exempt(api_bp)  # the API authenticates with bearer tokens, never with the cookie
    health.init_app(app)  # /healthz, /readyz, /metrics; 503 (never 500) when the database or Redis fails
    cli.init_app(app)
    return app
