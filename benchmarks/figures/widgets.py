"""Runs-widget figures at the largest catalog size: first render, page change, sort, filter;
and the charts across runs on 10,000 runs (or the largest size under it): render, change of
axis, filter.

tracker only (MLflow's UI is a web server, not a notebook widget). The widget is driven through
its Python API in a fresh process, on the catalog the query figures populated.
"""

from __future__ import annotations

from benchmarks.figures.queries import tracker_catalog
from benchmarks.framework import Context, Figure, Measure, Outcome, Target, group
from benchmarks.sides import measure, require, tracker_job

# (key suffix, title, target in ms)
ACTIONS = (
    ("render", "first render", 300),
    ("page", "page change", 150),
    ("sort", "sort by a metric", 150),
    ("filter", "filter", 150),
)
CHART_ACTIONS = (("render", "first render", 300), ("axis", "change of the scatter's x", 150),
                 ("filter", "filter", 150))
CHART_RUNS = 10_000


def figures(ctx: Context) -> list[Figure]:
    """One figure per widget action at the largest size, and the widget's memory at the
    smallest and largest sizes (it should not grow with the catalog)."""
    n = ctx.sizes[-1]
    return [
        *(Figure(f"widget.{action}", f"runs widget, {n:,} runs: {title}", "ms",
                 Target("<=", ms)) for action, title, ms in ACTIONS),
        *(Figure(f"widget.memory.{size}", f"runs widget memory, {size:,} runs", "KiB")
          for size in (ctx.sizes[0], n)),
        *(Figure(f"widget.chart.{action}", f"charts, {_chart_size(ctx):,} runs: {title}", "ms",
                 Target("<=", ms)) for action, title, ms in CHART_ACTIONS),
    ]


def _chart_size(ctx: Context) -> int:
    return max(size for size in ctx.sizes if size <= CHART_RUNS)


@group("widgets", figures)
def measure_widgets(ctx: Context) -> dict[str, Outcome]:
    """Time each widget action in one process (after an untimed first render)."""
    require("tracker.widgets", "RunTable")
    n = ctx.sizes[-1]
    catalog = tracker_catalog(ctx, n)
    outcomes = {}
    for action, _, _ in ACTIONS:
        job = {"op": "widget", "action": action, "catalog": catalog,
               "repeats": ctx.repeats, "budget_s": 20}
        outcomes[f"widget.{action}"] = Outcome(measure(tracker_job(job), "ms"))
    for size in (ctx.sizes[0], n):
        job = {"op": "widget_memory", "catalog": tracker_catalog(ctx, size),
               "repeats": 3 if ctx.quick else 5}
        result = tracker_job(job)
        outcomes[f"widget.memory.{size}"] = Outcome(
            Measure.of(result.samples, note="tracemalloc after render and 5 page changes")
            if result.samples else Measure.unavailable(result.error or "no samples"))
    for action, _, _ in CHART_ACTIONS:
        job = {"op": "chart", "action": action,
               "catalog": tracker_catalog(ctx, _chart_size(ctx)), "repeats": ctx.repeats,
               "budget_s": 20}
        outcomes[f"widget.chart.{action}"] = Outcome(measure(tracker_job(job), "ms"))
    return outcomes
