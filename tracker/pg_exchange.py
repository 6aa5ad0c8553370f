"""Runs into and out of a PostgreSQL catalog: export, import, and the merge push/pull write.

The descriptor format is the file catalog's (:mod:`tracker.exchange`), read by the same
sections, so a run exported from either back end imports into either. What enters the server
is a checked descriptor (:func:`tracker.descriptor.validate`), redacted as logging would, and
written as :mod:`tracker.record_diff` says, in one transaction: a run the server lacks is
added whole (same id, same numbered name), one it holds gains only what it lacks. Column
names come from the catalog's own schema, values are bound.

Stored notebooks travel with the run into and out of the server's ``blobs`` table; kept
contents into and out of its shared store (``TRACKER_STORE``: :mod:`tracker.carried_contents`
checks each one), and without that store their versions are recorded ``not kept``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence, Set
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from tracker import arguments, descriptor, exchange, queries, record_diff, redaction
from tracker.errors import ArgumentError, CatalogError, first_line
from tracker.sql_dialects import POSTGRES
from tracker.storage import pg_schema, schema

if TYPE_CHECKING:
    from tracker.catalog import Catalog
    from tracker.pg_catalog import PgCatalog
    from tracker.storage.pg_store import PgStore


_IDS = "run_id = ANY(%s::text[])"
_ARTIFACT_COLUMNS = ", ".join(f"a.{name}" for name in schema.column_names("artifacts"))
RECORD = exchange.RecordStatements(
    run=f"SELECT {', '.join(exchange.RUN_COLUMNS)} FROM runs WHERE id = ANY(%s::text[])",
    params=f"SELECT run_id, key, value, kind, logged_at FROM params WHERE {_IDS} "
           "ORDER BY logged_at, seq",
    metrics=f"SELECT run_id, key, value, step, logged_at FROM metrics WHERE {_IDS} "
            "ORDER BY logged_at, seq",
    artifacts=f"SELECT ra.run_id, {_ARTIFACT_COLUMNS}, ra.role, ra.via, ra.logged_at AS "
              "linked_at FROM run_artifacts ra JOIN artifacts a ON a.id = ra.artifact_id "
              "WHERE ra.run_id = ANY(%s::text[])",
    cells=f"SELECT {', '.join(schema.column_names('cells'))} FROM cells WHERE {_IDS} "
          "ORDER BY seq",
    environment="SELECT id, data, created_at FROM environments WHERE id = ANY(%s::text[])",
    tags=f"SELECT run_id, key, value, set_at FROM tags WHERE {_IDS} ORDER BY key",
)
_CHUNK = 100  # runs read or written per transaction


def export_run(catalog: PgCatalog, ref: str, path: str | os.PathLike[str], *,
               overwrite: bool = False, contents: bool = False) -> Path:
    """See :meth:`tracker.Catalog.export_run`: the notebooks from the server's ``blobs``
    table, the kept contents (``contents``) from its shared store."""
    target = Path(arguments.path(path, "path")).expanduser().absolute()
    exchange.check_file_target(target, overwrite=overwrite)
    with catalog.store.connect() as con:
        data = exchange.read_records(con, [queries.resolve(con, ref, POSTGRES)], RECORD)[0]
    data["notebooks"] = exchange.stored_notebooks(catalog, data["artifacts"])
    exchange.as_descriptor(data)  # one an import would refuse is refused here
    if contents:  # before the descriptor: one that exists has its contents beside it
        from tracker import carried_contents

        carried_contents.carry(catalog, data["artifacts"], target, overwrite=overwrite)
    exchange.write_descriptor(data, target, overwrite=overwrite)
    return target


def import_run(catalog: PgCatalog, path: str | os.PathLike[str]) -> str:
    """See :meth:`tracker.Catalog.import_run`: a run the server holds already is refused."""
    from tracker import carried_contents

    source = Path(arguments.path(path, "path"))
    data = descriptor.load(source)
    run_id = data["run"]["id"]
    carried = carried_contents.take_in(catalog, data["artifacts"], source.expanduser()) \
        if catalog.stores_contents else set()
    merged = merge(catalog, [data], redactor(), update=False, carried=carried)
    if run_id in merged.refused:
        raise CatalogError(f"the server cannot hold run {run_id} ({merged.refused[run_id]}); "
                           "nothing imported: keep it in a catalog file", path=catalog.store.shown)
    if not merged.added:
        raise ArgumentError(f"run {run_id} is already in {catalog.store.shown}; nothing "
                            "imported (import into another catalog, or purge it there first)")
    return run_id


def read_records(store: PgStore, run_ids: Sequence[str]) -> list[dict[str, Any]]:
    """The records of these runs (which exist), as descriptors hold them (without
    ``notebooks``: :func:`tracker.exchange.stored_notebooks` adds them)."""
    with store.connect() as con:
        return exchange.read_records(con, run_ids, RECORD)


def redactor() -> redaction.Redactor:
    """The redactor of what enters the server from a descriptor: the settings' rules, with
    markers keyed for this process (the server has no key file beside it)."""
    return redaction.Redactor(None, redaction.rules_from())


class Merged(NamedTuple):
    """What :func:`merge` did: the ids of the runs added and updated, and of each run the
    server refused (a text with a NUL, a number out of its range), why."""

    added: list[str]
    updated: list[str]
    refused: dict[str, str]


def merge(catalog: Catalog, runs: Sequence[dict[str, Any]], redactor: redaction.Redactor, *,
          update: bool = True, carried: Set[str] = frozenset()) -> Merged:
    """Write checked descriptors of runs into the PostgreSQL ``catalog``, each as logging
    would have recorded it (its notebooks stored in the ``blobs`` table, its kept versions
    kept where their content was ``carried`` into the catalog's store): runs it lacks are
    added, runs it holds brought up to date (unless not ``update``), in transactions of up to
    a hundred runs. A transaction the server refuses for its data is tried again run by run,
    so one run it cannot hold keeps no other out."""
    store: Any = catalog.store
    merged = Merged([], [], {})
    recorded = exchange.recorded_here(catalog, runs, carried, redactor)
    for start in range(0, len(recorded), _CHUNK):
        _merge_chunk(store, recorded[start:start + _CHUNK], merged, update=update)
    return merged


def _merge_chunk(store: PgStore, chunk: list[dict[str, Any]], merged: Merged, *,
                 update: bool) -> None:
    """Merge ``chunk`` in one transaction, or, if the server refuses its data, run by run."""
    import psycopg

    try:
        _merge_together(store, chunk, merged, update=update)
    except (psycopg.DataError, psycopg.IntegrityError) as exc:
        if len(chunk) == 1:
            merged.refused[chunk[0]["run"]["id"]] = first_line(str(exc), type(exc).__name__)
            return
        for data in chunk:
            _merge_chunk(store, [data], merged, update=update)


def _merge_together(store: PgStore, recorded: list[dict[str, Any]], merged: Merged, *,
                    update: bool) -> None:
    """Merge the runs in one transaction; what it did is added to ``merged`` once committed."""
    with store.connect(write=True) as con:
        done = _changes(con, recorded, update=update)
        _write(con, done)
    for change in done:
        (merged.added if change.new else merged.updated).append(change.run_id)


def _changes(con: Any, recorded: list[dict[str, Any]], *,
             update: bool) -> list[record_diff.Changes]:
    """What each run adds to the server, read under the locks that keep a concurrent push or
    writer from changing the same rows: advisory locks on the runs and artifact paths in one
    sorted order (as :mod:`tracker.storage.pg_writer` takes them), then the runs' rows."""
    keys = {f"push:{data['run']['id']}" for data in recorded}
    keys |= {f"path:{row['key']}" for data in recorded for row in data["artifacts"]}
    for key in sorted(keys):
        con.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [key])
    ids = sorted(data["run"]["id"] for data in recorded)
    present = {row[0] for row in con.execute(
        "SELECT id FROM runs WHERE id = ANY(%s) ORDER BY id FOR UPDATE", [ids]).fetchall()}
    wanted = [data for data in recorded if update or data["run"]["id"] not in present]
    held = {data["run"]["id"]: data for data in
            exchange.read_records(con, sorted(present), RECORD)} if update else {}
    found = [record_diff.changes(data, held.get(data["run"]["id"])) for data in wanted]
    return [change for change in found if not change.empty]


def _write(con: Any, changes: Sequence[record_diff.Changes]) -> None:
    """Write the runs' changes, one statement per table for them all (in a pipeline); the
    table and column names are the schema's own."""
    _insert(con, "runs", [change.run for change in changes if change.new], "")
    for change in changes:
        names = [name for name in exchange.RUN_COLUMNS if name in change.run and name != "id"]
        if names and not change.new:
            con.execute(f"UPDATE runs SET {', '.join(f'{name} = %s' for name in names)} "
                        "WHERE id = %s", [*(change.run[name] for name in names), change.run_id])
    rows = {table: [{**row, "run_id": change.run_id} for change in changes
                    for row in getattr(change, table)]
            for table in ("params", "metrics", "cells", "tags")}
    for table in ("params", "metrics", "cells"):
        _insert(con, table, rows[table], "")
    _insert(con, "tags", rows["tags"], " ON CONFLICT (run_id, key) DO UPDATE SET value = "
            "excluded.value, set_at = excluded.set_at")
    cursor = con.cursor()
    cursor.executemany("INSERT INTO param_keys VALUES (%s, %s) ON CONFLICT DO NOTHING",
                       sorted({(row["key"], row["kind"]) for row in rows["params"]}))
    cursor.executemany("INSERT INTO metric_keys VALUES (%s) ON CONFLICT DO NOTHING",
                       sorted({(row["key"],) for row in rows["metrics"]}))
    _insert(con, "environments", [row for change in changes for row in change.environment],
            " ON CONFLICT DO NOTHING")  # no target: see pg_writer's environments
    for change in changes:
        for row in change.links:
            _add_artifact(con, row)
    _insert(con, "run_artifacts", [exchange.link(change.run_id, row) for change in changes
                                   for row in change.links], " ON CONFLICT DO NOTHING")


def _insert(con: Any, table: str, rows: Sequence[dict[str, Any]], conflict: str) -> None:
    """Insert rows by the table's own column names (never the rows' keys)."""
    if not rows:
        return
    names = [name for name, kind in pg_schema.columns(table) if "IDENTITY" not in kind]
    marks = ", ".join(["%s"] * len(names))
    con.cursor().executemany(
        f"INSERT INTO {table} ({', '.join(names)}) VALUES ({marks}){conflict}",
        [[row.get(name) for name in names] for row in rows])


def _add_artifact(con: Any, row: dict[str, Any]) -> None:
    """Add an artifact version the server lacks, by its id; its version number is kept unless
    another version of the path holds it here, then it is the next free one (the path's
    advisory lock is held)."""
    # every project's versions count (pg_access.FILE_VERSION): this role may see none of them
    known, latest, taken = con.execute("SELECT * FROM file_version(%s, NULL, %s, %s)",
                                       [row["key"], row["id"], row["version"]]).fetchone()
    if known is not None:
        return
    version = latest + 1 if taken else row["version"]
    _insert(con, "artifacts", [{**row, "version": version}], "")
