"""Logging figures: one whole run, a single log_param / log_metric call, and a long metric loop.

MLflow writes every call to SQLite (~5-8 ms), so its metric loop is capped and extrapolated to
the same number of points; the note on the figure says so.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from benchmarks.framework import Context, Figure, Measure, Outcome, Target, group
from benchmarks.sides import Side, measure, mlflow_job, require, tracker_job

_HOT_PATH = Target("<=", 5)


def _points(ctx: Context) -> int:
    return 10_000 if ctx.quick else 100_000


def figures(ctx: Context) -> tuple[Figure, ...]:
    """The logging figures; the loop's size depends on the mode."""
    points = f"{_points(ctx):,}"
    return (
        Figure("run.one", "one run: start + 20 params + 5 metrics + end", "ms", mlflow=True),
        Figure("run.one_flushed", "one run, until it is in the catalog", "ms", Target("<=", 10),
               mlflow=True),
        Figure("call.log_param", "log_param, per call", "us", _HOT_PATH, mlflow=True),
        Figure("call.log_metric", "log_metric, per call", "us", _HOT_PATH, mlflow=True),
        Figure("loop.log_metric", f"{points} log_metric calls in a loop", "s", mlflow=True),
        Figure("loop.log_metric_flushed", f"{points} log_metric calls + flush() to the catalog",
               "s", mlflow=True),
    )


@group("logging", figures)
def measure_logging(ctx: Context) -> dict[str, Outcome]:
    """Every logging figure, each side in fresh processes on its own temporary store."""
    require("tracker", "start_run", "log_metric", "use_catalog", "flush")
    folder = Path(tempfile.mkdtemp(dir=ctx.workdir))
    ours_loop, ours_flushed = _tracker_loop(ctx, folder)
    theirs_loop = ctx.mlflow_measure(lambda: _mlflow_loop(ctx, folder))
    ours_run, ours_run_flushed = _tracker_one_run(ctx, folder)
    theirs_run = ctx.mlflow_measure(lambda: _mlflow_one_run(ctx, folder))
    return {
        "run.one": Outcome(ours_run, theirs_run),
        "run.one_flushed": Outcome(ours_run_flushed, theirs_run),
        "call.log_param": _compare_calls(ctx, "param", folder),
        "call.log_metric": _compare_calls(ctx, "metric", folder),
        "loop.log_metric": Outcome(ours_loop, theirs_loop),
        "loop.log_metric_flushed": Outcome(ours_flushed, theirs_loop),
    }


def _one_run_job(ctx: Context) -> dict[str, Any]:
    return {"op": "one_run", "repeats": 5 if ctx.quick else 30, "budget_s": 20}


def _tracker_one_run(ctx: Context, folder: Path) -> tuple[Measure, Measure]:
    result = tracker_job({**_one_run_job(ctx), "catalog": str(folder / "one.duckdb")}).check()
    flushed = Measure.seconds(result.result["flushed"], "ms", note="until flush() returns")
    return measure(result, "ms", note="end_run returns with the run in the spool"), flushed


def _mlflow_one_run(ctx: Context, folder: Path) -> Measure:
    result = mlflow_job({**_one_run_job(ctx), "db": str(folder / "one.db")}).check()
    return measure(result, "ms", note="every call commits to SQLite")


def _compare_calls(ctx: Context, kind: str, folder: Path) -> Outcome:
    ours = _calls(ctx, kind, tracker_job, {"catalog": str(folder / "calls.duckdb")}, batch=10_000)
    theirs = ctx.mlflow_measure(
        lambda: _calls(ctx, kind, mlflow_job, {"db": str(folder / "calls.db")}, batch=100))
    return Outcome(ours, theirs)


def _calls(ctx: Context, kind: str, side: Side, store: dict[str, str], *, batch: int) -> Measure:
    batch = batch // 10 if ctx.quick else batch
    job = {"op": "log_calls", "kind": kind, "batch": batch, "repeats": ctx.repeats * 3,
           "budget_s": 3 if ctx.quick else 15, **store}
    return measure(side(job).check(), "us", note=f"batches of {batch} calls")


def _tracker_loop(ctx: Context, folder: Path) -> tuple[Measure, Measure]:
    job = {"op": "metric_loop", "calls": _points(ctx), "repeats": ctx.repeats, "budget_s": 30,
           "catalog": str(folder / "loop.duckdb")}
    result = tracker_job(job).check()
    flushed = Measure.seconds(result.result["flushed"], "s", note="until flush() returns")
    return measure(result, "s", note="buffered; the catalog write follows"), flushed


def _mlflow_loop(ctx: Context, folder: Path) -> Measure:
    points, cap = _points(ctx), 200 if ctx.quick else 2_000
    job = {"op": "metric_loop", "calls": cap, "repeats": 3, "budget_s": 30,
           "db": str(folder / "loop.db")}
    samples = mlflow_job(job).check().samples
    scaled = [sample * points / cap for sample in samples]
    return Measure.of(scaled, note=f"extrapolated from {cap:,} calls (x{points // cap})")
