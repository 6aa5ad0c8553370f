"""A catalog on a PostgreSQL server, behind the :class:`tracker.Catalog` front (issue #13).

``Catalog("postgresql://...")`` (or ``$TRACKER_CATALOG`` set to such a URL) is a
:class:`PgCatalog`. Its reads are :mod:`tracker.pg_queries` and :mod:`tracker.pg_readonly_sql`,
giving the file catalog's DataFrames; changes of stored runs (edits, statuses, tags, the
trash, purge) are :mod:`tracker.pg_manage`; a run's notebook, a kept file's versions and the
lineage graph are the file catalog's statements in PostgreSQL's spelling
(:mod:`tracker.reading`); export and import are :mod:`tracker.pg_exchange` (push/pull,
:mod:`tracker.transfer`, work on either back end), and so are MLflow imports and
reproductions. Runs are recorded as into a file catalog, by a recorder whose spool is a private
local folder and whose writes go through :mod:`tracker.storage.pg_recovery` (offline, they wait
there: :meth:`PgCatalog.sync`). Kept file contents live in the shared store ``TRACKER_STORE``
names (a folder every machine sees, or a bucket): without one, files are recorded ``not kept``
(a private store would hold contents no other machine could get back). What is left (raw
DuckDB connections) raises :class:`tracker.errors.NotOnPostgresError`, a CatalogError: never a
wrong result, never a file created next to the notebook.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tracker import arguments
from tracker.catalog import Catalog, lock_timeout
from tracker.errors import ArgumentError, CatalogError, NotOnPostgresError
from tracker.storage.pg_store import PgStore

if TYPE_CHECKING:
    import pandas as pd

    from tracker.models import RunInfo
    from tracker.recorder import Recorder
    from tracker.storage.contents import ContentStore

# What a PostgreSQL catalog offers today; every other public name of Catalog refuses.
PORTED = frozenset({"timeout", "flush", "current_run", "get_run", "runs", "count_runs", "keys",
                    "metric_history", "artifacts", "lineage", "sql", "store", "recorder",
                    "delete_run", "delete_runs", "restore_run", "restore_runs",
                    "update_run", "set_status", "set_tag", "set_tags", "delete_tag", "purge",
                    "diff", "lineage_graph", "get_artifact", "content_store",
                    "export_run", "import_run", "push", "pull", "import_mlflow",
                    "reproduce", "blob_dir",
                    # recording
                    "recorder_for_write", "start_run", "end_run", "log_param", "log_params",
                    "log_metric", "log_metrics", "log_input", "log_output", "spool_dir",
                    "ensure_folder", "vet", "folder", "stores_contents",
                    # the runs browser
                    "path", "show"})


class PgCatalog(Catalog):
    """The PostgreSQL catalog at ``url`` (a libpq URL, shown only without its password)."""

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
    def path(self) -> str:  # type: ignore[override]  # a URL, not a file
        """The catalog's URL as it may be shown (any password in it hidden): what tells two
        catalogs apart, as a file catalog's path does."""
        return self._pg.shown

    @property
    def timeout(self) -> float:
        """Seconds an operation waits to connect by default."""
        return float(self.store.timeout)

    @property
    def stores_contents(self) -> bool:  # type: ignore[override]  # read from the setting
        """Whether runs keep file contents: only into a shared store (``$TRACKER_STORE``),
        which every machine reading the server reaches."""
        from tracker.storage.stores import STORE_VARIABLE

        return bool(os.environ.get(STORE_VARIABLE, "").strip())

    @property
    def blob_dir(self) -> Path:
        """This machine's private folder where contents wait, verified, for the shared store
        (the stored notebooks live in the server's ``blobs`` table)."""
        return self._pg.folder / "blobs"

    @cached_property
    def content_store(self) -> ContentStore:
        """Where kept contents live: ``$TRACKER_STORE`` (a folder every machine sees, or an
        ``s3://`` bucket); a PostgreSQL catalog has no folder of its own to keep them in."""
        from tracker.storage.stores import STORE_VARIABLE, open_store

        setting = os.environ.get(STORE_VARIABLE, "").strip()
        if not setting:
            raise CatalogError(
                f"kept contents of the PostgreSQL catalog {self._pg.shown} live in a shared "
                f"store: set {STORE_VARIABLE} to a folder every machine sees or to "
                "s3://bucket/prefix", path=self._pg.shown)
        return open_store(Path(setting), setting)

    def sync(self, *, timeout: float | None = None) -> int:
        """Send this process's events, then those this machine's dead processes left, to the
        server (their runs that never ended are crashed); return how many runs still wait
        (``tracker sync``; a file catalog has nothing to sync)."""
        from tracker import delivery
        from tracker.recorder import local_to

        self.flush(timeout=timeout)
        delivery.sync(self, local=local_to(self.spool_dir), timeout=timeout)
        return self.waiting_runs()

    def waiting_runs(self) -> int:
        """How many runs recorded on this machine the server has not received yet: they wait
        in the local spool until the next write or :meth:`sync` sends them (the runs browser
        and ``tracker runs`` say so)."""
        from tracker.storage import pg_recovery

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

        return pg_queries.runs(self._sent(), where, order_by=order_by, limit=limit,
                               offset=offset, include_deleted=include_deleted,
                               deleted_only=deleted_only, **equals)

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
        """See :meth:`tracker.Catalog.delete_runs`; a filter picks its runs and deletes them in
        one transaction."""
        from tracker import pg_manage

        if ids is not None:
            return pg_manage.delete_runs(self._sent(), ids)
        if where is None and not equals:
            raise ArgumentError("delete_runs needs a filter, ids or equality tests; to "
                                "delete every run say so: delete_runs('id IS NOT NULL')")
        return pg_manage.delete_matching(self._sent(), where, equals)

    def update_run(self, ref: str, *, name: str | None = None,
                   labels: Sequence[str] | None = None, notes: str | None = None) -> RunInfo:
        """See :meth:`tracker.Catalog.update_run`."""
        from tracker import manage, pg_manage

        changes = manage.edits(self, name=name, labels=labels, notes=notes)
        run_id = pg_manage.update_run(self._sent(), ref, changes)
        manage.sync_active(self, run_id, changes)
        return self.get_run(run_id)

    def set_status(self, ref: str, status: str, *, force: bool = False) -> RunInfo:
        """See :meth:`tracker.Catalog.set_status`."""
        from tracker import manage, pg_manage

        manage.check_status(status, force)
        recorder = self.recorder
        own = {run.id for run in recorder.stack} if recorder is not None else set()
        return self.get_run(pg_manage.set_status(self._sent(), ref, status, force=force, own=own))

    def set_tags(self, tags: Mapping[str, Any], *, run: str | None = None) -> None:
        """See :meth:`tracker.Catalog.set_tags`: the active run's through its recorder, a
        stored run's in one transaction."""
        if run is None:
            super().set_tags(tags)
            return
        self._tag(run, tags, ())

    def delete_tag(self, key: str, *, run: str | None = None) -> None:
        """See :meth:`tracker.Catalog.delete_tag`."""
        if run is None:
            super().delete_tag(key)
            return
        self._tag(run, {}, [key])

    def _tag(self, run: str, tags: Mapping[str, Any], removed: Sequence[str]) -> None:
        import time

        from tracker import manage, pg_manage

        rows = manage.tag_rows(self, tags, removed)
        pg_manage.set_tags(self._sent(), run, rows, time.time())

    def purge(self, older_than: str | float | None = None, *,
              ids: Sequence[str] | None = None, store: bool = False) -> dict[str, int]:
        """See :meth:`tracker.Catalog.purge`: the runs, the stored notebooks no run references
        (the ``blobs`` table), and this catalog's marks in ``TRACKER_STORE``."""
        from tracker import manage, pg_manage

        age = manage.parse_age(older_than) if older_than is not None else 0.0
        refs = arguments.texts(ids, "ids", "['01m7zwkkx6hq']")
        removed = pg_manage.purge(self._sent(), age, refs)
        # After the commit, as the file catalog does: a run committing a reference meanwhile
        # made its mark just now, and a mark younger than shared_store.SETTLE stays.
        kept = pg_manage.referenced_blobs(self._pg)
        return {**removed, "shared": manage.reclaim_shared(self, kept, remove=store)}

    def restore_run(self, ref: str) -> str:
        """See :meth:`tracker.Catalog.restore_run`."""
        return self.restore_runs([ref])[0]

    def restore_runs(self, refs: Sequence[str]) -> list[str]:
        """See :meth:`tracker.Catalog.restore_runs`."""
        from tracker import pg_manage

        return pg_manage.restore_runs(self._sent(), refs)

    def export_run(self, ref: str, path: str | os.PathLike[str], *,
                   overwrite: bool = False, contents: bool = False) -> Path:
        """See :meth:`tracker.Catalog.export_run`; the same descriptor as a file catalog's."""
        from tracker import pg_exchange

        return pg_exchange.export_run(self, ref, path, overwrite=overwrite, contents=contents)

    def import_run(self, path: str | os.PathLike[str]) -> str:
        """See :meth:`tracker.Catalog.import_run`."""
        from tracker import pg_exchange

        return pg_exchange.import_run(self, path)

    def _sent(self) -> PgStore:
        """The store, once this process's own events are on the server (as a file catalog's
        reads and changes flush first: a change finds the runs this process just ended); when
        they cannot be sent now, the read goes on without them (they wait in the spool, and
        the read says whether the server is there)."""
        from tracker import reading

        reading.flush_own(self)
        return self._pg

    @property
    def _pg(self) -> PgStore:
        """The store, typed as what it is here."""
        store: Any = self.store
        return store  # type: ignore[no-any-return]


def _refuse(name: str, shown: str) -> None:
    """Raise the error of an operation not ported to PostgreSQL catalogs yet."""
    raise NotOnPostgresError(
        f"{name} is not yet supported on PostgreSQL catalogs: recording, reads, changing "
        "stored runs, kept contents, export/import, push/pull, import-mlflow, reproduce and "
        "the runs browser are; use a catalog file for the rest", path=shown)


def _refusing(name: str, attribute: Any) -> Any:
    """A stand-in for Catalog's ``name`` that refuses, as a property if it was one."""
    def refused(self: PgCatalog, *args: Any, **kwargs: Any) -> Any:
        _refuse(f"Catalog.{name}", self._pg.shown)

    refused.__doc__ = f"Not yet supported on PostgreSQL catalogs (see Catalog.{name})."
    return property(refused) if isinstance(attribute, property | cached_property) else refused


for _name, _attribute in vars(Catalog).items():
    if not _name.startswith("_") and _name not in PORTED:
        setattr(PgCatalog, _name, _refusing(_name, _attribute))
