"""Running a job on either side and turning what it reported into a :class:`Measure`.

tracker's jobs run under the project venv's python (this interpreter); MLflow's under the python
of benchmarks/.mlflow-venv.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any

from benchmarks import mlflow_env
from benchmarks.framework import Measure, NotAvailable
from benchmarks.jobs import JobResult, run_job

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
