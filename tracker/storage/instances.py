"""In-memory DuckDB instances that live for the process, to which catalog files are attached
for one operation at a time.

Starting a DuckDB database costs ~20-25 ms on this machine, even in memory; attaching a file to
a running one and detaching it again costs ~3. Detaching closes the file and releases DuckDB's
file lock, so other processes see a catalog that no one holds between operations (docs/design.md
§2). It does not checkpoint: commits stay in the file's log until it passes a few KiB (see
_CONFIG), and whoever attaches next replays them.

There is one instance per catalog file, not one per process: DuckDB keeps a detached database
open while any transaction that began before the DETACH still runs, so a query on another
catalog in another thread would keep this file open, and locked, past our sidecar lock (seen as
"Unique file handle conflict" on the next attach). Operations on one file never overlap
(tracker.storage.lock serialises them, threads included), so its instance never has such a
transaction.

A file has two instances: one for writes, one for reads. A write is a few small statements, each
~0.1 ms quicker on the calling thread alone than handed to a pool of threads it must wake (one
run's write: ~0.75 of ~10 ms); a read of a large catalog scans in parallel on every core it is
given (docs/design.md §6).

Only the few most recently used instances are kept (each holds memory and a pool of threads: a
process that read 200 catalogs kept 1 GB and 1,800 threads); an instance is closed only when no
operation is inside it.

At interpreter exit no thread may be left inside an instance (see :mod:`tracker.teardown`): the
exit handler waits until none is busy, and refuses new operations from background threads.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import OrderedDict
from typing import Any

from tracker import teardown
from tracker.errors import CatalogError

#: Bytes of log (commits not yet checkpointed into the file) past which a commit checkpoints.
WAL_LIMIT = 16 * 1024
#: DuckDB threads of an instance that reads a catalog (its statements scan in parallel) and of
#: one that writes (a few small statements, quicker on the calling thread alone).
READ_THREADS, WRITE_THREADS = 2, 1
_CONFIG: dict[str, Any] = {
    "storage_compatibility_version": "v1.5.0",  # files stay readable by duckdb 1.5
    # A file that is not DuckDB (SQLite, Parquet) made DuckDB fetch an extension to read it:
    # seconds of waiting without a network, and code from the network with one.
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    # Catalogs are small: a pool of threads per core per instance (and 8 more for async I/O)
    # only costs memory, times each instance a process keeps.
    "threads": READ_THREADS,
    "async_threads": 1,
    # A write's commit goes to the log (.wal) and its detach does not checkpoint: the commit
    # that takes the log past WAL_LIMIT checkpoints it into the file. Checkpointing at every
    # detach was most of a small write's time (one run: ~5 of ~15 ms); replaying a log this
    # small adds about 1 ms to an attach (docs/design.md §6).
    "checkpoint_on_detach": "DISABLED",
    "checkpoint_threshold": f"{WAL_LIMIT}b",
}
KEPT = 4  # instances kept open for catalogs not in use

_Key = tuple[str, bool]  # a catalog path, and whether its instance writes
_instances: OrderedDict[_Key, Any] = OrderedDict()  # each instance, oldest first
_busy: set[_Key] = set()  # instances with an operation inside them
_spare: Any = None  # a writing instance started ahead of need by start_in_background()
_guard = threading.Condition()  # notified when an operation leaves its instance


def _reset_after_fork() -> None:
    # DuckDB's threads do not survive a fork: a child starts its own instances. The parent's
    # are never closed here: closing one joins threads this process does not have, and the
    # child died of a segfault at once (every multiprocessing worker forked after a read).
    global _spare, _guard
    for inherited in [*_instances.values(), *([_spare] if _spare is not None else [])]:
        _keep_forever(inherited)
    _instances.clear()
    _busy.clear()
    _spare = None
    _guard = threading.Condition()


def _keep_forever(instance: Any) -> None:
    """One reference more than Python will ever release, so the interpreter's exit never
    closes ``instance`` either."""
    import ctypes

    ctypes.pythonapi.Py_IncRef(ctypes.py_object(instance))


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def _new(write: bool) -> Any:
    import duckdb

    teardown.arm(_wait_idle)  # after `import duckdb`: runs before DuckDB's own exit handlers
    return duckdb.connect(config={**_CONFIG, "threads": WRITE_THREADS} if write else _CONFIG)


def _wait_idle() -> None:
    """Return once no operation is inside an instance (nor one being started)."""
    with _guard:
        _guard.wait_for(lambda: not _busy)


def _database(key: _Key) -> Any:
    """The instance for ``key``, marked busy until :func:`_release`; old idle ones close."""
    global _spare
    path, write = key
    with _guard:
        # Checked under the guard that _wait_idle holds: no operation slips in after it.
        if teardown.exiting():
            raise CatalogError(f"catalog {path} is not opened from a background thread while "
                               "the process exits", path=path)
        if key not in _instances:
            if write and _spare is not None:
                _instances[key], _spare = _spare, None
            else:
                _instances[key] = _new(write)
        _instances.move_to_end(key)
        _busy.add(key)
        idle = [other for other in _instances if other not in _busy]
        evicted = [_instances.pop(other) for other in idle[:max(len(idle) - KEPT, 0)]]
        instance = _instances[key]
    for old in evicted:
        old.close()
    return instance


def _release(key: _Key) -> None:
    with _guard:
        _busy.discard(key)
        _guard.notify_all()


def live_instances() -> int:
    """How many DuckDB instances this process holds open."""
    return len(_instances)


def start_in_background() -> None:
    """Import and start DuckDB on a thread now, so a first write need not wait for it (~120 ms
    when a notebook loads the extension, mostly ``import duckdb``)."""

    def start() -> None:
        global _spare
        with _guard:
            if _spare is None and not _instances and not teardown.exiting():
                _spare = _new(write=True)

    # Armed now too: an exit during `import duckdb` waits for the thread (it holds _guard).
    teardown.arm(_wait_idle)
    threading.Thread(target=start, name="tracker-duckdb", daemon=True).start()


def attach(path: str, file: str | None = None, *, write: bool, default: bool = True) -> Any:
    """A connection to the catalog at ``path`` (created by a write), attached as ``catalog``
    and, if ``default``, its default database (else its statements name ``catalog.<table>``),
    read from ``file`` when that differs (a new catalog's draft).

    Raises duckdb.IOException as ``duckdb.connect`` would (locked, not a database, missing).
    The caller serialises operations on one path (tracker.storage.lock does, across threads too).
    Raises CatalogError in a background thread while the interpreter exits.
    """
    key = (path, write)
    try:
        connection = _database(key).cursor()
    except BaseException:
        _release(key)
        raise
    literal = "'" + (file or path).replace("'", "''") + "'"
    try:
        connection.execute(f"ATTACH {literal} AS catalog{'' if write else ' (READ_ONLY)'}")
        if default:
            connection.execute("USE catalog")
    except BaseException:
        connection.close()
        _release(key)
        raise
    return connection


def detach(connection: Any, path: str, *, write: bool, default: bool = True) -> None:
    """Close the file (release DuckDB's lock) and the connection that :func:`attach` gave
    with the same arguments."""
    import duckdb

    detached = False
    try:
        try:
            _detach(connection, default)
        except duckdb.Error:
            # An operation that failed mid-transaction (an aborted one refuses USE). Rolled back
            # only then: a ROLLBACK tried on every detach failed in the usual case, ~0.5 ms. A
            # transaction left open without an error detaches, and closing the cursor below
            # rolls it back and closes the file, still before the caller's unlock.
            with contextlib.suppress(duckdb.Error):
                connection.execute("ROLLBACK")
            _detach(connection, default)
        detached = True
    except duckdb.Error:
        pass
    finally:
        connection.close()
        _release((path, write))
    if not detached:
        discard(path)  # the file must not stay open: drop its whole instance instead


def _detach(connection: Any, default: bool) -> None:
    if default:  # the default database cannot be detached
        connection.execute("USE memory")
    connection.execute("DETACH catalog")


def discard(path: str) -> None:
    """Close the instances of ``path`` (after DuckDB's FatalException one is unusable)."""
    with _guard:
        # An instance with an operation inside is left: that operation's detach discards it.
        closing = [_instances.pop(key) for key in [(path, False), (path, True)]
                   if key in _instances and key not in _busy]
    for instance in closing:
        instance.close()
