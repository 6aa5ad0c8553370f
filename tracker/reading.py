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
        with catalog.store.connect() as con:
            yield con, POSTGRES
        return
    from tracker.queries import flush_for_read

    flush_for_read(catalog)
    with catalog.connect() as con:
        yield con, DUCKDB


def shown(catalog: Catalog) -> str:
    """The catalog as errors name it: its file, or its URL with any password hidden."""
    store: Any = catalog.store  # a PgStore when on PostgreSQL
    return str(store.shown) if on_postgres(catalog) else str(catalog.path)
