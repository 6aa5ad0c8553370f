"""Terminal text for the command line: tables that fit the terminal, and values, times, durations
and sizes as short readable text; also the JSON-ready form of what ``--format json`` prints.

Nothing here reads a catalog: it turns what the library returned into lines.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import shutil
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from tracker import values

if TYPE_CHECKING:
    import pandas as pd

#: Column headers of the runs table shorter than the columns' names
HEADERS = {"started_at": "started", "notebook_name": "notebook"}
# Never cut: ids are what the user copies into the next command; a cut time or status says little.
WHOLE = ("id", "status", "started_at")
# How narrow a column may be cut (at most its natural width); others keep their header's width,
# at least _MIN_WIDTH. A name cut to a few characters no longer tells runs apart.
_FLOORS = {"name": 16, "notebook_name": 10}
_MIN_WIDTH = 6
GAP = "  "  # between table columns, and the indent of a section's lines
_ELLIPSIS = "…"


def pairs(rows: Iterable[tuple[str, str]], *, indent: str = GAP) -> list[str]:
    """``key  value`` lines, the values aligned in one column."""
    rows = list(rows)
    width = max((len(key) for key, _ in rows), default=0)
    return [f"{indent}{key.ljust(width)}  {value}" for key, value in rows]


def plural(count: int, noun: str) -> str:
    """``1 run``, ``2 runs``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def write_frame(frame: pd.DataFrame, fmt: str) -> None:
    """Print the frame as ``csv`` or ``json`` (records, JSON-ready)."""
    if fmt == "csv":
        frame.to_csv(sys.stdout, index=False)
        return
    print(json.dumps(plain(_records(frame)), indent=2, ensure_ascii=False))


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as dicts, missing values (NaN, NaT) as None."""
    return frame.astype(object).where(frame.notna(), None).to_dict("records")


def plain(value: Any) -> Any:
    """JSON-ready data: ISO times, lists for arrays and tuples, NaN/inf as JSON text."""
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return plain(value.tolist())
    if isinstance(value, float):
        return values.encode_float(value)
    if value is None or isinstance(value, str | int | bool):
        return value
    return str(value)


def frame_table(frame: pd.DataFrame, formatters: dict[str, Callable[[Any], str]], *,
                 droppable: Sequence[str] = (),
                 short_headers: bool = True) -> tuple[str, list[str]]:
    """The frame as a table that fits the terminal, and the ``droppable`` columns (least
    telling last) it had to leave out. ``short_headers``: ``lr`` for ``params.lr``, and the
    runs table's own names (``started``), else the columns' names as they are."""
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    columns = [str(column) for column in frame.columns]
    texts = [formatters.get(column, cell_text) for column in columns]
    rows = [["" if value is None else text(value)
             for text, value in zip(texts, record.values())] for record in _records(frame)]
    headers = _headers(columns) if short_headers else columns
    natural = [max([len(header), *(len(row[i]) for row in rows)])
               for i, header in enumerate(headers)]
    floor = [width if column in WHOLE else
             min(width, _FLOORS.get(column, max(len(header), _MIN_WIDTH)))
             for column, header, width in zip(columns, headers, natural)]
    budget = shutil.get_terminal_size().columns
    kept = _kept(columns, floor, [c for c in droppable if c in columns], budget)
    widths = _fitted([natural[i] for i in kept], [floor[i] for i in kept],
                     budget - len(GAP) * (len(kept) - 1))
    right = [is_numeric_dtype(frame[columns[i]]) and not is_bool_dtype(frame[columns[i]])
             for i in kept]
    lines = [_table_line([cells[i] for i in kept], widths, right) for cells in [headers, *rows]]
    return "\n".join(lines), [c for i, c in enumerate(columns) if i not in kept]


def _kept(columns: list[str], floor: list[int], droppable: list[str], budget: int) -> list[int]:
    """Indexes of the columns to show: the droppable ones go, last first, until the others'
    narrowest widths (and the gaps between them) fit the budget."""
    kept = list(range(len(columns)))
    for column in reversed(droppable):
        if sum(floor[i] for i in kept) + len(GAP) * (len(kept) - 1) <= budget:
            break
        kept.remove(columns.index(column))
    return kept


def _headers(columns: list[str]) -> list[str]:
    """Short headers: ``params.lr`` is ``lr`` unless another column's key is also ``lr``."""
    full = [HEADERS.get(column, column) for column in columns]
    short = [column.partition(".")[2] if column.startswith(("params.", "metrics.")) else header
             for column, header in zip(columns, full)]
    return [name if short.count(name) == 1 else header for name, header in zip(short, full)]


def _fitted(widths: list[int], floor: list[int], budget: int) -> list[int]:
    """Widths cut to ``budget``, the widest first, none below its floor."""
    widths = list(widths)
    while sum(widths) > budget:
        widest = max(range(len(widths)), key=lambda i: widths[i] - floor[i])
        if widths[widest] <= floor[widest]:
            break
        widths[widest] -= 1
    return widths


def _table_line(cells: list[str], widths: list[int], right: list[bool]) -> str:
    """One line of a table, each cell cut to its width (with an ellipsis) and aligned."""
    parts = []
    for cell, width, flush_right in zip(cells, widths, right):
        text = cell if len(cell) <= width else cell[:width - 1] + _ELLIPSIS
        parts.append(text.rjust(width) if flush_right else text.ljust(width))
    return GAP.join(parts).rstrip()


def cell_text(value: Any) -> str:
    """A value as one line of table text; missing values are blank."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return local_time(value)
    if hasattr(value, "tolist"):
        return cell_text(value.tolist())
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    if isinstance(value, list | tuple):
        return ", ".join(cell_text(item) for item in value)
    if isinstance(value, dict):
        return json.dumps(plain(value), ensure_ascii=False)
    return " ".join(str(value).split())


def local_time(value: dt.datetime, *, seconds: bool = False) -> str:
    """Local wall-clock time with its zone named: in full, or short as ``ls -l`` does, to the
    second either way (runs started in the same minute stay apart)."""
    # A pandas Timestamp too; a naive time is taken as local already.
    local = dt.datetime.fromtimestamp(value.timestamp()).astimezone()
    if seconds or local.year != dt.date.today().year:
        return local.strftime("%Y-%m-%d %H:%M:%S %Z").strip()
    return local.strftime("%b %d %H:%M:%S %Z").strip()


def duration_text(seconds: float) -> str:
    """1.2s, 3m05s, 2h10m, 3d04h."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    if whole >= 86400:
        return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"
    if whole >= 3600:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 60}m{whole % 60:02d}s"


def size_text(size: int | None) -> str:
    """512 B, 1.5 KB, 3.0 GB; blank when unknown."""
    if size is None:
        return ""
    if size < 1024:
        return f"{size} B"
    exponent = min(int(math.log(size, 1024)), 4)
    return f"{size / 1024 ** exponent:.1f} {'BKMGT'[exponent]}B"
