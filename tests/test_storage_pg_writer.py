"""The write of a batch of events into a PostgreSQL catalog (tracker/storage/pg_writer.py), on a
real server: the rows are the file catalog's (compared with tracker.storage.writer on the same
events), each event is applied once whatever replays it, and many processes writing at once
lose nothing and draw distinct numbers."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from tracker import events, models
from tracker.storage import pg_writer, writer
from tracker.storage.pg_store import PgStore
from tracker.storage.store import Store

T0 = 1_780_000_000.25  # a fixed time, so both back ends store the same instants


def _run(run_id: str, *, name: str | None = None, numbered: bool = False) -> list[events.Spooled]:
    start = {"name": name or run_id, "project": "p", "started_at": T0, "host": "box",
             "pid": 42, "username": "ann", "labels": ["gpu", "v2"], "notes": "n"}
    if numbered:
        start[models.NUMBERED_NAME] = True
    shapes: list[events.Event] = [
        events.Start(run_id, start),
        events.Param(run_id, "lr", 0.1, "float", T0 + 1),
        events.Param(run_id, "model", "cnn", "str", T0 + 1),
        events.Param(run_id, "lr", 0.2, "float", T0 + 2),
        events.Metric(run_id, "loss", 0.5, 1, T0 + 3),
        events.Metric(run_id, "loss", float("nan"), 2, T0 + 4),
        events.Tag(run_id, "stage", "dev", T0 + 4),
        events.Tag(run_id, "gone", "x", T0 + 4),
        events.Tag(run_id, "gone", None, T0 + 5),
        events.Env(run_id, "env1", {"python": "3.11"}),
        events.Cell(run_id, {"seq": 1, "execution_count": 1, "source": "x = 1",
                             "started_at": T0 + 1, "duration": 0.5, "success": True}),
        events.Artifact(run_id, "output", f"/data/{run_id}.csv",
                        {"size": 10, "mtime": T0, "hash": f"h-{run_id}"}, T0 + 5, "api"),
        events.Update(run_id, {"notebook_title": "Training"}),
        events.End(run_id, "completed", T0 + 6, None),
    ]
    return [events.Spooled(run_id, seq, event) for seq, event in enumerate(shapes, 1)]


def _pg_apply(store: PgStore, batch: list[events.Spooled]) -> list[events.Spooled]:
    with store.connect(write=True) as con:
        return pg_writer.apply(con, batch)


_RUN_COLUMNS = ("id, name, project, status, started_at, ended_at, duration, host, pid, "
                "username, labels, notes, environment_id, error, params, metrics, spool_seq, "
                "notebook_title")
_QUERIES = {
    "runs": f"SELECT {_RUN_COLUMNS} FROM runs ORDER BY id",
    "params": "SELECT run_id, key, value, kind, logged_at FROM params ORDER BY run_id, logged_at",
    "metrics": "SELECT run_id, key, value, step, logged_at FROM metrics ORDER BY run_id, step",
    "tags": "SELECT run_id, key, value, set_at FROM tags ORDER BY run_id, key",
    "cells": "SELECT run_id, seq, source, started_at, duration, success FROM cells ORDER BY 1",
    "artifacts": "SELECT key, version, size, mtime, hash, producer_run_id FROM artifacts "
                 "ORDER BY key",
    "run_artifacts": "SELECT run_id, role, via FROM run_artifacts ORDER BY run_id",
    "environments": "SELECT id, data FROM environments",
    "keys": "SELECT key, kind FROM param_keys ORDER BY key",
}


def _pg_tables(store: PgStore) -> dict[str, list[tuple[Any, ...]]]:
    with store.connect() as con:
        return {name: [tuple(_plain(v) for v in row) for row in con.execute(sql).fetchall()]
                for name, sql in _QUERIES.items()}


def _duck_tables(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    with store.connect() as con:
        return {name: [tuple(_plain(v) for v in row) for row in con.execute(sql).fetchall()]
                for name, sql in _QUERIES.items()}


def _plain(value: Any) -> Any:
    """A value comparable across drivers: instants as epoch seconds, NaN as text."""
    if hasattr(value, "timestamp"):
        return round(value.timestamp(), 6)
    if isinstance(value, float) and value != value:
        return "nan"
    if isinstance(value, float):
        return round(value, 9)
    return value


def test_the_rows_written_are_the_file_catalogs(pg_url: str, tmp_path: Path) -> None:
    batch = [*_run("01aaaa"), *_run("01bbbb")]
    assert _pg_apply(PgStore(pg_url, 10), batch) == []
    duck = Store(tmp_path / "catalog.duckdb", 10)
    with duck.connect(write=True) as con:
        assert writer.apply_all(con, batch, writer.keeper(duck)) == []
    pg, file = _pg_tables(PgStore(pg_url, 10)), _duck_tables(duck)
    for table in _QUERIES:
        assert pg[table] == file[table], table
    assert len(pg["metrics"]) == 4 and pg["runs"][0][3] == "completed"


def test_a_batch_applied_twice_is_applied_once(pg_url: str) -> None:
    store = PgStore(pg_url, 10)
    batch = _run("01aaaa")
    _pg_apply(store, batch)
    before = _pg_tables(store)
    _pg_apply(store, batch)  # a retry after a commit whose answer the connection lost
    _pg_apply(store, batch[5:])  # a spool replayed from the middle
    assert _pg_tables(store) == {**before, "runs": _pg_tables(store)["runs"]}
    with store.connect() as con:
        assert con.execute("SELECT count(*), max(spool_seq) FROM runs").fetchone() == \
            (1, len(batch))


def test_a_batch_split_anywhere_gives_the_same_rows(pg_url: str, pg_cluster: Any) -> None:
    whole = PgStore(pg_url, 10)
    batch = _run("01aaaa")
    _pg_apply(whole, batch)
    pieces = PgStore(pg_cluster.url(pg_cluster.fresh_database()), 10)
    for cut in range(0, len(batch), 3):
        _pg_apply(pieces, batch[cut:cut + 3])
    strip = {"runs"}  # heartbeat_at differs, and is not compared
    assert {k: v for k, v in _pg_tables(whole).items() if k not in strip} == \
        {k: v for k, v in _pg_tables(pieces).items() if k not in strip}


def test_a_removed_tag_is_never_brought_back_by_an_older_value_arriving_late(
        pg_url: str) -> None:
    store = PgStore(pg_url, 10)
    _pg_apply(store, _run("01aaaa")[:1])
    with store.connect(write=True) as con:
        pg_writer.write_tags(con.cursor(), {("01aaaa", "stage"): (None, T0 + 10)})
    _pg_apply(store, [events.Spooled("01aaaa", 2, events.Tag("01aaaa", "stage", "dev", T0))])
    assert [row[1:3] for row in _pg_tables(store)["tags"]] == [("stage", None)]
    _pg_apply(store, [events.Spooled("01aaaa", 3, events.Tag("01aaaa", "stage", "v2", T0 + 20))])
    assert [row[1:3] for row in _pg_tables(store)["tags"]] == [("stage", "v2")]


def test_events_of_a_run_that_never_started_are_returned_not_applied(pg_url: str) -> None:
    store = PgStore(pg_url, 10)
    orphans = _run("01cccc")[1:]
    assert _pg_apply(store, orphans) == orphans
    assert _pg_tables(store)["params"] == []


def test_a_numbered_name_takes_the_next_number_of_its_base(pg_url: str) -> None:
    store = PgStore(pg_url, 10)
    for run_id in ("01a", "01b", "01c"):
        _pg_apply(store, _run(run_id, name="train", numbered=True))
    _pg_apply(store, _run("01d", name="train"))  # asked for no number
    renamed = events.Update("01d", {"name": "train", models.NUMBERED_NAME: True})
    _pg_apply(store, [events.Spooled("01d", 99, renamed)])
    with store.connect() as con:
        names = [row[0] for row in con.execute("SELECT name FROM runs ORDER BY id")]
    assert names == ["train #1", "train #2", "train #3", "train #4"]


def test_both_back_ends_number_a_batch_alike(pg_url: str, tmp_path: Path) -> None:
    # plain names before numbering, odd suffixes that hold no number, a base ending in "#1"
    given = ("fit", "fit", "fit #1e3", "fit #" + "9" * 20, "fit #007", "big #" + "9" * 18,
             "big #9223372036854775808")
    batch = [*(event for i, name in enumerate(given) for event in _run(f"01g{i}", name=name)),
             *_run("01n1", name="fit", numbered=True), *_run("01n2", name="exp", numbered=True),
             *_run("01n3", name="exp #1", numbered=True), *_run("01n4", name="big", numbered=True)]
    assert _pg_apply(PgStore(pg_url, 10), batch) == []
    duck = Store(tmp_path / "catalog.duckdb", 10)
    with duck.connect(write=True) as con:
        assert writer.apply_all(con, batch, writer.keeper(duck)) == []
    query = "SELECT name FROM runs WHERE id LIKE '01n%' ORDER BY id"
    with PgStore(pg_url, 10).connect() as con:
        on_server = [row[0] for row in con.execute(query)]
    with duck.connect() as con:
        in_file = [row[0] for row in con.execute(query).fetchall()]
    assert on_server == in_file == ["fit #8", "exp #1", "exp #1 #2", "big #" + "1" + "0" * 18]


@pytest.mark.slow
def test_writers_in_parallel_processes_lose_nothing(pg_url: str) -> None:
    """8 processes x 25 runs, all named after one notebook: every run, param and metric
    arrives once, and the numbers drawn are 1..200 with none twice."""
    code = textwrap.dedent(f"""
        import sys, time
        from tracker import events, models
        from tracker.storage import pg_writer
        from tracker.storage.pg_store import PgStore
        store = PgStore({pg_url!r}, 60)
        worker = sys.argv[1]
        for n in range(25):
            run_id = f"01{{worker}}{{n:03d}}"
            now = time.time()
            batch = [events.Start(run_id, {{"name": "nb", models.NUMBERED_NAME: True,
                                            "started_at": now}}),
                     events.Param(run_id, "worker", worker, "str", now),
                     *[events.Metric(run_id, "loss", 1 / (s + 1), s, now) for s in range(10)],
                     events.End(run_id, "completed", now, None)]
            numbered = [events.Spooled(run_id, s, e) for s, e in enumerate(batch, 1)]
            with store.connect(write=True) as con:
                assert pg_writer.apply(con, numbered) == []
    """)
    started = time.monotonic()
    workers = [subprocess.Popen([sys.executable, "-c", code, f"w{n}"], stderr=subprocess.PIPE,
                                text=True) for n in range(8)]
    errors = [worker.communicate(timeout=300)[1] for worker in workers]
    assert [worker.returncode for worker in workers] == [0] * 8, errors
    assert time.monotonic() - started < 300
    store = PgStore(pg_url, 10)
    with store.connect() as con:
        assert con.execute("SELECT count(*), count(DISTINCT name) FROM runs").fetchone() == \
            (200, 200)
        numbers = sorted(int(row[0].split("#")[1]) for row in con.execute("SELECT name FROM runs"))
        assert numbers == list(range(1, 201))
        assert con.execute("SELECT count(*) FROM metrics").fetchone() == (2000,)
        assert con.execute("SELECT count(*) FROM params").fetchone() == (200,)


@pytest.mark.slow
def test_writers_linking_the_same_files_in_any_order_never_deadlock(pg_url: str) -> None:
    """8 processes, each run writing new contents of the same 6 paths in a random order: no
    writer fails, and each path's versions are 1..80 with none twice."""
    code = textwrap.dedent(f"""
        import random, sys, time
        from tracker import events
        from tracker.storage import pg_writer
        from tracker.storage.pg_store import PgStore
        store = PgStore({pg_url!r}, 60)
        worker = sys.argv[1]
        for n in range(10):
            run_id = f"01{{worker}}{{n:03d}}"
            now = time.time()
            paths = [f"/data/p{{i}}.csv" for i in range(6)]
            random.shuffle(paths)
            batch = [events.Start(run_id, {{"name": run_id, "started_at": now}}),
                     *[events.Artifact(run_id, "output", path,
                                       {{"hash": f"{{run_id}}-{{path}}"}}, now)
                       for path in paths]]
            numbered = [events.Spooled(run_id, s, e) for s, e in enumerate(batch, 1)]
            with store.connect(write=True) as con:
                assert pg_writer.apply(con, numbered) == []
    """)
    workers = [subprocess.Popen([sys.executable, "-c", code, f"w{n}"], stderr=subprocess.PIPE,
                                text=True) for n in range(8)]
    errors = [worker.communicate(timeout=300)[1] for worker in workers]
    assert [worker.returncode for worker in workers] == [0] * 8, errors
    with PgStore(pg_url, 10).connect() as con:
        versions = con.execute("SELECT key, array_agg(version ORDER BY version) FROM artifacts "
                               "GROUP BY key").fetchall()
        links = con.execute("SELECT count(*) FROM run_artifacts").fetchone()
    assert len(versions) == 6
    assert all(found == list(range(1, 81)) for _, found in versions)
    assert links == (480,)
