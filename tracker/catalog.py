"""The catalog: where runs are stored, and the protocol every process follows to use it.

A catalog is one DuckDB file shared by every notebook kernel, CLI call and widget on the machine.
No process holds the file between operations (DuckDB's file lock would fail every other process
at once): each operation attaches it to an in-memory DuckDB (:mod:`tracker._duckdb`) and
detaches it after, and every attach goes through the sidecar lock of :mod:`tracker._lock`.
Writes never run on a cell's critical path: runs buffer their events and a background thread
flushes them here in batches (see :mod:`tracker.run`).

:class:`Catalog` is the public face: the module-level functions of ``tracker`` call the same
methods on the default catalog.
"""

from __future__ import annotations

import contextlib
import errno
import os
import random
import re
import shutil
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tracker import _duckdb, _files, _lock, arguments, schema
from tracker.errors import (
    CatalogError,
    CatalogFullError,
    CatalogLockedError,
    CatalogVersionError,
    NotACatalogError,
    TrackerError,
    first_line,
)

if TYPE_CHECKING:
    import pandas as pd

    from tracker.models import RunInfo
    from tracker.run import Run

DEFAULT_LOCK_TIMEOUT = 30.0
_DUCKDB_LOCK = re.compile(r"Could not set lock on file|Conflicting lock")
_PID = re.compile(r"\(PID (\d+)\)")
_DISK_FULL = re.compile(r"No space left on device", re.IGNORECASE)
_NO_ACCESS = re.compile(r"Permission denied|Read-only file system", re.IGNORECASE)
_NO_ACCESS_ERRNOS = (errno.EACCES, errno.EPERM, errno.EROFS)


def _set_version(connection: Any) -> None:
    connection.execute("DELETE FROM meta WHERE key = 'schema_version'")
    connection.execute("INSERT INTO meta VALUES ('schema_version', ?)",
                       [str(schema.SCHEMA_VERSION)])


def default_path() -> Path:
    """``$TRACKER_CATALOG``, else ``~/.tracker/catalog.duckdb``."""
    configured = os.environ.get("TRACKER_CATALOG")
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".tracker" / "catalog.duckdb"


def _lock_timeout() -> float:
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

    def __init__(self, path: str | os.PathLike[str] | None = None, *,
                 timeout: float | None = None) -> None:
        raw = arguments.path(path, "path") if path is not None else os.fspath(default_path())
        if "://" in raw:
            raise CatalogError(
                f"catalog {raw!r}: only DuckDB files are supported in this version "
                "(PostgreSQL catalogs are planned)", path=raw)
        self.path = Path(raw).expanduser().absolute()
        self.timeout = _lock_timeout() if timeout is None else arguments.seconds(timeout,
                                                                                 "timeout")
        self._ready = False
        self._vetted = False  # the files' types and owners are checked once per object
        self._recorder: Any = None  # tracker.run.Recorder, created by the first run
        self._last_recovery = 0.0

    def __repr__(self) -> str:
        return f"Catalog({str(self.path)!r})"

    @property
    def folder(self) -> Path:
        """The folder holding the catalog, its lock, spool and stored blobs."""
        return self.path.parent

    @property
    def spool_dir(self) -> Path:
        """Where runs append their events before they reach the catalog (see tracker.run)."""
        return self.folder / f"{self.path.name}.spool"

    @property
    def blob_dir(self) -> Path:
        """Where stored files (a run's saved notebook) live, by content hash."""
        return self.folder / f"{self.path.name}.blobs"

    # -- connections -------------------------------------------------------------------

    @contextlib.contextmanager
    def connect(self, *, write: bool = False, timeout: float | None = None,
                cancel: threading.Event | None = None) -> Iterator[Any]:
        """A DuckDB connection to the catalog under the sidecar lock; on exit the file is
        detached (checkpointed and closed), then unlocked.

        Most users never need this: it is for tracker's own modules and for tools that want
        raw access while playing by the catalog's locking rules. ``timeout`` bounds the whole
        operation (lock, DuckDB's own lock, a first check of the schema), not each wait.
        """
        self.vet()
        wait = _Wait(self._wait(timeout))
        with _translated(self.path):
            self.ensure_folder()
            if not self._ready and not write and not self.path.exists():
                self._prepare(wait)  # a read of a catalog nobody has written yet creates it
            with self._locked(write, wait, cancel) as connection:
                # The schema check rides on the first connection: a fresh kernel's first write
                # creates the catalog and writes its run in one open, not three.
                if self._ready or self._check(connection, write):
                    yield connection
                    return
            self._prepare(wait)  # migrate, refuse or explain, under an exclusive lock
            with self._locked(write, wait, cancel) as connection:
                yield connection

    def vet(self) -> None:
        """Refuse, before anything is opened or created, a catalog path that holds something
        other than a DuckDB file or that another user controls (see :mod:`tracker._files`).

        Every operation does this first (once per object); call it to check a path early.
        """
        if not self._vetted:
            _files.vet(self.path)
            self._vetted = True

    @contextlib.contextmanager
    def read_locked(self, *, timeout: float | None = None) -> Iterator[Path]:
        """Hold the shared sidecar lock on the ready catalog (created or migrated first, as by
        :meth:`connect`) and yield its path, for a reader that opens the file with a DuckDB of
        its own (:mod:`tracker.readonly_sql`); that reader must close the file inside the block.
        """
        self.vet()
        wait = _Wait(self._wait(timeout))
        with _translated(self.path):
            self.ensure_folder()
            if not self._ready:
                self._prepare(wait)
            with _lock.locked(str(self.path), write=False, timeout=wait.total,
                              deadline=wait.deadline):
                yield self.path

    @contextlib.contextmanager
    def _locked(self, write: bool, wait: _Wait,
                cancel: threading.Event | None) -> Iterator[Any]:
        with _lock.locked(str(self.path), write=write, timeout=wait.total,
                          deadline=wait.deadline, cancel=cancel), \
                self._attached(write=write, wait=wait) as connection:
            yield connection

    @contextlib.contextmanager
    def _attached(self, *, write: bool, wait: _Wait) -> Iterator[Any]:
        """The catalog file attached for one operation; the caller holds the sidecar lock.

        A new catalog is built in a draft file beside it and renamed into place once complete:
        DuckDB creates a file before it writes the header, and a process killed in between
        (nbval SIGKILLs kernels while their last write may run) would leave an empty file that
        no DuckDB can open, and that tracker must never overwrite.
        """
        draft = self.path.with_name(f"{self.path.name}.draft")
        creating = write and not self.path.exists()
        if creating:
            _remove_database(draft)  # a process killed while creating left it
        connection = self._open(draft if creating else self.path, write=write, wait=wait)
        try:
            yield connection
        finally:
            # Detached before the sidecar lock is released: DuckDB's own file lock must be
            # gone, and a write checkpointed, before the next process may open the file.
            _duckdb.detach(connection, str(self.path))
        if creating:
            self._publish(draft)

    def _publish(self, draft: Path) -> None:
        """Rename a complete, checkpointed draft to the catalog's path."""
        if _wal(draft).exists():  # detaching could not checkpoint: the draft is not whole
            raise CatalogError(f"catalog {self.path} could not be created: DuckDB did not "
                               "finish writing it", path=str(self.path))
        os.chmod(draft, 0o600)
        os.replace(draft, self.path)

    def _check(self, connection: Any, write: bool) -> bool:
        """Whether an open catalog is at this version; an empty one opened to write is built."""
        version = self._version_in(connection)
        if version is None and write:
            self._create(connection)
            # An empty DuckDB file someone made becomes private; a new catalog is still a
            # draft here, made private when it is published.
            if self.path.exists():
                os.chmod(self.path, 0o600)
            version = schema.SCHEMA_VERSION
        self._ready = version == schema.SCHEMA_VERSION
        return self._ready

    def ensure_folder(self) -> None:
        """Create the catalog's folder, private to the user (mode 0700), if missing."""
        if self.folder.exists():
            return
        try:
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise _folder_error(self.path, exc.strerror or str(exc)) from None
        os.chmod(self.folder, 0o700)
        # Another user may have made it between the first check (it was missing) and mkdir.
        _files.vet(self.path)

    def _open(self, file: Path, *, write: bool, wait: _Wait) -> Any:
        """Attach ``file``, waiting out another tool's DuckDB lock until the deadline; any
        other DuckDB error goes to :func:`_translated`."""
        import duckdb

        pause = 0.01
        while True:
            try:
                return _duckdb.attach(str(self.path), str(file), write=write)
            except duckdb.IOException as exc:
                text = str(exc)
                if not _DUCKDB_LOCK.search(text):
                    raise
                # Another tool (a DuckDB shell, say) holds the file outside our protocol.
                if time.monotonic() >= wait.deadline:
                    pid = _PID.search(text)
                    holder = _lock.describe_process(int(pid.group(1))) if pid else "another process"
                    raise CatalogLockedError(
                        f"catalog {self.path} is locked by {holder}; gave up after "
                        f"{wait.total:g} s", path=str(self.path), holder=holder) from None
                time.sleep(pause * (0.5 + random.random()))
                pause = min(pause * 2, 0.2)

    # -- schema ------------------------------------------------------------------------

    def _prepare(self, wait: _Wait) -> None:
        """Create, check or migrate the catalog once per Catalog object."""
        with _lock.locked(str(self.path), write=True, timeout=wait.total,
                          deadline=wait.deadline):
            fresh = not self.path.exists()
            version = None if fresh else self._stored_version(wait)
            if version is not None and version > schema.SCHEMA_VERSION:
                raise CatalogVersionError(
                    f"catalog {self.path} has schema version {version}, newer than this "
                    f"tracker reads (version {schema.SCHEMA_VERSION}); upgrade tracker "
                    f"(pip install -U tracker) to a release that reads schema {version}",
                    path=str(self.path), version=version)
            if version is not None and version < schema.SCHEMA_VERSION:
                backup = self.path.with_name(f"{self.path.name}.v{version}.bak")
                shutil.copy2(self.path, backup)
                os.chmod(backup, 0o600)
            if version != schema.SCHEMA_VERSION:
                self._build(version, wait)
        self._ready = True

    def _stored_version(self, wait: _Wait) -> int | None:
        with self._attached(write=False, wait=wait) as connection:
            return self._version_in(connection)

    def _version_in(self, connection: Any) -> int | None:
        """The schema version in the open file; None for an empty DuckDB database."""
        # duckdb_tables() rather than information_schema: ~10x cheaper on a fresh connection.
        tables = {row[0] for row in connection.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
            "UNION ALL SELECT view_name FROM duckdb_views() "
            "WHERE database_name = current_database() AND NOT internal").fetchall()}
        if not tables:
            return None
        if "meta" not in tables or "runs" not in tables:
            raise NotACatalogError(
                f"{self.path} is a DuckDB database but not a tracker catalog "
                f"(it has tables {sorted(tables)[:5]}); it was left untouched",
                path=str(self.path))
        row = connection.execute(
            "SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        version = str(row[0]) if row else ""
        if not (version.isascii() and version.isdigit()) or int(version) < 1:
            stored = repr(version) if row else "missing"
            raise NotACatalogError(
                f"catalog {self.path} has no valid schema version (meta.schema_version is "
                f"{stored}); it was left untouched. {_files.restore_advice(self.path)}",
                path=str(self.path))
        return int(version)

    def _build(self, version: int | None, wait: _Wait) -> None:
        with self._attached(write=True, wait=wait) as connection:
            if version is None:
                self._create(connection)
                return
            connection.execute("BEGIN")
            for _, migrate in schema.pending_migrations(version):
                migrate(connection)
            _set_version(connection)
            connection.execute("COMMIT")

    @staticmethod
    def _create(connection: Any) -> None:
        connection.execute("BEGIN")
        for statement in schema.create_statements():
            connection.execute(statement)
        _set_version(connection)
        connection.execute("COMMIT")

    # -- runs in this process ----------------------------------------------------------

    def _recorder_for_write(self) -> Any:
        from tracker.run import Recorder

        if self._recorder is None:
            self.vet()  # before the first event reaches a spool file beside the catalog
            self._recorder = Recorder(self)
        return self._recorder

    def start_run(self, name: str | None = None, *, project: str | None = None,
                  params: Mapping[str, Any] | None = None,
                  labels: Sequence[str] | None = None, notes: str | None = None,
                  parent: str | None = None) -> Run:
        """Start a run (or return the active one: see :func:`tracker.start_run`)."""
        return self._recorder_for_write().start_run(
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
        return self._recorder_for_write().active_or_autostart()

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

    def log_input(self, path: str | os.PathLike[str]) -> None:
        """Record a file or URI the active run read."""
        self._active().log_input(path)

    def log_output(self, path: str | os.PathLike[str]) -> None:
        """Record a file or URI the active run wrote."""
        self._active().log_output(path)

    def flush(self, *, timeout: float | None = None) -> None:
        """Write everything this process logged to the catalog now."""
        wait = self._wait(timeout)
        if self._recorder is not None:
            self._recorder.flush(timeout=wait)

    def _wait(self, timeout: float | None) -> float:
        """Seconds an operation may wait: ``timeout`` checked (and capped), else the catalog's."""
        return self.timeout if timeout is None else arguments.seconds(timeout, "timeout")

    # -- reading and managing runs (tracker.manage and tracker.search do the work) -----

    def get_run(self, ref: str) -> RunInfo:
        """The run ``ref`` names: an id, a unique prefix of 6+ characters, or its key."""
        from tracker import search

        return search.get_run(self, ref)

    def runs(self, where: str | None = None, *, order_by: str | Sequence[str] | None = None,
             limit: int | None = None, offset: int = 0, include_deleted: bool = False,
             deleted_only: bool = False, **equals: Any) -> pd.DataFrame:
        """Runs as a DataFrame, one row per run, ``params.*`` and ``metrics.*`` columns.

        ``where`` is the filter language (``"params.lr > 0.01 and status = 'completed'"``);
        ``equals`` adds equality tests (``status="failed"``). Newest first unless ``order_by``.
        ``frame.attrs["total"]`` is the number of runs matching, whatever ``limit`` cut.
        """
        from tracker import search

        return search.runs(self, where, order_by=order_by, limit=limit, offset=offset,
                           include_deleted=include_deleted, deleted_only=deleted_only, **equals)

    def count_runs(self, where: str | None = None, *, by: str | None = "status",
                   include_deleted: bool = False) -> pd.DataFrame:
        """Numbers of runs grouped ``by`` an attribute or ``params.x`` (None: one total)."""
        from tracker import search

        return search.count_runs(self, where, by=by, include_deleted=include_deleted)

    def keys(self) -> list[str]:
        """Every params and metrics column the runs table can have (``params.lr``,
        ``metrics.acc``...), params first, each sorted: for column pickers and autocompletion."""
        from tracker import search

        return search.keys(self)

    def metric_history(self, ref: str, key: str | None = None) -> pd.DataFrame:
        """Every recorded value of a run's metrics (or of one), in order: for plots."""
        from tracker import search

        return search.metric_history(self, ref, key)

    def artifacts(self, run: str | None = None, *, role: str | None = None,
                  include_deleted: bool = False) -> pd.DataFrame:
        """Files and URIs runs read (``role="input"``) and wrote (``"output"``), and the
        notebook stored with each, as last saved (``"notebook"``); None is every role.

        Deleted runs' records are left out unless ``include_deleted`` (or ``run`` names one);
        ``latest`` marks each path's newest version that a run outside the trash touched.
        """
        from tracker import search

        return search.artifacts(self, run, role=role, include_deleted=include_deleted)

    def lineage(self, ref: str, *, include_deleted: bool = False) -> pd.DataFrame:
        """The runs that produced what ``ref`` read, and the runs that read what it wrote;
        deleted runs only with ``include_deleted``."""
        from tracker import search

        return search.lineage(self, ref, include_deleted=include_deleted)

    def sql(self, query: str,
            params: Sequence[Any] | Mapping[str, Any] | None = None) -> pd.DataFrame:
        """Run one read-only query (a SELECT) on the catalog and return a DataFrame.

        ``params`` binds ``?`` (a list) or ``$name`` (a dict). Anything but a single read
        raises :class:`ReadOnlySQLError`; a query DuckDB rejects, :class:`SQLError`.
        """
        from tracker import search

        return search.sql(self, query, params)

    def update_run(self, ref: str, *, name: str | None = None,
                   labels: Sequence[str] | None = None, notes: str | None = None) -> RunInfo:
        """Rename a run, replace its labels or its notes."""
        from tracker import manage

        return manage.update_run(self, ref, name=name, labels=labels, notes=notes)

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
              ids: Sequence[str] | None = None) -> dict[str, int]:
        """Delete for good the soft-deleted runs (deleted longer ago than ``older_than``).

        Also removes stored blobs no run references. Never touches a user's own files.
        ``older_than`` is seconds or text such as ``"30d"``, ``"12h"``.
        """
        from tracker import manage

        return manage.purge(self, older_than, ids=ids)

    def export_run(self, ref: str, path: str | os.PathLike[str], *,
                   overwrite: bool = False) -> Path:
        """Write a self-contained YAML (``.yaml``/``.yml``) or JSON descriptor of a run.

        An existing file is replaced only with ``overwrite=True``; a catalog, its files and
        any DuckDB database never are. The file appears whole or not at all.
        """
        from tracker import exchange

        return exchange.export_run(self, ref, path, overwrite=overwrite)

    def import_run(self, path: str | os.PathLike[str]) -> str:
        """Read a descriptor written by :meth:`export_run` into this catalog; returns the id."""
        from tracker import exchange

        return exchange.import_run(self, path)


class _Wait:
    """One deadline for a whole operation, and the timeout it came from (for messages)."""

    __slots__ = ("deadline", "total")

    def __init__(self, total: float) -> None:
        self.total = total
        self.deadline = time.monotonic() + total


@contextlib.contextmanager
def _translated(path: Path) -> Iterator[None]:
    """The one place duckdb's and the OS's exceptions about the catalog become tracker's."""
    import duckdb

    try:
        yield
    except TrackerError:
        raise
    except duckdb.Error as exc:
        if isinstance(exc, duckdb.FatalException):
            _duckdb.discard(str(path))  # DuckDB says this instance can no longer be used
        error = _translation(path, exc)
        if error is None:
            raise
        raise error from exc
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise _disk_full(path, exc.strerror or str(exc)) from exc
        if exc.errno in _NO_ACCESS_ERRNOS:
            raise _folder_error(path, exc.strerror or str(exc)) from exc
        raise


def _translation(path: Path, exc: Exception) -> CatalogError | None:
    """The tracker error for a DuckDB error about the file; None for one about a query."""
    import duckdb

    text = str(exc)
    if _DISK_FULL.search(text):
        return _disk_full(path, text)
    if _NO_ACCESS.search(text):
        return _folder_error(path, text)
    # A SQL mistake has its own subclass (ParserException...); a damaged file raises these,
    # or the bare duckdb.Error ("Corrupt database file: ... checksum does not match").
    damaged = (duckdb.InternalException, duckdb.FatalException, duckdb.SerializationException)
    if (isinstance(exc, damaged) or type(exc) is duckdb.Error
            or (isinstance(exc, duckdb.IOException) and str(path) in text)):
        return NotACatalogError(
            f"catalog {path} cannot be read: it is damaged or not a tracker catalog "
            f"({_first_line(text)}); it was left untouched. {_files.restore_advice(path)}",
            path=str(path))
    if isinstance(exc, duckdb.IOException):  # about another file a query named
        return CatalogError(f"catalog {path}: {_first_line(text)}", path=str(path))
    return None


def _disk_full(path: Path, detail: str) -> CatalogFullError:
    return CatalogFullError(
        f"the disk holding the catalog {path} is full ({_first_line(detail)}); runs not yet "
        f"written are kept in {path.name}.spool/ beside it and reach the catalog at the next "
        "flush once space is freed", path=str(path))


def _folder_error(path: Path, detail: str) -> CatalogError:
    return CatalogError(
        f"cannot use the catalog {path}: its folder {path.parent} or its files cannot be "
        f"written ({_first_line(detail)}); fix their permissions or choose another catalog "
        "(TRACKER_CATALOG or --catalog)", path=str(path))


def _first_line(text: str) -> str:
    return first_line(text, "no detail")[:300]


def _wal(database: Path) -> Path:
    return database.with_name(f"{database.name}.wal")


def _remove_database(database: Path) -> None:
    database.unlink(missing_ok=True)
    _wal(database).unlink(missing_ok=True)
