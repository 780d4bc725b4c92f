"""The organizer console in real headless Chromium: filter the teams, page through them, ban one through the
confirmation page, find the ban in the audit log, look at the dashboard, at desktop and phone widths.
Screenshots go to ARENA_SCREENSHOT_DIR (default: the test's tmp folder)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from arena.services import teams
from arena_testkit import PASSWORD, finished_submission, make_user
from test_browser import browser  # noqa: F401  the Chromium fixture of the browser tests

pytestmark = [pytest.mark.browser, pytest.mark.redis, pytest.mark.slow]


def test_an_organizer_filters_pages_and_bans_through_the_confirmation(
    app,
    engine,
    live_server,
    browser,  # noqa: F811  the fixture imported above
    db,
    challenge,
    tmp_path,
):
    if engine.dialect.name != "sqlite":
        pytest.skip("one browser run is enough")
    shots = Path(os.environ.get("ARENA_SCREENSHOT_DIR") or tmp_path / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    phase, det = challenge.phases[0], challenge.tracks[0]
    for i in range(12):
        team = teams.create_team(db, make_user(db, f"m{i}@example.com"), challenge, f"Crew {i:02d}", True)
        finished_submission(db, team, phase, det, 0.05 * i, 0.04 * i, i)
    organizer = make_user(db, "organizer@example.com", organizer=True)
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.goto(f"{live_server}/login")
    page.fill("input[name=email]", organizer.email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button:has-text('Log in')")

    page.goto(f"{live_server}/admin/c/tiny")
    assert page.inner_text("#dash-teams") == "12" and page.query_selector("#per-day-chart") is not None
    page.screenshot(path=str(shots / "console-1-dashboard.png"), full_page=True)

    page.click("nav[aria-label=console] a:has-text('Teams')")
    page.fill("input[name=size]", "5")
    page.click("#team-filters button:has-text('Filter')")
    assert page.locator("#teams tbody tr").count() == 5 and "size=5" in page.url
    page.click("#next-page")
    assert page.locator("#teams tbody tr").first.inner_text().startswith("6\t") or "Crew 06" in page.inner_text(
        "#teams"
    )
    page.click("#prev-page")
    assert "Crew 11" in page.inner_text("#teams")
    page.fill("input[name=q]", "crew 03")
    page.click("#team-filters button:has-text('Filter')")
    assert page.locator("#teams tbody tr").count() == 1 and "q=crew+03" in page.url
    page.screenshot(path=str(shots / "console-2-teams-filtered.png"), full_page=True)

    page.fill("#teams input[name=reason]", "shared accounts")
    page.click("#teams button:has-text('ban')")
    assert "its 1 finished submissions leave the boards (2 board rows)" in page.inner_text("#effect")
    page.screenshot(path=str(shots / "console-3-confirm-ban.png"), full_page=True)
    page.click("#confirm-button")
    assert "Team 'Crew 03' banned: its 1 finished submissions leave the boards" in page.inner_text("div.flash")
    assert "q=crew" in page.url  # back to the filtered list it came from
    buttons = page.locator("#teams button[name=action]").all_inner_texts()
    assert buttons == ["unban", "hide"]  # a banned team is offered what its state allows
    page.screenshot(path=str(shots / "console-4-banned.png"), full_page=True)

    page.goto(f"{live_server}/admin/audit?challenge=tiny")
    assert "status: approved → banned" in page.inner_text("#audit")
    page.screenshot(path=str(shots / "console-5-audit.png"), full_page=True)
    page.goto(f"{live_server}/admin/c/tiny/submissions?size=4")
    assert page.locator("#submissions tbody tr").count() == 4
    page.set_viewport_size({"width": 390, "height": 844})  # a phone: the table scrolls inside the page
    page.screenshot(path=str(shots / "console-6-submissions-phone.png"), full_page=True)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, width
    names = [f"console-{n}" for n in ("1-dashboard", "2-teams-filtered", "3-confirm-ban", "4-banned", "5-audit")]
    assert all((shots / f"{name}.png").stat().st_size > 1000 for name in names)
