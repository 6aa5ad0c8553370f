"""Which back end a catalog is, and one read connection to either with the SQL dialect it
speaks, for the reads that are the same statement on both (a run's notebook, a file's
versions, the lineage graph)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tracker.catalog import Catalog
    from tracker.sql_dialects import Dialect


def on_postgres(catalog: Catalog) -> bool:
    """Whether ``catalog`` is a PostgreSQL one."""
    from tracker.storage.pg_store import PgStore

    return isinstance(catalog.store, PgStore)


@contextlib.contextmanager
def read_connection(catalog: Catalog) -> Iterator[tuple[Any, Dialect]]:
    """A read connection to ``catalog`` and its dialect (:mod:`tracker.sql_dialects`): a
    PostgreSQL catalog's, or a file catalog's once this process's queued events are written."""
    from tracker.sql_dialects import DUCKDB, POSTGRES

    if on_postgres(catalog):
        flush_own(catalog)
        with catalog.store.connect() as con:
            yield con, POSTGRES
        return
    from tracker.queries import flush_for_read

    flush_for_read(catalog)
    with catalog.connect() as con:
        yield con, DUCKDB


def flush_own(catalog: Catalog) -> None:
    """Send this process's own events to a PostgreSQL catalog before a read (as a file
    catalog's reads flush first); when they cannot be sent now, the read goes on without them
    (they wait in the spool, and the read says whether the server is there)."""
    from tracker.errors import CatalogError
    from tracker.queries import READ_FLUSH_WAIT
    from tracker.recorder import flush_pending

    with contextlib.suppress(CatalogError):
        flush_pending(catalog.spool_dir, timeout=min(READ_FLUSH_WAIT, catalog.timeout))


def setting(catalog: Catalog) -> str:
    """What ``TRACKER_CATALOG`` holds for a child process to record into ``catalog``: its
    file, or its URL as given (a password in it included: for the child's environment only,
    never shown)."""
    store: Any = catalog.store
    return str(store.secret_url) if on_postgres(catalog) else str(catalog.path)


def shown(catalog: Catalog) -> str:
    """The catalog as errors name it: its file, or its URL with any password hidden."""
    store: Any = catalog.store  # a PgStore when on PostgreSQL
    return str(store.shown) if on_postgres(catalog) else str(catalog.path)
