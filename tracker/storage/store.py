"""One catalog file and the protocol every process follows to use it.

A catalog is one DuckDB file shared by every notebook kernel, CLI call and widget on the machine.
No process holds the file between operations (DuckDB's file lock would fail every other process
at once): each operation attaches it to an in-memory DuckDB (:mod:`tracker.storage.instances`)
and detaches it after, and every attach goes through the sidecar lock of
:mod:`tracker.storage.lock` (docs/design.md §2). A new catalog is built as a draft and published
by a rename; an older one is migrated (:mod:`tracker.storage.schema`) once per :class:`Store`.

:class:`Store` is what the layers above use to reach the file; ``tracker.Catalog`` is the public
front over one.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import random
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from tracker import arguments
from tracker.errors import (
    CatalogError,
    CatalogFullError,
    CatalogLockedError,
    CatalogVersionError,
    NotACatalogError,
    TrackerError,
    first_line,
)
from tracker.storage import files as _files
from tracker.storage import held as _held
from tracker.storage import instances as _duckdb
from tracker.storage import lock as _lock
from tracker.storage import schema
from tracker.storage.known_keys import KnownKeys

_DUCKDB_LOCK = re.compile(r"Could not set lock on file|Conflicting lock")
_PID = re.compile(r"\(PID (\d+)\)")
_DISK_FULL = re.compile(r"No space left on device", re.IGNORECASE)
_NO_ACCESS = re.compile(r"Permission denied|Read-only file system", re.IGNORECASE)
_NO_ACCESS_ERRNOS = (errno.EACCES, errno.EPERM, errno.EROFS)


def _set_version(connection: Any) -> None:
    connection.execute("DELETE FROM meta WHERE key = 'schema_version'")
    connection.execute("INSERT INTO meta VALUES ('schema_version', ?)",
                       [str(schema.SCHEMA_VERSION)])


class Store:
    """The catalog file at ``path``: its folder and side files, its connections under the
    sidecar lock, its schema. ``timeout`` is how long an operation waits for another process's
    lock by default."""

    def __init__(self, path: Path, timeout: float) -> None:
        self.path = path
        self.timeout = timeout
        self._ready = False
        # The folder (device, inode) whose files' types and owners were last checked: checked
        # again only when it is another folder (swapped by whoever may write its parent).
        self._vetted: tuple[int, int] | None = None
        #: time.monotonic() of this object's last look for dead runs (tracker.storage.recovery)
        self.last_recovery = 0.0
        #: the keys a write need not look up (checked against the file at each write's attach)
        self.keys = KnownKeys()
        self._held: _held.Held | None = None  # the attachment kept after the last plain write

    @property
    def folder(self) -> Path:
        """The folder holding the catalog, its lock, spool and stored blobs."""
        return self.path.parent

    @property
    def spool_dir(self) -> Path:
        """Where runs append their events before they reach the catalog (see tracker.recorder)."""
        return self.folder / f"{self.path.name}.spool"

    @property
    def key_file(self) -> Path:
        """``<catalog>.key``: the secret redaction markers are keyed with (tracker.redaction)."""
        return self.folder / f"{self.path.name}.key"

    @property
    def shown(self) -> str:
        """The catalog as messages name it: its path."""
        return str(self.path)

    @property
    def blob_dir(self) -> Path:
        """Where stored files (a run's saved notebook) live, by content hash."""
        return self.folder / f"{self.path.name}.blobs"

    def open_blob(self, key: str) -> IO[bytes]:
        """The stored blob ``key`` (a run's notebook) as a binary file (FileNotFoundError if
        missing); a PostgreSQL catalog's store answers the same from its database."""
        return open(self.blob_dir / key, "rb")  # noqa: SIM115 - the caller closes it

    def save_blob(self, key: str, content: bytes) -> None:
        """Store ``content`` as the blob ``key`` (its content hash), or touch the one stored:
        purge spares a touched blob until the run referencing it commits."""
        from tracker.storage import contents

        folder = self.blob_dir
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        blob = folder / key
        if contents.refresh(blob):
            return
        # Written under another name and renamed: a process killed mid-copy must not leave a
        # truncated file under the hash's name, which every later run would trust. (Purge
        # removes such leftovers, as it does any unreferenced file over an hour old.)
        partial = folder / f".{key}.{os.getpid()}-{threading.get_ident()}.part"
        _write_private(partial, content)
        os.replace(partial, blob)

    # -- connections -------------------------------------------------------------------

    @contextlib.contextmanager
    def connect(self, *, write: bool = False, timeout: float | None = None,
                cancel: threading.Event | None = None,
                written: Callable[[], bool] | None = None,
                qualified: bool = False) -> Iterator[Any]:
        """A DuckDB connection under the sidecar lock, detached then unlocked on exit; see
        :meth:`tracker.Catalog.connect`. A writer waiting for the lock asks ``written``
        between tries and gets :class:`tracker.storage.lock.Written` once it says another
        process wrote its events (group commit). ``qualified``: the caller names every table
        ``catalog.<table>``, so the catalog need not be the default database (two statements
        fewer; the schema check of a first connection still makes it so)."""
        self.vet()
        wait = _Wait(self.wait(timeout))
        with _translated(self.path):
            self.ensure_folder()
            if not self._ready and not write and not self.path.exists():
                # a read of a catalog nobody has written yet creates it
                self._create_or_migrate(wait)
            default = not (qualified and self._ready)
            if write and not default:
                with self._held_write(wait, cancel, written) as connection:
                    yield connection
                return
            with self._locked(write, wait, cancel, written, default) as connection:
                # The schema check rides on the first connection: a fresh kernel's first write
                # creates the catalog and writes its run in one open, not three.
                if self._ready or self._check(connection, write):
                    yield connection
                    return
            self._create_or_migrate(wait)  # migrate, refuse or explain, under an exclusive lock
            with self._locked(write, wait, cancel, written) as connection:
                yield connection

    def vet(self) -> None:
        """Refuse, before anything is opened or created, a catalog path that holds something
        other than a DuckDB file or that another user controls (see :mod:`tracker.storage.files`).

        Every operation does this first (a ``stat`` of the folder; the whole check again only
        when the folder is another one than last time); call it to check a path early.
        """
        folder = _files.identity(self.path.parent)
        if folder is None or folder != self._vetted:
            _files.vet(self.path)
            self._vetted = folder

    @contextlib.contextmanager
    def read_locked(self, *, timeout: float | None = None) -> Iterator[Path]:
        """Hold the shared sidecar lock on the ready catalog (created or migrated first, as by
        :meth:`connect`) and yield its path, for a reader that opens the file with a DuckDB of
        its own (:mod:`tracker.readonly_sql`); that reader must close the file inside the block.
        """
        self.vet()
        wait = _Wait(self.wait(timeout))
        with _translated(self.path):
            self.ensure_folder()
            if not self._ready:
                self._create_or_migrate(wait)
            with _lock.locked(str(self.path), write=False, timeout=wait.total,
                              deadline=wait.deadline):
                yield self.path

    @contextlib.contextmanager
    def _locked(self, write: bool, wait: _Wait, cancel: threading.Event | None,
                written: Callable[[], bool] | None = None,
                default: bool = True) -> Iterator[Any]:
        with _lock.locked(str(self.path), write=write, timeout=wait.total,
                          deadline=wait.deadline, cancel=cancel, written=written), \
                self._attached(write=write, wait=wait, default=default) as connection:
            yield connection

    @contextlib.contextmanager
    def _held_write(self, wait: _Wait, cancel: threading.Event | None,
                    written: Callable[[], bool] | None) -> Iterator[Any]:
        """A plain write (``connect(qualified=True)``) through the attachment this Store kept
        after its last one, else a new one; kept after it for the next (tracker.storage.held).
        """
        path = str(self.path)
        held = self._held
        connection = held.take() if held is not None else None
        if held is None or connection is None:
            release = _lock.acquire(path, write=True, timeout=wait.total,
                                    deadline=wait.deadline, cancel=cancel, written=written)
            try:
                if not self.path.exists():
                    self._publish_new(wait)
                self.keys.check(path)
                connection = self._open(self.path, write=True, wait=wait, default=False)
            except BaseException:
                release()
                raise
            held = self._held = _held.Held(path, connection,
                                           functools.partial(self._let_go, connection), release)
        try:
            yield connection
        except BaseException:
            held.drop()
            raise
        held.keep()

    def _let_go(self, connection: Any, done: bool) -> None:
        """Detach a kept write's file; ``done``: its last write succeeded."""
        _duckdb.detach(connection, str(self.path), write=True, default=False)
        if done:
            self.keys.seen(str(self.path))

    @contextlib.contextmanager
    def _attached(self, *, write: bool, wait: _Wait, default: bool = True) -> Iterator[Any]:
        """The catalog file attached for one operation; the caller holds the sidecar lock.

        A write to a catalog that does not exist yet first publishes an empty one
        (:meth:`_publish_new`), so what the write commits, and the spools it then retires, are
        in the file at the catalog's path, never in a draft a kill could leave unpublished.
        """
        if write and not self.path.exists():
            self._publish_new(wait)
        if write:
            self.keys.check(str(self.path))
        connection = self._open(self.path, write=write, wait=wait, default=default)
        try:
            yield connection
        finally:
            # Detached before the sidecar lock is released: DuckDB's own file lock must be
            # gone, and a write's log on disk, before the next process may open the file.
            _duckdb.detach(connection, str(self.path), write=write, default=default)
        if write:
            self.keys.seen(str(self.path))

    def _publish_new(self, wait: _Wait) -> None:
        """Build a new catalog's tables in a draft file beside it, checkpointed, and rename it
        into place: DuckDB creates a file before it writes the header, and a process killed in
        between (nbval SIGKILLs kernels while their last write may run) would leave an empty
        file that no DuckDB can open, and that tracker must never overwrite."""
        draft = self.path.with_name(f"{self.path.name}.draft")
        _remove_database(draft)  # a process killed while creating left it
        connection = self._open(draft, write=True, wait=wait)
        try:
            self._create(connection)
            connection.execute("CHECKPOINT")  # a draft is published whole, with no log
        finally:
            _duckdb.detach(connection, str(self.path), write=True)
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
            os.chmod(self.path, 0o600)  # an empty DuckDB file someone made becomes private
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

    def _open(self, file: Path, *, write: bool, wait: _Wait, default: bool = True) -> Any:
        """Attach ``file``, waiting out another tool's DuckDB lock until the deadline; any
        other DuckDB error goes to :func:`_translated`."""
        import duckdb

        pause = 0.01
        while True:
            try:
                return _duckdb.attach(str(self.path), str(file), write=write, default=default)
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

    def _create_or_migrate(self, wait: _Wait) -> None:
        """Create, check or migrate the catalog once per Store."""
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
                self._back_up(self.path.with_name(f"{self.path.name}.v{version}.bak"))
            if version != schema.SCHEMA_VERSION:
                self._build(version, wait)
        self._ready = True

    def _back_up(self, backup: Path) -> None:
        """Copy the catalog to ``backup`` with its log (commits not yet checkpointed into the
        file), which DuckDB replays when the copy is opened."""
        _wal(backup).unlink(missing_ok=True)  # a stale log must not replay into the copy
        for source, target in ((self.path, backup), (_wal(self.path), _wal(backup))):
            if source.exists():
                shutil.copy2(source, target)
                os.chmod(target, 0o600)

    def checkpoint(self, *, timeout: float | None = None) -> None:
        """Move what the log holds into the catalog file, leaving the file whole on its own (a
        process that wrote does this as it exits: a user copying only the ``.duckdb`` file
        then misses nothing)."""
        if not _wal(self.path).exists():
            return
        with self.connect(write=True, timeout=timeout) as connection:
            connection.execute("CHECKPOINT")

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
                if self._version_in(connection) is None:  # an empty DuckDB file someone made
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

    def wait(self, timeout: float | None) -> float:
        """Seconds an operation may wait: ``timeout`` checked (and capped), else the store's."""
        return self.timeout if timeout is None else arguments.seconds(timeout, "timeout")


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


def _write_private(path: Path, content: bytes) -> None:
    """Write a file only its owner may read (mode 0600 from the start)."""
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
        f.write(content)
