"""The catalog's tables, its schema version and the migrations between versions.

The ``runs`` table carries each run's latest params and metrics as flat JSON objects
(``{"optimizer.lr": 0.01}``), the faithful record; ``run_values`` the same values one typed
column per key (``p1``, ``m1``..., added as keys appear), which filters and tables scan. Writers
leave ``run_values`` behind (``runs.values_fresh`` NULL) and readers fill it:
``tracker.storage.value_columns``.
The full histories live in ``params`` and ``metrics``. No table has a PRIMARY KEY: on big tables
it makes DuckDB's checkpoint-on-close slow; uniqueness comes from the writers (ids are random,
one process owns a run) and from ``spool_seq`` when a spool is replayed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

SCHEMA_VERSION = 8

# Sorted by nothing but readability: attributes first, then the JSON summaries.
RUN_COLUMNS: tuple[tuple[str, str], ...] = (
    ("id", "VARCHAR NOT NULL"),
    ("name", "VARCHAR"),
    ("project", "VARCHAR"),
    ("notebook", "VARCHAR"),
    ("notebook_name", "VARCHAR"),
    ("notebook_title", "VARCHAR"),
    ("notebook_hash", "VARCHAR"),
    ("status", "VARCHAR NOT NULL"),
    ("started_at", "TIMESTAMPTZ NOT NULL"),
    ("ended_at", "TIMESTAMPTZ"),
    ("duration", "DOUBLE"),
    ("host", "VARCHAR"),
    ("pid", "INTEGER"),
    ("process_start", "DOUBLE"),
    ("username", "VARCHAR"),
    ("heartbeat_at", "TIMESTAMPTZ"),
    ("labels", "VARCHAR[]"),
    ("notes", "VARCHAR"),
    ("parent_id", "VARCHAR"),
    ("deleted_at", "TIMESTAMPTZ"),
    ("environment_id", "VARCHAR"),
    ("error", "VARCHAR"),
    ("params", "JSON"),
    ("metrics", "JSON"),
    ("spool_seq", "BIGINT"),
)

TABLES: dict[str, str] = {
    "meta": "key VARCHAR NOT NULL, value VARCHAR",
    # values_fresh is derived state, not an attribute of the run (exports leave it out).
    "runs": ", ".join(f"{name} {kind}" for name, kind in RUN_COLUMNS) + ", values_fresh BOOLEAN",
    # Every value a param ever had, in order; `value` is JSON text, `kind` the Python type name.
    "params": "run_id VARCHAR NOT NULL, key VARCHAR NOT NULL, value JSON, kind VARCHAR, "
    "logged_at TIMESTAMPTZ NOT NULL",
    # The type seen for each flat param key, so the runs table gives each column its dtype.
    "param_keys": "key VARCHAR NOT NULL, kind VARCHAR NOT NULL",
    # The metric keys ever logged: the runs table's metric columns, without scanning metrics.
    "metric_keys": "key VARCHAR NOT NULL",
    "metrics": "run_id VARCHAR NOT NULL, key VARCHAR NOT NULL, value DOUBLE, step BIGINT, "
    "logged_at TIMESTAMPTZ NOT NULL",
    # One row per distinct content of a path: version counts up per key. `blob` names the
    # stored copy (a notebook's, or a kept content's `blake3-<hex>`); `kept` says whether the
    # content was kept (tracker.keeping: kept, storing, changed, unreadable, not kept; NULL before
    # v5); while `storing`, `blob` is the token of the staged copy (tracker.background_keeps).
    "artifacts": "id VARCHAR NOT NULL, key VARCHAR NOT NULL, version INTEGER NOT NULL, "
    "uri VARCHAR NOT NULL, size BIGINT, mtime TIMESTAMPTZ, hash VARCHAR, "
    "producer_run_id VARCHAR, blob VARCHAR, created_at TIMESTAMPTZ NOT NULL, kept VARCHAR",
    # `via`: how the file was seen (tracker.models.VIAS); NULL for links older than version 3.
    "run_artifacts": "run_id VARCHAR NOT NULL, artifact_id VARCHAR NOT NULL, "
    "role VARCHAR NOT NULL, logged_at TIMESTAMPTZ NOT NULL, via VARCHAR",
    "cells": "run_id VARCHAR NOT NULL, seq INTEGER NOT NULL, execution_count INTEGER, "
    "cell_id VARCHAR, source_hash VARCHAR, source VARCHAR, started_at TIMESTAMPTZ, "
    "duration DOUBLE, success BOOLEAN, error_type VARCHAR, error_message VARCHAR",
    "environments": "id VARCHAR NOT NULL, data JSON NOT NULL, created_at TIMESTAMPTZ NOT NULL",
    # Every status set by hand (tracker.set_status): who, where, when, from what to what.
    "status_changes": "run_id VARCHAR NOT NULL, old_status VARCHAR NOT NULL, "
    "new_status VARCHAR NOT NULL, username VARCHAR, host VARCHAR, "
    "changed_at TIMESTAMPTZ NOT NULL, forced BOOLEAN NOT NULL",
    # The column of run_values that holds each params and metrics key; see
    # tracker.storage.value_columns.
    "value_columns": "namespace VARCHAR NOT NULL, key VARCHAR NOT NULL, name VARCHAR NOT NULL",
    # One row per run whose values_fresh is true; a column per key is added as keys appear.
    "run_values": "id VARCHAR NOT NULL",
    # Each run's tags as they are now, one row per (run_id, key): annotations that setting again
    # replaces (params keep their history; tags have none). delete_tag leaves the row without a
    # value, so that an older value arriving late (another process's flush) never brings it back.
    "tags": "run_id VARCHAR NOT NULL, key VARCHAR NOT NULL, value VARCHAR, "
    "set_at TIMESTAMPTZ NOT NULL",
}

# No index on params.run_id or metrics.run_id: every checkpoint rewrote them, so each write cost
# more as the catalog grew, while run ids ordered by time let a run's reads skip most row groups
# by their min/max anyway (docs/design.md §6).
INDEXES: tuple[str, ...] = (
    "CREATE INDEX IF NOT EXISTS artifacts_key ON artifacts (key)",
)


def typed_columns(table: str) -> tuple[tuple[str, str], ...]:
    """The (name, type) of each column of ``table`` in order, read from its definition."""
    return tuple((name, kind) for name, _, kind in
                 (column.partition(" ") for column in TABLES[table].split(", ")))


def column_names(table: str) -> tuple[str, ...]:
    """The columns of ``table`` in order, read from its definition: a fixed list that SQL
    text may name, unlike keys found in data."""
    return tuple(name for name, _ in typed_columns(table))


def create_statements() -> list[str]:
    """The DDL that creates an empty catalog at the current version."""
    tables = [f"CREATE TABLE IF NOT EXISTS {name} ({body})" for name, body in TABLES.items()]
    return [*tables, *INDEXES]


Connection = Any  # a duckdb.DuckDBPyConnection; typed loosely to keep duckdb lazy
Migration = Callable[[Connection], None]


def _add_value_columns(con: Connection) -> None:
    """Version 2: a column per params and metrics key, so filters stop parsing JSON (they are
    filled by version 4's migration, which needs ``values_fresh``)."""
    con.execute(f"CREATE TABLE value_columns ({TABLES['value_columns']})")


def _add_artifact_via(con: Connection) -> None:
    """Version 3: how each file record was seen; unknown (NULL) for the links already stored."""
    con.execute("ALTER TABLE run_artifacts ADD COLUMN via VARCHAR")


def _lazy_value_columns(con: Connection) -> None:
    """Version 4: the value columns move from ``runs`` to ``run_values``, filled by readers
    (``values_fresh``); no run_id indexes. Both made every write slower (docs/design.md §6)."""
    from tracker.storage import value_columns

    con.execute("DROP INDEX IF EXISTS metrics_run")
    con.execute("DROP INDEX IF EXISTS params_run")
    for (namespace, _), name in value_columns.layout(con).items():  # checked: p1, m1...
        con.execute(f"ALTER TABLE runs DROP COLUMN {name}")
        if namespace == "params":
            con.execute(f"ALTER TABLE runs DROP COLUMN {name}_json")
    con.execute("DELETE FROM value_columns")
    con.execute("ALTER TABLE runs ADD COLUMN values_fresh BOOLEAN")
    con.execute(f"CREATE TABLE run_values ({TABLES['run_values']})")
    value_columns.refresh(con)


def _add_status_changes(con: Connection) -> None:
    """Version 5: the history of statuses set by hand, kept apart from what the run recorded."""
    con.execute(f"CREATE TABLE status_changes ({TABLES['status_changes']})")


def _add_tags(con: Connection) -> None:
    """Version 6: key/value tags, a table of their own so that tagging a run by reference never
    rewrites its ``runs`` row (which the process recording it may be updating)."""
    con.execute(f"CREATE TABLE tags ({TABLES['tags']})")


def _add_artifact_kept(con: Connection) -> None:
    """Version 7: whether each version's content was kept; unknown (NULL) for older ones."""
    con.execute("ALTER TABLE artifacts ADD COLUMN kept VARCHAR")


def _keep_removed_tags(con: Connection) -> None:
    """Version 8: a removed tag stays as a row without a value (see ``TABLES['tags']``)."""
    con.execute("ALTER TABLE tags ALTER COLUMN value DROP NOT NULL")


# MIGRATIONS[n] brings a catalog from version n to n + 1. Append, never edit.
MIGRATIONS: dict[int, Migration] = {1: _add_value_columns, 2: _add_artifact_via,
                                    3: _lazy_value_columns, 4: _add_status_changes,
                                    5: _add_tags, 6: _add_artifact_kept, 7: _keep_removed_tags}


def pending_migrations(version: int) -> list[tuple[int, Migration]]:
    """The migrations a catalog at ``version`` needs, in order."""
    return [(v, MIGRATIONS[v]) for v in range(version, SCHEMA_VERSION)]
