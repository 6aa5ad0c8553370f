"""Escaping and the small HTML building blocks every view uses, and the one style sheet.

Every string that reaches an ``ipywidgets.HTML`` value is built here. Text is escaped by default:
:func:`esc` for single values, and :func:`table` escapes every cell that is not already
:class:`Safe` (markup this module or :mod:`widgets._plot` built from escaped parts). Colours come
from JupyterLab's CSS variables, so the views follow the light and dark themes.
"""

from __future__ import annotations

import datetime as dt
import html
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from tracker.models import STATUSES

EMPTY = "—"

# Scoped under .tracker-ui so nothing leaks into the rest of the page. Jupyter's variables make
# it native in light and dark themes; the fallbacks cover front ends without them.
STYLE = """
.tracker-ui { color: var(--jp-ui-font-color1, #212121); font-size: var(--jp-ui-font-size1, 13px); }
.tracker-ui .tracker-hidden { display: none !important; }
.tracker-ui .tracker-scroll { overflow-x: auto; }
.tracker-ui .tracker-row, .tracker-ui .tracker-head { flex: none; width: max-content;
  min-width: 100%; align-items: center; }
.tracker-ui .tracker-row > *, .tracker-ui .tracker-head > * { flex: none; }
.tracker-ui .tracker-row { border-bottom: 1px solid var(--jp-border-color2, #e0e0e0); }
.tracker-ui .tracker-row:hover { background: var(--jp-layout-color2, #eeeeee); }
.tracker-ui .tracker-current { box-shadow: inset 3px 0 0 var(--jp-brand-color1, #1976d2); }
.tracker-ui .tracker-head { border-bottom: 2px solid var(--jp-border-color1, #bdbdbd); }
.tracker-ui .tracker-head button { background: transparent; box-shadow: none; font-weight: 600;
  text-align: left; padding: 0 6px; color: var(--jp-ui-font-color1, #212121); }
.tracker-ui .tracker-head button:hover { color: var(--jp-brand-color1, #1976d2); }
.tracker-ui button.tracker-link { background: transparent; box-shadow: none; text-align: left;
  padding: 0 6px; color: var(--jp-brand-color1, #1976d2); }
.tracker-ui button.tracker-link:hover { text-decoration: underline; }
.tracker-ui .tracker-cells { display: flex; white-space: nowrap; }
.tracker-ui .tracker-cell { flex: none; box-sizing: border-box; padding: 0 6px; overflow: hidden;
  text-overflow: ellipsis; white-space: nowrap; }
.tracker-ui .tracker-num { text-align: right; font-variant-numeric: tabular-nums; }
.tracker-ui .tracker-muted { color: var(--jp-ui-font-color2, #757575); }
.tracker-ui .tracker-pill { display: inline-block; border-radius: 9px; padding: 0 8px;
  line-height: 18px; font-size: var(--jp-ui-font-size0, 11px); font-weight: 600;
  color: var(--jp-ui-inverse-font-color1, #ffffff); }
.tracker-ui .tracker-running { background: var(--jp-brand-color1, #1976d2);
  animation: tracker-pulse 1.6s ease-in-out infinite; }
.tracker-ui .tracker-completed { background: var(--jp-success-color1, #388e3c); }
.tracker-ui .tracker-failed { background: var(--jp-error-color1, #d32f2f); }
.tracker-ui .tracker-crashed { background: var(--jp-warn-color1, #f57c00); }
.tracker-ui .tracker-unknown { background: var(--jp-layout-color3, #bdbdbd); }
@keyframes tracker-pulse { 50% { opacity: 0.55; } }
.tracker-ui .tracker-here { color: var(--jp-brand-color1, #1976d2); font-weight: 600; }
.tracker-ui .tracker-chip { display: inline-block; border-radius: 3px; padding: 0 5px;
  margin-right: 3px; line-height: 16px; background: var(--jp-layout-color2, #eeeeee);
  border: 1px solid var(--jp-border-color2, #e0e0e0); font-size: var(--jp-ui-font-size0, 11px); }
.tracker-ui .tracker-error { color: var(--jp-error-color1, #d32f2f); }
.tracker-ui .tracker-ok { color: var(--jp-success-color1, #388e3c); }
.tracker-ui .tracker-warn { color: var(--jp-warn-color1, #f57c00); }
.tracker-ui .tracker-bar { padding: 4px 8px; border-radius: 3px; align-items: center;
  flex-wrap: wrap; gap: 4px; background: var(--jp-layout-color2, #eeeeee);
  color: var(--jp-ui-font-color1, #212121);
  border-left: 4px solid var(--jp-brand-color1, #1976d2); }
.tracker-ui .tracker-bar .tracker-code { background: transparent; }
.tracker-ui .tracker-bar-danger, .tracker-ui .tracker-bar-error {
  border-left-color: var(--jp-error-color1, #d32f2f); }
.tracker-ui .tracker-bar-warn { border-left-color: var(--jp-warn-color1, #f57c00); }
.tracker-ui .tracker-bar-ok { border-left-color: var(--jp-success-color1, #388e3c); }
.tracker-ui button.tracker-bar-button { color: var(--jp-ui-font-color1, #212121);
  background: var(--jp-layout-color0, #ffffff); border: 1px solid var(--jp-border-color1, #9e9e9e);
  border-radius: 3px; }
.tracker-ui button.tracker-bar-button:hover { background: var(--jp-layout-color3, #bdbdbd); }
.tracker-ui .tracker-wrap, .tracker-ui .tracker-wrap > .widget-box,
.tracker-ui .tracker-wrap > .jupyter-widgets.widget-hbox { flex-wrap: wrap; row-gap: 4px; }
.tracker-ui .tracker-wrap button, .tracker-ui .tracker-wrap .widget-inline-hbox { flex: none; }
.tracker-ui .tracker-panel { border-top: 1px solid var(--jp-border-color2, #e0e0e0);
  margin-top: 6px; padding-top: 4px; }
.tracker-ui table.tracker-table { border-collapse: collapse; margin: 2px 0 8px 0; }
.tracker-ui table.tracker-table th, .tracker-ui table.tracker-table td { text-align: left;
  padding: 2px 10px 2px 4px; border-bottom: 1px solid var(--jp-border-color2, #e0e0e0);
  vertical-align: top; max-width: 480px; overflow-wrap: break-word; }
.tracker-ui table.tracker-table th { font-weight: 600; color: var(--jp-ui-font-color2, #616161); }
.tracker-ui td.tracker-differs, .tracker-ui th.tracker-differs {
  background: rgba(245, 124, 0, 0.18);
  background: color-mix(in srgb, var(--jp-warn-color1, #f57c00) 22%, transparent); }
.tracker-ui .tracker-title { font-size: var(--jp-ui-font-size2, 15px); font-weight: 600; }
.tracker-ui h4.tracker-section { margin: 10px 0 2px 0; font-size: var(--jp-ui-font-size1, 13px); }
.tracker-ui pre.tracker-code { margin: 0; padding: 2px 4px; white-space: pre-wrap;
  background: var(--jp-cell-editor-background, #f7f7f7);
  font-size: var(--jp-code-font-size, 12px); }
.tracker-ui svg.tracker-plot { vertical-align: middle; }
.tracker-ui .tracker-plot-line { fill: none; stroke: var(--jp-brand-color1, #1976d2);
  stroke-width: 1.5; }
.tracker-ui .tracker-plot-axis { stroke: var(--jp-border-color1, #bdbdbd); stroke-width: 1; }
.tracker-ui .tracker-plot-text { fill: var(--jp-ui-font-color2, #757575); font-size: 10px; }
.tracker-ui .tracker-plot-grid { stroke: var(--jp-border-color2, #e0e0e0); stroke-width: 1; }
.tracker-ui .tracker-plot-point { fill-opacity: 0.25; cursor: crosshair; }
.tracker-ui .tracker-plot-point:hover { fill-opacity: 1; }
.tracker-ui td.tracker-best { font-weight: 700; }
.tracker-ui .tracker-path { overflow-wrap: anywhere; }
.tracker-ui .tracker-filter-invalid ~ :not(.tracker-panel) { opacity: 0.45; }
.tracker-ui .tracker-parallel-line { fill: none; stroke-width: 1; stroke-opacity: 0.55; }
.tracker-ui .tracker-parallel-line:hover { stroke-width: 3; stroke-opacity: 1; }
.tracker-ui .tracker-files { max-width: 100%; }
.tracker-ui th.tracker-group { padding-top: 8px; color: var(--jp-ui-font-color1, #212121); }
"""


class Safe(str):
    """Markup built from escaped parts: :func:`table` and :func:`join` insert it as is."""

    __slots__ = ()


def esc(value: Any) -> str:
    """``value`` as text safe inside HTML, quotes included (so it also fits attributes)."""
    if isinstance(value, Safe):
        return value
    return html.escape("" if value is None else str(value), quote=True)


def join(parts: Iterable[Any], separator: str = "") -> Safe:
    """Concatenate parts, escaping every one that is not :class:`Safe`."""
    return Safe(esc(separator).join(esc(part) for part in parts))


def tag(name: str, content: Any = "", *, cls: str = "", title: Any = None) -> Safe:
    """``<name class=... title=...>content</name>``; content and title are escaped unless Safe.

    ``name`` and ``cls`` are this package's constants, never user text.
    """
    attributes = f' class="{cls}"' if cls else ""
    if title is not None:
        attributes += f' title="{esc(title)}"'
    return Safe(f"<{name}{attributes}>{esc(content)}</{name}>")


def style_block() -> str:
    """The ``<style>`` element of every view (a constant: holds no user text)."""
    return f"<style>{STYLE}</style>"


def pill(status: Any) -> Safe:
    """A coloured status pill; running pulses, completed/failed/crashed have their own colour."""
    text = str(status or "unknown")
    known = text if text in STATUSES else "unknown"
    return tag("span", text, cls=f"tracker-pill tracker-{known}", title=f"status: {text}")


def chips(labels: Any) -> Safe:
    """Labels as small chips."""
    return join(tag("span", label, cls="tracker-chip") for label in _as_list(labels))


def muted(text: Any) -> Safe:
    """Secondary text (hints, missing values)."""
    return tag("span", text, cls="tracker-muted")


def message(text: Any, kind: str = "info") -> Safe:
    """A one-line message coloured by ``kind``: info, ok, warn or error."""
    cls = {"ok": "tracker-ok", "warn": "tracker-warn", "error": "tracker-error"}.get(kind, "")
    return tag("span", text, cls=cls)


def table(headers: Sequence[Any], rows: Iterable[Sequence[Any]], *,
          differing: Sequence[bool] | None = None) -> Safe:
    """An HTML table; every cell is escaped unless Safe. ``differing`` marks highlighted rows."""
    head = "".join(f"<th>{esc(header)}</th>" for header in headers)
    body = []
    for index, row in enumerate(rows):
        cls = ' class="tracker-differs"' if differing and differing[index] else ""
        body.append("<tr>" + "".join(f"<td{cls}>{esc(cell)}</td>" for cell in row) + "</tr>")
    return Safe(f'<table class="tracker-table"><thead><tr>{head}</tr></thead>'
                f'<tbody>{"".join(body)}</tbody></table>')


def details(summary: Any, content: Any) -> Safe:
    """A native collapsible ``<details>`` block: no widget, no script."""
    return Safe(f"<details><summary>{esc(summary)}</summary>{esc(content)}</details>")


def section(title: Any) -> Safe:
    """A section heading inside a view."""
    return tag("h4", title, cls="tracker-section")


def code(text: Any) -> Safe:
    """Preformatted source text."""
    return tag("pre", text, cls="tracker-code")


# -- values to text ---------------------------------------------------------------------------


def is_missing(value: Any) -> bool:
    """None, NaN and pandas' NA/NaT: the values shown as a dash."""
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN, NaT and NA are not equal to themselves
    except (TypeError, ValueError):  # pd.NA raises on bool(); arrays are never missing
        return False


def number(value: Any) -> str:
    """A metric or numeric param, short: 4 significant digits, thousands kept readable."""
    if is_missing(value):
        return EMPTY
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()
                                  and abs(value) < 1e15):
        return f"{int(value):,}" if abs(value) >= 10_000 else str(int(value))
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    try:
        return f"{float(value):.4g}"
    except (TypeError, ValueError):
        return str(value)


def value_text(value: Any) -> str:
    """A param value as text: numbers short, booleans lower case, containers as JSON-ish."""
    if is_missing(value):
        return EMPTY
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return number(value)
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        return value_text(value.item()) if getattr(value, "size", 1) == 1 else str(value)
    return str(value)


def when(value: Any) -> str:
    """A timestamp in the user's local time to the second, its zone stated
    ("2026-05-01 14:03:27 CET"): runs started in the same minute stay apart."""
    return _local(value, "%Y-%m-%d %H:%M:%S %Z")


def iso(value: Any) -> str:
    """The same as :func:`when`, for tooltips and detail views."""
    return when(value)


def _local(value: Any, layout: str) -> str:
    if is_missing(value):
        return EMPTY
    if hasattr(value, "to_pydatetime"):  # pandas' Timestamp
        value = value.to_pydatetime()
    if not isinstance(value, dt.datetime):
        return str(value)
    # A naive time is taken as local already; astimezone() then only names the zone.
    return value.astimezone().strftime(layout).strip()


def duration(seconds: Any) -> str:
    """Seconds as "850 ms", "12.3 s", "4 min 05 s", "2 h 07 min" or "3 d 04 h"."""
    if is_missing(seconds):
        return EMPTY
    value = float(seconds)
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 60:
        return f"{value:.1f} s"
    minutes, secs = divmod(int(value), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours:02d} h"


def size(value: Any) -> str:
    """A byte count as "1.2 MB"."""
    if is_missing(value):
        return EMPTY
    amount, unit = float(value), "B"
    for larger in ("kB", "MB", "GB", "TB"):
        if amount < 1000:
            break
        amount, unit = amount / 1000, larger
    return f"{amount:.0f} B" if unit == "B" else f"{amount:.1f} {unit}"


def runs_text(count: int) -> str:
    """"1 run", "2 runs", "1,024 runs"."""
    return f"{count:,} run" if count == 1 else f"{count:,} runs"


def _as_list(labels: Any) -> list[str]:
    if labels is None or isinstance(labels, float):  # pandas gives NaN for a missing list
        return []
    if isinstance(labels, str):
        return [labels]
    return [str(label) for label in labels]


def attributes_table(pairs: Mapping[str, Any]) -> Safe:
    """Two-column key/value table without a header row (for run facts)."""
    rows = "".join(f"<tr><th>{esc(key)}</th><td>{esc(value)}</td></tr>"
                   for key, value in pairs.items())
    return Safe(f'<table class="tracker-table"><tbody>{rows}</tbody></table>')
