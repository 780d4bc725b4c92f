"""The layout rules of DESIGN.md: import directions between our packages, and no name that shadows the stdlib."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {
    "scorer": ROOT / "scorer",
    "facedata": ROOT / "facedata",
    "baselines": ROOT / "baselines",
    "starter_kit": ROOT / "starter_kit",
    "arena": ROOT / "platform" / "arena",
    "modelrunner": ROOT / "modelrunner",
}
OURS = set(PACKAGES)

# package -> our packages (or dotted modules) it may import
ALLOWED = {
    "scorer": set(),
    "facedata": {"scorer.formats"},
    "baselines": {"scorer", "facedata"},
    "starter_kit": {"scorer", "facedata", "baselines"},
    "arena": {"scorer"},  # in its job module only, see below
    "modelrunner": {"scorer", "facedata"},  # the in-sandbox harness; nothing of ours imports it
}
FORBIDDEN_THIRD_PARTY = {"arena": {"torch"}, "scorer": {"torch"}}
# the final stage's sandbox package may check model archives (scorer.archive: no torch) outside its job module
ARENA_ARCHIVE_CHECKS = ("sandbox",)


def _imports(path: Path) -> list[tuple[str, int]]:
    """(dotted module, line) of every absolute import in a file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.extend((f"{node.module}.{alias.name}", node.lineno) for alias in node.names)
    return found


def _modules(package: str) -> list[Path]:
    return sorted(PACKAGES[package].rglob("*.py"))


def _allowed(package: str, module: str, path: Path) -> bool:
    top = module.split(".")[0]
    if top not in OURS or top == package:
        return True
    if package == "arena":
        if module.startswith("scorer.archive") and path.parent.name in ARENA_ARCHIVE_CHECKS:
            return True
        return top == "scorer" and (path.stem in {"jobs", "scoring"} or path.parent.name == "jobs")
    return any(module == rule or module.startswith(rule + ".") for rule in ALLOWED[package])


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_imports_point_one_way(package):
    wrong = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in _modules(package)
        for module, line in _imports(path)
        if not _allowed(package, module, path)
    ]
    assert not wrong, "imports against DESIGN.md's directions:\n" + "\n".join(wrong)


@pytest.mark.parametrize("package", sorted(FORBIDDEN_THIRD_PARTY))
def test_light_packages_never_import_heavy_libraries(package):
    wrong = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in _modules(package)
        for module, line in _imports(path)
        if module.split(".")[0] in FORBIDDEN_THIRD_PARTY[package]
    ]
    assert not wrong, "\n".join(wrong)


def test_only_the_dataset_wrappers_of_facedata_import_torch():
    users = sorted(
        str(path.relative_to(ROOT))
        for path in _modules("facedata")
        if any(module.split(".")[0] == "torch" for module, _ in _imports(path))
    )
    assert len(users) <= 1, f"facedata imports torch in more than one module: {users}"


def test_platform_folder_is_not_a_package():
    assert not (ROOT / "platform" / "__init__.py").exists(), "platform/__init__.py would shadow the stdlib module"


def test_no_top_level_package_shadows_the_standard_library():
    tops = {p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    tops |= {p.stem for p in ROOT.glob("*.py")}
    tops |= set(PACKAGES)
    shadows = sorted(tops & set(sys.stdlib_module_names))
    assert not shadows, f"these top-level names shadow the standard library: {shadows}"


def test_the_import_scan_sees_a_forbidden_import(tmp_path):
    """The rule above must be able to fail: a scorer module importing arena is caught."""
    bad = tmp_path / "bad.py"
    bad.write_text("import numpy\nfrom arena.models import Submission\n")
    assert ("arena.models.Submission", 2) in _imports(bad)
    assert not _allowed("scorer", "arena.models.Submission", bad)
    assert not _allowed("arena", "modelrunner.harness.main", bad), "arena must never import the in-sandbox harness"
