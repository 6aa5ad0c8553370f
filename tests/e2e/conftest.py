"""End-to-end fixtures: a real JupyterLab (``lab``) and a real headless chromium (``page``).

A test module changes the server's environment by overriding the ``lab_env`` fixture, e.g.::

    @pytest.fixture(scope="module")
    def lab_env(tmp_path_factory) -> dict[str, str]:
        return {"IPYTHONDIR": str(REPO / "jupyter_config" / "ipython")}

or with ``@pytest.mark.parametrize("lab", [{"NAME": "value"}], indirect=True)``. The server
always gets its own temp ``TRACKER_CATALOG`` unless one of these sets it; ``lab.env`` holds the
environment the server and its kernels got.
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .jupyterlab import Lab, running_lab

if TYPE_CHECKING:
    from playwright.sync_api import Page

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Keep each phase's report on the item, so fixtures can tell whether the test failed."""
    report = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    return report


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's chromium, checked before any server starts; fail under CI, else skip, if missing."""
    if importlib.util.find_spec("playwright") is None:
        _unavailable("the playwright package is not installed (pip install -e '.[test]')")
    if importlib.util.find_spec("jupyterlab") is None:
        _unavailable("the jupyterlab package is not installed (pip install -e '.[test]')")
    if not CHROMIUM.exists():
        _unavailable(
            f"{CHROMIUM} is missing (apt-get install chromium, or run scripts/test.sh as root)"
        )
    return CHROMIUM


@pytest.fixture(scope="module")
def lab_env() -> dict[str, str]:
    """Extra environment for the module's JupyterLab server; override in a test module."""
    return {}


@pytest.fixture(scope="module")
def lab(
    request: pytest.FixtureRequest,
    chromium: Path,
    lab_env: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Lab]:
    """A JupyterLab server for the module, in temp dirs; its kernels run this interpreter."""
    env = lab_env | getattr(request, "param", {})
    with running_lab(tmp_path_factory.mktemp("lab"), env=env) as server:
        yield server


@pytest.fixture
def page(request: pytest.FixtureRequest, chromium: Path, tmp_path: Path) -> Iterator[Page]:
    """A fresh headless chromium page (1400x900); screenshots itself if the test fails."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            tmp_path / "chromium-profile",
            executable_path=str(chromium),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 900},
        )
        try:
            browser_page = context.pages[0] if context.pages else context.new_page()
            yield browser_page
            if _failed(request.node):
                ARTIFACTS.mkdir(exist_ok=True)
                browser_page.screenshot(path=ARTIFACTS / f"{_file_name(request.node.name)}.png")
        finally:
            context.close()


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"end-to-end tests cannot run: {reason}", pytrace=False)
    pytest.skip(reason)


def _failed(item: pytest.Item) -> bool:
    report = item.stash.get(_REPORTS, {}).get("call")
    return report is not None and report.failed


def _file_name(test_name: str) -> str:
    return re.sub(r"[^\w.-]+", "_", test_name)
