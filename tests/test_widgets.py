"""Tests for tracker.widgets: the runs browser driven as a user would, against a real catalog.

Widgets are built on a fresh catalog, then driven by setting values, ticking checkboxes and
clicking buttons (``Button.click()`` fires the same handlers a browser click does); assertions
look at the rendered values and at the catalog.
"""

from __future__ import annotations

import datetime as dt
import gc
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import backends
import ipywidgets as w
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tracker
from tracker import filter_language
from tracker.widgets import RunComparison, RunDetail, RunTable, TrashView, _plot
from tracker.widgets._html import STYLE
from tracker.widgets.filters import completions, field_name, literal

SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"


def make_run(catalog: tracker.Catalog, name: str, *, params: dict[str, Any] | None = None,
             metrics: dict[str, Sequence[float]] | None = None, labels: Sequence[str] = (),
             project: str | None = None, status: str = "completed") -> str:
    """Record one finished run; each metric gets its series of values at steps 0, 1, ..."""
    run = catalog.start_run(name, params=params or {}, labels=list(labels), project=project)
    for key, series in (metrics or {}).items():
        for step, value in enumerate(series):
            run.log_metric(key, float(value), step=step)
    run.end(status)
    return run.id


@pytest.fixture
def three(catalog: tracker.Catalog) -> list[str]:
    """Three runs, oldest first: a (lr 0.1, acc 0.5), b (lr 0.01, acc 0.9, failed), c."""
    return [
        make_run(catalog, "a", params={"lr": 0.1, "model": "cnn"}, metrics={"acc": [0.2, 0.5]},
                 labels=["baseline"], project="vision"),
        make_run(catalog, "b", params={"lr": 0.01, "model": "mlp"}, metrics={"acc": [0.9]},
                 status="failed", project="vision"),
        make_run(catalog, "c", params={"lr": 0.05, "model": "cnn"}, metrics={"acc": [0.7]},
                 labels=["it's \\ odd"], project="text"),
    ]


@pytest.fixture
def table(reads: tracker.Catalog, three: list[str]) -> Iterator[RunTable]:
    """The runs browser on ``three``, read from each back end in turn."""
    view = RunTable(catalog=reads, live=False)
    yield view
    view.close()


@pytest.fixture
def own_table(catalog: tracker.Catalog, three: list[str]) -> Iterator[RunTable]:
    """The runs browser on ``three`` in ``catalog`` itself, for the actions that change the
    catalog: a file catalog, then, in a test marked ``backends.WRITES_ON_BOTH``, a PostgreSQL
    catalog recorded into directly (the mirror behind ``table`` is fed only by a file's
    writer, so a change made on it alone would leave the two apart)."""
    view = RunTable(catalog=catalog, live=False)
    yield view
    view.close()


def names(table: RunTable | TrashView) -> list[str]:
    """The run names the grid shows, top to bottom."""
    return [row["name"] for row in table.grid.rows]


def cell(table: RunTable | TrashView, index: int, source: str) -> dict[str, Any]:
    """The cell of column ``source`` ("status", "params.lr"...) in row ``index`` of the grid."""
    sources = [column["source"] for column in table.grid.columns]
    return table.grid.rows[index]["cells"][sources.index(source)]


def click(view: RunTable | TrashView, event: str, value: str) -> None:
    """What the browser sends for a click on a header ("sort") or on a run's name ("open")."""
    view.grid.handle_event({"event": event, "id" if event == "open" else "key": value})


def tick(view: RunTable | TrashView, ids: Sequence[str]) -> None:
    """Tick exactly these runs of the page, as the grid's checkboxes do."""
    view.grid.selected = list(ids)


def walk(widget: w.Widget) -> Iterator[w.Widget]:
    yield widget
    for child in getattr(widget, "children", ()):
        yield from walk(child)


def html_values(widget: w.Widget) -> list[str]:
    return [child.value for child in walk(widget) if isinstance(child, w.HTML | w.HTMLMath)]


def visible(widget: w.Widget) -> bool:
    return "tracker-hidden" not in widget._dom_classes


# -- the table ---------------------------------------------------------------------------------


def test_table_shows_newest_runs_first_with_the_total(table: RunTable, three: list[str]) -> None:
    assert table.rows == three[::-1]
    assert table.total == 3
    assert names(table) == ["c", "b", "a"]
    assert "runs 1–3 of 3" in table.pager.value
    assert cell(table, 1, "status") == {"t": "failed", "tip": "failed", "c": "pill-failed"}
    assert cell(table, 1, "metrics.acc")["t"] == "0.9"
    assert {"status", "params.lr", "metrics.acc"} <= set(table.columns)


def test_a_missing_int_param_shows_a_dash(reads: tracker.Catalog, catalog: tracker.Catalog) -> None:
    with_it = make_run(catalog, "with", params={"epochs": 3})
    without = make_run(catalog, "without")
    comparison = RunComparison([with_it, without], catalog=reads)
    row = comparison.table.value.split(">epochs<")[1].split("</tr>")[0]
    assert re.findall(r"<td[^>]*>([^<]*)</td>", row) == ["3", "—"]


def test_pages_are_read_from_the_catalog_one_at_a_time(
        reads: tracker.Catalog, catalog: tracker.Catalog, three: list[str]) -> None:
    table = RunTable(catalog=reads, page_size=2, live=False)

    table.next_button.click()

    assert table.rows == [three[0]]
    assert [row["id"] for row in table.grid.rows] == [three[0]]  # only the page is sent
    assert table.total == 3
    assert "runs 3–3 of 3" in table.pager.value
    assert table.next_button.disabled
    table.previous_button.click()
    assert table.rows == three[:0:-1]
    assert len(table.grid.rows) == 2
    table.close()


def test_header_click_sorts_in_the_catalog_and_flips(table: RunTable, three: list[str]) -> None:
    click(table, "sort", "metrics.acc")

    assert names(table) == ["b", "c", "a"]
    assert (table.grid.order_key, table.grid.descending) == ("metrics.acc", True)  # the ▼
    click(table, "sort", "metrics.acc")
    assert names(table) == ["a", "c", "b"]
    assert table.grid.descending is False
    table.sort_by("params.lr", descending=False)
    assert names(table) == ["b", "c", "a"]


def test_sorting_by_an_unknown_field_shows_the_error(table: RunTable) -> None:
    table.sort_by("nonsense")

    assert "unknown field 'nonsense'" in table.error_text
    assert visible(table.notice)
    assert table.order_key == "started_at"


def test_filter_box_filters_and_shows_a_syntax_error_inline(table: RunTable) -> None:
    table.filters.text.value = "params.lr >= 0.05"
    assert names(table) == ["c", "a"]
    assert table.total == 2

    table.filters.text.value = "params.lr >= 0.05 and"

    assert table.error_text == "expected a field name, found the end of the text at position 21"
    assert visible(table.filters.error)
    assert "^" in table.filters.error.value
    assert names(table) == ["c", "a"]  # the last good page stays
    table.set_filter("status = 'failed'")
    assert names(table) == ["b"]
    assert table.error_text == ""
    assert not visible(table.filters.error)


def test_an_invalid_filter_marks_the_table_stale_until_one_parses(table: RunTable) -> None:
    assert not table.filters.stale

    table.filters.text.value = "params.lr >"

    assert table.filters.stale and "tracker-filter-invalid" in table.filters._dom_classes
    assert "last filter that worked" in table.filters.error.value
    # The style sheet fades what follows the bar: the table's toolbar, grid and pager.
    assert ".tracker-filter-invalid ~ :not(.tracker-panel)" in STYLE
    table.filters.text.value = "params.lr > 0.01"
    assert not table.filters.stale and names(table) == ["c", "a"]


def test_an_unknown_field_shows_the_compilers_whole_message(table: RunTable) -> None:
    table.filters.text.value = "lr > 0.1"

    assert "unknown field &#x27;lr&#x27;" in table.filters.error.value
    assert table.error_text.startswith("unknown field 'lr'")


def test_filter_box_offers_fields_and_the_catalogs_keys(table: RunTable) -> None:
    table.load_choices()  # as the table's background thread does
    assert repr(table.filters).startswith("FilterBar(")  # its widget state is intact

    table.filters.text.value = "params.l"
    assert "params.lr" in table.filters.text.options
    assert "params.model" not in table.filters.text.options
    table.filters.text.value = "status = 'failed' and met"
    assert "status = 'failed' and metrics.acc" in table.filters.text.options
    table.filters.text.value = "params.lr > 0.01"
    assert "params.lr > 0.01 and params.model" in table.filters.text.options
    assert "params.lr > 0.01 and outputs" in table.filters.text.options


@pytest.mark.parametrize(("text", "offered", "not_offered"), [
    ("", "started_at", None),
    ("sta", "status", "params.lr"),
    ("params.lr > 0.1 and", "params.lr > 0.1 and metrics.top-1", None),
    ("metrics.", "metrics.top-1", "params.lr"),
    ("params.`a", "params.`a b`", "params.lr"),
])
def test_completions_complete_the_word_being_typed(text: str, offered: str,
                                                   not_offered: str | None) -> None:
    options = completions(text, ["params.lr", "params.a b", "metrics.top-1"])
    assert offered in options
    assert not_offered not in options


def test_quick_filters_combine_with_the_filter_box(table: RunTable) -> None:
    table.load_choices()  # waits for the background load, then reads the counts again
    assert ("vision (2)", "vision") in table.filters.project.options
    table.filters.project.value = "vision"
    assert names(table) == ["b", "a"]
    table.filters.status.value = "completed"
    assert names(table) == ["a"]
    table.filters.clear_button.click()
    table.filters.label.value = "it's \\ odd"
    assert names(table) == ["c"]
    table.filters.label.value = ""
    tomorrow = dt.date.today() + dt.timedelta(days=1)
    table.filters.since.value = tomorrow
    assert table.rows == []
    assert "no runs match" in table.pager.value
    table.filters.since.value = None
    table.filters.until.value = dt.date.today()
    assert table.total == 3


def test_ticks_in_the_grid_select_runs_across_pages(
        reads: tracker.Catalog, catalog: tracker.Catalog, three: list[str]) -> None:
    table = RunTable(catalog=reads, page_size=2, live=False)
    tick(table, table.rows)  # the header's select-all box ticks the page

    assert table.selected == set(three[1:])
    assert "2 selected" in table.selection_html.value
    table.next_page()
    tick(table, [three[0]])
    assert table.selected == set(three)
    assert table.grid.selected == [three[0]]
    table.previous_page()
    assert sorted(table.grid.selected) == sorted(three[1:])  # ticks shown again
    tick(table, [three[2]])
    assert table.selected == {three[0], three[2]}
    table.close()


def test_delete_asks_first_then_soft_deletes_and_undo_restores(
        reads: tracker.Catalog, table: RunTable, catalog: tracker.Catalog,
        three: list[str]) -> None:
    tick(table, [three[2]])  # run c
    table.delete_button.click()

    assert visible(table.confirmation)
    assert "Delete 1 run?" in table.confirmation.question
    assert reads.get_run(three[2]).deleted_at is None  # nothing happens before Confirm
    table.confirmation.confirm_button.click()

    assert reads.get_run(three[2]).deleted_at is not None
    assert table.rows == three[1::-1]
    assert table.message == "1 run deleted."
    assert not visible(table.confirmation)
    table.notice.action_button.click()  # Undo
    assert reads.get_run(three[2]).deleted_at is None
    assert table.rows == three[::-1]
    assert table.message == "1 run restored."
    assert table.selected == {three[2]}  # the run comes back selected, as it went
    assert table.grid.selected == [three[2]]


def test_cancel_deletes_nothing(reads: tracker.Catalog, table: RunTable, catalog: tracker.Catalog,
                                three: list[str]) -> None:
    table.select(three[:2])
    table.delete_selected()
    assert "Delete 2 runs?" in table.confirmation.question

    table.confirmation.cancel_button.click()

    assert not visible(table.confirmation)
    assert reads.count_runs(by=None)["count"][0] == 3


def test_column_manager_offers_keys_of_runs_on_other_pages(
        reads: tracker.Catalog, catalog: tracker.Catalog, three: list[str]) -> None:
    make_run(catalog, "old", params={"dropout": 0.5}, metrics={"f1": [0.4]})
    view = RunTable("name != 'old'", catalog=reads, live=False)
    try:
        view.load_choices()  # waits for the background load, then reads the keys again
        view.columns_button.value = True
        assert view.grid.manager_open
        offered = {entry["key"]: entry["kind"] for entry in view.grid.offered}
        assert offered["params.dropout"] == "param" and offered["metrics.f1"] == "metric"
        assert "params.dropout" not in view.columns  # defaults come from the runs shown

        view.grid.chosen = ["status", "params.dropout"]  # ticked in the manager

        assert view.columns == ["status", "params.dropout"]
    finally:
        view.close()


def test_delete_without_a_selection_explains(table: RunTable) -> None:
    table.delete_button.click()

    assert not table.confirmation.pending
    assert "Select runs" in table.message


def test_column_manager_orders_pins_and_resets_columns(table: RunTable) -> None:
    table.grid.chosen = ["status", "params.model", "metrics.acc"]
    assert [c["title"] for c in table.grid.columns] == ["status", "model", "acc"]
    assert [c["kind"] for c in table.grid.columns] == ["attribute", "param", "metric"]
    assert cell(table, 0, "params.model")["t"] == "cnn"

    table.grid.pinned = ["metrics.acc"]  # pinned columns come first and stay in view

    assert table.columns == ["metrics.acc", "status", "params.model"]
    assert table.grid.columns[0]["pinned"] is True
    table.grid.widths = {"params.model": 220}
    click(table, "reset", "")
    assert table.columns == ["project", "status", "started_at", "duration", "labels",
                             "params.lr", "params.model", "metrics.acc"]
    assert table.grid.pinned == [] and table.grid.widths == {}


def test_default_columns_show_common_params_then_metrics_then_rare_ones(
        reads: tracker.Catalog, catalog: tracker.Catalog) -> None:
    for i in range(4):
        make_run(catalog, f"r{i}", params={"model": "cnn", "seed": i, **({"odd": 1} if i == 0
                                                                          else {})},
                 metrics={"acc": [0.5]}, project="vision")
    table = RunTable(catalog=reads, live=False)

    assert table.columns == ["project", "status", "started_at", "duration", "labels",
                             "params.model", "params.seed", "metrics.acc", "params.odd"]
    table.close()


def test_notebook_column_shows_only_when_names_do_not_repeat_it() -> None:
    from tracker.widgets import _columns

    same = [{"name": "train #3", "notebook_name": "train.ipynb"},
            {"name": "x", "notebook_name": None}]
    other = [*same, {"name": "sweep-a", "notebook_name": "train.ipynb"}]

    assert "notebook_name" not in _columns.default_columns([], same)
    assert "notebook_name" in _columns.default_columns([], other)


@backends.WRITES_ON_BOTH
def test_current_run_is_marked(catalog: tracker.Catalog, three: list[str]) -> None:
    run = catalog.start_run("live one")
    table = RunTable(catalog=catalog, live=False)
    try:
        first, second = table.grid.rows[:2]
        assert first["name"] == "live one" and first["current"] is True
        assert "this notebook's run" in first["tip"]
        assert cell(table, 0, "status")["c"] == "pill-running"
        assert "● this notebook" in table.pager.value
        assert second["current"] is False
    finally:
        table.close()
        run.end()


def test_running_runs_update_in_place_in_the_background(
        reads: tracker.Catalog, catalog: tracker.Catalog) -> None:
    run = catalog.start_run("training", params={"lr": 0.1})
    run.log_metric("loss", 1.5)
    table = RunTable(catalog=reads, interval=0.05)
    try:
        assert cell(table, 0, "metrics.loss")["t"] == "1.5"
        assert table.live_updating
        run.log_metric("loss", 0.25)
        catalog.flush()
        _wait_for(lambda: cell(table, 0, "metrics.loss")["t"] == "0.25")
        run.end("completed")
        _wait_for(lambda: cell(table, 0, "status")["c"] == "pill-completed")
        _wait_for(lambda: not table.live_updating)
    finally:
        table.close()


def test_closing_the_table_stops_live_updates(
        reads: tracker.Catalog, catalog: tracker.Catalog) -> None:
    run = catalog.start_run("forever")
    table = RunTable(catalog=reads, interval=0.05)
    assert table.live_updating

    table.close()

    _wait_for(lambda: not table.live_updating)
    assert table.refresh_running() is False
    run.end()


def test_a_broken_catalog_is_reported_not_raised(tmp_path: Path) -> None:
    path = tmp_path / "not-a-catalog.duckdb"
    path.write_bytes(b"this is not a database" * 100)

    table = RunTable(catalog=path, live=False)

    assert "cannot be opened as a tracker catalog" in table.error_text
    assert table.rows == []


# -- detail, compare, trash ---------------------------------------------------------------------


def test_detail_shows_params_history_metrics_files_environment_and_cells(
        reads: tracker.Catalog, catalog: tracker.Catalog, tmp_path: Path) -> None:
    data = tmp_path / "data.csv"
    data.write_text("x\n1\n")
    producer = catalog.start_run("prepare")
    producer.log_output(data)
    producer.end()
    run = catalog.start_run("train", params={"lr": 0.1, "epochs": 3})
    run.log_param("lr", 0.01)
    run.log_input(data)
    for step, loss in enumerate([1.0, 0.5, 0.25]):
        run.log_metric("loss", loss, step=step)
    run.record("env", "env-1", {"python": "3.11.7", "implementation": "CPython",
                                "platform": "Linux-6", "machine": "x86_64",
                                "packages": {"numpy": "2.0", "pandas": "3.1"},
                                "git": {"commit": "abcdef1234567", "branch": "main",
                                        "dirty": True}})
    run.record("cell", {"seq": 1, "execution_count": 1, "source": "x = 1", "success": True,
                        "duration": 0.01})
    run.record("cell", {"seq": 2, "execution_count": 2, "source": "1 / 0", "success": False,
                        "error_type": "ZeroDivisionError", "error_message": "division by zero"})
    run.end("failed", error="ZeroDivisionError: division by zero")
    opened: list[str] = []

    detail = RunDetail(run.id, catalog=reads, on_open=opened.append)

    assert "tracker-failed" in detail.header.value
    assert "ZeroDivisionError: division by zero" in detail.header.value
    assert re.search(r"<td[^>]*>lr</td><td[^>]*>0.01</td><td[^>]*>0.1 \(.*\) → 0.01",
                     detail.params.value)
    assert 'class="tracker-differs">lr' in detail.params.value  # the changed param stands out
    assert "<svg" in detail.metrics.value and ">0.25<" in detail.metrics.value
    files = files_text(detail)
    assert str(data.resolve()) in files
    assert "|<b>seen via</b>|" in files and files.endswith("|call")
    assert "3.11.7" in detail.environment.value
    assert "2 installed" in detail.environment.value and "<details>" in detail.environment.value
    assert "(uncommitted changes)" in detail.environment.value
    assert "1 failed" in detail.cells.value and "division by zero" in detail.cells.value
    detail.links[producer.id].click()
    assert opened == [producer.id]


def test_detail_sets_the_status_by_hand_and_shows_a_refusal(
        reads: tracker.Catalog, catalog: tracker.Catalog) -> None:
    run_id = make_run(catalog, "judged", status="failed")
    detail = RunDetail(run_id, catalog=reads)
    choice, button, message = detail.status.children
    assert choice.value == "failed"
    choice.value = "completed"
    button.click()
    assert reads.get_run(run_id).status == "completed"
    assert "tracker-completed" in detail.header.value and message.value == ""
    choice.value = "running"
    button.click()
    assert "not running; pass force=True" in message.value
    assert reads.get_run(run_id).status == "completed"
    detail.close()


def test_detail_writes_the_runs_executed_notebook_into_the_working_folder(
        catalog: tracker.Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook, new_output

    saved = tmp_path / "train.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell("print('hi')")]), saved)
    executed = tmp_path / "train-ran.ipynb"  # what jupyter execute --output wrote afterwards
    nbformat.write(new_notebook(cells=[new_code_cell(
        "print('hi')", outputs=[new_output("stream", name="stdout", text="hi\n")])]), executed)
    run = catalog.start_run("train")
    run.record("stored", "notebook", str(saved), time.time())
    run.end()
    # The watcher (tracker.notebook_watch) records the executed notebook after the run ended.
    run.record("stored", "notebook", str(executed), time.time() + 1)
    bare = make_run(catalog, "scripted")  # no notebook stored with it
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)

    detail = RunDetail(run.id, catalog=catalog)
    button, message = detail.notebook.children
    button.click()
    written = work / f"{run.name}-{run.id}.ipynb"
    assert f"written to <span class=\"tracker-path\">{written}</span>" in message.value
    assert nbformat.read(written, as_version=4).cells[0].outputs[0]["text"] == "hi\n"
    detail.load(bare)
    assert message.value == ""  # the previous run's copy is not this one's
    button.click()
    assert "has no stored notebook" in message.value
    detail.close()


def _shapes_apart(view: w.Widget) -> list[tuple[list[str], str]]:
    """Each HTML value of ``view`` as its sorted lines and points, and the rest."""
    shape = r"<polyline .*?</polyline>|<circle .*?</circle>"
    return [(sorted(re.findall(shape, value, re.S)), re.sub(shape, "", value, flags=re.S))
            for value in html_values(view)]


@pytest.mark.parametrize("read_backend", ["postgresql"])
def test_detail_on_postgresql_draws_sets_status_and_never_shows_the_password(
        reads: tracker.Catalog, catalog: tracker.Catalog, tmp_path: Path) -> None:
    data = tmp_path / "data.csv"
    data.write_text("x\n1\n")
    with catalog.start_run("reader", params={"lr": 0.1}) as run:
        run.log_input(data)
    detail = RunDetail(run.id, catalog=reads)
    assert "0.1" in detail.params.value and str(data.resolve()) in files_text(detail)
    assert visible(detail.lineage) and f'data-run="{run.id}"' in detail.picture.svg
    choice, button, message = detail.status.children
    choice.value = "failed"
    button.click()
    assert reads.get_run(run.id).status == "failed"
    detail.reproduce.children[0].click()
    assert "postgres:***@" in detail.reproduce.children[1].value
    assert backends.SECRET not in " ".join(html_values(detail))


@pytest.mark.parametrize("read_backend", ["postgresql"])
def test_the_runs_browser_on_postgresql_is_the_file_catalogs(
        reads: tracker.Catalog, catalog: tracker.Catalog, three: list[str]) -> None:
    from_pg, from_file = RunTable(catalog=reads, live=False), RunTable(catalog=catalog, live=False)
    try:
        assert from_pg.grid.columns == from_file.grid.columns
        assert from_pg.grid.rows == from_file.grid.rows and len(from_pg.grid.rows) == 3
        assert from_pg.grid.offered == from_file.grid.offered
        for view in (from_pg, from_file):
            view.compare(three[:2])
        assert isinstance(from_pg.view, RunComparison)
        assert html_values(from_pg.view) == html_values(from_file.view)
        for view in (from_pg, from_file):
            view.show_charts()
        # the same lines and points; each back end samples in an order of its own
        assert _shapes_apart(from_pg.view) == _shapes_apart(from_file.view)
    finally:
        from_pg.close()
        from_file.close()


def files_text(detail: RunDetail) -> str:
    """The detail's files section as the HTML of its cells, in order, between "|"."""
    grids = [child for child in detail.files.children if isinstance(child, w.GridBox)]
    cells = [cell for grid in grids for cell in grid.children]
    return "|".join(cell.value if isinstance(cell, w.HTML) else cell.description
                   for cell in cells)


def test_detail_files_show_the_hash_algorithm_apart_and_twelve_hex_digits(
        reads: tracker.Catalog, catalog: tracker.Catalog, tmp_path: Path) -> None:
    data = tmp_path / "x.csv"
    data.write_text("a\n1\n")
    run = catalog.start_run("reader")
    run.log_input(data)
    run.end()
    digest = reads.get_run(run.id).artifacts[0]["hash"]
    algorithm, hexdigits = digest.split(":")

    files = files_text(RunDetail(run.id, catalog=reads))

    assert re.search(rf'title="{digest}"><span class="tracker-muted">{algorithm}</span> '
                     rf"{hexdigits[:12]}<", files)


def _detail_of_a_reader(catalog: tracker.Catalog,
                        tmp_path: Path) -> tuple[tracker.Run, tracker.Run, RunDetail]:
    """A run "writer" writes out.txt and a run "reader" reads it: both, and the reader's
    detail."""
    data = tmp_path / "out.txt"
    data.write_text("hello")
    producer = catalog.start_run("writer")
    producer.log_output(data)
    producer.end()
    reader = catalog.start_run("reader")
    reader.log_input(data)
    reader.end()
    return producer, reader, RunDetail(reader.id, catalog=catalog)


def test_detail_produced_by_opens_the_producing_run(catalog: tracker.Catalog,
                                                   tmp_path: Path) -> None:
    producer, reader, detail = _detail_of_a_reader(catalog, tmp_path)
    grid = next(c for c in detail.files.children if isinstance(c, w.GridBox))
    button = next(c for c in grid.children if isinstance(c, w.Button))
    assert button.description == f"writer ({producer.id[-8:]})"

    button.click()

    assert detail.info is not None and detail.info.id == producer.id


def test_detail_paths_under_the_server_root_open_in_jupyterlab(
        reads: tracker.Catalog, catalog: tracker.Catalog, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "sub").mkdir()
    inside = tmp_path / "sub" / "in side.csv"
    inside.write_text("1")
    outside = tmp_path.parent / f"{tmp_path.name}-outside.csv"
    outside.write_text("2")
    run = catalog.start_run("reader")
    run.log_input(inside)
    run.log_input(outside)
    run.end()
    # A kernel started by Jupyter Server: its notebook's path relative to the root, its cwd
    # the notebook's folder.
    monkeypatch.setenv("JPY_SESSION_NAME", "sub/analysis.ipynb")
    monkeypatch.delenv("TRACKER_SERVER_ROOT", raising=False)
    monkeypatch.chdir(tmp_path / "sub")

    files = files_text(RunDetail(run.id, catalog=reads))

    assert 'href="/lab/tree/sub/in%20side.csv"' in files
    assert files.count("href=") == 1  # the file outside the root is plain text
    outside.unlink()


def test_detail_shows_papermills_injected_value_as_the_starting_value(
        reads: tracker.Catalog, catalog: tracker.Catalog) -> None:
    run = catalog.start_run("train_cnn")
    run.log_param("seed", 0)  # the notebook's default, in its "parameters" cell
    time.sleep(0.01)
    run.record("cell", {"seq": 1, "execution_count": 1, "source": "# Parameters\nseed = 29\n",
                        "success": True, "started_at": time.time(), "duration": 0.001})
    run.log_param("seed", 29)
    run.log_param("lr", 0.1)
    run.log_param("lr", 0.2)  # a change the notebook made: still a history
    run.end()

    params = RunDetail(run.id, catalog=reads).params.value

    assert re.search(r"<td>seed</td><td>29</td><td></td>", params)
    assert re.search(r"lr</td><td[^>]*>0.2</td><td[^>]*>0.1 \(.*\) → 0.2", params)


def test_detail_links_open_the_producer_in_place_by_default(catalog: tracker.Catalog,
                                                           tmp_path: Path) -> None:
    producer, reader, detail = _detail_of_a_reader(catalog, tmp_path)
    # Named in full with a short id: ten runs of one notebook stay ten different buttons.
    assert detail.links[producer.id].description == f"⇠ writer ({producer.id[-8:]})"

    detail.links[producer.id].click()

    assert detail.info is not None and detail.info.id == producer.id
    assert reader.id in detail.links  # the writer's output was read by the reader


def test_detail_draws_the_lineage_and_a_run_node_opens_that_run(
        catalog: tracker.Catalog, tmp_path: Path) -> None:
    producer, reader, detail = _detail_of_a_reader(catalog, tmp_path)
    assert visible(detail.lineage) and detail.picture in detail.lineage.children
    svg = detail.picture.svg
    assert f'data-run="{producer.id}"' in svg and f'data-run="{reader.id}"' in svg
    assert "var(--jp-" in svg  # the theme's colours, in the browser's detail

    detail.picture.handle_event({"event": "open", "id": reader.id})  # the focus: stays
    assert detail.info is not None and detail.info.id == reader.id
    detail.picture.handle_event({"event": "open", "id": "01m7zwkkx6hqzzzz"})  # not drawn
    detail.picture.handle_event({"event": "open", "id": 5})
    assert detail.info.id == reader.id
    detail.picture.handle_event({"event": "open", "id": producer.id})  # what the browser sends

    assert detail.info.id == producer.id
    assert f'data-run="{reader.id}"' in detail.picture.svg
    assert "tl-focus" in detail.picture.svg


def test_detail_of_a_run_without_files_draws_no_lineage(catalog: tracker.Catalog) -> None:
    detail = RunDetail(make_run(catalog, "alone"), catalog=catalog)
    assert not visible(detail.lineage)
    assert detail.picture.svg == ""


def test_table_opens_a_run_clicked_in_the_lineage_in_its_detail(
        reads: tracker.Catalog, catalog: tracker.Catalog, tmp_path: Path) -> None:
    producer, reader, _ = _detail_of_a_reader(catalog, tmp_path)
    table = RunTable(catalog=reads, live=False)
    click(table, "open", reader.id)
    assert isinstance(table.view, RunDetail)
    table.view.picture.handle_event({"event": "open", "id": producer.id})
    assert isinstance(table.view, RunDetail)
    assert table.view.info is not None and table.view.info.id == producer.id
    table.close()


def test_the_lineage_picture_escapes_hostile_names(reads: tracker.Catalog, catalog: tracker.Catalog,
                                                   tmp_path: Path) -> None:
    hostile = tmp_path / f"{IMG}.csv"
    hostile.write_text("1")
    with catalog.start_run(SCRIPT) as writer:
        writer.log_output(hostile)
    with catalog.start_run(IMG) as reader:
        reader.log_input(hostile)
    svg = RunDetail(reader.id, catalog=reads).picture.svg
    assert "<script" not in svg.lower() and "<img" not in svg.lower()
    assert "&lt;script&gt;" in svg and "&lt;img src=x" in svg
    script = (Path(tracker.widgets.__file__).parent / "lineage.js").read_text(encoding="utf-8")
    assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write", script)
    assert "image/svg+xml" in script  # parsed as XML: a script in it would never run


def test_table_opens_detail_from_the_name_button(table: RunTable, three: list[str]) -> None:
    reveals = table.grid.reveal
    click(table, "open", three[0])

    assert table.grid.reveal == reveals + 1 and table.grid.reveal_target == "panel"
    assert isinstance(table.view, RunDetail)
    assert table.view.info is not None and table.view.info.id == three[0]
    assert ">cnn<" in table.view.params.value
    table.close_panel()
    assert table.view is None
    assert table.grid.reveal_target == "grid"  # back to the table


def test_compare_highlights_differing_params(table: RunTable, three: list[str]) -> None:
    table.select(three[::2])  # a and c: same model, different lr
    table.compare_button.click()

    view = table.view
    assert isinstance(view, RunComparison)
    assert view.ids == [three[2], three[0]]  # in the table's order: newest first
    assert re.search(r'<td class="tracker-differs">lr</td>', view.table.value)
    assert "<td>model</td><td>cnn</td><td>cnn</td>" in view.table.value
    assert "params: 1 of 2 differ" in view.table.value
    assert ">0.7 ★<" in view.table.value and ">0.5<" in view.table.value
    assert "<svg" in view.plots.value  # run a has a two-point acc series


def test_compare_puts_params_and_metrics_in_one_table_under_one_header(
        table: RunTable, three: list[str]) -> None:
    table.select(three)
    table.compare_button.click()
    html = table.view.table.value

    assert html.count("<table") == 1 and html.count("<thead>") == 1
    rows = re.findall(r"<tr>(.*?)</tr>", html)
    # Every row, params and metrics alike, has one cell per run after its name.
    assert {len(re.findall(r"<t[dh][ >]", row)) for row in rows if "colspan" not in row} == {4}


def test_compare_headers_tell_same_named_runs_apart(
        reads: tracker.Catalog, catalog: tracker.Catalog) -> None:
    ids = [make_run(catalog, "train_cnn", params={"lr": lr}) for lr in (0.1, 0.2, 0.3)]
    view = RunComparison(ids, catalog=reads)

    headers = re.findall(r"<th>(train_cnn[^<]*)</th>", view.table.value)
    assert len(headers) == 3 and len(set(headers)) == 3
    assert all(f"({run_id[-8:]})" in header for run_id, header in zip(ids, headers))
    assert len({button.description for button in view.open_buttons}) == 3


def test_compare_marks_the_best_value_by_the_metrics_direction(
        reads: tracker.Catalog, catalog: tracker.Catalog) -> None:
    ids = [make_run(catalog, name, metrics={"val_loss": [loss], "acc": [acc], "speed": [s]})
           for name, loss, acc, s in (("x", 0.3, 0.8, 1.0), ("y", 0.2, 0.7, 2.0))]
    html = RunComparison(ids, catalog=reads).table.value

    assert re.search(r'tracker-best[^>]*title="best \(lower is better\)">0.2 ★', html)
    assert re.search(r'tracker-best[^>]*title="best \(higher is better\)">0.8 ★', html)
    assert html.count("★") == 2  # "speed" says neither: nothing marked

    chosen = RunComparison(ids, catalog=reads, directions={"speed": "max"}).table.value
    assert ">2 ★<" in chosen


def test_compare_differences_only_hides_the_rows_that_agree(
        reads: tracker.Catalog, catalog: tracker.Catalog) -> None:
    ids = [make_run(catalog, name, params={"lr": lr, "model": "cnn"}, metrics={"acc": [0.5]})
           for name, lr in (("x", 0.1), ("y", 0.2))]
    view = RunComparison(ids, catalog=reads)
    assert "<td>model</td>" in view.table.value

    view.differences_only.value = True
    assert "<td>model</td>" not in view.table.value and ">acc<" not in view.table.value
    assert '<td class="tracker-differs">lr</td>' in view.table.value


def test_compare_plots_have_ticks_and_values_under_the_pointer(
        reads: tracker.Catalog, catalog: tracker.Catalog) -> None:
    ids = [make_run(catalog, name, metrics={"loss": [1.0, 0.5, 0.25, 0.2]}) for name in "xy"]
    plots = RunComparison(ids, catalog=reads).plots.value

    tick_labels = re.findall(r'class="tracker-plot-text"[^>]*>([^<]*)<', plots)
    assert {"0", "1", "2", "3"} <= set(tick_labels)  # every step, not only min and max
    assert len(tick_labels) > 6
    assert re.search(r"<circle [^>]*><title>x \([0-9a-z]{8,}\)\nstep 2: 0.25</title>", plots)


def test_compare_needs_two_runs(table: RunTable, three: list[str]) -> None:
    table.select(three[:1])
    table.compare()

    assert table.view is None
    assert "two or more" in table.message


@backends.WRITES_ON_BOTH
def test_trash_restores_and_purges_only_after_confirmation(
        own_table: RunTable, catalog: tracker.Catalog, three: list[str]) -> None:
    table = own_table
    catalog.delete_runs(ids=three[:2])
    table.trash_button.click()
    trash = table.view
    assert isinstance(trash, TrashView)
    assert sorted(trash.rows) == sorted(three[:2])

    trash.select([three[0]])
    trash.restore_button.click()
    assert catalog.get_run(three[0]).deleted_at is None
    assert trash.rows == [three[1]]
    assert set(table.rows) == {three[0], three[2]}  # the table refreshed too

    trash.select([three[1]])
    trash.purge_button.click()
    assert "Permanently delete 1 run" in trash.confirmation.question
    assert catalog.get_run(three[1]).deleted  # still there until Confirm
    trash.confirmation.confirm_button.click()
    with pytest.raises(tracker.RunNotFoundError):
        catalog.get_run(three[1])
    assert trash.notice.text == "1 run purged."
    assert trash.total == 0


@backends.WRITES_ON_BOTH
def test_purge_all_keeps_runs_deleted_after_the_question(catalog: tracker.Catalog,
                                                         three: list[str]) -> None:
    catalog.delete_runs(ids=three[:2])
    trash = TrashView(catalog=catalog)
    trash.purge_all_button.click()
    assert "all 2 runs" in trash.confirmation.question
    time.sleep(1.0)  # the purge's own start-up (lock, flush) must not reach this deletion
    catalog.delete_runs(ids=[three[2]])  # deleted elsewhere while the question is open

    trash.confirmation.confirm_button.click()

    assert trash.notice.text == "2 runs purged."
    assert catalog.get_run(three[2]).deleted


# -- escaping ----------------------------------------------------------------------------------


@backends.WRITES_ON_BOTH
def test_hostile_strings_show_only_escaped_in_every_html_value(
        catalog: tracker.Catalog, tmp_path: Path) -> None:
    hostile_file = tmp_path / "<img src=x onerror=alert(2)>.csv"
    hostile_file.write_text("1")
    evil = catalog.start_run(SCRIPT, params={"model": IMG, IMG: 1}, labels=[IMG],
                             project=SCRIPT, notes=IMG)
    evil.log_metric(SCRIPT, 1.0, step=0)
    evil.log_metric(SCRIPT, 2.0, step=1)
    evil.log_output(hostile_file)
    evil.record("cell", {"seq": 1, "source": SCRIPT, "success": False,
                         "error_type": IMG, "error_message": SCRIPT})
    evil.end("failed", error=IMG)
    other = make_run(catalog, IMG, params={"model": SCRIPT})
    table = RunTable(catalog=catalog, live=False, columns=[
        "notebook_name", "status", "labels", "project", "notes", "params.model",
        f"params.{IMG}", f"metrics.{SCRIPT}"])
    table.set_filter(f"name = '{SCRIPT}' or {IMG}")  # a syntax error quoting the payload
    assert table.error_text
    values = html_values(table)
    table.set_filter(None)
    table.select([evil.id, other])
    table.compare()
    values += html_values(table)
    table.show_detail(evil.id)
    values += html_values(table)
    catalog.delete_runs(ids=[other])
    table.show_trash()
    values += html_values(table)

    for value in values:
        assert "<script" not in value.lower()
        assert "<img" not in value.lower()
    text = "\n".join(values)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "&lt;img src=x onerror=alert(1)&gt;" in text
    assert "&lt;img src=x onerror=alert(2)&gt;.csv" in text
    # The grids get plain text, which the browser writes with textContent, never as markup.
    assert SCRIPT in names(table.view) or IMG in names(table.view)  # the trash's grid
    table.close_panel()
    assert {SCRIPT, IMG} <= set(names(table))
    assert cell(table, names(table).index(SCRIPT), "labels")["l"] == [IMG]
    script = (Path(tracker.widgets.__file__).parent / "grid.js").read_text(encoding="utf-8")
    assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write", script)


# -- building blocks ---------------------------------------------------------------------------


@given(st.text())
def test_literal_round_trips_any_text_through_the_filter_language(text: str) -> None:
    compiled = filter_language.compile_filter(f"name = {literal(text)}")

    assert compiled.params == (text,)


@given(st.text(min_size=1))
def test_field_name_round_trips_any_param_key(key: str) -> None:
    assert filter_language.parse_key(field_name("params", key)) == ("params", key)


def test_sparkline_thins_long_series_and_writes_only_numbers() -> None:
    svg = _plot.sparkline([float(i % 7) for i in range(10_000)], title=SCRIPT)

    path = re.search(r' d="([^"]*)"', svg)
    assert path is not None and re.fullmatch(r"[ML0-9., h-]+", path.group(1))
    assert path.group(1).count("L") == _plot.MAX_POINTS - 1
    assert "<script" not in svg and "&lt;script&gt;" in svg


def test_line_plot_escapes_series_names() -> None:
    svg = _plot.line_plot({IMG: [(0, 1.0), (1, 2.0)], "b": [(0, 2.0), (1, 0.5)]})

    assert "<img" not in svg and "&lt;img" in svg
    assert svg.count("<path") == 2


def test_import_tracker_does_not_import_ipywidgets() -> None:
    code = "import sys, tracker; print('ipywidgets' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "False"


def test_show_displays_a_run_table(reads: tracker.Catalog, three: list[str]) -> None:
    tracker.use_catalog(reads)
    table = tracker.show("status = 'failed'", live=False)

    assert isinstance(table, RunTable)
    assert table.rows == [three[1]]
    table.close()


def test_any_catalog_shows_its_own_runs(reads: tracker.Catalog, three: list[str],
                                        tmp_path: Path) -> None:
    tracker.use_catalog(tmp_path / "elsewhere.duckdb")  # the default is another, empty one
    table = tracker.Catalog(backends.address(reads)).show("status = 'failed'", live=False)
    assert isinstance(table, RunTable)
    assert table.catalog.path == reads.path and table.rows == [three[1]]
    table.close()
    tracker.use_catalog(None)


@pytest.mark.slow
def test_show_as_the_last_line_draws_one_browser(catalog: tracker.Catalog, three: list[str],
                                                  tmp_path: Path) -> None:
    import asyncio
    import os

    import nbformat
    from nbclient import NotebookClient

    cells = ["import tracker\ntracker.show()", "table = tracker.show()\ntable",
             "table"]  # a later cell shows the same table again, on purpose
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    client = NotebookClient(notebook, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    asyncio.run(client.async_execute(env={**os.environ, "TRACKER_CATALOG": str(catalog.path)}))

    views = [[o for o in c["outputs"] if "application/vnd.jupyter.widget-view+json"
              in o.get("data", {})] for c in notebook.cells]
    assert [len(outputs) for outputs in views] == [1, 1, 1]
    plain = [o for c in notebook.cells for o in c["outputs"]
             if "application/vnd.jupyter.widget-view+json" not in o.get("data", {})]
    assert plain == []  # and no "RunTable(...)" text either


def test_delete_and_undo_update_the_project_counts(table: RunTable, three: list[str]) -> None:
    table.load_choices()
    assert ("vision (2)", "vision") in table.filters.project.options
    table.select([three[0]])
    table.delete_selected()
    table.confirmation.confirm_button.click()

    _wait_for(lambda: ("vision (1)", "vision") in table.filters.project.options)
    table.notice.action_button.click()  # Undo
    _wait_for(lambda: ("vision (2)", "vision") in table.filters.project.options)


@backends.WRITES_ON_BOTH
def test_trash_shows_project_and_params_selects_all_and_opens_runs(
        own_table: RunTable, catalog: tracker.Catalog, three: list[str]) -> None:
    table = own_table
    catalog.delete_runs(ids=three[:2])
    table.show_trash()
    trash = table.view
    assert isinstance(trash, TrashView)
    sources = [column["source"] for column in trash.grid.columns]
    assert sources[:2] == ["deleted_at", "project"]
    assert {"params.lr", "params.model"} <= set(sources)
    assert cell(trash, names(trash).index("a"), "params.model")["t"] == "cnn"

    tick(trash, trash.rows)  # the header's select-all box
    assert trash.selected == set(three[:2])
    click(trash, "open", three[1])
    assert isinstance(table.view, RunDetail)
    assert table.view.info is not None and table.view.info.id == three[1]


def test_bars_keep_body_text_and_show_their_buttons_as_buttons(table: RunTable,
                                                               three: list[str]) -> None:
    table.select(three[:1])
    table.delete_selected()
    assert "tracker-warn" not in table.confirmation.text.value  # orange text failed contrast
    assert "tracker-bar-button" in table.confirmation.cancel_button._dom_classes
    table.confirmation.confirm_button.click()

    assert "tracker-bar-ok" in table.notice._dom_classes
    assert "✓ 1 run deleted." in table.notice.html.value
    assert "tracker-bar-button" in table.notice.action_button._dom_classes


def _wait_for(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


@pytest.mark.parametrize(("build", "argument"), [
    (lambda c: RunTable(where=123, catalog=c, live=False), "where"),
    (lambda c: RunTable(catalog=c, page_size=-1, live=False), "page_size"),
    (lambda c: RunTable(catalog=c, page_size="25", live=False), "page_size"),
    (lambda c: RunTable(catalog=c, columns="status", live=False), "columns"),
    (lambda c: RunTable(catalog=c, interval=-1), "interval"),
    (lambda c: RunTable(catalog=123, live=False), "path"),
    (lambda c: TrashView(catalog=c, page_size=0), "page_size"),
    (lambda c: RunComparison(["01m7zwkkx6hq"], catalog=c), "compare"),
    (lambda c: RunComparison("01m7zwkkx6hq", catalog=c), "ids"),
    (lambda c: RunComparison([f"01m7zwkkx6h{i}" for i in range(13)], catalog=c), "compare"),
    (lambda c: RunDetail(5, catalog=c), "a run reference"),
])
def test_views_refuse_bad_arguments_with_argument_errors(catalog: tracker.Catalog, build: Any,
                                                         argument: str) -> None:
    with pytest.raises(tracker.ArgumentError, match=f"^{argument} "):
        build(catalog)


def test_comparing_runs_that_do_not_exist_is_a_run_not_found_error(
        reads: tracker.Catalog, catalog: tracker.Catalog, three: list[str]) -> None:
    with pytest.raises(tracker.RunNotFoundError, match="zzzzzzzz"):
        RunComparison([three[0], "zzzzzzzz"], catalog=reads)


def test_filter_box_finds_the_run_that_wrote_a_file(
        reads: tracker.Catalog, catalog: tracker.Catalog, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model.pt").write_bytes(b"weights")
    make_run(catalog, "other")
    writer = catalog.start_run("writer")
    writer.log_output("model.pt")
    writer.end()
    table = RunTable(catalog=reads, live=False)

    table.filters.text.value = "outputs contains 'model.pt'"

    assert names(table) == ["writer"] and table.total == 1
    table.close()


def test_times_show_seconds_and_name_the_local_zone(
        reads: tracker.Catalog, catalog: tracker.Catalog) -> None:
    from tracker.widgets import _html

    moment = dt.datetime(2026, 5, 1, 14, 3, 27, tzinfo=dt.timezone.utc)
    local = moment.astimezone()
    expected = f"{local:%Y-%m-%d %H:%M:%S} {local:%Z}".strip()
    assert _html.when(moment) == _html.iso(moment) == expected
    ids = [make_run(catalog, name) for name in "xy"]
    started = reads.get_run(ids[0]).started_at.astimezone()
    compared = RunComparison(ids, catalog=reads).table.value
    assert f"{started:%H:%M:%S} {started:%Z}" in compared


def test_show_refuses_an_unknown_option_naming_the_allowed_ones(
        catalog: tracker.Catalog) -> None:
    for show in (catalog.show, tracker.show):
        with pytest.raises(tracker.ArgumentError, match="no option 'bogus'.*page_size, columns"):
            show(bogus=1)


def test_a_table_whose_options_are_refused_closes_quietly() -> None:
    with pytest.raises(TypeError):
        RunTable(bogus=1)  # type: ignore[call-arg]
    gc.collect()  # its __del__ closes it: an error there would fail this test


def _recorded_offline(url: str) -> str:
    """The id of a run a script recorded into ``url`` and exited while the server was away:
    it waits in this machine's spool of that catalog."""
    script = textwrap.dedent(f"""
        import json, warnings, tracker
        warnings.simplefilter("ignore")  # the one warning that the server is away
        catalog = tracker.Catalog({url!r})
        with catalog.start_run("offline") as run:
            run.log_metric("m", 1.0)
        print(json.dumps(run.id))""")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return str(done.stdout.strip().splitlines()[-1].strip('"'))


@pytest.mark.parametrize("backend", backends.BOTH)
def test_the_status_line_says_which_runs_wait_to_be_sent(
        backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    if backend == "file":  # a catalog file is written directly: nothing ever waits
        catalog = tracker.Catalog(tmp_path / "catalog.duckdb")
        _recorded_offline(str(tmp_path / "catalog.duckdb"))
        table = RunTable(catalog=catalog, live=False)
        assert "runs 1–1 of 1" in table.pager.value and "not yet sent" not in table.pager.value
        table.close()
        return
    cluster = request.getfixturevalue("pg_cluster")
    # a password and markup in the URL: neither may reach the page as they are
    url = cluster.url(cluster.fresh_database()).replace(
        "postgresql://postgres@", f"postgresql://postgres:{backends.SECRET}@") + \
        "&application_name=<b>team</b>"
    tracker.Catalog(url).runs()  # the catalog exists; then the server goes away
    cluster.admin("CHECKPOINT")
    cluster.stop()
    try:
        run_id = _recorded_offline(url)
    finally:
        cluster.start()
    catalog = tracker.Catalog(url)
    table = RunTable(catalog=catalog, live=False)
    shown = table.pager.value
    assert "1 run recorded on this machine not yet sent to postgresql://postgres:***@" in shown
    assert "(tracker sync)" in shown and "tracker-warn" in shown
    assert backends.SECRET not in shown and "<b>team" not in shown and "&lt;b&gt;team" in shown
    assert catalog.sync() == 0
    table.refresh()
    assert "not yet sent" not in table.pager.value and table.rows == [run_id]
    table.close()
