"""The reads of a PostgreSQL catalog (Catalog("postgresql://..."), tracker/pg_queries.py) give
the file catalog's DataFrames: the same events are written to both back ends by their writers,
and every read through the Catalog front is compared, columns, dtypes and values."""

from __future__ import annotations

import os
import socket
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import tracker
from tracker import events, pg_values
from tracker.storage import pg_writer, writer
from tracker.storage.pg_store import PgStore
from tracker.storage.store import Store

T0 = 1_780_000_000.5


def _events() -> list[events.Spooled]:
    """Six ended runs with params of every shape, metrics at steps (NaN among them), tags."""
    runs: list[tuple[str, str, dict[str, Any], dict[str, list[float]], dict[str, str], str]] = [
        ("01r1", "alpha", {"lr": 0.1, "n": 3, "model": "cnn", "flag": True, "mix": 1},
         {"acc": [0.5, 0.9]}, {"stage": "dev"}, "completed"),
        ("01r2", "beta", {"lr": 0.01, "n": 10, "mix": "a", "layers": [64, 32]},
         {"acc": [0.7], "loss": [float("nan")]}, {"stage": "prod"}, "failed"),
        ("01r3", "gamma", {"lr": 0.2, "flag": False, "none": None},
         {"acc": [0.2, 0.95, 0.4]}, {}, "completed"),
        ("01r4", "delta", {"model": "vit", "big": 2**60}, {}, {"odd key %s": "x"}, "crashed"),
        ("01r5", "epsilon", {}, {"loss": [1.5]}, {}, "completed"),
        ("01r6", "zeta", {"lr": "auto"}, {"acc": [0.1]}, {}, "completed"),
    ]
    batch: list[events.Spooled] = []
    for n, (run_id, name, params, metrics, tags, status) in enumerate(runs):
        start = T0 + n * 100
        shapes: list[events.Event] = [events.Start(run_id, {
            "name": name, "project": "p" if n % 2 else None, "started_at": start,
            "host": socket.gethostname(), "pid": os.getpid(), "username": "ann",
            "labels": ["gpu"] if n % 3 == 0 else None})]
        shapes += [events.Param(run_id, key, value,
                                "none" if value is None else type(value).__name__, start + 1)
                   for key, value in params.items()]
        shapes += [events.Metric(run_id, key, value, step, start + 2 + step)
                   for key, series in metrics.items() for step, value in enumerate(series)]
        shapes += [events.Tag(run_id, key, value, start + 3) for key, value in tags.items()]
        shapes += _files(run_id, start)
        shapes.append(events.Env(run_id, f"env{n % 2}", {"python": "3.11", "n": n % 2}))
        shapes.append(events.Cell(run_id, {"seq": 1, "execution_count": 1, "source": "x = 1",
                                           "started_at": start + 1, "duration": 0.25,
                                           "success": n != 1, "error_type": None}))
        shapes.append(events.End(run_id, status, start + 50, None))
        batch += [events.Spooled(run_id, seq, event) for seq, event in enumerate(shapes, 1)]
    return batch


def _files(run_id: str, start: float) -> list[events.Event]:
    """r1 writes a.csv, r2 reads it and writes b.csv, r3 reads both; r4 rewrites a.csv."""
    def seen(role: str, name: str, digest: str) -> events.Artifact:
        return events.Artifact(run_id, role, f"/data/{name}",
                               {"size": 10, "mtime": start, "hash": digest}, start + 4, "api")

    return {"01r1": [seen("output", "a.csv", "h1")],
            "01r2": [seen("input", "a.csv", "h1"), seen("output", "b.csv", "h2")],
            "01r3": [seen("input", "a.csv", "h1"), seen("input", "b.csv", "h2")],
            "01r4": [seen("output", "a.csv", "h3")]}.get(run_id, [])


Both = tuple[tracker.Catalog, tracker.Catalog]  # a file catalog and a PostgreSQL one


@pytest.fixture
def both(pg_url: str, tmp_path: Path) -> Both:
    """The same runs in a file catalog and in a PostgreSQL catalog, each behind Catalog."""
    batch = _events()
    path = tmp_path / "both.duckdb"
    duck = Store(path, 10)
    with duck.connect(write=True) as con:
        assert writer.apply_all(con, batch, writer.keeper(duck)) == []
    store = PgStore(pg_url, 10)
    with store.connect(write=True) as con:
        assert pg_writer.apply(con, batch) == []
    return tracker.Catalog(path), tracker.Catalog(pg_url)

READS: list[dict[str, Any]] = [
    {},
    {"where": "params.lr > 0.05"},
    {"where": "metrics.acc >= 0.5 and status = 'completed'"},
    {"where": "tags.stage = 'dev' or labels contains 'gpu'"},
    {"order_by": "metrics.acc DESC"},
    {"order_by": ["params.lr", "name DESC"], "limit": 2, "offset": 1},
    {"status": "failed"},
    {"where": "metrics_at_max_step.acc > 0.3"},
    {"order_by": "metrics_at_max_step.acc DESC", "limit": 3},
    {"where": "params.model LIKE 'c%'"},
    {"where": "params.flag = true"},
]


@pytest.mark.parametrize("read", READS, ids=[str(read) for read in READS])
def test_runs_are_the_file_catalogs(both: Both,
                                    read: dict[str, Any]) -> None:
    catalog, pg = both
    expected = catalog.runs(**read)
    got = pg.runs(**read)
    pd.testing.assert_frame_equal(got, expected)
    assert got.attrs["total"] == expected.attrs["total"]


def test_the_runs_table_has_every_shape_of_value(both: Both) -> None:
    table = both[1].runs().set_index("name")
    assert table.loc["delta", "params.big"] == 2**60  # beyond a double's 53 bits
    assert str(table["params.n"].dtype) == "Int64" and str(table["pid"].dtype) == "Int32"
    assert (table.loc["alpha", "params.mix"], table.loc["beta", "params.mix"]) == (1, "a")
    assert table.loc["beta", "params.layers"] == [64, 32]
    assert table.loc["alpha", "labels"] == ["gpu"]
    assert table.loc["delta", "tags.odd key %s"] == "x"
    assert str(table["params.flag"].dtype) == "boolean"


@pytest.mark.parametrize("by", ["status", "params.model", "tags.stage", "metrics.acc", None])
def test_counts_are_the_file_catalogs(both: Both,
                                      by: str | None) -> None:
    catalog, pg = both
    pd.testing.assert_frame_equal(pg.count_runs(by=by),
                                  catalog.count_runs(by=by))


def test_keys_are_the_file_catalogs(both: Both) -> None:
    catalog, pg = both
    assert pg.keys() == catalog.keys()


def test_a_key_no_run_has_warns_with_the_closest(both: Both) -> None:
    with pytest.warns(tracker.TrackerWarning, match="did you mean params.lr"):
        table = both[1].runs("params.lrr > 1")
    assert len(table) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        both[1].runs("params.lr > 1")


@pytest.mark.parametrize("ref", ["01r1", "01r2", "01r4", "01r6"])
def test_one_run_in_full_is_the_file_catalogs(both: Both,
                                              ref: str) -> None:
    catalog, pg = both
    expected, got = catalog.get_run(ref), pg.get_run(ref)
    # heartbeat_at is when each writer applied the batch
    assert replace(got, heartbeat_at=None) == replace(expected, heartbeat_at=None)
    assert got.artifacts == expected.artifacts and got.cells == expected.cells


def test_references_resolve_as_in_the_file_catalog(
        both: Both) -> None:
    catalog, pg = both
    for ref in ("01r3", "tracker://default/runs/01r3", "tracker://p/runs/01r2"):
        assert pg.get_run(ref).id == catalog.get_run(ref).id
    for ref in ("01r", "tracker://p/runs/01r3", "nope", "01r9"):
        with pytest.raises(tracker.TrackerError) as pg_error:
            pg.get_run(ref)
        with pytest.raises(tracker.TrackerError) as file_error:
            catalog.get_run(ref)
        assert type(pg_error.value) is type(file_error.value)
        assert str(pg_error.value) == str(file_error.value)


@pytest.mark.parametrize("key", [None, "acc", "loss", "nothing"])
def test_metric_history_is_the_file_catalogs(both: Both,
                                             key: str | None) -> None:
    catalog, pg = both
    for ref in ("01r1", "01r2", "01r3"):
        pd.testing.assert_frame_equal(pg.metric_history(ref, key),
                                      catalog.metric_history(ref, key))


@pytest.mark.parametrize("read", [{}, {"run": "01r2"}, {"role": "input"},
                                  {"run": "01r4", "role": "output"}])
def test_artifacts_are_the_file_catalogs(both: Both,
                                         read: dict[str, Any]) -> None:
    catalog, pg = both
    pd.testing.assert_frame_equal(pg.artifacts(**read), catalog.artifacts(**read))


@pytest.mark.parametrize("ref", ["01r1", "01r2", "01r3", "01r5"])
def test_lineage_is_the_file_catalogs(both: Both, ref: str) -> None:
    catalog, pg = both
    got = pg.lineage(ref)
    pd.testing.assert_frame_equal(got, catalog.lineage(ref))
    if ref == "01r2":  # not only empty frames agree
        assert sorted(zip(got["direction"], got["run_id"])) == [
            ("downstream", "01r3"), ("upstream", "01r1")]


def test_runs_are_deleted_and_restored(both: Both) -> None:
    for catalog in both:  # the file catalog, then the PostgreSQL one: the same answers
        assert catalog.delete_run("01r1") == "01r1"
        assert catalog.delete_runs("params.lr > 0.05") == ["01r3"]
        assert sorted(catalog.runs()["id"]) == ["01r2", "01r4", "01r5", "01r6"]
        assert catalog.get_run("01r1").deleted_at is not None
        assert len(catalog.runs(include_deleted=True)) == 6
        assert catalog.restore_runs(["01r1", "01r3"]) == ["01r1", "01r3"]
        assert len(catalog.runs()) == 6 and catalog.get_run("01r1").deleted_at is None
        with pytest.raises(tracker.ArgumentError, match="needs a filter"):
            catalog.delete_runs()
        with pytest.raises(tracker.RunNotFoundError):
            catalog.delete_run("nope")


def test_reads_hold_in_a_parallel_plan(both: Both, pg_cluster: Any, pg_url: str) -> None:
    """A runs table of some 50,000 runs gets parallel plans; the safe casts must run in them
    (an EXCEPTION block's subtransaction is refused there). Parallel plans are forced here."""
    database = pg_url.split("@/")[1].split("?")[0]
    force = "debug_parallel_query" if _server_version(pg_url) >= 160000 else "force_parallel_mode"
    for setting in (f"{force} = on", "parallel_setup_cost = 0", "parallel_tuple_cost = 0",
                    "min_parallel_table_scan_size = 0"):
        pg_cluster.admin(f"ALTER DATABASE {database} SET {setting}")
    catalog, pg = tracker.Catalog(both[0].path), tracker.Catalog(pg_url)  # new connections
    for read in ({}, {"where": "params.lr > 0.05 and metrics.acc >= 0.5"},
                 {"order_by": "metrics.acc DESC", "limit": 3}, {"where": "params.n > 5"}):
        pd.testing.assert_frame_equal(pg.runs(**read), catalog.runs(**read))


def _server_version(url: str) -> int:
    import psycopg

    with psycopg.connect(url) as connection:
        row = connection.execute("SHOW server_version_num").fetchone()
    return int(row[0]) if row else 0


def _plan(both: Both, pg_url: str, read: dict[str, Any], *settings: str) -> str:
    """The plan of the SQL ``runs(**read)`` sends, with ``settings`` SET first."""
    import psycopg

    from tracker import pg_queries

    sent: list[tuple[str, Any]] = []
    query = pg_queries.ArrowConnection.sql

    def recording(self: Any, sql: str, params: Any = None) -> Any:
        sent.append((sql, params))
        return query(self, sql, params)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pg_queries.ArrowConnection, "sql", recording)
        assert len(both[1].runs(**read)) == len(both[0].runs(**read))
    sql, params = sent[0]
    with psycopg.connect(pg_url) as connection:
        connection.execute("SET search_path TO tracker")
        for setting in settings:
            connection.execute(f"SET {setting}")
        return "\n".join(row[0] for row in connection.execute(
            f"EXPLAIN {sql}", list(params or ())).fetchall())  # type: ignore[arg-type]


def test_a_page_of_the_newest_runs_is_read_from_the_index(both: Both, pg_url: str) -> None:
    """runs(limit=25) in the default order (a widget's first render) must not sort the whole
    table: at 1M runs that sort took over 40 s. Sorts are priced out so the plan shows whether
    the index gives the order."""
    plan = _plan(both, pg_url, {"limit": 25}, "enable_sort = off", "enable_seqscan = off")
    assert "runs_started" in plan and "Sort" not in plan, plan


def test_a_filter_on_params_and_metrics_is_read_from_the_value_indexes(both: Both,
                                                                        pg_url: str) -> None:
    """A filter on keys read every run's JSON, once per key (4 s at 100k runs): its keys are
    looked up in latest_values' indexes (which one, by key or by text, the planner picks by
    the table's statistics). Scans are priced out so the plan shows what indexes answer."""
    plan = _plan(both, pg_url, {"where": "params.model = 'cnn' and metrics.acc > 0.5"},
                 "enable_seqscan = off", "enable_nestloop = off")
    looked_up = [line for line in plan.splitlines() if "Scan using latest_values_" in line]
    assert len(looked_up) == 2 and "Seq Scan" not in plan, plan


def test_which_runs_match_a_filter_is_read_from_the_value_indexes_alone(both: Both,
                                                                         pg_url: str) -> None:
    """Each key's matches come from an index-only scan: at 100k runs the text's index (the
    text without its key) and the number's (the expression without ``number``) made the server
    read one heap page per candidate, most of the filter's 485 ms. Bitmaps are priced out so
    the plan shows what the indexes can answer."""
    plan = _plan(both, pg_url, {"where": "params.model IN ('cnn', 'vit') and metrics.acc > 0.5"},
                 "enable_seqscan = off", "enable_bitmapscan = off")
    for index in ("latest_values_by_text", "latest_values_by_number"):
        assert f"Index Only Scan using {index}" in plan, plan


def test_a_text_too_long_for_the_text_index_is_found(both: Both, tmp_path: Path) -> None:
    """A param's text past the text index's length (pg_schema.TEXT_INDEXED, in characters) is
    not in that index; a filter on it finds its run all the same, beside a short one."""
    long = "\u00e9" * 700  # 1,400 bytes
    batch = [events.Spooled("01r7", seq, event) for seq, event in enumerate([
        events.Start("01r7", {"name": "eta", "started_at": T0 + 700, "username": "ann"}),
        events.Param("01r7", "model", long, "str", T0 + 701),
        events.End("01r7", "completed", T0 + 750, None)], 1)]
    duck = Store(tmp_path / "both.duckdb", 10)
    with duck.connect(write=True) as con:
        assert writer.apply_all(con, batch, writer.keeper(duck)) == []
    with PgStore(both[1].path, 10).connect(write=True) as con:
        assert pg_writer.apply(con, batch) == []
    for read in ({"where": f"params.model = '{long}'"}, {"params.model": long},
                 {"where": f"params.model IN ('cnn', '{long}')"}):
        found = both[1].runs(**read)
        pd.testing.assert_frame_equal(found, both[0].runs(**read))
        assert "01r7" in list(found["id"]), read


def test_a_large_result_read_by_arrow_is_the_small_results_read(
        pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # keys of one kind each, so that Arrow's JSON reader (not Python) types them past
    # ARROW_FROM rows; a read gives large_string texts, which its join once refused
    catalog = tracker.Catalog(pg_url)
    for i in range(3):
        catalog.start_run(f"r{i}")
        catalog.log_params({"lr": 0.1 * i, "layers": i, "model": f"m{i}", "flag": i % 2 == 0})
        catalog.log_metrics({"acc": i / 3})
        catalog.end_run()
    catalog.flush()
    by_python = catalog.runs()
    monkeypatch.setattr(pg_values, "ARROW_FROM", 1)
    by_arrow = catalog.runs()
    pd.testing.assert_frame_equal(by_arrow, by_python)
    assert by_arrow.loc[by_arrow["name"] == "r2", "params.model"].item() == "m2"
