"""One tiny synthetic dataset per test session (a few seconds), shared read-only by the facedata tests."""

from __future__ import annotations

import pytest

from facedata.synth import generate


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("facedata") / "tiny"
    generate(root, "tiny", seed=0, workers=1)
    return root


@pytest.fixture(scope="session")
def tiny_manifest(tiny_root):
    import json

    return json.loads((tiny_root / "manifest.json").read_text())
