"""Smoke tests of the browser harness itself: widgets render, clicks reach the kernel, and an
injected script in widget HTML would be noticed."""

from __future__ import annotations

import html
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .jupyterlab import (
    Lab,
    open_notebook,
    output_texts,
    run_all_cells,
    wait_for,
    write_notebook,
)

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.e2e

PAYLOAD = '<img src=x onerror="window.__pwned=1">'


def test_button_click_runs_its_callback_in_the_kernel(lab: Lab, page: Page) -> None:
    marker = lab.root / "marker.txt"
    write_notebook(
        lab.root / "button.ipynb",
        [
            "import pathlib\n"
            "import ipywidgets\n"
            "button = ipywidgets.Button(description='Write marker')\n"
            f"button.on_click(lambda _: pathlib.Path({str(marker)!r}).write_text('clicked'))\n"
            "button",
        ],
    )
    open_notebook(page, lab, "button.ipynb")
    run_all_cells(page)
    wait_for(page, "button.jupyter-button:has-text('Write marker')").click()

    assert _wait_for_file(marker, timeout_s=10).read_text() == "clicked"


def test_escaped_widget_html_shows_the_markup_as_text(lab: Lab, page: Page) -> None:
    # The second widget is the control: unescaped, its handler must run, which proves the check
    # on the first one can fail.
    write_notebook(
        lab.root / "escaping.ipynb",
        [
            "import ipywidgets\n"
            f"ipywidgets.HTML(value={html.escape(PAYLOAD)!r}).add_class('escaped')",
            "import ipywidgets\n"
            "ipywidgets.HTML(value='<img src=x onerror=\"window.__control=1\">')",
        ],
    )
    open_notebook(page, lab, "escaping.ipynb")
    run_all_cells(page)
    escaped = wait_for(page, ".widget-html.escaped")
    page.wait_for_function("window.__control === 1")

    assert output_texts(page)[0].strip() == PAYLOAD
    assert escaped.locator("img").count() == 0
    assert page.evaluate("typeof window.__pwned") == "undefined"


def _wait_for_file(path: Path, *, timeout_s: float) -> Path:
    deadline = time.monotonic() + timeout_s
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert path.exists(), f"{path} did not appear within {timeout_s} s"
    return path
