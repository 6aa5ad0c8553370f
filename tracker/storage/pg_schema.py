"""The tables of a PostgreSQL catalog: the file catalog's (:mod:`tracker.storage.schema`) in a
PostgreSQL schema of their own, ``tracker``, with the keys and indexes a shared server needs.

The columns are the file catalog's, read from its definitions, so both back ends give the same
DataFrames; the types are mapped (``VARCHAR`` is ``text``, ``DOUBLE`` ``double precision``...).
JSON columns are ``text``, as written: ``jsonb`` would refuse a ``\\u0000`` a param may hold,
and nothing recorded may be refused. Three things differ, each for a reason:

- Keys: ``runs.id`` is a PRIMARY KEY so that creating a run is ``ON CONFLICT DO NOTHING`` (a
  retry after a lost connection never duplicates it); the key tables, tags and links have keys
  for the same reason. PostgreSQL's indexes cost a write little, unlike DuckDB's checkpoints.
- ``seq``: PostgreSQL has no ``rowid``; histories (params, metrics, status changes) are ordered
  by an identity column where the file catalog uses its row order.
- No ``run_values``/``value_columns`` and no ``runs.values_fresh``: they are the file catalog's
  way around slow DuckDB writes, which PostgreSQL does not need. Its own ``latest_values``
  instead: one row per run and key with the latest value's text form, number and JSON type,
  kept by a trigger on ``runs`` (in the transaction that changes the run's JSON, whoever
  writes it: the writer, an import, psql), indexed by key and number and by text, so that a
  filter or a sort by a key reads an index, not every run's JSON (docs/scaling.md).
- ``blobs``: the notebooks stored with runs live in the database (``bytea``, by content key),
  where the file catalog has its blob folder: every machine that reaches the server reads them,
  and a purge removes them in the transaction that finds them unreferenced
  (:mod:`tracker.storage.pg_blobs`). Kept contents stay in ``TRACKER_STORE``.

The schema version is the file catalog's: a PostgreSQL catalog starts at :data:`FIRST_VERSION`,
and each later version of :mod:`tracker.storage.schema` needs its entry in :data:`MIGRATIONS`
(tests/test_storage_pg_store.py checks). A table of PostgreSQL's own added within a version
(``latest_values``: :data:`VALUE_STATEMENTS`) is added to a catalog created before it by the
next connection that creates or checks the schema (``PgStore``), filled from the runs
(:data:`BACKFILL`) in the same transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tracker.storage import schema

SCHEMA = "tracker"  # the PostgreSQL schema (namespace) holding the catalog's tables
SCHEMA_VERSION = schema.SCHEMA_VERSION
FIRST_VERSION = 7  # the file catalog's version when PostgreSQL catalogs began

_TYPES = {"VARCHAR": "text", "TIMESTAMPTZ": "timestamptz", "DOUBLE": "double precision",
          "INTEGER": "integer", "BIGINT": "bigint", "BOOLEAN": "boolean", "JSON": "text",
          "VARCHAR[]": "text[]"}
#: the file catalog's tables that PostgreSQL does without (see the module's docstring)
LEFT_OUT = ("value_columns", "run_values")
_LEFT_OUT_COLUMNS = {"runs": ("values_fresh",)}
#: tables whose rows keep their order in an identity column (the file catalog's rowid)
ORDERED = ("params", "metrics", "status_changes")
KEYS: dict[str, str] = {
    "meta": "PRIMARY KEY (key)",
    "runs": "PRIMARY KEY (id)",
    "param_keys": "PRIMARY KEY (key, kind)",
    "metric_keys": "PRIMARY KEY (key)",
    "artifacts": "PRIMARY KEY (id), UNIQUE (key, version)",
    "run_artifacts": "PRIMARY KEY (run_id, artifact_id, role)",
    "environments": "PRIMARY KEY (id)",
    "tags": "PRIMARY KEY (run_id, key)",
}
#: tables only a PostgreSQL catalog has (see the module's docstring)
OWN_TABLES: tuple[str, ...] = (
    "CREATE TABLE blobs (key text PRIMARY KEY, data bytea NOT NULL, "
    "stored_at timestamptz NOT NULL DEFAULT now())",
)
INDEXES: tuple[str, ...] = (
    "CREATE INDEX params_run ON params (run_id, seq)",
    "CREATE INDEX metrics_run ON metrics (run_id, key, seq)",
    "CREATE INDEX cells_run ON cells (run_id, seq)",
    "CREATE INDEX status_changes_run ON status_changes (run_id, seq)",
    "CREATE INDEX run_artifacts_artifact ON run_artifacts (artifact_id)",
    # the runs table's default order (newest first, tracker.filter_language), so that a page
    # of it (a widget's first render) reads 25 index entries instead of sorting every run
    "CREATE INDEX runs_started ON runs (started_at DESC NULLS LAST, id DESC)",
    "CREATE INDEX runs_name ON runs (name)",
)

# Safe casts for the filter compiler (tracker.sql_dialects) and the reads (tracker.pg_queries):
# DuckDB's TRY_CAST(x AS DOUBLE / BIGINT), which PostgreSQL lacks. No text makes them fail a
# query, and no EXCEPTION block: its subtransaction is refused in a parallel plan, which the
# server picks for a runs table of some 50,000 runs and up ("cannot start subtransactions during
# a parallel operation"). So each cast is checked first: a short number casts at once (at most
# 2 exponent digits and 40 characters: always in range); a longer one goes by way of numeric,
# whose range holds any of 1,000 characters and a 3-digit exponent, and is NULL out of
# double's range ('1e999'), as the cast's error was; NaN and infinities cast as they are.
_NUMBER = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d{1,%d})?\s*$"
FUNCTIONS: tuple[str, ...] = (
    "CREATE FUNCTION try_float8(value text) RETURNS double precision LANGUAGE plpgsql "
    "IMMUTABLE PARALLEL SAFE AS $$ BEGIN "
    f"IF length(value) <= 40 AND value ~ '{_NUMBER % 2}' THEN RETURN value::float8; END IF; "
    r"IF value ~* '^\s*[-+]?(nan|inf|infinity)\s*$' THEN RETURN value::float8; END IF; "
    f"IF length(value) > 1000 OR value !~ '{_NUMBER % 3}' THEN RETURN NULL; END IF; "
    "IF abs(value::numeric) < 1.7976931348623158079e308 AND (value::numeric = 0 OR "
    "abs(value::numeric) >= 2.4703282292062328e-324) THEN RETURN value::numeric::float8; "
    "END IF; RETURN NULL; END $$",
    # a metric's stored value (metrics_at_max_step) is a double already
    "CREATE FUNCTION try_float8(value double precision) RETURNS double precision LANGUAGE sql "
    "IMMUTABLE PARALLEL SAFE AS 'SELECT value'",
    "CREATE FUNCTION try_int8(value text) RETURNS bigint LANGUAGE plpgsql "
    "IMMUTABLE PARALLEL SAFE AS $$ BEGIN "
    r"IF value ~ '^\s*[-+]?\d{1,18}\s*$' THEN RETURN value::int8; END IF; "
    r"IF length(value) > 1000 OR value !~ '^\s*[-+]?\d+\s*$' THEN RETURN NULL; END IF; "
    "IF value::numeric BETWEEN -9223372036854775808 AND 9223372036854775807 "
    "THEN RETURN value::numeric::int8; END IF; RETURN NULL; END $$",
)

#: the typed copy of each run's latest params and metrics, which filters and sorts read
VALUES = "latest_values"
_Q = SCHEMA + "."  # function bodies run under any search_path (a psql session's): qualified
# A param's or metric's text form as ``->>`` gives it (a string unquoted, JSON null as NULL,
# anything else as written), and the JSON type: of a key written twice, the last (as ``->>``).
# An escaped NUL or lone surrogate (\u0000, \udc80) is valid JSON that no text holds: the
# server refuses to parse a document with one, so it reads as U+FFFD here (the trigger must
# never fail the write that records it; no filter value can hold either).
_UNTEXTABLE = (r"\\u0000|\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F])"
               r"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}")
# A text whose length with its key's is at most this is in the text index (a B-tree entry
# refuses one past ~2.7 kB: 4 bytes a character at most, with the namespace and run id); the
# filter compiler states the same condition (tracker.sql_dialects) so that the server uses it.
TEXT_INDEXED = 600
#: the value table's indexes (name, what follows ``ON latest_values``). Both hold the run's id,
#: so that which runs match is answered by the index alone (an index-only scan), not by one
#: heap page per match: a key's rows lie one per run, all over the table (docs/scaling.md).
VALUE_INDEXES: tuple[tuple[str, str], ...] = (
    # ranges and sorts on a key's number (NaN is missing there, as the filter language says);
    # ``number`` itself too: the server scans an expression index alone only if the columns
    # under the expression are in it
    (f"{VALUES}_by_number",
     "(namespace, key, nullif(number, 'NaN'::float8)) INCLUDE (run_id, number)"),
    # equality on a key's text; a longer text is not in it (nothing recorded may be refused)
    # and is found by the key's entries in the index above
    (f"{VALUES}_by_text", "(namespace, key, text_value) INCLUDE (run_id) "
     f"WHERE length(key) + length(text_value) <= {TEXT_INDEXED}"),
)
#: the value table's indexes before VALUE_INDEXES, which the owner's next check replaces
#: (pg_store): the number index without ``number`` and a hash index on the text alone, whose
#: matches the server checked page by page for their key
OLD_VALUE_INDEXES = (f"{VALUES}_number", f"{VALUES}_text")
_LATEST_OF = (
    f"CREATE FUNCTION latest_of(doc text) RETURNS TABLE (key text, text_value text, "
    "number double precision, json_type text) LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ "
    f"SELECT DISTINCT ON (e.key) e.key, t.form, {_Q}try_float8(t.form), json_typeof(e.value) "
    "FROM json_each(CASE WHEN strpos(doc, '\\u') > 0 "  # only then look for one (cheaper)
    f"THEN regexp_replace(doc, '{_UNTEXTABLE}', "
    r"'\\ufffd', 'g') ELSE coalesce(doc, '{}') END::json) WITH ORDINALITY e(key, value, n), "
    "LATERAL (SELECT CASE json_typeof(e.value) WHEN 'string' THEN e.value #>> '{}' "
    "WHEN 'null' THEN NULL ELSE e.value::text END) t(form) ORDER BY e.key, e.n DESC $$")
VALUE_STATEMENTS: tuple[str, ...] = (
    # no foreign key: its check is a query per value row written (25 a run); a run's rows go
    # with it by the delete trigger below instead
    f"CREATE TABLE {VALUES} (run_id text NOT NULL, namespace text NOT NULL, key text NOT NULL, "
    "text_value text, number double precision, json_type text NOT NULL, "
    "PRIMARY KEY (run_id, namespace, key))",
    *(f"CREATE INDEX {name} ON {VALUES} {body}" for name, body in VALUE_INDEXES),
    # how often a key holds a text (p0 = 'x': a third of its runs), which the planner would
    # otherwise multiply out of the two columns' own frequencies (1 in 35 of that, at 100k)
    f"CREATE STATISTICS {VALUES}_key_text (mcv) ON namespace, key, text_value FROM {VALUES}",
    _LATEST_OF,
    # PL/pgSQL keeps the statement's plan for the session (a SQL function plans it per call);
    # only a document that changed is read again, and only values that changed are rewritten
    "CREATE FUNCTION keep_latest() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    f"INSERT INTO {_Q}{VALUES} AS v SELECT NEW.id, d.namespace, l.* FROM (VALUES "
    "('params', NEW.params, OLD.params), ('metrics', NEW.metrics, OLD.metrics)) "
    f"d(namespace, doc, was), {_Q}latest_of(d.doc) l "
    "WHERE TG_OP = 'INSERT' OR d.doc IS DISTINCT FROM d.was "
    "ON CONFLICT (run_id, namespace, key) DO UPDATE SET text_value = excluded.text_value, "
    "number = excluded.number, json_type = excluded.json_type WHERE (v.text_value, v.number, "
    "v.json_type) IS DISTINCT FROM (excluded.text_value, excluded.number, excluded.json_type); "
    "RETURN NULL; END $$",
    "CREATE FUNCTION drop_latest() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    f"DELETE FROM {_Q}{VALUES} WHERE run_id = OLD.id; RETURN NULL; END $$",
    "CREATE TRIGGER keep_latest_new AFTER INSERT ON runs FOR EACH ROW "
    "EXECUTE FUNCTION keep_latest()",
    "CREATE TRIGGER keep_latest_changed AFTER UPDATE OF params, metrics ON runs FOR EACH ROW "
    "WHEN (OLD.params IS DISTINCT FROM NEW.params OR OLD.metrics IS DISTINCT FROM NEW.metrics) "
    "EXECUTE FUNCTION keep_latest()",
    "CREATE TRIGGER drop_latest AFTER DELETE ON runs FOR EACH ROW EXECUTE FUNCTION drop_latest()",
)
#: fills the value table of a catalog created before it, in one statement
BACKFILL = (f"INSERT INTO {VALUES} SELECT r.id, 'params', l.* FROM runs r, latest_of(r.params) l "
            f"UNION ALL SELECT r.id, 'metrics', l.* FROM runs r, latest_of(r.metrics) l")

Connection = Any  # a psycopg.Connection; typed loosely to keep psycopg lazy
Migration = Callable[[Connection], None]


def _keep_removed_tags(connection: Connection) -> None:
    """Version 8: a removed tag stays as a row without a value (``schema.TABLES['tags']``)."""
    connection.execute("ALTER TABLE tags ALTER COLUMN value DROP NOT NULL")


# MIGRATIONS[n] brings a PostgreSQL catalog from version n to n + 1. Append, never edit.
MIGRATIONS: dict[int, Migration] = {7: _keep_removed_tags}


def tables() -> tuple[str, ...]:
    """The catalog's tables, in creation order."""
    return tuple(name for name in schema.TABLES if name not in LEFT_OUT)


def column_type(kind: str) -> str:
    """The PostgreSQL type of a file-catalog column type (``VARCHAR NOT NULL`` -> ``text NOT
    NULL``)."""
    base = kind.removesuffix(" NOT NULL")
    return _TYPES[base] + kind[len(base):]


def columns(table: str) -> tuple[tuple[str, str], ...]:
    """(name, PostgreSQL type) of each column of ``table``, as the file catalog orders them
    (the identity ``seq`` of :data:`ORDERED` tables comes last)."""
    left_out = _LEFT_OUT_COLUMNS.get(table, ())
    typed = tuple((name, column_type(kind)) for name, kind in schema.typed_columns(table)
                  if name not in left_out)
    if table in ORDERED:
        typed += (("seq", "bigint GENERATED ALWAYS AS IDENTITY"),)
    return typed


def create_statements() -> list[str]:
    """The DDL that creates an empty catalog at the current version in :data:`SCHEMA` (which
    must exist and be first on the search_path)."""
    created = []
    for table in tables():
        body = [f"{name} {kind}" for name, kind in columns(table)]
        if table in KEYS:
            body.append(KEYS[table])
        created.append(f"CREATE TABLE {table} ({', '.join(body)})")
    return [*created, *OWN_TABLES, *INDEXES, *FUNCTIONS, *VALUE_STATEMENTS]


def pending_migrations(version: int) -> list[tuple[int, Migration]]:
    """The migrations a catalog at ``version`` needs, in order; KeyError names a version with
    no PostgreSQL migration (a bug: the test of MIGRATIONS catches it)."""
    return [(v, MIGRATIONS[v]) for v in range(version, SCHEMA_VERSION)]
