"""``tracker import-mlflow`` of an MLflow history of 1,000 runs, read by the MLflow venv's client.

The store is written by the real MLflow of the benchmark venv (tests/data/mlflow/make_stores.py
``--runs``: 20 params and 5 metrics of 10 steps per run, in an SQLite store) once per suite run.
Each sample imports it into a new catalog, through ``mlflow_python`` = the venv's python, as a
user whose MLflow lives in its own environment would; then the same store again into the same
catalog, which adds nothing. Full mode only: writing the store alone takes minutes.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path

from benchmarks import mlflow_env
from benchmarks.framework import Context, Figure, Measure, Outcome, group
from benchmarks.sides import require

RUNS = 1_000
_WRITER = Path(__file__).resolve().parents[2] / "tests" / "data" / "mlflow" / "make_stores.py"
_REPEATS = 3
_WRITE_TIMEOUT_S = 1800

FIGURES = (
    Figure("mlflow_import.first", f"import-mlflow, {RUNS:,} MLflow runs (SQLite store)", "s"),
    Figure("mlflow_import.again", f"import-mlflow again, {RUNS:,} runs (adds nothing)", "s"),
)


@group("mlflow_import", lambda ctx: FIGURES)
def measure_mlflow_import(ctx: Context) -> dict[str, Outcome]:
    """Both figures from the same imports."""
    require("tracker", "import_mlflow")
    missing = "full mode only" if ctx.quick else ctx.mlflow_missing
    if missing is not None:
        return {figure.key: Outcome(Measure.unavailable(missing)) for figure in FIGURES}
    store = ctx.fixture("mlflow_import.store", lambda: _write_store(ctx.workdir))
    first, again = [], []
    for _ in range(_REPEATS):
        with tempfile.TemporaryDirectory(dir=ctx.workdir) as folder:
            first.append(_import(store, Path(folder), RUNS))
            again.append(_import(store, Path(folder), 0))
    note = f"{_REPEATS} imports into new catalogs, MLflow's client in its own venv"
    return {"mlflow_import.first": Outcome(Measure.of(first, note=note)),
            "mlflow_import.again": Outcome(Measure.of(again, note=note))}


def _write_store(workdir: Path) -> str:
    folder = workdir / "mlflow-import-store"
    subprocess.run([str(mlflow_env.venv_python()), str(_WRITER), str(folder), "--runs",
                    str(RUNS)], check=True, capture_output=True, timeout=_WRITE_TIMEOUT_S)
    return f"sqlite:///{folder / 'mlflow.db'}"


def _import(store: str, folder: Path, expected: int) -> float:
    import tracker

    catalog = tracker.Catalog(folder / "catalog.duckdb")
    started = time.perf_counter()
    report = catalog.import_mlflow(store, mlflow_python=mlflow_env.venv_python())
    elapsed = time.perf_counter() - started
    if len(report.imported) != expected:
        raise RuntimeError(f"imported {len(report.imported)} runs, expected {expected}")
    return elapsed
