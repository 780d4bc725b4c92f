"""A contest's whole life in real headless Chromium (Debian's, driven by Playwright): a participant registers,
verifies, makes a team, uploads, watches the live status turn to finished and finds the team on the leaderboard;
the organizer closes the phase; the participant sees it closed, with no upload form and the private board still
hidden; the organizer reveals it; the final standings are exported. Screenshots go to ARENA_SCREENSHOT_DIR
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


def test_a_contest_from_registration_to_the_exported_final_standings(
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

    from arena_testkit import make_user

    organizer = make_user(db, "organizer@example.com", organizer=True)
    admin = browser.new_page(viewport={"width": 1300, "height": 900})
    admin.goto(f"{live_server}/login")
    admin.fill("input[name=email]", organizer.email)
    admin.fill("input[name=password]", PASSWORD)
    admin.click("button:has-text('Log in')")
    admin.goto(f"{live_server}/admin/c/tiny")
    admin.check("input[name=closed]")
    admin.fill("form:has(input[name=closed]) input[name=reason]", "the deadline")
    admin.click("button:has-text('Save')")
    assert "'Development' closes: uploads stop" in admin.inner_text("#effect")
    admin.click("#confirm-button")  # closing is confirmed first, its consequence spelled out
    assert "Phase 'Development' saved: it is closed" in admin.inner_text("div.flash")
    assert admin.inner_text("span.phase-state") == "closed"

    page.goto(f"{live_server}/c/tiny")
    assert page.inner_text("strong.phase-state") == "closed"
    assert page.query_selector("#upload-form") is None and "No phase takes submissions now" in page.content()
    page.screenshot(path=str(shots / "4-closed.png"), full_page=True)
    page.goto(f"{live_server}/c/tiny/dev/detection/leaderboard")
    assert "hidden until the organizers reveal it" in page.content()
    page.goto(f"{live_server}/c/tiny/dev/detection/leaderboard?split=private")
    assert "private leaderboard is hidden" in page.content()  # sent back to the challenge with the reason
    private_csv = f"{live_server}/c/tiny/dev/detection/leaderboard.csv?split=private"
    assert page.request.get(private_csv).status == 403
    page.screenshot(path=str(shots / "5-private-hidden.png"), full_page=True)

    admin.check("input[name=private_revealed]")
    admin.fill("form:has(input[name=closed]) input[name=reason]", "top teams verified")
    admin.click("button:has-text('Save')")
    admin.click("#confirm-button")
    assert admin.inner_text("span.phase-state") == "revealed"
    admin.screenshot(path=str(shots / "6-organizer.png"), full_page=True)

    page.goto(f"{live_server}/c/tiny/dev/detection/leaderboard?split=private")
    assert page.inner_text("#phase-state") == "revealed" and "Team Chromium" in page.inner_text("#board")
    page.screenshot(path=str(shots / "7-private-revealed.png"), full_page=True)
    with page.expect_download() as download:
        page.click("a:has-text('CSV')")
    standings = Path(download.value.path()).read_text().splitlines()
    assert standings[0].startswith("rank,name") and standings[1].startswith("1,Team Chromium,0,")
    names = ("1-team", "2-scored", "3-leaderboard", "4-closed", "5-private-hidden", "6-organizer", "7-private-revealed")
    assert all((shots / f"{name}.png").stat().st_size > 1000 for name in names)
