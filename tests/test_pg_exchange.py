"""Export and import on a PostgreSQL catalog (tracker/pg_exchange.py): the file catalog's
descriptor, so a run exported from either back end imports into either, checked first."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_transfer import record_runs, same_runs

import tracker


def test_export_and_import_across_back_ends(catalog: tracker.Catalog, pg_url: str,
                                            tmp_path: Path) -> None:
    ids = record_runs(catalog, tmp_path)
    server = tracker.Catalog(pg_url)
    for run_id in ids:  # file -> server
        assert server.import_run(catalog.export_run(run_id, tmp_path / f"{run_id}.yaml")) \
            == run_id
    same_runs(catalog, server)
    with pytest.raises(tracker.TrackerError, match="already in"):
        server.import_run(tmp_path / f"{ids[1]}.yaml")
    back = tracker.Catalog(tmp_path / "back" / "catalog.duckdb")
    for run_id in ids:  # server -> file
        back.import_run(server.export_run(run_id, tmp_path / f"{run_id}.json"))
    same_runs(catalog, back)
    with pytest.raises(tracker.TrackerError, match="already exists"):
        server.export_run(ids[0], tmp_path / f"{ids[0]}.json")
    # nothing of it is kept on the server (no TRACKER_STORE): no folder of contents either
    server.export_run(ids[0], tmp_path / "with.json", contents=True)
    assert not (tmp_path / "with.json.contents").exists()


def test_importing_into_the_server_checks_the_descriptor_first(
        catalog: tracker.Catalog, pg_url: str, tmp_path: Path) -> None:
    with catalog.start_run("source", params={"lr": 0.1}) as run:
        run.log_metric("loss", 0.5)
    catalog.flush()
    path = catalog.export_run(run.id, tmp_path / "run.json")
    data = json.loads(path.read_text())
    server = tracker.Catalog(pg_url)
    data["run"]["id; DROP TABLE runs; --"] = "x"
    path.write_text(json.dumps(data))
    with pytest.raises(tracker.DescriptorError) as caught:
        server.import_run(path)
    assert caught.value.field == "run.id; DROP TABLE runs; --"
    del data["run"]["id; DROP TABLE runs; --"]
    data["run"]["notes"] = "a NUL \x00"
    path.write_text(json.dumps(data))
    with pytest.raises(tracker.CatalogError, match="cannot hold run"):
        server.import_run(path)
    assert server.runs().empty  # the tables are there, and nothing half-imported


def test_a_run_kept_on_a_server_exports_with_its_contents_and_imports_anywhere(
        pg_cluster: Any, pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the old code refused export_run(contents=True) on a server, which kept nothing
    monkeypatch.setenv("TRACKER_STORE", str(tmp_path / "team-store"))
    server = tracker.Catalog(pg_url)
    model = tmp_path / "model.bin"
    with server.start_run("kept") as run:
        model.write_bytes(b"the weights")
        run.log_output(model)
    server.flush()
    kept = server.get_artifact(model).blob
    path = server.export_run(run.id, tmp_path / "run.yaml", contents=True)
    assert [item.name for item in (tmp_path / "run.yaml.contents").iterdir()] == [kept]
    monkeypatch.setenv("TRACKER_STORE", str(tmp_path / "other-store"))  # another team's
    other = tracker.Catalog(pg_cluster.url(pg_cluster.fresh_database()))
    assert other.import_run(path) == run.id
    assert [entry.key for entry in other.content_store.entries()] == [kept]
    monkeypatch.delenv("TRACKER_STORE")  # a laptop keeping in its own folder
    local = tracker.Catalog(tmp_path / "local" / "catalog.duckdb")
    assert local.import_run(path) == run.id
    for catalog in (other, local):
        with catalog.get_artifact(model).open() as stream:
            assert stream.read() == b"the weights"
