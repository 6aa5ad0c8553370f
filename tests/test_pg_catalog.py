"""Catalog("postgresql://...") and TRACKER_CATALOG open a PostgreSQL catalog
(tracker/pg_catalog.py): its reads work through the public front, every operation not ported
yet is a NotOnPostgresError (a CatalogError) saying so, and a password in the URL is never shown."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from test_contents import bucket, shared_setting  # noqa: F401  (fixtures, used by name)

import tracker
from tracker import api, cli
from tracker.errors import NotOnPostgresError

SECRET = "s3cr3t-Pw"  # trust authentication on the test socket: libpq sends it, never asked


@pytest.fixture
def secret_url(pg_url: str) -> str:
    """The test database's URL with a password in it."""
    return pg_url.replace("postgresql://postgres@", f"postgresql://postgres:{SECRET}@", 1)


def test_the_url_in_tracker_catalog_opens_the_server_and_makes_no_file(
        secret_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the old code read the setting as a path: 'postgresql:/postgres:...' under the cwd
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TRACKER_CATALOG", secret_url)
    catalog = tracker.Catalog()
    empty = tracker.Catalog(tmp_path / "empty" / "c.duckdb").runs()
    pd.testing.assert_frame_equal(catalog.runs(), empty)
    assert catalog.count_runs(by=None)["count"].tolist() == [0]
    assert list(tmp_path.iterdir()) == [tmp_path / "empty"]
    assert SECRET not in repr(catalog) and "postgres:***@" in repr(catalog)


def test_the_module_level_reads_use_the_server(secret_url: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACKER_CATALOG", secret_url)
    api.use_catalog(None)
    try:
        assert tracker.runs().empty and tracker.current_run() is None
        assert tracker.sql("SELECT 1 + 1 AS two")["two"].tolist() == [2]
    finally:
        api.use_catalog(None)


def _calls(tmp_path: Path) -> list[tuple[str, Callable[[tracker.Catalog], Any]]]:
    """Each operation not ported to PostgreSQL catalogs, as one call."""
    return [
        ("connect", lambda c: c.connect()),
        ("read_locked", lambda c: c.read_locked()),
    ]


def test_what_is_not_ported_is_refused_by_name(secret_url: str, tmp_path: Path) -> None:
    catalog = tracker.Catalog(secret_url)
    for name, call in _calls(tmp_path):
        with pytest.raises(NotOnPostgresError,
                           match="not yet supported on PostgreSQL catalogs") as refused:
            call(catalog)
        assert isinstance(refused.value, tracker.CatalogError), name
        assert name in str(refused.value), name
        assert SECRET not in str(refused.value) and SECRET not in refused.value.path
    assert os.listdir(tmp_path) == []  # nothing written next to the caller


def test_its_path_is_the_url_without_the_password(secret_url: str) -> None:
    catalog = tracker.Catalog(secret_url)
    assert catalog.path == secret_url.replace(SECRET, "***") and SECRET not in catalog.path
    assert catalog.path == tracker.Catalog(catalog.path).path  # the same catalog


def test_a_file_catalog_is_still_a_file_catalog(tmp_path: Path) -> None:
    catalog = tracker.Catalog(tmp_path / "c.duckdb")
    assert type(catalog) is tracker.Catalog
    with catalog.start_run("x") as run:
        run.log_metric("acc", 1.0)
    assert catalog.runs()["metrics.acc"].tolist() == [1.0]


def test_the_command_line_reads_the_server(secret_url: str, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--catalog", secret_url, "runs"]) == 0
    assert cli.main(["--catalog", secret_url, "sql", "SELECT 40 + 2 AS answer"]) == 0
    assert cli.main(["--catalog", secret_url, "rm", "--yes", "01r1"]) != 0  # no such run
    assert cli.main(["--catalog", secret_url, "status", "01r1", "failed"]) != 0
    assert cli.main(["--catalog", secret_url, "purge", "--yes"]) == 0
    assert cli.main(["--catalog", secret_url, "import-mlflow", str(tmp_path)]) != 0
    shown = capsys.readouterr()
    assert "42" in shown.out and "not an MLflow store" in shown.err
    assert "no runs in the trash" in shown.out and "no run matches '01r1'" in shown.err
    assert SECRET not in shown.out + shown.err



def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_kept_contents_go_to_the_shared_store_and_come_back_on_another_machine(
        secret_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # the old code kept nothing on a PostgreSQL catalog (stores_contents was False)
    monkeypatch.setenv("TRACKER_STORE", str(tmp_path / "team-store"))
    catalog = tracker.Catalog(secret_url)
    model = tmp_path / "work" / "model.bin"
    with catalog.start_run("first") as first:
        first.log_output(_write(model, b"version one"))
    with catalog.start_run("second") as second:
        second.log_output(_write(model, b"version two"))
    catalog.flush()
    assert list(catalog.artifacts(role="output")["kept"]) == ["kept", "kept"]
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "other-machine"))
    elsewhere = tracker.Catalog(secret_url)  # its own local folder; the same server and store
    with elsewhere.get_artifact(model, version=1).open() as stream:
        assert stream.read() == b"version one"
    back = elsewhere.get_artifact(model, run=second.id).restore(tmp_path / "back.bin")
    assert back.read_bytes() == b"version two"
    assert cli.main(["--catalog", secret_url, "get", first.id, str(model), "-o",
                     str(tmp_path / "v1.bin")]) == 0
    assert (tmp_path / "v1.bin").read_bytes() == b"version one"
    assert cli.main(["--catalog", secret_url, "versions", str(model)]) == 0
    assert cli.main(["--catalog", secret_url, "du"]) == 0
    shown = capsys.readouterr()
    assert str(tmp_path / "team-store") in shown.out and "2 (22 B)" in shown.out
    assert SECRET not in shown.out + shown.err
    assert not list((tmp_path / "data").rglob("blake3-*"))  # nothing kept on this machine only


@pytest.mark.usefixtures("shared_setting")  # TRACKER_STORE: a team folder, or a moto bucket
def test_purge_removes_from_the_store_only_what_no_run_of_the_server_references(
        pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tracker import shared_store

    ann = tracker.Catalog(pg_url)
    common, mine, theirs = os.urandom(3000), os.urandom(3000), os.urandom(3000)
    with ann.start_run("gone") as gone:
        gone.log_output(_write(tmp_path / "a-only.bin", mine))
        gone.log_output(_write(tmp_path / "a-common.bin", common))
    ann.flush()
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "bob"))
    bob = tracker.Catalog(pg_url)  # another machine recording into the same server
    with bob.start_run("stays") as stays:
        stays.log_output(_write(tmp_path / "b-only.bin", theirs))
        stays.log_output(_write(tmp_path / "b-common.bin", common))
    bob.flush()
    store = ann.content_store
    assert len(list(store.entries())) == 3

    ann.delete_run(gone.id)
    assert ann.purge(store=True) == {"runs": 1, "blobs": 0, "shared": 0}  # within the grace
    monkeypatch.setattr(shared_store, "SETTLE", 0)  # marks made by runs long committed
    monkeypatch.setattr(shared_store, "GRACE", -1)  # contents stored long ago
    assert ann.purge(store=True)["shared"] == 1  # a-only: b's runs still reference the rest
    assert {entry.key for entry in store.entries()} == {
        bob.get_artifact(tmp_path / name).blob for name in ("b-only.bin", "b-common.bin")}
    with bob.get_artifact(tmp_path / "b-common.bin").open() as stream:
        assert stream.read() == common


def test_without_a_shared_store_files_are_recorded_not_kept_and_a_request_is_told(
        pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("TRACKER_STORE", raising=False)
    catalog = tracker.Catalog(pg_url)
    with catalog.start_run("no store") as run:  # as the settings chose: no warning
        run.log_output(_write(tmp_path / "a.csv", b"a\n1\n"))
        with pytest.warns(tracker.TrackerWarning, match="set TRACKER_STORE") as warned:
            run.log_output(_write(tmp_path / "b.csv", b"b\n2\n"), keep=True)  # asked for
            run.log_output(_write(tmp_path / "c.csv", b"c\n3\n"), keep=True)
    assert len(warned) == 1
    catalog.flush()
    assert list(catalog.artifacts(run.id)["kept"]) == ["not kept"] * 3
    with pytest.raises(tracker.ArtifactNotFoundError, match="not kept.*TRACKER_STORE set"):
        catalog.get_artifact(tmp_path / "a.csv").open()
    assert not list((tmp_path / "data").rglob("blake3-*"))  # no private copy either
    assert cli.main(["--catalog", pg_url, "du"]) == 1
    assert "set TRACKER_STORE" in capsys.readouterr().err
