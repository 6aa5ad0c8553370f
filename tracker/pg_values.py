"""A PostgreSQL catalog's params and metrics as the runs table's typed columns, from each run's
JSON text parsed once per row in Python (the server's ``json ->> key`` parses the text again
for every key, and its safe casts are PL/pgSQL calls: 25 of each a row was most of a 100k-run
table's 18 s).

Each column is typed by the kinds ever logged for its key, as :mod:`tracker.queries` types the
file catalog's value columns, and each value is what the server's casts give for its text form
(``try_int8``, ``try_float8`` in :mod:`tracker.storage.pg_schema`): an int column holds whole
numbers in 64 bits, a float column anything that reads as a double (``'NaN'``, ``'1e3'``), text
the ``->>`` form, mixed kinds the JSON text (decoded later, as the file catalog's).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from tracker import queries

if TYPE_CHECKING:
    import pyarrow as pa

# try_float8's and try_int8's tests of a text (ASCII digits and white space, as the server's)
_NUMBER = re.compile(r"\s*[-+]?(?P<digits>\d+\.?\d*|\.\d+)([eE][-+]?\d{1,3})?\s*\Z", re.ASCII)
_SPECIAL = re.compile(r"\s*[-+]?(nan|inf|infinity)\s*\Z", re.ASCII | re.IGNORECASE)
_WHOLE = re.compile(r"\s*[-+]?\d+\s*\Z", re.ASCII)
_INT8 = (-(2**63), 2**63 - 1)
# Rows from which Arrow's JSON reader beats Python's parse: it costs ~0.8 ms a call whatever
# the size, most of a runs browser's page (25 runs) or a poll of the 10 newest.
ARROW_FROM = 200


def is_json(kinds: set[str]) -> bool:
    """Whether a param column of these kinds holds JSON text (mixed kinds, or none known)."""
    return not queries.typed(kinds)


class Expansion:
    """Replaces the last two columns of a runs table read (each run's params and metrics JSON
    text) by one typed column per key, placed after the ``at`` first columns."""

    def __init__(self, at: int, kinds: Mapping[str, set[str]], metric_keys: Sequence[str]):
        self._at = at
        self._kinds = kinds
        self._metric_keys = metric_keys

    def __call__(self, table: pa.Table) -> pa.Table:
        import pyarrow as pa

        keyed = (_by_arrow(table, self._kinds, self._metric_keys)
                 if table.num_rows >= ARROW_FROM else None)
        if keyed is None:
            params, metrics = (_parsed(table.column(i).to_pylist()) for i in (-2, -1))
            keyed = [_param_column(params, key, self._kinds[key]) for key in sorted(self._kinds)]
            keyed += [_numbers([doc.get(key) for doc in metrics]) for key in self._metric_keys]
        columns = table.columns[:-2]
        names = table.column_names[:-2]
        return pa.Table.from_arrays(
            [*columns[:self._at], *keyed, *columns[self._at:]],
            names=[*names[:self._at], *(f"k{i}" for i in range(len(keyed))),
                   *names[self._at:]])


def _by_arrow(table: pa.Table, kinds: Mapping[str, set[str]],
              metric_keys: Sequence[str]) -> list[pa.Array] | None:
    """The key columns read by Arrow's JSON reader (C++, ~10x Python's parse and typing), each
    with its column's Arrow type; None when a value is not plainly of that type (a string in a
    float column, an int past 64 bits, 3.0 in an int column, a key written twice, a lone
    surrogate, mixed kinds): then Python reads each value as the server's casts would."""
    import pyarrow as pa

    types = [_arrow_type(kinds[key]) for key in sorted(kinds)]
    if None in types:
        return None
    params = _read_json(table.column(-2), [(key, t) for key, t in zip(sorted(kinds), types)])
    metrics = _read_json(table.column(-1), [(key, pa.float64()) for key in metric_keys])
    return None if params is None or metrics is None else [*params, *metrics]


def _arrow_type(kinds: set[str]) -> Any:
    """The Arrow type of a param column of these kinds; None for JSON text (mixed kinds)."""
    import pyarrow as pa

    if kinds and kinds <= {"int"}:
        return pa.int64()
    if kinds and kinds <= queries.NUMERIC_KINDS:
        return pa.float64()
    if kinds == {"bool"}:
        return pa.bool_()
    return None if is_json(kinds) else pa.string()


def _read_json(texts: pa.ChunkedArray, fields: list[tuple[str, Any]]) -> list[pa.Array] | None:
    """The ``fields`` of each JSON object text by Arrow's reader (None if it refuses one)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.json as pa_json

    if not fields:
        return []
    # one line a text, joined by Arrow (no Python string a text: 12 ms of 18,000 against 0.5)
    filled = pc.fill_null(texts, "{}").combine_chunks()
    joined = pa.ListArray.from_arrays(pa.array([0, len(filled)], pa.int32()), filled)
    # the separator of the texts' own type: a read gives large_string, Arrow's kernel wants both
    lines = pc.binary_join(joined, pa.scalar("\n", filled.type))[0].as_buffer()
    options = pa_json.ParseOptions(explicit_schema=pa.schema(fields),
                                   unexpected_field_behavior="ignore")
    try:
        read = pa_json.read_json(pa.BufferReader(lines), parse_options=options)
    except pa.ArrowInvalid:
        return None
    if read.num_rows != len(texts):
        return None
    return [read.column(index).combine_chunks() for index in range(len(fields))]


def _parsed(texts: list[str | None]) -> list[dict[str, Any]]:
    """Each JSON object text as a dict (none: an empty one), in one parse of them all."""
    return json.loads("[" + ",".join(text or "{}" for text in texts) + "]")  # type: ignore[no-any-return]


def _param_column(docs: list[dict[str, Any]], key: str, kinds: set[str]) -> pa.Array:
    """The column of one param key, typed by its kinds (pg_queries' former SQL, per value)."""
    import pyarrow as pa

    values = [doc.get(key) for doc in docs]
    if kinds and kinds <= {"int"}:
        return pa.array([_int8(value) for value in values], pa.int64())
    if kinds and kinds <= queries.NUMERIC_KINDS:
        return _numbers(values)
    if kinds == {"bool"}:
        return pa.array([value if isinstance(value, bool) else None for value in values],
                        pa.bool_())
    if not is_json(kinds):
        return pa.array([value if type(value) is str else _text(value) for value in values],
                        pa.string())
    return pa.array([json.dumps(doc[key]) if key in doc else None for doc in docs],
                    pa.string())


def _numbers(values: list[Any]) -> pa.Array:
    """A float column (a metric's, a numeric param's): floats as they are, the rest cast."""
    import pyarrow as pa

    return pa.array([value if type(value) is float else _float8(value) for value in values],
                    pa.float64())


def _text(value: Any) -> str | None:
    """A JSON value's text form as ``->>`` gives it: a string as it is, null as NULL, anything
    else as JSON text (as Python's json wrote it)."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value)


def _float8(value: Any) -> float | None:
    """``try_float8`` of the value's text form: a double, or None when it reads as none."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float):  # a JSON number past double's range read as infinite
        return value if math.isfinite(value) else None
    if isinstance(value, int):
        try:
            return float(value)
        except OverflowError:  # past double's range
            return None
    if not isinstance(value, str) or len(value) > 1000:
        return None
    if _SPECIAL.match(value):
        return float(value)
    found = _NUMBER.match(value)
    if found is None:
        return None
    number = float(value)
    if math.isinf(number) or (number == 0 and found["digits"].strip("0.")):
        return None  # out of double's range, as the server's cast was
    return number


def _int8(value: Any) -> int | None:
    """``try_int8`` of the value's text form: a whole number in 64 bits, or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and len(value) <= 1000 and _WHOLE.match(value):
        value = int(value)
    if isinstance(value, int) and _INT8[0] <= value <= _INT8[1]:
        return value
    return None
