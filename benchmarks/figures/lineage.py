"""Lineage-picture figures: the graph and its SVG for a run whose output a hub of runs read.

tracker only (MLflow has no lineage of files between runs). The catalog holds one run that wrote
a file and ``n`` runs that read it, written through the flusher's own path; the picture of the
writer must stay small (6 readers and "+N more") and fast however many read it.
"""

from __future__ import annotations

from benchmarks.framework import Context, Figure, Outcome, group
from benchmarks.sides import measure, require, tracker_job


def _readers(ctx: Context) -> int:
    return 1_000 if ctx.quick else 10_000


def figures(ctx: Context) -> list[Figure]:
    """The writer's picture (the hub side) and one reader's, with ``_readers(ctx)`` readers."""
    n = _readers(ctx)
    return [Figure("lineage.hub", f"lineage picture of a run whose output {n:,} runs read",
                   "ms"),
            Figure("lineage.reader", f"lineage picture of one of those {n:,} readers", "ms")]


@group("lineage", figures)
def measure_lineage(ctx: Context) -> dict[str, Outcome]:
    """Populate the hub catalog once, then time ``lineage_graph(ref).svg()`` from each side."""
    require("tracker", "lineage_graph")
    catalog = str(ctx.workdir / "lineage-hub.duckdb")
    outcomes = {}
    for side in ("hub", "reader"):
        job = {"op": "lineage", "catalog": catalog, "readers": _readers(ctx), "side": side,
               "repeats": ctx.repeats, "budget_s": 20}
        outcomes[f"lineage.{side}"] = Outcome(measure(tracker_job(job), "ms"))
    return outcomes
