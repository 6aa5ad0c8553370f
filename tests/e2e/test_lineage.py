"""The lineage picture in a real JupyterLab and chromium: open a run from the runs browser,
see its lineage, click the producer's node and see that run's detail.

The catalog is made before the server starts: ``prepare`` wrote clean.csv, ``train`` read it;
the producer's name is hostile markup, which must show as text in the picture and run nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

import tracker

from .jupyterlab import Lab, open_notebook, run_all_cells, wait_for, write_notebook

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.e2e

PRODUCER = '<img src=x onerror="window.__pwned=1">prepare'
TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The producer and the reader of one file, and the catalog: name -> id or path."""
    folder = tmp_path_factory.mktemp("lineage")
    catalog = tracker.Catalog(folder / "catalog.duckdb")
    clean = folder / "clean.csv"
    clean.write_text("a\n1\n")
    with catalog.start_run(PRODUCER) as prepare:
        prepare.log_output(clean)
    with catalog.start_run("train") as train:
        train.log_input(clean)
    yield {"prepare": prepare.id, "train": train.id, "catalog": str(catalog.path)}


@pytest.fixture(scope="module")
def lab_env(runs: dict[str, str]) -> dict[str, str]:
    return {"TRACKER_CATALOG": runs["catalog"]}


def test_clicking_a_run_in_the_lineage_opens_its_detail(lab: Lab, page: Page,
                                                        runs: dict[str, str]) -> None:
    write_notebook(lab.root / "lineage.ipynb", ["import tracker\ntable = tracker.show()"])
    page.set_viewport_size({"width": 1800, "height": 1000})
    open_notebook(page, lab, "lineage.ipynb")
    run_all_cells(page)
    wait_for(page, "tr.tracker-grid-row button.tracker-grid-name:has-text('train')").click()

    producer = wait_for(page, f"svg.tracker-lineage g[data-run='{runs['prepare']}']")
    focus = page.locator(f"svg.tracker-lineage g.tl-focus[data-run='{runs['train']}']")
    assert focus.count() == 1
    assert page.locator("svg.tracker-lineage g.tl-file", has_text="clean.csv v1").count() == 1
    assert page.locator(".tracker-ui img").count() == 0  # the hostile name stayed text
    producer.click()

    page.wait_for_function(
        "(id) => [...document.querySelectorAll('.tracker-panel td')]"
        ".some((td) => td.textContent === id)", arg=runs["prepare"], timeout=TIMEOUT_MS)
    wait_for(page, f"svg.tracker-lineage g.tl-focus[data-run='{runs['prepare']}']")
    assert page.locator(".tracker-ui img").count() == 0
    assert page.evaluate("typeof window.__pwned") == "undefined"


HOSTILE_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
    'class="tracker-lineage" width="200" height="60" onload="window.__pwned=1">'
    '<g class="tl-run" ONMOUSEOVER="window.__pwned=2"><rect width="90" height="40"/>'
    '<a href="javascript:window.__pwned=3"><text x="5" y="20">link</text></a>'
    '<a xlink:href="javascript:window.__pwned=4"><text x="5" y="35">old link</text></a>'
    '<use href="#tl-arrow"/></g></svg>')


def test_the_picture_runs_nothing_whatever_svg_the_kernel_sends(lab: Lab, page: Page) -> None:
    """The kernel escapes every label; the browser side must still show no handler and no
    script link, should a picture ever carry one."""
    write_notebook(lab.root / "hostile.ipynb", [
        "from tracker.widgets.lineage import LineagePicture\n"
        f"picture = LineagePicture()\npicture.svg = {HOSTILE_SVG!r}\npicture"])
    open_notebook(page, lab, "hostile.ipynb")
    run_all_cells(page)
    wait_for(page, ".tracker-lineage-box svg.tracker-lineage text")
    kept = page.evaluate(
        "() => [...document.querySelectorAll('.tracker-lineage-box *')].flatMap((node) =>"
        " [...node.attributes].map((a) => `${a.name}=${a.value}`))")
    assert not [attribute for attribute in kept if attribute.lower().startswith("on")]
    assert not [attribute for attribute in kept if "javascript" in attribute]
    assert "href=#tl-arrow" in kept  # a link to a part of the picture stays
    page.locator(".tracker-lineage-box g.tl-run").hover()
    page.locator(".tracker-lineage-box text", has_text="old link").click()
    assert page.evaluate("typeof window.__pwned") == "undefined"
