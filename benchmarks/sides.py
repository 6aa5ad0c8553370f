"""Running a job on either side and turning what it reported into a :class:`Measure`.

tracker's jobs run under the project venv's python (this interpreter); MLflow's under the python
of benchmarks/.mlflow-venv.
"""

from __future__ import annotations

import importlib
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import mlflow_env
from benchmarks.framework import Context, Measure, NotAvailable, Outcome
from benchmarks.jobs import Job, JobResult, run_job

Side = Callable[..., JobResult]  # tracker_job or mlflow_job

_LONG_S = 3600.0  # idle limit for jobs that are not MLflow queries (populating, workers)


def tracker_job(job: dict[str, Any], *, timeout_s: float | None = None,
                env: dict[str, str] | None = None) -> JobResult:
    """Run a job of :mod:`benchmarks.tracker_side` in a fresh process (None: no real limit)."""
    return run_job(sys.executable, "tracker_side", job, timeout_s=timeout_s or _LONG_S, env=env)


def mlflow_job(job: dict[str, Any], *, timeout_s: float | None = None,
               env: dict[str, str] | None = None) -> JobResult:
    """Run a job of :mod:`benchmarks.mlflow_side` in a fresh process of the MLflow venv."""
    python = mlflow_env.venv_python()
    return run_job(python, "mlflow_side", job, timeout_s=timeout_s or _LONG_S, env=env)


def start(side: str, job: dict[str, Any]) -> Job:
    """Start a job of ``side`` (``tracker_side`` or ``mlflow_side``) without waiting for it."""
    python = sys.executable if side == "tracker_side" else mlflow_env.venv_python()
    return Job(python, side, job)


def side_job(side: str) -> Side:
    """The function that runs a job of ``side`` to its end: tracker_job or mlflow_job."""
    return tracker_job if side == "tracker_side" else mlflow_job


def count_runs(side: str, store: dict[str, str]) -> set[str]:
    """The ids of every run in ``side``'s store."""
    return set(side_job(side)({"op": "count_runs", **store}).check().result["ids"])


def on_both_sides(ctx: Context,
                  measure_side: Callable[[str, dict[str, str]], dict[str, Measure]],
                  ) -> dict[str, Outcome]:
    """``measure_side(side, store)`` on a tracker catalog, then (if ready) an MLflow db.

    Each store already holds one run, as a team's shared store would, so no process in the
    measurement creates it.
    """
    folder = Path(tempfile.mkdtemp(dir=ctx.workdir))
    catalog = str(folder / "catalog.duckdb")
    tracker_job({"op": "first_run"}, env={"TRACKER_CATALOG": catalog}).check()
    ours = measure_side("tracker_side", {"catalog": catalog})
    theirs: dict[str, Measure] = {}
    if ctx.mlflow_missing is None:
        db = str(folder / "mlflow.db")
        mlflow_job({"op": "first_run", "db": db}).check()
        theirs = measure_side("mlflow_side", {"db": db})
    missing = Measure.unavailable(str(ctx.mlflow_missing))
    return {key: Outcome(ours[key], theirs.get(key, missing)) for key in ours}


def measure(result: JobResult, unit: str, *, limit_s: float | None = None,
            note: str = "") -> Measure:
    """The job's samples (seconds) in ``unit``; a timeout without samples is "> limit"."""
    if result.samples:
        if result.timed_out:
            note = f"{note}; stopped at the {limit_s:g} s limit".lstrip("; ")
        return Measure.seconds(result.samples, unit, note=note)
    if result.timed_out and limit_s is not None:
        return Measure.timed_out(limit_s, unit)
    return Measure.unavailable(result.error or "the job reported nothing")


def require(module: str, *names: str) -> Any:
    """Import ``module`` and check it has ``names``; raise NotAvailable saying what is missing."""
    try:
        loaded = importlib.import_module(module)
    except ImportError as error:
        raise NotAvailable(f"{module} has not landed ({error})") from None
    missing = [name for name in names if not hasattr(loaded, name)]
    if missing:
        raise NotAvailable(f"{module} has no {', '.join(missing)} yet")
    return loaded
