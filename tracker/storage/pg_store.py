"""One PostgreSQL catalog: its connections and its schema, for a team sharing one server.

The counterpart of :mod:`tracker.storage.store` for a ``postgresql://`` catalog. No sidecar lock
and no global write lock: each operation is one transaction, on a connection the process keeps
between operations (:mod:`tracker.storage.pg_connections`), and PostgreSQL's own locks keep
writers apart (a run's row is locked while its events are applied,
:mod:`tracker.storage.pg_writer`). The URL is handed to libpq as it is, so its conventions hold
(``PGPASSFILE``, ``PGSERVICE``, ``~/.pg_service.conf``, ``sslmode``...); it is shown only
:func:`~tracker.storage.pg_url.redacted`.

The tables live in the ``tracker`` schema (:mod:`tracker.storage.pg_schema`). The first
connection of a :class:`PgStore` creates them, or checks their version and migrates them, in one
transaction under an advisory lock, so processes starting together create them once; a
catalog of a newer version is refused (:class:`tracker.errors.CatalogVersionError`). Its
access control (:mod:`tracker.storage.pg_access`) is created with it: until the owner grants
a project (``tracker admin grant``), other roles see no run.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from tracker import arguments, teardown
from tracker.errors import (
    CatalogError,
    CatalogVersionError,
    NotACatalogError,
    ProjectAccessError,
    TrackerError,
    first_line,
)
from tracker.storage import pg_access, pg_blobs, pg_connections, pg_schema
from tracker.storage.pg_url import redacted

# The advisory lock taken while the schema is created or migrated (any fixed number: it names
# the lock for every process using this database). 0x7472616b = "trak".
SCHEMA_LOCK = 0x7472616B
# SQLSTATE classes of a connection that failed or went away: 08 connection, 28 login, 57P
# the server shutting down or unreachable; other operational errors are about one operation.
_CONNECTION_STATES = ("08", "28", "57P")
_MIN_CONNECT_TIMEOUT = 2  # libpq's connect_timeout: whole seconds, and it reads less as 2


#: Every session's settings, in the connection's first round trip: tracker's schema first;
#: no JIT (compiling a plan over 100k runs took 0.5 s of a 2.5 s top-100 read, more than it
#: saved, and row-level security's cost estimates switch it on for a granted role's file
#: reads); a filter's 16,747 runs of 100k (10 MB) sorted in memory, not on disk past the
#: default 4 MB (docs/scaling.md).
_SESSION = (f"SET search_path TO {pg_schema.SCHEMA}; SET jit = off; SET work_mem = '32MB'")


class PgStore:
    """The PostgreSQL catalog at ``url`` (a libpq URL); ``timeout`` bounds how long an
    operation waits to connect."""

    def __init__(self, url: str, timeout: float) -> None:
        self._url = url  # with any password in it: handed to libpq, never shown
        #: the URL as it may be shown: any password in it hidden
        self.shown = redacted(url)
        self.timeout = timeout
        self._ready = False
        self._idle = pg_connections.Idle(self)  # this process's connections, between operations
        #: this user's private folder for the catalog on this machine: spools, quarantine
        self.folder = local_folder(self.shown)
        #: time.monotonic() of this object's last recovery (tracker.storage.pg_recovery)
        self.last_recovery = 0.0

    def __repr__(self) -> str:
        return f"PgStore({self.shown!r})"

    @property
    def secret_url(self) -> str:
        """The URL as given, any password in it: for libpq and a child process's
        ``TRACKER_CATALOG`` only (tracker.reproduction), never to show."""
        return self._url

    @property
    def spool_dir(self) -> Path:
        """Where runs append their events until the server has them (see tracker.recorder)."""
        return self.folder / "spool"

    @property
    def key_file(self) -> Path:
        """The secret redaction markers are keyed with (tracker.redaction)."""
        return self.folder / "redaction.key"

    def ensure_folder(self) -> None:
        """Create the local folder, private to the user (mode 0700), if missing."""
        if self.folder.is_dir():
            return
        try:
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(self.folder, 0o700)
        except OSError as exc:
            raise CatalogError(f"cannot create {self.folder}, where runs of {self.shown} are "
                               f"spooled ({exc.strerror or exc}); set XDG_DATA_HOME to a "
                               "folder you can write", path=self.shown) from None

    def vet(self) -> None:
        """Refuse a local folder that is not a plain folder of this user's (one planted by
        someone else would see, or feed, what runs record)."""
        try:
            found = os.lstat(self.folder)
        except FileNotFoundError:
            return
        if not stat.S_ISDIR(found.st_mode) or found.st_uid != os.geteuid():
            raise CatalogError(f"{self.folder}, where runs of {self.shown} are spooled, is not "
                               "a folder of yours; remove it or set XDG_DATA_HOME elsewhere",
                               path=self.shown)

    def checkpoint(self, *, timeout: float | None = None) -> None:
        """Nothing to do: the server keeps its own log (the file catalog folds its log here)."""

    def wait(self, timeout: float | None) -> float:
        """Seconds an operation may wait: ``timeout`` checked, else the store's."""
        return self.timeout if timeout is None else arguments.seconds(timeout, "timeout")

    @contextlib.contextmanager
    def connect(self, *, write: bool = False, timeout: float | None = None,
                keep: bool = True) -> Iterator[Any]:
        """A psycopg connection in one transaction (READ ONLY unless ``write``), committed on
        exit, rolled back on an exception; the schema is created or checked first, once per
        store. The connection is this process's, reused by its next operation
        (:mod:`tracker.storage.pg_connections`); ``keep=False`` closes it afterwards (it ran
        SQL of the user's, which may leave session state, an advisory lock say). A server
        that cannot be reached raises :class:`tracker.errors.CatalogError`."""
        with translated(self.shown), contextlib.ExitStack() as stack:
            yield self._begun(stack, write=write, wait=self.wait(timeout),
                              done=self._idle.give if keep else _close)

    def open_blob(self, key: str) -> IO[bytes]:
        """The stored blob ``key`` (a run's notebook) as a binary file; FileNotFoundError if
        there is none, as for a file catalog's blob folder."""
        with self.connect() as con:
            data = pg_blobs.read(con, key)
        if data is None:
            raise FileNotFoundError(f"no blob {key} in {self.shown}")
        return io.BytesIO(data)

    def save_blob(self, key: str, content: bytes) -> None:
        """Store ``content`` as the blob ``key`` in the database (every machine reading the
        server has it), or mark the one stored as used now (see pg_blobs)."""
        with self.connect(write=True) as con:
            pg_blobs.store(con, key, content)

    def _open(self, wait: float) -> Any:
        import psycopg

        teardown.arm_without_duckdb()  # this process's threads reading here stop at exit
        seconds = max(_MIN_CONNECT_TIMEOUT, math.ceil(wait))
        with translated(self.shown):
            connection = psycopg.connect(self._url, connect_timeout=seconds, autocommit=True,
                                         application_name="tracker")
            try:
                connection.execute(_SESSION)
            except BaseException:
                connection.close()
                raise
        return connection

    def _begun(self, stack: contextlib.ExitStack, *, write: bool, wait: float,
               done: Callable[[Any], None]) -> Any:
        """A connection in a new transaction, passed to ``done`` once ``stack`` ended the
        transaction: an idle one of this process's while it answers, else a new one."""
        import psycopg

        reused = self._idle.take()
        if reused is not None:
            stack.callback(done, reused)
            try:
                return _transaction(stack, reused, write=write)
            except psycopg.OperationalError:
                if not reused.broken:
                    raise
                # Gone while idle (a server restarted, a backend terminated): only BEGIN was
                # sent, so a new connection starts the operation over.
        connection = self._open(wait)
        stack.callback(done, connection)
        if not self._ready:
            self._create_or_migrate(connection)
        return _transaction(stack, connection, write=write)

    def _create_or_migrate(self, connection: Any) -> None:
        """Create, check or migrate the catalog's tables, in one transaction."""
        with connection.transaction():
            connection.execute("SELECT pg_advisory_xact_lock(%s)", [SCHEMA_LOCK])
            version = self._version_in(connection)
            if version is not None and version > pg_schema.SCHEMA_VERSION:
                raise CatalogVersionError(
                    f"catalog {self.shown} has schema version {version}, newer than this "
                    f"tracker reads (version {pg_schema.SCHEMA_VERSION}); upgrade tracker "
                    f"(pip install -U 'tracker[postgres]') to a release that reads schema "
                    f"{version}", path=self.shown, version=version)
            if version is None:
                connection.execute(f"CREATE SCHEMA IF NOT EXISTS {pg_schema.SCHEMA}")
                for statement in [*pg_schema.create_statements(), *pg_access.statements()]:
                    connection.execute(statement)
            elif version < pg_schema.SCHEMA_VERSION:
                self._migrate(connection, version)
            if version is not None:
                _add_values(connection)
                _renew_value_indexes(connection)
                _add_access(connection)
            if version != pg_schema.SCHEMA_VERSION:
                connection.execute(
                    "INSERT INTO meta VALUES ('schema_version', %s) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    [str(pg_schema.SCHEMA_VERSION)])
        self._ready = True

    def _migrate(self, connection: Any, version: int) -> None:
        """Bring the catalog from ``version`` to this tracker's; only its owner may alter it."""
        if not _owns(connection, "runs"):
            raise CatalogVersionError(
                f"catalog {self.shown} has schema version {version}, older than this tracker "
                f"writes (version {pg_schema.SCHEMA_VERSION}), and only its owner may upgrade "
                "it: ask the owner to open it once with this release (any tracker command, "
                "e.g. tracker --catalog URL runs), or use the release that wrote it",
                path=self.shown, version=version)
        for _, migrate in pg_schema.pending_migrations(version):
            migrate(connection)

    def _version_in(self, connection: Any) -> int | None:
        """The schema version stored; None when the ``tracker`` schema has no table yet."""
        found = connection.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY tablename",
            [pg_schema.SCHEMA]).fetchall()
        tables = [row[0] for row in found]
        if not tables:
            return None
        if "meta" not in tables or "runs" not in tables:
            raise NotACatalogError(
                f"{self.shown} has a schema {pg_schema.SCHEMA!r} that is not a tracker catalog "
                f"(it has tables {tables[:5]}); it was left untouched: use another database",
                path=self.shown)
        row = connection.execute(  # qualified: a role without USAGE is told it, not "no meta"
            f"SELECT value FROM {pg_schema.SCHEMA}.meta WHERE key = 'schema_version'").fetchone()
        version = str(row[0]) if row else ""
        if not (version.isascii() and version.isdigit()) or int(version) < 1:
            raise NotACatalogError(
                f"catalog {self.shown} has no valid schema version (meta.schema_version is "
                f"{version!r}); it was left untouched", path=self.shown)
        return int(version)


def _close(connection: Any) -> None:
    connection.close()


def _transaction(stack: contextlib.ExitStack, connection: Any, *, write: bool) -> Any:
    """``connection`` in a transaction ``stack`` ends (commits, or rolls back on an error)."""
    connection.read_only = not write  # BEGIN READ ONLY: no statement of its own
    stack.enter_context(connection.transaction())
    return connection


def local_folder(shown: str) -> Path:
    """``$XDG_DATA_HOME/tracker/postgresql/<hash>`` (``~/.local/share`` by default): a data
    folder, not a cache, since it holds what the server has not received yet. Named by a hash
    of the URL without its password, so a password never names a file, and changing it keeps
    the folder."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    digest = hashlib.sha256(shown.encode("utf-8")).hexdigest()[:24]
    return Path(base).expanduser() / "tracker" / "postgresql" / digest


@contextlib.contextmanager
def translated(shown: str) -> Iterator[None]:
    """The one place psycopg's errors about the server become tracker's: one that cannot be
    reached or refuses the login, a lost connection, a missing privilege. An error about a statement
    (a data error, say) passes as it is, for the caller to judge."""
    import psycopg

    try:
        yield
    except TrackerError:
        raise
    except psycopg.errors.InsufficientPrivilege as exc:
        if "row-level security" in str(exc):
            raise ProjectAccessError(
                f"catalog {shown}: this role may not write runs of that project "
                f"({_first_line(exc)}); nothing of it was written: ask the catalog's owner "
                "for write access (tracker admin grant ROLE --project P)", path=shown) from None
        raise ProjectAccessError(
            f"catalog {shown}: the database refused ({_first_line(exc)}); ask its owner to "
            "grant this role a project (tracker admin grant ROLE --project P), or to create "
            "the catalog by running tracker admin init as the owner", path=shown) from None
    except psycopg.OperationalError as exc:
        if exc.sqlstate and not exc.sqlstate.startswith(_CONNECTION_STATES):
            # a deadlock, a lock or statement timeout: the server is there, the operation lost
            raise CatalogError(
                f"catalog {shown}: the server stopped the operation ({_first_line(exc)}); "
                "nothing of it was written: try again", path=shown) from None
        raise CatalogError(
            f"cannot connect to the catalog {shown} ({_first_line(exc)}); check that the server "
            "is up and that the URL, ~/.pgpass (PGPASSFILE) or PGSERVICE are right",
            path=shown) from None


def _first_line(exc: BaseException) -> str:
    return first_line(str(exc), type(exc).__name__)[:300]


def _exists(connection: Any, relation: str) -> bool:
    """Whether the catalog's schema holds a table or index of that name."""
    found = connection.execute("SELECT to_regclass(%s)", [f"{pg_schema.SCHEMA}.{relation}"])
    return bool(found.fetchone()[0])


def _add_values(connection: Any) -> None:
    """Give a catalog created before ``latest_values`` the table, filled from its runs, with
    the policies and privileges of the other run tables (see pg_schema); nothing if it has it."""
    if _exists(connection, pg_schema.VALUES):
        return
    added = [*pg_schema.VALUE_STATEMENTS, pg_schema.BACKFILL]
    if _exists(connection, pg_access.GRANTS):  # else access control: `tracker admin init`
        added += pg_access.value_statements()
    for statement in added:
        connection.execute(statement)


def _owns(connection: Any, table: str) -> bool:
    """Whether this role owns the catalog's ``table`` (or belongs to its owner): only an owner
    may change it."""
    return bool(connection.execute(
        "SELECT pg_has_role(relowner, 'USAGE') FROM pg_class WHERE oid = %s::regclass",
        [f"{pg_schema.SCHEMA}.{table}"]).fetchone()[0])


def _renew_value_indexes(connection: Any) -> None:
    """Replace the value table's indexes of a catalog created before
    :data:`~tracker.storage.pg_schema.VALUE_INDEXES` with them, when this role owns the table
    (only its owner may); another role's reads stay right, only slower, until the owner's next
    connection."""
    missing = [(name, body) for name, body in pg_schema.VALUE_INDEXES
               if not _exists(connection, name)]
    if not missing or not _owns(connection, pg_schema.VALUES):
        return
    for name in pg_schema.OLD_VALUE_INDEXES:  # ours: fixed names, never user text
        connection.execute(f"DROP INDEX IF EXISTS {pg_schema.SCHEMA}.{name}")
    for name, body in missing:
        connection.execute(f"CREATE INDEX {name} ON {pg_schema.SCHEMA}.{pg_schema.VALUES} {body}")


def _add_access(connection: Any) -> None:
    """Bring access control made before the shared tables had policies (no ``file_version``
    function, which writers now call) or before the runs policies checked ids' shape (no
    ``is_run_id``) up to date, when this role owns the catalog: all of it where a grants table
    says it is on, else that function alone; nothing if it is there."""
    found = connection.execute(
        "SELECT count(*) FILTER (WHERE proname = 'file_version'), "
        "count(*) FILTER (WHERE proname = 'is_run_id'), to_regclass(%s) IS NOT NULL "
        "FROM pg_catalog.pg_proc WHERE pronamespace = %s::regnamespace",
        [f"{pg_schema.SCHEMA}.{pg_access.GRANTS}", pg_schema.SCHEMA]).fetchone()
    versioned, shaped, controlled = bool(found[0]), bool(found[1]), found[2]
    if versioned and (shaped or not controlled) or not _owns(connection, "runs"):
        return
    for statement in pg_access.statements() if controlled else pg_access.writer_functions():
        connection.execute(statement)
