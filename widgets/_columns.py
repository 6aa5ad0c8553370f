"""The runs table's columns: what each shows, how wide it is, and how it sorts.

A column's ``key`` is its field in the filter language (``status``, ``params.lr``,
``metrics.`top-1 acc```), which is what the catalog sorts by; ``source`` is its column in the
DataFrame :meth:`tracker.Catalog.runs` returns. Cells are plain text (with a tooltip and a style
from a fixed set) that the grid writes with ``textContent``: nothing here is markup.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tracker import filter_language
from tracker.models import STATUSES

from . import _html as h
from .filters import field_name

Record = Mapping[str, Any]
Cell = dict[str, Any]  # {"t": text, "tip": tooltip, "c": style, "l": labels}: all plain text

NAME_WIDTH = 190
CHECK_WIDTH = 30
MAX_AUTO_PARAMS = 4
MAX_AUTO_METRICS = 4
MAX_AUTO_DATA = 7  # params and metrics shown by default, rare params last
COMMON = 0.5  # a param set on at least this share of the runs shown is common


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

    @property
    def kind(self) -> str:
        """``param``, ``metric`` or ``attribute``."""
        return {"sliders": "param", "line-chart": "metric"}.get(self.icon, "attribute")

    def cell(self, record: Record) -> Cell:
        """This column's plain-text cell for one run."""
        return self.render(record.get(self.source), record)

    def spec(self, *, pinned: bool = False) -> dict[str, Any]:
        """The column as the grid's header needs it."""
        return {"key": self.key, "source": self.source, "title": self.title, "width": self.width,
                "numeric": self.numeric, "kind": self.kind, "pinned": pinned,
                "tip": self.source}


def _cell(text: str, tip: str = "", style: str = "") -> Cell:
    return {"t": text, "tip": tip, "c": style}


def _text(value: Any, _: Record) -> Cell:
    text = h.value_text(value)
    return _cell(text, text, "muted" if h.is_missing(value) else "")


def _notebook(value: Any, record: Record) -> Cell:
    path = record.get("notebook")
    name = value if not h.is_missing(value) else (
        os.path.basename(path) if isinstance(path, str) else None)
    if name is None:
        return _cell(h.EMPTY, "no notebook recorded", "muted")
    return _cell(str(name), path if isinstance(path, str) else str(name))


def _status(value: Any, record: Record) -> Cell:
    error = record.get("error")
    tip = f"{value}: {error}" if isinstance(error, str) and error else str(value)
    text = str(value or "unknown")
    return _cell(text, tip, "pill-" + (text if text in STATUSES else "unknown"))


def time_cell(value: Any, _: Record) -> Cell:
    return _cell(h.when(value), h.iso(value))


def _duration(value: Any, record: Record) -> Cell:
    text = h.duration(value)
    return _cell(text, f"{text} so far" if record.get("status") == "running" else text)


def _labels(value: Any, _: Record) -> Cell:
    labels = [] if value is None or isinstance(value, float) else [str(v) for v in value]
    return {"t": ", ".join(labels), "tip": ", ".join(labels), "c": "", "l": labels}


def _number(value: Any, _: Record) -> Cell:
    text = h.number(value)
    missing = h.is_missing(value)
    return _cell(text, "" if missing else repr(value), "muted" if missing else "")


def _param(value: Any, record: Record) -> Cell:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _number(value, record)
    return _text(value, record)


def attribute(key: str, title: str, width: int,
              render: Callable[[Any, Record], Cell] | None = None, *, numeric: bool = False,
              descending_first: bool = False, source: str | None = None) -> Column:
    """A column of a run attribute (``status``, ``deleted_at``...); text unless ``render``."""
    render = render or _text
    return Column(key, source or key, title, width, render, numeric, descending_first)


ATTRIBUTE_COLUMNS: dict[str, Column] = {column.key: column for column in (
    attribute("notebook_name", "notebook", 130, _notebook),
    attribute("status", "status", 96, _status),
    attribute("started_at", "started", 136, time_cell, descending_first=True),
    attribute("duration", "duration", 84, _duration, numeric=True, descending_first=True),
    attribute("labels", "labels", 120, _labels),
    attribute("project", "project", 110),
    attribute("ended_at", "ended", 136, time_cell, descending_first=True),
    attribute("user", "user", 90),
    attribute("host", "host", 100),
    attribute("id", "id", 150),
    attribute("notes", "notes", 180),
)}
DEFAULT_ATTRIBUTES = ("notebook_name", "project", "status", "started_at", "duration", "labels")


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


def default_columns(known: Sequence[str], records: Sequence[Record]) -> list[str]:
    """The usual attributes, then the params most runs shown have, the metrics, and rare params.

    The notebook column is left out while every run's name already starts with its notebook's
    name (notebook runs are named after their notebook).
    """
    attributes = [key for key in DEFAULT_ATTRIBUTES
                  if key != "notebook_name" or not _names_carry_notebooks(records)]
    shown = max(len(records), 1)
    usage = {key: sum(not h.is_missing(r.get(key)) for r in records) for key in known}
    by_use = sorted(known, key=lambda key: -usage[key])  # stable: first seen breaks ties
    params = [key for key in by_use if key.startswith("params.") and usage[key]]
    common = [key for key in params if usage[key] / shown >= COMMON][:MAX_AUTO_PARAMS]
    metrics = [key for key in by_use if key.startswith("metrics.") and usage[key]]
    data = [*common, *metrics[:MAX_AUTO_METRICS]]
    data += [key for key in params if key not in common][:max(MAX_AUTO_DATA - len(data), 0)]
    return [*attributes, *data]


def _names_carry_notebooks(records: Sequence[Record]) -> bool:
    for record in records:
        notebook = record.get("notebook_name")
        if h.is_missing(notebook):
            continue
        stem = os.path.splitext(str(notebook))[0]
        if not str(record.get("name") or "").startswith(stem):
            return False
    return True


def sort_text(key: str, *, descending: bool) -> str:
    """``key`` checked as a field (FilterSyntaxError if unknown) and written as a sort key."""
    namespace, field = filter_language.parse_key(key)
    return f"{field_name(namespace, field)} {'DESC' if descending else 'ASC'}"


def sort_column(key: str) -> str:
    """The canonical field text of a sort key, to compare with columns' keys."""
    namespace, field = filter_language.parse_key(key)
    if namespace == "attributes":
        return {"username": "user"}.get(field, field)
    return field_name(namespace, field)
