"""TrashView: the soft-deleted runs, to restore or, after a second confirmation, to purge.

Paged in the catalog like the runs table (``runs(deleted_only=True, ...)``) and drawn by the
same grid: project, the params most of the page's runs have, a select-all box, and names that
open the run. Purging is final, so it is always asked first, naming how many runs go.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable
from typing import Any

import ipywidgets as w

from tracker import arguments

from . import _columns as cols
from . import _html as h
from ._catalog import CatalogLike, resolve_catalog
from ._feedback import ConfirmBar, Notice, button, reporting, styled
from .grid import RunGrid

_DELETED = cols.attribute("deleted_at", "deleted", 150, cols.time_cell)
_ATTRIBUTES = [_DELETED, *(cols.ATTRIBUTE_COLUMNS[key] for key in
                           ("project", "status", "notebook_name", "started_at"))]
MAX_PARAMS = 4


class TrashView(w.VBox):
    """Deleted runs: tick some, then Restore, or Purge (for good, after a confirmation).

    ``on_change()`` runs after runs were restored or purged (the runs table refreshes);
    ``on_open(run_id)`` when a run's name is clicked (default: nothing).
    """

    def __init__(self, *, catalog: CatalogLike = None, page_size: int = 25,
                 on_change: Callable[[], None] | None = None,
                 on_open: Callable[[str], None] | None = None) -> None:
        self.page_size = arguments.count(page_size, "page_size", minimum=1)
        self.catalog = resolve_catalog(catalog)
        self.on_change = on_change
        self.offset = 0
        self.total = 0
        self.rows: list[str] = []
        self.selected: set[str] = set()
        self._syncing = False
        self.grid = RunGrid(order_key="deleted_at")
        self.grid.observe(self._ticked, "selected")
        if on_open is not None:
            self.grid.on("open", on_open)
        self.grid.on("sort", lambda _: None)  # one order: the latest deleted first
        self.confirmation = ConfirmBar()
        self.notice = Notice()
        self.restore_button = button("Restore selected", self.restore_selected)
        self.purge_button = button("Purge selected…", self.purge_selected, danger=True)
        self.purge_all_button = button("Purge all…", self.purge_all, danger=True)
        self.previous_button = button("‹ Previous", self.previous_page)
        self.next_button = button("Next ›", self.next_page)
        self.summary = w.HTML()
        actions = w.HBox([self.restore_button, self.purge_button, self.purge_all_button])
        actions.add_class("tracker-wrap")
        super().__init__([
            w.HTML(h.section("Trash")), self.summary, actions, self.confirmation, self.notice,
            self.grid, w.HBox([self.previous_button, self.next_button]),
        ])
        styled(self)
        self.refresh()

    def refresh(self) -> None:
        """Re-read the page of deleted runs and their number."""
        with reporting(self._error):
            frame = self.catalog.runs(deleted_only=True, order_by="deleted_at DESC",
                                      limit=self.page_size, offset=self.offset)
            self.total = frame.attrs["total"]
            if frame.empty and self.offset:
                self.offset = 0
                frame = self.catalog.runs(deleted_only=True, order_by="deleted_at DESC",
                                          limit=self.page_size)
            self._show(frame.to_dict("records"))

    def _show(self, records: list[dict[str, Any]]) -> None:
        self.rows = [record["id"] for record in records]
        params = [key for key in cols.default_columns(
            cols.data_sources(list(records[0]) if records else []), records)
            if key.startswith("params.")][:MAX_PARAMS]
        self.grid.show([*_ATTRIBUTES, *map(cols.data_column, params)], records)
        self._sync_ticks()
        empty = "The trash is empty." if not self.total else (
            f"{h.runs_text(self.total)} deleted: restore them, or purge them for good.")
        self.summary.value = h.muted(empty)
        self.purge_all_button.disabled = not self.total
        self.previous_button.disabled = self.offset == 0
        self.next_button.disabled = self.offset + self.page_size >= self.total

    def select(self, ids: Iterable[str]) -> None:
        """Select exactly these runs."""
        self.selected = set(ids)
        self._sync_ticks()

    def _sync_ticks(self) -> None:
        self._syncing = True
        try:
            self.grid.selected = [run_id for run_id in self.rows if run_id in self.selected]
        finally:
            self._syncing = False

    def restore_selected(self) -> None:
        """Bring the selected runs back to the runs table (no confirmation: nothing is lost)."""
        if not self.selected:
            self.notice.show("Select runs to restore first.", kind="warn")
            return
        with reporting(self._error):
            restored = self.catalog.restore_runs(sorted(self.selected))
            self.selected.clear()
            self._changed(f"{h.runs_text(len(restored))} restored.")

    def purge_selected(self) -> None:
        """Ask to purge the selected runs for good; nothing happens until Confirm."""
        if not self.selected:
            self.notice.show("Select runs to purge first.", kind="warn")
            return
        ids = sorted(self.selected)
        self.confirmation.ask(
            f"Permanently delete {h.runs_text(len(ids))} and everything recorded about them? "
            "This cannot be undone.", confirm=f"Purge {h.runs_text(len(ids))}",
            action=functools.partial(self._purge, ids=ids))

    def purge_all(self) -> None:
        """Ask to purge every run in the trash; nothing happens until Confirm."""
        if not self.total:
            self.notice.show("The trash is empty.")
            return
        asked_at = time.time()
        self.confirmation.ask(
            f"Permanently delete all {h.runs_text(self.total)} in the trash? "
            "This cannot be undone.",
            confirm=f"Purge all {h.runs_text(self.total)}",
            action=functools.partial(self._purge, asked_at=asked_at))

    def _purge(self, *, ids: list[str] | None = None, asked_at: float | None = None) -> None:
        with reporting(self._error):
            if ids is not None:
                removed = self.catalog.purge(ids=ids)
            else:
                # Only what was in the trash when the user was asked: a run deleted since then
                # (by another notebook, say) is younger than the time elapsed, so it stays.
                # The age is relative, so the call's own start-up (lock wait) blurs the cut.
                removed = self.catalog.purge(older_than=time.time() - (asked_at or 0.0))
            self.selected.clear()
            self._changed(f"{h.runs_text(removed['runs'])} purged.")

    def next_page(self) -> None:
        """Show the next page of deleted runs."""
        if self.offset + self.page_size < self.total:
            self.offset += self.page_size
            self.refresh()

    def previous_page(self) -> None:
        """Show the previous page of deleted runs."""
        if self.offset:
            self.offset = max(0, self.offset - self.page_size)
            self.refresh()

    def _changed(self, text: str) -> None:
        self.refresh()
        self.notice.show(text, kind="ok")
        if self.on_change is not None:
            self.on_change()

    def _ticked(self, change: dict[str, Any]) -> None:
        """The browser ticked or unticked runs of the page (select-all included)."""
        if not self._syncing:
            page = set(self.rows)
            self.selected = (self.selected - page) | (set(change["new"]) & page)

    def _error(self, text: str) -> None:
        self.notice.show(text, kind="error")
