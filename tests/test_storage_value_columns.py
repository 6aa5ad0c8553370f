"""The columnar copy of the latest values: one column per key, never out of step with the JSON
for a reader (writers leave the columns to readers, who read a lagging row from its JSON)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest

import tracker
from tracker import queries
from tracker.storage import value_columns


@pytest.fixture(autouse=True)
def _every_read_catches_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reads fill the value columns once many runs lag (queries.CATCH_UP_AT); here, at once."""
    monkeypatch.setattr(queries, "CATCH_UP_AT", 1)


def _row(catalog: tracker.Catalog, run_id: str) -> dict[str, object]:
    """A run's row in ``runs`` as stored, value columns by key, plus whether they are fresh."""
    with catalog.connect() as con:
        layout = value_columns.layout(con)
        row = con.execute("SELECT * FROM runs LEFT JOIN run_values USING (id) WHERE id = ?",
                          [run_id]).fetchone()
        names = [d[0] for d in con.description]
    by_name = dict(zip(names, row))
    return {"fresh": by_name["values_fresh"],
            **{f"{namespace}.{key}": by_name[name] for (namespace, key), name in layout.items()}}


def _values(catalog: tracker.Catalog, run_id: str) -> dict[str, object]:
    """A run's value columns, by key, once a read has brought them up to date."""
    catalog.runs()
    row = _row(catalog, run_id)
    assert row.pop("fresh") is True
    return row


def test_each_key_gets_its_own_columns_even_when_only_case_differs(
        catalog: tracker.Catalog) -> None:
    with catalog.start_run(params={"lr": 0.1, "LR": "high", "a.b/c": [1, 2]}) as run:
        run.log_metric("acc", 0.5)
        run.log_metric("Acc", float("nan"))
    catalog.flush()
    values = _values(catalog, run.id)
    assert values["params.lr"] == "0.1"
    assert values["params.LR"] == "high"
    assert values["params.a.b/c"] == "[1,2]"
    assert values["metrics.acc"] == 0.5
    assert values["metrics.Acc"] != values["metrics.Acc"]  # NaN is kept as NaN


def test_columns_follow_a_changed_value_and_a_new_key(catalog: tracker.Catalog) -> None:
    with catalog.start_run() as run:
        run.log_param("lr", 0.1)
        run.log_metric("loss", 3.0)
        catalog.flush()
        run.log_param("lr", "auto")  # a re-run cell changed the value, and its type
        run.log_param("late", True)
        run.log_metric("loss", 1.0)
    catalog.flush()
    values = _values(catalog, run.id)
    assert (values["params.lr"], values["params.late"], values["metrics.loss"]) == (
        "auto", "true", 1.0)
    assert list(catalog.runs("params.lr = 'auto' AND params.late = true")["id"]) == [run.id]


def test_a_string_true_is_not_the_boolean_true(catalog: tracker.Catalog) -> None:
    with catalog.start_run("boolean", params={"flag": True}):
        pass
    with catalog.start_run("text", params={"flag": "true"}):
        pass
    assert list(catalog.runs("params.flag = true")["name"]) == ["boolean"]
    assert set(catalog.runs("params.flag = 'true'")["name"]) == {"boolean", "text"}


def test_refresh_rebuilds_every_run_from_the_json(catalog: tracker.Catalog) -> None:
    with catalog.start_run(params={"lr": 0.1}) as run:
        pass
    catalog.runs()
    with catalog.connect(write=True) as con:
        name = value_columns.layout(con)["params", "lr"]
        con.execute(f"UPDATE run_values SET {name} = 'stale'")
        value_columns.refresh(con)
    assert _values(catalog, run.id)["params.lr"] == "0.1"


def test_pointers_escape_slashes_and_tildes() -> None:
    assert value_columns.pointer("a~/b.c") == "/a~0~1b.c"
    con = duckdb.connect()
    assert con.execute("SELECT json_extract_string(?, ?)",
                       ['{"a~/b.c": 1}', value_columns.pointer("a~/b.c")]).fetchone() == ("1",)


def test_a_read_fills_the_value_columns_once_enough_runs_lag(
        catalog: tracker.Catalog, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(queries, "CATCH_UP_AT", 2)
    with catalog.start_run(params={"lr": 0.1}) as first:
        first.log_metric("acc", 0.5)
    catalog.flush()
    assert _row(catalog, first.id) == {"fresh": None}  # not even a column for the new keys yet

    assert list(catalog.runs("params.lr = 0.1 and metrics.acc > 0.4")["id"]) == [first.id]
    assert _row(catalog, first.id) == {"fresh": None}  # one lagging run: read from its JSON
    with catalog.start_run(params={"lr": 0.2}) as second:
        pass
    assert len(catalog.runs("params.lr > 0")) == 2
    assert _row(catalog, first.id) == {"fresh": True, "params.lr": "0.1", "metrics.acc": 0.5}
    assert _row(catalog, second.id) == {"fresh": True, "params.lr": "0.2", "metrics.acc": None}


READER = textwrap.dedent("""
    import sys
    from tracker.storage import lock as _lock
    with _lock.locked(sys.argv[1], write=False, timeout=60):
        print("reading", flush=True)
        sys.stdin.readline()  # held until the test says so
""")


def _other_reader(catalog: tracker.Catalog) -> subprocess.Popen[str]:
    """Another process holding a shared lock on the catalog: reads go on, writes must wait."""
    reader = subprocess.Popen([sys.executable, "-c", READER, str(catalog.path)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert reader.stdout is not None and reader.stdout.readline().strip() == "reading"
    return reader


def test_a_read_that_cannot_write_reads_lagging_rows_from_their_json(
        catalog: tracker.Catalog, tmp_path: Path) -> None:
    with catalog.start_run("old", params={"lr": 0.1, "opt": "sgd"}) as old:
        old.log_metric("acc", 0.5)
    with catalog.start_run("changed", params={"lr": 0.3}) as changed:
        catalog.runs()  # the columns of both are filled
        changed.log_param("lr", "auto")  # its fresh columns now lag behind its JSON
    with catalog.start_run("new", params={"lr": 0.2, "flag": True}) as new:
        new.log_metric("acc", 0.9)
    catalog.flush()

    reader = _other_reader(catalog)
    try:
        frame = catalog.runs(order_by="name")
        assert list(frame["name"]) == ["changed", "new", "old"]
        assert list(frame["params.lr"]) == ["auto", 0.2, 0.1]
        assert list(frame["params.flag"].isna()) == [True, False, True]
        assert list(catalog.runs("params.flag = true")["name"]) == ["new"]
        assert list(catalog.runs("params.lr = 'auto'")["name"]) == ["changed"]
        assert list(catalog.runs(order_by="metrics.acc DESC", limit=1)["name"]) == ["new"]
        assert catalog.count_runs(by="params.flag")["count"].tolist() == [2, 1]
        assert "params.flag" in catalog.keys()
        # The write lock was never free: the columns still lag.
        assert _row(catalog, new.id)["fresh"] is _row(catalog, changed.id)["fresh"] is None
    finally:
        reader.communicate("\n", timeout=60)
    catalog.runs()
    assert _row(catalog, new.id)["fresh"] is _row(catalog, changed.id)["fresh"] is True


@pytest.mark.parametrize("name", [
    "id AS x FROM runs r; COPY (SELECT 'written') TO '{pwned}' (HEADER false); SELECT 1 --",
    "m1; DROP TABLE runs --", "p1", "x1", "m01"])
def test_a_value_column_name_the_file_holds_is_never_sql(tmp_path: Path, name: str) -> None:
    """Column names come from the catalog file: one edited by hand (a downloaded catalog, a
    trusted one) must be refused, not pasted into the reader's SQL."""
    path = tmp_path / "catalog.duckdb"
    catalog = tracker.Catalog(path)
    with catalog.start_run("first") as run:
        run.log_metric("loss", 0.5)
    catalog.runs()
    pwned = tmp_path / "pwned.txt"
    con = duckdb.connect(str(path))
    con.execute("UPDATE runs SET values_fresh = true")
    con.execute("UPDATE value_columns SET name = ? WHERE key = 'loss'",
                [name.format(pwned=pwned)])
    con.close()
    with pytest.raises(tracker.NotACatalogError, match="value column"):
        tracker.Catalog(path).runs()
    assert not pwned.exists()
    assert duckdb.connect(str(path)).execute("SELECT count(*) FROM runs").fetchone() == (1,)
