"""RunCharts: charts across the filtered runs, as MLflow's compare page and W&B's panels draw.

A parallel-coordinates plot (an axis per chosen param, the chosen metric last, a line per run
coloured by that metric) and a scatter of any param or metric against any metric. Thousands of
runs stay fast because the catalog hands over a fixed sample of at most ``limit`` runs and only
the fields drawn (:mod:`tracker.samples`); the SVG is written here from numbers and escaped text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ipywidgets as w

from tracker import samples

from . import _html as h
from ._catalog import CatalogLike, resolve_catalog
from ._feedback import styled
from ._plot import Frame, point_mark, svg, text, ticks

MAX_AXES = 6  # params on the parallel-coordinates plot by default
PARALLEL_WIDTH, PARALLEL_HEIGHT = 720, 280
SCATTER_WIDTH, SCATTER_HEIGHT = 560, 300


class RunCharts(w.VBox):
    """Charts over the runs a filter matches (None: every run outside the trash).

    ``set_filter(text)`` redraws for another filter: the runs table calls it as its filter
    changes. ``limit`` runs at most are drawn, sampled in the catalog.
    """

    def __init__(self, where: str | None = None, *, catalog: CatalogLike = None,
                 limit: int = samples.DEFAULT_LIMIT) -> None:
        self.catalog = resolve_catalog(catalog)
        self.where = where
        self.limit = limit
        keys = self.catalog.keys()
        params = [k for k in keys if k.startswith("params.")]
        metrics = [k for k in keys if k.startswith("metrics.")]
        self.metric = w.Dropdown(options=metrics, value=metrics[0] if metrics else None,
                                 description="metric", layout=w.Layout(width="auto"))
        self.axes = w.SelectMultiple(options=params, value=tuple(params[:MAX_AXES]),
                                     description="params", rows=min(6, max(len(params), 1)),
                                     layout=w.Layout(width="auto"))
        either = params + metrics
        self.x = w.Dropdown(options=either, value=either[0] if either else None,
                            description="x", layout=w.Layout(width="auto"))
        self.y = w.Dropdown(options=metrics, value=metrics[0] if metrics else None,
                            description="y", layout=w.Layout(width="auto"))
        self.note = w.HTML()
        self.parallel = w.HTML()
        self.scatter = w.HTML()
        self._sample: samples.Sample | None = None  # the fields read so far, for this filter
        for control in (self.metric, self.axes):
            control.observe(lambda _: self.draw(scatter=False), "value")
        for control in (self.x, self.y):
            control.observe(lambda _: self.draw(parallel=False), "value")
        super().__init__([
            w.HTML(h.section("Params to a metric")), w.HBox([self.metric, self.axes]),
            self.parallel, w.HTML(h.section("Scatter")), w.HBox([self.x, self.y]),
            self.scatter, self.note])
        styled(self)
        self.draw()

    def set_filter(self, where: str | None) -> None:
        """Draw the runs matching ``where`` instead."""
        self.where = where
        self._sample = None
        self.draw()

    def draw(self, *, parallel: bool = True, scatter: bool = True) -> None:
        """Redraw the charts asked for; the catalog is read only for fields not read yet."""
        metric, axes = self.metric.value, list(self.axes.value)
        fields = [f for f in [*axes, metric, self.x.value, self.y.value] if f]
        if not fields:
            self.note.value = h.muted("no params or metrics recorded yet")
            self.parallel.value = self.scatter.value = ""
            return
        drawn = self._read(fields)
        self.note.value = h.muted(_sampled(len(drawn.runs), drawn.total))
        if parallel:
            self.parallel.value = parallel_plot(drawn.runs, axes, metric) \
                if metric and axes else ""
        if scatter:
            self.scatter.value = scatter_plot(drawn.runs, self.x.value, self.y.value) \
                if self.x.value and self.y.value else ""

    def _read(self, fields: Sequence[str]) -> samples.Sample:
        """The sample with ``fields``: one query for every field shown, when one is new."""
        known = self._sample
        if known is not None and set(fields) <= set(known.runs.columns):
            return known
        wanted = [*(known.runs.columns[2:] if known is not None else ()), *fields]
        self._sample = samples.sample(self.catalog, self.where, wanted, limit=self.limit)
        return self._sample


def _sampled(shown: int, total: int) -> str:
    if shown == total:
        return f"{h.runs_text(total)} drawn"
    return f"{shown:,} of {h.runs_text(total)} drawn (a fixed sample, chosen in the catalog)"


def _colour(fraction: float) -> str:
    """Low metric values blue, high ones red (hue 220 to 10)."""
    return f"hsl({220 - 210 * fraction:.0f}, 70%, 45%)"


def _label(field: str) -> str:
    return field.split(".", 1)[1]


def parallel_plot(runs: Any, axes: Sequence[str], metric: str) -> h.Safe:
    """An axis per param and the metric last; a line per run with every value, coloured by
    the metric, its values as the line's tooltip."""
    columns = [*axes, metric]
    scaled = [samples.numbers(runs[field].tolist()) for field in columns]
    shown = [_texts(runs[field].tolist()) for field in columns]
    names = [str(name) for name in runs["name"].tolist()]
    left, right, top, bottom = 40, PARALLEL_WIDTH - 60, 24, PARALLEL_HEIGHT - 24
    gap = (right - left) / max(len(columns) - 1, 1)
    spans = [_span([v for v in positions if v is not None]) for positions, _ in scaled]
    low, high = spans[-1]
    parts = []
    for index, field in enumerate(columns):
        x = left + index * gap
        parts.append(f'<line class="tracker-plot-axis" x1="{x:.1f}" y1="{top}" x2="{x:.1f}" '
                     f'y2="{bottom}"/>')
        parts.append(text(x, top - 8, _label(field), anchor="middle"))
        parts += _axis_ticks(x, top, bottom, spans[index], scaled[index][1])
    lines = []
    labels = [_label(field) for field in columns]
    for row, values in enumerate(zip(*(positions for positions, _ in scaled))):
        if any(value is None for value in values):
            continue  # a run without one of the fields has no line through every axis
        # Whole pixels: a thousand lines stay a small picture.
        points = " ".join(f"{left + i * gap:.0f},{_y(value, spans[i], top, bottom):.0f}"
                          for i, value in enumerate(values))
        fraction = (values[-1] - low) / (high - low) if high > low else 0.5
        tip = ", ".join(f"{label} {texts[row]}" for label, texts in zip(labels, shown))
        lines.append(f'<polyline class="tracker-parallel-line" points="{points}" '
                     f'style="stroke:{_colour(fraction)}"><title>'
                     f"{h.esc(names[row] + ': ' + tip)}</title></polyline>")
    if not lines:
        return h.muted("no run has every one of these fields")
    return svg(PARALLEL_WIDTH, PARALLEL_HEIGHT, f"{', '.join(axes)} to {metric}",
               [*lines, *parts])


def _texts(values: Sequence[Any]) -> list[str]:
    """Values as tooltips show them: params arrive as text already, metrics as numbers."""
    return [h.EMPTY if value is None or value != value else
            (h.number(value) if isinstance(value, float) else str(value)) for value in values]


def _span(values: Sequence[float]) -> tuple[float, float]:
    return (min(values), max(values)) if values else (0.0, 1.0)


def _y(value: float | None, span: tuple[float, float], top: float, bottom: float) -> float:
    low, high = span
    if value is None or high == low:
        return (top + bottom) / 2
    return bottom - (value - low) / (high - low) * (bottom - top)


def _axis_ticks(x: float, top: float, bottom: float, span: tuple[float, float],
                categories: list[str] | None) -> list[str]:
    marks = [(float(i), name) for i, name in enumerate(categories)] if categories else \
        [(value, h.number(value)) for value in ticks(*span)]
    return [text(x + 4, _y(value, span, top, bottom) + 3, label) for value, label in marks]


def scatter_plot(runs: Any, x_field: str, y_field: str) -> h.Safe:
    """A dot per run at (x, y), its name and values as the tooltip."""
    xs, x_categories = samples.numbers(runs[x_field].tolist())
    ys, _ = samples.numbers(runs[y_field].tolist())
    points = [(x, y, row) for row, (x, y) in enumerate(zip(xs, ys))
              if x is not None and y is not None]
    if not points:
        return h.muted(f"no run has both {x_field} and {y_field}")
    box = (min(p[0] for p in points), min(p[1] for p in points),
           max(p[0] for p in points), max(p[1] for p in points))
    frame = Frame(box, SCATTER_WIDTH, SCATTER_HEIGHT)
    parts = frame.axes(_label(x_field))
    if x_categories:  # category names under their positions, not numbers
        parts = [part for part in parts if 'text-anchor="middle"' not in part]
        parts += [text(frame.at(float(i), box[1])[0], frame.bottom + 14, name, anchor="middle")
                  for i, name in enumerate(x_categories)]
    parts.append(text(frame.left + 4, frame.top + 2, _label(y_field)))
    names, x_texts = runs["name"].tolist(), _texts(runs[x_field].tolist())
    for x, y, row in points:
        px, py = frame.at(x, y)
        tip = (f"{names[row]}\n{_label(x_field)} {x_texts[row]}, "
               f"{_label(y_field)} {h.number(y)}")
        parts.append(point_mark(px, py, "var(--jp-brand-color1, #1976d2)", tip, radius=3))
    return svg(SCATTER_WIDTH, SCATTER_HEIGHT, f"{x_field} against {y_field}", parts)
