"""TrashView: the soft-deleted runs, to restore or, after a second confirmation, to purge.

Paged in the catalog like the runs table (``runs(deleted_only=True, ...)``). Purging is final,
so it is always asked first, naming how many runs go.
"""

from __future__ import annotations

import functools
import itertools
import time
from collections.abc import Callable, Iterable
from typing import Any

import ipywidgets as w
from ipywidgets.widgets.widget_bool import CheckboxStyle
from ipywidgets.widgets.widget_string import HTMLStyle

from tracker import arguments

from . import _html as h
from ._catalog import CatalogLike, resolve_catalog
from ._feedback import ConfirmBar, Notice, button, reporting, styled

_WIDTHS = (260, 150, 100, 180, 150)


class TrashView(w.VBox):
    """Deleted runs: tick some, then Restore, or Purge (for good, after a confirmation).

    ``on_change()`` runs after runs were restored or purged (the runs table refreshes).
    """

    def __init__(self, *, catalog: CatalogLike = None, page_size: int = 25,
                 on_change: Callable[[], None] | None = None) -> None:
        self.page_size = arguments.count(page_size, "page_size", minimum=1)
        self.catalog = resolve_catalog(catalog)
        self.on_change = on_change
        self.offset = 0
        self.total = 0
        self.rows: list[str] = []
        self.selected: set[str] = set()
        self._syncing = False
        layout = w.Layout(width="30px", margin="0")
        cells = w.Layout(width=f"{sum(_WIDTHS)}px", margin="0")
        check_style, html_style = CheckboxStyle(), HTMLStyle()
        self._checks = [w.Checkbox(indent=False, layout=layout, style=check_style)
                        for _ in range(self.page_size)]
        self._cells = [w.HTML(layout=cells, style=html_style) for _ in range(self.page_size)]
        self._lines = [w.HBox([check, html]) for check, html in zip(self._checks, self._cells)]
        for index, check in enumerate(self._checks):
            check.observe(functools.partial(self._ticked, index), "value")
        self.confirmation = ConfirmBar()
        self.notice = Notice()
        self.restore_button = button("Restore selected", self.restore_selected)
        self.purge_button = button("Purge selected…", self.purge_selected, danger=True)
        self.purge_all_button = button("Purge all…", self.purge_all, danger=True)
        self.previous_button = button("‹ Previous", self.previous_page)
        self.next_button = button("Next ›", self.next_page)
        self.summary = w.HTML()
        header = w.HTML(_line(["name", "deleted", "status", "notebook", "started"], head=True))
        super().__init__([
            w.HTML(h.section("Trash")), self.summary,
            w.HBox([self.restore_button, self.purge_button, self.purge_all_button]),
            self.confirmation, self.notice,
            w.HBox([w.HTML(layout=w.Layout(width="30px")), header]), *self._lines,
            w.HBox([self.previous_button, self.next_button]),
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
        self._syncing = True
        try:
            for line, check, cells, record in itertools.zip_longest(
                    self._lines, self._checks, self._cells, records[:self.page_size]):
                if record is None:
                    line.add_class("tracker-hidden")
                    continue
                cells.value = _line([record.get("name") or record["id"],
                                     h.when(record.get("deleted_at")),
                                     h.pill(record.get("status")),
                                     record.get("notebook_name") or h.EMPTY,
                                     h.when(record.get("started_at"))])
                check.value = record["id"] in self.selected
                line.remove_class("tracker-hidden")
        finally:
            self._syncing = False
        empty = "The trash is empty." if not self.total else (
            f"{h.runs_text(self.total)} deleted: restore them, or purge them for good.")
        self.summary.value = h.muted(empty)
        self.purge_all_button.disabled = not self.total
        self.previous_button.disabled = self.offset == 0
        self.next_button.disabled = self.offset + self.page_size >= self.total

    def select(self, ids: Iterable[str]) -> None:
        """Select exactly these runs."""
        self.selected = set(ids)
        self._syncing = True
        try:
            for run_id, check in zip(self.rows, self._checks):
                check.value = run_id in self.selected
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

    def _ticked(self, index: int, change: dict[str, Any]) -> None:
        if self._syncing or index >= len(self.rows):
            return
        (self.selected.add if change["new"] else self.selected.discard)(self.rows[index])

    def _error(self, text: str) -> None:
        self.notice.show(text, kind="error")


def _line(values: list[Any], *, head: bool = False) -> str:
    cls = "tracker-cell tracker-muted" if head else "tracker-cell"
    cells = "".join(f'<span class="{cls}" style="width:{width}px"{_title(value)}>'
                    f"{h.esc(value)}</span>" for width, value in zip(_WIDTHS, values))
    return f'<div class="tracker-cells">{cells}</div>'


def _title(value: Any) -> str:
    """A tooltip with the full text of a cell that may be cut short (markup has none)."""
    return "" if isinstance(value, h.Safe) else f' title="{h.esc(value)}"'
