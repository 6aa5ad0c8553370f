"""The reusable lines of the runs table: one pool of rows, updated in place page after page.

Each row is a checkbox, a button with the run's name (opens its detail) and one HTML widget of
fixed-width cells. Layouts and styles are shared by all rows: one widget model each instead of
one per row, which keeps the first render and every page change cheap.
"""

from __future__ import annotations

from collections.abc import Sequence

import ipywidgets as w
from ipywidgets.widgets.widget_bool import CheckboxStyle
from ipywidgets.widgets.widget_button import ButtonStyle
from ipywidgets.widgets.widget_string import HTMLStyle

from . import _columns as cols

CURRENT_MARK = "● "


class Shared:
    """Layouts and styles shared by every row: one model each instead of one per widget."""

    def __init__(self) -> None:
        self.check = w.Layout(width=f"{cols.CHECK_WIDTH}px", margin="0")
        self.name = w.Layout(width=f"{cols.NAME_WIDTH}px", margin="0")
        self.cells = w.Layout(width="0px", margin="0")
        self.row = w.Layout(margin="0", flex="none")
        self.check_style = CheckboxStyle()
        self.button_style = ButtonStyle()
        self.html_style = HTMLStyle()
        self._widths: dict[int, w.Layout] = {}

    def width(self, pixels: int) -> w.Layout:
        """A shared fixed-width layout (header buttons are rebuilt when columns change)."""
        if pixels not in self._widths:
            self._widths[pixels] = w.Layout(width=f"{pixels}px", margin="0")
        return self._widths[pixels]


class Row:
    """One reusable line of the table: checkbox, name button (opens the detail) and cells."""

    def __init__(self, shared: Shared) -> None:
        self.check = w.Checkbox(value=False, indent=False, layout=shared.check,
                                style=shared.check_style)
        self.name = w.Button(layout=shared.name, style=shared.button_style)
        self.name.add_class("tracker-link")
        self.cells = w.HTML(layout=shared.cells, style=shared.html_style)
        self.box = w.HBox([self.check, self.name, self.cells], layout=shared.row)
        self.box.add_class("tracker-row")
        self.box.add_class("tracker-hidden")
        self.run_id: str | None = None

    def show(self, record: cols.Record, columns: Sequence[cols.Column], *,
             current: bool) -> None:
        """Display ``record``; only values that changed are sent to the browser."""
        self.run_id = record["id"]
        name = record.get("name") or self.run_id
        self.name.description = CURRENT_MARK + name if current else name
        note = "\nthis notebook's run" if current else ""
        self.name.tooltip = f"{name}\n{self.run_id}: click for details{note}"
        self.cells.value = cols.row_html(columns, record)
        (self.box.add_class if current else self.box.remove_class)("tracker-current")
        self.box.remove_class("tracker-hidden")

    def hide(self) -> None:
        """Hide an unused row (past the last run of the last page)."""
        self.run_id = None
        self.box.add_class("tracker-hidden")
