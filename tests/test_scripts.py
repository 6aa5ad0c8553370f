"""The repository's scripts: scripts/test.sh installs only what the selected tests need."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow  # each case has pytest collect the browser tests (~10 s)


def _selects_browser_tests(*pytest_args: str) -> bool:
    """What scripts/test.sh decides, before installing chromium, for these pytest arguments."""
    done = subprocess.run(
        ["bash", "-c", 'source scripts/test.sh && browser_tests_selected "$@"', "test.sh",
         *pytest_args], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode in (0, 1), done.stderr
    return done.returncode == 0


@pytest.mark.parametrize(("args", "needed"), [
    (("-m", "not e2e", "tests/e2e", "tests/test_values.py"), False),
    (("tests/e2e/test_browser_smoke.py", "tests/test_values.py"), True),
])
def test_chromium_is_installed_only_when_browser_tests_are_selected(args: tuple[str, ...],
                                                                     needed: bool) -> None:
    assert _selects_browser_tests(*args) is needed
