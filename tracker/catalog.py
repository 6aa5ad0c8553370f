"""The public front of one catalog: where runs are stored, logged to and read from.

:class:`Catalog` is the public face: the module-level functions of ``tracker`` call the same
methods on the default catalog. It keeps no storage code of its own: the file, its lock, its
connections and schema are a :class:`tracker.storage.store.Store` (``catalog.store``); runs are
recorded by :mod:`tracker.run`; reads are :mod:`tracker.queries`, changes :mod:`tracker.manage`,
descriptors :mod:`tracker.exchange` (docs/design.md §1).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import inspect
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tracker import arguments
from tracker.errors import ArgumentError, CatalogError, NotACatalogError
from tracker.storage.store import Store

if TYPE_CHECKING:
    import pandas as pd

    from tracker.diffing import RunDiff
    from tracker.lineage_walk import LineageGraph
    from tracker.mlflow_import import MLflowImport
    from tracker.models import RunInfo
    from tracker.recorder import Recorder
    from tracker.reproduction import Reproduction
    from tracker.retrieval import KeptFile
    from tracker.run import Run
    from tracker.storage.contents import ContentStore
    from tracker.transfer import Pushed

DEFAULT_LOCK_TIMEOUT = 30.0


def default_path() -> Path:
    """``$TRACKER_CATALOG``, else ``~/.tracker/catalog.duckdb``."""
    configured = os.environ.get("TRACKER_CATALOG")
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".tracker" / "catalog.duckdb"


def lock_timeout() -> float:
    """``$TRACKER_LOCK_TIMEOUT`` seconds; unset, the default. A value that is not a number of
    seconds (``abc``, ``nan``, ``-5``) is a warning and the default, never a failing operation."""
    import warnings  # here, not at the top: only this function of the module warns

    from tracker.errors import TrackerWarning

    raw = os.environ.get("TRACKER_LOCK_TIMEOUT", "")
    if not raw.strip():
        return DEFAULT_LOCK_TIMEOUT
    try:
        return arguments.seconds(float(raw), "TRACKER_LOCK_TIMEOUT")
    except ValueError:  # float("abc"), and ArgumentError (a ValueError) for nan or -5
        warnings.warn(f"tracker: TRACKER_LOCK_TIMEOUT={raw[:40]!r} is not a number of seconds, "
                      f"0 or more; waiting {DEFAULT_LOCK_TIMEOUT:g} s for locks instead (fix "
                      "or unset it)", TrackerWarning, stacklevel=3)
        return DEFAULT_LOCK_TIMEOUT


class Catalog:
    """A catalog of runs in one DuckDB file.

    Parameters
    ----------
    path:
        The catalog file; ``None`` means :func:`default_path`. Created on first use, in a
        directory of mode 0700, as a file of mode 0600.
    timeout:
        Seconds to wait for another process's lock before :class:`CatalogLockedError`
        (default ``$TRACKER_LOCK_TIMEOUT`` or 30).

    Example::

        catalog = tracker.Catalog("runs.duckdb")
        with catalog.start_run(name="baseline", params={"lr": 0.01}) as run:
            run.log_metric("acc", 0.93)
        catalog.runs("metrics.acc > 0.9")
    """

    #: whether runs keep file contents and notebooks here (a PostgreSQL catalog does not yet)
    stores_contents = True

    def __new__(cls, path: str | os.PathLike[str] | None = None, *,
                timeout: float | None = None) -> Catalog:
        """A :class:`tracker.pg_catalog.PgCatalog` for a ``postgresql://`` URL (the argument or
        ``$TRACKER_CATALOG``, read as text: a path would fold its ``//``)."""
        from tracker.storage.pg_url import is_postgres_url

        raw = os.environ.get("TRACKER_CATALOG", "") if path is None else path
        if cls is Catalog and isinstance(raw, str) and is_postgres_url(raw):
            # Looked up when called: PgCatalog is a Catalog, importing it here would close a
            # circle (as for the widgets in show()).
            pg_type: type[Catalog] = importlib.import_module("tracker.pg_catalog").PgCatalog
            return super().__new__(pg_type)
        return super().__new__(cls)

    def __init__(self, path: str | os.PathLike[str] | None = None, *,
                 timeout: float | None = None) -> None:
        raw = arguments.path(path, "path") if path is not None else os.fspath(default_path())
        if "://" in raw:
            from tracker.storage.pg_url import redacted  # a password in it is never shown

            shown = redacted(raw)
            raise CatalogError(f"catalog {shown!r}: not a catalog file, nor a postgresql:// "
                               "URL (the only two kinds of catalog)", path=shown)
        #: the catalog file and the protocol to use it (the storage layer)
        self.store = Store(Path(raw).expanduser().absolute(),
                           lock_timeout() if timeout is None else
                           arguments.seconds(timeout, "timeout"))
        self._recorder: Recorder | None = None  # created by the first run

    def __repr__(self) -> str:
        return f"Catalog({str(self.path)!r})"

    @property
    def path(self) -> Path:
        """The catalog file (absolute)."""
        return self.store.path

    @property
    def timeout(self) -> float:
        """Seconds an operation waits for another process's lock by default."""
        return self.store.timeout

    @property
    def folder(self) -> Path:
        """The folder holding the catalog, its lock, spool and stored blobs."""
        return self.store.folder

    @property
    def spool_dir(self) -> Path:
        """Where runs append their events before they reach the catalog (see tracker.recorder)."""
        return self.store.spool_dir

    @property
    def blob_dir(self) -> Path:
        """Where stored files (a run's saved notebook) live, by content hash."""
        return self.store.blob_dir

    @functools.cached_property
    def content_store(self) -> ContentStore:
        """Where kept file contents live: ``$TRACKER_STORE`` (a folder or an ``s3://`` bucket)
        when set, else this catalog's blob folder."""
        from tracker.storage.stores import open_store

        return open_store(self.blob_dir)

    # -- the file (tracker.storage.store does the work) --------------------------------

    @contextlib.contextmanager
    def connect(self, *, write: bool = False, timeout: float | None = None,
                cancel: threading.Event | None = None) -> Iterator[Any]:
        """A DuckDB connection to the catalog under the sidecar lock; on exit the file is
        detached (checkpointed and closed), then unlocked.

        Most users never need this: it is for tracker's own modules and for tools that want
        raw access while playing by the catalog's locking rules. ``timeout`` bounds the whole
        operation (lock, DuckDB's own lock, a first check of the schema), not each wait.
        """
        with self.store.connect(write=write, timeout=timeout, cancel=cancel) as connection:
            yield connection

    def vet(self) -> None:
        """Refuse, before anything is opened or created, a catalog path that holds something
        other than a DuckDB file or that another user controls (see
        :mod:`tracker.storage.files`). Every operation does this first (again in full only if
        the folder was replaced); call it to check a path early."""
        self.store.vet()

    @contextlib.contextmanager
    def read_locked(self, *, timeout: float | None = None) -> Iterator[Path]:
        """Hold the shared sidecar lock on the ready catalog and yield its path, for a reader
        that opens the file with a DuckDB of its own (:mod:`tracker.readonly_sql`)."""
        with self.store.read_locked(timeout=timeout) as path:
            yield path

    def ensure_folder(self) -> None:
        """Create the catalog's folder, private to the user (mode 0700), if missing."""
        self.store.ensure_folder()

    # -- runs in this process ----------------------------------------------------------

    @property
    def recorder(self) -> Recorder | None:
        """This process's recorder of runs in this catalog (``tracker.recorder``); None until the
        first run. For tracker's own modules, which keep it in step with the catalog."""
        return self._recorder

    def recorder_for_write(self) -> Recorder:
        """This process's recorder of runs in this catalog, created by the first call."""
        if self._recorder is not None:  # every log call comes here: no import on this path
            return self._recorder
        from tracker.recorder import Recorder

        self.vet()  # before the first event reaches a spool file beside the catalog
        self._recorder = Recorder(self)
        return self._recorder

    def start_run(self, name: str | None = None, *, project: str | None = None,
                  params: Mapping[str, Any] | None = None,
                  labels: Sequence[str] | None = None, notes: str | None = None,
                  parent: str | None = None) -> Run:
        """Start a run (or return the active one: see :func:`tracker.start_run`)."""
        return self.recorder_for_write().start_run(
            name, project=project, params=params, labels=labels, notes=notes, parent=parent)

    def current_run(self) -> Run | None:
        """The active run of this process in this catalog, if any."""
        return self._recorder.current if self._recorder is not None else None

    def end_run(self, status: str = "completed") -> None:
        """End the active run with ``status`` (completed, failed or crashed)."""
        run = self.current_run()
        if run is not None:
            run.end(status)

    def _active(self) -> Run:
        # every log call comes here: the recorder's method only once there is none
        return (self._recorder or self.recorder_for_write()).active_or_autostart()

    def log_param(self, key: str, value: Any) -> None:
        """Set a param of the active run (a run is started if none is)."""
        self._active().log_param(key, value)

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Set several params of the active run."""
        self._active().log_params(params)

    def log_metric(self, key: str, value: float, step: int | None = None) -> None:
        """Record a metric value of the active run."""
        self._active().log_metric(key, value, step)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Record several metric values of the active run at one step."""
        self._active().log_metrics(metrics, step)

    def set_tag(self, key: str, value: Any, *, run: str | None = None) -> None:
        """Set a tag of the active run, or of the run ``run`` names (any run, at once): a
        mutable note (``source='manual'``) that setting again replaces, unlike a param."""
        self.set_tags({key: value}, run=run)

    def set_tags(self, tags: Mapping[str, Any], *, run: str | None = None) -> None:
        """Set several tags of the active run, or of the run ``run`` names."""
        if run is None:
            self._active().set_tags(tags)
            return
        from tracker import manage

        manage.set_tags(self, run, tags)

    def delete_tag(self, key: str, *, run: str | None = None) -> None:
        """Remove a tag of the active run, or of the run ``run`` names (none: nothing to do)."""
        if run is None:
            self._active().delete_tag(key)
            return
        from tracker import manage

        manage.set_tags(self, run, {}, removed=[key])

    def log_input(self, path: str | os.PathLike[str], *, keep: bool | None = None) -> None:
        """Record a file or URI the active run read; ``keep`` as for :meth:`log_output`."""
        self._active().log_input(path, keep=keep)

    def log_output(self, path: str | os.PathLike[str], *, keep: bool | None = None) -> None:
        """Record a file or URI the active run wrote; ``keep=True`` keeps a copy of its
        content whatever the policy, ``False`` never (None: the policy decides)."""
        self._active().log_output(path, keep=keep)

    def flush(self, *, timeout: float | None = None) -> None:
        """Write everything this process logged to the catalog now."""
        wait = self.store.wait(timeout)
        if self._recorder is not None:
            self._recorder.flush(timeout=wait)

    # -- reading and managing runs (tracker.manage and tracker.queries do the work) -----

    def get_run(self, ref: str) -> RunInfo:
        """The run ``ref`` names: an id, a unique prefix of 4+ characters of an id or of a short
        id (the 8 characters listings show), or its key."""
        from tracker import queries

        return queries.get_run(self, ref)

    def runs(self, where: str | None = None, *, order_by: str | Sequence[str] | None = None,
             limit: int | None = None, offset: int = 0, include_deleted: bool = False,
             deleted_only: bool = False, **equals: Any) -> pd.DataFrame:
        """Runs as a DataFrame, one row per run, ``params.*``, ``metrics.*`` and ``tags.*``
        columns. A filter naming a key no run has warns (TrackerWarning) with the closest keys.

        ``where`` is the filter language (``"params.lr > 0.01 and status = 'completed'"``);
        ``equals`` adds equality tests (``status="failed"``). Newest first unless ``order_by``.
        ``frame.attrs["total"]`` is the number of runs matching, whatever ``limit`` cut.
        """
        from tracker import queries

        return queries.runs(self, where, order_by=order_by, limit=limit, offset=offset,
                           include_deleted=include_deleted, deleted_only=deleted_only, **equals)

    def count_runs(self, where: str | None = None, *, by: str | None = "status",
                   include_deleted: bool = False) -> pd.DataFrame:
        """Numbers of runs grouped ``by`` an attribute or ``params.x`` (None: one total)."""
        from tracker import queries

        return queries.count_runs(self, where, by=by, include_deleted=include_deleted)

    def keys(self) -> list[str]:
        """Every params, metrics and tags column the runs table can have (``params.lr``,
        ``metrics.acc``, ``tags.source``...), params first, each sorted: for column pickers and
        autocompletion."""
        from tracker import queries

        return queries.keys(self)

    def metric_history(self, ref: str, key: str | None = None) -> pd.DataFrame:
        """Every recorded value of a run's metrics (or of one), in order: for plots."""
        from tracker import queries

        return queries.metric_history(self, ref, key)

    def artifacts(self, run: str | None = None, *, role: str | None = None,
                  include_deleted: bool = False) -> pd.DataFrame:
        """Files and URIs runs read (``role="input"``) and wrote (``"output"``), and the
        notebook stored with each, as last saved (``"notebook"``); None is every role. The
        ``via`` column says how each was seen (``tracker.models.VIAS``).

        Deleted runs' records are left out unless ``include_deleted`` (or ``run`` names one);
        ``latest`` marks each path's newest version that a run outside the trash touched.
        """
        from tracker import queries

        return queries.artifacts(self, run, role=role, include_deleted=include_deleted)

    def get_artifact(self, path_or_uri: str | os.PathLike[str], run: str | None = None,
                     version: int | None = None) -> KeptFile:
        """One recorded version of a file (the newest, the one ``run`` wrote or else read, or
        ``version``), to ``.restore(to=...)``, ``.open()`` or ``.read_dataframe()`` if it was
        kept. Raises :class:`tracker.ArtifactNotFoundError` (a LookupError) when no
        version matches or its content was not kept."""
        from tracker import retrieval

        return retrieval.get_artifact(self, path_or_uri, run=run, version=version)

    def lineage(self, ref: str, *, include_deleted: bool = False) -> pd.DataFrame:
        """The runs that produced what ``ref`` read, and the runs that read what it wrote;
        deleted runs only with ``include_deleted``."""
        from tracker import queries

        return queries.lineage(self, ref, include_deleted=include_deleted)

    def lineage_graph(self, ref: str, *, depth: int = 3,
                      include_deleted: bool = False) -> LineageGraph:
        """The runs and file versions upstream and downstream of ``ref``, ``depth`` runs each
        way, as a graph that draws itself (``.svg()``, ``.text()``; a picture in a notebook).
        A file read by many runs shows a few and "+N more"; deleted runs only with
        ``include_deleted``."""
        from tracker import lineage_walk

        return lineage_walk.lineage_graph(self, ref, depth=depth,
                                          include_deleted=include_deleted)
    def diff(self, a: str, b: str) -> RunDiff:
        """What differs between runs ``a`` and ``b``: params, the executed code (a unified
        diff), inputs and outputs (by content hash), environment and latest metrics."""
        from tracker import diffing

        return diffing.diff_runs(self, a, b)

    def reproduce(self, ref: str, *, tolerance: float = 0.0,
                  workdir: str | os.PathLike[str] | None = None,
                  timeout: float | None = None, ignore: str | Sequence[str] = ()
                  ) -> Reproduction:
        """Re-execute run ``ref``'s stored notebook with its recorded parameters and inputs in
        a scratch folder (``workdir``, default a new temporary one); the new run is tagged
        ``reproduces=<ref's id>``. The report's ``ok`` is True when every output is
        identical and every metric within ``tolerance``, leaving out those that match an
        ``ignore`` pattern (``"logs/*.log"``, ``"metrics.*_seconds"``; the notebook's
        ``metadata.tracker.reproduce.ignore`` adds its own). ``timeout``: seconds per cell."""
        from tracker import reproduction

        return reproduction.reproduce(self, ref, tolerance=tolerance, workdir=workdir,
                                      timeout=timeout, ignore=ignore)

    def sql(self, query: str,
            params: Sequence[Any] | Mapping[str, Any] | None = None) -> pd.DataFrame:
        """Run one read-only query (a SELECT) on the catalog and return a DataFrame.

        ``params`` binds ``?`` (a list) or ``$name`` (a dict). Anything but a single read
        raises :class:`ReadOnlySQLError`; a query DuckDB rejects, :class:`SQLError`.
        """
        from tracker import queries

        return queries.sql(self, query, params)

    def update_run(self, ref: str, *, name: str | None = None,
                   labels: Sequence[str] | None = None, notes: str | None = None) -> RunInfo:
        """Rename a run, replace its labels or its notes."""
        from tracker import manage

        return manage.update_run(self, ref, name=name, labels=labels, notes=notes)

    def set_status(self, ref: str, status: str, *, force: bool = False) -> RunInfo:
        """Set a run's status by hand, as ``tracker status REF STATUS`` does.

        The rules (``tracker.manage.TRANSITIONS``): a crashed run may be marked completed or
        failed, a completed one failed and a failed one completed; a finished run never goes
        back to running; a running run is not ended while its process is alive.
        ``force=True`` skips them. Each change is kept, with who made it and when, in
        ``RunInfo.status_history`` (the ``status_changes`` table).
        """
        from tracker import manage

        return manage.set_status(self, ref, status, force=force)

    def delete_run(self, ref: str) -> str:
        """Soft-delete one run (it can be restored until a purge); returns its id."""
        from tracker import manage

        return manage.delete_runs(self, ids=[ref])[0]

    def delete_runs(self, where: str | None = None, *, ids: Sequence[str] | None = None,
                    **equals: Any) -> list[str]:
        """Soft-delete the runs a filter matches (or the given ids); returns their ids."""
        from tracker import manage

        return manage.delete_runs(self, where, ids=ids, **equals)

    def restore_run(self, ref: str) -> str:
        """Undo the soft delete of a run; returns its id."""
        from tracker import manage

        return manage.restore_runs(self, [ref])[0]

    def restore_runs(self, refs: Sequence[str]) -> list[str]:
        """Undo the soft delete of several runs."""
        from tracker import manage

        return manage.restore_runs(self, refs)

    def purge(self, older_than: str | float | None = None, *,
              ids: Sequence[str] | None = None, store: bool = False) -> dict[str, int]:
        """Delete for good the soft-deleted runs (deleted longer ago than ``older_than``).

        Also removes stored blobs no run references. Never touches a user's own files.
        ``older_than`` is seconds or text such as ``"30d"``, ``"12h"``. In a shared store
        (``TRACKER_STORE``) it updates this catalog's reference marks; ``store=True`` also
        removes the contents no catalog marks, stored over 7 days ago
        (:mod:`tracker.shared_store`).
        """
        from tracker import manage

        return manage.purge(self, older_than, ids=ids, store=store)

    def show(self, where: str | None = None, **options: Any) -> Any:
        """Display the runs browser on this catalog (a ``tracker.widgets.RunTable`` given
        ``where`` and ``options``) and return it; drawn once, even as a cell's last line."""
        # Looked up when called: the widgets sit above the catalog and import it, so naming
        # them in an import here would close a circle (docs/design.md section 1).
        table_type = importlib.import_module("tracker.widgets").RunTable
        allowed = [name for name in inspect.signature(table_type).parameters
                   if name not in ("where", "catalog")]
        unknown = sorted(set(options) - set(allowed))
        if unknown:
            raise ArgumentError(f"show() has no option {', '.join(map(repr, unknown))}; its "
                                f"options are {', '.join(allowed)}")
        table = table_type(where, self, **options)
        table.display()
        return table

    def export_run(self, ref: str, path: str | os.PathLike[str], *,
                   overwrite: bool = False, contents: bool = False) -> Path:
        """Write a self-contained YAML (``.yaml``/``.yml``) or JSON descriptor of a run.

        An existing file is replaced only with ``overwrite=True``; a catalog, its files and
        any DuckDB database never are. The file appears whole or not at all. ``contents``
        also copies the run's kept contents into ``<path>.contents/``, which an import
        takes in after checking each one.
        """
        from tracker import exchange

        return exchange.export_run(self, ref, path, overwrite=overwrite, contents=contents)

    def import_run(self, path: str | os.PathLike[str]) -> str:
        """Read a descriptor written by :meth:`export_run` into this catalog; returns the id."""
        from tracker import exchange

        return exchange.import_run(self, path)

    def push(self, to: str | os.PathLike[str] | Catalog, *, where: str | None = None
             ) -> Pushed:
        """Copy this catalog's runs (those ``where`` matches; trash included) to another, a
        team's PostgreSQL catalog (``postgresql://...``) or a file, keeping their ids and names.
        Idempotent: a run the target holds is brought up to date, never duplicated, and
        nothing recorded there is removed. The report lists the runs copied, updated and
        already up to date."""
        from tracker import transfer

        target = to if isinstance(to, Catalog) else Catalog(to)
        return transfer.copy_runs(self, target, where)

    def pull(self, source: str | os.PathLike[str] | Catalog, *, where: str | None = None
             ) -> Pushed:
        """Copy another catalog's runs into this one: :meth:`push` the other way."""
        from tracker import transfer

        origin = source if isinstance(source, Catalog) else Catalog(source)
        if type(origin) is Catalog and not origin.path.exists():  # a misspelt file name
            raise NotACatalogError(f"there is no catalog at {origin.path} to pull from; check "
                                   "the path", path=str(origin.path))
        return transfer.copy_runs(origin, self, where)

    def import_mlflow(self, store: str | os.PathLike[str], *,
                      mlflow_python: str | os.PathLike[str] | None = None) -> MLflowImport:
        """Import an MLflow history (an ``mlruns`` folder, an MLflow SQLite file or a tracking
        server URL), read by MLflow's own client in ``mlflow_python`` (default: this Python).
        Importing the same store again adds nothing; the report lists the runs imported, and
        those skipped with the reason."""
        from tracker.mlflow_import import import_mlflow

        return import_mlflow(self, store, mlflow_python=mlflow_python)
