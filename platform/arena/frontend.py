"""The pages' shared frame: the stylesheets (Pico CSS and arena.css, served from the package's static/ folder under
versioned URLs with a week-long cache header), the template globals of base.html, and the error pages: a styled
HTML page with the site's navigation for a browser, the JSON error for the API (/api/...)."""

from __future__ import annotations

import functools
import hashlib
import logging
from pathlib import Path

from flask import Flask, current_app, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)
STATIC_MAX_AGE = 7 * 24 * 3600  # the URLs carry the file's hash (asset_url), so a new release is fetched at once
MAIL_NOTE = (
    "In this demo, mail is not sent: the link is printed in the terminal running make demo "
    "(the log of the web server; set SMTP_HOST to send mail)."
)

# status -> (title, what a person can do about it); the description werkzeug gives is for developers
PAGES = {
    400: ("Bad request", "The request could not be understood. Go back, reload the page and try again."),
    401: ("Log in first", "This page needs you to log in."),
    403: ("Not allowed", "Your account is not allowed to see this page. Log in with another account, or go back."),
    404: ("Page not found", "There is no page at this address. Check the link, or start again from the challenges."),
    405: ("Not allowed here", "This address does not take that kind of request. Go back and use the page's form."),
    409: ("Conflict", "The request conflicts with the current state. Reload the page and try again."),
    413: ("File too large", "The upload is larger than this site accepts."),
    429: ("Too many requests", "You sent too many requests in a short time. Wait a minute, then try again."),
    500: ("Something went wrong", "The server failed to answer. The error is logged; try again in a moment."),
}


def init_app(app: Flask) -> None:
    """After the blueprints: this app-level handler of HTTPException is the only one (the API's JSON included)."""
    app.register_error_handler(HTTPException, http_error)
    app.context_processor(_template_globals)

    @app.after_request
    def _cache_static(response):
        if request.endpoint == "static" and response.status_code in (200, 304):
            response.cache_control.public = True
            response.cache_control.max_age = STATIC_MAX_AGE
            response.cache_control.no_cache = None
        return response


def _digest(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]


_cached_digest = functools.cache(_digest)


def asset_url(filename: str) -> str:
    """/static/FILENAME?v=HASH: the hash of the file, so that a changed stylesheet is a new URL (hashed once per
    process, or at every page in debug mode, where the stylesheet is being edited)."""
    from flask import url_for

    path = str(Path(current_app.static_folder) / filename)
    return url_for("static", filename=filename, v=(_digest if current_app.debug else _cached_digest)(path))


def _starter_kit_url() -> str | None:
    """A page or download of the starter kit, if a view serves one (an endpoint named '...starter_kit...' that
    takes no argument); looked up once per app."""
    from flask import url_for

    if "arena.starter_kit_endpoint" not in current_app.extensions:
        endpoints = [
            rule.endpoint
            for rule in current_app.url_map.iter_rules()
            if "starter_kit" in rule.endpoint and not rule.arguments and "GET" in (rule.methods or ())
        ]
        current_app.extensions["arena.starter_kit_endpoint"] = endpoints[0] if endpoints else None
    endpoint = current_app.extensions["arena.starter_kit_endpoint"]
    return url_for(endpoint) if endpoint else None


def _template_globals() -> dict:
    return {
        "asset_url": asset_url,
        "mail_is_sent": bool(current_app.config.get("SMTP_HOST")),
        "mail_note": MAIL_NOTE,
        "starter_kit_url": _starter_kit_url(),
    }


def _message(status: int) -> tuple[str, str]:
    title, message = PAGES.get(status, PAGES[500] if status >= 500 else PAGES[400])
    if status == 413:
        limit = current_app.config.get("MAX_UPLOAD_BYTES")
        if limit:
            message = f"The upload is larger than this site accepts ({limit / 2**20:.0f} MiB at most)."
    return title, message


def http_error(exc: HTTPException):
    """JSON under /api/ (unknown routes and methods included); elsewhere the styled page of its status."""
    if exc.response is not None:  # a response made already (the validation errors of contract.py)
        return exc.response
    if request.path.startswith("/api/"):
        return jsonify({"error": exc.name.lower().replace(" ", "_"), "message": exc.description}), exc.code
    code = exc.code or 500
    headers = [(k, v) for k, v in exc.get_headers() if k.lower() != "content-type"]  # Allow, Retry-After
    if code >= 500:
        return error_page_without_database(code), code, headers
    title, message = _message(code)
    detail = _detail(exc)
    return render_template("error.html", title=title, message=message, detail=detail, code=code), code, headers


def _detail(exc: HTTPException) -> str | None:
    """What the code that raised said, when it said more than werkzeug's stock sentence (a CSRF failure, the
    limit that was hit, abort(403, "why"))."""
    from flask_wtf.csrf import CSRFError

    if isinstance(exc, CSRFError):
        return f"{exc.description} The form was sent without its CSRF token, or it expired: reload the page."
    if exc.description and exc.description != type(exc).description:
        return exc.description if exc.code != 429 else f"The limit is {exc.description}."
    return None


def error_page_without_database(code: int = 500) -> str:
    """The 500 page must not fail itself: rendered straight from the template, without the context processors
    (which ask the database who is logged in, and the database may be why we are here)."""
    title, message = _message(code)
    template = current_app.jinja_env.get_template("error.html")
    try:
        return template.render(
            title=title,
            message=message,
            code=code,
            current_user=None,
            minimal_nav=True,
            mail_is_sent=True,
            asset_url=asset_url,
            starter_kit_url=None,
        )
    except Exception:  # the last resort: a page that cannot fail
        log.exception("the error page failed to render")
        return f"<!doctype html><title>{title}</title><h1>{title}</h1><p>{message}</p>"
