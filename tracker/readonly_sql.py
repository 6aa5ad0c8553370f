"""Raw SQL on a catalog that can only read it: :func:`tracker.sql` and ``tracker sql``.

Two locks, each enough alone. DuckDB's own parser must find exactly one statement, of type
SELECT (which covers ``WITH``, ``VALUES``, ``FROM x``, ``DESCRIBE``, ``SHOW``, ``SUMMARIZE``).
That statement runs on a DuckDB instance of its own, started for this one query, with the
catalog attached READ_ONLY and then external access off and the configuration locked: a SELECT
that hides a write (``WITH d AS (DELETE ...)``), reads a file (``read_csv``, ``glob``), attaches
another database or changes a setting fails there, and tracker's own instances, which its writes
use, never see the query. EXPLAIN is refused because it wraps any statement (``EXPLAIN ANALYZE
DELETE`` runs the DELETE); PRAGMA and CALL because they can change settings.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from tracker.errors import ArgumentError, CatalogError, ReadOnlySQLError, SQLError, first_line
from tracker.storage import schema

if TYPE_CHECKING:
    import pandas as pd

    from tracker.catalog import Catalog

Params = Sequence[Any] | Mapping[str, Any] | None

ALLOWED = (
    "one read-only query is allowed: a SELECT (or WITH ... SELECT, VALUES, FROM ..., DESCRIBE, "
    f"SHOW, SUMMARIZE) over the tables {', '.join(schema.TABLES)}")

# Set when the instance starts, before the configuration is locked. No temp directory: a query
# too big for memory fails rather than spilling files into the working directory.
_CONFIG: dict[str, Any] = {
    "memory_limit": "2GB",
    "threads": max(1, min(4, os.cpu_count() or 1)),
    "temp_directory": "",
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "python_enable_replacements": False,  # no reading the caller's DataFrames by name
}
SQL_TIMEOUT = 60.0  # seconds a query may hold the catalog's shared lock; TRACKER_SQL_TIMEOUT
_LOCKDOWN = ("SET enable_external_access = false", "SET lock_configuration = true")


def check(text: Any, params: Any = None) -> None:
    """Refuse a query that is not one read statement, or params of the wrong shape, before the
    catalog is opened: raises ArgumentError, SQLError (does not parse) or ReadOnlySQLError."""
    import duckdb

    if not isinstance(text, str):
        raise ArgumentError(f"the query must be text, not {type(text).__name__}; {ALLOWED}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate, which DuckDB's parser cannot take
        raise ArgumentError(f"the query is not valid text: a lone surrogate at position "
                            f"{exc.start}") from None
    _check_params(params)
    try:
        statements = duckdb.extract_statements(text)
    except duckdb.Error as exc:
        raise SQLError(_first_line(exc)) from None
    if len(statements) != 1:
        found = "no statement" if not statements else f"{len(statements)} statements"
        raise ReadOnlySQLError(f"{ALLOWED}; got {found}")
    kind = statements[0].type
    if kind != duckdb.StatementType.SELECT:
        raise ReadOnlySQLError(f"{ALLOWED}; got a {kind.name} statement")


def _check_params(params: Any) -> None:
    if params is None:
        return
    if isinstance(params, Mapping):
        if not all(isinstance(name, str) for name in params):
            raise ArgumentError("named params must have text keys ({'name': value} for $name)")
        return
    if isinstance(params, str | bytes) or not isinstance(params, Sequence):
        raise ArgumentError(f"params must be a list (for ?) or a dict (for $name), not "
                            f"{type(params).__name__}")


def run(catalog: Catalog, text: str, params: Params = None) -> pd.DataFrame:
    """The result of a query :func:`check` accepted, read from ``catalog`` in a sandbox, within
    :func:`time_limit` seconds (the shared lock it holds keeps every writer waiting)."""
    import duckdb
    import pyarrow as pa

    from tracker.frames import frame

    limit = time_limit()
    with catalog.read_locked() as path:
        # Closed before the sidecar lock is released, as every open of the catalog must be.
        with _sandbox(str(path)) as connection, _interrupted_after(connection, limit) as late:
            try:
                return frame(connection, text, _bindable(params))
            except duckdb.Error as exc:
                if late.is_set():
                    raise SQLError(f"the query ran longer than {limit:g} s and was stopped; "
                                   "narrow it (a WHERE, a LIMIT) or set TRACKER_SQL_TIMEOUT "
                                   "to allow more") from None
                raise _failure(exc) from None
            except (pa.ArrowException, ValueError, OverflowError) as exc:
                # A type pandas has no column for (a UNION, a timestamp out of its range).
                raise SQLError(f"a result column cannot become a DataFrame column ({exc}); "
                               "CAST it to VARCHAR in the query") from None


def time_limit() -> float:
    """Seconds a query may run: TRACKER_SQL_TIMEOUT if a positive number, else SQL_TIMEOUT."""
    try:
        limit = float(os.environ.get("TRACKER_SQL_TIMEOUT", SQL_TIMEOUT))
    except ValueError:
        return SQL_TIMEOUT
    return limit if 0 < limit < math.inf else SQL_TIMEOUT


@contextmanager
def _interrupted_after(connection: Any, limit: float) -> Iterator[threading.Event]:
    """Interrupt ``connection``'s query once ``limit`` seconds have passed; the event yielded
    is set if it was."""
    late = threading.Event()

    def interrupt() -> None:
        late.set()
        connection.interrupt()

    timer = threading.Timer(limit, interrupt)
    timer.daemon = True
    timer.start()
    try:
        yield late
    finally:
        timer.cancel()


def _failure(exc: Exception) -> SQLError:
    """DuckDB's refusal of a write or an outside read as ReadOnlySQLError, else SQLError."""
    import duckdb

    message = _first_line(exc)
    refused = isinstance(exc, duckdb.PermissionException) or "read-only mode" in message
    if refused:
        return ReadOnlySQLError(f"{ALLOWED}, and nothing outside the catalog can be read "
                                f"({message})")
    return SQLError(message)


def _bindable(params: Params) -> list[Any] | dict[str, Any]:
    if isinstance(params, Mapping):
        return dict(params)
    return list(params or [])


@contextmanager
def _sandbox(path: str) -> Iterator[Any]:
    """A DuckDB started for one query, the catalog at ``path`` its only readable database."""
    import duckdb

    connection = duckdb.connect(config=dict(_CONFIG))
    try:
        literal = "'" + path.replace("'", "''") + "'"
        try:
            connection.execute(f"ATTACH {literal} AS catalog (READ_ONLY)")
            connection.execute("USE catalog")
            for statement in _LOCKDOWN:
                connection.execute(statement)
        except duckdb.Error as exc:
            raise CatalogError(f"catalog {path} could not be opened to read "
                               f"({_first_line(exc)}); try again", path=path) from None
        yield connection
    finally:
        connection.close()


def _first_line(exc: BaseException) -> str:
    return first_line(str(exc), type(exc).__name__)
