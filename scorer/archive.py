"""The model archive of the final stage (docs/operations.md, starter_kit/README.md): a zip that a team uploads so
that the platform can re-run its model on the hidden images. Pure standard library plus `packaging`: it validates
without importing torch, so the web process can refuse a bad archive before anything runs.

An archive holds `model.json` at its root:

    {"format": 1, "task": "detection" | "recognition", "kind": "torchscript" | "module",
     "entry": "model.ts" | "model.py", "requirements": ["torch>=2.0"], "input_size": 112, "batch_size": 32}

- `torchscript`: `entry` is a `torch.jit.save` file. Detection: `model(image)` with image float32 (1, 3, H, W) in
  [0, 1] returns float (K, 5) rows `x1, y1, x2, y2, score`. Recognition: `model(crops)` with crops float32
  (N, 3, S, S) in [0, 1], S = `input_size`, returns float (N, D).
- `module`: `entry` is a Python file defining `load(folder) -> model` (folder: the unpacked archive, read-only).
  Detection: `model.predict(images)` with a list of uint8 (H, W, 3) RGB arrays returns one float (K, 5) array per
  image. Recognition: `model.embed(crops)` with uint8 (N, S, S, 3) returns float (N, D).
- `requirements`: PEP 508 names with optional versions; each must be offered by the runner (`RUNNER_OFFERS` is the
  platform's list; a worker reports the versions it has).
"""

from __future__ import annotations

import ast
import io
import json
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

MANIFEST = "model.json"
FORMAT_VERSION = 1
TASKS = ("detection", "recognition")
KINDS = ("torchscript", "module")
DEFAULT_MAX_ARCHIVE_BYTES = 500 * 2**20
MAX_ENTRIES = 10_000
MAX_UNPACKED_FACTOR = 4  # an archive may unpack to at most this many times its size cap (no zip bombs)
DEFAULT_INPUT_SIZE = 112
DEFAULT_BATCH_SIZE = 16
# the distributions a sandboxed runner offers to a model (their versions come from the worker's environment)
RUNNER_OFFERS = ("torch", "numpy", "pillow", "icartoonface-arena")


class ArchiveError(ValueError):
    """A model archive that cannot run: the message names the entry or the manifest field."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Manifest:
    task: str
    kind: str
    entry: str
    requirements: tuple[str, ...] = ()
    input_size: int = DEFAULT_INPUT_SIZE
    batch_size: int = DEFAULT_BATCH_SIZE
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "format": FORMAT_VERSION,
            "task": self.task,
            "kind": self.kind,
            "entry": self.entry,
            "requirements": list(self.requirements),
            "input_size": self.input_size,
            "batch_size": self.batch_size,
            **self.extra,
        }


def _safe_name(name: str) -> None:
    path = PurePosixPath(name)
    if name.startswith("/") or "\\" in name or ".." in path.parts or (path.parts and ":" in path.parts[0]):
        raise ArchiveError(f"archive entry '{name}' leaves the archive folder", field="archive")


def _members(archive: zipfile.ZipFile, max_bytes: int) -> dict[str, zipfile.ZipInfo]:
    infos = archive.infolist()
    if len(infos) > MAX_ENTRIES:
        raise ArchiveError(f"the archive has {len(infos):,} entries; at most {MAX_ENTRIES:,}", field="archive")
    unpacked = 0
    for info in infos:
        _safe_name(info.filename)
        if stat.S_ISLNK(info.external_attr >> 16):
            raise ArchiveError(f"archive entry '{info.filename}' is a symbolic link", field="archive")
        unpacked += info.file_size
    if unpacked > MAX_UNPACKED_FACTOR * max_bytes:
        raise ArchiveError(f"the archive unpacks to {unpacked:,} bytes, more than allowed", field="archive")
    return {info.filename: info for info in infos if not info.is_dir()}


def _int(raw: dict, key: str, default: int, low: int, high: int) -> int:
    value = raw.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ArchiveError(f"model.json: '{key}' must be an integer from {low} to {high}", field=key)
    return value


def parse_manifest(text: bytes | str) -> Manifest:
    """The manifest of model.json's bytes; raises ArchiveError naming the field."""
    try:
        raw = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ArchiveError(f"model.json is not valid JSON: {exc}", field="model.json") from None
    if not isinstance(raw, dict):
        raise ArchiveError("model.json must hold a JSON object", field="model.json")
    if raw.get("format") != FORMAT_VERSION:
        raise ArchiveError(f"model.json: 'format' must be {FORMAT_VERSION}", field="format")
    for key, allowed in (("task", TASKS), ("kind", KINDS)):
        if raw.get(key) not in allowed:
            raise ArchiveError(f"model.json: '{key}' must be one of {', '.join(allowed)}", field=key)
    entry = raw.get("entry")
    if not isinstance(entry, str) or not entry:
        raise ArchiveError("model.json: 'entry' must name a file of the archive", field="entry")
    _safe_name(entry)
    requirements = raw.get("requirements", [])
    if not isinstance(requirements, list) or not all(isinstance(r, str) for r in requirements):
        raise ArchiveError("model.json: 'requirements' must be a list of strings", field="requirements")
    known = {"format", "task", "kind", "entry", "requirements", "input_size", "batch_size"}
    return Manifest(
        task=raw["task"],
        kind=raw["kind"],
        entry=entry,
        requirements=tuple(requirements),
        input_size=_int(raw, "input_size", DEFAULT_INPUT_SIZE, 16, 1024),
        batch_size=_int(raw, "batch_size", DEFAULT_BATCH_SIZE, 1, 1024),
        extra={k: v for k, v in raw.items() if k not in known},
    )


def check_requirements(requirements: tuple[str, ...], offered: dict[str, str]) -> None:
    """Each requirement must name a distribution the runner offers, at a version its specifier accepts.
    offered: {distribution name: version} of the runner."""
    names = {canonicalize_name(name): version for name, version in offered.items()}
    menu = ", ".join(f"{name} {version}" for name, version in sorted(offered.items()))
    for text in requirements:
        try:
            req = Requirement(text)
        except InvalidRequirement as exc:
            raise ArchiveError(f"requirement '{text}' is not valid: {exc}", field="requirements") from None
        version = names.get(canonicalize_name(req.name))
        if version is None:
            raise ArchiveError(
                f"requirement '{text}': the runner does not offer {req.name}; it offers {menu}", field="requirements"
            )
        if req.specifier and not req.specifier.contains(version, prereleases=True):
            raise ArchiveError(
                f"requirement '{text}': the runner offers {req.name} {version}, which does not satisfy it",
                field="requirements",
            )


def _check_torchscript(archive: zipfile.ZipFile, entry: str) -> None:
    """A TorchScript file is itself a zip with <name>/constants.pkl and <name>/code/ (torch.save has neither)."""
    try:
        with archive.open(entry) as handle, zipfile.ZipFile(io.BytesIO(handle.read())) as inner:
            names = inner.namelist()
    except zipfile.BadZipFile:
        raise ArchiveError(f"entry '{entry}' is not a TorchScript file (torch.jit.save)", field="entry") from None
    if not any(n.endswith("/constants.pkl") for n in names) or not any("/code/" in n for n in names):
        raise ArchiveError(
            f"entry '{entry}' is a torch file but not TorchScript: save it with torch.jit.save, "
            "or use kind 'module' with a load() function",
            field="entry",
        )


def _check_module(archive: zipfile.ZipFile, entry: str) -> None:
    if not entry.endswith(".py"):
        raise ArchiveError(f"entry '{entry}' of kind 'module' must be a .py file", field="entry")
    try:
        tree = ast.parse(archive.read(entry).decode("utf-8"), filename=entry)
    except (SyntaxError, UnicodeDecodeError) as exc:
        raise ArchiveError(f"entry '{entry}' is not valid Python: {exc}", field="entry") from None
    if not any(isinstance(node, ast.FunctionDef) and node.name == "load" for node in tree.body):
        raise ArchiveError(f"entry '{entry}' must define a top-level function load(folder)", field="entry")


def validate_archive(
    path: str | Path, task: str, offered: dict[str, str], max_bytes: int = DEFAULT_MAX_ARCHIVE_BYTES
) -> Manifest:
    """The manifest of a model archive for a track of `task`, after every check that needs no torch: size, zip
    structure, manifest fields, entry point, requirements. Raises ArchiveError."""
    path = Path(path)
    size = path.stat().st_size
    if size > max_bytes:
        raise ArchiveError(f"the archive is {size:,} bytes; the limit is {max_bytes:,}", field="archive")
    if not zipfile.is_zipfile(path):
        raise ArchiveError("the model archive must be a .zip file", field="archive")
    try:
        with zipfile.ZipFile(path) as archive:
            members = _members(archive, max_bytes)
            if MANIFEST not in members:
                raise ArchiveError("the archive has no model.json at its root", field="model.json")
            manifest = parse_manifest(archive.read(MANIFEST))
            if manifest.task != task:
                raise ArchiveError(f"this is a {manifest.task} model; the track is {task}", field="task")
            if manifest.entry not in members:
                raise ArchiveError(f"model.json: entry '{manifest.entry}' is not in the archive", field="entry")
            check_requirements(manifest.requirements, offered)
            if manifest.kind == "torchscript":
                _check_torchscript(archive, manifest.entry)
            else:
                _check_module(archive, manifest.entry)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError) as exc:
        raise ArchiveError(f"the archive cannot be read: {exc}", field="archive") from None
    return manifest


def unpack(path: str | Path, target: str | Path) -> None:
    """Unpack a validated archive into target (entry names were checked to stay inside it)."""
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            _safe_name(info.filename)
        archive.extractall(target)


def write_archive(path: str | Path, manifest: Manifest, files: dict[str, bytes | Path]) -> Path:
    """Write an archive: model.json from manifest, then files {name in archive: bytes or a file to copy}."""
    path = Path(path)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(MANIFEST, json.dumps(manifest.to_dict(), indent=2) + "\n")
        for name, content in files.items():
            _safe_name(name)
            if isinstance(content, Path):
                archive.write(content, name)
            else:
                archive.writestr(name, content)
    return path
