"""The runs grid at real sizes in a real JupyterLab and chromium: one browser per show(), the
sorted metric in view and aligned under its header, details opened in view, the column manager,
and bars readable in the light and dark themes.

The catalog is 60 runs (3 pages): only the oldest ones, on page 3, have the param ``rare_key``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

import tracker

from .jupyterlab import (
    Lab,
    choose_menu_item,
    open_notebook,
    run_all_cells,
    wait_for,
    write_notebook,
)

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.e2e

TIMEOUT_MS = 60_000
ROW = "tr.tracker-grid-row"
SCROLL = ".tracker-grid-scroll"
RUNS = 60
AA = 4.5  # WCAG AA for normal text

# Contrast of an element's text with what is behind it, from the computed styles (WCAG 2.x).
CONTRAST_JS = """(el) => {
  const parse = (c) => {
    const p = c.match(/rgba?\\(([^)]+)\\)/)[1].split(/[ ,\\/]+/).filter(Boolean).map(Number);
    return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
  };
  const layers = [];
  for (let n = el; n; n = n.parentElement) {
    const c = parse(getComputedStyle(n).backgroundColor);
    if (c[3] > 0) { layers.push(c); if (c[3] >= 1) break; }
  }
  let bg = [255, 255, 255];
  for (const l of layers.reverse()) bg = bg.map((v, i) => l[i] * l[3] + v * (1 - l[3]));
  const fg = parse(getComputedStyle(el).color);
  const text = fg.slice(0, 3).map((v, i) => v * fg[3] + bg[i] * (1 - fg[3]));
  const lum = (rgb) => {
    const [r, g, b] = rgb.map((v) => {
      v /= 255;
      return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const [hi, lo] = [lum(text), lum(bg)].sort((x, y) => y - x);
  return (hi + 0.05) / (lo + 0.05);
}"""

# The boxes of the sorted header, of the cells under it, and of the pinned name column.
ALIGNMENT_JS = """() => {
  const th = document.querySelector('th.tracker-grid-sorted');
  const index = [...th.parentElement.children].indexOf(th);
  const box = (n) => { const r = n.getBoundingClientRect(); return [r.left, r.right]; };
  const rows = [...document.querySelectorAll('tr.tracker-grid-row')];
  return {
    key: th.dataset.key, head: box(th),
    cells: rows.slice(0, 8).map((tr) => box(tr.children[index])),
    texts: rows.map((tr) => tr.children[index].textContent),
    names: rows.map((tr) => tr.querySelector('button.tracker-grid-name').textContent),
    scroll: box(document.querySelector('.tracker-grid-scroll')),
    nameCell: box(rows[0].children[1]),
  };
}"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """60 runs of one notebook in 3 projects, many columns; only the oldest have rare_key."""
    catalog = tracker.Catalog(tmp_path_factory.mktemp("catalog") / "catalog.duckdb")
    f1 = {}
    for i in range(RUNS):
        params = {"lr": round(0.001 * (i + 1), 4), "batch": 32 + i % 3 * 32,
                  "model": ["resnet18", "xgboost", "mlp"][i % 3], "optimizer": "adam"}
        if i < 10:
            params["rare_key"] = f"rare-{i}"
        run = catalog.start_run(f"train_cnn #{i + 1}", params=params,
                                project=["vision", "churn", "text"][i % 3],
                                labels=["sweep"] if i % 2 else ["baseline", "long-label"])
        values = {"acc": 0.5 + i / 200, "loss": 1 - i / 100, "auc": 0.6 + (i % 7) / 50,
                  "f1": round(0.3 + (i * 37 % 60) / 100, 3)}
        run.log_metrics(values)
        f1[run.id] = values["f1"]
        run.end("failed" if i % 11 == 0 else "completed")
    yield {"catalog": str(catalog.path), "f1": f1}


@pytest.fixture(scope="module")
def lab_env(runs: dict[str, Any]) -> dict[str, str]:
    return {"TRACKER_CATALOG": runs["catalog"]}


def _open(page: Page, lab: Lab, name: str, width: int) -> None:
    write_notebook(lab.root / name, ["import tracker\ntracker.show()"])
    page.set_viewport_size({"width": width, "height": 900})  # opened at that width, as a user would
    open_notebook(page, lab, name)
    run_all_cells(page)
    wait_for(page, f"{ROW} button.tracker-grid-name")


@pytest.mark.parametrize("width", [1400, 800])
def test_sorted_metric_stays_aligned_and_details_open_in_view(
        lab: Lab, page: Page, runs: dict[str, Any], width: int) -> None:
    _open(page, lab, f"grid-{width}.ipynb", width)

    # One browser per show(), even as the cell's last line.
    assert page.locator(".jp-OutputArea-output .tracker-grid").count() == 1

    # The user sorts by the last metric column: it is in view, right of the pinned name.
    last_metric = page.locator("th.tracker-grid-metric").last
    key = last_metric.get_attribute("data-key")
    last_metric.locator("button.tracker-grid-sort").click()
    page.wait_for_selector(f"th[data-key='{key}'][aria-sort='descending']", timeout=TIMEOUT_MS)
    _assert_aligned(page, runs, key)

    # Scrolled away and sorted again (a click with no scrolling of its own): back in view.
    page.evaluate("""(key) => {
        document.querySelector('.tracker-grid-scroll').scrollLeft = 0;
        document.querySelector(`th[data-key='${key}'] button`).click();
    }""", key)
    page.wait_for_selector(f"th[data-key='{key}'][aria-sort='ascending']", timeout=TIMEOUT_MS)
    page.wait_for_function("() => document.querySelector('.tracker-grid-scroll').scrollLeft > 0",
                           timeout=TIMEOUT_MS)
    _assert_aligned(page, runs, key)

    # One scroll area: header and cells move together, the name column stays put.
    page.evaluate("() => { const s = document.querySelector('.tracker-grid-scroll');"
                  " s.scrollLeft = s.scrollWidth; }")
    page.wait_for_timeout(100)  # one frame for the scroll to apply
    after = page.evaluate(ALIGNMENT_JS)
    for left, right in after["cells"]:
        assert abs(left - after["head"][0]) < 1 and abs(right - after["head"][1]) < 1
    assert abs(after["nameCell"][0] - (after["scroll"][0] + 30)) < 2  # pinned after the box

    # A click on a run name shows its detail where the user looks.
    page.locator(f"{ROW} button.tracker-grid-name").nth(5).click()
    wait_for(page, ".tracker-panel table:has(th:has-text('param'))")
    page.wait_for_function("""() => {
        const r = document.querySelector('.tracker-panel').getBoundingClientRect();
        return r.top >= 0 && r.top < window.innerHeight - 100;
    }""", timeout=TIMEOUT_MS)
    # Close goes back to the table.
    page.locator("button[title='close this panel and go back to the table']").click()
    page.wait_for_function("""() => {
        const r = document.querySelector('.tracker-grid').getBoundingClientRect();
        return r.top >= -1 && r.top < window.innerHeight / 2;
    }""", timeout=TIMEOUT_MS)
    # Nothing in the toolbar is cut: every button shows its whole label.
    cut = page.evaluate("""() => [...document.querySelectorAll('.tracker-ui button')]
        .filter((b) => b.offsetWidth > 0 && b.scrollWidth > b.clientWidth + 1
                && !b.closest('.tracker-grid'))
        .map((b) => b.textContent)""")
    assert cut == []


def _assert_aligned(page: Page, runs: dict[str, Any], key: str) -> None:
    shown = page.evaluate(ALIGNMENT_JS)
    assert shown["key"] == key
    head_left, head_right = shown["head"]
    scroll_left, scroll_right = shown["scroll"]
    assert head_left >= shown["nameCell"][1] - 1, "the sorted column hides under the name"
    assert head_right <= scroll_right + 1, "the sorted column is off-screen"
    for left, right in shown["cells"]:
        assert abs(left - head_left) < 1 and abs(right - head_right) < 1
    if key == "metrics.f1":
        expected = sorted(runs["f1"].values(), reverse=shown["texts"][0] >= shown["texts"][-1])
        assert [float(t) for t in shown["texts"]] == expected[:len(shown["texts"])]


def test_column_manager_adds_a_key_only_page_3_has(lab: Lab, page: Page,
                                                   runs: dict[str, Any]) -> None:
    _open(page, lab, "manager.ipynb", 1400)
    assert page.locator("th[data-key='params.rare_key']").count() == 0

    page.locator("button[title='choose, order and pin columns']").click()
    search = wait_for(page, ".tracker-grid-manager input[type=search]")
    search.fill("rare")
    entry = wait_for(page, ".tracker-grid-manager-entry[data-key='params.rare_key']")
    entry.locator("input[type=checkbox]").check()
    wait_for(page, "th[data-key='params.rare_key']")

    # Columns resize by their header's edge; the width outlives the next page's redraw.
    head = page.locator("th[data-key='params.rare_key']")
    before = head.bounding_box()
    assert before is not None
    handle = head.locator(".tracker-grid-resize")
    handle.hover()
    page.mouse.down()
    page.mouse.move(before["x"] + before["width"] + 60, before["y"] + 5, steps=4)
    page.mouse.up()

    for _ in range(2):
        page.locator("button[title='next page']").click()
    page.wait_for_function(
        "() => [...document.querySelectorAll('tr.tracker-grid-row td')]"
        ".some((td) => td.textContent.startsWith('rare-'))", timeout=TIMEOUT_MS)
    after = head.bounding_box()
    assert after is not None and after["width"] > before["width"] + 40

    # The keyboard walks the run names; Enter opens the focused one.
    names = page.locator(f"{ROW} button.tracker-grid-name")
    names.first.focus()
    page.keyboard.press("ArrowDown")
    second = names.nth(1).inner_text()
    assert page.evaluate("() => document.activeElement.textContent") == second
    page.keyboard.press("Enter")
    wait_for(page, f".tracker-panel :text('{second}')")
    cells = page.evaluate("""() => {
        const th = document.querySelector("th[data-key='params.rare_key']");
        const i = [...th.parentElement.children].indexOf(th);
        return [...document.querySelectorAll('tr.tracker-grid-row')]
            .map((tr) => tr.children[i].getBoundingClientRect().width);
    }""")
    assert all(abs(width - after["width"]) < 1 for width in cells)


def test_bars_pass_aa_contrast_in_light_and_dark_themes(lab: Lab, page: Page,
                                                        runs: dict[str, Any]) -> None:
    _open(page, lab, "bars.ipynb", 1400)
    for theme in ("light", "dark"):
        if theme == "dark":
            choose_menu_item(page, "Settings", "Theme")
            page.locator(".lm-Menu").get_by_text("JupyterLab Dark", exact=True).click()
            page.wait_for_selector("body[data-jp-theme-light='false']", state="attached",
                                   timeout=TIMEOUT_MS)
        page.locator(f"{ROW} input[type=checkbox]").first.check()
        page.locator("button[title='move the selected runs to the trash']").click()
        bar = wait_for(page, ".tracker-bar:not(.tracker-hidden)")
        _assert_readable(bar.locator(".widget-html-content span").first, f"{theme} question")
        cancel = bar.locator("button.tracker-bar-button")
        _assert_readable(cancel, f"{theme} Cancel")
        assert cancel.evaluate("(b) => getComputedStyle(b).borderStyle") == "solid"
        bar.locator("button", has_text="Delete 1 run").click()
        undo = wait_for(page, ".tracker-bar button.tracker-bar-button:has-text('Undo')")
        notice = page.locator(".tracker-bar:not(.tracker-hidden)",
                              has=page.locator("button:has-text('Undo')"))
        _assert_readable(notice.locator(".widget-html-content span").first, f"{theme} notice")
        _assert_readable(undo, f"{theme} Undo")
        undo.click()
        wait_for(page, ".tracker-bar:not(.tracker-hidden) :text('1 run restored.')")


def _assert_readable(element: Any, what: str) -> None:
    ratio = element.evaluate(CONTRAST_JS)
    assert ratio >= AA, f"{what}: contrast {ratio:.2f} < {AA}"
