"""RunTable: a page of runs with sorting, filters, column choice, selection and actions.

Everything heavy happens in the catalog: a refresh is one ``runs(where, order_by, limit,
offset)`` call for the page, which also carries the total (``frame.attrs["total"]``), over one
connection. The page is drawn by one :class:`~tracker.widgets.grid.RunGrid` (a single scroll
area: sticky header, pinned name column) that receives only the page's rows as plain text, so
memory and render time do not grow with the catalog. Details, comparisons and the trash open in
a panel below the table, scrolled into view; closing it brings the table back into view.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterable, Sequence
from typing import Any

import ipywidgets as w

from tracker import arguments
from tracker.errors import FilterSyntaxError
from tracker.terminal_text import plural

from . import _columns as cols
from . import _html as h
from ._catalog import CatalogLike, current_run_id, resolve_catalog
from ._feedback import ConfirmBar, Notice, button, close_tree, reporting, styled
from ._live import LiveTicker, start_thread
from .filters import MISSING, FilterBar, ids_filter
from .grid import RunGrid

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
        Column keys to show (``"status"``, ``"params.lr"``...); default: the usual attributes,
        the params most runs on the first page have, their metrics, then rarer params.
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
        self._waiting = ""  # a team catalog's runs of this machine not sent yet
        self._syncing = False  # set while the kernel updates the grid: no echo to handlers
        self._shown_in: int | None = None  # the cell display() drew this table in
        self._closed = False
        self._lock = threading.RLock()
        if live:
            self._ticker = LiveTicker(self.refresh_running, interval=interval)
        self._choices_lock = threading.Lock()
        self._build(where)
        self.refresh()
        # The dropdowns' two grouped counts would double the first render: they load behind it.
        start_thread(self.load_choices, "tracker-choices")

    # -- building ----------------------------------------------------------------------

    def _build(self, where: str | None) -> None:
        self.filters = FilterBar(where)
        self.filters.add_class("tracker-wrap")  # at 800 px the quick filters take two lines
        self.confirmation = ConfirmBar()
        self.notice = Notice()
        self.refresh_button = button("Refresh", self._refresh_clicked, icon="refresh",
                                     tooltip="re-read the catalog")
        self.columns_button = w.ToggleButton(description="Columns", icon="columns",
                                             tooltip="choose, order and pin columns",
                                             layout=w.Layout(width="auto"))
        self.compare_button = button("Compare", lambda: self.compare(), icon="exchange",
                                     tooltip="compare the selected runs")
        self.delete_button = button("Delete", self.delete_selected, icon="trash",
                                    tooltip="move the selected runs to the trash")
        self.trash_button = button("Trash", self.show_trash, icon="recycle",
                                   tooltip="deleted runs: restore or purge")
        self.charts_button = button("Charts", self.show_charts, icon="line-chart",
                                    tooltip="charts across the filtered runs")
        self.selection_html = w.HTML()
        self.grid = RunGrid()
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
        toolbar.add_class("tracker-wrap")
        pager = w.HBox([self.first_button, self.previous_button, self.next_button, self.pager])
        pager.add_class("tracker-wrap")
        super().__init__([self.filters, toolbar, self.confirmation, self.notice,
                          self.grid, pager, self.panel])
        styled(self)
        self.filters.on_change(self._filter_changed)
        self.columns_button.observe(self._toggle_manager, "value")
        self.grid.observe(self._manager_toggled, "manager_open")
        self.grid.observe(self._ticked, "selected")
        self.grid.observe(self._columns_chosen, ["chosen", "pinned"])
        self.grid.on("sort", self.sort_by)
        self.grid.on("open", self.show_detail)
        self.grid.on("reset", lambda _: self.reset_columns())
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
                self._waiting = _waiting_text(self.catalog)
            if frame.empty and self.offset and self.total:
                # The page emptied (runs deleted elsewhere): show the last page that has runs.
                self.offset = (self.total - 1) // self.page_size * self.page_size
                frame = self._page(where)
            self._show_page(frame, count=count)
            self._clear_error()
        self._schedule_live()

    def _page(self, where: str | None) -> Any:
        order = cols.sort_text(self.order_key, descending=self.descending)
        return self.catalog.runs(where, order_by=order, limit=self.page_size, offset=self.offset)

    def _show_page(self, frame: Any, *, count: bool = False) -> None:
        self._records = frame.to_dict("records")
        self.rows = [record["id"] for record in self._records]
        self._learn(cols.data_sources(list(frame.columns)), defaults=count)
        self._render()
        self._update_pager()

    def load_choices(self) -> None:
        """Fill the project and notebook dropdowns (two grouped counts) and the column
        column manager (every params and metrics key, even of runs on no page seen yet)."""
        with self._choices_lock, reporting(self._show_error):
            if not self._closed:
                self._all_keys = self.catalog.keys()
                self.filters.set_choices(projects=self._counts("project"),
                                         notebooks=self._counts("notebook_name"),
                                         keys=self._all_keys)
                with self._lock:
                    self._sync_manager()

    def _counts(self, by: str) -> list[tuple[Any, int]]:
        frame = self.catalog.count_runs(None, by=by)
        return [(MISSING if h.is_missing(value) else value, int(count))
                for value, count in zip(frame[by], frame["count"])]

    # -- rendering ---------------------------------------------------------------------

    def _render(self) -> None:
        current = current_run_id(self.catalog)
        self.grid.show(self._columns, self._records, current=current)
        here = current in self.rows
        self._legend = h.muted("● this notebook's run") if here else ""
        self._sync_selection()

    def _sync_selection(self) -> None:
        """The grid's ticks and the "N selected" text follow the selection."""
        self.grid.selected = [run_id for run_id in self.rows if run_id in self.selected]
        count = len(self.selected)
        self.selection_html.value = h.muted(f"{count:,} selected") if count else ""

    def _update_pager(self) -> None:
        shown = len(self.rows)
        if not self.total:
            text = "no runs match the filter" if self._where else "no runs yet"
        else:
            text = (f"runs {self.offset + 1:,}–{self.offset + shown:,} of {self.total:,}"
                    f" · page {self.offset // self.page_size + 1:,} of "
                    f"{(self.total - 1) // self.page_size + 1:,}")
        self.pager.value = h.join([h.muted(text), "  ", self._legend, self._waiting])
        self.previous_button.disabled = self.first_button.disabled = self.offset == 0
        self.next_button.disabled = self.offset + self.page_size >= self.total

    def _learn(self, sources: Iterable[str], *, defaults: bool) -> None:
        """Remember the page's params/metrics; a full refresh re-picks the default columns."""
        fresh = [source for source in sources if source not in self._known]
        self._known.update(dict.fromkeys(fresh))
        if self._chosen is None and (fresh or defaults):
            self._set_columns(self._default_columns())
        elif fresh:
            self._sync_manager()

    def _default_columns(self) -> list[str]:
        return cols.default_columns(list(self._known), self._records)

    def _set_columns(self, keys: Sequence[str]) -> None:
        self._columns = _pinned_first([cols.column_for(key) for key in keys],
                                      set(self.grid.pinned))
        self._sync_manager()

    def _sync_manager(self) -> None:
        """Offer every attribute and every params/metrics key of the catalog in the manager."""
        offered = [{"key": key, "title": column.title, "kind": "attribute"}
                   for key, column in cols.ATTRIBUTE_COLUMNS.items()]
        known = [*self._known, *(key for key in self._all_keys if key not in self._known)]
        offered += [{"key": key, "title": key, "kind": key.partition(".")[0].rstrip("s")}
                    for key in known]
        with self.grid.hold_sync():
            self._syncing = True
            try:
                self.grid.offered = offered
                self.grid.chosen = [column.source for column in self._columns]
            finally:
                self._syncing = False

    def reset_columns(self) -> None:
        """Back to the default columns (the manager's Reset); pins and widths are dropped."""
        self._chosen = None
        self._syncing = True
        try:
            self.grid.pinned, self.grid.widths = [], {}
        finally:
            self._syncing = False
        self._set_columns(self._default_columns())
        self._render()

    def choose_columns(self, keys: Sequence[str], *, pinned: Iterable[str] = ()) -> None:
        """Show these columns (``"status"``, ``"params.lr"``...) in this order; ``pinned`` ones
        stay in view at the left, after the name."""
        keys = arguments.texts(keys, "keys", "['status', 'params.lr']") or []
        with reporting(self._show_error):
            for key in keys:
                cols.column_for(key)
            self._syncing = True
            try:
                self.grid.pinned = [key for key in pinned if key in keys]
            finally:
                self._syncing = False
            self._chosen = list(keys)
            self._set_columns(self._chosen)
            self._render()

    # -- user actions ------------------------------------------------------------------

    def set_filter(self, text: str | None) -> None:
        """Replace the typed filter and show the first page of what it matches."""
        self.filters.set_text(text)

    def _filter_changed(self) -> None:
        self.offset = 0
        self.refresh()
        follow = getattr(self.view, "set_filter", None)
        if follow is not None:  # open charts follow the filter (tracker.widgets.charts)
            follow(self._where)

    def sort_by(self, key: str, *, descending: bool | None = None) -> None:
        """Sort by a field (``"metrics.acc"``); None flips the direction of the current key."""
        with reporting(self._show_error):
            canonical = cols.sort_column(key)
            if descending is None:
                descending = (not self.descending if canonical == self.order_key
                              else _descending_first(canonical))
            self.order_key, self.descending = canonical, descending
            self.offset = 0
            with self.grid.hold_sync():
                self.grid.order_key, self.grid.descending = canonical, descending
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
        self._sync_selection()

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
            self._recount()
            self.notice.show(f"{h.runs_text(len(deleted))} deleted.", kind="ok",
                             action=functools.partial(self._undo, deleted), label="Undo")

    def _undo(self, ids: list[str]) -> None:
        with reporting(self._show_error):
            restored = self.catalog.restore_runs(ids)
            self.selected.update(restored)  # the runs come back as they went: selected
            self.refresh()
            self._recount()
            self.notice.show(f"{h.runs_text(len(restored))} restored.", kind="ok")

    def _recount(self) -> None:
        """The quick filters' counts (runs per project, per notebook) after runs came or went."""
        start_thread(self.load_choices, "tracker-choices")

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
                                       on_change=self._trash_changed, on_open=self.show_detail))

    def _trash_changed(self) -> None:
        self.refresh()
        self._recount()

    def close_panel(self) -> None:
        """Close the detail, comparison or trash panel and bring the table back into view."""
        if self.panel.children:
            self._clear_panel()
            self.grid.bring_into_view("grid")

    def _clear_panel(self) -> None:
        for child in self.panel.children:
            close_tree(child)
        self.panel.children = ()
        self.panel.add_class("tracker-hidden")

    @property
    def view(self) -> w.Widget | None:
        """The view open in the panel (a RunDetail, RunComparison, RunCharts or TrashView), if
        any."""
        return self.panel.children[1] if self.panel.children else None

    def _open_panel(self, view: w.Widget) -> None:
        """Show ``view`` below the table and scroll the browser to it (it opens where the
        user looks, not below a page of rows)."""
        self._clear_panel()
        close = button("Close", self.close_panel, icon="times",
                       tooltip="close this panel and go back to the table")
        close.layout.align_self = "flex-start"
        self.panel.children = [close, view]
        self.panel.remove_class("tracker-hidden")
        self.grid.bring_into_view("panel")

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
            # The selection is left alone: a click arriving meanwhile must not be undone.
            self.grid.show(self._columns, self._records, current=current_run_id(self.catalog))
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

    def display(self) -> None:
        """Display the browser in the cell's output; returned as the same cell's value (the
        last line of ``table = tracker.show()`` or of ``tracker.show()``), it is not drawn a
        second time."""
        from IPython.display import display

        display(self)
        self._shown_in = _execution_count()

    def _ipython_display_(self) -> None:
        # IPython asks this for display() and for a cell's value alike.
        shown_in, self._shown_in = self._shown_in, None
        if shown_in is not None and shown_in == _execution_count():
            return
        from IPython.display import display

        bundle = self._repr_mimebundle_ if callable(self._repr_mimebundle_) else None
        display(bundle() if bundle else {"text/plain": repr(self)}, raw=True)

    def close(self) -> None:
        """Stop live updates and close the widget."""
        self._closed = True
        ticker = getattr(self, "_ticker", None)  # unset when __init__ never ran (bad options)
        if ticker is not None:
            ticker.stop()
        super().close()

    # -- callbacks ---------------------------------------------------------------------

    def _refresh_clicked(self) -> None:
        self.load_choices()
        self.refresh()

    def _ticked(self, change: dict[str, Any]) -> None:
        """The browser ticked or unticked runs of the page (runs on other pages stay)."""
        if self._syncing:
            return
        ticked = set(change["new"])
        page = set(self.rows)
        self.selected = (self.selected - page) | (ticked & page)
        count = len(self.selected)
        self.selection_html.value = h.muted(f"{count:,} selected") if count else ""

    def _toggle_manager(self, change: dict[str, Any]) -> None:
        self.grid.manager_open = change["new"]

    def _manager_toggled(self, change: dict[str, Any]) -> None:
        self.columns_button.value = change["new"]

    def _columns_chosen(self, _: dict[str, Any]) -> None:
        """The column manager changed the columns, their order or the pins."""
        if self._syncing:
            return
        self._chosen = list(self.grid.chosen)
        self._set_columns(self._chosen)
        self._render()

    def _show_error(self, text: str) -> None:
        self._error = text
        self.notice.show(text, kind="error")

    def _clear_error(self) -> None:
        if self._error:
            self._error = ""
            self.notice.clear()


def _execution_count() -> int | None:
    """The number of the cell running now, None outside IPython."""
    from IPython import get_ipython

    shell = get_ipython()
    return None if shell is None else int(shell.execution_count)


def _pinned_first(columns: list[cols.Column], pinned: set[str]) -> list[cols.Column]:
    return ([c for c in columns if c.source in pinned]
            + [c for c in columns if c.source not in pinned])


def _descending_first(key: str) -> bool:
    column = cols.ATTRIBUTE_COLUMNS.get(key)
    return column.descending_first if column else key.startswith("metrics.")


def _waiting_text(catalog: Any) -> Any:
    """For a PostgreSQL catalog with runs of this machine still in its local spool (recorded
    while the server was out of reach), a warning saying how many and how to send them."""
    from tracker.pg_catalog import PgCatalog

    left = catalog.waiting_runs() if isinstance(catalog, PgCatalog) else 0
    if not left:
        return ""
    said = (f"{plural(left, 'run')} recorded on this machine not yet sent to "
            f"{catalog.store.shown} (tracker sync)")
    return h.join(["  ", h.message(said, "warn")])
