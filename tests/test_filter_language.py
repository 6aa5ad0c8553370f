"""The filter language, run for real against DuckDB: every filter below is compiled and executed
over a hand-made catalog, and its matches compared with the runs it should find. Filters name
params and metrics by key; ``runs`` holds each key's values in an internal column (``p1``, ``m1``)
and the catalog's layout (``value_columns.layout``) says which, so every compile is given it."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import backends
import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tracker.cli import main
from tracker.errors import ArgumentError, FilterSyntaxError
from tracker.filter_language import (
    ATTRIBUTES,
    Compiled,
    compile_equals,
    compile_filter,
    compile_order_by,
    parse_key,
)
from tracker.sql_dialects import DUCKDB, POSTGRES
from tracker.storage import schema, value_columns
from tracker.storage.schema import RUN_COLUMNS

HOSTILE = "we\"ird 'key'.with/slash~0 ünï (x)"
INJECTION = "'; DROP TABLE runs; --"
DQ = '"'

RUNS: list[dict[str, Any]] = [
    dict(
        id="r1", name="alpha", project="vision", notebook="/nb/train.ipynb",
        notebook_name="train.ipynb", notebook_title="Training", status="completed",
        started_at="2026-01-01 10:00:00+00", ended_at="2026-01-01 11:00:00+00", duration=3600.0,
        host="gpu1", pid=101, username="ada", labels=["baseline", "gpu"], notes="first try",
        environment_id="env1",
        params={"lr": 0.1, "optimizer.name": "adam", "optimizer.lr": 0.001, "layers": [64, 32],
                "model": "resnet", "seed": 42, "flag": True, "epochs": 9, "my key (x)": 1},
        metrics={"acc": 0.9, "loss": 0.3}, tags={"source": "manual", "stage": "final"},
    ),
    dict(
        id="r2", name="beta", project="vision", notebook="/nb/train.ipynb",
        notebook_name="train.ipynb", status="failed", started_at="2026-01-02 10:00:00+00",
        ended_at="2026-01-02 10:01:00+00", duration=60.0, host="gpu2", pid=202, username="bob",
        labels=["gpu"], error="ValueError: boom",
        params={"lr": 0.01, "optimizer.name": "sgd", "model": "vit", "seed": "42", "flag": False,
                "epochs": 10, HOSTILE: 1},
        metrics={"acc": 0.7, "loss": "NaN"}, tags={"source": "cli", HOSTILE: "x"},
    ),
    dict(
        id="r3", name="gamma", project="nlp", notebook="/nb/eval.ipynb", status="running",
        started_at="2026-01-03 10:00:00+00", host="gpu1", pid=303, username="ada", parent_id="r1",
        params={"lr": 0.001, "model": "resnet50", "flag": "true", "epochs": "many"},
        metrics={"acc": 0.95}, tags={"stage": "draft"},
    ),
    dict(
        id="r4", name="delta", project="nlp", status="crashed", started_at="2026-01-04 10:00:00+00",
        ended_at="2026-01-04 10:00:10+00", duration=10.0, pid=404, labels=[],
        deleted_at="2026-02-01 00:00:00+00", params={"lr": "auto", "model": None},
        metrics={"loss": "Infinity", "acc": 0.5},
    ),
    dict(
        id="r5", name="epsilon", status="completed", started_at="2026-01-05 10:00:00+00",
        ended_at="2026-01-05 10:00:05+00", duration=5.0, notes="50% off", params={}, metrics={},
    ),
    dict(
        id="r6", name='it\'s "zeta"', project="vision", status="completed",
        started_at="2026-01-06 10:00:00+00", ended_at="2026-01-06 12:00:00+00", duration=7200.0,
        labels=["a,b", "x'y"],
        params={"lr": 1e-4, HOSTILE: 2, "ünï": "ok", "a~1b": 5, "a/b": 6, "": "empty"},
        metrics={"acc": 0.95, "loss": "-Infinity"},
    ),
    dict(
        id="r7", name=INJECTION, status="failed", started_at="2026-01-07 10:00:00+00",
        ended_at="2026-01-07 10:00:01+00", duration=1.0, params={INJECTION: 1},
        metrics={"acc": "NaN"},
    ),
    dict(id="r8", status="crashed", started_at="2026-01-08 10:00:00+00", duration=2.0),
]  # fmt: skip
ALL = {run["id"] for run in RUNS}


def _create(connection: duckdb.DuckDBPyConnection) -> None:
    connection.execute("SET TimeZone = 'UTC'")
    for statement in schema.create_statements():
        connection.execute(statement)
    for run in RUNS:
        _insert_run(connection, run)
    value_columns.refresh(connection)


def _insert(connection: duckdb.DuckDBPyConnection, run: dict[str, Any]) -> None:
    """Add one run as a writer does: its row, its keys, then its value columns."""
    _insert_run(connection, run)
    value_columns.refresh(connection, [run["id"]])


def _insert_run(connection: duckdb.DuckDBPyConnection, run: dict[str, Any]) -> None:
    row = {key: value for key, value in run.items() if key != "tags"}
    for column in ("params", "metrics"):
        if column in row:
            row[column] = json.dumps(row[column])
    names = [name for name, _ in RUN_COLUMNS if name in row]
    connection.execute(
        f"INSERT INTO runs ({', '.join(names)}) VALUES ({', '.join('?' for _ in names)})",
        [row[name] for name in names],
    )
    for key, value in run.get("params", {}).items():
        kind = "none" if value is None else type(value).__name__
        connection.execute(
            "INSERT INTO param_keys SELECT $key, $kind WHERE NOT EXISTS "
            "(SELECT 1 FROM param_keys WHERE key = $key AND kind = $kind)",
            {"key": key, "kind": kind},
        )
    for key in run.get("metrics", {}):
        connection.execute(
            "INSERT INTO metric_keys SELECT $key WHERE NOT EXISTS "
            "(SELECT 1 FROM metric_keys WHERE key = $key)",
            {"key": key},
        )
    for key, value in run.get("tags", {}).items():
        connection.execute("INSERT INTO tags VALUES (?, ?, ?, now())", [run["id"], key, value])


@pytest.fixture(scope="module")
def pg_db(pg_cluster: Any) -> Iterator[Any]:
    """The runs above in a PostgreSQL catalog's tables (one database for the module)."""
    import psycopg

    from tracker.storage.pg_store import PgStore

    url = pg_cluster.url(pg_cluster.fresh_database())
    with PgStore(url, 10).connect(write=True) as connection:
        connection.execute("SET TimeZone = 'UTC'")
        for run in RUNS:
            row = {key: json.dumps(value) if key in ("params", "metrics") else value
                   for key, value in run.items() if key != "tags"}
            names = [name for name, _ in RUN_COLUMNS if name in row]
            connection.execute(f"INSERT INTO runs ({', '.join(names)}) "
                               f"VALUES ({', '.join('%s' for _ in names)})",
                               [row[name] for name in names])
            for key, value in run.get("tags", {}).items():
                connection.execute("INSERT INTO tags VALUES (%s, %s, %s, now())",
                                   [run["id"], key, value])
    connection = psycopg.connect(url, autocommit=True)
    connection.execute("SET search_path TO tracker")
    connection.execute("SET TimeZone = 'UTC'")
    yield connection
    connection.close()


class Backend:
    """Compiles for one back end and runs the result on its copy of the runs above."""

    def __init__(self, name: str, connection: Any) -> None:
        self.name, self.connection = name, connection
        self.dialect = POSTGRES if name == "postgresql" else DUCKDB

    def layout(self) -> dict[tuple[str, str], str]:
        return {} if self.name == "postgresql" else value_columns.layout(self.connection)

    def rows(self, compiled: Compiled, clause: str) -> list[str]:
        if self.name == "duckdb":
            if clause == "WHERE":
                return sorted(matching(self.connection, compiled))
            return ordered(self.connection, compiled)
        found = self.connection.execute(f"SELECT id FROM runs r {clause} {compiled.sql}",
                                        list(compiled.params)).fetchall()
        return [row[0] for row in found]

    def matching(self, compiled: Compiled) -> set[str]:
        return set(self.rows(compiled, "WHERE"))

    def ordered(self, compiled: Compiled) -> list[str]:
        return self.rows(compiled, "ORDER BY")


@pytest.fixture(params=["duckdb", "postgresql"])
def backend(request: pytest.FixtureRequest, db: Any) -> Backend:
    """Each back end in turn: the same filters must find the same runs in both."""
    if request.param == "duckdb":
        return Backend("duckdb", db)
    return Backend("postgresql", request.getfixturevalue("pg_db"))


@pytest.fixture(scope="module")
def db() -> Iterator[duckdb.DuckDBPyConnection]:
    """The runs above; property tests add rows only inside transactions they roll back."""
    connection = duckdb.connect()
    _create(connection)
    yield connection
    connection.close()


def matching(connection: duckdb.DuckDBPyConnection, compiled: Compiled) -> set[str]:
    # with their value columns
    runs, args = value_columns.source(value_columns.placement(connection))
    sql = f"SELECT id FROM {runs} r WHERE {compiled.sql}"
    return {row[0] for row in connection.execute(sql, [*args, *compiled.params]).fetchall()}


def ordered(connection: duckdb.DuckDBPyConnection, compiled: Compiled) -> list[str]:
    runs, args = value_columns.source(value_columns.placement(connection))
    sql = f"SELECT id FROM {runs} r ORDER BY {compiled.sql}"
    return [row[0] for row in connection.execute(sql, [*args, *compiled.params]).fetchall()]


def quoted(text: str, quote: str = "'", *, backslash: bool = False) -> str:
    """``text`` as a literal of the filter language, escaped by doubling or by backslashes."""
    if backslash:
        return quote + text.replace("\\", "\\\\").replace(quote, "\\" + quote) + quote
    return quote + text.replace("\\", "\\\\").replace(quote, quote * 2) + quote


def ids(*numbers: int) -> set[str]:
    return {f"r{n}" for n in numbers}


CASES: list[tuple[str, set[str]]] = [
    # attributes, with MLflow's spellings and case-insensitive keywords
    ("status = 'completed'", ids(1, 5, 6)),
    ("status = 'COMPLETED'", ids(1, 5, 6)),
    ("status = 'FINISHED'", ids(1, 5, 6)),
    ("attributes.status = 'KILLED'", ids(4, 8)),
    ("status = 'crashed'", ids(4, 8)),
    ("status != 'completed'", ids(2, 3, 4, 7, 8)),
    ("STATUS in ('failed', 'RUNNING')", ids(2, 3, 7)),
    ("status NOT IN ('completed', 'failed')", ids(3, 4, 8)),
    ("status LIKE 'FAIL%'", ids(2, 7)),
    ("name = 'alpha'", ids(1)),
    ("run_name == 'beta'", ids(2)),
    ("attribute.run_name <> 'alpha'", ALL - ids(1, 8)),
    ("name LIKE 'a%'", ids(1)),
    ("name ILIKE 'A%'", ids(1)),
    ("name NOT LIKE '%a'", ids(5, 6, 7)),
    ("name NOT ILIKE '%A'", ids(5, 6, 7)),
    ("name IS NULL", ids(8)),
    ("name is not null", ALL - ids(8)),
    ("name = null", ids(8)),
    ("name != null", ALL - ids(8)),
    ("name = 'it''s \"zeta\"'", ids(6)),
    ('name = "it\'s ""zeta"""', ids(6)),
    ("name = 'it\\'s \"zeta\"'", ids(6)),
    ('name = "it\'s \\"zeta\\""', ids(6)),
    ("id = 'r1'", ids(1)),
    ("run_id IN ('r1', 'r2', 'nope')", ids(1, 2)),
    ("attributes.run_id = 'r3'", ids(3)),
    ("user = 'ada'", ids(1, 3)),
    ("username = 'bob'", ids(2)),
    ("parent = 'r1'", ids(3)),
    ("parent_id IS NOT NULL", ids(3)),
    ("project = 'vision'", ids(1, 2, 6)),
    ("project IS NULL", ids(5, 7, 8)),
    ("notebook LIKE '%/eval%'", ids(3)),
    ("notebook_name = 'train.ipynb'", ids(1, 2)),
    ("notebook_title = 'Training'", ids(1)),
    ("host = 'gpu1'", ids(1, 3)),
    ("pid > 200", ids(2, 3, 4)),
    ("pid = '101'", ids(1)),
    ("pid <= 101", ids(1)),
    ("notes LIKE '50%'", ids(5)),
    ("error LIKE '%boom%'", ids(2)),
    ("error IS NULL", ALL - ids(2)),
    ("environment_id = 'env1'", ids(1)),
    ("deleted_at IS NOT NULL", ids(4)),
    ("deleted_at > '2026-01-15'", ids(4)),
    ("started_at > '2026-01-06T00:00:00+00:00'", ids(6, 7, 8)),
    ("start_time <= '2026-01-02'", ids(1)),
    ("started_at >= '2026-01-02 10:00:00Z' AND started_at < '2026-01-03'", ids(2)),
    ("end_time < '2026-01-02'", ids(1)),
    ("ended_at IS NULL", ids(3, 8)),
    ("duration >= 3600", ids(1, 3, 6)),  # r3 is running: its duration is the time elapsed
    ("duration < 9", ids(5, 7, 8)),
    ("duration > '1e6'", ids(3)),
    # labels
    ("labels CONTAINS 'gpu'", ids(1, 2)),
    ("labels contains 'x''y'", ids(6)),
    ("labels NOT CONTAINS 'gpu'", ALL - ids(1, 2)),
    ("labels = 'baseline'", ids(1)),
    ("labels != 'gpu'", ALL - ids(1, 2)),
    ("labels IN ('baseline', 'a,b')", ids(1, 6)),
    ("labels NOT IN ('gpu')", ALL - ids(1, 2)),
    ("labels IS NULL", ids(3, 4, 5, 7, 8)),
    ("labels IS NOT NULL", ids(1, 2, 6)),
    # params: numbers compare as numbers, strings as text, booleans as JSON booleans
    ("params.lr > 0.01", ids(1)),
    ("params.lr >= 0.01", ids(1, 2)),
    ("param.lr = 1e-4", ids(6)),
    ("params.lr = 0.0001", ids(6)),
    ("params.lr < 1.5E-3", ids(3, 6)),
    ("params.lr > -1", ids(1, 2, 3, 6)),
    ("params.lr = 'auto'", ids(4)),
    ("params.lr != 0.1", ids(2, 3, 6)),
    ("params.lr IN (0.1, 0.01)", ids(1, 2)),
    ("params.lr NOT IN (0.1, 0.01)", ids(3, 6)),
    ("params.seed = 42", ids(1, 2)),
    ("params.seed = '42'", ids(1, 2)),
    ("params.epochs > 9", ids(2)),
    ("params.epochs = 'many'", ids(3)),
    ("params.model = 'resnet'", ids(1)),
    ("params.model IN ('vit', 'resnet')", ids(1, 2)),
    ("params.model LIKE 'resnet%'", ids(1, 3)),
    ("params.model ILIKE 'VIT'", ids(2)),
    ("params.model NOT LIKE 'res%'", ids(2)),
    ("params.model IS NULL", ids(4, 5, 6, 7, 8)),
    ("params.model IS NOT NULL", ids(1, 2, 3)),
    ("params.model = null", ids(4, 5, 6, 7, 8)),
    ("params.model <> NULL", ids(1, 2, 3)),
    ("params.flag = true", ids(1)),
    ("params.flag = FALSE", ids(2)),
    ("params.flag != true", ids(2)),
    ("params.flag = 'true'", ids(1, 3)),
    ("params.flag IN (true, false)", ids(1, 2)),
    ("params.layers = '[64,32]'", ids(1)),
    ("params.optimizer.name = 'adam'", ids(1)),
    ("params.optimizer.lr < 0.01", ids(1)),
    ("params.optimizer.lr IS NULL", ALL - ids(1)),
    ("params.ünï = 'ok'", ids(6)),
    ("params.a/b = 6", ids(6)),
    ("params.`a~1b` = 5", ids(6)),
    ("params.`` = 'empty'", ids(6)),
    ("params.`my key (x)` = 1", ids(1)),
    ("`params.my key (x)` = 1", ids(1)),
    ('params."my key (x)" = 1', ids(1)),
    ("params.'my key (x)' = 1", ids(1)),
    (f"params.{quoted(HOSTILE, '`')} = 1", ids(2)),
    (f"params.{quoted(HOSTILE, '`', backslash=True)} >= 1", ids(2, 6)),
    (f"{quoted('params.' + HOSTILE, '`')} = 2", ids(6)),
    (f"params.{quoted(HOSTILE, DQ)} IS NOT NULL", ids(2, 6)),
    # metrics: always numbers; NaN is no number for < and >, and equals only 'NaN'
    ("metrics.acc > 0.9", ids(3, 6)),
    ("metric.acc >= 0.9", ids(1, 3, 6)),
    ("metrics.acc = 0.95", ids(3, 6)),
    ("metrics.acc != 0.95", ids(1, 2, 4, 7)),
    ("metrics.acc = '0.9'", ids(1)),
    ("metrics.acc = 'NaN'", ids(7)),
    ("metrics.acc < 0.8", ids(2, 4)),
    ("metrics.acc IN (0.5, 0.7)", ids(2, 4)),
    ("metrics.acc NOT IN (0.5, 0.7)", ids(1, 3, 6, 7)),
    ("metrics.acc IS NULL", ids(5, 8)),
    ("metrics.loss > 1e300", ids(4)),
    ("metrics.loss = 'Infinity'", ids(4)),
    ("metrics.loss < 0", ids(6)),
    ("metrics.loss > -1", ids(1, 4)),
    # tags: text, one value per key, set or not
    ("tags.source = 'manual'", ids(1)),
    ("tag.source != 'manual'", ids(2)),
    ("`tags`.stage IN ('final', 'draft')", ids(1, 3)),
    ("tags.stage LIKE 'dr%'", ids(3)),
    ("tags.stage IS NULL", ALL - ids(1, 3)),
    ("tags.stage IS NOT NULL AND NOT tags.source = 'manual'", ids(3)),
    (f"tags.{quoted(HOSTILE, '`')} = 'x'", ids(2)),
    ("tags.nope = 'x'", set()),
    # MLflow's prefixes and aliases
    ("run.status = 'FINISHED'", ids(1, 5, 6)),
    ("attr.name = 'alpha'", ids(1)),
    ("user_id = 'bob'", ids(2)),
    ("attributes.user_id = 'ada'", ids(1, 3)),
    ("`run name` = 'beta'", ids(2)),
    ("`Run name` = 'beta'", ids(2)),
    ("attributes.`Run name` = 'beta'", ids(2)),
    ("created <= '2026-01-02'", ids(1)),
    ("Created > '2026-01-07'", ids(7, 8)),
    ("`metric`.acc >= 0.95", ids(3, 6)),
    ("`params`.model = 'vit'", ids(2)),
    ("`params`.`my key (x)` = 1", ids(1)),
    ("`tags`.source = 'cli'", ids(2)),
    ("parameters.model = 'vit'", ids(2)),
    # a number compares with a time as milliseconds since 1970, as in MLflow
    ("start_time >= 1767607200000", ids(5, 6, 7, 8)),  # 2026-01-05 10:00 UTC
    # AND, OR, NOT and parentheses: NOT > AND > OR
    ("status = 'completed' OR status = 'failed' AND metrics.acc > 0.8", ids(1, 5, 6)),
    ("(status = 'completed' OR status = 'failed') AND metrics.acc > 0.8", ids(1, 6)),
    ("NOT status = 'completed' AND labels CONTAINS 'gpu'", ids(2)),
    ("NOT (status = 'completed' AND labels CONTAINS 'gpu')", ALL - ids(1)),
    ("not params.lr > 0.01", ALL - ids(1)),
    ("NOT params.model = 'resnet'", ALL - ids(1)),
    ("NOT NOT name = 'alpha'", ids(1)),
    ("name = 'alpha' or name = 'beta' or name = 'gamma'", ids(1, 2, 3)),
    ("params.lr > 0.01 and status = 'completed'", ids(1)),
    ("(((name = 'alpha')))", ids(1)),
    ("(name = 'alpha' OR (pid > 300 AND NOT project = 'nlp')) OR labels CONTAINS 'a,b'", ids(1, 6)),
    ("  user='ada'and(pid>200)  ", ids(3)),
    # injection attempts are data
    (f"name = {quoted(INJECTION)}", ids(7)),
    (f"params.{quoted(INJECTION, '`')} = 1", ids(7)),
    (f"name = {quoted(INJECTION + ' OR 1=1')}", set()),
    ("", ALL),
    ("   ", ALL),
]


# Where PostgreSQL answers otherwise, on purpose: a list or object param's text form is the JSON
# text as stored ("[64, 32]", Python's spacing), where DuckDB's value columns hold it minified.
PG_DIFFERENT = {"params.layers = '[64,32]'": set(), "params.layers = '[64, 32]'": ids(1)}


@pytest.mark.parametrize(("text", "expected"), [*CASES, ("params.layers = '[64, 32]'", set())])
def test_filter_matches_the_expected_runs(backend: Backend, text: str,
                                          expected: set[str]) -> None:
    if backend.name == "postgresql":
        expected = PG_DIFFERENT.get(text, expected)
    compiled = compile_filter(text, layout=backend.layout(), dialect=backend.dialect)
    assert backend.matching(compiled) == expected


def test_none_matches_every_run(db: duckdb.DuckDBPyConnection) -> None:
    assert compile_filter(None) == Compiled("TRUE", ())
    assert matching(db, compile_filter(None, layout=value_columns.layout(db))) == ALL


def test_values_are_bound_and_keys_never_reach_the_sql(db: duckdb.DuckDBPyConnection) -> None:
    layout = value_columns.layout(db)
    compiled = compile_filter(f"params.{quoted(INJECTION, '`')} = {quoted(INJECTION)}",
                              layout=layout)
    assert "DROP" not in compiled.sql
    assert f"r.{layout['params', INJECTION]}" in compiled.sql  # the key's internal column
    assert compiled.params == (INJECTION,)  # only the value is bound
    assert matching(db, compiled) == set()
    assert matching(db, compile_filter(f"params.{quoted(INJECTION, '`')} = 1",
                                       layout=layout)) == ids(7)


def test_injection_leaves_the_table_intact(db: duckdb.DuckDBPyConnection) -> None:
    layout = value_columns.layout(db)
    for text in (f"name = {quoted(INJECTION)}", f"`params.{INJECTION}` IS NULL"):
        matching(db, compile_filter(text, layout=layout))
    assert db.execute("SELECT count(*) FROM runs").fetchone() == (len(RUNS),)
    assert value_columns.layout(db) == layout


def test_keys_name_internal_columns() -> None:
    layout = {("params", "a~/b.c"): "p7", ("metrics", "a~/b.c"): "m2"}
    compiled = compile_filter("params.`a~/b.c` = 1 AND metrics.`a~/b.c` = 2", layout=layout)
    assert "a~" not in compiled.sql
    assert "r.p7" in compiled.sql and "r.m2" in compiled.sql
    assert compiled.params == (1.0, 2.0)
    boolean = compile_filter("params.`a~/b.c` = true", layout=layout)
    assert "r.p7_json" in boolean.sql and boolean.params == (True,)
    # The key reaches DuckDB only as data: refresh reads it from the JSON by pointer.
    assert value_columns.pointer("a~/b.c") == "/a~0~1b.c"


def test_a_key_missing_from_the_layout_compiles_to_null() -> None:
    compiled = compile_filter("params.`a~/b.c` = 1", layout={("params", "other"): "p1"})
    assert "a~" not in compiled.sql and "p1" not in compiled.sql
    assert "CAST(NULL AS VARCHAR)" in compiled.sql
    assert compiled.params == (1.0,)


def test_a_key_missing_from_the_layout_matches_no_run(db: duckdb.DuckDBPyConnection) -> None:
    # "lr" is in every run's JSON, but a layout without it (or a key no run has) finds nothing.
    layout = {key: name for key, name in value_columns.layout(db).items()
              if key != ("params", "lr")}
    for key in ("params.lr", "params.nope", "metrics.nope"):
        for text in (f"{key} = 0.1", f"{key} != 0.1", f"{key} > -1", f"{key} IN (0.1, 1)"):
            assert matching(db, compile_filter(text, layout=layout)) == set(), text
        assert matching(db, compile_filter(f"{key} IS NULL", layout=layout)) == ALL
        assert matching(db, compile_filter(f"{key} IS NOT NULL", layout=layout)) == set()
        assert matching(db, compile_filter(f"NOT {key} = 0.1", layout=layout)) == ALL
        assert ordered(db, compile_order_by(key, layout=layout)) == sorted(ALL)
    for text in ("params.lr = 'auto'", "params.lr LIKE '%'", "params.lr = true"):
        assert matching(db, compile_filter(text, layout=layout)) == set(), text
    assert matching(db, compile_equals({"params.lr": 0.1}, layout=layout)) == set()


def test_filter_fragment_combines_safely_with_and(db: duckdb.DuckDBPyConnection) -> None:
    compiled = compile_filter("name = 'alpha' OR name = 'beta'", layout=value_columns.layout(db))
    sql = f"SELECT id FROM runs r WHERE r.status = 'failed' AND {compiled.sql}"
    assert {row[0] for row in db.execute(sql, compiled.params).fetchall()} == ids(2)


def test_alias_qualifies_every_column(db: duckdb.DuckDBPyConnection) -> None:
    text = "params.lr > 0.01 AND labels CONTAINS 'gpu' AND duration > 1"
    compiled = compile_filter(text, alias="x", layout=value_columns.layout(db))
    assert "r." not in compiled.sql
    assert f"x.{value_columns.layout(db)['params', 'lr']}" in compiled.sql
    runs, args = value_columns.source(value_columns.placement(db))
    rows = db.execute(f"SELECT id FROM {runs} x WHERE {compiled.sql}",
                      [*args, *compiled.params]).fetchall()
    assert {row[0] for row in rows} == ids(1)


def test_alias_must_be_an_identifier() -> None:
    with pytest.raises(ValueError, match="alias"):
        compile_filter("name = 'a'", alias="r; DROP TABLE runs")


ERRORS: list[tuple[str, int, str]] = [
    ("bogus = 1", 0, "unknown field 'bogus'"),
    ("tgas.x = 'a'", 0, "did you mean tags.?"),
    ("attributes.lr = 1", 0, "unknown field"),
    ("stauts = 'failed'", 0, "did you mean status?"),
    ("attributes.strated_at > '2026-01-01'", 0, "did you mean started_at or"),
    ("`metrics`.", 10, "expected a key after 'metrics.'"),
    ("name = 'abc", 7, "unterminated string"),
    ("`status = 1", 0, "unterminated quoted name"),
    ("name = ", 7, "expected a value"),
    ("name = adam", 7, "quote text"),
    ("name = 'a' AND", 14, "expected a field name"),
    ("AND name = 'a'", 0, "expected a field name"),
    ("(name = 'a'", 11, "missing ')'"),
    ("name IN ('a' 'b')", 13, "missing ')'"),
    ("name = 'a')", 10, "unexpected ')'"),
    ("name = 'a' name", 11, "after a complete expression"),
    ("name", 4, "expected an operator"),
    ("name @ 'x'", 5, "unexpected character '@'"),
    ("name IS 'x'", 8, "expected NULL"),
    ("name NOT = 'x'", 9, "expected IN, LIKE"),
    ("name IN 'a'", 8, "expected '('"),
    ("status IN ()", 11, "empty IN list"),
    ("metrics.acc LIKE 'x%'", 12, "LIKE works on text"),
    ("duration ILIKE '1%'", 9, "ILIKE works on text"),
    ("name LIKE 5", 10, "quoted pattern"),
    ("name CONTAINS 'x'", 5, "CONTAINS works only on labels"),
    ("params.x NOT CONTAINS 'x'", 13, "CONTAINS works only on labels"),
    ("labels > 'a'", 7, "labels support"),
    ("labels CONTAINS true", 16, "compares with text"),
    ("metrics.acc > 'high'", 14, "compares with numbers"),
    ("metrics.acc = true", 14, "compares with numbers"),
    ("pid = 'many'", 6, "compares with numbers"),
    ("params.lr > true", 12, "true/false"),
    ("params.x IN (1, 'a')", 16, "cannot mix"),
    ("started_at > true", 13, "quoted date"),
    ("started_at > 1e300", 13, "milliseconds since 1970"),
    ("started_at > 'yesterday'", 13, "quoted date"),
    ("name = 'a' AND pid > null", 19, "null only works"),
    ("params. = 1", 7, "expected a key after 'params.'"),
    ("`params.` = 1", 8, "expected a key"),
    ("params.x > 1.2.3", 11, "malformed number"),
    ("params.x > 1e", 11, "malformed number"),
    ("name = true", 7, "compares with text"),
]


@pytest.mark.parametrize(("text", "position", "message"), ERRORS)
def test_bad_filter_names_the_problem_and_its_position(
    text: str, position: int, message: str
) -> None:
    with pytest.raises(FilterSyntaxError) as caught:
        compile_filter(text)
    assert caught.value.position == position
    assert message in caught.value.message
    assert caught.value.filter == text
    assert isinstance(caught.value, ValueError)


def test_an_unknown_field_suggests_the_closest_name_not_a_list_of_all() -> None:
    with pytest.raises(FilterSyntaxError) as caught:
        compile_filter("lr > 0.1")
    assert caught.value.message == ("unknown field 'lr'; use params.<key>, metrics.<key>, "
                                    "tags.<key> or an attribute such as status")
    with pytest.raises(FilterSyntaxError) as caught:
        compile_filter("duraton > 5")
    assert caught.value.message == "unknown field 'duraton'; did you mean duration?"


# --- order_by -------------------------------------------------------------------------------

ORDERS: list[tuple[Any, list[str]]] = [
    (None, ["r8", "r7", "r6", "r5", "r4", "r3", "r2", "r1"]),
    ("started_at", ["r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8"]),
    # ties broken by id in the last key's direction; NaN and missing sort last both ways
    ("metrics.acc DESC", ["r6", "r3", "r1", "r2", "r4", "r8", "r7", "r5"]),
    ("metrics.acc", ["r4", "r2", "r1", "r3", "r6", "r5", "r7", "r8"]),
    ("metric.acc asc", ["r4", "r2", "r1", "r3", "r6", "r5", "r7", "r8"]),
    # params: numbers numerically (9 before 10), then text, then missing
    ("params.epochs", ["r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8"]),
    ("params.epochs DESC", ["r2", "r1", "r3", "r8", "r7", "r6", "r5", "r4"]),
    ("params.lr DESC", ["r1", "r2", "r3", "r6", "r4", "r8", "r7", "r5"]),
    ("params.lr", ["r6", "r3", "r2", "r1", "r4", "r5", "r7", "r8"]),
    ("params.seed", ["r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8"]),
    ("name DESC", ["r6", "r3", "r5", "r4", "r2", "r1", "r7", "r8"]),
    ("duration", ["r7", "r8", "r5", "r4", "r2", "r1", "r6", "r3"]),
    ("status, metrics.acc DESC", ["r6", "r1", "r5", "r4", "r8", "r2", "r7", "r3"]),
    (["status", "metrics.acc DESC"], ["r6", "r1", "r5", "r4", "r8", "r2", "r7", "r3"]),
    ("labels DESC, id DESC", ["r2", "r1", "r6", "r4", "r8", "r7", "r5", "r3"]),
    (f"params.{quoted(HOSTILE, '`')} DESC", ["r6", "r2", "r8", "r7", "r5", "r4", "r3", "r1"]),
    ([], ["r8", "r7", "r6", "r5", "r4", "r3", "r2", "r1"]),
    ("  ", ["r8", "r7", "r6", "r5", "r4", "r3", "r2", "r1"]),
]


@pytest.mark.parametrize(("items", "expected"), ORDERS)
def test_order_by_sorts_runs(backend: Backend, items: Any, expected: list[str]) -> None:
    compiled = compile_order_by(items, layout=backend.layout(), dialect=backend.dialect)
    assert backend.ordered(compiled) == expected


def test_order_by_appends_the_id_tie_breaker_once() -> None:
    assert compile_order_by("metrics.acc").sql.endswith("r.id ASC")
    assert compile_order_by("status DESC").sql.endswith("r.id DESC")
    assert compile_order_by("id DESC").sql == "r.id DESC NULLS LAST"


def test_order_by_names_columns_not_keys(db: duckdb.DuckDBPyConnection) -> None:
    layout = value_columns.layout(db)
    compiled = compile_order_by(f"params.{quoted(INJECTION, '`')}", layout=layout)
    assert "DROP" not in compiled.sql
    assert f"r.{layout['params', INJECTION]}" in compiled.sql
    assert compiled.params == ()
    assert ordered(db, compiled)[0] == "r7"


@pytest.mark.parametrize(
    ("items", "position"),
    [("metrics.acc DOWN", 12), ("bogus", 0), ("metrics.acc DESC,", 17), ("status DESC DESC", 12)],
)
def test_bad_order_by_raises_with_position(items: str, position: int) -> None:
    with pytest.raises(FilterSyntaxError) as caught:
        compile_order_by(items)
    assert caught.value.position == position


# --- compile_equals and parse_key -----------------------------------------------------------

EQUALS: list[tuple[dict[str, Any], set[str]]] = [
    ({}, ALL),
    ({"status": "FINISHED"}, ids(1, 5, 6)),
    ({"status": "completed", "labels": "gpu"}, ids(1)),
    ({"params.lr": [0.1, 0.01]}, ids(1, 2)),
    ({"params.lr": (0.1,)}, ids(1)),
    ({"status": {"failed", "running"}}, ids(2, 3, 7)),
    ({"params.model": None}, ids(4, 5, 6, 7, 8)),
    ({"params.flag": True}, ids(1)),
    ({"params.seed": "42", "user": "ada"}, ids(1)),
    ({"metrics.acc": 0.95}, ids(3, 6)),
    ({f"params.{quoted(HOSTILE, '`')}": 2}, ids(6)),
    ({"started_at": datetime(2026, 1, 1, 10, tzinfo=timezone.utc)}, ids(1)),
    ({"labels": ["baseline", "x'y"]}, ids(1, 6)),
    ({"name": INJECTION}, ids(7)),
]


@pytest.mark.parametrize(("equals", "expected"), EQUALS)
def test_compile_equals_matches(backend: Backend, equals: dict[str, Any],
                                expected: set[str]) -> None:
    compiled = compile_equals(equals, layout=backend.layout(), dialect=backend.dialect)
    assert backend.matching(compiled) == expected


@pytest.mark.parametrize(
    "equals",
    [{"bogus": 1}, {"params.lr": []}, {"metrics.acc": "high"}, {"name": object()}, {"params.": 1}],
)
def test_compile_equals_rejects_bad_keys_and_values(equals: dict[str, Any]) -> None:
    with pytest.raises(FilterSyntaxError):
        compile_equals(equals)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("params.a.b", ("params", "a.b")),
        ("param.lr", ("params", "lr")),
        ("metrics.acc", ("metrics", "acc")),
        ("METRIC.val/loss", ("metrics", "val/loss")),
        ("start_time", ("attributes", "started_at")),
        ("attributes.USER", ("attributes", "username")),
        ("Status", ("attributes", "status")),
        ("params.`my key`", ("params", "my key")),
        ("tag.`a b`", ("tags", "a b")),
        ("metrics_at_max_step.loss", ("metrics_at_max_step", "loss")),
        ("`metric`.acc", ("metrics", "acc")),
        ('params."my key"', ("params", "my key")),
        ("`params.my key`", ("params", "my key")),
        (f"params.{quoted(HOSTILE, '`')}", ("params", HOSTILE)),
    ],
)
def test_parse_key_splits_namespace_and_key(text: str, expected: tuple[str, str]) -> None:
    assert parse_key(text) == expected


@pytest.mark.parametrize("text", ["bogus", "params.", "status DESC", "", "params.a = 1"])
def test_parse_key_rejects_what_is_not_one_field(text: str) -> None:
    with pytest.raises(FilterSyntaxError):
        parse_key(text)


def test_attributes_name_runs_columns() -> None:
    names = {name for name, _ in RUN_COLUMNS}
    assert set(ATTRIBUTES.values()) <= names
    assert ATTRIBUTES["user"] == "username" and ATTRIBUTES["start_time"] == "started_at"


def test_import_stays_light() -> None:
    code = ("import sys, tracker.filter_language; "
            "print(sorted({'duckdb', 'pandas'} & set(sys.modules)))")
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


# --- properties -----------------------------------------------------------------------------

_QUIET = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
NEW_RUN = {"id": "new", "status": "running", "started_at": "2026-03-01 00:00:00+00"}


@_QUIET
@given(value=st.text(), quote=st.sampled_from(["'", DQ]), backslash=st.booleans())
def test_any_name_round_trips(
    db: duckdb.DuckDBPyConnection, value: str, quote: str, backslash: bool
) -> None:
    literal = quoted(value, quote, backslash=backslash)
    db.execute("BEGIN")
    try:
        _insert(db, {**NEW_RUN, "name": value})
        found = matching(db, compile_filter(f"name = {literal}", layout=value_columns.layout(db)))
    finally:
        db.execute("ROLLBACK")
    assert found == {"new"} | {run["id"] for run in RUNS if run.get("name") == value}


@_QUIET
@given(key=st.text(), form=st.sampled_from(["backtick", "double", "whole", "metric"]))
def test_any_key_round_trips(db: duckdb.DuckDBPyConnection, key: str, form: str) -> None:
    if form == "whole" and not key:
        return  # `params.` names no key
    field = {
        "backtick": f"params.{quoted(key, '`')}",
        "double": f"params.{quoted(key, DQ)}",
        "whole": quoted("params." + key, "`"),
        "metric": f"metrics.{quoted(key, '`', backslash=True)}",
    }[form]
    column = "metrics" if form == "metric" else "params"
    db.execute("BEGIN")
    try:
        _insert(db, {**NEW_RUN, column: {key: 12345.5}})
        layout = value_columns.layout(db)  # read after the insert: a new key gets a new column
        found = matching(db, compile_filter(f"{field} = 12345.5", layout=layout))
        top = ordered(db, compile_order_by(f"{field} DESC", layout=layout))[0]
    finally:
        db.execute("ROLLBACK")
    assert found == {"new"}
    if not any(key in run.get(column, {}) for run in RUNS):
        assert top == "new"
    assert parse_key(field) == (column, key)


@_QUIET
@given(key=st.text(), value=st.text())
def test_sql_text_does_not_depend_on_user_text(key: str, value: str) -> None:
    reference = compile_filter("params.`k` = 'v' OR name LIKE 'v'", layout={("params", "k"): "p1"})
    text = f"params.{quoted(key, '`')} = {quoted(value)} OR name LIKE {quoted(value)}"
    compiled = compile_filter(text, layout={("params", key): "p1"})
    assert compiled.sql == reference.sql
    assert compiled.params == (value, value)
    # A key the layout lacks compiles the same whatever its text.
    assert compile_filter(text).sql == compile_filter("params.`k` = 'v' OR name LIKE 'v'").sql
    # PostgreSQL binds the key too: neither reaches the SQL text.
    pg = compile_filter(text, dialect=POSTGRES)
    assert pg.sql == compile_filter("params.`k` = 'v' OR name LIKE 'v'", dialect=POSTGRES).sql
    assert pg.params == ("params", key, value, value)


# Every filter of CASES, parenthesized, with the runs it matches: the leaves of random trees.
_LEAVES = st.sampled_from([(f"({text})", expected) for text, expected in CASES if text.strip()])
_Case = tuple[str, set[str]]


def _negated(case: _Case) -> _Case:
    return f"NOT {case[0]}", ALL - case[1]


def _both(pair: tuple[_Case, _Case]) -> _Case:
    (left, matched_left), (right, matched_right) = pair
    return f"({left} AND {right})", matched_left & matched_right


def _either(pair: tuple[_Case, _Case]) -> _Case:
    (left, matched_left), (right, matched_right) = pair
    return f"({left} OR {right})", matched_left | matched_right


def _trees(inner: st.SearchStrategy[_Case]) -> st.SearchStrategy[_Case]:
    pairs = st.tuples(inner, inner)
    return st.one_of(inner.map(_negated), pairs.map(_both), pairs.map(_either))


_TREES = st.recursive(_LEAVES, _trees, max_leaves=8)


@_QUIET
@given(_TREES)
def test_and_or_not_are_intersection_union_and_complement(
    db: duckdb.DuckDBPyConnection, case: _Case
) -> None:
    text, expected = case
    assert matching(db, compile_filter(text, layout=value_columns.layout(db))) == expected


@_QUIET
@given(
    terms=st.lists(st.tuples(st.booleans(), _LEAVES), min_size=1, max_size=5),
    joins=st.lists(st.sampled_from(["AND", "OR", "and", "or"]), min_size=4, max_size=4),
)
def test_not_binds_tighter_than_and_tighter_than_or(
    db: duckdb.DuckDBPyConnection, terms: list[tuple[bool, _Case]], joins: list[str]
) -> None:
    sets = [ALL - matched if negate else matched for negate, (_, matched) in terms]
    texts = [f"{'NOT ' if negate else ''}{text}" for negate, (text, _) in terms]
    groups = [sets[0]]  # OR of AND-groups
    for join, matched in zip(joins, sets[1:], strict=False):
        if join.upper() == "AND":
            groups[-1] = groups[-1] & matched
        else:
            groups.append(matched)
    text = texts[0] + "".join(f" {join} {t}" for join, t in zip(joins, texts[1:], strict=False))
    layout = value_columns.layout(db)
    assert matching(db, compile_filter(text, layout=layout)) == set().union(*groups)


_TOKENS = [
    "name", "status", "params.lr", "metrics.acc", "labels", "started_at", "duration", "pid",
    "params.flag", "`params.a b`", "params.", "=", "==", "!=", "<>", "<", "<=", ">", ">=", "IN",
    "NOT", "AND", "OR", "LIKE", "ILIKE", "IS", "NULL", "CONTAINS", "(", ")", ",", "'x'", "'%'",
    "'2026-01-01'", "'NaN'", '"y"', "1", "-2.5e3", "0.5", "true", "false", "`", "'", "@", "ASC",
]  # fmt: skip
_SOUP = st.lists(st.sampled_from(_TOKENS), max_size=12).map(" ".join)


@_QUIET
@given(st.one_of(st.text(), _SOUP, _TREES.map(lambda case: case[0][: len(case[0]) // 2])))
def test_garbage_raises_only_filter_syntax_errors(db: duckdb.DuckDBPyConnection, text: str) -> None:
    try:
        compiled = compile_filter(text, layout=value_columns.layout(db))
    except FilterSyntaxError as error:
        assert 0 <= error.position <= len(text)
        return
    matching(db, compiled)  # whatever compiles also runs


@_QUIET
@given(_SOUP)
def test_order_by_garbage_raises_only_filter_syntax_errors(
    db: duckdb.DuckDBPyConnection, text: str
) -> None:
    try:
        compiled = compile_order_by(text, layout=value_columns.layout(db))
    except FilterSyntaxError as error:
        assert 0 <= error.position <= len(text)
        return
    ordered(db, compiled)


def test_nesting_is_limited_and_the_error_points_at_the_deepest_level() -> None:
    assert compile_filter("(" * 50 + "status = 'completed'" + ")" * 50).params == ("completed",)
    with pytest.raises(FilterSyntaxError) as caught:
        compile_filter("(" * 200 + "status = 'completed'" + ")" * 200)
    assert (caught.value.position, caught.value.message) == (50, "nested more than 50 levels deep")
    with pytest.raises(FilterSyntaxError, match="nested more than 50"):
        compile_filter("not " * 51 + "status = 'completed'")


@pytest.mark.parametrize(("text", "position"), [
    ("name = 'a\ud800b'", 9), ("name\udfff = 'a'", 4), ("`params.\ud83d`", 8)])
def test_a_lone_surrogate_is_a_syntax_error_at_its_position(text: str, position: int) -> None:
    with pytest.raises(FilterSyntaxError, match="surrogate") as caught:
        compile_filter(text)
    assert caught.value.position == position


@pytest.mark.parametrize(("call", "argument"), [
    (lambda: compile_filter(123), "where"),  # type: ignore[arg-type]
    (lambda: compile_filter("x" * 20_001), "where"),
    (lambda: compile_order_by(5), "order_by"),  # type: ignore[arg-type]
    (lambda: compile_order_by(["name", None]), "order_by"),  # type: ignore[list-item]
    (lambda: parse_key(["status"]), "key"),  # type: ignore[arg-type]
])
def test_arguments_that_are_not_filter_text_are_argument_errors(call: Any,
                                                                 argument: str) -> None:
    with pytest.raises(ArgumentError, match=f"^{argument} "):
        call()


TRICKY = st.text(alphabet="()notandr NOTAND'\"`=<>!,.\\%_-\x00\ud800status0123", max_size=120)


@given(text=st.one_of(TRICKY, st.text(max_size=120)))
def test_any_text_compiles_or_is_a_filter_syntax_error(text: str) -> None:
    try:
        compile_filter(text)
        compile_order_by(text)
    except FilterSyntaxError:
        pass


# --- MLflow's own cases ---------------------------------------------------------------------
# The filter and order_by strings of MLflow's parser tests (mlflow/mlflow,
# tests/utils/test_search_utils.py: test_filter, test_correct_quote_trimming, test_error_filter,
# test_error_comparison_clauses, test_bad_quotes, test_invalid_clauses, test_bad_comparators,
# test_correct_filtering, test_filter_runs_by_user_id, test_correct_sorting,
# test_invalid_order_by_search_runs, test_space_order_by_search_runs,
# test_filter_runs_by_tag_and_param_is_null), run against three runs shaped like that file's
# (m0: FAILED, m1: FINISHED, m2: FAILED; key1 121/123/125; my_param A/A/B; tag1 -/C/D) plus the
# keys its parser cases name, so every accepted string is checked by what it matches.

MLFLOW_RUNS: list[dict[str, Any]] = [
    dict(id="m0", name="zero", status="failed", started_at="2026-01-01 00:00:00+00",
         username="user-id",
         params={"my_param": "A", "m": "tf", "model": "LinearRegression", "model_class": "LR"},
         metrics={"key1": 121, "acc": 0.95, "XYZ": 3, "legit name": 0.3, "rmse": 0.5, "a": 0.2}),
    dict(id="m1", name="one", status="completed", started_at="2026-01-02 00:00:00+00",
         username="user-id",
         params={"my_param": "A", "m": "LR", "cat dog": "pets", "p.a.r.a.m": "b", "lr": "0.01"},
         metrics={"key1": 123, "acc": 100, "X-Y-Z": 3, "accuracy.2.0": 6, "spacey name": 6},
         tags={"tag1": "C", "version": "commit-hash", "source_name": "a notebook"}),
    dict(id="m2", name="two", status="failed", started_at="2026-01-02 00:00:00+00",
         username="user-id2", params={"my_param": "B", "m": "L'Hosp", "b": "val"},
         metrics={"key1": 125, "X//Y#$$@&Z": 3}, tags={"tag1": "D", "t.a.g": "a", "env": "prod"}),
]  # fmt: skip


def mlflow_ids(*numbers: int) -> set[str]:
    return {f"m{n}" for n in numbers}


MLFLOW_ALL = mlflow_ids(0, 1, 2)
MLFLOW_FILTERS: list[tuple[str, set[str]]] = [
    ("metric.acc >= 0.94", mlflow_ids(0, 1)),
    ("metric.acc>=100", mlflow_ids(1)),
    ("params.m!='tf'", mlflow_ids(1, 2)),
    ('params."m"!="tf"', mlflow_ids(1, 2)),
    ('metric."legit name" >= 0.243', mlflow_ids(0)),
    ("metrics.XYZ = 3", mlflow_ids(0)),
    ('params."cat dog" = "pets"', mlflow_ids(1)),
    ('metrics."X-Y-Z" = 3', mlflow_ids(1)),
    ('metrics."X//Y#$$@&Z" = 3', mlflow_ids(2)),
    ("params.model = 'LinearRegression'", mlflow_ids(0)),
    ("metrics.rmse < 1 and params.model_class = 'LR'", mlflow_ids(0)),
    ("", MLFLOW_ALL),
    ("`metric`.a >= 0.1", mlflow_ids(0)),
    ("`params`.model >= 'LR'", mlflow_ids(0)),
    ("tags.version = 'commit-hash'", mlflow_ids(1)),
    ("`tags`.source_name = 'a notebook'", mlflow_ids(1)),
    ('metrics."accuracy.2.0" > 5', mlflow_ids(1)),
    ("metrics.`spacey name` > 5", mlflow_ids(1)),
    ('params."p.a.r.a.m" != "a"', mlflow_ids(1)),
    ('tags."t.a.g" = "a"', mlflow_ids(2)),
    ("attribute.start_time >= 1234", MLFLOW_ALL),
    ("run.status = 'RUNNING'", set()),
    ("tags.version IS NULL", mlflow_ids(0, 2)),
    ("tags.version IS NOT NULL", mlflow_ids(1)),
    ("params.lr IS NULL", mlflow_ids(0, 2)),
    ("params.lr IS NOT NULL", mlflow_ids(1)),
    ("tags.a IS NULL AND params.b = 'val'", mlflow_ids(2)),
    ("params.m = 'LR'", mlflow_ids(1)),
    ('params.m = "LR"', mlflow_ids(1)),
    ('params.m = "L\'Hosp"', mlflow_ids(2)),
    ("attributes.status = 'FAILED'", mlflow_ids(0, 2)),
    ("metrics.key1 = 123", mlflow_ids(1)),
    ("metrics.key1 != 123", mlflow_ids(0, 2)),
    ("metrics.key1 >= 123", mlflow_ids(1, 2)),
    ("params.my_param = 'A'", mlflow_ids(0, 1)),
    ("tags.tag1 = 'D'", mlflow_ids(2)),
    ("tags.tag1 != 'D'", mlflow_ids(1)),
    ("params.my_param = 'A' AND attributes.status = 'FAILED'", mlflow_ids(0)),
    ("attribute.user_id = 'user-id2'", mlflow_ids(2)),
    ("tags.env IS NOT NULL", mlflow_ids(2)),
    ("tags.env IS NULL", mlflow_ids(0, 1)),
    ("attribute.start_time > 1767225600000", mlflow_ids(1, 2)),  # after 2026-01-01 00:00 UTC
    ("attribute.end_time >= 0", set()),  # no run here has ended
]
# Strings MLflow refuses and tracker refuses too.
MLFLOW_REFUSED = [
    "metric.acc >= 0.94; metrics.rmse < 1", "m.acc >= 0.94", "acc >= 0.94", "p.model >= 'LR'",
    "attri.x != 1", "a.x != 1", "model >= 'LR'", "metrics.A > 0.1 NAND params.B = 'LR'",
    "`metrics.A > 0.1", "param`.A > 0.1", "`dummy.A > 0.1", "dummy`.A > 0.1",
    "attribute.start != 1", "attribute.experiment_id != 1", "attribute.lifecycle_stage = 'ACTIVE'",
    "attribute.time != 1", "attribute._status != 'RUNNING'", "attribute.status = true",
    "dataset.status = 'true'", "dataset.profile = 'num_rows: 10'", "metric.model = 'LR'",
    "metrics.acc != metrics.acc", "1.0 > metrics.acc", "params.acc = LR", "tags.acc = LR",
    "params.acc = `LR`", "params.'acc = LR", "params.acc = 'LR", "params.acc = LR'",
    "params.acc = \"LR'", "tags.acc = \"LR'", "tags.acc = = 'LR'", "attribute.status IS 'RUNNING'",
    "params.acc LR !=", "params.acc LR", "metric.acc !=", "acc != 1.0", "foo is null", "1=1",
    "1==2", "metrics.abc ~ 1.0", "metrics.abc ~= 1.0", "params.abc ~ 'my-param-value'",
    "tags.abc ~ 'my-tag-value'", "attributes.status ~ 'my-tag-value'",
    "attributes.start_time LIKE 1234", "attributes.start_time ILIKE 1234",
    "datasets.name > 'my-dataset-name'",
]  # fmt: skip
# Strings MLflow refuses that tracker's wider grammar accepts on purpose: OR and parentheses,
# IS NULL on any field, numbers compared with params and tags (as their text), ordered
# comparisons on text, `name` (MLflow says run_name), and quoted numbers for metrics ('NaN').
MLFLOW_WIDER = [
    "metrics.A > 0.1 OR params.B = 'LR'", "metrics.A > 0.1 AND (params.B = 'LR')",
    "metrics.acc IS NULL", "attribute.status IS NULL", "attribute.name != 1",
    "metric.model = '5'", "params.acc = 5", "tags.acc = 5", "attribute.status = 1",
    *(f"params.abc {op} 'my-param-value'" for op in (">", "<", ">=", "<=")),
    *(f"tags.abc {op} 'my-tag-value'" for op in (">", "<", ">=", "<=")),
    *(f"attributes.status {op} 'my-tag-value'" for op in (">", "<", ">=", "<=")),
]  # fmt: skip
# Strings MLflow accepts that tracker cannot answer: it has no artifact root per run (files are
# recorded one by one: tracker.artifacts()) and no dataset entities (inputs are files).
MLFLOW_NOT_APPLICABLE = [
    "attribute.artifact_uri = '1/23/4'", "dataset.name = 'my_dataset'",
    "datasets.name = 'name1'", "datasets.name IN ('name1', 'name2')",
    "datasets.digest IN ('digest1', 'digest2')",
    "datasets.name = 'name1' AND datasets.digest = 'digest2'", "datasets.context = 'train'",
    "datasets.name = 'name1' AND datasets.context = 'train'",
]  # fmt: skip
# MLflow's order_by cases. Ties are broken differently (MLflow: start time then run id; tracker:
# the run id in the last key's direction) and statuses are named differently (FINISHED sorts
# after FAILED, completed before failed), so where those decide, the order is tracker's own.
MLFLOW_ORDERS: list[tuple[Any, list[str]]] = [
    (None, ["m2", "m1", "m0"]),
    ([], ["m2", "m1", "m0"]),
    (["tags.noSuchTag"], ["m0", "m1", "m2"]),  # MLflow: m2, m1, m0 (its tie-break)
    (["attributes.status"], ["m1", "m0", "m2"]),  # MLflow: m2, m0, m1 (FAILED < FINISHED)
    (["attributes.start_time"], ["m0", "m1", "m2"]),  # MLflow: m0, m2, m1 (its tie-break)
    (["metrics.key1 asc"], ["m0", "m1", "m2"]),
    (['metrics."key1"  desc'], ["m2", "m1", "m0"]),
    (["params.my_param"], ["m0", "m1", "m2"]),  # MLflow: m1, m0, m2 (its tie-break)
    (["params.my_param aSc", "attributes.status  ASC"], ["m1", "m0", "m2"]),  # statuses
    (["params.my_param", "attributes.status DESC"], ["m0", "m1", "m2"]),  # MLflow: m1, m0, m2
    (["params.my_param DESC", "attributes.status   DESC"], ["m2", "m0", "m1"]),  # statuses
    (["params.`my_param` DESC", "attributes.status DESC"], ["m2", "m0", "m1"]),  # statuses
    (["tags.tag1"], ["m1", "m2", "m0"]),
    (["tags.tag1    DESC"], ["m2", "m1", "m0"]),
    (["created DESC"], ["m2", "m1", "m0"]),  # MLflow's alias of start_time, for order_by too
    (["Created"], ["m0", "m1", "m2"]),
    (["metrics.`Mean Square Error`"], ["m0", "m1", "m2"]),
    (["metrics.`Mean Square Error` ASC"], ["m0", "m1", "m2"]),
    (["metrics.`Mean Square Error` DESC"], ["m2", "m1", "m0"]),
]
MLFLOW_ORDERS_REFUSED = [
    "m.acc", "acc", "attri.x", "`metrics.A", "attribute.start", "attribute.experiment_id",
    "metrics.A != 1", "attribute.run_id ACS", "attribute.run_id decs",
]  # fmt: skip


@pytest.fixture(scope="module")
def mlflow_db() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    for statement in schema.create_statements():
        connection.execute(statement)
    for run in MLFLOW_RUNS:
        _insert_run(connection, run)
    value_columns.refresh(connection)
    yield connection
    connection.close()


@pytest.mark.parametrize(("text", "expected"), MLFLOW_FILTERS)
def test_mlflow_filters_match_what_mlflow_matches(
    mlflow_db: duckdb.DuckDBPyConnection, text: str, expected: set[str]
) -> None:
    layout = value_columns.layout(mlflow_db)
    assert matching(mlflow_db, compile_filter(text, layout=layout)) == expected


@pytest.mark.parametrize("text", MLFLOW_REFUSED + MLFLOW_NOT_APPLICABLE)
def test_mlflow_filters_mlflow_refuses_or_tracker_cannot_answer_are_syntax_errors(
        text: str) -> None:
    with pytest.raises(FilterSyntaxError):
        compile_filter(text)


@pytest.mark.parametrize("text", MLFLOW_WIDER)
def test_mlflow_refusals_that_tracker_accepts_on_purpose_run(
        mlflow_db: duckdb.DuckDBPyConnection, text: str) -> None:
    matching(mlflow_db, compile_filter(text, layout=value_columns.layout(mlflow_db)))


@pytest.mark.parametrize(("items", "expected"), MLFLOW_ORDERS)
def test_mlflow_order_by_cases_sort(
    mlflow_db: duckdb.DuckDBPyConnection, items: Any, expected: list[str]
) -> None:
    compiled = compile_order_by(items, layout=value_columns.layout(mlflow_db))
    assert ordered(mlflow_db, compiled) == expected


@pytest.mark.parametrize("items", MLFLOW_ORDERS_REFUSED)
def test_mlflow_order_by_refusals_are_syntax_errors(items: str) -> None:
    with pytest.raises(FilterSyntaxError):
        compile_order_by(items)

# --- files: which run read or wrote a path --------------------------------------------------


@pytest.fixture
def pipeline(reads: Any, catalog: Any, tmp_path: Path,
             monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """prepare writes data/x.csv, train reads it and writes model.pt; cwd is tmp_path. Read
    from each back end in turn (``reads``)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x.csv").write_text("a,b\n1,2\n")
    (tmp_path / "model.pt").write_bytes(b"weights")
    ids = {}
    for name, reads, writes in (("prepare", [], ["data/x.csv"]),
                                ("train", ["data/x.csv"], ["model.pt"]), ("idle", [], [])):
        run = catalog.start_run(name)
        for path in reads:
            run.log_input(path)
        for path in writes:
            run.log_output(path)
        run.end()
        ids[name] = run.id
    return ids


@pytest.mark.parametrize(("text", "expected"), [
    ("inputs contains 'data/x.csv'", {"train"}),
    ("outputs contains 'data/x.csv'", {"prepare"}),
    ("outputs CONTAINS 'model.pt' or outputs contains 'nowhere.txt'", {"train"}),
    ("inputs not contains 'data/x.csv'", {"prepare", "idle"}),
    ("outputs in ('model.pt', 'data/x.csv')", {"prepare", "train"}),
    ("inputs is null", {"prepare", "idle"}),
    ("outputs is not null and inputs is null", {"prepare"}),
    ("inputs contains './data/../data/x.csv'", {"train"}),
])
def test_files_filter_finds_the_runs_that_read_or_wrote_a_path(
        reads: Any, pipeline: dict[str, str], text: str, expected: set[str]) -> None:
    assert set(reads.runs(text)["name"]) == expected


def test_files_filter_takes_an_absolute_path(reads: Any, pipeline: dict[str, str],
                                             tmp_path: Path) -> None:
    absolute = str(tmp_path / "data" / "x.csv")
    assert list(reads.runs(f"inputs contains {json.dumps(absolute)}")["name"]) == ["train"]


def test_files_filter_binds_the_path() -> None:
    hostile = "x'); DROP TABLE runs; --"
    compiled = compile_filter(f"outputs contains {json.dumps(hostile)}")
    assert "DROP" not in compiled.sql
    assert compiled.params[0] == "output"


def test_files_filter_works_from_the_cli(reads: Any, pipeline: dict[str, str],
                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--catalog", backends.address(reads), "runs",
                 "--where", "outputs contains 'model.pt'", "--format", "json"]) == 0
    assert [record["name"] for record in json.loads(capsys.readouterr().out)] == ["train"]


@pytest.mark.parametrize(("text", "message"), [
    ("inputs > 'x'", "inputs support CONTAINS"),
    ("outputs like 'x%'", "outputs support CONTAINS"),
])
def test_files_filter_rejects_other_operators(text: str, message: str) -> None:
    with pytest.raises(FilterSyntaxError, match=message):
        compile_filter(text)


def test_runs_cannot_be_sorted_by_their_files() -> None:
    with pytest.raises(FilterSyntaxError, match="cannot be sorted"):
        compile_order_by("inputs")
