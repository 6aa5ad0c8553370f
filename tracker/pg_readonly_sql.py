"""Raw SQL on a PostgreSQL catalog that can only read it: :func:`tracker.sql` there.

The counterpart of :mod:`tracker.readonly_sql`, with the server's own parser and rules as the
locks, each enough alone for writes:

- One statement: the query goes by the extended protocol (a binary cursor), whose Parse step
  refuses more than one command (``SELECT 1; DELETE ...``).
- A read: the server plans it under ``EXPLAIN`` first, which takes only plannable statements
  (a ``SET``, ``COMMIT``, ``COPY``, ``GRANT``... is refused at its first word), and a plan that
  modifies a table (``WITH d AS (DELETE ...)``) is refused before it runs.
- A ``READ ONLY`` transaction: the server refuses any write the plan check missed (``CREATE
  TABLE AS``, ``nextval``), and ``statement_timeout`` stops a long query
  (``TRACKER_SQL_TIMEOUT``, as for the file catalog). The query runs in a savepoint that is
  always rolled back: in one, the server refuses to turn read-only off (``set_config``), and
  whatever a function writes despite read-only (a large object) is undone. The connection is
  closed after the query, with whatever session state it made (an advisory lock, say).

Params bind PostgreSQL's ``$1, $2...`` from a list; named params (``$name``) are DuckDB's only.
Which tables a role may read is PostgreSQL's access control (``GRANT``), not this module's, and
which rows its row-level security by project (:mod:`tracker.storage.pg_access`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from tracker import readonly_sql
from tracker.errors import (
    ArgumentError,
    ProjectAccessError,
    ReadOnlySQLError,
    SQLError,
    first_line,
)

if TYPE_CHECKING:
    import pandas as pd

    from tracker.storage.pg_store import PgStore

ALLOWED = ("one read-only query is allowed: a SELECT (or WITH ... SELECT, VALUES, TABLE) over "
           "the catalog's tables")
_EXPLAIN = "EXPLAIN (FORMAT JSON) "


def check(text: Any, params: Any = None) -> list[Any]:
    """Refuse a query that is not text or params that are not a list, before connecting;
    returns the params as a list. The server checks the rest (:func:`run`)."""
    if not isinstance(text, str):
        raise ArgumentError(f"the query must be text, not {type(text).__name__}; {ALLOWED}")
    if "\x00" in text:
        raise ArgumentError("the query holds a NUL character, which PostgreSQL cannot take")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ArgumentError(f"the query is not valid text: a lone surrogate at position "
                            f"{exc.start}") from None
    if params is None:
        return []
    if isinstance(params, Mapping):
        raise ArgumentError("a PostgreSQL catalog binds $1, $2... from a list: pass the "
                            "params as a list (named $name params are the file catalog's)")
    if isinstance(params, str | bytes) or not isinstance(params, Sequence):
        raise ArgumentError(f"params must be a list (for $1, $2...), not "
                            f"{type(params).__name__}")
    return list(params)


def run(store: PgStore, text: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
    """The result of one read-only query on the catalog, as a DataFrame (see the module)."""
    import psycopg

    bound = check(text, params)
    limit = readonly_sql.time_limit()
    # a READ ONLY transaction, on a connection closed afterwards: the query may leave session
    # state (pg_advisory_lock) that the next operation must not inherit
    with store.connect(keep=False) as connection:
        connection.execute(f"SET LOCAL statement_timeout = {int(limit * 1000)}")
        cursor = psycopg.RawCursor(connection)  # $1, $2...; no client-side % formatting
        try:
            # Inside a savepoint always rolled back: the server refuses to turn read-only off
            # in one, and anything a function writes despite read-only is undone.
            with connection.transaction(force_rollback=True):
                _refuse_writes(cursor, text, bound)
                cursor.execute(text, bound, binary=True)  # extended protocol: one statement
                names = [column.name for column in cursor.description or ()]
                rows = cursor.fetchall() if cursor.description else []
        except psycopg.errors.QueryCanceled:
            raise SQLError(f"the query ran longer than {limit:g} s and was stopped; narrow it "
                           "(a WHERE, a LIMIT) or set TRACKER_SQL_TIMEOUT to allow more"
                           ) from None
        except psycopg.errors.InsufficientPrivilege as exc:
            # Writes meet read-only first (ReadOnlySqlTransaction): this is a read the role
            # has no right to, not a write.
            raise ProjectAccessError(
                f"the server refused this query: {_first_line(exc)}; query the tracker schema's "
                "tables, or ask the catalog's owner for access (tracker admin grant ROLE "
                "--project P)", path=store.shown) from None
        except (psycopg.errors.ReadOnlySqlTransaction,
                psycopg.errors.ActiveSqlTransaction) as exc:
            raise ReadOnlySQLError(f"{ALLOWED} ({_first_line(exc)})") from None
        except psycopg.OperationalError:
            raise  # the connection: PgStore's translation says what to do
        except psycopg.Error as exc:
            raise SQLError(_first_line(exc)) from None
    return _frame(names, rows)


def _refuse_writes(cursor: Any, text: str, bound: list[Any]) -> None:
    """Plan the query under EXPLAIN: ReadOnlySQLError for more than one statement, for one the
    planner does not take, and for a plan that changes a table."""
    import psycopg

    try:
        plan = cursor.execute(_EXPLAIN + text, bound, binary=True).fetchone()[0]
    except psycopg.errors.SyntaxError as exc:
        message = _first_line(exc)
        if "multiple commands" in message:
            raise ReadOnlySQLError(f"{ALLOWED}; got more than one statement") from None
        if exc.diag.statement_position == str(len(_EXPLAIN) + _first_word(text) + 1):
            raise ReadOnlySQLError(f"{ALLOWED}; got a statement that is not a query "
                                   f"({message})") from None
        raise
    modifying = sorted({node.get("Operation", "?") for node in _nodes(plan[0]["Plan"])
                        if node.get("Node Type") == "ModifyTable"})
    if modifying:
        raise ReadOnlySQLError(f"{ALLOWED}; the query would {' and '.join(modifying).lower()} "
                               "rows")


def _first_word(text: str) -> int:
    """The offset of the statement's first word (after blanks and comments)."""
    position = 0
    while position < len(text):
        if text[position].isspace():
            position += 1
        elif text.startswith("--", position):
            end = text.find("\n", position)
            position = len(text) if end < 0 else end + 1
        elif text.startswith("/*", position):
            end = text.find("*/", position)
            position = len(text) if end < 0 else end + 2
        else:
            break
    return position


def _nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", ()):
        yield from _nodes(child)


def _frame(names: list[str], rows: list[tuple[Any, ...]]) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame.from_records(rows, columns=names)


def _first_line(exc: BaseException) -> str:
    return first_line(str(exc), type(exc).__name__)[:300]
