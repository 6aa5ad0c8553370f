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

import tracker
from tracker import api
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
        ("import_mlflow", lambda c: c.import_mlflow(tmp_path)),
        ("reproduce", lambda c: c.reproduce("01r1")),
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
    from tracker import cli

    assert cli.main(["--catalog", secret_url, "runs"]) == 0
    assert cli.main(["--catalog", secret_url, "sql", "SELECT 40 + 2 AS answer"]) == 0
    assert cli.main(["--catalog", secret_url, "rm", "--yes", "01r1"]) != 0  # no such run
    assert cli.main(["--catalog", secret_url, "status", "01r1", "failed"]) != 0
    assert cli.main(["--catalog", secret_url, "purge", "--yes"]) == 0
    assert cli.main(["--catalog", secret_url, "import-mlflow", str(tmp_path)]) != 0
    shown = capsys.readouterr()
    assert "42" in shown.out and "not yet supported on PostgreSQL catalogs" in shown.err
    assert "no runs in the trash" in shown.out and "no run matches '01r1'" in shown.err
    assert SECRET not in shown.out + shown.err

