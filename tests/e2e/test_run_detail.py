"""The run detail in a narrow window (800 px) of a real JupyterLab and chromium: its tables wrap
text only where a line may break (spaces), never inside a word such as ``lightgbm_gbdt_dart``.

Table cells once had ``overflow-wrap: anywhere``, which lets the table shrink a column below its
longest word: at 800 px the detail read "lightgbm_gbdt_dar / t" and "par / am".
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

import tracker

from .jupyterlab import Lab, open_notebook, run_all_cells, wait_for, write_notebook

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.e2e

WIDTH = 800
MODELS = ["xgboost", "xgboost_v1_baseline", "xgboost_v2_tuned_depth", "lightgbm_gbdt_dart"]
PATH = "data/raw/customers_2024/churn_training_set.parquet"

# Each word (a run of non-space characters) of the detail's table cells, with the number of
# lines its boxes are laid out on, and whether any cell holds more than one line of text.
LAYOUT_JS = """() => {
  const words = [];
  let wrapped = false;
  const cells = document.querySelectorAll(
    '.tracker-panel table.tracker-table td, .tracker-panel table.tracker-table th');
  for (const cell of cells) {
    const lines = new Set();
    const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      for (const match of node.data.matchAll(/\\S+/g)) {
        const range = document.createRange();
        range.setStart(node, match.index);
        range.setEnd(node, match.index + match[0].length);
        const tops = [...range.getClientRects()].filter((r) => r.width > 0)
          .map((r) => Math.round(r.top));
        tops.forEach((top) => lines.add(top));
        words.push([match[0], new Set(tops).size]);
      }
    }
    wrapped = wrapped || lines.size > 1;
  }
  return {words, wrapped};
}"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One run whose params make a wide table: a long path, a long name, a changed model."""
    catalog = tracker.Catalog(tmp_path_factory.mktemp("catalog") / "catalog.duckdb")
    with catalog.start_run("detail", params={"data_path": PATH,
                                             "optimizer": "adam_with_decoupled_weight_decay"},
                           labels=["long-label-for-wrapping"]) as run:
        for model in MODELS:  # a history of values: the table's third column
            run.log_param("model", model)
    yield {"catalog": str(catalog.path)}


@pytest.fixture(scope="module")
def lab_env(runs: dict[str, Any]) -> dict[str, str]:
    return {"TRACKER_CATALOG": runs["catalog"]}


def test_the_detail_at_800_px_breaks_lines_only_between_words(lab: Lab, page: Page) -> None:
    write_notebook(lab.root / "detail.ipynb", ["import tracker\ntracker.show()"])
    page.set_viewport_size({"width": WIDTH, "height": 900})  # opened narrow, as a user would
    open_notebook(page, lab, "detail.ipynb")
    run_all_cells(page)
    page.locator("tr.tracker-grid-row button.tracker-grid-name").first.click()
    wait_for(page, ".tracker-panel table:has(th:has-text('param'))")

    layout = page.evaluate(LAYOUT_JS)
    shown = {word for word, _ in layout["words"]}
    assert {PATH, "adam_with_decoupled_weight_decay", *MODELS} <= shown
    assert layout["wrapped"], "nothing had to wrap: the window is not narrow enough to tell"
    assert [word for word, lines in layout["words"] if lines > 1] == []
