"""Writing a process's events into a PostgreSQL catalog, with what dead processes on this
machine left: the counterpart of :mod:`tracker.storage.recovery` for a shared server.

A process spools its events into a private local folder (:attr:`PgStore.spool_dir`) and sends
them with :func:`write_events`: one transaction of :func:`tracker.storage.pg_writer.apply`, no
global lock. A server out of reach raises (a ``CatalogError``) and the events stay in the spool,
for the recorder's next try, the next process, or ``tracker sync``: ``runs.spool_seq`` makes a
batch sent twice (a commit whose answer was lost with the connection) apply once.

Every RECOVERY_INTERVAL seconds a write also sends the spools of this machine's dead processes
and marks crashed the runs still running whose process on this host is gone. Runs of other
hosts are never judged here: a laptop offline for a day is not dead, and its own next write
says how its runs ended. Two local processes never recover at once (a lock file in the spool
folder), so an unreadable line is quarantined once.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tracker.errors import CatalogError, first_line
from tracker.storage import pg_writer, recovery, spools, writer
from tracker.storage.lock import flocked
from tracker.storage.pg_store import PgStore
from tracker.storage.recovery import RECOVERY_INTERVAL, Complete, Local
from tracker.storage.writer import Batch, Reject

_CRASHED = ("UPDATE runs SET status = 'crashed', ended_at = coalesce(heartbeat_at, started_at), "
            "duration = extract(epoch FROM coalesce(heartbeat_at, started_at) - started_at) "
            "WHERE status = 'running' AND id = ANY(%s)")
_LOCK_NAME = ".recovering"  # in the spool folder; not a *.jsonl, so never taken for a spool


def write_events(store: PgStore, batch: Batch, *, complete: Complete, local: Local,
                 timeout: float | None = None) -> int:
    """Send ``batch`` (``complete`` hashes and copies first) in one transaction, with what dead
    local processes left when a recovery is due; return how many events were quarantined
    rather than applied."""
    due = not store.last_recovery or time.monotonic() - store.last_recovery >= RECOVERY_INTERVAL
    with _recovering(store) if due else contextlib.nullcontext(False) as claimed:
        orphans = spools.orphaned(store.spool_dir, local.spools) if claimed else []
        kept = commit(store, batch, orphans, complete=complete, local=local,
                      find_dead=claimed, timeout=timeout)
    if claimed:
        store.last_recovery = time.monotonic()  # only once it worked: offline, it is tried again
    return kept


def sync(store: PgStore, *, complete: Complete, local: Local,
         timeout: float | None = None) -> int:
    """Send what dead local processes left and mark their runs crashed, now (``tracker
    sync``); return how many events were quarantined. Another process recovering at the same
    moment does it instead."""
    store.last_recovery = 0.0
    return write_events(store, [], complete=complete, local=local, timeout=timeout)


def waiting(store: PgStore) -> int:
    """How many runs have events in this machine's spools of the catalog, not yet on the
    server (a live process's last second of events counts too)."""
    if not store.spool_dir.is_dir():
        return 0
    found, _ = spools.read(sorted(store.spool_dir.glob("*.jsonl")))
    return len({item.run_id for item in found})


def commit(store: PgStore, batch: Batch, orphans: list[Path], *, complete: Complete,
           local: Local, find_dead: bool, timeout: float | None) -> int:
    """Apply ``batch`` and the ``orphans``' events, mark dead runs crashed, then retire the
    orphans (after the commit: a spool removed before it would lose what the commit did not
    keep)."""
    spooled, unreadable = spools.read(orphans)
    completed, rejected = complete([*batch, *spooled])
    keep = writer.keeper(store)
    keep(rejected)
    with _refused_kept(store), store.connect(write=True, timeout=timeout) as con:
        rejected += writer.apply_all(con, completed, keep, transaction=_savepoint,
                                     data_error=_data_error)
        recovery.mark_crashed(con, dead_runs(con, local) if find_dead else [], spooled,
                              _CRASHED)
    spools.retire(store, unreadable)
    return len(rejected) + sum(len(lines) for lines in unreadable.values())


@contextlib.contextmanager
def _refused_kept(store: PgStore) -> Iterator[None]:
    """A statement the server refused for another reason than the events (a table dropped, a
    privilege revoked) as the CatalogError callers expect; the events stay in the spool."""
    import psycopg

    try:
        yield
    except psycopg.Error as exc:
        said = first_line(str(exc), type(exc).__name__)[:300]
        raise CatalogError(
            f"catalog {store.shown} refused what was recorded ({said}); "
            f"it is kept in {store.spool_dir} and sent again by the next write or `tracker "
            "sync`: ask the catalog's owner to check its tables and your role's privileges",
            path=store.shown) from None


def _savepoint(con: Any, batch: Batch) -> list[Reject]:
    """Apply ``batch`` in a savepoint of the caller's transaction: a refused part is undone
    alone (see writer.apply_all)."""
    with con.transaction():
        return writer.startless_rejects(pg_writer.apply(con, batch))


def _data_error(exc: BaseException) -> bool:
    """An error about the events (a value the server refuses), not about the server: those
    are quarantined, anything else is retried."""
    import psycopg

    if isinstance(exc, psycopg.DataError | psycopg.IntegrityError):
        return True
    return isinstance(exc, ValueError | TypeError | LookupError) and \
        not isinstance(exc, psycopg.Error)


def dead_runs(con: Any, local: Local) -> list[str]:
    """Runs of this host still marked running whose process is gone (not this process's)."""
    host = socket.gethostname()
    running = con.execute("SELECT id, pid, process_start FROM runs "
                          "WHERE status = 'running' AND host = %s", [host]).fetchall()
    return [run_id for run_id, pid, started in running
            if run_id not in local.runs and spools.owner_alive(host, pid, started) is False]


@contextlib.contextmanager
def _recovering(store: PgStore) -> Iterator[bool]:
    """True while this process alone recovers the catalog's local spools; False (recover
    later) while another does."""
    store.ensure_folder()
    store.spool_dir.mkdir(mode=0o700, exist_ok=True)
    fd = flocked(store.spool_dir / _LOCK_NAME, os.O_RDWR | os.O_CREAT)
    if fd is None:
        yield False
        return
    try:
        yield True
    finally:
        os.close(fd)
