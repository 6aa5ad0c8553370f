"""Reading a PostgreSQL catalog: the runs table, counts and keys, as the same DataFrames as the
file catalog's (:mod:`tracker.queries`): same columns, same dtypes.

Results reach pandas the way the file catalog's do, by way of Arrow and
:func:`tracker.frames.frame`, so dtypes follow one rule (``Int64``, ``boolean``, timestamps with
their zone, labels as lists). Filters and sorts read params and metrics from the catalog's
``latest_values`` (:mod:`tracker.sql_dialects`); the runs table's columns come from each run's
JSON, read as text and parsed once per row here (the server's ``->>`` parses the text again for
every key: 25 times a row), then typed by the kinds ever logged for the key as the server's
safe casts type them (:mod:`tracker.pg_values`), as the file catalog types its value columns.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from tracker import arguments, filter_language, pg_values, queries
from tracker.errors import ArgumentError, TrackerWarning
from tracker.frames import frame
from tracker.models import RunInfo
from tracker.sql_dialects import POSTGRES
from tracker.storage import schema

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from tracker.storage.pg_store import PgStore

_ATTRIBUTES = tuple(
    (name, "coalesce(r.duration, date_part('epoch', now()) - date_part('epoch', r.started_at))"
     if name == "duration" else expression) for name, expression in queries.ATTRIBUTES)


def runs(store: PgStore, where: str | None = None, *,
         order_by: str | Sequence[str] | None = None, limit: int | None = None,
         offset: int = 0, include_deleted: bool = False, deleted_only: bool = False,
         **equals: Any) -> pd.DataFrame:
    """See :meth:`tracker.Catalog.runs`."""
    queries.check_filters(where, equals, order_by)
    limit = None if limit is None else arguments.count(limit, "limit")
    offset = arguments.count(offset, "offset")
    with store.connect() as con:
        kinds, metric_keys, tags = _keys(con)
        condition = _matching(where, equals, include_deleted, deleted_only)
        order = filter_language.compile_order_by(order_by, dialect=POSTGRES)
        stepped = [key for namespace, key in filter_language.fields(where, equals, order_by)
                   if namespace == filter_language.STEPPED]
        names, expressions, bound, decode = _columns(kinds, metric_keys, tags, stepped)
        page = "" if limit is None and not offset else " LIMIT %s OFFSET %s"
        expand = pg_values.Expansion(len(_ATTRIBUTES), kinds, metric_keys)
        table = frame(ArrowConnection(con, expand),
                      f"SELECT {_aliased(expressions)} FROM runs r WHERE {condition.sql} "
                      f"ORDER BY {order.sql}{page}",
                      [*bound, *condition.params, *order.params,
                       *([limit, offset] if page else [])])
        table.columns = names
        total = len(table) if not page else con.execute(
            f"SELECT count(*) FROM runs r WHERE {condition.sql}", condition.params).fetchone()[0]
    layout = {**{("params", key): "" for key in kinds},
              **{("metrics", key): "" for key in metric_keys}}
    _warn(queries.missing_key_notes(layout, tags, where, equals, order_by))
    return queries.tidy(table, decode, total)


def count_runs(store: PgStore, where: str | None = None, *, by: str | None = "status",
               include_deleted: bool = False) -> pd.DataFrame:
    """See :meth:`tracker.Catalog.count_runs`."""
    scope, key = filter_language.parse_key(by, argument="by") if by is not None else ("", "")
    queries.check_filters(where)
    with store.connect() as con:
        kinds, metric_keys, tags = _keys(con)
        condition = _matching(where, None, include_deleted, False)
        base = f"FROM runs r WHERE {condition.sql}"
        if by is None:
            counts = frame(ArrowConnection(con), f"SELECT count(*) AS count {base}",
                           condition.params)
        else:
            group, bound = _group(scope, key)
            counts = frame(ArrowConnection(con),
                           f"SELECT {group} AS c0, count(*) AS count {base} "
                           "GROUP BY 1 ORDER BY count DESC, 1", [*bound, *condition.params])
            counts.columns = [by, "count"]
    grouped = {by: None} if by is not None and scope != "attributes" else None
    layout = {**{("params", k): "" for k in kinds}, **{("metrics", k): "" for k in metric_keys}}
    _warn(queries.missing_key_notes(layout, tags, where, grouped))
    return counts


def keys(store: PgStore) -> list[str]:
    """See :meth:`tracker.Catalog.keys`."""
    with store.connect() as con:
        kinds, metric_keys, tags = _keys(con)
    return [*(f"params.{key}" for key in sorted(kinds)),
            *(f"metrics.{key}" for key in sorted(metric_keys)), *(f"tags.{key}" for key in tags)]


def sample(store: PgStore, where: str | None, keys: Sequence[tuple[str, str]],
           limit: int) -> pd.DataFrame:
    """The rows of :func:`tracker.samples.sample`: id, name, the matched count as ``_total``
    and ``f0``, ``f1``... for ``keys`` (params as their text form, metrics as numbers), the
    ``limit`` matching runs first in the order of a hash of their id (md5 here: DuckDB's
    ``hash`` is its own, so the two back ends sample alike but not the same runs)."""
    condition = _matching(where, None, False, False)
    with store.connect() as con:
        kinds, metric_keys, _ = _keys(con)
        known = [(namespace, key) for namespace, key in keys
                 if key in (metric_keys if namespace == "metrics" else kinds)]
        fields = [("try_float8(r.metrics::json ->> %s)" if namespace == "metrics" else
                   "(r.params::json ->> %s)") + f" AS f{keys.index((namespace, key))}"
                  for namespace, key in known]
        table = frame(ArrowConnection(con),
                      f"SELECT r.id, r.name, count(*) OVER () AS _total"
                      f"{''.join(', ' + field for field in fields)} FROM runs r "
                      f"WHERE {condition.sql} ORDER BY md5(r.id), r.id LIMIT %s",
                      [*(key for _, key in known), *condition.params, limit])
    for index, key in enumerate(keys):
        if key not in known:  # no run has it: an untyped column of None, as in a file catalog
            table.insert(3 + index, f"f{index}", [None] * len(table))
    return table


def _columns_but_run_id(table: str) -> str:
    return ", ".join(name for name in schema.column_names(table) if name != "run_id")


RUN_STATEMENTS = queries.RunStatements(
    run="SELECT *, coalesce(duration, date_part('epoch', now()) - date_part('epoch', "
        "started_at)) AS live_duration FROM runs WHERE id = %s",
    params="SELECT key, value, kind, logged_at FROM params WHERE run_id = %s "
           "ORDER BY logged_at, seq",
    environment="SELECT data FROM environments WHERE id = %s",
    tags="SELECT key, value FROM tags WHERE run_id = %s AND value IS NOT NULL ORDER BY key",
    artifacts=POSTGRES.finish(queries.ARTIFACTS_OF_RUN),
    cells=f"SELECT {_columns_but_run_id('cells')} FROM cells WHERE run_id = %s ORDER BY seq",
    status_history=f"SELECT {_columns_but_run_id('status_changes')} FROM status_changes "
                   "WHERE run_id = %s ORDER BY changed_at, seq",
)
# DuckDB's named values ($run) as psycopg's, typed: PostgreSQL cannot type a bare NULL value.
_NAMED = {"$run": "%(run)s::text", "$role": "%(role)s::text", "$deleted": "%(deleted)s::boolean"}


def _named(sql: str) -> str:
    for duckdb_name, postgres_name in _NAMED.items():
        sql = sql.replace(duckdb_name, postgres_name)
    return sql


def get_run(store: PgStore, ref: str) -> RunInfo:
    """See :meth:`tracker.Catalog.get_run`."""
    with store.connect() as con:
        return queries.run_info(con, queries.resolve(con, ref, POSTGRES), RUN_STATEMENTS)


def metric_history(store: PgStore, ref: str, key: str | None = None) -> pd.DataFrame:
    """See :meth:`tracker.Catalog.metric_history`."""
    arguments.text(key, "key", "'loss'")
    if key is not None and not _encodable(key):
        raise ArgumentError("key is not valid text (it holds a lone surrogate or a NUL); no "
                            "metric key can, so pass the key as logged, such as 'loss'")
    with store.connect() as con:
        run_id = queries.resolve(con, ref, POSTGRES)
        return frame(ArrowConnection(con),
                     "SELECT key, value, step, logged_at FROM metrics WHERE run_id = %s "
                     "AND (%s::text IS NULL OR key = %s) ORDER BY key, logged_at, seq",
                     [run_id, key, key])


def artifacts(store: PgStore, run: str | None = None, *, role: str | None = None,
              include_deleted: bool = False) -> pd.DataFrame:
    """See :meth:`tracker.Catalog.artifacts`."""
    arguments.choice(role, "role", queries.ROLES)
    with store.connect() as con:
        run_id = queries.resolve(con, run, POSTGRES) if run is not None else None
        return frame(ArrowConnection(con), _named(queries.ARTIFACTS),
                     {"run": run_id, "role": role, "deleted": bool(include_deleted)})


def lineage(store: PgStore, ref: str, *, include_deleted: bool = False) -> pd.DataFrame:
    """See :meth:`tracker.Catalog.lineage`."""
    with store.connect() as con:
        run_id = queries.resolve(con, ref, POSTGRES)
        return frame(ArrowConnection(con), _named(queries.LINEAGE),
                     {"run": run_id, "deleted": bool(include_deleted)})


def _encodable(text: str) -> bool:
    """Whether ``text`` can be bound: valid Unicode with no NUL (PostgreSQL's text has none)."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


# One round trip for the three key lists: each runs() asks for them, and a runs browser's
# poll of the newest runs took ~6.7 ms of which three round trips were ~1.
_KEYS = ("SELECT 'p', key, kind FROM param_keys UNION ALL SELECT 'm', key, NULL FROM "
         "metric_keys UNION ALL (SELECT DISTINCT 't', key, NULL::text FROM tags "
         "WHERE value IS NOT NULL)")


def _keys(con: Any) -> tuple[dict[str, set[str]], list[str], list[str]]:
    """Each param key with the kinds logged for it (none aside), the metric keys, the tag
    keys."""
    kinds: dict[str, set[str]] = {}
    metric_keys: list[str] = []
    tags: list[str] = []
    for namespace, key, kind in con.execute(_KEYS).fetchall():
        if namespace == "p":
            kinds.setdefault(key, set()).add(kind)
        else:
            (metric_keys if namespace == "m" else tags).append(key)
    return ({key: found - {"none"} for key, found in kinds.items()}, sorted(metric_keys),
            sorted(tags))


def _matching(where: str | None, equals: Mapping[str, Any] | None, include_deleted: bool,
              deleted_only: bool) -> filter_language.Compiled:
    visible = ("r.deleted_at IS NOT NULL" if deleted_only else
               "TRUE" if include_deleted else "r.deleted_at IS NULL")
    condition = filter_language.compile_filter(where, dialect=POSTGRES)
    equal = filter_language.compile_equals(equals or {}, dialect=POSTGRES)
    if any(isinstance(value, str) and "\x00" in value
           for value in (*condition.params, *equal.params)):
        raise ArgumentError("a value in the filter holds a NUL character, which no text in a "
                            "PostgreSQL catalog can hold (the server refuses to compare it); "
                            "remove it from the filter")
    return filter_language.Compiled(f"{visible} AND ({condition.sql}) AND ({equal.sql})",
                                    (*condition.params, *equal.params))


def _columns(kinds: Mapping[str, set[str]], metric_keys: Sequence[str], tags: Sequence[str],
             stepped: Sequence[str]) -> tuple[list[str], list[str], list[Any], list[str]]:
    """The runs table's column names, the SQL of those read in SQL (each run's params and
    metrics JSON last: :class:`tracker.pg_values.Expansion` turns them into the key columns
    that follow the attributes), the values the SQL binds (each key), and the params columns
    that hold JSON text to decode. Names never enter the SQL (keys are data, and PostgreSQL
    cuts names at 63 bytes): the columns are named once read."""
    names = [name for name, _ in _ATTRIBUTES]
    expressions = [expression for _, expression in _ATTRIBUTES]
    names += [f"params.{key}" for key in sorted(kinds)]
    names += [f"metrics.{key}" for key in metric_keys]
    decode = [f"params.{key}" for key in sorted(kinds) if pg_values.is_json(kinds[key])]
    names += [f"tags.{key}" for key in tags]
    expressions += ["(SELECT max(t.value) FROM tags t WHERE t.run_id = r.id AND t.key = %s)"
                    ] * len(tags)
    names += [f"{filter_language.STEPPED}.{key}" for key in stepped]
    expressions += [POSTGRES.finish(POSTGRES.stepped_metric("r"))] * len(stepped)
    expressions += ["r.params", "r.metrics"]
    return names, expressions, [*tags, *stepped], decode


def _aliased(expressions: Sequence[str]) -> str:
    return ", ".join(f"{expression} AS c{i}" for i, expression in enumerate(expressions))


def _group(scope: str, key: str) -> tuple[str, list[str]]:
    """The SQL of a count's group and the values it binds."""
    if scope == "attributes":
        return f"r.{key}", []  # a runs column: parse_key names only those
    if scope == "tags":
        return "(SELECT max(t.value) FROM tags t WHERE t.run_id = r.id AND t.key = %s)", [key]
    if scope == filter_language.STEPPED:
        return POSTGRES.finish(POSTGRES.stepped_metric("r")), [key]
    if scope == "metrics":
        return "try_float8(r.metrics::json ->> %s)", [key]
    return "(r.params::json ->> %s)", [key]


def _warn(notes: list[str]) -> None:
    for note in notes:
        warnings.warn(note, TrackerWarning, stacklevel=4)


class ArrowConnection:
    """A psycopg connection that answers ``sql`` as duckdb's relation API does, with a result
    :func:`tracker.frames.frame` converts: the rows as an Arrow table typed by the columns'
    PostgreSQL types, passed through ``expand`` (the runs table's key columns) when given."""

    def __init__(self, connection: Any,
                 expand: Callable[[pa.Table], pa.Table] | None = None) -> None:
        self._connection = connection
        self._expand = expand

    def complete(self) -> None:
        """Nothing to finish: psycopg runs the next statement whatever the last left unread."""

    def sql(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None
            ) -> _ArrowResult | None:
        bound = params if isinstance(params, Mapping) else list(params or ())
        cursor = self._connection.execute(sql, bound)
        if cursor.description is None:  # a statement with no result
            return None
        return _ArrowResult(cursor, self._connection, self._expand)


class _ArrowResult:
    def __init__(self, cursor: Any, connection: Any,
                 expand: Callable[[pa.Table], pa.Table] | None) -> None:
        self._cursor = cursor
        self.description = cursor.description
        self._zone = str(getattr(connection.info.timezone, "key", "UTC"))
        self._expand = expand

    def to_arrow_table(self) -> pa.Table:
        import pyarrow as pa

        rows = self._cursor.fetchall()
        names = [column.name for column in self.description]
        # the rows' columns in one pass in C (zip), not one Python loop a column: 45 ms of a
        # 16,747-row filter's 20 columns against 23 here
        columns = zip(*rows) if rows else ([] for _ in self.description)
        arrays = [pa.array(values, type=_arrow_type(column.type_code, self._zone))
                  for values, column in zip(columns, self.description, strict=True)]
        table = pa.Table.from_arrays(arrays, names=names)
        return table if self._expand is None else self._expand(table)


def _arrow_type(oid: int, zone: str) -> Any:
    """The Arrow type of a PostgreSQL column type (by its OID); None lets Arrow infer."""
    return _arrow_types(zone).get(oid)


@functools.cache
def _arrow_types(zone: str) -> dict[int, Any]:
    """Arrow's type of each PostgreSQL type read, by OID. Text is ``large_string``, which
    pandas' string columns hold: with ``string`` pandas casts every text column again (a
    quarter of a 10-row frame's conversion)."""
    import pyarrow as pa

    text = pa.large_string()
    return {25: text, 1043: text, 19: text, 1042: text, 21: pa.int16(), 23: pa.int32(),
            20: pa.int64(), 700: pa.float32(), 701: pa.float64(), 16: pa.bool_(),
            1184: pa.timestamp("us", tz=zone), 1114: pa.timestamp("us"),
            1009: pa.list_(pa.string())}
