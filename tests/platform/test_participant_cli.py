"""The submit CLI shows the quota (a `quota` subcommand and a line after each upload), sends method metadata and
confirms a final pick."""

from __future__ import annotations

import pytest

from starter_kit import submit

pytestmark = [pytest.mark.redis, pytest.mark.slow]


TARGET = ["--challenge", "tiny", "--phase", "dev", "--track", "detection"]


def test_quota_submit_with_a_method_and_final_print_what_they_did(logged_in, data, tmp_path, capsys):
    assert submit.main(["quota", *TARGET]) == 0
    assert "submissions left in dev: 5 of 5 today, 10 of 10 in total" in capsys.readouterr().out
    path = tmp_path / "dets.csv"
    path.write_bytes(data.detection_csv())
    code = submit.main(
        ["--quiet", "submit", str(path), *TARGET, "--method-name", "ArcFace r50", "--code-url", "https://x.org/c"]
    )
    out = capsys.readouterr().out
    assert code == 0 and "4 of 5 today, 9 of 10 in total" in out
    sub_id = int(out.split()[1])
    assert submit.main(["final", str(sub_id)]) == 0
    assert f"Submission {sub_id} (ArcFace r50) is now your final pick" in capsys.readouterr().out


def test_a_bad_method_url_is_refused_naming_the_field(logged_in, data, tmp_path, capsys):
    path = tmp_path / "dets.csv"
    path.write_bytes(data.detection_csv())
    assert submit.main(["--quiet", "submit", str(path), *TARGET, "--paper-url", "ftp://x"]) == 1
    assert "'paper_url' must be an http:// or https:// address" in capsys.readouterr().err
