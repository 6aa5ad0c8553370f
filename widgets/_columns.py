"""The runs table's columns: what each shows, how wide it is, and how it sorts.

A column's ``key`` is its field in the filter language (``status``, ``params.lr``,
``metrics.`top-1 acc```), which is what the catalog sorts by; ``source`` is its column in the
DataFrame :meth:`tracker.Catalog.runs` returns. Cells render to escaped HTML with fixed widths,
so one HTML widget per row lines up under the header buttons.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tracker import query

from . import _html as h
from .filters import field_name

Record = Mapping[str, Any]
Cell = tuple[str, str]  # (escaped HTML content, plain-text tooltip)

NAME_WIDTH = 190
CHECK_WIDTH = 30
MAX_AUTO_PARAMS = 3
MAX_AUTO_METRICS = 3


@dataclass(frozen=True)
class Column:
    """One column: its sort field, DataFrame column, header, width in px and cell renderer."""

    key: str
    source: str
    title: str
    width: int
    render: Callable[[Any, Record], Cell]
    numeric: bool = False
    descending_first: bool = False  # newest, longest and biggest first on the first click
    icon: str = ""  # a Font Awesome name telling params from metrics in the header

    def cell(self, record: Record) -> str:
        """The escaped ``<span>`` of this column for one run."""
        content, tip = self.render(record.get(self.source), record)
        cls = "tracker-cell tracker-num" if self.numeric else "tracker-cell"
        return (f'<span class="{cls}" style="width:{self.width}px" title="{h.esc(tip)}">'
                f"{content}</span>")


def _text(value: Any, _: Record) -> Cell:
    text = h.value_text(value)
    return h.esc(text), text


def _notebook(value: Any, record: Record) -> Cell:
    path = record.get("notebook")
    name = value if not h.is_missing(value) else (
        os.path.basename(path) if isinstance(path, str) else None)
    if name is None:
        return h.muted(h.EMPTY), "no notebook recorded"
    return h.esc(name), path if isinstance(path, str) else str(name)


def _status(value: Any, record: Record) -> Cell:
    error = record.get("error")
    tip = f"{value}: {error}" if isinstance(error, str) and error else str(value)
    return h.pill(value), tip


def _time(value: Any, _: Record) -> Cell:
    return h.esc(h.when(value)), h.iso(value)


def _duration(value: Any, record: Record) -> Cell:
    text = h.duration(value)
    return h.esc(text), f"{text} so far" if record.get("status") == "running" else text


def _labels(value: Any, _: Record) -> Cell:
    labels = [] if value is None or isinstance(value, float) else [str(v) for v in value]
    return h.chips(labels), ", ".join(labels)


def _number(value: Any, _: Record) -> Cell:
    text = h.number(value)
    return h.esc(text), "" if h.is_missing(value) else repr(value)


def _param(value: Any, record: Record) -> Cell:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _number(value, record)
    return _text(value, record)


def _attribute(key: str, title: str, width: int, render: Callable[[Any, Record], Cell] = _text,
               *, numeric: bool = False, descending_first: bool = False,
               source: str | None = None) -> Column:
    return Column(key, source or key, title, width, render, numeric, descending_first)


ATTRIBUTE_COLUMNS: dict[str, Column] = {column.key: column for column in (
    _attribute("notebook_name", "notebook", 130, _notebook),
    _attribute("status", "status", 96, _status),
    _attribute("started_at", "started", 136, _time, descending_first=True),
    _attribute("duration", "duration", 84, _duration, numeric=True, descending_first=True),
    _attribute("labels", "labels", 120, _labels),
    _attribute("project", "project", 110),
    _attribute("ended_at", "ended", 136, _time, descending_first=True),
    _attribute("user", "user", 90),
    _attribute("host", "host", 100),
    _attribute("id", "id", 150),
    _attribute("notes", "notes", 180),
)}
DEFAULT_ATTRIBUTES = ("notebook_name", "status", "started_at", "duration", "labels")


def data_column(source: str) -> Column:
    """The column of a ``params.<key>`` or ``metrics.<key>`` DataFrame column."""
    namespace, _, key = source.partition(".")
    if namespace == "metrics":
        return Column(field_name("metrics", key), source, key, 96, _number, numeric=True,
                      descending_first=True, icon="line-chart")
    return Column(field_name("params", key), source, key, 100, _param, icon="sliders")


def column_for(name: str) -> Column:
    """A column from a chooser value: an attribute key or a ``params.``/``metrics.`` column."""
    if name in ATTRIBUTE_COLUMNS:
        return ATTRIBUTE_COLUMNS[name]
    return data_column(name)


def data_sources(frame_columns: Sequence[str]) -> list[str]:
    """The params and metrics columns of a runs DataFrame, params first."""
    params = [c for c in frame_columns if c.startswith("params.")]
    metrics = [c for c in frame_columns if c.startswith("metrics.")]
    return params + metrics


def default_columns(known: Sequence[str]) -> list[str]:
    """The usual attributes plus the first few params and metrics seen."""
    params = [c for c in known if c.startswith("params.")][:MAX_AUTO_PARAMS]
    metrics = [c for c in known if c.startswith("metrics.")][:MAX_AUTO_METRICS]
    return [*DEFAULT_ATTRIBUTES, *params, *metrics]


def sort_text(key: str, *, descending: bool) -> str:
    """``key`` checked as a field (FilterSyntaxError if unknown) and written as a sort key."""
    namespace, field = query.parse_key(key)
    return f"{field_name(namespace, field)} {'DESC' if descending else 'ASC'}"


def sort_column(key: str) -> str:
    """The canonical field text of a sort key, to compare with columns' keys."""
    namespace, field = query.parse_key(key)
    if namespace == "attributes":
        return {"username": "user"}.get(field, field)
    return field_name(namespace, field)


def row_html(columns: Sequence[Column], record: Record) -> str:
    """One row's cells (everything right of the name button)."""
    return '<div class="tracker-cells">' + "".join(c.cell(record) for c in columns) + "</div>"


def cells_width(columns: Sequence[Column]) -> int:
    """Total width in px of the cells of ``columns``."""
    return sum(column.width for column in columns)
