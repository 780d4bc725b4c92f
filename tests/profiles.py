"""The hypothesis profile in force (registered in the root conftest.py) and the example counts it scales."""

from __future__ import annotations

import os

PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
if PROFILE not in ("ci", "dev"):
    raise RuntimeError(f"HYPOTHESIS_PROFILE must be 'ci' or 'dev', not {PROFILE!r}")
EXAMPLES_FACTOR = {"ci": 1, "dev": 10}


def examples(count: int) -> int:
    """A test's example count under the profile in force: `count` in ci, EXAMPLES_FACTOR times more in dev."""
    return count * EXAMPLES_FACTOR[PROFILE]
