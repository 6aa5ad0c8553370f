"""A catalog on a PostgreSQL server, behind the :class:`tracker.Catalog` front (issue #13).

``Catalog("postgresql://...")`` (or ``$TRACKER_CATALOG`` set to such a URL) is a
:class:`PgCatalog`. Its reads are :mod:`tracker.pg_queries` and :mod:`tracker.pg_readonly_sql`,
giving the file catalog's DataFrames; the trash is :mod:`tracker.pg_manage`. Runs are recorded
as into a file catalog, by a recorder whose spool is a private local folder and whose writes go
through :mod:`tracker.storage.pg_recovery` (offline, they wait there: :meth:`PgCatalog.sync`).
Everything else (other changes, exports, kept contents, widgets) is not ported yet and raises
:class:`tracker.errors.NotOnPostgresError`, a CatalogError: never a wrong result, never a file
created next to the notebook.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from tracker import arguments
from tracker.catalog import Catalog, lock_timeout
from tracker.errors import ArgumentError, CatalogError, NotOnPostgresError
from tracker.storage.pg_store import PgStore

if TYPE_CHECKING:
    import pandas as pd

    from tracker.models import RunInfo
    from tracker.recorder import Recorder

# What a PostgreSQL catalog offers today; every other public name of Catalog refuses.
PORTED = frozenset({"timeout", "flush", "current_run", "get_run", "runs", "count_runs", "keys",
                    "metric_history", "artifacts", "lineage", "sql", "store", "recorder",
                    "delete_run", "delete_runs", "restore_run", "restore_runs",
                    # recording (the run=... form of the tag calls is refused below)
                    "recorder_for_write", "start_run", "end_run", "log_param", "log_params",
                    "log_metric", "log_metrics", "log_input", "log_output", "set_tag",
                    "set_tags", "delete_tag", "spool_dir", "ensure_folder", "vet", "folder",
                    "stores_contents"})

# Internal names a user meets through other doors, said as what the user was doing.
_SAID = {"recorder_for_write": "recording runs (a notebook's run, start_run)"}


class PgCatalog(Catalog):
    """The PostgreSQL catalog at ``url`` (a libpq URL, shown only without its password)."""

    stores_contents = False  # no shared content store yet: files are recorded, not kept

    def __init__(self, path: str | os.PathLike[str] | None = None, *,
                 timeout: float | None = None) -> None:
        url = os.fspath(path) if path is not None else os.environ.get("TRACKER_CATALOG", "")
        #: the server's connections and schema (tracker.storage.pg_store)
        self.store: Any = PgStore(url, lock_timeout() if timeout is None else
                                  arguments.seconds(timeout, "timeout"))
        self._recorder: Recorder | None = None  # created by the first run

    def __repr__(self) -> str:
        return f"Catalog({self._pg.shown!r})"

    @property
    def timeout(self) -> float:
        """Seconds an operation waits to connect by default."""
        return float(self.store.timeout)

    def set_tags(self, tags: Mapping[str, Any], *, run: str | None = None) -> None:
        """Set tags of the active run (see :meth:`tracker.Catalog.set_tags`); another run's
        tags are not ported yet."""
        if run is not None:
            _refuse("set_tags(run=...)", self._pg.shown)
        super().set_tags(tags)

    def delete_tag(self, key: str, *, run: str | None = None) -> None:
        """Remove a tag of the active run (see :meth:`tracker.Catalog.delete_tag`)."""
        if run is not None:
            _refuse("delete_tag(run=...)", self._pg.shown)
        super().delete_tag(key)

    def sync(self, *, timeout: float | None = None) -> int:
        """See :meth:`tracker.Catalog.sync`: this process's events, then those this machine's
        dead processes left, sent to the server; their runs that never ended are crashed."""
        from tracker import delivery
        from tracker.recorder import local_to
        from tracker.storage import pg_recovery

        self.flush(timeout=timeout)
        delivery.sync(self, local=local_to(self.spool_dir), timeout=timeout)
        return pg_recovery.waiting(self._pg)

    def get_run(self, ref: str) -> RunInfo:
        """See :meth:`tracker.Catalog.get_run`."""
        from tracker import pg_queries

        return pg_queries.get_run(self._sent(), ref)

    def runs(self, where: str | None = None, *, order_by: str | Sequence[str] | None = None,
             limit: int | None = None, offset: int = 0, include_deleted: bool = False,
             deleted_only: bool = False, **equals: Any) -> pd.DataFrame:
        """See :meth:`tracker.Catalog.runs`."""
        from tracker import pg_queries

        if deleted_only:
            _refuse("runs(deleted_only=True)", self._pg.shown)
        return pg_queries.runs(self._sent(), where, order_by=order_by, limit=limit, offset=offset,
                               include_deleted=include_deleted, **equals)

    def count_runs(self, where: str | None = None, *, by: str | None = "status",
                   include_deleted: bool = False) -> pd.DataFrame:
        """See :meth:`tracker.Catalog.count_runs`."""
        from tracker import pg_queries

        return pg_queries.count_runs(self._sent(), where, by=by, include_deleted=include_deleted)

    def keys(self) -> list[str]:
        """See :meth:`tracker.Catalog.keys`."""
        from tracker import pg_queries

        return pg_queries.keys(self._sent())

    def metric_history(self, ref: str, key: str | None = None) -> pd.DataFrame:
        """See :meth:`tracker.Catalog.metric_history`."""
        from tracker import pg_queries

        return pg_queries.metric_history(self._sent(), ref, key)

    def artifacts(self, run: str | None = None, *, role: str | None = None,
                  include_deleted: bool = False) -> pd.DataFrame:
        """See :meth:`tracker.Catalog.artifacts`."""
        from tracker import pg_queries

        return pg_queries.artifacts(self._sent(), run, role=role, include_deleted=include_deleted)

    def lineage(self, ref: str, *, include_deleted: bool = False) -> pd.DataFrame:
        """See :meth:`tracker.Catalog.lineage`."""
        from tracker import pg_queries

        return pg_queries.lineage(self._sent(), ref, include_deleted=include_deleted)

    def sql(self, query: str,
            params: Sequence[Any] | Mapping[str, Any] | None = None) -> pd.DataFrame:
        """See :meth:`tracker.Catalog.sql`; ``params`` binds ``$1``... from a list."""
        from tracker import pg_readonly_sql

        return pg_readonly_sql.run(self._sent(), query, params)  # type: ignore[arg-type]

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

    def _sent(self) -> PgStore:
        """The store, once this process's own events are on the server (as a file catalog's
        reads flush first); when they cannot be sent now, the read goes on without them (they
        wait in the spool, and the read says whether the server is there)."""
        from tracker.queries import READ_FLUSH_WAIT
        from tracker.recorder import flush_pending

        with contextlib.suppress(CatalogError):
            flush_pending(self.spool_dir, timeout=min(READ_FLUSH_WAIT, self.timeout))
        return self._pg

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
