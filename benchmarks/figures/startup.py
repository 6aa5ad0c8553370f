"""Start-up figures: ``import`` in a fresh process; a fresh process to its first run recorded."""

from __future__ import annotations

import contextlib
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.framework import Context, Figure, Measure, Outcome, Target, group
from benchmarks.sides import Side, mlflow_job, require, tracker_job

FIGURES = (
    Figure("import", "import (fresh process)", "ms", Target("<=", 150), mlflow=True),
    Figure("first_run", "fresh process to first run recorded", "ms", mlflow=True),
)


@group("startup", lambda ctx: FIGURES)
def measure_startup(ctx: Context) -> dict[str, Outcome]:
    """Both figures, each sample a new process (and for the first run a new catalog)."""
    require("tracker", "start_run", "Catalog")
    # Quick mode is a smoke test: no warm-up process, few samples.
    imports, first_runs, warm = (3, 2, 0) if ctx.quick else (11, 5, 1)
    return {
        "import": Outcome(
            _imports(tracker_job, imports, warm),
            ctx.mlflow_measure(lambda: _imports(mlflow_job, imports, warm)),
        ),
        "first_run": Outcome(
            _first_runs(ctx, _tracker_first_run, first_runs, warm),
            ctx.mlflow_measure(lambda: _first_runs(ctx, _mlflow_first_run, first_runs, warm)),
        ),
    }


def _imports(side: Side, repeats: int, warm: int) -> Measure:
    samples = []
    for _ in range(warm + repeats):  # warm-up: bytecode caches, the OS file cache
        samples += side({"op": "import"}).check().samples
    return Measure.seconds(samples[warm:], "ms", note=f"{repeats} processes")


def _first_runs(ctx: Context, first_run: Callable[[Path], float], repeats: int,
                warm: int) -> Measure:
    samples = []
    for _ in range(warm + repeats):  # warm-up: bytecode caches, the reader's own imports
        with tempfile.TemporaryDirectory(dir=ctx.workdir) as folder:
            samples.append(first_run(Path(folder)))
    return Measure.seconds(samples[warm:], "ms",
                           note="spawn to the row read back by another process")


def _tracker_first_run(folder: Path) -> float:
    import tracker

    path = folder / "catalog.duckdb"
    started = time.perf_counter()
    result = tracker_job({"op": "first_run"}, env={"TRACKER_CATALOG": str(path)}).check()
    tracker.Catalog(path).get_run(result.result["run_id"])  # raises if it is not there
    return time.perf_counter() - started


def _mlflow_first_run(folder: Path) -> float:
    path = folder / "mlflow.db"
    started = time.perf_counter()
    result = mlflow_job({"op": "first_run", "db": str(path)}).check()
    with contextlib.closing(sqlite3.connect(path)) as connection:
        found = connection.execute(
            "SELECT count(*) FROM runs WHERE run_uuid = ?", [result.result["run_id"]]
        ).fetchone()[0]
    if found != 1:
        raise RuntimeError("MLflow's run is not in its database")
    return time.perf_counter() - started
