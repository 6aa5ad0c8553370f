"""The MLflow stores in tests/data/mlflow, written by a real MLflow (make_stores.py there),
copied for a test: MLflow never writes into tests/data."""

from __future__ import annotations

import shutil
from pathlib import Path

STORES = Path(__file__).parent / "data" / "mlflow"


def copy_store(kind: str, folder: Path) -> str:
    """A copy of a fixture store in ``folder``, as the argument a user gives: the mlruns
    folder (``kind="mlruns"``), or a sqlite:/// URI (``kind="sqlite"``)."""
    copy = folder / "store"
    shutil.copytree(STORES, copy, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    _restore_empty_folders(copy / "mlruns")
    return str(copy / "mlruns") if kind == "mlruns" else f"sqlite:///{copy / 'mlflow.db'}"


def _restore_empty_folders(mlruns: Path) -> None:
    """The empty folders of MLflow's file store, which git does not keep: without a run's
    folders MLflow says the run is not found."""
    (mlruns / ".trash").mkdir(exist_ok=True)
    for meta in mlruns.glob("*/*/meta.yaml"):
        for name in ("params", "metrics", "tags", "artifacts"):
            (meta.parent / name).mkdir(exist_ok=True)
