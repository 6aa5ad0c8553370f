"""One in-memory DuckDB per process, to which a catalog file is attached for each operation.

Starting a DuckDB database costs ~20-25 ms on this machine, even in memory; attaching a file to
a running one and detaching it again costs ~3. Detaching closes the file as closing a connection
does: it checkpoints and releases DuckDB's file lock, so other processes see a catalog that no
one holds between operations, as DESIGN.md §3 requires.
"""

from __future__ import annotations

import os
import threading
from typing import Any

_STORAGE = {"storage_compatibility_version": "v1.5.0"}  # files stay readable by duckdb 1.5

_instance: Any = None
_guard = threading.Lock()
_names: dict[str, str] = {}


def _reset_after_fork() -> None:
    # DuckDB's threads do not survive a fork: a child starts its own instance.
    global _instance, _guard
    _instance = None
    _guard = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def _database() -> Any:
    global _instance
    with _guard:
        if _instance is None:
            import duckdb

            _instance = duckdb.connect(config=dict(_STORAGE))
        return _instance


def start_in_background() -> None:
    """Import and start DuckDB on a thread now, so a first write need not wait for it (~120 ms
    when a notebook loads the extension, mostly ``import duckdb``)."""
    threading.Thread(target=_database, name="tracker-duckdb", daemon=True).start()


def _name(path: str) -> str:
    """The attached database's name: one per file, an identifier whatever the path."""
    with _guard:
        return _names.setdefault(path, f"catalog_{len(_names) + 1}")


def attach(path: str, *, write: bool) -> Any:
    """A connection whose default database is the file at ``path`` (created by a write).

    Raises duckdb.IOException as ``duckdb.connect`` would (locked, not a database, missing).
    The caller serialises operations on one path (tracker._lock does, across threads too).
    """
    name = _name(path)
    connection = _database().cursor()
    literal = "'" + path.replace("'", "''") + "'"
    try:
        connection.execute(f"ATTACH {literal} AS {name}{'' if write else ' (READ_ONLY)'}")
        connection.execute(f"USE {name}")
    except BaseException:
        connection.close()
        raise
    return connection


def detach(connection: Any, path: str) -> None:
    """Close the file (checkpoint, release DuckDB's lock) and the connection."""
    import duckdb

    name = _name(path)
    try:
        try:
            connection.execute("ROLLBACK")  # an operation that failed mid-transaction
        except duckdb.Error:
            pass  # none was open: the usual case
        connection.execute("USE memory")
        connection.execute(f"DETACH {name}")
    except duckdb.Error:
        _discard()  # the file must not stay open: drop the whole instance instead
    finally:
        connection.close()


def _discard() -> None:
    global _instance
    with _guard:
        instance, _instance = _instance, None
    if instance is not None:
        instance.close()
