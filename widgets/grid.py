"""RunGrid: one page of runs drawn as a single scrolling grid, with the column manager.

ipywidgets boxes cannot scroll a header and its rows as one, so the grid is a widget of its own
(anywidget: a plain ES module and a style sheet next to this file, no JavaScript build). The
kernel sends only the page shown, as plain text; the browser builds the DOM with ``textContent``,
so no value from a run ever becomes markup. The browser sends back what the user did: the
selection, column widths and the manager's choice as synced values, sorts and opens as events.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import anywidget
import traitlets as t

from . import _columns as cols

_HERE = Path(__file__).parent
Handler = Callable[[str], None]


class RunGrid(anywidget.AnyWidget):
    """The grid's state, mirrored in the browser; :meth:`handle_event` takes what it sends.

    ``columns`` and ``rows`` come from the kernel; ``selected`` (the page's ticked runs),
    ``widths`` (columns the user resized), ``chosen``/``pinned`` (the column manager) and
    ``manager_open`` change on both sides; ``offered`` lists every column the manager offers.
    """

    _esm = _HERE / "grid.js"
    _css = _HERE / "grid.css"
    columns = t.List(t.Dict()).tag(sync=True)
    rows = t.List(t.Dict()).tag(sync=True)
    selected = t.List(t.Unicode()).tag(sync=True)
    order_key = t.Unicode("started_at").tag(sync=True)
    descending = t.Bool(True).tag(sync=True)
    name_width = t.Int(cols.NAME_WIDTH).tag(sync=True)
    widths = t.Dict().tag(sync=True)
    offered = t.List(t.Dict()).tag(sync=True)
    chosen = t.List(t.Unicode()).tag(sync=True)
    pinned = t.List(t.Unicode()).tag(sync=True)
    manager_open = t.Bool(False).tag(sync=True)
    reveal = t.Int(0).tag(sync=True)
    reveal_target = t.Unicode("").tag(sync=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._handlers: dict[str, Handler] = {}
        self.on_msg(lambda _, content, __: self.handle_event(content))

    def on(self, event: str, handler: Handler) -> None:
        """Call ``handler(value)`` for ``"sort"`` (a column's key), ``"open"`` (a run id) or
        ``"reset"`` (the manager's Reset; the value is "")."""
        self._handlers[event] = handler

    def handle_event(self, content: Any) -> None:
        """What the browser sends: ``{"event": "sort", "key": ...}``, ``{"event": "open",
        "id": ...}`` or ``{"event": "reset"}``. Anything else is ignored."""
        if not isinstance(content, dict):
            return
        event = content.get("event")
        handler = self._handlers.get(event) if isinstance(event, str) else None
        value = content.get("id" if event == "open" else "key", "")
        if handler is not None and isinstance(value, str):
            handler(value)

    def show(self, columns: Sequence[cols.Column], records: Sequence[cols.Record], *,
             current: str | None = None) -> None:
        """Display ``records`` under ``columns``; ``current`` is this notebook's run."""
        pinned = set(self.pinned)
        specs = [column.spec(pinned=column.source in pinned) for column in columns]
        with self.hold_sync():
            self.columns = specs
            self.rows = [row(record, columns, current=record["id"] == current)
                         for record in records]

    def bring_into_view(self, target: str) -> None:
        """Scroll the browser to ``"panel"`` (the view opened below) or ``"grid"``."""
        with self.hold_sync():
            self.reveal_target = target
            self.reveal += 1


def row(record: cols.Record, columns: Sequence[cols.Column], *, current: bool) -> dict[str, Any]:
    """One run as the grid draws it: id, name, tooltip and one plain-text cell per column."""
    run_id = str(record["id"])
    name = str(record.get("name") or run_id)
    note = "\nthis notebook's run" if current else ""
    return {"id": run_id, "name": name, "current": current,
            "tip": f"{name}\n{run_id}: click for details{note}",
            "cells": [column.cell(record) for column in columns]}
