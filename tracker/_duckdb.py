"""In-memory DuckDB instances that live for the process, to which catalog files are attached
for one operation at a time.

Starting a DuckDB database costs ~20-25 ms on this machine, even in memory; attaching a file to
a running one and detaching it again costs ~3. Detaching closes the file as closing a connection
does: it checkpoints and releases DuckDB's file lock, so other processes see a catalog that no
one holds between operations, as DESIGN.md §3 requires.

There is one instance per catalog file, not one per process: DuckDB keeps a detached database
open while any transaction that began before the DETACH still runs, so a query on another
catalog in another thread would keep this file open, and locked, past our sidecar lock (seen as
"Unique file handle conflict" on the next attach). Operations on one file never overlap
(tracker._lock serialises them, threads included), so its instance never has such a transaction.
"""

from __future__ import annotations

import os
import threading
from typing import Any

_STORAGE = {"storage_compatibility_version": "v1.5.0"}  # files stay readable by duckdb 1.5

_instances: dict[str, Any] = {}  # catalog path -> its in-memory DuckDB
_spare: Any = None  # started ahead of need by start_in_background()
_guard = threading.Lock()


def _reset_after_fork() -> None:
    # DuckDB's threads do not survive a fork: a child starts its own instances.
    global _spare, _guard
    _instances.clear()
    _spare = None
    _guard = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def _new() -> Any:
    import duckdb

    return duckdb.connect(config=dict(_STORAGE))


def _database(path: str) -> Any:
    global _spare
    with _guard:
        if path not in _instances:
            _instances[path], _spare = (_spare or _new()), None
        return _instances[path]


def start_in_background() -> None:
    """Import and start DuckDB on a thread now, so a first write need not wait for it (~120 ms
    when a notebook loads the extension, mostly ``import duckdb``)."""

    def start() -> None:
        global _spare
        with _guard:
            if _spare is None and not _instances:
                _spare = _new()

    threading.Thread(target=start, name="tracker-duckdb", daemon=True).start()


def attach(path: str, file: str | None = None, *, write: bool) -> Any:
    """A connection whose default database is the catalog at ``path`` (created by a write),
    read from ``file`` when that differs (a new catalog's draft).

    Raises duckdb.IOException as ``duckdb.connect`` would (locked, not a database, missing).
    The caller serialises operations on one path (tracker._lock does, across threads too).
    """
    connection = _database(path).cursor()
    literal = "'" + (file or path).replace("'", "''") + "'"
    try:
        connection.execute(f"ATTACH {literal} AS catalog{'' if write else ' (READ_ONLY)'}")
        connection.execute("USE catalog")
    except BaseException:
        connection.close()
        raise
    return connection


def detach(connection: Any, path: str) -> None:
    """Close the file (checkpoint, release DuckDB's lock) and the connection."""
    import duckdb

    try:
        try:
            connection.execute("ROLLBACK")  # an operation that failed mid-transaction
        except duckdb.Error:
            pass  # none was open: the usual case
        connection.execute("USE memory")
        connection.execute("DETACH catalog")
    except duckdb.Error:
        _discard(path)  # the file must not stay open: drop its whole instance instead
    finally:
        connection.close()


def _discard(path: str) -> None:
    with _guard:
        instance = _instances.pop(path, None)
    if instance is not None:
        instance.close()
