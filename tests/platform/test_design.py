"""The one visual design (Pico CSS + arena.css, served from the package): the error pages (a styled page with the
site's navigation for a browser, JSON for the API), the static files and their cache header, the demo's mail note;
and in a real Chromium the main pages of a participant, of an organizer and the error pages, at desktop (1280x800)
and phone (390x844) width: at phone width no page is wider than the screen (a wide table scrolls inside its own
box), the stylesheets are loaded and applied. Screenshots (NAME-desktop.png, NAME-phone.png) go to
ARENA_SCREENSHOT_DIR (a folder, as for test_browser.py; default: the test's tmp folder), to be looked at."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from arena_testkit import PASSWORD, finished_submission, make_user
from test_browser import browser  # noqa: F401 (the fixture: Debian's chromium through Playwright)

pytestmark = pytest.mark.redis  # the app fixture's queue is the real Redis
VIEWPORTS = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}


@pytest.fixture
def sqlite_only(engine):
    if engine.dialect.name != "sqlite":
        pytest.skip("one browser run is enough: the pages do not depend on the database")


@pytest.fixture
def contest(db, challenge):
    """A board with three teams (one with a long name), a baseline row and alice's team on it: alice's submission id."""
    from arena import standings
    from arena.services import teams

    phase, track = challenge.phases[0], challenge.tracks[0]
    alice = make_user(db, "alice@example.com")
    make_user(db, "organizer@example.com", organizer=True)
    mine = teams.create_team(db, alice, challenge, "Team Alice", True)
    other = teams.create_team(db, make_user(db, "bob@example.com"), challenge, "Bob's rather long team name", True)
    third = teams.create_team(db, make_user(db, "carol@example.com"), challenge, "Carol", True)
    alices = finished_submission(db, mine, phase, track, 0.71, 0.70, 1, user_id=alice.id, original_name="det.csv")
    finished_submission(db, other, phase, track, 0.83, 0.80, 2)
    finished_submission(db, third, phase, track, 0.52, 0.50, 3)
    finished_submission(db, None, phase, track, 0.64, 0.60, 4, is_baseline=True, baseline_name="CenterNet R18")
    standings.rebuild(db)
    db.commit()
    return alices.id


# The markup the participant and organizer templates are written in (plain semantic HTML, no inline styles, the
# classes arena.css knows): rendered in base.html on a route of the test app only, to look at and to measure.
SEMANTIC_SAMPLE = """{% extends "base.html" %}{% block content %}
<nav aria-label="breadcrumb"><ul><li><a href="/">Challenges</a></li><li>Tiny cartoon faces</li></ul></nav>
<h1>Tiny cartoon faces: Development, Detection</h1>
<nav aria-label="split"><ul><li><strong>public</strong></li><li><a href="#">private</a></li>
  <li><a href="#">late</a></li></ul></nav>
<div class="flash error" role="alert">the file has no header line (line 1)</div>
<div class="flash info mail" role="alert">We sent a new verification link.</div>
<table><thead><tr><th class="num">rank</th><th>team</th><th class="num">ap50</th><th>state</th><th>submitted (UTC)</th>
  <th>note</th></tr></thead>
<tbody>
<tr><td class="num">1</td><td>A team with a rather long name indeed</td><td class="num">0.9123</td>
  <td class="state finished">finished</td><td>2024-01-01 00:02</td><td>ResNet-50, ArcFace, 20 epochs, fused</td></tr>
<tr class="mine"><td class="num">2</td><td>Team Alice</td><td class="num">0.8100</td>
  <td class="state running">running</td><td>2024-01-01 00:01</td><td>mine</td></tr>
<tr class="baseline"><td class="num"></td><td>CenterNet R18 (baseline)</td><td class="num">0.6400</td>
  <td class="state finished">finished</td><td>2024-01-01 00:04</td><td>reference run</td></tr>
<tr><td class="num">3</td><td>Carol</td><td class="num">0.5200</td><td class="state failed">failed</td>
  <td>2024-01-01 00:03</td><td><form method="post"><input name="reason" placeholder="reason" aria-label="reason">
  <button>ban</button> <button class="secondary">hide</button></form></td></tr>
</tbody></table>
<article><header><strong>Team Alice</strong> · invite code <code>p0EUps_4Lqx0zpYc-long-invite-code</code></header>
<p>Phase <strong class="phase-state open">open</strong> <strong class="phase-state closed">closed</strong>
  <strong class="phase-state revealed">revealed</strong></p>
<pre class="error-box">line 3: field 'score' is not a finite number: nan</pre>
<footer>alice@example.com (captain)</footer></article>
<form method="post"><fieldset><legend>Create a team</legend>
<label>Team name <input type="text" name="name"></label>
<label><input type="checkbox" name="accept_rules"> I accept the rules</label></fieldset>
<button>Create team</button></form>
<details><summary>Rules</summary><p>Be kind; one team per person.</p></details>
<dialog id="confirm"><article><h2>Reveal the private board?</h2><footer><button class="secondary">Cancel</button>
  <button>Reveal</button></footer></article></dialog>
{% endblock %}"""


def _shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("ARENA_SCREENSHOT_DIR") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _log_in(page, base: str, email: str) -> None:
    page.goto(f"{base}/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button:has-text('Log in')")
    page.wait_for_load_state()


def _check_page(page, name: str, viewport: str, shots: Path) -> None:
    """The styles are applied, the site's navigation is there, and at phone width nothing widens the page."""
    styled = page.evaluate(
        """() => ({
            sheets: [...document.styleSheets].filter(s => s.cssRules.length > 0).map(s => s.href),
            nav: getComputedStyle(document.querySelector('header.site nav')).display,
            font: getComputedStyle(document.body).fontFamily,
            margin: getComputedStyle(document.body).marginTop,
        })"""
    )
    assert any("/static/vendor/pico/pico.min.css?v=" in href for href in styled["sheets"]), (name, styled)
    assert any("/static/arena.css?v=" in href for href in styled["sheets"]), (name, styled)
    # the browser's defaults: body margin 8px, a serif font, a block-level nav
    assert styled["nav"] == "flex" and "system-ui" in styled["font"] and styled["margin"] == "0px", (name, styled)
    assert page.locator("header.site a.brand").is_visible(), name
    page.screenshot(path=str(shots / f"{name}-{viewport}.png"), full_page=True)
    widths = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    if viewport == "phone":
        assert widths[0] <= widths[1], f"{name} is {widths[0]} px wide on a {widths[1]} px screen"


@pytest.fixture
def sample_page(app):
    from flask import render_template_string

    app.add_url_rule("/test-only/semantic", "semantic_sample", lambda: render_template_string(SEMANTIC_SAMPLE))


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_the_pages_are_styled_and_fit_a_phone(
    sqlite_only,
    sample_page,
    live_server,
    browser,  # noqa: F811
    contest,
    viewport,
    tmp_path,
):
    shots = _shots(tmp_path)
    size = VIEWPORTS[viewport]
    visitor = browser.new_context(viewport=size)
    page = visitor.new_page()
    pages = [("home", "/"), ("login", "/login"), ("register", "/register"), ("challenge-visitor", "/c/tiny")]
    for name, path in [*pages, ("semantic", "/test-only/semantic")]:
        assert page.goto(f"{live_server}{path}").status == 200, path
        _check_page(page, name, viewport, shots)
    response = page.goto(f"{live_server}/no/such/page")
    assert response.status == 404 and "Page not found" in page.inner_text("main")
    assert page.locator("header.site a:has-text('Log in')").is_visible()  # the navigation on an error page
    _check_page(page, "404", viewport, shots)
    visitor.close()

    participant = browser.new_context(viewport=size)
    page = participant.new_page()
    _log_in(page, live_server, "alice@example.com")
    for name, path in [
        ("challenge", "/c/tiny"),
        ("leaderboard", "/c/tiny/dev/detection/leaderboard"),
        ("account", "/account"),
        ("submission", f"/submissions/{contest}"),
    ]:
        assert page.goto(f"{live_server}{path}").status == 200, path
        _check_page(page, name, viewport, shots)
        if name == "leaderboard":
            assert "Team Alice" in page.inner_text("#board") and "CenterNet R18" in page.inner_text("#board")
    response = page.goto(f"{live_server}/admin/")
    assert response.status == 403 and "Not allowed" in page.inner_text("main")
    assert page.locator("header.site a:has-text('alice@example.com')").count() == 1
    _check_page(page, "403", viewport, shots)
    participant.close()

    organizer = browser.new_context(viewport=size)
    page = organizer.new_page()
    _log_in(page, live_server, "organizer@example.com")
    for name, path in [
        ("admin", "/admin/"),
        ("admin-challenge", "/admin/c/tiny"),
        ("admin-teams", "/admin/c/tiny/teams"),
        ("admin-submissions", "/admin/c/tiny/submissions"),
        ("admin-audit", "/admin/audit?scope=all"),
        ("admin-announcements", "/admin/c/tiny/announcements"),
    ]:
        assert page.goto(f"{live_server}{path}").status == 200, path
        _check_page(page, name, viewport, shots)
    organizer.close()


# --------------------------------------------------------------------------------------------------- error pages


@pytest.fixture
def failing_app(app):
    """The app with routes that fail, registered only here; exceptions become 500 pages as in production."""
    from flask import abort

    app.config["PROPAGATE_EXCEPTIONS"] = False

    @app.get("/test-only/boom")
    def _boom():
        raise RuntimeError("a bug")

    @app.get("/api/v1/test-only/boom")
    def _api_boom():
        raise RuntimeError("a bug")

    @app.get("/test-only/too-many")
    def _too_many():
        abort(429, "10 per 1 minute")

    return app


def _logged_in(client, email: str) -> None:
    response = client.post("/login", data={"email": email, "password": PASSWORD})
    assert response.status_code == 302


@pytest.mark.parametrize(
    ("status", "title"),
    [
        (403, "Not allowed"),
        (404, "Page not found"),
        (405, "Not allowed here"),
        (413, "File too large"),
        (429, "Too many requests"),
        (500, "Something went wrong"),
    ],
)
def test_an_html_error_is_a_styled_page_with_the_navigation(failing_app, db, status, title):
    client = failing_app.test_client()
    make_user(db, "alice@example.com")
    _logged_in(client, "alice@example.com")
    if status == 403:
        response = client.get("/admin/")  # alice is no organizer
    elif status == 404:
        response = client.get("/no/such/page")
    elif status == 405:
        response = client.put("/login")
    elif status == 413:
        failing_app.config["MAX_CONTENT_LENGTH"] = 1000
        response = client.post("/register", data={"email": "b@example.com", "password": "x" * 5000})
    elif status == 429:
        response = client.get("/test-only/too-many")
    else:
        response = client.get("/test-only/boom")
    page = response.get_data(as_text=True)
    assert response.status_code == status and response.mimetype == "text/html"
    assert f"<h1>{title}</h1>" in page and '<header class="site container">' in page
    assert "/static/arena.css?v=" in page and "API docs" in page
    if status == 405:
        assert "PUT" not in response.headers["Allow"] and "POST" in response.headers["Allow"]
    if status == 429:
        assert "The limit is 10 per 1 minute." in page
    if status < 500:  # the page knows who is asking: the navigation shows the account
        assert "alice@example.com" in page


def test_a_rate_limited_form_answers_the_styled_429_page(app, engine, tmp_path):
    """flask-limiter's own 429 (the app fixture runs without limits: this app has them, one login a minute)."""
    from arena import create_app

    limited = create_app(
        {
            **{k: app.config[k] for k in ("TESTING", "SECRET_KEY", "DATABASE_URL", "ENGINE", "WTF_CSRF_ENABLED")},
            "RATELIMIT_ENABLED": True,
            "RATELIMIT_STORAGE_URI": "memory://",
            "RATELIMIT_LOGIN": "1 per minute",
            "ARGON2": app.config["ARGON2"],
        }
    )
    client = limited.test_client()
    form = {"email": "alice@example.com", "password": "not the password"}
    assert client.post("/login", data=form).status_code == 401
    response = client.post("/login", data=form)
    page = response.get_data(as_text=True)
    assert response.status_code == 429 and "<h1>Too many requests</h1>" in page
    assert "The limit is 1 per 1 minute." in page and '<header class="site container">' in page


def test_the_500_page_renders_when_the_database_is_what_failed(failing_app, monkeypatch):
    """The 500 page asks nothing of the database: who is logged in is not looked up (base.html's context)."""
    import arena.web

    def database_down():
        raise ConnectionError("the database is down")

    monkeypatch.setattr(arena.web, "current_user", database_down)
    response = failing_app.test_client().get("/test-only/boom")
    page = response.get_data(as_text=True)
    assert response.status_code == 500 and "<h1>Something went wrong</h1>" in page
    assert '<header class="site container">' in page and "Log in" not in page  # nobody's account is guessed


@pytest.mark.parametrize(
    ("method", "path", "status", "error"),
    [
        ("get", "/api/v1/no/such/route", 404, "not_found"),
        ("put", "/api/v1/openapi.json", 405, "method_not_allowed"),
        ("get", "/api/v1/test-only/boom", 500, "internal_server_error"),
    ],
)
def test_an_api_error_stays_json(failing_app, method, path, status, error):
    response = getattr(failing_app.test_client(), method)(path)
    assert response.status_code == status and response.is_json
    assert response.get_json()["error"] == error and response.get_json()["message"]


# --------------------------------------------------------------------------------------------------- static files


def test_the_stylesheets_are_served_from_the_package_with_a_cache_header(client):
    page = client.get("/login").get_data(as_text=True)
    for href in (m for m in page.split('"') if m.startswith("/static/")):
        response = client.get(href)
        assert response.status_code == 200 and response.mimetype == "text/css", href
        assert response.cache_control.max_age == 7 * 24 * 3600 and response.cache_control.public, href
    assert "/static/vendor/pico/pico.min.css?v=" in page and "/static/arena.css?v=" in page
    assert "http://" not in page.split("<body>")[0] and "https://" not in page.split("<body>")[0]  # no CDN


def _glob_regex(glob: str) -> re.Pattern:
    """setuptools' package-data glob: `**/` any folders (or none), `*` any name within one folder."""
    parts = re.split(r"(\*\*/|\*)", glob)
    pattern = "".join("(?:.*/)?" if p == "**/" else "[^/]*" if p == "*" else re.escape(p) for p in parts)
    return re.compile(pattern + r"\Z")


def test_a_wheel_ships_every_template_and_static_file():
    """pyproject's package-data globs match every file under templates/ and static/ (an editable install would
    hide a missing glob; a wheel would lack the file)."""
    import tomllib

    root = Path(__file__).resolve().parents[2]
    globs = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["arena"]
    patterns = [_glob_regex(g) for g in globs]
    package = root / "platform" / "arena"
    files = [p.relative_to(package).as_posix() for d in ("templates", "static") for p in (package / d).rglob("*")]
    files = [f for f in files if (package / f).is_file()]
    assert "static/vendor/pico/LICENSE.md" in files and "templates/admin/index.html" in files
    assert not _glob_regex("templates/**/*.html").match("templates/base.css")  # the matcher itself
    assert [f for f in files if not any(p.match(f) for p in patterns)] == []


# --------------------------------------------------------------------------------------------------- demo mail


@pytest.mark.parametrize("smtp", [None, "127.0.0.1"])
def test_the_pages_say_where_the_mail_went_when_none_is_sent(app, smtp, caplog):
    """With no SMTP server (the demo), the link is printed in the server's terminal and the pages say so: after
    registering, after asking for a password reset (for any address: nobody learns which ones have accounts) and
    on the verification notice."""
    from arena.frontend import MAIL_NOTE
    from markupsafe import escape

    app.config["SMTP_HOST"], app.config["SMTP_PORT"] = smtp, 1  # port 1: refused at once, logged, never raised
    client = app.test_client()
    registered = client.post(
        "/register", data={"email": "new@example.com", "password": PASSWORD}, follow_redirects=True
    )
    reset = client.post("/forgot", data={"email": "nobody@example.com"}, follow_redirects=True)
    _logged_in(client, "new@example.com")
    notice = client.get("/").get_data(as_text=True)
    pages = [registered.get_data(as_text=True), reset.get_data(as_text=True), notice]
    assert "Check your mail" in pages[0] and "Verify your email" in notice
    assert [escape(MAIL_NOTE) in page for page in pages] == [smtp is None] * 3
    if smtp is None:
        printed = "\n".join(r.getMessage() for r in caplog.records if r.name == "arena.notify")
        assert "To: new@example.com" in printed and "http://127.0.0.1:8000/verify/" in printed


@pytest.mark.parametrize("served", [False, True])
def test_the_footer_links_the_api_docs_and_the_starter_kit_when_a_view_serves_it(app, served):
    if served:
        app.add_url_rule("/test-only/starter-kit", "starter_kit", lambda: "the kit")
    page = app.test_client().get("/").get_data(as_text=True)
    footer = page.split("<footer")[1]
    assert 'href="/api/docs/swagger">API docs</a>' in footer
    assert ('href="/test-only/starter-kit">Starter kit</a>' in footer) is served
    assert ("<code>starter_kit/README.md</code>" in footer) is not served
