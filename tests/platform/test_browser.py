"""A participant in real headless Chromium (Debian's, driven by Playwright): register, verify, make a team, upload,
watch the live status turn to finished, find the team on the leaderboard. Screenshots go to ARENA_SCREENSHOT_DIR
(default: the test's tmp folder)."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from arena_testkit import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.redis, pytest.mark.slow]
CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def browser():
    if not shutil.which(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing: `make chromium` installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield browser
        browser.close()


def test_register_team_upload_scored_and_on_the_leaderboard(
    app, engine, live_server, browser, db, data, challenge, tmp_path
):
    if engine.dialect.name != "sqlite":
        pytest.skip("one browser run is enough: the database is exercised by the other tests on both")
    shots = Path(os.environ.get("ARENA_SCREENSHOT_DIR") or tmp_path / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    page.goto(f"{live_server}/register")
    page.fill("input[name=email]", "browser@example.com")
    page.fill("input[name=password]", PASSWORD)
    page.click("button:has-text('Create account')")
    assert "Check your mail" in page.content()
    page.fill("input[name=email]", "browser@example.com")  # the registration leads to the login page
    page.fill("input[name=password]", PASSWORD)
    page.click("button:has-text('Log in')")

    from arena.models import User
    from arena.services import accounts

    user = db.query(User).filter_by(email="browser@example.com").one()
    with app.test_request_context():
        link = accounts.link_token(user, "verify")
    page.goto(f"{live_server}/verify/{link}")
    assert "Your email is verified" in page.content()

    page.goto(f"{live_server}/c/tiny")
    page.check("input[name=accept_rules]")
    page.fill("input[name=name]", "Team Chromium")
    page.click("button:has-text('Create team')")
    assert page.inner_text("#team-name") == "Team Chromium"
    page.screenshot(path=str(shots / "1-team.png"), full_page=True)

    upload = tmp_path / "detections.csv"
    upload.write_bytes(data.detection_csv(quality=0.5))
    page.set_input_files("input[name=file]", str(upload))
    page.click("button:has-text('Upload')")
    assert re.search(r"/submissions/\d+$", page.url)
    page.wait_for_selector("#state.finished", timeout=30_000)  # the page's live status reloads it when scored
    assert "<svg" in page.content()
    page.screenshot(path=str(shots / "2-scored.png"), full_page=True)

    page.click("a:has-text('Tiny cartoon faces')")
    page.click("a:has-text('detection')")
    rows = page.inner_text("#board")
    assert "Team Chromium" in rows
    page.screenshot(path=str(shots / "3-leaderboard.png"), full_page=True)
    assert all((shots / name).stat().st_size > 1000 for name in ("1-team.png", "2-scored.png", "3-leaderboard.png"))
