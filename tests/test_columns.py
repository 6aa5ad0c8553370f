"""The columnar copy of the latest values: one column per key, always in step with the JSON."""

from __future__ import annotations

import duckdb

import tracker
from tracker.storage import columns


def _values(catalog: tracker.Catalog, run_id: str) -> dict[str, object]:
    """A run's value columns, by key: what filters and the runs table read."""
    with catalog.connect() as con:
        layout = columns.layout(con)
        row = con.execute("SELECT * FROM runs WHERE id = ?", [run_id]).fetchone()
        names = [d[0] for d in con.description]
    by_name = dict(zip(names, row))
    return {f"{namespace}.{key}": by_name[name] for (namespace, key), name in layout.items()}


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
    catalog.flush()
    with catalog.connect(write=True) as con:
        name = columns.layout(con)["params", "lr"]
        con.execute(f"UPDATE runs SET {name} = 'stale'")
        columns.refresh(con)
    assert _values(catalog, run.id)["params.lr"] == "0.1"


def test_pointers_escape_slashes_and_tildes() -> None:
    assert columns.pointer("a~/b.c") == "/a~0~1b.c"
    con = duckdb.connect()
    assert con.execute("SELECT json_extract_string(?, ?)",
                       ['{"a~/b.c": 1}', columns.pointer("a~/b.c")]).fetchone() == ("1",)
