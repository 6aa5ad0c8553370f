"""Several processes writing runs into one store at once: throughput, worst wait, lost runs.

Each worker writes its runs one after another, each committed before the next (tracker:
``end_run`` then ``flush()``; MLflow: every call commits). The workers import their library and
open their store first, then all start at once. A run is lost when its writer saw it succeed
and it is not in the store afterwards; ``database is locked`` and other failures are errors.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import mlflow_env
from benchmarks.framework import Context, Figure, Measure, Outcome, Target, group
from benchmarks.jobs import Job
from benchmarks.sides import mlflow_job, require, tracker_job

WORKERS = 8


def _runs_each(ctx: Context) -> int:
    return 4 if ctx.quick else 40


def figures(ctx: Context) -> tuple[Figure, ...]:
    """Throughput, slowest wait, lost runs and errors of the concurrent write test."""
    title = f"{WORKERS} processes x {_runs_each(ctx)} runs"
    return (
        Figure("concurrent.runs_per_s", f"{title}: runs/s", "runs/s", mlflow=True),
        Figure("concurrent.max_wait", f"{title}: slowest run", "s", mlflow=True),
        Figure("concurrent.lost", f"{title}: runs lost", "count", Target("<=", 0), mlflow=True),
        Figure("concurrent.errors", f"{title}: failed writes", "count", mlflow=True),
    )


@group("concurrency", figures)
def measure_concurrency(ctx: Context) -> dict[str, Outcome]:
    """Run the test on each side and report the four figures."""
    require("tracker", "Catalog")
    folder = Path(tempfile.mkdtemp(dir=ctx.workdir))
    # Each store exists before the contest (one run in it), as a team's shared store would.
    catalog = str(folder / "catalog.duckdb")
    tracker_job({"op": "first_run"}, env={"TRACKER_CATALOG": catalog}).check()
    ours = _contest(ctx, "tracker_side", {"catalog": catalog})
    theirs = None
    if ctx.mlflow_missing is None:
        db = str(folder / "mlflow.db")
        mlflow_job({"op": "first_run", "db": db}).check()
        theirs = _contest(ctx, "mlflow_side", {"db": db})
    missing = Measure.unavailable(str(ctx.mlflow_missing))
    return {key: Outcome(ours[key], theirs[key] if theirs else missing) for key in ours}


def _contest(ctx: Context, side: str, store: dict[str, str]) -> dict[str, Measure]:
    python = sys.executable if side == "tracker_side" else mlflow_env.venv_python()
    go = Path(tempfile.mkdtemp(dir=ctx.workdir)) / "go"
    jobs = [
        Job(python, side, {"op": "worker", "worker": i, "runs": _runs_each(ctx), "go": str(go),
                           **store})
        for i in range(WORKERS)
    ]
    for job in jobs:  # every worker has imported its library and opened its store
        job.expect("ready", timeout_s=300)
    go.touch()
    start = time.time()
    reports = [job.wait(timeout_s=600).check().result for job in jobs]
    elapsed = max(report["finished_at"] for report in reports) - start
    count = tracker_job if side == "tracker_side" else mlflow_job
    present = set(count({"op": "count_runs", **store}).check().result["ids"])
    return _figures(reports, present, elapsed)


def _figures(reports: list[dict[str, Any]], present: set[str],
             elapsed: float) -> dict[str, Measure]:
    committed = [run for report in reports for run in report["committed"]]
    waits = [wait for report in reports for wait in report["waits"]]
    errors: dict[str, int] = {}
    for report in reports:
        for kind, number in report["errors"].items():
            errors[kind] = errors.get(kind, 0) + number
    lost = [run for run in committed if run not in present]
    return {
        "concurrent.runs_per_s": Measure.of([len(committed) / elapsed],
                                            note=f"{len(committed)} runs in {elapsed:.1f} s"),
        "concurrent.max_wait": Measure.of([max(waits)],
                                          note=f"median {statistics.median(waits):.2f} s"),
        "concurrent.lost": Measure.of([len(lost)], note=f"of {len(committed)} committed"),
        "concurrent.errors": Measure.of(
            [sum(errors.values())],
            note=", ".join(f"{n} x {kind}" for kind, n in sorted(errors.items())) or "none"),
    }

