"""The reads of a PostgreSQL catalog (tracker/pg_queries.py) give the file catalog's DataFrames:
the same events are written to both back ends by their writers, and every read is compared,
columns, dtypes and values."""

from __future__ import annotations

import os
import socket
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import tracker
from tracker import events, pg_queries
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
        shapes.append(events.End(run_id, status, start + 50, None))
        batch += [events.Spooled(run_id, seq, event) for seq, event in enumerate(shapes, 1)]
    return batch


@pytest.fixture
def both(pg_url: str, tmp_path: Path) -> tuple[tracker.Catalog, PgStore]:
    """The same runs in a file catalog and in a PostgreSQL catalog."""
    batch = _events()
    path = tmp_path / "both.duckdb"
    duck = Store(path, 10)
    with duck.connect(write=True) as con:
        assert writer.apply_all(con, batch, writer.keeper(duck)) == []
    store = PgStore(pg_url, 10)
    with store.connect(write=True) as con:
        assert pg_writer.apply(con, batch) == []
    return tracker.Catalog(path), store


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
def test_runs_are_the_file_catalogs(both: tuple[tracker.Catalog, PgStore],
                                    read: dict[str, Any]) -> None:
    catalog, store = both
    expected = catalog.runs(**read)
    got = pg_queries.runs(store, **read)
    pd.testing.assert_frame_equal(got, expected)
    assert got.attrs["total"] == expected.attrs["total"]


def test_the_runs_table_has_every_shape_of_value(both: tuple[tracker.Catalog, PgStore]) -> None:
    table = pg_queries.runs(both[1]).set_index("name")
    assert table.loc["delta", "params.big"] == 2**60  # beyond a double's 53 bits
    assert str(table["params.n"].dtype) == "Int64" and str(table["pid"].dtype) == "Int32"
    assert (table.loc["alpha", "params.mix"], table.loc["beta", "params.mix"]) == (1, "a")
    assert table.loc["beta", "params.layers"] == [64, 32]
    assert table.loc["alpha", "labels"] == ["gpu"]
    assert table.loc["delta", "tags.odd key %s"] == "x"
    assert str(table["params.flag"].dtype) == "boolean"


@pytest.mark.parametrize("by", ["status", "params.model", "tags.stage", "metrics.acc", None])
def test_counts_are_the_file_catalogs(both: tuple[tracker.Catalog, PgStore],
                                      by: str | None) -> None:
    catalog, store = both
    pd.testing.assert_frame_equal(pg_queries.count_runs(store, by=by),
                                  catalog.count_runs(by=by))


def test_keys_are_the_file_catalogs(both: tuple[tracker.Catalog, PgStore]) -> None:
    catalog, store = both
    assert pg_queries.keys(store) == catalog.keys()


def test_a_key_no_run_has_warns_with_the_closest(both: tuple[tracker.Catalog, PgStore]) -> None:
    with pytest.warns(tracker.TrackerWarning, match="did you mean params.lr"):
        table = pg_queries.runs(both[1], "params.lrr > 1")
    assert len(table) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pg_queries.runs(both[1], "params.lr > 1")
