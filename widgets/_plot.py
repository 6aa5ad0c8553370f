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
    path = _path(points, bounds(points), width, height, pad=2)
    return Safe(f'<svg class="tracker-plot" width="{width}" height="{height}" '
                f'viewBox="0 0 {width} {height}" role="img"><title>{esc(tip.strip())}</title>'
                f'<path class="tracker-plot-line" d="{path}"/></svg>')


def line_plot(series: Mapping[str, Series], *, width: int = 640, height: int = 240,
              title: str = "", x_label: str = "step") -> Safe:
    """Several series on shared axes (for comparing runs): ticks on both axes, a legend of
    escaped names, and each point's run, step and value as a tooltip under the pointer."""
    thinned = {name: thin(points) for name, points in series.items()}
    everything = [point for points in thinned.values() for point in points]
    if not everything:
        return Safe("")
    frame = Frame(bounds(everything), width, height)
    parts = frame.axes(x_label)
    for index, (name, points) in enumerate(thinned.items()):
        colour = PALETTE[index % len(PALETTE)]
        coords = [frame.at(x, y) for x, y in points]
        path = "M" + " L".join(f"{px:.1f},{py:.1f}" for px, py in coords)
        parts.append(f'<path d="{path}" fill="none" stroke-width="1.5" style="stroke:{colour}">'
                     f"<title>{esc(name)}</title></path>")
        parts += [point_mark(px, py, colour, f"{name}\n{x_label} {number(x)}: {number(y)}")
                  for (px, py), (x, y) in zip(coords, points)]
        y = frame.bottom + 30 + 16 * index
        parts.append(f'<rect x="{frame.left}" y="{y - 8}" width="12" height="4" '
                     f'style="fill:{colour}"/>')
        parts.append(text(frame.left + 16, y, name))
    full = frame.bottom + 30 + 16 * len(thinned)
    return svg(width, full, title, parts)


def point_mark(x: float, y: float, colour: str, tip: str, *, radius: float = 3.5) -> str:
    """A dot whose tooltip (an SVG ``<title>``) shows its values under the pointer."""
    return (f'<circle class="tracker-plot-point" cx="{x:.1f}" cy="{y:.1f}" r="{radius}" '
            f'style="fill:{colour}"><title>{esc(tip)}</title></circle>')


def svg(width: int, height: int, title: str, parts: Sequence[str]) -> Safe:
    """The ``<svg>`` element around ``parts`` (markup built here from numbers and escaped text)."""
    return Safe(f'<svg class="tracker-plot" width="{width}" height="{height}" '
                f'viewBox="0 0 {width} {height}" role="img"><title>{esc(title)}</title>'
                f'{"".join(parts)}</svg>')


def ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About ``count`` round values (1, 2 or 5 times a power of ten) spanning low..high."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return []
    if high == low:
        return [low]
    raw = (high - low) / max(count - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(low / step - 1e-9) * step
    values = []
    value = first
    while value <= high + step * 1e-9:
        values.append(round(value, 12))
        value += step
    return values


class Frame:
    """A plot area: data ``box`` (x0, y0, x1, y1) mapped into a ``width`` x ``height`` picture
    with room on the left for y labels and below for x labels."""

    left, top, pad = 52, 8, 4

    def __init__(self, box: tuple[float, float, float, float], width: int, height: int) -> None:
        self.box = box
        self.right = width - 8
        self.bottom = height - 20

    def at(self, x: float, y: float) -> tuple[float, float]:
        """The picture coordinates of data point (x, y)."""
        x0, y0, x1, y1 = self.box
        usable_w = self.right - self.left - 2 * self.pad
        usable_h = self.bottom - self.top - 2 * self.pad
        px = self.left + self.pad + ((x - x0) / (x1 - x0) * usable_w if x1 != x0 else usable_w / 2)
        # A flat series sits in the middle rather than on the floor.
        py = self.top + self.pad + ((y1 - y) / (y1 - y0) * usable_h if y1 != y0 else usable_h / 2)
        return px, py

    def axes(self, x_label: str) -> list[str]:
        """Both axes with tick marks, grid lines and tick values, and the x axis' label."""
        x0, y0, x1, y1 = self.box
        parts = [
            f'<line class="tracker-plot-axis" x1="{self.left}" y1="{self.bottom}" '
            f'x2="{self.right}" y2="{self.bottom}"/>',
            f'<line class="tracker-plot-axis" x1="{self.left}" y1="{self.top}" '
            f'x2="{self.left}" y2="{self.bottom}"/>',
        ]
        for value in ticks(y0, y1):
            _, py = self.at(x0, value)
            parts.append(f'<line class="tracker-plot-grid" x1="{self.left}" y1="{py:.1f}" '
                         f'x2="{self.right}" y2="{py:.1f}"/>')
            parts.append(text(self.left - 4, py + 3, number(value), anchor="end"))
        for value in ticks(x0, x1):
            px, _ = self.at(value, y0)
            parts.append(f'<line class="tracker-plot-axis" x1="{px:.1f}" y1="{self.bottom}" '
                         f'x2="{px:.1f}" y2="{self.bottom + 4}"/>')
            parts.append(text(px, self.bottom + 14, number(value), anchor="middle"))
        parts.append(text(self.right, self.bottom + 14, x_label, anchor="end"))
        return parts


def bounds(points: Series) -> tuple[float, float, float, float]:
    """(min x, min y, max x, max y) of ``points``."""
    xs = [x for x, _ in points]
    ys = [y for _, y in points]
    return min(xs), min(ys), max(xs), max(ys)


def _path(points: Series, box: tuple[float, float, float, float], width: float, height: float,
          *, pad: float) -> str:
    """SVG path data (numbers only) mapping ``points`` from ``box`` into the drawing area."""
    x0, y0, x1, y1 = box
    span_x = (x1 - x0) or 1.0
    span_y = (y1 - y0) or 1.0
    usable_w, usable_h = width - 2 * pad, height - 2 * pad
    coords = []
    for x, y in points:
        px = pad + (x - x0) / span_x * usable_w
        # A flat series sits in the middle rather than on the floor.
        py = pad + usable_h / 2 if y1 == y0 else pad + (y1 - y) / span_y * usable_h
        coords.append(f"{px:.1f},{py:.1f}")
    if len(coords) == 1:  # a single value: a short dash, so it shows at all
        return f"M{coords[0]} h2"
    return "M" + " L".join(coords)


def text(x: float, y: float, content: str, *, anchor: str = "start") -> str:
    """An SVG text element with ``content`` escaped; ``anchor``: start, middle or end."""
    return (f'<text class="tracker-plot-text" x="{x:.1f}" y="{y:.1f}" '
            f'text-anchor="{anchor}">{esc(content)}</text>')
