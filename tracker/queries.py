"""Reading the catalog: runs as DataFrames, one run in full, artifacts, lineage and raw SQL.

The runs table is one SELECT over ``runs`` joined to ``run_values``, where each params and
metrics key is a column (``tracker.storage.value_columns``), cast here to its type
(``params.lr`` DOUBLE, ``params.model`` VARCHAR, ...) so pandas receives it ready-made. Types
come from ``param_keys``, the kinds ever logged for each key. Rows whose columns writers left
behind are read from their JSON, and the read then fills those columns if the catalog is free
(:func:`_catch_up`).
"""

from __future__ import annotations

import contextlib
import difflib
import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tracker import _ids, arguments, delivery, filter_language, readonly_sql, values
from tracker.errors import (
    AmbiguousRunError,
    ArgumentError,
    CatalogError,
    CatalogLockedError,
    RunNotFoundError,
    TrackerWarning,
)
from tracker.frames import frame
from tracker.models import RunInfo
from tracker.sql_dialects import DUCKDB, POSTGRES, Dialect
from tracker.storage import value_columns

if TYPE_CHECKING:
    import pandas as pd

    from tracker.catalog import Catalog

READ_FLUSH_WAIT = 1.0  # seconds a read waits to write this process's own events first
# Lagging runs from which a read fills the value columns. Fewer are read from their JSON,
# while a catch-up holds the write lock for a checkpoint: with 8 writers and 2 readers,
# catching up at every read halved the writers' runs/s; 200 gave slowest runs of 3.8-4.0 s
# and a reader p99 of 0.40-0.52 s, 1,000 gave 5.1-5.2 s and 0.51-0.59 s (docs/design.md §6).
CATCH_UP_AT = 200
ATTRIBUTES = (
    ("id", "r.id"), ("name", "r.name"), ("project", "r.project"), ("status", "r.status"),
    ("notebook", "r.notebook"), ("notebook_name", "r.notebook_name"),
    ("notebook_title", "r.notebook_title"), ("started_at", "r.started_at"),
    ("ended_at", "r.ended_at"),
    ("duration", "coalesce(r.duration, epoch(now()) - epoch(r.started_at))"),
    ("user", "r.username"), ("host", "r.host"), ("pid", "r.pid"), ("labels", "r.labels"),
    ("notes", "r.notes"), ("parent_id", "r.parent_id"), ("error", "r.error"),
    ("deleted_at", "r.deleted_at"),
)
_NUMERIC = {"int": "BIGINT", "float": "DOUBLE", "timedelta": "DOUBLE"}
NUMERIC_KINDS = frozenset(_NUMERIC)
ROLES = {"input": "files and URIs the run read", "output": "those it wrote",
         "notebook": "the notebook as last saved, stored with the run"}


def flush_for_read(catalog: Catalog) -> None:
    """Make this process's own writes visible and mark dead runs before reading.

    The flush waits at most READ_FLUSH_WAIT for the write lock: a process that merely reads
    (a long ``sql()``, a widget) must not make this read fail. Past it, the read goes on without
    this process's newest events, silently: they are safe in the spool and the flusher writes
    them once the lock is free (a warning here would fire on every busy background refresh).
    """
    from tracker.recorder import flush_pending, local_to

    with contextlib.suppress(CatalogLockedError):
        flush_pending(catalog.spool_dir, timeout=min(READ_FLUSH_WAIT, catalog.timeout))
    delivery.recover(catalog, local=local_to(catalog.spool_dir))


def _visibility(include_deleted: bool, deleted_only: bool) -> str:
    if deleted_only:
        return "r.deleted_at IS NOT NULL"
    return "TRUE" if include_deleted else "r.deleted_at IS NULL"


def matching(where: str | None, equals: Mapping[str, Any] | None = None,
             layout: value_columns.Layout | None = None, *, include_deleted: bool = False,
             deleted_only: bool = False) -> filter_language.Compiled:
    """The WHERE condition (on ``runs r``) for a filter, equality tests and the trash;
    ``layout`` is the catalog's :func:`tracker.storage.value_columns.layout`."""
    condition = filter_language.compile_filter(where, layout=layout)
    equal = filter_language.compile_equals(equals or {}, layout=layout)
    return filter_language.Compiled(
        f"{_visibility(include_deleted, deleted_only)} AND ({condition.sql}) AND ({equal.sql})",
        (*condition.params, *equal.params))


def check_filters(where: str | None, equals: Mapping[str, Any] | None = None,
                  order_by: str | Sequence[str] | None = None) -> None:
    """Raise a bad filter's FilterSyntaxError before the catalog is opened, or created: the
    SQL needs the catalog's column layout (:func:`matching`), finding a mistake does not."""
    filter_language.compile_filter(where)
    filter_language.compile_equals(equals or {})
    filter_language.compile_order_by(order_by)


def runs(catalog: Catalog, where: str | None = None, *,
         order_by: str | Sequence[str] | None = None, limit: int | None = None,
         offset: int = 0, include_deleted: bool = False, deleted_only: bool = False,
         **equals: Any) -> pd.DataFrame:
    """See :meth:`tracker.Catalog.runs`."""
    check_filters(where, equals, order_by)
    limit = None if limit is None else arguments.count(limit, "limit")
    offset = arguments.count(offset, "offset")
    flush_for_read(catalog)
    with catalog.connect() as con:
        placed = value_columns.placement(con)
        filtered, ordered = _Lookups(placed.layout), _Lookups(placed.layout)
        condition = matching(where, equals, filtered, include_deleted=include_deleted,
                             deleted_only=deleted_only)
        order = filter_language.compile_order_by(order_by, layout=ordered)
        tags = tag_keys(con)
        notes = missing_key_notes(placed.layout, tags, where, equals, order_by)
        stepped = [key for namespace, key in filter_language.fields(where, equals, order_by)
                   if namespace == filter_language.STEPPED]
        selected = _Columns(_param_kinds(con), placed.layout, tags, stepped)
        if limit is None and not offset:
            every, args = value_columns.source(placed)
            table = frame(con, f"SELECT {selected.sql} FROM {every} r WHERE {condition.sql} "
                               f"ORDER BY {order.sql}",
                          [*selected.params, *args, *condition.params, *order.params])
            total = len(table)
        else:
            # The page's runs are chosen first, joining only the value columns the filter and
            # the order need; only those runs are then read in full.
            needed, args = value_columns.source(placed, filtered.keys_used | ordered.keys_used)
            page, page_args = value_columns.source(
                placed, runs=f"WHERE rowid IN (SELECT r.rowid FROM {needed} r WHERE "
                             f"{condition.sql} ORDER BY {order.sql} LIMIT ? OFFSET ?)",
                args=[*args, *condition.params, *order.params, limit, offset])
            table = frame(con, f"SELECT {selected.sql} FROM {page} r ORDER BY {order.sql}",
                          [*selected.params, *page_args, *order.params])
            counted, args = value_columns.source(placed, filtered.keys_used)
            total = con.execute(f"SELECT count(*) FROM {counted} r WHERE {condition.sql}",
                                [*args, *condition.params]).fetchone()[0]
    _catch_up(catalog, placed)
    _warn(notes)
    return tidy(table, selected.decode, total)


def tag_keys(con: Any) -> list[str]:
    """Every tag key some run has, sorted (a removed tag's row has no value)."""
    return [row[0] for row in con.execute(
        "SELECT DISTINCT key FROM tags WHERE value IS NOT NULL ORDER BY key").fetchall()]


def missing_key_notes(layout: value_columns.Layout, tags: Sequence[str], where: str | None,
                      equals: Mapping[str, Any] | None = None,
                      order_by: str | Sequence[str] | None = None) -> list[str]:
    """A note for each params, metrics or tags key the filter names that no run has, with the
    closest keys runs do have: "no run has params.alpah; did you mean params.alpha?". A typo
    otherwise reads as an empty answer. For the API's warnings, the CLI and the widgets."""
    known = {*layout, *(("tags", key) for key in tags),
             *((filter_language.STEPPED, key) for space, key in layout if space == "metrics")}
    notes = []
    for namespace, key in filter_language.fields(where, equals, order_by):
        if (namespace, key) in known:
            continue
        # Close keys of the same kind; else the same key of another kind (params.acc: metrics).
        same = sorted(k for space, k in known if space == namespace)
        close = [f"{namespace}.{k}" for k in difflib.get_close_matches(key, same, n=3)] or \
            sorted(f"{space}.{k}" for space, k in known
                   if k == key and space != filter_language.STEPPED)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        notes.append(f"no run has {namespace}.{key}{hint}")
    return notes


def _warn(notes: list[str]) -> None:
    for note in notes:
        # The caller of Catalog.runs (or of tracker.runs, one frame further) is pointed at.
        warnings.warn(note, TrackerWarning, stacklevel=4)


class _Lookups(dict[tuple[str, str], str]):
    """A layout that remembers which keys a compiled filter, order or group looked up, so
    the query joins the value columns of those keys only."""

    def __init__(self, layout: value_columns.Layout) -> None:
        super().__init__(layout)
        self.keys_used: set[tuple[str, str]] = set()

    def get(self, key: tuple[str, str], default: Any = None) -> Any:  # type: ignore[override]
        self.keys_used.add(key)
        return super().get(key, default)


def _catch_up(catalog: Catalog, placed: value_columns.Placement) -> None:
    """After a read that found CATCH_UP_AT or more runs whose value columns writers left
    behind, fill them if the write lock is free at once, so the next reads scan plain columns;
    never wait for it, and never fail the read that is done (a busy or read-only catalog stays
    as it is)."""
    if placed.stale < CATCH_UP_AT:
        return
    with contextlib.suppress(CatalogError), catalog.connect(write=True, timeout=0) as con:
        con.execute("BEGIN")
        value_columns.catch_up(con)
        con.execute("COMMIT")


def tidy(table: pd.DataFrame, decode: list[str], total: int) -> pd.DataFrame:
    """The runs table as returned: the key columns no run of it has dropped, the ``decode``
    columns' JSON text decoded, ``attrs["total"]`` set (PostgreSQL's reads share this)."""
    # Columns come from every key the catalog knows; keep those this result has values for.
    # count() and no drop when none is empty: 0.4 of a 0.5 ms tidy of the 10 newest runs
    empty = [c for c in table.columns[len(ATTRIBUTES):] if table[c].count() == 0]
    if empty:
        table = table.drop(columns=empty)
    for column in decode:
        if column in table:
            table[column] = table[column].map(_decode_json, na_action="ignore")
    table.attrs["total"] = int(total)  # runs matching, whatever the limit: for pagers
    return table


def _param_kinds(con: Any) -> dict[str, set[str]]:
    rows = con.execute("SELECT key, list(kind) FROM param_keys GROUP BY key").fetchall()
    return {key: set(kinds) - {"none"} for key, kinds in rows}


class _Columns:
    """The runs table's columns: attributes, then one typed column per param and metric key,
    cast by the kinds ever logged for the key, then one text column per tag key, then the
    ``metrics_at_max_step.<key>`` the filter or order names; ``params`` are the values the SQL
    binds, which come before any other."""

    def __init__(self, kinds: Mapping[str, set[str]], layout: value_columns.Layout,
                 tags: Sequence[str] = (), stepped: Sequence[str] = ()) -> None:
        params = value_columns.named(layout, "params")
        metrics = value_columns.named(layout, "metrics")
        self.decode = [f"params.{k}" for k, _ in params if not typed(kinds.get(k, set()))]
        parts = [f'{expression} AS "{name}"' for name, expression in ATTRIBUTES]
        parts += [f"{_param_value(kinds.get(k, set()), f'r.{name}')} AS {_quoted('params.' + k)}"
                  for k, name in params]
        parts += [f"r.{name} AS {_quoted('metrics.' + k)}" for k, name in metrics]
        # A tag column reads the tags table by a bound key: keys never become SQL text.
        parts += [f"(SELECT max(t.value) FROM tags t WHERE t.run_id = r.id AND t.key = ?) AS "
                  f"{_quoted('tags.' + key)}" for key in tags]
        stepped_sql = filter_language.stepped_metric_sql("r")
        parts += [f"{stepped_sql} AS {_quoted(f'{filter_language.STEPPED}.{key}')}"
                  for key in stepped]
        self.params = [*tags, *stepped]
        self.sql = ", ".join(parts)


def typed(kinds: set[str]) -> bool:
    """Whether a param key logged with these kinds gets a typed column (number, boolean, text);
    otherwise (mixed kinds, none known) its column holds JSON text. Both back ends type alike."""
    return bool(kinds) and (kinds <= NUMERIC_KINDS or kinds == {"bool"} or kinds <= TEXT_KINDS)


TEXT_KINDS = frozenset({"str", "datetime", "date", "time", "path", "decimal", "enum", "bytes"})


def _param_value(kinds: set[str], column: str) -> str:
    """A param key's typed value from its text column (JSON text when its kinds are mixed)."""
    if kinds and kinds <= {"int"}:
        return f"TRY_CAST({column} AS BIGINT)"
    if kinds and kinds <= NUMERIC_KINDS:
        return f"TRY_CAST({column} AS DOUBLE)"
    if kinds == {"bool"}:
        return f"TRY_CAST({column} AS BOOLEAN)"
    if kinds and kinds <= TEXT_KINDS:
        return column
    return f"{column}_json"


def _quoted(name: str) -> str:
    """A column alias; the name is data, so its quotes are doubled, never trusted."""
    return '"' + name.replace('"', '""') + '"'


def _decode_json(text: Any) -> Any:
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return text


def count_runs(catalog: Catalog, where: str | None = None, *, by: str | None = "status",
               include_deleted: bool = False) -> pd.DataFrame:
    """See :meth:`tracker.Catalog.count_runs`."""
    scope, key = filter_language.parse_key(by, argument="by") if by is not None else ("", "")
    check_filters(where)
    flush_for_read(catalog)
    with catalog.connect() as con:
        placed = value_columns.placement(con)
        used = _Lookups(placed.layout)
        condition = matching(where, layout=used, include_deleted=include_deleted)
        grouped = {by: None} if by is not None and scope != "attributes" else None
        notes = missing_key_notes(placed.layout, tag_keys(con), where, grouped)
        group, bound = _group_expression(scope, key, used) if by is not None else ("", [])
        counted, args = value_columns.source(placed, used.keys_used)
        base = f"FROM {counted} r WHERE {condition.sql}"
        if by is None:
            counts = frame(con, f"SELECT count(*) AS count {base}", [*args, *condition.params])
        else:
            counts = frame(con, f"SELECT {group} AS {_quoted(by)}, count(*) AS count {base} "
                                "GROUP BY ALL ORDER BY count DESC, 1",
                           [*bound, *args, *condition.params])
    _catch_up(catalog, placed)
    _warn(notes)
    return counts


def keys(catalog: Catalog) -> list[str]:
    """See :meth:`tracker.Catalog.keys`."""
    flush_for_read(catalog)
    with catalog.connect() as con:
        layout = value_columns.placement(con).layout
        tags = tag_keys(con)
    return [*(f"{namespace}.{key}" for namespace in ("params", "metrics")
              for key, _ in value_columns.named(layout, namespace)),
            *(f"tags.{key}" for key in tags)]


def _group_expression(scope: str, key: str, layout: value_columns.Layout) -> tuple[str, list[str]]:
    """The SQL of a group and the values it binds."""
    if scope == "attributes":
        return f"r.{key}", []
    if scope == "tags":
        return "(SELECT max(t.value) FROM tags t WHERE t.run_id = r.id AND t.key = ?)", [key]
    if scope == filter_language.STEPPED:
        return filter_language.stepped_metric_sql("r"), [key]
    name = layout.get((scope, key))
    return (f"r.{name}" if name else "NULL"), []


# -- one run --------------------------------------------------------------------------------


def resolve(con: Any, ref: str, dialect: Dialect = DUCKDB) -> str:
    """The full id a reference names (an id, a prefix of 4+ characters of an id or of its short
    id, or a run key); a key names the run only in its own project. ``dialect``: the back end's
    SQL (:mod:`tracker.sql_dialects`)."""
    project, text = _ids.parse_ref(arguments.ref(ref))
    missing = RunNotFoundError(arguments.shown_ref(ref))
    # No id holds a NUL (PostgreSQL's text cannot even be compared with one).
    if not text or len(ref) > arguments.MAX_REF or not _encodable(ref) or "\x00" in text:
        raise missing
    if con.execute(dialect.finish("SELECT 1 FROM runs WHERE id = ?"), [text]).fetchone():
        run_id = text
    elif not _ids.is_id_text(text):
        raise missing
    elif len(text) < _ids.MIN_REF:
        raise ArgumentError(f"{arguments.shown_ref(ref)!r} is too short to name a run: give "
                            f"{_ids.MIN_REF} or more characters of its id or short id (the "
                            f"{_ids.SHORT} characters listings show)")
    else:
        run_id = _unique_prefix(con, ref, text, dialect)
    if project is not None and not con.execute(
            dialect.finish("SELECT 1 FROM runs WHERE id = ? AND coalesce(project, 'default') = ?"),
            [run_id, project]).fetchone():
        raise missing  # the id exists, but in another project than the key says
    return run_id


CANDIDATES = 10  # runs an ambiguous reference lists
# Which ids a prefix names (by whether it is short enough to be a short id's). An id prefix
# reads only the row groups whose ids can start with it; a short id's needs every id: measured
# on 100,000 runs, `contains` first cut that scan from ~45 ms to ~18 ms (docs/design.md).
# PostgreSQL reads its id index for a prefix; named values are %(p)s there.
_PREFIX_OF = {
    (DUCKDB.name, False): "starts_with(id, $p)",
    (DUCKDB.name, True): "contains(id, $p) AND (starts_with(id, $p) "
                         f"OR starts_with(right(id, {_ids.SHORT}), $p))",
    (POSTGRES.name, False): "starts_with(id, %(p)s)",
    (POSTGRES.name, True): "(starts_with(id, %(p)s) "
                           f"OR starts_with(right(id, {_ids.SHORT}), %(p)s))",
}
_CANDIDATES_LIMIT = {DUCKDB.name: "$n", POSTGRES.name: "%(n)s"}


def _unique_prefix(con: Any, ref: str, prefix: str, dialect: Dialect) -> str:
    """The one run whose id, or short id, starts with ``prefix``."""
    where = _PREFIX_OF[dialect.name, len(prefix) <= _ids.SHORT]
    rows = con.execute(
        f"SELECT id, count(*) OVER () FROM runs WHERE {where} "
        f"ORDER BY started_at DESC, id LIMIT {_CANDIDATES_LIMIT[dialect.name]}",
        {"p": prefix, "n": CANDIDATES}).fetchall()
    if not rows:
        raise RunNotFoundError(arguments.shown_ref(ref))
    if len(rows) > 1:
        raise _ambiguous(arguments.shown_ref(ref), [row[0] for row in rows], rows[0][1])
    return str(rows[0][0])


def _ambiguous(ref: str, candidates: list[str], total: int) -> AmbiguousRunError:
    """An AmbiguousRunError that lists the candidates, newest first: all of them, or the
    first :data:`CANDIDATES` and how many there are."""
    error = AmbiguousRunError(ref, candidates)
    shown = ", ".join(candidates)
    some = "" if total == len(candidates) else f"the {len(candidates)} newest: "
    # The class's own message names at most 5 of the matches it is given, and their number
    # as the total: this one says how many there are in all and lists what it was given.
    error.args = (f"{ref!r} matches {total:,} runs ({some}{shown}); give more characters",)
    return error


def _encodable(text: str) -> bool:
    """Whether ``text`` is valid Unicode: a lone surrogate cannot be bound as a value."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def get_run(catalog: Catalog, ref: str) -> RunInfo:
    """See :meth:`tracker.Catalog.get_run`."""
    flush_for_read(catalog)
    with catalog.connect() as con:
        run_id = resolve(con, ref)
        return run_info(con, run_id)


@dataclass(frozen=True)
class RunStatements:
    """The statements that read one run in full, each binding its id: a back end's spelling
    (:data:`RUN_STATEMENTS` is DuckDB's; tracker.pg_queries has PostgreSQL's)."""

    run: str
    params: str
    environment: str
    tags: str
    artifacts: str
    cells: str
    status_history: str


def run_info(con: Any, run_id: str, statements: RunStatements | None = None) -> RunInfo:
    """The run ``run_id`` in full, read by ``statements`` (DuckDB's by default)."""
    sql = statements or RUN_STATEMENTS
    cursor = con.execute(sql.run, [run_id])
    names = [d[0] for d in cursor.description]
    row = dict(zip(names, cursor.fetchone()))
    history: dict[str, list[tuple[Any, Any]]] = {}
    for key, value, kind, logged_at in con.execute(sql.params, [run_id]).fetchall():
        history.setdefault(key, []).append((logged_at, values.decode(json.loads(value), kind)))
    env = con.execute(sql.environment, [row["environment_id"]]).fetchone()
    metrics = {k: values.decode(v, "float") for k, v in json.loads(row["metrics"] or "{}").items()}
    return RunInfo(
        id=run_id, key=_ids.run_key(row["project"] or "default", run_id), name=row["name"],
        project=row["project"], status=row["status"], started_at=row["started_at"],
        ended_at=row["ended_at"], duration=row["live_duration"], notebook=row["notebook"],
        notebook_name=row["notebook_name"], notebook_title=row["notebook_title"],
        notebook_hash=row["notebook_hash"], host=row["host"], pid=row["pid"],
        user=row["username"], heartbeat_at=row["heartbeat_at"],
        labels=tuple(row["labels"] or ()), notes=row["notes"], parent_id=row["parent_id"],
        deleted_at=row["deleted_at"], error=row["error"],
        params={key: entries[-1][1] for key, entries in history.items()},
        metrics=metrics, param_history=history,
        tags=dict(con.execute(sql.tags, [run_id]).fetchall()),
        environment=json.loads(env[0]) if env else None,
        artifacts=records(con, sql.artifacts, [run_id]),
        cells=records(con, sql.cells, [run_id]),
        status_history=records(con, sql.status_history, [run_id]),
    )


def run_tags(con: Any, run_id: str) -> dict[str, str]:
    """A run's tags, by key."""
    return dict(con.execute(RUN_STATEMENTS.tags, [run_id]).fetchall())


# Each path's newest version that a run outside the trash produced or read: "latest" skips
# what only trashed runs touched, and comes back to it when one is restored.
_LIVE_VERSIONS = """
live AS (SELECT a.key, max(a.version) AS version FROM artifacts a
         WHERE EXISTS (SELECT 1 FROM run_artifacts la JOIN runs lr ON lr.id = la.run_id
                       WHERE la.artifact_id = a.id AND lr.deleted_at IS NULL)
         GROUP BY a.key)
"""
_LATEST = "coalesce(a.version = live.version, false) AS latest"

ARTIFACTS_OF_RUN = f"""
WITH {_LIVE_VERSIONS}
SELECT ra.role, ra.via, a.uri, a.version, a.size, a.mtime, a.hash, a.producer_run_id, a.blob,
       a.kept, ra.logged_at, {_LATEST}
FROM run_artifacts ra JOIN artifacts a ON a.id = ra.artifact_id
     LEFT JOIN live ON live.key = a.key
WHERE ra.run_id = ? ORDER BY ra.role, a.uri
"""


RUN_STATEMENTS = RunStatements(
    run="SELECT *, coalesce(duration, epoch(now()) - epoch(started_at)) AS live_duration "
        "FROM runs WHERE id = ?",
    params="SELECT key, value, kind, logged_at FROM params WHERE run_id = ? "
           "ORDER BY logged_at, rowid",
    environment="SELECT data FROM environments WHERE id = ?",
    tags="SELECT key, value FROM tags WHERE run_id = ? AND value IS NOT NULL ORDER BY key",
    artifacts=ARTIFACTS_OF_RUN,
    cells="SELECT * EXCLUDE (run_id) FROM cells WHERE run_id = ? ORDER BY seq",
    status_history="SELECT * EXCLUDE (run_id) FROM status_changes WHERE run_id = ? "
                   "ORDER BY changed_at, rowid",
)


def records(con: Any, sql: str, args: Sequence[Any]) -> list[dict[str, Any]]:
    """The rows of ``sql`` as dicts by column name (a run's artifacts, cells...)."""
    cursor = con.execute(sql, list(args))
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def metric_history(catalog: Catalog, ref: str, key: str | None = None) -> pd.DataFrame:
    """See :meth:`tracker.Catalog.metric_history`."""
    arguments.text(key, "key", "'loss'")
    if key is not None and not _encodable(key):
        raise ArgumentError("key is not valid text (it holds a lone surrogate); no metric "
                            "key can, so pass the key as logged, such as 'loss'")
    flush_for_read(catalog)
    with catalog.connect() as con:
        run_id = resolve(con, ref)
        return frame(
            con,
            "SELECT key, value, step, logged_at FROM metrics WHERE run_id = ? "
            "AND (? IS NULL OR key = ?) ORDER BY key, logged_at, rowid",
            [run_id, key, key])


# A run named in `run` is shown even from the trash: naming it asks for it, as get_run does.
ARTIFACTS = f"""
WITH {_LIVE_VERSIONS}
SELECT ra.run_id, r.name AS run_name, ra.role, ra.via, a.uri, a.version, a.size, a.mtime,
       a.hash, a.producer_run_id, a.kept, ra.logged_at, {_LATEST}
FROM run_artifacts ra JOIN artifacts a ON a.id = ra.artifact_id JOIN runs r ON r.id = ra.run_id
     LEFT JOIN live ON live.key = a.key
WHERE ($run IS NULL OR ra.run_id = $run) AND ($role IS NULL OR ra.role = $role)
  AND ($deleted OR r.deleted_at IS NULL OR ra.run_id = $run)
ORDER BY ra.logged_at, a.uri
"""


def artifacts(catalog: Catalog, run: str | None = None, *, role: str | None = None,
              include_deleted: bool = False) -> pd.DataFrame:
    """See :meth:`tracker.Catalog.artifacts`."""
    arguments.choice(role, "role", ROLES)
    flush_for_read(catalog)
    with catalog.connect() as con:
        run_id = resolve(con, run) if run is not None else None
        return frame(con, ARTIFACTS,
                     {"run": run_id, "role": role, "deleted": bool(include_deleted)})


LINEAGE = """
SELECT 'upstream' AS direction, p.id AS run_id, p.name AS run_name, p.status, a.uri, a.version,
       a.hash
FROM run_artifacts ra JOIN artifacts a ON a.id = ra.artifact_id JOIN runs p
     ON p.id = a.producer_run_id
WHERE ra.run_id = $run AND ra.role = 'input' AND p.id <> $run
  AND ($deleted OR p.deleted_at IS NULL)
UNION ALL
SELECT 'downstream', c.id, c.name, c.status, a.uri, a.version, a.hash
FROM run_artifacts o JOIN artifacts a ON a.id = o.artifact_id
     JOIN run_artifacts i ON i.artifact_id = a.id AND i.role = 'input'
     JOIN runs c ON c.id = i.run_id
WHERE o.run_id = $run AND o.role = 'output' AND c.id <> $run
  AND ($deleted OR c.deleted_at IS NULL)
ORDER BY 1 DESC, 5, 2
"""


def lineage(catalog: Catalog, ref: str, *, include_deleted: bool = False) -> pd.DataFrame:
    """See :meth:`tracker.Catalog.lineage`."""
    flush_for_read(catalog)
    with catalog.connect() as con:
        run_id = resolve(con, ref)
        return frame(con, LINEAGE, {"run": run_id, "deleted": bool(include_deleted)})


def sql(catalog: Catalog, text: str,
        params: Sequence[Any] | Mapping[str, Any] | None = None) -> pd.DataFrame:
    """See :meth:`tracker.Catalog.sql`; :mod:`tracker.readonly_sql` makes it read-only."""
    readonly_sql.check(text, params)  # before the catalog is opened, or created
    flush_for_read(catalog)
    return readonly_sql.run(catalog, text, params)
