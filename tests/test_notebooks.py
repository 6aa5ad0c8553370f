"""The example notebooks, executed by nbval the way a user's CI would, then the catalog checked.

nbval runs in a subprocess on a copy of ``notebooks/`` (the examples write ``outputs/`` beside
themselves) with ``TRACKER_CATALOG`` pointing at the test's folder. ``--nbval-lax`` compares only
the cells marked ``# NBVAL_CHECK_OUTPUT``, which print nothing that changes between runs (no run
ids, absolute paths or times).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import tracker

NOTEBOOKS = Path(__file__).parent.parent / "notebooks"
# In this order: the consumer reads what the producer wrote.
EXAMPLES = ("quickstart", "producer", "consumer", "parameterized")
# The tour drives the widgets on a catalog of its own; it records nothing in TRACKER_CATALOG.
TOUR = "widgets_tour"
# Runs train.ipynb twice, reproduces one run and diffs the two, on a catalog of its own.
REPRODUCE_TOUR = "reproduce_tour"

pytestmark = pytest.mark.slow


def test_example_notebooks_pass_nbval_and_are_recorded(tmp_path: Path) -> None:
    folder = tmp_path / "notebooks"
    shutil.copytree(NOTEBOOKS, folder, ignore=shutil.ignore_patterns("outputs", ".*"))
    catalog_path = tmp_path / "catalog" / "catalog.duckdb"
    env = {**os.environ, "TRACKER_CATALOG": str(catalog_path)}
    env.pop("TRACKER_NOTEBOOK", None)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
         *(f"{name}.ipynb" for name in (*EXAMPLES, TOUR, REPRODUCE_TOUR))],
        cwd=folder, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]

    catalog = tracker.Catalog(catalog_path)
    runs = catalog.runs(order_by="started_at")
    assert list(runs["name"]) == [f"{name} #1" for name in EXAMPLES]  # numbered per notebook
    # nbval kills each kernel after its last cell; the extension ended the run before that.
    assert list(runs["status"]) == ["completed"] * len(EXAMPLES)
    by_name = {name.removesuffix(" #1"): catalog.get_run(run_id)
               for name, run_id in zip(runs["name"], runs["id"], strict=True)}

    quickstart = by_name["quickstart"]
    assert quickstart.notebook == str(folder / "quickstart.ipynb")
    assert quickstart.notebook_title == "Quickstart: a tracked k-NN classifier"
    assert (quickstart.project, quickstart.labels) == ("examples", ("quickstart",))
    assert quickstart.params == {"k": 5, "test_fraction": 0.3, "seed": 0}
    assert 0.8 < quickstart.metrics["accuracy"] <= 1.0
    assert [a["uri"] for a in quickstart.inputs] == [str(folder / "data" / "flowers.csv")]
    assert sorted(a["uri"] for a in quickstart.outputs) == [
        str(folder / "outputs" / "predictions.csv"),
        str(folder / "outputs" / "quickstart-metrics.json")]
    assert all(cell["success"] for cell in quickstart.cells)

    consumer = by_name["consumer"]
    upstream = catalog.lineage(consumer.id).query("direction == 'upstream'")
    assert list(upstream["run_id"]) == [by_name["producer"].id]
    assert list(upstream["uri"]) == [str(folder / "outputs" / "features.csv")]

    history = catalog.metric_history(by_name["parameterized"].id, "loss")
    assert list(history["step"]) == list(range(10, 101, 10))
    assert history["value"].is_monotonic_decreasing

    tour = tracker.Catalog(folder / "tour-runs" / "catalog.duckdb")
    assert "sweep-lr-0.1" in set(tour.runs(include_deleted=True)["name"])

    loop = tracker.Catalog(folder / "reproduce-runs" / "catalog.duckdb").runs(
        order_by="started_at")
    assert list(loop["name"]) == ["train #1", "train #2", "train #3"]
    assert list(loop["tags.reproduces"].fillna("")) == ["", "", loop["id"][0]]
    assert list(loop["status"]) == ["completed"] * 3


def test_a_papermill_run_keeps_the_executed_notebook(tmp_path: Path) -> None:
    import nbformat

    source = tmp_path / "train.ipynb"
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("%load_ext tracker"),
        nbformat.v4.new_code_cell("lr = 0.1", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("print(f'trained with lr={lr}')")])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}
    nbformat.write(notebook, source)
    catalog_path = tmp_path / "catalog.duckdb"
    env = {**os.environ, "TRACKER_CATALOG": str(catalog_path)}
    subprocess.run([sys.executable, "-m", "papermill", "train.ipynb", "train-out.ipynb",
                    "-p", "lr", "0.5"], cwd=tmp_path, env=env, capture_output=True,
                   timeout=300, check=True)
    run_id = tracker.Catalog(catalog_path).runs()["id"][0]
    from tracker.cli import main

    assert main(["--catalog", str(catalog_path), "notebook", run_id,
                 "-o", str(tmp_path / "kept.ipynb")]) == 0
    kept = nbformat.read(tmp_path / "kept.ipynb", as_version=4)
    printed = kept.cells[-1].outputs[0]["text"]
    assert printed == "trained with lr=0.5\n"  # the executed notebook, with its outputs
