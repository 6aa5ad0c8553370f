"""The runs table's param and metric columns of a PostgreSQL catalog, typed in Python from each
run's JSON (tracker/pg_values.py), hold what the server's own reading of the JSON gave (the SQL
pg_queries sent before: ``->>`` and the safe casts ``try_int8``/``try_float8``), value for
value, on a real server: numbers written every way, texts that read as numbers or not, the
edges of 64 bits and of double's range, booleans, null, a missing key."""

from __future__ import annotations

import json
import math
from typing import Any

import pyarrow as pa
import pytest

from tracker import pg_values
from tracker.storage.pg_store import PgStore

TEXTS = ["1", " 2 ", "-3.5", "1e3", "1E-2", ".5", "5.", "+7", "NaN", "-inf", "Infinity",
         " nan ", "1e400", "1e-400", "0e-400", "0.000", "1e0005", "abc", "", " ", "1 2",
         "9223372036854775807", "9223372036854775808", "-9223372036854775808",
         "-9223372036854775809", "12345678901234567890123", "0x10", "1_000", "\u0661\u0662",
         "1.5.2", "--1", "true", "1" * 40, "1" * 400, "1" * 1001, "1e308", "1.8e308"]
VALUES: list[Any] = [*TEXTS, 0, 1, -1, 2**63 - 1, 2**63, -(2**63), 2**70, 10**400, 0.5, -0.0,
                     1e-300, 5e-324, 1e300, True, False, None, [1, 2], {"a": "é"}]
# the SQL pg_queries typed a param column with, by kinds, before pg_values (the key bound)
OLD_SQL = {"int": "try_int8(d::json ->> %s)", "float": "try_float8(d::json ->> %s)",
           "bool": "CASE (d::json -> %s)::text WHEN 'true' THEN true WHEN 'false' THEN false END",
           "str": "d::json ->> %s", "mixed": "(d::json -> %s)::text"}
KINDS = {"int": {"int"}, "float": {"float", "int"}, "bool": {"bool"}, "str": {"str"},
         "mixed": {"str", "int"}}


def _server(url: str, docs: list[str], shape: str) -> list[Any]:
    with PgStore(url, 10).connect() as connection:
        rows = connection.execute(f"SELECT {OLD_SQL[shape]} FROM unnest(%s::text[]) "
                                  "WITH ORDINALITY u(d, n) ORDER BY n", ["k", docs]).fetchall()
    return [row[0] for row in rows]


def _expanded(docs: list[str], kinds: set[str]) -> list[Any]:
    table = pa.table({"id": ["x"] * len(docs), "params": docs, "metrics": ["{}"] * len(docs)})
    return pg_values.Expansion(1, {"k": kinds}, [])(table).column(1).to_pylist()


def _same(ours: Any, theirs: Any) -> bool:
    if isinstance(ours, float) and isinstance(theirs, float) and math.isnan(theirs):
        return math.isnan(ours)
    return type(ours) is type(theirs) and ours == theirs


# values plainly of each column's type: Arrow's JSON reader types these (the fast path)
PLAIN: dict[str, list[Any]] = {
    "int": [0, 1, -1, 2**63 - 1, -(2**63), None], "float": [0.5, 1, 1e300, -0.0, 5e-324, None],
    "bool": [True, False, None], "str": ["a", "", "\u00e9", "\U0001f600", None],
    "mixed": ["a", 1, None]}


# a read of the server gives large_string (pg_queries); tables made here give string too
@pytest.mark.parametrize("text", [pa.large_string(), pa.string()], ids=str)
@pytest.mark.parametrize("plain", [False, True], ids=["every value", "plain values"])
@pytest.mark.parametrize("shape", sorted(OLD_SQL))
def test_each_column_holds_what_the_servers_reading_gave(pg_url: str, shape: str,
                                                         plain: bool, text: pa.DataType) -> None:
    docs = [json.dumps({"k": value}) for value in (PLAIN[shape] if plain else VALUES)]
    docs += ["{}", "{\"other\": 1}"]
    table = pa.table({"params": pa.array(docs, text),
                      "metrics": pa.array(["{}"] * len(docs), text)})
    fast = pg_values._by_arrow(table, {"k": KINDS[shape]}, [])
    assert (fast is not None) == (plain and shape != "mixed")
    theirs = _server(pg_url, docs, shape)
    ours = _expanded(docs, KINDS[shape])
    if shape == "mixed":  # JSON text, decoded by the reads: the same values, maybe re-spaced
        theirs = [None if text is None else json.loads(text) for text in theirs]
        ours = [None if text is None else json.loads(text) for text in ours]
    wrong = [(doc, o, t) for doc, o, t in zip(docs, ours, theirs, strict=True)
             if not _same(o, t)]
    assert wrong == []


def test_metrics_are_numbers_nan_and_infinities_included() -> None:
    table = pa.table({"params": ["{}"] * 4,
                      "metrics": ['{"m": 0.5}', '{"m": "NaN"}', '{"m": "-Infinity"}', "{}"]})
    column = pg_values.Expansion(0, {}, ["m"])(table).column(0).to_pylist()
    assert column[0] == 0.5 and math.isnan(column[1]) and column[2] == -math.inf
    assert column[3] is None
