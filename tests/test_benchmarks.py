"""Smoke test of the benchmark suite: ``python -m benchmarks --quick`` reports every figure.

No timing thresholds: the numbers depend on the machine. MLflow is measured only if its venv
already exists (the suite never installs it in quick mode).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
# benchmarks/ is not an installed package: import the copy beside these tests.
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def _expected_keys(tmp_path: Path) -> set[str]:
    import benchmarks.figures  # noqa: F401 (registers the groups)
    from benchmarks.framework import Context, figure_keys

    return set(figure_keys(Context(quick=True, workdir=tmp_path, mlflow_missing="not needed")))


@pytest.mark.slow
def test_quick_suite_reports_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "results"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((out / "latest.json").read_text())
    assert set(results["figures"]) == _expected_keys(tmp_path)
    assert results["mode"] == "quick"
    assert {"cpu", "cores", "memory_gib", "python", "duckdb", "mlflow", "date"} <= set(
        results["machine"])
    for key, figure in results["figures"].items():
        measured = figure["tracker"]
        assert "median" in measured or measured["missing"], key
    # Groups that need nothing but tracker itself always have a number on tracker's side.
    measured_here = [key for key in results["figures"]
                     if key.startswith(("concurrent.", "readers.", "visible."))]
    assert len(measured_here) == 13
    assert all("median" in results["figures"][key]["tracker"] for key in measured_here), {
        key: results["figures"][key]["tracker"] for key in measured_here}
    table = (out / "latest.md").read_text()
    assert all(figure["title"].replace("|", "\\|") in table
               for figure in results["figures"].values())


def test_unknown_group_is_refused() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--only", "nope"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 2
    assert "unknown group" in done.stderr


def test_stats_give_median_and_quartiles() -> None:
    from benchmarks.framework import Stats

    stats = Stats.of([5.0, 1.0, 3.0, 2.0, 4.0])
    assert (stats.median, stats.q1, stats.q3, stats.low, stats.high, stats.n) == (
        3.0, 2.0, 4.0, 1.0, 5.0, 5)
    assert Stats.of([7.0]).q1 == Stats.of([7.0]).q3 == 7.0


def test_ratio_and_target_of_a_row() -> None:
    from benchmarks.framework import Figure, Measure, Row, Target

    figure = Figure("q", "query", "ms", Target("<=", 150), mlflow=True)
    row = Row(figure, Measure.of([100.0, 120.0]), Measure.of([1100.0]))
    assert row.ratio() == (10.0, False)
    assert row.target_met() is True
    slow = Row(figure, Measure.of([200.0]), Measure.timed_out(120, "ms"))
    assert slow.ratio() == (600.0, True)
    assert slow.target_met() is False


def test_rates_compare_the_other_way_and_counts_not_at_all() -> None:
    from benchmarks.framework import Figure, Measure, Row

    rate = Row(Figure("r", "runs/s", "runs/s", mlflow=True), Measure.of([50.0]), Measure.of([5.0]))
    assert rate.ratio() == (10.0, False)
    count = Row(Figure("c", "lost", "count", mlflow=True), Measure.of([0.0]), Measure.of([3.0]))
    assert count.ratio() is None


def test_a_target_versus_mlflow_is_met_by_the_ratio() -> None:
    from benchmarks.framework import Figure, Measure, Row, Target

    figure = Figure("r", "runs/s", "runs/s", Target(">=", 2, versus_mlflow=True), mlflow=True)
    assert Row(figure, Measure.of([80.0]), Measure.of([37.0])).target_met() is True
    assert Row(figure, Measure.of([60.0]), Measure.of([37.0])).target_met() is False
    assert Row(figure, Measure.of([60.0]), None).target_met() is None  # nothing to compare
    assert figure.target is not None and figure.target.text("runs/s") == ">= 2x MLflow"


def test_unavailable_figure_shows_its_reason() -> None:
    from benchmarks import report
    from benchmarks.framework import Figure, Measure, Row

    row = Row(Figure("w", "widget", "ms"), Measure.unavailable("widgets not landed"), None)
    table = report.text_table([row])
    assert "not available: widgets not landed" in table


@pytest.mark.slow
def test_postgres_groups_measure_writers_and_reads_apart(tmp_path: Path,
                                                         pg_cluster: Any) -> None:
    """The two PostgreSQL groups each start their own server (``pg_cluster``: skipped, or
    failed under CI, where there is none): ``postgres`` the writers with readers and one run's
    way to a reader, ``postgres_100k`` the reads; each runs alone."""
    out = tmp_path / "results"
    groups = {"postgres": ("pg.write.", "pg.visible."),
              "postgres_100k": ("pg.query.", "pg.widget.")}
    for group, prefixes in groups.items():
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks", "--quick", "--only", group, "--no-mlflow",
             "--out", str(out)], cwd=REPO, capture_output=True, text=True, timeout=300,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        figures = json.loads((out / "latest.json").read_text())["figures"]
        assert all(key.startswith(prefixes) for key in figures), sorted(figures)
        assert all("median" in figures[key]["tracker"] for key in figures), {
            key: figures[key]["tracker"] for key in figures}
        if group == "postgres":
            assert len(figures) == 7  # 5 of the writers, a long-lived A's run, a script's
            assert "long-lived" in figures["pg.visible.one"]["tracker"]["note"]
            assert figures["pg.write.lost"]["tracker"]["median"] == 0
        else:
            assert figures["pg.query.filter"]["tracker"]["note"] == "31 rows"  # of 200




def test_the_contents_group_times_each_step_in_every_round(tmp_path: Path) -> None:
    """Keeping is timed against cp and cp + fdatasync (keeping syncs, cp does not) in rounds
    whose order rotates, with CPU seconds beside each step; a ratio is taken within a round."""
    from benchmarks.figures.contents import ratios
    from benchmarks.sides import tracker_job

    folder = tmp_path / "keep"
    folder.mkdir()
    got = tracker_job({"op": "keep", "folder": str(folder), "size": 1 << 20, "repeats": 4,
                       "copies": 2}).check().result
    steps = ("cp", "cp_sync", "keep", "copy_hashed", "cp_back", "restore")
    for step in steps:
        assert len(got[step]) == len(got[f"{step}_cpu"]) == 4, step
        assert all(seconds > 0 for seconds in got[step]), step
    assert got["store_bytes"] == 1 << 20  # two runs of the same content: stored once
    assert ratios([2.0, 3.0], [1.0, 6.0]) == [2.0, 0.5]
    with pytest.raises(ValueError):
        ratios([1.0], [1.0, 2.0])  # rounds never paired out of step
