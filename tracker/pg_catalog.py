"""A catalog on a PostgreSQL server, behind the :class:`tracker.Catalog` front (issue #13).

``Catalog("postgresql://...")`` (or ``$TRACKER_CATALOG`` set to such a URL) is a
:class:`PgCatalog`. Its reads are :mod:`tracker.pg_queries` and :mod:`tracker.pg_readonly_sql`,
giving the file catalog's DataFrames; the trash is :mod:`tracker.pg_manage`. Everything else
(recording runs, other changes, exports, kept contents, widgets) is not ported yet and raises
:class:`tracker.errors.NotOnPostgresError`, a CatalogError: never a wrong result, never a file
created next to the notebook.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from tracker import arguments
from tracker.catalog import Catalog, lock_timeout
from tracker.errors import ArgumentError, NotOnPostgresError
from tracker.storage.pg_store import PgStore

if TYPE_CHECKING:
    import pandas as pd

    from tracker.models import RunInfo
    from tracker.recorder import Recorder
    from tracker.run import Run

# What a PostgreSQL catalog offers today; every other public name of Catalog refuses.
PORTED = frozenset({"timeout", "flush", "current_run", "get_run", "runs", "count_runs", "keys",
                    "metric_history", "artifacts", "lineage", "sql", "store", "recorder",
                    "delete_run", "delete_runs", "restore_run", "restore_runs",
                    # reads built on the ones above, and the runs browser (issue #13)
                    "path", "diff", "show"})

# Internal names a user meets through other doors, said as what the user was doing.
_SAID = {"recorder_for_write": "recording runs (a notebook's run, start_run)"}


class PgCatalog(Catalog):
    """The PostgreSQL catalog at ``url`` (a libpq URL, shown only without its password)."""

    def __init__(self, path: str | os.PathLike[str] | None = None, *,
                 timeout: float | None = None) -> None:
        url = os.fspath(path) if path is not None else os.environ.get("TRACKER_CATALOG", "")
        #: the server's connections and schema (tracker.storage.pg_store)
        self.store: Any = PgStore(url, lock_timeout() if timeout is None else
                                  arguments.seconds(timeout, "timeout"))

    def __repr__(self) -> str:
        return f"Catalog({self._pg.shown!r})"

    @property
    def path(self) -> str:  # type: ignore[override]  # a URL, not a file
        """The catalog's URL as it may be shown (any password in it hidden): what tells two
        catalogs apart, as a file catalog's path does."""
        return self._pg.shown

    @property
    def timeout(self) -> float:
        """Seconds an operation waits to connect by default."""
        return float(self.store.timeout)

    @property
    def recorder(self) -> Recorder | None:
        """No run is recorded into a PostgreSQL catalog yet: no recorder."""
        return None

    def current_run(self) -> Run | None:
        """No run is recorded into a PostgreSQL catalog yet: always None."""
        return None

    def flush(self, *, timeout: float | None = None) -> None:
        """Nothing is buffered for a PostgreSQL catalog: reads see every write at once."""
        self.store.wait(timeout)

    def get_run(self, ref: str) -> RunInfo:
        """See :meth:`tracker.Catalog.get_run`."""
        from tracker import pg_queries

        return pg_queries.get_run(self._pg, ref)

    def runs(self, where: str | None = None, *, order_by: str | Sequence[str] | None = None,
             limit: int | None = None, offset: int = 0, include_deleted: bool = False,
             deleted_only: bool = False, **equals: Any) -> pd.DataFrame:
        """See :meth:`tracker.Catalog.runs`."""
        from tracker import pg_queries

        if deleted_only:
            _refuse("runs(deleted_only=True)", self._pg.shown)
        return pg_queries.runs(self._pg, where, order_by=order_by, limit=limit, offset=offset,
                               include_deleted=include_deleted, **equals)

    def count_runs(self, where: str | None = None, *, by: str | None = "status",
                   include_deleted: bool = False) -> pd.DataFrame:
        """See :meth:`tracker.Catalog.count_runs`."""
        from tracker import pg_queries

        return pg_queries.count_runs(self._pg, where, by=by, include_deleted=include_deleted)

    def keys(self) -> list[str]:
        """See :meth:`tracker.Catalog.keys`."""
        from tracker import pg_queries

        return pg_queries.keys(self._pg)

    def metric_history(self, ref: str, key: str | None = None) -> pd.DataFrame:
        """See :meth:`tracker.Catalog.metric_history`."""
        from tracker import pg_queries

        return pg_queries.metric_history(self._pg, ref, key)

    def artifacts(self, run: str | None = None, *, role: str | None = None,
                  include_deleted: bool = False) -> pd.DataFrame:
        """See :meth:`tracker.Catalog.artifacts`."""
        from tracker import pg_queries

        return pg_queries.artifacts(self._pg, run, role=role, include_deleted=include_deleted)

    def lineage(self, ref: str, *, include_deleted: bool = False) -> pd.DataFrame:
        """See :meth:`tracker.Catalog.lineage`."""
        from tracker import pg_queries

        return pg_queries.lineage(self._pg, ref, include_deleted=include_deleted)

    def sql(self, query: str,
            params: Sequence[Any] | Mapping[str, Any] | None = None) -> pd.DataFrame:
        """See :meth:`tracker.Catalog.sql`; ``params`` binds ``$1``... from a list."""
        from tracker import pg_readonly_sql

        return pg_readonly_sql.run(self._pg, query, params)  # type: ignore[arg-type]

    def delete_run(self, ref: str) -> str:
        """See :meth:`tracker.Catalog.delete_run`."""
        return self.delete_runs(ids=[ref])[0]

    def delete_runs(self, where: str | None = None, *, ids: Sequence[str] | None = None,
                    **equals: Any) -> list[str]:
        """See :meth:`tracker.Catalog.delete_runs`; a filter is read first, then its runs are
        deleted (a run starting in between is not)."""
        from tracker import pg_manage

        if ids is None:
            if where is None and not equals:
                raise ArgumentError("delete_runs needs a filter, ids or equality tests; to "
                                    "delete every run say so: delete_runs('id IS NOT NULL')")
            ids = list(self.runs(where, **equals)["id"])
        return pg_manage.delete_runs(self._pg, ids)

    def restore_run(self, ref: str) -> str:
        """See :meth:`tracker.Catalog.restore_run`."""
        return self.restore_runs([ref])[0]

    def restore_runs(self, refs: Sequence[str]) -> list[str]:
        """See :meth:`tracker.Catalog.restore_runs`."""
        from tracker import pg_manage

        return pg_manage.restore_runs(self._pg, refs)

    @property
    def _pg(self) -> PgStore:
        """The store, typed as what it is here."""
        store: Any = self.store
        return store  # type: ignore[no-any-return]


def _refuse(name: str, shown: str) -> None:
    """Raise the error of an operation not ported to PostgreSQL catalogs yet."""
    raise NotOnPostgresError(
        f"{name} is not yet supported on PostgreSQL catalogs: only reads (runs, count_runs, "
        "get_run, metric_history, keys, artifacts, lineage, sql) and moving runs to the trash "
        "and back are; use a catalog file for the rest", path=shown)


def _refusing(name: str, attribute: Any) -> Any:
    """A stand-in for Catalog's ``name`` that refuses, as a property if it was one."""
    def refused(self: PgCatalog, *args: Any, **kwargs: Any) -> Any:
        _refuse(_SAID.get(name, f"Catalog.{name}"), self._pg.shown)

    refused.__doc__ = f"Not yet supported on PostgreSQL catalogs (see Catalog.{name})."
    return property(refused) if isinstance(attribute, property | cached_property) else refused


for _name, _attribute in vars(Catalog).items():
    if not _name.startswith("_") and _name not in PORTED:
        setattr(PgCatalog, _name, _refusing(_name, _attribute))
