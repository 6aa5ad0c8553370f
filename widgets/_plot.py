"""Small inline SVG plots of metric series: no matplotlib, no script, no external image.

Only numbers are written into the path data; every label goes through :func:`widgets._html.esc`.
Long series are thinned to at most :data:`MAX_POINTS` points (first and last always kept), so a
run with a million steps still draws a few kilobytes of SVG.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from ._html import Safe, esc, number

MAX_POINTS = 240
# Distinct series colours for comparisons; Jupyter's brand colour first so one series looks native.
PALETTE = ("var(--jp-brand-color1, #1976d2)", "#e65100", "#2e7d32", "#8e24aa", "#00838f",
           "#c62828", "#6d4c41", "#546e7a")

Series = Sequence[tuple[float, float]]


def thin(points: Series, limit: int = MAX_POINTS) -> list[tuple[float, float]]:
    """At most ``limit`` evenly spaced points of a series, keeping its first and last."""
    finite = [(float(x), float(y)) for x, y in points if math.isfinite(x) and math.isfinite(y)]
    if len(finite) <= limit:
        return finite
    stride = (len(finite) - 1) / (limit - 1)
    return [finite[round(i * stride)] for i in range(limit)]


def sparkline(values: Sequence[float], *, steps: Sequence[float] | None = None,
              width: int = 160, height: int = 32, title: str = "") -> Safe:
    """One metric series as a tiny line, with its minimum and maximum as a tooltip."""
    xs = list(steps) if steps is not None else list(range(len(values)))
    points = thin(list(zip(xs, values)))
    if not points:
        return Safe("")
    ys = [y for _, y in points]
    tip = f"{title} min {number(min(ys))}, max {number(max(ys))}, {len(values)} values"
    path = _path(points, _box(points), width, height, pad=2)
    return Safe(f'<svg class="tracker-plot" width="{width}" height="{height}" '
                f'viewBox="0 0 {width} {height}" role="img"><title>{esc(tip.strip())}</title>'
                f'<path class="tracker-plot-line" d="{path}"/></svg>')


def line_plot(series: Mapping[str, Series], *, width: int = 420, height: int = 150,
              title: str = "") -> Safe:
    """Several series on shared axes (for comparing runs), with a legend of escaped names."""
    thinned = {name: thin(points) for name, points in series.items()}
    everything = [point for points in thinned.values() for point in points]
    if not everything:
        return Safe("")
    box = _box(everything)
    left, bottom, legend = 44, 16, 14 * len(thinned)
    plot_h = height - bottom
    parts = [
        f'<line class="tracker-plot-axis" x1="{left}" y1="{plot_h}" x2="{width}" y2="{plot_h}"/>',
        f'<line class="tracker-plot-axis" x1="{left}" y1="0" x2="{left}" y2="{plot_h}"/>',
        _text(2, 10, number(box[3])), _text(2, plot_h, number(box[1])),
        _text(left, height - 3, number(box[0])), _text(width - 40, height - 3, number(box[2])),
    ]
    for index, (name, points) in enumerate(thinned.items()):
        colour = PALETTE[index % len(PALETTE)]
        path = _path(points, box, width - left, plot_h, pad=3, dx=left)
        parts.append(f'<path d="{path}" fill="none" stroke-width="1.5" style="stroke:{colour}">'
                     f"<title>{esc(name)}</title></path>")
        y = plot_h + bottom + 12 + 14 * index
        parts.append(f'<rect x="{left}" y="{y - 8}" width="10" height="3" style="fill:{colour}"/>')
        parts.append(_text(left + 14, y, name))
    full = height + legend + 4
    return Safe(f'<svg class="tracker-plot" width="{width}" height="{full}" '
                f'viewBox="0 0 {width} {full}" role="img"><title>{esc(title)}</title>'
                f'{"".join(parts)}</svg>')


def _box(points: Series) -> tuple[float, float, float, float]:
    xs = [x for x, _ in points]
    ys = [y for _, y in points]
    return min(xs), min(ys), max(xs), max(ys)


def _path(points: Series, box: tuple[float, float, float, float], width: float, height: float,
          *, pad: float, dx: float = 0.0) -> str:
    """SVG path data (numbers only) mapping ``points`` from ``box`` into the drawing area."""
    x0, y0, x1, y1 = box
    span_x = (x1 - x0) or 1.0
    span_y = (y1 - y0) or 1.0
    usable_w, usable_h = width - 2 * pad, height - 2 * pad
    coords = []
    for x, y in points:
        px = dx + pad + (x - x0) / span_x * usable_w
        # A flat series sits in the middle rather than on the floor.
        py = pad + usable_h / 2 if y1 == y0 else pad + (y1 - y) / span_y * usable_h
        coords.append(f"{px:.1f},{py:.1f}")
    if len(coords) == 1:  # a single value: a short dash, so it shows at all
        return f"M{coords[0]} h2"
    return "M" + " L".join(coords)


def _text(x: float, y: float, content: str) -> str:
    return f'<text class="tracker-plot-text" x="{x}" y="{y}">{esc(content)}</text>'
