"""tracker.sql() reads the catalog and nothing else: one SELECT, in a sandbox of its own."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

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


# -- a PostgreSQL catalog (tracker/pg_readonly_sql.py): the server's parser and rules --------

PG_ATTACKS = [
    "SELECT 1; DELETE FROM runs",
    "DELETE FROM runs",
    "UPDATE runs SET name = 'changed'",
    "DROP TABLE metrics",
    "WITH gone AS (DELETE FROM runs RETURNING id) SELECT * FROM gone",
    "EXPLAIN ANALYZE DELETE FROM runs",
    "CREATE TABLE stolen AS SELECT * FROM runs",
    "COPY runs TO '/tmp/tracker-stolen.csv'",
    "SET default_transaction_read_only = off",
    "COMMIT",
    "  /* a comment first */ TRUNCATE runs",
    "SELECT nextval('params_seq_seq')",
    "SELECT set_config('transaction_read_only', 'off', true)",
    "",
]


@pytest.fixture
def pg_catalog(pg_url: str) -> Any:
    """A PostgreSQL catalog's store holding one run, named 'mine', with lr 0.1."""
    from tracker import events
    from tracker.storage import pg_writer
    from tracker.storage.pg_store import PgStore

    store = PgStore(pg_url, 10)
    now = time.time()
    batch = [events.Start("01mine", {"name": "mine", "started_at": now}),
             events.Param("01mine", "lr", 0.1, "float", now)]
    with store.connect(write=True) as con:
        pg_writer.apply(con, [events.Spooled("01mine", n, e) for n, e in enumerate(batch, 1)])
    return store


def _pg_state(store: Any) -> list[Any]:
    with store.connect() as con:
        return [con.execute("SELECT id, name, params, spool_seq FROM runs").fetchall(),
                con.execute("SELECT count(*) FROM params").fetchone(),
                con.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'tracker' "
                            "ORDER BY 1").fetchall(),
                con.execute("SELECT count(*) FROM pg_largeobject_metadata").fetchone()]


def test_pg_sql_reads_the_catalog_with_positional_params(pg_catalog: Any) -> None:
    from tracker import pg_readonly_sql

    found = pg_readonly_sql.run(pg_catalog, "SELECT name FROM runs WHERE name = $1", ["mine"])
    assert found["name"].tolist() == ["mine"]
    lr = pg_readonly_sql.run(pg_catalog, "SELECT (params::jsonb->>'lr')::float8 AS lr FROM runs")
    assert lr["lr"].tolist() == [0.1]
    assert pg_readonly_sql.run(pg_catalog, "VALUES (1, 'a')").shape == (1, 2)
    assert len(pg_readonly_sql.run(pg_catalog, "WITH r AS (SELECT * FROM runs) "
                                               "SELECT id FROM r")) == 1


@pytest.mark.parametrize("attack", PG_ATTACKS)
def test_pg_sql_refuses_anything_but_reading(pg_catalog: Any, attack: str) -> None:
    from tracker import pg_readonly_sql

    before = _pg_state(pg_catalog)
    with pytest.raises(tracker.ReadOnlySQLError, match="one read-only query is allowed"):
        pg_readonly_sql.run(pg_catalog, attack)
    assert _pg_state(pg_catalog) == before
    assert not Path("/tmp/tracker-stolen.csv").exists()


@pytest.mark.parametrize(("query", "params"), [
    ("SELECT * FROM nowhere", None), ("SELECT nothing FROM runs", None),
    ("SELECT 1 +", None), ("SELECT 1/0", None),
])
def test_pg_a_failing_query_is_an_sql_error_with_the_servers_reason(
        pg_catalog: Any, query: str, params: list[object] | None) -> None:
    from tracker import pg_readonly_sql

    with pytest.raises(tracker.SQLError) as caught:
        pg_readonly_sql.run(pg_catalog, query, params)
    assert not isinstance(caught.value, tracker.ReadOnlySQLError)
    assert "\n" not in str(caught.value) and str(caught.value)


@pytest.mark.parametrize(("query", "params"), [
    (None, None), (b"SELECT 1", None), ("SELECT $1", "1"), ("SELECT $1", 1),
    ("SELECT $a", {"a": "x"}), ("SELECT '\x00'", None),
])
def test_pg_sql_refuses_arguments_of_the_wrong_type(pg_catalog: Any, query: object,
                                                    params: object) -> None:
    from tracker import pg_readonly_sql

    with pytest.raises(tracker.ArgumentError):
        pg_readonly_sql.run(pg_catalog, query, params)  # type: ignore[arg-type]


def test_pg_sql_undoes_what_a_function_writes_despite_read_only(pg_catalog: Any) -> None:
    from tracker import pg_readonly_sql

    before = _pg_state(pg_catalog)
    made = pg_readonly_sql.run(pg_catalog, "SELECT lo_from_bytea(0, 'x') AS oid")
    assert len(made) == 1  # the server let it run ...
    assert _pg_state(pg_catalog) == before  # ... and it was rolled back


def test_pg_a_long_query_is_stopped(pg_catalog: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from tracker import pg_readonly_sql

    monkeypatch.setenv("TRACKER_SQL_TIMEOUT", "0.5")
    started = time.monotonic()
    with pytest.raises(tracker.SQLError, match="longer than 0.5 s"):
        pg_readonly_sql.run(pg_catalog, "SELECT pg_sleep(30)")
    assert time.monotonic() - started < 10


def test_pg_a_lock_a_query_takes_ends_with_the_query(pg_catalog: Any, pg_url: str) -> None:
    """A session's advisory lock survives the rolled-back savepoint: the query's connection is
    closed after it, never kept for the process's next operation (which would hold the lock,
    and could block other processes' writers, until the process exits)."""
    import psycopg

    from tracker import pg_readonly_sql

    assert len(pg_readonly_sql.run(pg_catalog, "SELECT pg_advisory_lock(7) AS taken")) == 1
    with psycopg.connect(pg_url) as other:  # waits a moment for the closed session to end
        other.execute("SET lock_timeout = '5s'")
        other.execute("SELECT pg_advisory_lock(7)")  # LockNotAvailable if still held
        assert other.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                             "AND objid = 7 AND pid = pg_backend_pid()").fetchone() == (1,)
