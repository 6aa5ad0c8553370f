"""tracker.sql() reads the catalog and nothing else: one SELECT, in a sandbox of its own."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest

import tracker


@pytest.fixture
def two_catalogs(catalog: tracker.Catalog, tmp_path: Path) -> tracker.Catalog:
    """``catalog`` with one run, and ``tmp_path/other.duckdb`` with one run of its own."""
    with catalog.start_run("mine", params={"lr": 0.1}) as run:
        run.log_metric("acc", 0.9)
    other = tracker.Catalog(tmp_path / "other.duckdb")
    with other.start_run("theirs"):
        pass
    catalog.flush()
    other.flush()
    return catalog


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _files(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (lock files aside: they are empty), with its hash."""
    return {str(p.relative_to(folder)): _digest(p) for p in sorted(folder.rglob("*"))
            if p.is_file() and p.suffix != ".lock"}


def test_sql_reads_runs_with_positional_or_named_params(two_catalogs: tracker.Catalog) -> None:
    found = two_catalogs.sql("SELECT name FROM runs WHERE name = ?", ["mine"])
    assert found["name"].tolist() == ["mine"]
    named = two_catalogs.sql("SELECT name FROM runs WHERE name = $name", {"name": "mine"})
    assert named["name"].tolist() == ["mine"]
    # The JSON is the faithful record (run_values, the typed copy, may lag behind writers).
    assert two_catalogs.sql("SELECT CAST(metrics->>'acc' AS DOUBLE) AS acc FROM runs")[
        "acc"].tolist() == [0.9]
    assert len(two_catalogs.sql("WITH r AS (SELECT * FROM runs) SELECT id FROM r")) == 1
    assert len(two_catalogs.sql("DESCRIBE runs")) > 0


ATTACKS = [
    # several statements: the last one a harmless SELECT
    "USE memory; DETACH catalog; ATTACH '{catalog}' AS catalog; DELETE FROM catalog.runs; "
    "SELECT 1",
    "ATTACH '{other}' AS o; DELETE FROM o.runs",
    "ATTACH '{other}' AS o",
    "DELETE FROM runs",
    "DROP TABLE metrics",
    "COPY (SELECT 'print(1)') TO '{folder}/startup.py' (HEADER false, QUOTE '')",
    "EXPORT DATABASE '{folder}/dump'",
    "SET GLOBAL memory_limit = '1MB'",
    "PRAGMA memory_limit = '1MB'",
    "EXPLAIN ANALYZE DELETE FROM runs",
    "CALL pragma_version()",
    # one SELECT that writes or reads outside the catalog: the sandbox refuses it
    "WITH gone AS (DELETE FROM runs RETURNING id) SELECT * FROM gone",
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_blob('/etc/hostname')",
    "SELECT * FROM glob('/root/*')",
    "SELECT * FROM '{other}'",
    "SELECT * FROM read_text('{folder}/catalog.duckdb.lock')",
]


@pytest.mark.parametrize("attack", ATTACKS)
def test_sql_refuses_anything_but_reading_the_catalog(two_catalogs: tracker.Catalog,
                                                      tmp_path: Path, attack: str) -> None:
    text = attack.format(catalog=two_catalogs.path, other=tmp_path / "other.duckdb",
                         folder=tmp_path)
    before = _files(tmp_path)
    with pytest.raises(tracker.ReadOnlySQLError, match="one read-only query is allowed"):
        two_catalogs.sql(text)
    assert _files(tmp_path) == before  # both catalogs byte for byte, and no new file
    with two_catalogs.start_run("after") as run:  # tracker still writes in this process
        run.log_metric("acc", 0.5)
    assert sorted(two_catalogs.runs()["name"]) == ["after", "mine"]
    assert list(tracker.Catalog(tmp_path / "other.duckdb").runs()["name"]) == ["theirs"]


@pytest.mark.parametrize("query", ["", "  ;  ", "SELECT 1; SELECT 2"])
def test_sql_needs_exactly_one_statement(catalog: tracker.Catalog, query: str) -> None:
    with pytest.raises(tracker.ReadOnlySQLError, match="statement"):
        catalog.sql(query)


@pytest.mark.parametrize(("query", "params"), [
    (None, None), (b"SELECT 1", None), ("SELECT ?", "1"), ("SELECT ?", 1),
    ("SELECT $a", {1: "x"}),
])
def test_sql_refuses_arguments_of_the_wrong_type(catalog: tracker.Catalog, query: object,
                                                 params: object) -> None:
    with pytest.raises(tracker.ArgumentError):
        catalog.sql(query, params)  # type: ignore[arg-type]


@pytest.mark.parametrize(("query", "params"), [
    ("SELEC 1", None), ("SELECT * FROM nowhere", None), ("SELECT nothing FROM runs", None),
    ("SELECT ?", [1, 2]), ("SELECT ?", [object()]),
])
def test_a_failing_query_is_an_sql_error_with_duckdbs_reason(
        catalog: tracker.Catalog, query: str, params: list[object] | None) -> None:
    with pytest.raises(tracker.SQLError) as caught:
        catalog.sql(query, params)
    assert not isinstance(caught.value, tracker.ReadOnlySQLError)
    assert "\n" not in str(caught.value) and str(caught.value)


def test_module_sql_is_read_only_too(tmp_path: Path) -> None:
    with tracker.start_run("kept"):
        pass
    with pytest.raises(tracker.ReadOnlySQLError):
        tracker.sql("DELETE FROM runs")
    assert tracker.sql("SELECT name FROM runs")["name"].tolist() == ["kept"]


def test_a_query_past_the_time_limit_is_stopped(catalog: tracker.Catalog,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACKER_SQL_TIMEOUT", "0.5")
    started = time.monotonic()
    with pytest.raises(tracker.SQLError, match="longer than 0.5 s"):
        catalog.sql("SELECT count(*) FROM range(10_000_000_000_000)")
    assert time.monotonic() - started < 10
    assert catalog.sql("SELECT 1 AS one")["one"].tolist() == [1]  # the lock is free again


@pytest.mark.parametrize("query", ["SELECT union_value(k := 1)",
                                   "SELECT * FROM test_all_types()"])
def test_a_result_pandas_cannot_hold_says_to_cast_it(catalog: tracker.Catalog,
                                                      query: str) -> None:
    with pytest.raises(tracker.SQLError, match="CAST it to VARCHAR"):
        catalog.sql(query)
    cast = catalog.sql("SELECT CAST(union_value(k := 1) AS VARCHAR) AS u")
    assert cast["u"].tolist() == ["1"]
