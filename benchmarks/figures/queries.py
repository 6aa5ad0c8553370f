"""Runs-table figures at several catalog sizes: whole table, filter, top 100, count by status.

Both stores hold the same synthetic runs (:mod:`benchmarks.data`). MLflow's SQLite is filled fast:
its schema is created through MLflow, then rows go in with sqlite3 in one transaction. MLflow
queries run under a timeout (``--timeout``, default 120 s) and a timed-out one is "> 120 s".
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from benchmarks.framework import Context, Figure, Measure, Outcome, Target, group, log
from benchmarks.sides import Side, mlflow_job, require, tracker_job

# (kind, title, target at 100k runs in ms)
QUERIES = (
    ("table", "runs table as a DataFrame", 1500),
    ("filter", "filter: params.p0 = 'x' and metrics.m0 > 0.5", 150),
    ("top", "top 100 by metrics.m0", 150),
    ("count", "count by status", None),
)
_TARGET_AT = 100_000


def size_label(n: int) -> str:
    """``100``, ``1k``, ``100k``: the size part of a figure key."""
    return f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else str(n)


def figures(ctx: Context) -> list[Figure]:
    """One figure per query and catalog size; targets apply at 100k runs."""
    return [
        Figure(
            f"query.{kind}.{size_label(n)}",
            f"{title}, {n:,} runs",
            "ms",
            Target("<=", target) if target is not None and n == _TARGET_AT else None,
            mlflow=True,
        )
        for n in ctx.sizes
        for kind, title, target in QUERIES
    ]


@group("queries", figures)
def measure_queries(ctx: Context) -> dict[str, Outcome]:
    """Populate both stores at each size, then time each query on each."""
    require("tracker", "Catalog", "count_runs")
    outcomes = {}
    for n in ctx.sizes:
        job = {"op": "query", "n": n, "repeats": ctx.repeats, "budget_s": 5 if ctx.quick else 20}
        ours, our_rows = run_kinds(tracker_job, {**job, "catalog": tracker_catalog(ctx, n)},
                                    timeout_s=None)
        theirs, their_rows = _mlflow_kinds(ctx, n, job)
        for kind, _, _ in QUERIES:
            note = _rows_note(our_rows.get(kind), their_rows.get(kind))
            outcomes[f"query.{kind}.{size_label(n)}"] = Outcome(
                _noted(ours[kind], note), _noted(theirs[kind], note))
    return outcomes


def tracker_catalog(ctx: Context, n: int) -> str:
    """A catalog holding ``n`` synthetic runs, built once per suite run (widgets reuse it)."""
    return ctx.fixture(f"tracker-catalog-{n}", lambda: _populate(ctx, n, tracker_job, "catalog"))


def mlflow_db(ctx: Context, n: int) -> str:
    """An MLflow SQLite database holding the same ``n`` runs, built once per suite run."""
    return ctx.fixture(f"mlflow-db-{n}", lambda: _populate(ctx, n, mlflow_job, "db"))


def _populate(ctx: Context, n: int, side: Side, field: str) -> str:
    folder = Path(tempfile.mkdtemp(dir=ctx.workdir))
    path = str(folder / ("catalog.duckdb" if field == "catalog" else "mlflow.db"))
    result = side({"op": "populate", "n": n, field: path}).check()
    log(f"populated {field} with {n:,} runs in {result.result['seconds']:.1f} s")
    return path


def _mlflow_kinds(ctx: Context, n: int,
                  job: dict[str, Any]) -> tuple[dict[str, Measure], dict[str, int]]:
    if ctx.mlflow_missing is not None:
        missing = Measure.unavailable(ctx.mlflow_missing)
        return {kind: missing for kind, _, _ in QUERIES}, {}
    return run_kinds(mlflow_job, {**job, "db": mlflow_db(ctx, n)}, timeout_s=ctx.timeout_s)


def run_kinds(side: Side, job: dict[str, Any],
               *, timeout_s: float | None) -> tuple[dict[str, Measure], dict[str, int]]:
    """Every query of :data:`QUERIES` on ``side``, in as few processes as possible: a timed-out
    query is reported as "> limit" and a new process carries on with the queries after it."""
    kinds = [kind for kind, _, _ in QUERIES]
    measures: dict[str, Measure] = {}
    rows: dict[str, int] = {}
    while kinds:
        result = side({**job, "kinds": kinds}, timeout_s=timeout_s)
        rows.update(result.result.get("rows", {}))
        for kind, samples in result.tagged.items():
            measures[kind] = Measure.seconds(samples, "ms")
        if not result.timed_out or result.current is None:
            break
        stuck = result.current
        measures[stuck] = _cut(measures.get(stuck), float(timeout_s or 0))
        kinds = kinds[kinds.index(stuck) + 1:]
    failed = Measure.unavailable(result.error or "timed out before the first query")
    return {kind: measures.get(kind, failed) for kind, _, _ in QUERIES}, rows


def _cut(taken: Measure | None, limit_s: float) -> Measure:
    """The query a timeout interrupted: "> limit", or its samples so far with a note."""
    if taken is None:
        return Measure.timed_out(limit_s, "ms")
    return Measure.of(taken.samples, note=f"next sample passed the {limit_s:g} s limit")


def _noted(measure: Measure, note: str) -> Measure:
    return measure if not note or measure.stats is None else measure.noted(note)


def _rows_note(ours: int | None, theirs: int | None) -> str:
    """Say so when the two tools did not return the same number of rows."""
    if ours is None or theirs is None or ours == theirs:
        return ""
    return f"rows differ: tracker {ours}, MLflow {theirs}"
