"""The runs browser in a real JupyterLab and chromium: filter, select, delete, undo, detail.

The catalog is made here, before the server starts, and the server's kernels read it through
``TRACKER_CATALOG``. One run's name and a param are hostile markup: they must show as text and
run nothing. The test saves the table's screenshot in tests/e2e/artifacts/; with
TRACKER_UPDATE_SCREENSHOT=1 it refreshes docs/runs-browser.png, the README's picture, instead.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

import tracker

from .jupyterlab import Lab, open_notebook, run_all_cells, wait_for, write_notebook

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
SCREENSHOT = (REPO / "docs" / "runs-browser.png" if os.environ.get("TRACKER_UPDATE_SCREENSHOT")
              else REPO / "tests" / "e2e" / "artifacts" / "runs-browser.png")
HOSTILE_NAME = '<img src=x onerror="window.__pwned=1">'
HOSTILE_PARAM = "<script>window.__pwned=2</script>"
TIMEOUT_MS = 60_000
ROW = "tr.tracker-grid-row"
ROW_BUTTON = f"{ROW} button.tracker-grid-name"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A catalog of a few realistic runs and one hostile one: name -> run id."""
    catalog = tracker.Catalog(tmp_path_factory.mktemp("catalog") / "catalog.duckdb")
    made = {}
    for name, lr, losses, status, labels in [
        ("baseline", 0.1, [0.9, 0.6, 0.45], "completed", ["baseline"]),
        ("wider-net", 0.05, [0.8, 0.5, 0.31, 0.28], "completed", ["sweep"]),
        ("tiny-lr", 0.001, [0.95, 0.93], "failed", ["sweep"]),
        ("big-batch", 0.2, [0.7, 0.52, 0.4], "crashed", ["sweep"]),
    ]:
        run = catalog.start_run(name, project="vision", labels=labels,
                                params={"lr": lr, "batch": 64, "model": "resnet18"})
        for step, loss in enumerate(losses):
            run.log_metrics({"loss": loss, "acc": 1 - loss}, step=step)
        run.end(status, error="ValueError: loss is NaN" if status == "failed" else None)
        made[name] = run.id
    hostile = catalog.start_run(HOSTILE_NAME, params={"note": HOSTILE_PARAM},
                                labels=[HOSTILE_PARAM])
    hostile.end("completed")
    made["hostile"] = hostile.id
    made["catalog"] = str(catalog.path)
    yield made


@pytest.fixture(scope="module")
def lab_env(runs: dict[str, str]) -> dict[str, str]:
    return {"TRACKER_CATALOG": runs["catalog"]}


def test_runs_browser_filters_deletes_undoes_and_opens_detail(
        lab: Lab, page: Page, runs: dict[str, str]) -> None:
    catalog = tracker.Catalog(runs["catalog"])
    write_notebook(lab.root / "runs.ipynb", ["import tracker\ntable = tracker.show()"])
    page.set_viewport_size({"width": 1800, "height": 1000})  # room for the default columns
    open_notebook(page, lab, "runs.ipynb")
    run_all_cells(page)
    ui = wait_for(page, ".tracker-ui")
    wait_for(page, f"{ROW_BUTTON}:has-text('baseline')")

    # The hostile name is text in a button; nothing it carries became markup or ran.
    assert page.locator(ROW_BUTTON, has_text=HOSTILE_NAME).count() == 1
    assert ui.locator("img").count() == 0
    assert ui.locator("script").count() == 0
    assert page.evaluate("typeof window.__pwned") == "undefined"

    page.locator(".tracker-filter input").fill("params.lr >= 0.01")
    page.locator(".tracker-filter input").press("Enter")
    _wait_for_rows(page, 3)
    assert page.locator(ROW_BUTTON, has_text=HOSTILE_NAME).count() == 0
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    ui.screenshot(path=SCREENSHOT)

    row = page.locator(ROW, has=page.locator("button", has_text="wider-net"))
    row.locator("input[type=checkbox]").check()
    page.locator("button[title='move the selected runs to the trash']").click()
    wait_for(page, "button:has-text('Delete 1 run')").click()
    _wait_until(lambda: catalog.get_run(runs["wider-net"]).deleted)
    _wait_for_rows(page, 2)

    wait_for(page, ".tracker-bar button:has-text('Undo')").click()
    _wait_until(lambda: not catalog.get_run(runs["wider-net"]).deleted)
    _wait_for_rows(page, 3)

    page.locator(ROW_BUTTON, has_text="baseline").click()
    params = wait_for(page, ".tracker-panel table:has(th:has-text('param'))")
    assert "lr" in params.inner_text() and "0.1" in params.inner_text()
    assert page.locator(".tracker-panel svg").count() >= 2  # the loss and acc series

    # The hostile run's detail shows its param as text too.
    page.locator(".tracker-filter input").fill("")
    page.locator(".tracker-filter input").press("Enter")
    _wait_for_rows(page, 5)
    page.locator(ROW_BUTTON, has_text=HOSTILE_NAME).click()
    wait_for(page, f".tracker-panel td:has-text('{HOSTILE_PARAM}')")
    assert ui.locator("img").count() == 0
    assert page.evaluate("typeof window.__pwned") == "undefined"


def _wait_for_rows(page: Page, count: int) -> None:
    page.wait_for_function(
        "([sel, n]) => document.querySelectorAll(sel).length === n",
        arg=[ROW, count], timeout=TIMEOUT_MS)


def _wait_until(condition: Callable[[], bool], timeout: float = TIMEOUT_MS / 1000) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the catalog did not change in time"
        time.sleep(0.2)
