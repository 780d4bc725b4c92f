"""The test suite's seed policy, registered once: every hypothesis test runs under one named profile.

- `ci` (the default, and what `make test` and CI use): derandomized, so every machine draws the same examples
  from each test's own name, no example database, no deadline (shared machines are noisy); a failure on one machine
  is the same failure on any other.
- `dev`: random draws, the local example database (failures are replayed first), and `EXAMPLES_FACTOR` times each
  test's example count, for hunting: `HYPOTHESIS_PROFILE=dev .venv/bin/python -m pytest tests/scorer`.

Test files never set their own seed policy; a costly test sets its example count through
`tests.profiles.examples(n)`, which the profile scales. Randomness outside hypothesis is seeded in each test.
"""

from __future__ import annotations

from hypothesis import settings

from tests.profiles import EXAMPLES_FACTOR, PROFILE

settings.register_profile("ci", derandomize=True, database=None, deadline=None, print_blob=True)
settings.register_profile("dev", max_examples=100 * EXAMPLES_FACTOR["dev"], deadline=None, print_blob=True)
settings.load_profile(PROFILE)


def pytest_report_header(config):
    return f"seed policy: hypothesis profile '{PROFILE}' ({_policy()})"


def pytest_terminal_summary(terminalreporter):
    how = (
        f"reproduce with HYPOTHESIS_PROFILE={PROFILE} make test"
        if settings().derandomize
        else "a failure prints its @reproduce_failure blob, and the local database replays it first"
    )
    terminalreporter.write_line(f"seed policy: hypothesis profile '{PROFILE}' ({_policy()}); {how}")


def _policy() -> str:
    current = settings()
    draws = "derandomized: the same examples on every machine" if current.derandomize else "random draws"
    return f"{draws}, database={'none' if current.database is None else 'local'}"
