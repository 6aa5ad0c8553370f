"""tracker.diff / tracker diff: two runs compared section by section; hostile text escaped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

import tracker
from tracker.cli import main
from tracker.diffing import MetricDiff, environment_diff

HOSTILE = "<script>alert(1)</script>"
CODE = """\
import os

import tracker

with open("data.csv", encoding="utf-8") as handle:
    rows = handle.read().split()
os.makedirs("out", exist_ok=True)
with open("out/model.txt", "w", encoding="utf-8") as handle:
    handle.write(f"{len(rows) * lr}\\n")
tracker.log_metric("loss", 1 / (1 + lr))
"""


def _git(folder: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.email=t@example.org", "-c", "user.name=t", *args],
                   cwd=folder, check=True, capture_output=True)


def _run(folder: Path, catalog: Path, code: str, *params: str) -> str:
    """Commit the notebook with ``code`` and run it with papermill; the id of its run."""
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("%load_ext tracker"),
        nbformat.v4.new_code_cell("lr = 0.1\nnote = 'plain'", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(code)])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}
    nbformat.write(notebook, folder / "train.ipynb")
    _git(folder, "add", "train.ipynb", "data.csv")
    _git(folder, "commit", "-q", "-m", "change")
    before = set(tracker.Catalog(catalog).runs()["id"]) if catalog.exists() else set()
    subprocess.run([sys.executable, "-m", "papermill", "train.ipynb", "ran.ipynb", *params],
                   cwd=folder, env={**os.environ, "TRACKER_CATALOG": str(catalog)},
                   capture_output=True, timeout=300, check=True)
    (new,) = set(tracker.Catalog(catalog).runs()["id"]) - before
    return str(new)


@pytest.mark.slow
def test_two_runs_differ_in_every_section_and_the_html_escapes_them(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "data.csv").write_text("a\nb\n", encoding="utf-8")
    _git(folder, "init", "-q")
    catalog_path = tmp_path / "catalog" / "catalog.duckdb"
    first = _run(folder, catalog_path, CODE, "-p", "lr", "0.1")
    second = _run(folder, catalog_path, CODE + f"# {HOSTILE}\n",
                  "-p", "lr", "0.5", "-p", "note", HOSTILE)
    catalog = tracker.Catalog(catalog_path)

    diff = catalog.diff(first, second)

    assert diff.params_changed == {"lr": (0.1, 0.5), "note": ("plain", HOSTILE)}
    assert f"+# {HOSTILE}\n" in diff.code and "+tracker.log_metric" not in diff.code
    assert "-lr = 0.1" in diff.code and "+lr = 0.5" in diff.code  # papermill's injected cell
    assert [(f.role, f.path, f.status) for f in diff.files] == [
        ("input", "data.csv", "same"), ("output", "out/model.txt", "changed")]
    assert diff.environment.git_commit is not None
    assert diff.environment.git_commit[0] != diff.environment.git_commit[1]
    assert [(m.key, m.a, m.b) for m in diff.metrics] == [("loss", 1 / 1.1, 1 / 1.5)]

    page = diff._repr_html_()
    assert HOSTILE not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert str(diff).count(HOSTILE) >= 2  # text output is plain text

    assert main(["--catalog", str(catalog_path), "diff", first, second, "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["params_changed"]["lr"] == [0.1, 0.5]
    assert data["metrics"][0]["difference"] == pytest.approx(1 / 1.5 - 1 / 1.1)
    assert [f["status"] for f in data["files"]] == ["same", "changed"]

    from tracker.widgets import RunComparison

    compare = RunComparison([first, second], catalog=catalog)
    assert "Code" in compare.differences.value and "Environment" in compare.differences.value
    assert "git commit" in compare.differences.value
    assert HOSTILE not in compare.differences.value
    assert "&lt;script&gt;" in compare.differences.value


def test_params_and_metrics_added_removed_changed_and_type_changes(tmp_path: Path) -> None:
    catalog = tracker.Catalog(tmp_path / "catalog.duckdb")
    with catalog.start_run("a", params={"lr": 1, "gone": "x", "same": 2.0}) as a:
        a.log_metric("loss", 0.5)
        a.log_metric("only_a", 1.0)
    with catalog.start_run("b", params={"lr": 1.0, "new": True, "same": 2.0}) as b:
        b.log_metric("loss", 0.25)
    diff = catalog.diff(a.id, b.id)
    assert diff.params_added == {"new": True}
    assert diff.params_removed == {"gone": "x"}
    assert diff.params_changed == {"lr": (1, 1.0)}  # an int that became a float did change
    assert [(m.key, m.a, m.b, m.difference) for m in diff.metrics] == [
        ("loss", 0.5, 0.25, -0.25), ("only_a", 1.0, None, None)]
    assert diff.code == "" and diff.files == []
    assert "the same cells ran" in str(diff)


def test_the_environment_diff_names_packages_python_and_commit() -> None:
    a = {"python": "3.11.7", "packages": {"numpy": "1.26.4", "gone": "1.0", "same": "2"},
         "git": {"commit": "abc", "dirty": False}}
    b = {"python": "3.12.1", "packages": {"numpy": "2.0.1", "new": "0.1", "same": "2"},
         "git": {"commit": "abc", "dirty": True}}
    diff = environment_diff(a, b)
    assert diff.lines() == ["python 3.11.7 -> 3.12.1", "git dirty False -> True",
                            "gone 1.0 -> -", "new - -> 0.1", "numpy 1.26.4 -> 2.0.1"]
    assert not environment_diff(a, a)
    assert environment_diff(None, None).lines() == []


def test_metric_tolerance_treats_nan_alike_and_missing_as_different() -> None:
    assert MetricDiff("m", 1.0, 1.0 + 1e-9).within(1e-6)
    assert not MetricDiff("m", 1.0, 1.0 + 1e-9).within(0.0)
    assert MetricDiff("m", float("nan"), float("nan")).within(0.0)
    assert not MetricDiff("m", float("nan"), 1.0).within(1.0)
    assert not MetricDiff("m", 1.0, None).within(1.0)
    assert MetricDiff("m", float("inf"), float("inf")).within(0.0)
