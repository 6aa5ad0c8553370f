"""The MLflow side's own virtual environment: benchmarks/.mlflow-venv, never a project dependency.

The benchmark command creates it on first use (``pip install mlflow psycopg2-binary``, latest
releases: psycopg2 is the driver MLflow's ``postgresql://`` tracking URIs use) so the project
itself never depends on MLflow; ``--quick`` only uses it when it already exists.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TextIO

VENV = Path(__file__).resolve().parent / ".mlflow-venv"
_INSTALL_TIMEOUT_S = 1800
PACKAGES = ("mlflow", "psycopg2-binary")


def venv_python() -> Path:
    """The python of the MLflow venv (it may not exist yet)."""
    return VENV / "bin" / "python"


def mlflow_version() -> str | None:
    """The installed MLflow version, or None when the venv has no working MLflow."""
    python = venv_python()
    if not python.exists():
        return None
    done = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('mlflow'))"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.stdout.strip() if done.returncode == 0 else None


def ensure_venv(*, install: bool, log: TextIO = sys.stderr) -> str | None:
    """Make sure the venv has MLflow; return why not when it cannot (None when it is ready).

    With ``install=False`` a missing venv is reported, never created (the test suite must not
    install MLflow).
    """
    if mlflow_version() is not None:
        if install and not has_driver():  # a venv made before the PostgreSQL figures
            _pip(*PACKAGES[1:])
        return None
    if not install:
        return f"MLflow venv not installed ({VENV}); run the full suite once to create it"
    print(f"installing MLflow into {VENV} (once; a few minutes)", file=log, flush=True)
    try:
        _install()
    except (OSError, subprocess.SubprocessError) as error:
        return f"could not install MLflow: {error}"
    return None if mlflow_version() is not None else "MLflow install finished but import fails"


def _install() -> None:
    # `python -m venv` from the project venv builds on the base interpreter, not on the venv.
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
    _pip("--upgrade", "pip")
    _pip(*PACKAGES)


def _pip(*arguments: str) -> None:
    """``pip install`` into the venv."""
    pip = [str(venv_python()), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    env = {**os.environ, "PIP_NO_INPUT": "1"}
    subprocess.run([*pip, *arguments], check=True, env=env, timeout=_INSTALL_TIMEOUT_S)


def has_driver() -> bool:
    """Whether the venv has psycopg2, MLflow's PostgreSQL driver (the PostgreSQL figures need
    it; a venv made before them lacks it)."""
    done = subprocess.run([str(venv_python()), "-c", "import psycopg2"], capture_output=True,
                          timeout=60)
    return done.returncode == 0
