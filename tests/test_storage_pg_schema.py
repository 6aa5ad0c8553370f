"""The typed copy of each run's latest params and metrics in a PostgreSQL catalog
(``latest_values``, tracker/storage/pg_schema.py), on a real server: a trigger on ``runs`` keeps
it equal to the runs' JSON as the server reads it (``->>``, ``try_float8``), whoever writes the
JSON (the writer, over several flushes; plain SQL), never fails the write that records a value,
and loses a run's rows with the run."""

from __future__ import annotations

import json
from typing import Any

import psycopg

from tracker import events
from tracker.storage import pg_writer
from tracker.storage.pg_store import PgStore

T0 = 1_780_000_000.0
# each shape of value a param takes, and a metric's NaN and infinities
PARAMS: dict[str, Any] = {"lr": 0.1, "n": 3, "big": 2**70, "model": "cnn", "flag": True,
                          "none": None, "layers": [64, 32], "conf": {"a": "é"}, "num": "12",
                          "quote": 'say "hi"\n'}


def _run(run_id: str, params: dict[str, Any], metrics: dict[str, float],
         seq: int = 1) -> list[events.Spooled]:
    shapes: list[events.Event] = [events.Start(run_id, {"name": run_id, "started_at": T0})]
    shapes += [events.Param(run_id, key, value, type(value).__name__, T0 + 1)
               for key, value in params.items()]
    shapes += [events.Metric(run_id, key, value, None, T0 + 2) for key, value in metrics.items()]
    return [events.Spooled(run_id, n, event) for n, event in enumerate(shapes, seq)]


def _apply(url: str, batch: list[events.Spooled]) -> None:
    with PgStore(url, 10).connect(write=True) as connection:
        assert pg_writer.apply(connection, batch) == []


def _stored_and_read(url: str) -> tuple[list[Any], list[Any]]:
    """latest_values' rows, and the same rows as the server reads the runs' JSON."""
    with psycopg.connect(url) as connection:
        connection.execute("SET search_path TO tracker")
        stored = connection.execute(
            "SELECT run_id, namespace, key, text_value, number::text, json_type "
            "FROM latest_values ORDER BY 1, 2, 3").fetchall()
        read = connection.execute(
            "SELECT r.id, s.namespace, k.key, s.doc::json ->> k.key, "
            "try_float8(s.doc::json ->> k.key)::text, json_typeof(s.doc::json -> k.key) "
            "FROM runs r, LATERAL (VALUES ('params', r.params), ('metrics', r.metrics)) "
            "s(namespace, doc), LATERAL json_object_keys(s.doc::json) k(key) "
            "ORDER BY 1, 2, 3").fetchall()
    return stored, read


def test_the_values_are_the_runs_json_as_the_server_reads_it(pg_url: str) -> None:
    _apply(pg_url, _run("r1", PARAMS, {"acc": 0.5, "loss": float("nan"),
                                       "up": float("inf")}))
    _apply(pg_url, _run("r2", {"lr": "auto"}, {}))
    stored, read = _stored_and_read(pg_url)
    assert len(stored) == len(PARAMS) + 3 + 1
    assert stored == read
    # a later flush changes one value and adds a key: the rows follow
    _apply(pg_url, [events.Spooled("r1", 100, events.Param("r1", "lr", 0.2, "float", T0 + 5)),
                    events.Spooled("r1", 101, events.Metric("r1", "f1", 0.7, 3, T0 + 6))])
    stored, read = _stored_and_read(pg_url)
    assert stored == read
    assert ("r1", "params", "lr", "0.2", "0.2", "number") in stored


def test_runs_written_in_sql_get_their_values_too(pg_url: str) -> None:
    with PgStore(pg_url, 10).connect(write=True) as connection:
        connection.execute("INSERT INTO runs (id, status, started_at, params, metrics) VALUES "
                           "('s1', 'completed', now(), %s, '{}')", [json.dumps({"a": 1})])
        connection.execute("UPDATE runs SET metrics = %s WHERE id = 's1'",
                           [json.dumps({"m": 2.5})])
    stored, read = _stored_and_read(pg_url)
    assert stored == read == [("s1", "metrics", "m", "2.5", "2.5", "number"),
                              ("s1", "params", "a", "1", "1", "number")]


def test_a_value_text_cannot_hold_is_recorded_with_a_replacement_character(pg_url: str
                                                                           ) -> None:
    """A NUL or a lone surrogate in a string is valid JSON but no text (the server refuses to
    parse a document holding one): the run is recorded, the value reads as U+FFFD there; a
    character escaped as a surrogate pair (an emoji) is kept."""
    _apply(pg_url, _run("r1", {"nul": "a\x00b", "lone": "x\udc80", "high": "\ud83dz",
                               "emoji": "\U0001f600", "ok": "y"}, {}))
    with PgStore(pg_url, 10).connect() as connection:
        rows = connection.execute("SELECT key, text_value FROM latest_values "
                                  "ORDER BY key").fetchall()
    assert rows == [("emoji", "\U0001f600"), ("high", "\ufffdz"), ("lone", "x\ufffd"),
                    ("nul", "a\ufffdb"), ("ok", "y")]


def test_a_purged_run_takes_its_values_along(pg_url: str) -> None:
    _apply(pg_url, [*_run("r1", {"a": 1}, {"m": 1.0}), *_run("r2", {"a": 2}, {})])
    with PgStore(pg_url, 10).connect(write=True) as connection:
        connection.execute("DELETE FROM runs WHERE id = 'r1'")
        left = connection.execute("SELECT DISTINCT run_id FROM latest_values").fetchall()
    assert left == [("r2",)]
