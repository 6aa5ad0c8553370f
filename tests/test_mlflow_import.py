"""An MLflow history imported into tracker: the stores in tests/data/mlflow were written by a real
MLflow (tests/data/mlflow/make_stores.py) and are read here by MLflow's own client, the
mlflow-skinny of the test extras."""

from __future__ import annotations

import datetime as dt
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from mlflow_stores import copy_store

import tracker
from tracker import mlflow_reader
from tracker.mlflow_import import MLflowImport

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)  # make_stores.py's first start time


@pytest.fixture(scope="module", params=["mlruns", "sqlite"])
def imported(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
             ) -> tuple[tracker.Catalog, MLflowImport, str]:
    """Each fixture store imported once into a catalog of its own."""
    folder = tmp_path_factory.mktemp(request.param)
    store = copy_store(request.param, folder)
    catalog = tracker.Catalog(folder / "catalog.duckdb")
    return catalog, catalog.import_mlflow(store), store


def _run(catalog: tracker.Catalog, name: str) -> tracker.RunInfo:
    found = catalog.runs(name=name, include_deleted=True)
    assert len(found) == 1, name
    return catalog.get_run(found["id"][0])


@pytest.mark.slow
def test_experiments_become_projects_and_runs_keep_their_record(
        imported: tuple[tracker.Catalog, MLflowImport, str]) -> None:
    catalog, report, _ = imported
    assert len(report.imported) == 9 and report.skipped == {}
    counts = catalog.count_runs(by="project")
    assert dict(zip(counts["project"], counts["count"])) == {"churn": 4, "sweeps": 3,
                                                             "Default": 1}
    baseline = _run(catalog, "baseline")
    assert (baseline.project, baseline.status, baseline.user) == ("churn", "completed", "alice")
    assert (baseline.started_at, baseline.ended_at) == (T0, T0 + dt.timedelta(seconds=3))
    assert baseline.notes == "first try"  # MLflow's run description
    # params are text in MLflow; numbers come back as numbers, secrets are redacted
    assert {k: v for k, v in baseline.params.items() if k != "db_password"} == {
        "lr": 0.01, "epochs": 3, "model": "LR"}
    assert baseline.params["db_password"].startswith("<redacted:str:")
    assert list(catalog.runs("params.lr < 0.1 and params.epochs = 3")["name"]) == ["baseline"]


@pytest.mark.slow
def test_every_metric_point_keeps_its_step_and_time(
        imported: tuple[tracker.Catalog, MLflowImport, str]) -> None:
    catalog, _, _ = imported
    baseline = _run(catalog, "baseline")
    history = catalog.metric_history(baseline.id)
    loss = history[history["key"] == "loss"]
    assert list(loss["step"]) == [0, 1, 2]
    assert list(loss["value"]) == pytest.approx([1.0, 0.5, 1 / 3])
    assert list(loss["logged_at"]) == [T0 + dt.timedelta(seconds=s) for s in (0, 1, 2)]
    assert math.isnan(baseline.metrics["acc"])  # the last point of acc was NaN


@pytest.mark.slow
def test_statuses_parents_and_deleted_runs_map_onto_trackers(
        imported: tuple[tracker.Catalog, MLflowImport, str]) -> None:
    catalog, _, _ = imported
    statuses = {name: _run(catalog, name).status for name in
                ("broken", "stopped", "still-going", "in-default")}
    assert statuses == {"broken": "failed", "stopped": "crashed", "still-going": "running",
                        "in-default": "completed"}
    sweep = _run(catalog, "sweep")
    assert {_run(catalog, f"trial-{i}").parent_id for i in (0, 1)} == {sweep.id}
    assert _run(catalog, "deleted").deleted  # in tracker's trash, restorable
    assert "deleted" not in set(catalog.runs()["name"])


@pytest.mark.slow
def test_tags_come_along_with_the_mlflow_run_id(
        imported: tuple[tracker.Catalog, MLflowImport, str]) -> None:
    catalog, report, _ = imported
    baseline = _run(catalog, "baseline")
    mlflow_id = next(k for k, v in report.imported.items() if v == baseline.id)
    assert baseline.tags == {"source": "notebook", "stage": "dev", "mlflow.run_id": mlflow_id}
    found = catalog.runs(f"tags.`mlflow.run_id` = '{mlflow_id}' and tags.stage = 'dev'")
    assert list(found["id"]) == [baseline.id]
    # the parent link is tracker's own, and MLflow's tag stays for those who search by it
    trial = _run(catalog, "trial-0")
    assert report.imported[trial.tags["mlflow.parentRunId"]] == trial.parent_id


@pytest.mark.slow
def test_artifacts_are_recorded_as_uris(
        imported: tuple[tracker.Catalog, MLflowImport, str]) -> None:
    catalog, _, _ = imported
    baseline = _run(catalog, "baseline")
    outputs = sorted(baseline.outputs, key=lambda a: a["uri"])
    assert [a["uri"].rsplit("/artifacts/", 1)[1] for a in outputs] == [
        "model.txt", "plots/nested/model.txt"]
    assert all(a["uri"].startswith("file:///") and a["size"] == 8 and a["via"] == "mlflow"
               for a in outputs)
    assert _run(catalog, "broken").outputs == []


@pytest.mark.slow
def test_a_second_import_adds_nothing(imported: tuple[tracker.Catalog, MLflowImport, str]
                                      ) -> None:
    catalog, first, store = imported
    before = catalog.runs(include_deleted=True)
    again = catalog.import_mlflow(store)
    assert again.imported == {}
    assert again.skipped == {mlflow_id: "already imported" for mlflow_id in first.imported}
    after = catalog.runs(include_deleted=True)
    assert sorted(after["id"]) == sorted(before["id"])
    assert "9 skipped: already imported" in str(again)


def test_a_folder_that_is_no_mlflow_store_is_refused_untouched(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(tracker.ArgumentError, match="not an MLflow store"):
        tracker.import_mlflow(empty)
    assert list(empty.iterdir()) == []  # MLflow would have made a Default experiment there
    (tmp_path / "runs.csv").write_text("a,b\n")
    with pytest.raises(tracker.ArgumentError, match="not an SQLite database"):
        tracker.import_mlflow(tmp_path / "runs.csv")
    with pytest.raises(tracker.ArgumentError, match="cannot read"):
        tracker.import_mlflow(f"sqlite:///{tmp_path / 'missing.db'}")
    assert not (tmp_path / "missing.db").exists()


def test_without_mlflow_the_error_says_what_to_install(tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    with pytest.raises(tracker.ArgumentError, match="pip install mlflow-skinny sqlalchemy "
                       "alembic") as caught:
        tracker.import_mlflow(copy_store("mlruns", tmp_path), mlflow_python=bare / "bin" / "python")
    assert "--mlflow-python" in str(caught.value)
    assert tracker.runs().empty


def test_an_artifact_folder_moved_with_its_store_is_found_beside_it(tmp_path: Path) -> None:
    run_id = "0123456789abcdef0123456789abcdef"
    moved = tmp_path / "copy" / "mlartifacts" / "1" / run_id / "artifacts"
    moved.mkdir(parents=True)
    recorded = f"file:///gone/team/mlartifacts/1/{run_id}/artifacts"
    store = f"sqlite:///{tmp_path / 'copy' / 'mlflow.db'}"
    assert mlflow_reader.moved_folder(recorded, store, run_id) == moved.as_uri()
    # another run's folder, or a folder that is still where it was, is never taken
    assert mlflow_reader.moved_folder(recorded, store, "f" * 32) is None
    assert mlflow_reader.moved_folder(moved.as_uri(), store, run_id) is None


def test_a_run_with_a_time_no_date_can_hold_is_skipped_with_its_reason(tmp_path: Path) -> None:
    store = copy_store("mlruns", tmp_path)
    run_id = "f2f1a32251cb46f9a8f9a1c4c4c31ab3"
    # a metric logged with timestamp=time.time_ns() by mistake: far past the year 9999
    [metric] = Path(store).glob(f"*/{run_id}/metrics/loss")
    metric.write_text("1767225651500000000 0.5 0\n")
    report = tracker.import_mlflow(store)
    assert list(report.skipped) == [run_id]
    assert "is not a date tracker can store" in report.skipped[run_id]
    assert len(report.imported) == 8
    assert len(tracker.runs(include_deleted=True)) == 8


def test_a_reader_whose_output_is_not_json_is_refused_naming_its_python(tmp_path: Path) -> None:
    python = tmp_path / "python"
    python.write_text("#!/bin/sh\nprintf 'Welcome \\377\\n'\n")  # chatter, not a record
    python.chmod(0o755)
    with pytest.raises(tracker.ArgumentError, match=f"reader run by {python} wrote output"):
        tracker.import_mlflow(copy_store("mlruns", tmp_path), mlflow_python=python)


@pytest.mark.slow
def test_an_mlflow_history_imports_into_a_postgresql_catalog_once(
        tmp_path: Path, pg_url: str) -> None:
    # the old code refused import_mlflow on a PostgreSQL catalog (NotOnPostgresError)
    store = copy_store("mlruns", tmp_path)
    server = tracker.Catalog(pg_url)
    report = server.import_mlflow(store)
    assert len(report.imported) == 9 and report.skipped == {}
    local = tracker.Catalog(tmp_path / "catalog.duckdb")
    local.import_mlflow(store)
    for catalog in (server, local):  # the same runs as in a file catalog
        counts = catalog.count_runs(by="project")
        assert dict(zip(counts["project"], counts["count"])) == {"churn": 4, "sweeps": 3,
                                                                 "Default": 1}
    differ = ["deleted_at", "params.db_password"]  # each import's time; each catalog's key
    pd.testing.assert_frame_equal(
        server.runs(include_deleted=True, order_by="id").drop(columns=differ),
        local.runs(include_deleted=True, order_by="id").drop(columns=differ))
    assert _run(server, "baseline").params["db_password"].startswith("<redacted:str:")
    sweep = _run(server, "sweep")
    assert {_run(server, f"trial-{i}").parent_id for i in (0, 1)} == {sweep.id}
    again = server.import_mlflow(store)
    assert again.imported == {} and set(again.skipped.values()) == {"already imported"}
    assert len(server.runs(include_deleted=True)) == 9
