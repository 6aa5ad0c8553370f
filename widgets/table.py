"""RunTable: a page of runs with sorting, filters, column choice, selection and actions.

Everything heavy happens in the catalog: a refresh is one ``runs(where, order_by, limit,
offset)`` call for the page, which also carries the total (``frame.attrs["total"]``), over one
connection. Widgets are built once: a fixed pool of ``page_size`` rows (checkbox, name
button, one HTML line of cells) whose values are updated in place, with layouts shared between
rows, so memory and render time do not grow with the catalog. Details, comparisons and the trash
open in a panel below the table.
"""

from __future__ import annotations

import functools
import itertools
import threading
from collections.abc import Iterable, Sequence
from typing import Any

import ipywidgets as w

from tracker import arguments
from tracker.errors import FilterSyntaxError

from . import _columns as cols
from . import _html as h
from ._catalog import CatalogLike, current_run_id, resolve_catalog
from ._feedback import ConfirmBar, Notice, button, close_tree, reporting, styled
from ._live import LiveTicker, start_thread
from ._rows import CURRENT_MARK, Row, Shared
from .filters import MISSING, FilterBar, ids_filter

LIVE_INTERVAL = 3.0


class RunTable(w.VBox):
    """The runs browser: filter, sort, page, select, delete with undo, details, compare, trash.

    Parameters
    ----------
    where:
        Initial filter (the filter language), editable in the filter box.
    catalog:
        A :class:`tracker.Catalog` or a path; None is ``tracker.default_catalog()``.
    page_size:
        Runs per page.
    columns:
        Column keys to show (``"status"``, ``"params.lr"``...); default: the usual attributes
        and the first params and metrics seen.
    live:
        Refresh running runs on the page every ``interval`` seconds, in the background.

    Example::

        table = tracker.widgets.RunTable("params.lr > 0.01", page_size=50)
        table.sort_by("metrics.acc", descending=True)
    """

    def __init__(self, where: str | None = None, catalog: CatalogLike = None,
                 page_size: int = 25, *, columns: Sequence[str] | None = None,
                 live: bool = True, interval: float = LIVE_INTERVAL) -> None:
        self._ticker: LiveTicker | None = None  # close() runs even when this raises
        arguments.filter_text(where, "where")
        self.page_size = arguments.count(page_size, "page_size", minimum=1)
        columns = arguments.texts(columns, "columns", "['status', 'params.lr']")
        interval = arguments.seconds(interval, "interval")
        self.catalog = resolve_catalog(catalog)
        self.offset = 0
        self.total = 0
        self.rows: list[str] = []
        self.selected: set[str] = set()
        self.order_key, self.descending = "started_at", True
        self._records: list[dict[str, Any]] = []
        self._known: dict[str, None] = {}  # params/metrics columns seen, in first-seen order
        self._all_keys: list[str] = []  # every params/metrics column of the catalog
        self._chosen = list(columns) if columns else None
        self._columns: list[cols.Column] = []
        self._error = ""
        self._where: str | None = None
        self._legend = ""
        self._syncing = False
        self._closed = False
        self._lock = threading.RLock()
        if live:
            self._ticker = LiveTicker(self.refresh_running, interval=interval)
        self._shared = Shared()
        self._pool = [Row(self._shared) for _ in range(self.page_size)]
        self._choices_lock = threading.Lock()
        self._build(where)
        self.refresh()
        # The dropdowns' two grouped counts would double the first render: they load behind it.
        start_thread(self.load_choices, "tracker-choices")

    # -- building ----------------------------------------------------------------------

    def _build(self, where: str | None) -> None:
        self.filters = FilterBar(where)
        self.confirmation = ConfirmBar()
        self.notice = Notice()
        self.refresh_button = button("Refresh", self._refresh_clicked,
                                     tooltip="re-read the catalog")
        self.columns_button = w.ToggleButton(description="Columns", tooltip="choose columns",
                                             layout=w.Layout(width="auto"))
        self.compare_button = button("Compare", lambda: self.compare(),
                                     tooltip="compare the selected runs")
        self.delete_button = button("Delete selected", self.delete_selected,
                                    tooltip="move the selected runs to the trash")
        self.trash_button = button("Trash", self.show_trash,
                                   tooltip="deleted runs: restore or purge")
        self.charts_button = button("Charts", self.show_charts,
                                    tooltip="charts across the filtered runs")
        self.selection_html = w.HTML()
        self.chooser = w.SelectMultiple(rows=10, layout=w.Layout(width="320px"))
        self.chooser.add_class("tracker-hidden")
        self.select_all = w.Checkbox(value=False, indent=False, layout=self._shared.check,
                                     tooltip="select every run on this page")
        self.header = w.HBox()
        self.header.add_class("tracker-head")
        self.body = w.VBox([row.box for row in self._pool])
        self.first_button = button("«", self.first_page, tooltip="first page")
        self.previous_button = button("‹ Previous", self.previous_page, tooltip="previous page")
        self.next_button = button("Next ›", self.next_page, tooltip="next page")
        self.pager = w.HTML()
        self.panel = w.VBox()
        self.panel.add_class("tracker-panel")
        self.panel.add_class("tracker-hidden")
        toolbar = w.HBox([self.refresh_button, self.columns_button, self.compare_button,
                          self.charts_button, self.delete_button, self.trash_button,
                          self.selection_html])
        grid = w.VBox([self.header, self.body])
        grid.add_class("tracker-scroll")
        pager = w.HBox([self.first_button, self.previous_button, self.next_button, self.pager])
        super().__init__([self.filters, toolbar, self.chooser, self.confirmation, self.notice,
                          grid, pager, self.panel])
        styled(self)
        self.filters.on_change(self._filter_changed)
        self.columns_button.observe(self._toggle_chooser, "value")
        self.chooser.observe(self._columns_chosen, "value")
        self.select_all.observe(self._select_page, "value")
        for row in self._pool:
            row.check.observe(functools.partial(self._ticked, row), "value")
            row.name.on_click(functools.partial(self._open_row, row))
        self._set_columns(self._chosen or cols.DEFAULT_ATTRIBUTES)

    # -- state -------------------------------------------------------------------------

    @property
    def message(self) -> str:
        """The text of the notice bar ("2 runs deleted.", an error...), "" when hidden."""
        return self.notice.text

    @property
    def error_text(self) -> str:
        """The current error: a filter that does not parse, or a failed action; "" if none."""
        return self.filters.error_text or self._error

    @property
    def columns(self) -> list[str]:
        """The keys of the columns shown after the name."""
        return [column.source for column in self._columns]

    # -- loading -----------------------------------------------------------------------

    def refresh(self) -> None:
        """Re-read the current page and the total from the catalog and update in place."""
        self._load(count=True)

    def _load(self, *, count: bool) -> None:
        try:
            where = self.filters.filter_text()
        except FilterSyntaxError:
            return  # shown inline under the filter box; the last good page stays
        with self._lock, reporting(self._show_error):
            self._where = where
            frame = self._page(where)
            if count:
                self.total = frame.attrs["total"]
            if frame.empty and self.offset and self.total:
                # The page emptied (runs deleted elsewhere): show the last page that has runs.
                self.offset = (self.total - 1) // self.page_size * self.page_size
                frame = self._page(where)
            self._show_page(frame)
            self._clear_error()
        self._schedule_live()

    def _page(self, where: str | None) -> Any:
        order = cols.sort_text(self.order_key, descending=self.descending)
        return self.catalog.runs(where, order_by=order, limit=self.page_size, offset=self.offset)

    def _show_page(self, frame: Any) -> None:
        self._records = frame.to_dict("records")
        self.rows = [record["id"] for record in self._records]
        self._learn(cols.data_sources(list(frame.columns)))
        self._render(checks=True)
        self._update_pager()

    def load_choices(self) -> None:
        """Fill the project and notebook dropdowns (two grouped counts) and the column
        chooser (every params and metrics key) from the catalog."""
        with self._choices_lock, reporting(self._show_error):
            if not self._closed:
                self._all_keys = self.catalog.keys()
                self.filters.set_choices(projects=self._counts("project"),
                                         notebooks=self._counts("notebook_name"),
                                         keys=self._all_keys)
                with self._lock:
                    self._sync_chooser()

    def _counts(self, by: str) -> list[tuple[Any, int]]:
        frame = self.catalog.count_runs(None, by=by)
        return [(MISSING if h.is_missing(value) else value, int(count))
                for value, count in zip(frame[by], frame["count"])]

    # -- rendering ---------------------------------------------------------------------

    def _render(self, *, checks: bool) -> None:
        current = current_run_id(self.catalog)
        for row, record in itertools.zip_longest(self._pool, self._records):
            if record is None:
                row.hide()
            else:
                row.show(record, self._columns, current=record["id"] == current)
        here = current in self.rows
        self._legend = h.muted(f"{CURRENT_MARK}this notebook's run") if here else ""
        if checks:
            self._sync_checks()

    def _sync_checks(self) -> None:
        """Tick the boxes of the selected runs on the page, without firing the handlers."""
        self._syncing = True
        try:
            for row in self._pool:
                row.check.value = row.run_id is not None and row.run_id in self.selected
            self._sync_selection()
        finally:
            self._syncing = False

    def _update_pager(self) -> None:
        shown = len(self.rows)
        if not self.total:
            text = "no runs match the filter" if self._where else "no runs yet"
        else:
            text = (f"runs {self.offset + 1:,}–{self.offset + shown:,} of {self.total:,}"
                    f" · page {self.offset // self.page_size + 1:,} of "
                    f"{(self.total - 1) // self.page_size + 1:,}")
        self.pager.value = h.join([h.muted(text), "  ", self._legend])
        self.previous_button.disabled = self.first_button.disabled = self.offset == 0
        self.next_button.disabled = self.offset + self.page_size >= self.total

    def _learn(self, sources: Iterable[str]) -> None:
        fresh = [source for source in sources if source not in self._known]
        if not fresh:
            return
        self._known.update(dict.fromkeys(fresh))
        if self._chosen is None:
            self._set_columns(cols.default_columns(list(self._known)))
        else:
            self._sync_chooser()

    def _set_columns(self, keys: Sequence[str]) -> None:
        self._columns = [cols.column_for(key) for key in keys]
        self._shared.cells.width = f"{cols.cells_width(self._columns)}px"
        self._update_header()
        self._sync_chooser()

    def _update_header(self) -> None:
        old = self.header.children[1:]
        buttons = [self._header_button("name", "name", cols.NAME_WIDTH)]
        buttons += [self._header_button(c.key, c.title, c.width, icon=c.icon, source=c.source)
                    for c in self._columns]
        self.header.children = [self.select_all, *buttons]
        for widget in old:
            widget.close()

    def _header_button(self, key: str, title: str, width: int, *, icon: str = "",
                       source: str = "") -> w.Button:
        arrow = (" ▼" if self.descending else " ▲") if key == self.order_key else ""
        button = w.Button(description=title + arrow, icon=icon,
                          tooltip=f"{source or key}: click to sort",
                          layout=self._shared.width(width), style=self._shared.button_style)
        button.on_click(lambda _: self.sort_by(key))
        return button

    def _sync_chooser(self) -> None:
        options = [(column.title, key) for key, column in cols.ATTRIBUTE_COLUMNS.items()]
        options += [(source, source) for source in self._known]
        options += [(key, key) for key in self._all_keys if key not in self._known]
        offered = {key for _, key in options}
        options += [(key, key) for key in self.columns if key not in offered]
        self._syncing = True
        try:
            self.chooser.options = options
            self.chooser.value = tuple(self.columns)
        finally:
            self._syncing = False

    # -- user actions ------------------------------------------------------------------

    def set_filter(self, text: str | None) -> None:
        """Replace the typed filter and show the first page of what it matches."""
        self.filters.set_text(text)

    def _filter_changed(self) -> None:
        self.offset = 0
        self.refresh()

    def sort_by(self, key: str, *, descending: bool | None = None) -> None:
        """Sort by a field (``"metrics.acc"``); None flips the direction of the current key."""
        with reporting(self._show_error):
            canonical = cols.sort_column(key)
            if descending is None:
                descending = (not self.descending if canonical == self.order_key
                              else _descending_first(canonical))
            self.order_key, self.descending = canonical, descending
            self.offset = 0
            self._update_header()
            self._load(count=False)

    def next_page(self) -> None:
        """Show the next page, if any."""
        if self.offset + self.page_size < self.total:
            self.offset += self.page_size
            self._load(count=False)

    def previous_page(self) -> None:
        """Show the previous page, if any."""
        if self.offset:
            self.offset = max(0, self.offset - self.page_size)
            self._load(count=False)

    def first_page(self) -> None:
        """Go back to the first page."""
        if self.offset:
            self.offset = 0
            self._load(count=False)

    def select(self, ids: Iterable[str]) -> None:
        """Select exactly these runs (their checkboxes tick when on the page)."""
        self.selected = set(ids)
        self._sync_checks()

    def delete_selected(self) -> None:
        """Ask to move the selected runs to the trash; nothing happens until Confirm."""
        count = len(self.selected)
        if not count:
            self.notice.show("Select runs to delete first (tick their boxes).", kind="warn")
            return
        runs = h.runs_text(count)
        self.confirmation.ask(
            f"Delete {runs}? They go to the trash, where you can restore them.",
            confirm=f"Delete {runs}", action=functools.partial(self._delete, sorted(self.selected)))

    def _delete(self, ids: list[str]) -> None:
        with reporting(self._show_error):
            deleted = self.catalog.delete_runs(ids=ids)
            self.selected.difference_update(ids)
            self.refresh()
            self.notice.show(f"{h.runs_text(len(deleted))} deleted.", kind="ok",
                             action=functools.partial(self._undo, deleted), label="Undo")

    def _undo(self, ids: list[str]) -> None:
        with reporting(self._show_error):
            restored = self.catalog.restore_runs(ids)
            self.refresh()
            self.notice.show(f"{h.runs_text(len(restored))} restored.", kind="ok")

    def show_detail(self, run_id: str) -> None:
        """Open one run's detail (params, metrics, files, environment, cells) below."""
        from .detail import RunDetail

        with reporting(self._show_error):
            self._open_panel(RunDetail(run_id, catalog=self.catalog, on_open=self.show_detail))

    def compare(self, ids: Iterable[str] | None = None) -> None:
        """Compare runs side by side (default: the selected ones); needs two or more."""
        chosen = list(ids) if ids is not None else self._selection_in_order()
        if len(chosen) < 2:
            self.notice.show("Select two or more runs to compare.", kind="warn")
            return
        from .compare import RunComparison

        with reporting(self._show_error):
            self._open_panel(RunComparison(chosen, catalog=self.catalog,
                                           on_open=self.show_detail))

    def show_charts(self) -> None:
        """Charts across the runs the current filter matches (tracker.widgets.charts)."""
        from .charts import RunCharts

        with reporting(self._show_error):
            self._open_panel(RunCharts(self._where, catalog=self.catalog))

    def _selection_in_order(self) -> list[str]:
        """The selected runs as the table shows them, then any selected on other pages."""
        shown = [run_id for run_id in self.rows if run_id in self.selected]
        return shown + sorted(self.selected.difference(shown))

    def show_trash(self) -> None:
        """Open the trash: deleted runs to restore, or to purge after a confirmation."""
        from .trash import TrashView

        with reporting(self._show_error):
            self._open_panel(TrashView(catalog=self.catalog, page_size=self.page_size,
                                       on_change=self.refresh))

    def close_panel(self) -> None:
        """Close the detail, comparison or trash panel."""
        for child in self.panel.children:
            close_tree(child)
        self.panel.children = ()
        self.panel.add_class("tracker-hidden")

    @property
    def view(self) -> w.Widget | None:
        """The view open in the panel (a RunDetail, RunComparison or TrashView), if any."""
        return self.panel.children[1] if self.panel.children else None

    def _open_panel(self, view: w.Widget) -> None:
        self.close_panel()
        close = button("Close", self.close_panel, tooltip="close this panel")
        close.layout.align_self = "flex-start"
        self.panel.children = [close, view]
        self.panel.remove_class("tracker-hidden")

    # -- live updates ------------------------------------------------------------------

    def refresh_running(self) -> bool:
        """Update the page's running runs in place (status, duration, metrics).

        The live ticker calls this every few seconds; returns True while some are running.
        """
        if self._closed or not self._lock.acquire(blocking=False):
            return not self._closed
        try:
            running = [r["id"] for r in self._records if r.get("status") == "running"]
            if not running:
                return False
            frame = self.catalog.runs(ids_filter(running), limit=len(running))
            fresh = {record["id"]: record for record in frame.to_dict("records")}
            self._records = [{**record, **fresh.get(record["id"], {})}
                             for record in self._records]
            # Checkboxes are left alone: a click arriving meanwhile must not be undone.
            self._render(checks=False)
            return any(r.get("status") == "running" for r in self._records)
        finally:
            self._lock.release()

    @property
    def live_updating(self) -> bool:
        """True while the background thread keeps the page's running runs fresh."""
        return self._ticker is not None and self._ticker.running

    def _schedule_live(self) -> None:
        if self._ticker is None or self._closed:
            return
        if any(record.get("status") == "running" for record in self._records):
            self._ticker.ensure_running()

    def close(self) -> None:
        """Stop live updates and close the widget."""
        self._closed = True
        if self._ticker is not None:
            self._ticker.stop()
        super().close()

    # -- callbacks ---------------------------------------------------------------------

    def _refresh_clicked(self) -> None:
        self.load_choices()
        self.refresh()

    def _ticked(self, row: Row, change: dict[str, Any]) -> None:
        if not self._syncing and row.run_id is not None:
            self._choose([row.run_id], change["new"])

    def _select_page(self, change: dict[str, Any]) -> None:
        if not self._syncing:
            self._choose(self.rows, change["new"])

    def _choose(self, ids: list[str], chosen: bool) -> None:
        if chosen:
            self.selected.update(ids)
        else:
            self.selected.difference_update(ids)
        self._sync_checks()

    def _sync_selection(self) -> None:
        """The select-all box and the "N selected" text follow the selection."""
        self.select_all.value = bool(self.rows) and all(i in self.selected for i in self.rows)
        count = len(self.selected)
        self.selection_html.value = h.muted(f"{count:,} selected") if count else ""

    def _open_row(self, row: Row, _: Any) -> None:
        if row.run_id is not None:
            self.show_detail(row.run_id)

    def _toggle_chooser(self, change: dict[str, Any]) -> None:
        (self.chooser.remove_class if change["new"] else self.chooser.add_class)("tracker-hidden")

    def _columns_chosen(self, change: dict[str, Any]) -> None:
        if self._syncing:
            return
        self._chosen = list(change["new"])
        self._set_columns(self._chosen)
        self._render(checks=False)

    def _show_error(self, text: str) -> None:
        self._error = text
        self.notice.show(text, kind="error")

    def _clear_error(self) -> None:
        if self._error:
            self._error = ""
            self.notice.clear()


def _descending_first(key: str) -> bool:
    column = cols.ATTRIBUTE_COLUMNS.get(key)
    return column.descending_first if column else key.startswith("metrics.")
