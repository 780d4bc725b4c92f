"""The participant command line (`python -m starter_kit.submit`) against a live server with a worker."""

from __future__ import annotations

import pytest

from starter_kit import submit

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def test_submit_waits_and_prints_the_score(logged_in, data, tmp_path, capsys):
    path = tmp_path / "dets.csv"
    path.write_bytes(data.detection_csv())
    code = submit.main(
        [
            "--quiet",
            "submit",
            str(path),
            "--challenge",
            "tiny",
            "--phase",
            "dev",
            "--track",
            "detection",
            "--timeout",
            "60",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and "ap50 = 1.0000 on the public split" in out


def test_a_rejected_file_exits_2_with_the_line(logged_in, tmp_path, capsys):
    path = tmp_path / "bad.csv"
    path.write_bytes(b"det_000.jpg,1,2,3,4,face,0.5\ndet_000.jpg,1,2,3\n")
    code = submit.main(
        [
            "--quiet",
            "submit",
            str(path),
            "--challenge",
            "tiny",
            "--phase",
            "dev",
            "--track",
            "detection",
            "--timeout",
            "60",
        ]
    )
    out = capsys.readouterr().out
    assert code == 2 and "(line 2)" in out and "expected 7 columns" in out


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["submit", "missing.csv", "--challenge", "tiny", "--phase", "dev", "--track", "detection"], "no file"),
        (["status", "999"], "no submission 999"),
        (["leaderboard", "--challenge", "nope", "--phase", "dev", "--track", "detection"], "no challenge 'nope'"),
    ],
)
def test_errors_print_one_line_and_exit_1(logged_in, capsys, argv, words):
    assert submit.main(["--quiet", *argv]) == 1
    assert words in capsys.readouterr().err


def test_a_bad_token_cannot_log_in(live_server, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ARENA_CREDENTIALS", str(tmp_path / "creds.json"))
    assert submit.main(["login", "--url", live_server, "--token", "arena_wrong"]) == 1
    assert "not valid" in capsys.readouterr().err
    assert not (tmp_path / "creds.json").exists()
