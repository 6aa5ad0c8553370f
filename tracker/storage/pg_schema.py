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
  way around slow DuckDB writes, which PostgreSQL does not need.
- ``blobs``: the notebooks stored with runs live in the database (``bytea``, by content key),
  where the file catalog has its blob folder: every machine that reaches the server reads them,
  and a purge removes them in the transaction that finds them unreferenced
  (:mod:`tracker.storage.pg_blobs`). Kept contents stay in ``TRACKER_STORE``.

The schema version is the file catalog's: a PostgreSQL catalog starts at :data:`FIRST_VERSION`,
and each later version of :mod:`tracker.storage.schema` needs its entry in :data:`MIGRATIONS`
(tests/test_storage_pg_store.py checks).
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

Connection = Any  # a psycopg.Connection; typed loosely to keep psycopg lazy
Migration = Callable[[Connection], None]

# MIGRATIONS[n] brings a PostgreSQL catalog from version n to n + 1. Append, never edit.
MIGRATIONS: dict[int, Migration] = {}


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
    return [*created, *OWN_TABLES, *INDEXES, *FUNCTIONS]


def pending_migrations(version: int) -> list[tuple[int, Migration]]:
    """The migrations a catalog at ``version`` needs, in order; KeyError names a version with
    no PostgreSQL migration (a bug: the test of MIGRATIONS catches it)."""
    return [(v, MIGRATIONS[v]) for v in range(version, SCHEMA_VERSION)]
