"""The model archive of the final stage (scorer/archive.py): every check runs without torch, before anything runs,
and each failure names its field."""

from __future__ import annotations

import io
import json
import zipfile

import pytest

from scorer.archive import ArchiveError, Manifest, check_requirements, validate_archive, write_archive

OFFERS = {"torch": "2.13.0", "numpy": "2.1.0", "pillow": "11.0.0", "icartoonface-arena": "0.1.0"}
MODULE = "def load(folder):\n    return None\n"


def _torchscript_bytes() -> bytes:
    """The layout torch.jit.save writes (a zip with constants.pkl and code/), without needing torch."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as inner:
        inner.writestr("model/data.pkl", b"\x80\x02}q\x00.")
        inner.writestr("model/constants.pkl", b"\x80\x02).")
        inner.writestr("model/code/__torch__.py", "class Model: pass\n")
    return buffer.getvalue()


def _torch_save_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as inner:
        inner.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
        inner.writestr("archive/version", "3\n")
    return buffer.getvalue()


def _zip(tmp_path, entries: dict[str, bytes | str], name="model.zip"):
    path = tmp_path / name
    with zipfile.ZipFile(path, "w") as archive:
        for entry, content in entries.items():
            archive.writestr(entry, content)
    return path


def _manifest(**fields) -> str:
    base = {"format": 1, "task": "detection", "kind": "module", "entry": "model.py", "requirements": ["numpy"]}
    return json.dumps({**base, **fields})


def test_a_module_archive_written_by_write_archive_validates(tmp_path):
    manifest = Manifest(task="recognition", kind="module", entry="model.py", requirements=("torch>=2.0",))
    path = write_archive(tmp_path / "m.zip", manifest, {"model.py": MODULE})
    got = validate_archive(path, "recognition", OFFERS)
    assert got.task == "recognition" and got.requirements == ("torch>=2.0",) and got.input_size == 112


def test_a_torchscript_archive_validates(tmp_path):
    path = _zip(tmp_path, {"model.json": _manifest(kind="torchscript", entry="m.ts"), "m.ts": _torchscript_bytes()})
    assert validate_archive(path, "detection", OFFERS).kind == "torchscript"


@pytest.mark.parametrize(
    "entries, field, words",
    [
        ({"model.py": MODULE}, "model.json", "no model.json"),
        ({"model.json": "{not json", "model.py": MODULE}, "model.json", "not valid JSON"),
        ({"model.json": "[1]", "model.py": MODULE}, "model.json", "JSON object"),
        ({"model.json": _manifest(format=2), "model.py": MODULE}, "format", "'format' must be 1"),
        ({"model.json": _manifest(task="pose"), "model.py": MODULE}, "task", "'task' must be one of"),
        ({"model.json": _manifest(task="recognition"), "model.py": MODULE}, "task", "the track is detection"),
        ({"model.json": _manifest(kind="onnx"), "model.py": MODULE}, "kind", "'kind' must be one of"),
        ({"model.json": _manifest(entry="missing.py"), "model.py": MODULE}, "entry", "not in the archive"),
        ({"model.json": _manifest(entry="../evil.py"), "model.py": MODULE}, "archive", "leaves the archive"),
        ({"model.json": _manifest(), "model.py": "def load(:"}, "entry", "not valid Python"),
        ({"model.json": _manifest(), "model.py": "def predict(x): pass"}, "entry", "load(folder)"),
        ({"model.json": _manifest(entry="model.txt"), "model.txt": MODULE}, "entry", "must be a .py file"),
        ({"model.json": _manifest(kind="torchscript", entry="m.pt"), "m.pt": b"plain"}, "entry", "not a TorchScript"),
        ({"model.json": _manifest(kind="torchscript", entry="m.pt"), "m.pt": _torch_save_bytes()}, "entry", "jit.save"),
        ({"model.json": _manifest(requirements="numpy"), "model.py": MODULE}, "requirements", "list of strings"),
        ({"model.json": _manifest(requirements=["tensorflow"]), "model.py": MODULE}, "requirements", "does not offer"),
        ({"model.json": _manifest(requirements=["torch<2"]), "model.py": MODULE}, "requirements", "does not satisfy"),
        ({"model.json": _manifest(requirements=["torch>=>2"]), "model.py": MODULE}, "requirements", "is not valid"),
        ({"model.json": _manifest(input_size=8), "model.py": MODULE}, "input_size", "integer from 16"),
        ({"model.json": _manifest(batch_size=True), "model.py": MODULE}, "batch_size", "integer from 1"),
        ({"model.json": _manifest(), "model.py": MODULE, "/etc/passwd": "x"}, "archive", "leaves the archive"),
    ],
)
def test_an_archive_that_cannot_run_is_refused_naming_its_field(tmp_path, entries, field, words):
    path = _zip(tmp_path, entries)
    with pytest.raises(ArchiveError) as caught:
        validate_archive(path, "detection", OFFERS)
    assert caught.value.field == field
    assert words in str(caught.value)


def test_an_archive_over_the_size_cap_is_refused_before_it_is_opened(tmp_path):
    path = _zip(tmp_path, {"model.json": _manifest(), "model.py": MODULE, "weights.bin": b"\0" * 5000})
    with pytest.raises(ArchiveError, match="the limit is 1,000"):
        validate_archive(path, "detection", OFFERS, max_bytes=1000)


def test_a_zip_bomb_is_refused_by_its_unpacked_size(tmp_path):
    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("model.json", _manifest())
        archive.writestr("model.py", MODULE)
        archive.writestr("zeros.bin", b"\0" * 2_000_000)
    with pytest.raises(ArchiveError, match="unpacks to"):
        validate_archive(path, "detection", OFFERS, max_bytes=100_000)


def test_a_file_that_is_not_a_zip_is_refused(tmp_path):
    path = tmp_path / "model.zip"
    path.write_bytes(b"PK but not really a zip")
    with pytest.raises(ArchiveError, match="must be a .zip"):
        validate_archive(path, "detection", OFFERS)


def test_a_symbolic_link_in_the_archive_is_refused(tmp_path):
    path = tmp_path / "link.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("model.json", _manifest())
        archive.writestr("model.py", MODULE)
        link = zipfile.ZipInfo("weights")
        link.external_attr = 0o120777 << 16
        archive.writestr(link, "/etc/shadow")
    with pytest.raises(ArchiveError, match="symbolic link"):
        validate_archive(path, "detection", OFFERS)


def test_requirements_match_distribution_names_canonically():
    check_requirements(("Pillow>=10", "ICartoonFace_Arena==0.1.0", "torch==2.13.0"), OFFERS)
