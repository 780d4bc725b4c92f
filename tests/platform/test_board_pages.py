"""A long leaderboard in pages (arena/boards.py PAGE_ROWS) and the API's slices of it: every row is on exactly one
page in board order, a page past the last shows the last, a malformed page number is a 400 that says what is
wrong, a member is told which page holds the team's row, and the JSON answers `offset`/`limit` slices with the
board's `total`."""

from __future__ import annotations

import re

import pytest
from arena.boards import PAGE_ROWS
from arena_testkit import PASSWORD, finished_submission

PAGE = "/c/tiny/dev/detection/leaderboard"
API = "/api/v1/challenges/tiny/phases/dev/tracks/detection/leaderboard"
ROWS = 2 * PAGE_ROWS + 37  # three pages, the last one short


@pytest.fixture
def long_board(db, challenge, team_user):
    """ROWS - 1 baseline rows above team_user's team (the lowest score): its row is the board's last."""
    phase, track = challenge.phases[0], challenge.tracks[0]
    for i in range(ROWS - 1):
        score = 0.9 - i / (10 * ROWS)
        finished_submission(db, None, phase, track, score, score, 1, is_baseline=True, baseline_name=f"B{i:03d}")
    finished_submission(db, team_user[2], phase, track, 0.01, 0.01, 2)
    return team_user


def _names(html: str) -> list[str]:
    return re.findall(r"<td>(B\d{3}|<a [^>]*>Alpha</a>)", html)


def test_every_row_is_on_exactly_one_page_in_board_order(client, long_board):
    pages = [client.get(f"{PAGE}?page={n}") for n in (1, 2, 3)]
    assert all(p.status_code == 200 for p in pages)
    rows = [name for p in pages for name in _names(p.get_data(as_text=True))]
    assert len(rows) == ROWS and rows[:2] == ["B000", "B001"] and "Alpha" in rows[-1]
    assert [len(_names(p.get_data(as_text=True))) for p in pages] == [PAGE_ROWS, PAGE_ROWS, ROWS - 2 * PAGE_ROWS]
    first = pages[0].get_data(as_text=True)
    assert f"Rows 1 to {PAGE_ROWS} of {ROWS}" in first and "page 1 of 3" in first and 'rel="next"' in first
    assert _names(client.get(PAGE).get_data(as_text=True)) == _names(first), "page 1 by default"
    past = client.get(f"{PAGE}?page=9").get_data(as_text=True)
    assert "page 3 of 3" in past and _names(past) == _names(pages[2].get_data(as_text=True))


@pytest.mark.parametrize("page", ["0", "-1", "two", "1.5"])
def test_a_malformed_page_number_is_a_400_that_says_so(client, long_board, page):
    answer = client.get(f"{PAGE}?page={page}")
    assert answer.status_code == 400
    assert "page must be a whole number from 1 to 3" in answer.get_data(as_text=True)


def test_a_member_is_told_the_page_that_holds_the_team_row(client, long_board):
    client.post("/login", data={"email": "alice@example.com", "password": PASSWORD})
    first = client.get(PAGE).get_data(as_text=True)
    assert 'Your team\'s row is on <a href="?split=public&amp;page=3">page 3</a>' in first
    assert "my-team-page" not in client.get(f"{PAGE}?page=3").get_data(as_text=True)


def test_the_api_answers_slices_with_the_total(client, long_board):
    whole = client.get(API).get_json()
    assert whole["total"] == ROWS and len(whole["rows"]) == ROWS and whole["offset"] == 0
    part = client.get(f"{API}?offset={PAGE_ROWS}&limit=5").get_json()
    assert part["total"] == ROWS and part["offset"] == PAGE_ROWS
    assert part["rows"] == whole["rows"][PAGE_ROWS : PAGE_ROWS + 5]
    assert client.get(f"{API}?offset={ROWS}&limit=5").get_json()["rows"] == []
    a, b = client.get(f"{API}?limit=5"), client.get(f"{API}?limit=6")
    assert a.headers["ETag"] != b.headers["ETag"], "each slice has its own ETag"
    bad = client.get(f"{API}?limit=0")
    assert bad.status_code == 400 and bad.get_json()["field"] == "limit"
