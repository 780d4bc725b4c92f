"""`python -m facedata`: synth, check and pack from the command line; a bad folder exits 2 with one clear line."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from facedata.__main__ import main


def test_check_prints_the_counts_of_a_complete_dataset(tiny_root, capsys):
    assert main(["check", str(tiny_root)]) == 0
    out = capsys.readouterr().out
    assert "recognition test: 45 images" in out and "hidden verification pairs: 20 same, 20 different" in out


def test_check_of_an_incomplete_folder_exits_2_naming_what_is_missing(tmp_path, capsys):
    assert main(["check", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "icartoonface_rectrain_det.txt" in err


def test_check_finds_a_listed_test_image_that_is_absent(tiny_root, tmp_path, capsys):
    root = tmp_path / "copy"
    shutil.copytree(tiny_root, root)
    (root / "icartoonface_rectest" / "personai_icartoonface_rectest_00003.jpg").unlink()
    assert main(["check", str(root)]) == 2
    assert "personai_icartoonface_rectest_00003.jpg" in capsys.readouterr().err


def test_pack_from_the_command_line(tiny_root, tmp_path, capsys):
    assert main(["pack", str(tiny_root), "--split", "auxiliary", "--out", str(tmp_path / "aux"), "--size", "24"]) == 0
    assert "packed 12 faces" in capsys.readouterr().out
    assert (tmp_path / "aux.npy").exists() and (tmp_path / "aux.json").exists()


@pytest.mark.slow
def test_synth_with_two_workers_writes_the_same_bytes_as_one(tmp_path, tiny_manifest):
    """The documented command in a fresh interpreter, 2 worker processes, against the session's 1-process run:
    the same seed gives byte-identical files whatever the number of processes (sha256 of every file)."""
    out = tmp_path / "cli"
    command = [sys.executable, "-m", "facedata", "synth", "--preset", "tiny", "--out", str(out), "--seed", "0"]
    run = subprocess.run([*command, "--workers", "2", "--no-progress"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["files"] == tiny_manifest["files"]
    assert manifest == tiny_manifest


def test_synth_into_a_folder_of_another_unfinished_run_exits_2(tmp_path, capsys):
    (tmp_path / ".partial").mkdir()
    (tmp_path / ".partial" / "plan.json").write_text(json.dumps({"preset": {"name": "full"}, "seed": 9}))
    assert main(["synth", "--preset", "tiny", "--out", str(tmp_path), "--workers", "1", "--no-progress"]) == 2
    assert "unfinished run" in capsys.readouterr().err


def test_synth_onto_a_file_exits_1_with_the_reason(tmp_path, capsys):
    target = tmp_path / "a_file"
    target.write_text("x")
    assert main(["synth", "--preset", "tiny", "--out", str(target), "--workers", "1", "--no-progress"]) == 1
    assert capsys.readouterr().err.startswith("error: ")
