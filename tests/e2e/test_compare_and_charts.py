"""Compare and charts in a real JupyterLab and chromium: runs of one notebook told apart, and
charts across 10,000 runs drawn from the catalog's sample.

The catalog is made before the server starts: three runs of one notebook, named as the notebook
extension names them (the writer numbers them), and 10,000 runs written through the flusher's
own path (``delivery.write_events``), as the benchmarks populate theirs.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

import tracker
from tracker import _ids, delivery, events, models
from tracker.recorder import local_to

from .jupyterlab import Lab, open_notebook, run_all_cells, wait_for, write_notebook

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.e2e

RUNS = 10_000
TIMEOUT_MS = 60_000


def _sweep_events(run_id: str, rng: random.Random, started: float) -> list[events.Spooled]:
    lr, layers = rng.choice([0.1, 0.03, 0.01, 0.003]), rng.randrange(1, 9)
    shapes: list[events.Event] = [
        events.Start(run_id, {"name": "sweep", "project": "charts", "started_at": started}),
        events.Param(run_id, "lr", lr, "float", started),
        events.Param(run_id, "layers", layers, "int", started),
        events.Param(run_id, "optimizer", rng.choice(["adam", "sgd"]), "str", started),
        events.Metric(run_id, "acc", 0.5 + 0.4 * rng.random() - lr, None, started),
        events.End(run_id, "completed", started + 60, None),
    ]
    return [events.Spooled(run_id, seq, event) for seq, event in enumerate(shapes, 1)]


@pytest.fixture(scope="module")
def catalogs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """``small``: three runs of notebook train_cnn; ``big``: 10,000 sweep runs."""
    small = tracker.Catalog(tmp_path_factory.mktemp("small") / "catalog.duckdb")
    recorder = small.recorder_for_write()
    ids = []
    for lr in (0.1, 0.01, 0.001):
        run = recorder.start_run("train_cnn", params={"lr": lr}, attrs={
            "notebook_name": "train_cnn", models.NUMBERED_NAME: True})
        run.log_metric("loss", 1.0, step=0)
        run.log_metric("loss", lr * 5, step=1)
        run.end()
        ids.append(run.id)
    big = tracker.Catalog(tmp_path_factory.mktemp("big") / "catalog.duckdb")
    rng, batch, local = random.Random(15), [], local_to(big.spool_dir)
    for i in range(RUNS):
        batch += _sweep_events(_ids.new_run_id(), rng, time.time() - RUNS + i)
        if len(batch) > 12_000:
            delivery.write_events(big, batch, local=local)
            batch = []
    delivery.write_events(big, batch, local=local)
    yield {"small": str(small.path), "ids": ids, "big": str(big.path)}


@pytest.fixture(scope="module")
def lab_env(catalogs: dict[str, Any]) -> dict[str, str]:
    return {"TRACKER_CATALOG": catalogs["small"]}


def test_compare_of_three_runs_of_one_notebook_has_three_different_headers(
        lab: Lab, page: Page, catalogs: dict[str, Any]) -> None:
    write_notebook(lab.root / "compare.ipynb", [
        "from tracker.widgets import RunComparison\n"
        f"RunComparison({catalogs['ids']!r})"])
    open_notebook(page, lab, "compare.ipynb")
    run_all_cells(page)
    table = wait_for(page, "table.tracker-compare")

    headers = [text.strip() for text in table.locator("thead th").all_inner_texts()][1:]
    assert len(headers) == 3 and len(set(headers)) == 3
    assert all(header.startswith("train_cnn #") for header in headers)
    # Nothing cut to "...": each header's text fits its cell.
    assert table.evaluate("t => [...t.querySelectorAll('th')].every("
                          "c => c.scrollWidth <= c.clientWidth + 1)")
    best = table.locator("td.tracker-best")
    assert best.count() == 1 and "★" in best.inner_text()  # the lowest loss
    legend = page.locator("svg.tracker-plot text", has_text="train_cnn #")
    assert legend.count() == 3
    # A value under the pointer: each point of a series carries its own tooltip.
    assert page.locator("svg.tracker-plot circle title").count() == 6


def test_charts_render_for_ten_thousand_runs(lab: Lab, page: Page,
                                             catalogs: dict[str, Any]) -> None:
    write_notebook(lab.root / "charts.ipynb", [
        "import time\nfrom tracker.widgets import RunCharts\n"
        f"started = time.perf_counter()\ncharts = RunCharts(catalog={catalogs['big']!r})\n"
        "print(f'built in {(time.perf_counter() - started) * 1000:.0f} ms')\ncharts"])
    open_notebook(page, lab, "charts.ipynb")
    run_all_cells(page)
    wait_for(page, "svg.tracker-plot polyline.tracker-parallel-line")

    note = wait_for(page, ".tracker-ui .tracker-muted:has-text('runs drawn')").inner_text()
    assert "500 of 10,000 runs drawn" in note
    assert page.locator("polyline.tracker-parallel-line").count() == 500
    assert page.locator("svg.tracker-plot circle.tracker-plot-point").count() == 500
    axes = page.locator("svg.tracker-plot text").evaluate_all(
        "texts => texts.map(t => t.textContent)")  # SVG text has no innerText
    assert {"layers", "lr", "optimizer", "acc", "adam", "sgd"} <= set(axes)
    built = page.locator(".jp-OutputArea-output", has_text="built in").inner_text()
    assert int(built.split()[2]) < 5_000  # a generous bound: the benchmark holds the budget
