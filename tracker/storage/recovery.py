"""Recovering what dead processes left: their orphaned spools ingested, their runs marked crashed.

A process that dies (kill -9, a lost kernel) leaves its spool file beside the catalog and its
runs marked running. Any process that writes the catalog (its first write) or reads it
(:func:`maybe_recover`) ingests the spools whose owner is gone and marks crashed the runs whose
process is gone (pid and process start time on this host, a stale heartbeat on another), in the
same transaction as its own batch. A read never waits for, or fails on, recovery
(docs/design.md §3).

What this process itself is writing is never recovered by it: the layer above (``tracker.recorder``,
which owns the recorders) says what that is, as a :class:`Local`. Events are completed (files
hashed, blobs stored) by a ``complete`` function from above too, outside the lock.
"""

from __future__ import annotations

import functools
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from tracker.errors import CatalogError, TrackerWarning
from tracker.events import Spooled
from tracker.storage import spools, writer
from tracker.storage.lock import Written
from tracker.storage.spools import Reject
from tracker.storage.store import Store
from tracker.storage.writer import Batch

RECOVERY_INTERVAL = 30.0  # seconds between checks for dead runs by a reading process
STALE_HEARTBEAT = spools.STALE_HEARTBEAT
#: Makes a batch ready to write outside the lock: (the events completed, those refused)
Complete = Callable[[Batch], tuple[list[Spooled], list[Reject]]]


class Local(NamedTuple):
    """What this process is writing to a catalog itself: never another process's leftovers."""

    runs: set[str]  # ids of its active runs
    spools: set[Path]  # its spool files


def write_events(store: Store, batch: Batch, *, complete: Complete, local: Local,
                 spool: Path | None = None, timeout: float | None = None,
                 cancel: threading.Event | None = None) -> int:
    """Apply ``batch`` in one write transaction (``complete`` hashes and copies before it);
    return how many events were quarantined rather than applied.

    A process's first write also recovers what dead processes left, in the same catalog open:
    one open where a fresh kernel's first run used to need two. ``batch`` is all in ``spool``
    (when given): while waiting for the lock, this returns as soon as another writer has
    committed all of it from there (group commit, docs/design.md §6).
    """
    recovering = not store.last_recovery
    if recovering:
        store.last_recovery = time.monotonic()
    orphans = orphaned_spools(store, local) if recovering else []
    return commit(store, batch, orphans, complete=complete, local=local, find_dead=recovering,
                  spool=spool, timeout=timeout, cancel=cancel)


def commit(store: Store, batch: Batch, orphans: list[Path], *, complete: Complete, local: Local,
           find_dead: bool, dead: Sequence[str] = (), spool: Path | None = None,
           timeout: float | None = None, cancel: threading.Event | None = None) -> int:
    """Apply ``batch``, the orphaned spools and what other processes have spooled, mark dead
    runs crashed, then retire the orphaned spools (under the lock, so that two recovering
    processes never quarantine a line twice)."""
    spooled, unreadable = spools.read(orphans)
    completed, rejected = complete([*batch, *spooled])
    # Only a plain batch may be left to another writer: recovery and quarantine are ours.
    alone = bool(batch) and not (orphans or rejected or dead or find_dead)
    written = functools.partial(spools.written, spool, batch) if spool and alone else None
    try:
        # A plain batch runs only the writer's statements, which name their tables.
        with store.connect(write=True, timeout=timeout, cancel=cancel, written=written,
                           qualified=alone) as con:
            # Each refused event is in quarantine, on disk, before a commit moves
            # runs.spool_seq past it: else a failed quarantine write, or a kill, would make a
            # replay skip it.
            keep = writer.keeper(store)
            keep(rejected)
            rejected += apply_shared(con, store, completed, keep, skip={*local.spools, *orphans})
            mark_crashed(con, dead_runs(con, local) if find_dead else dead, spooled)
            spools.retire(store, unreadable)
            if find_dead or orphans or dead:  # recovering: what killed writers left goes too
                spools.sweep_marks(store.spool_dir)
    except Written:
        return 0  # another process committed the whole batch from our spool
    return len(rejected) + sum(len(lines) for lines in unreadable.values())


def apply_shared(con: Any, store: Store, completed: Batch, keep: writer.Keep,
                 skip: set[Path]) -> list[Reject]:
    """Apply ``completed`` with what other processes have spooled meanwhile (group commit: one
    attach for several waiting writers), then tell those processes what is committed; alone
    when there is nothing else or the catalog refuses any of it."""
    others = spools.waiting_elsewhere(store.spool_dir, skip)
    together = writer.apply_together(
        con, completed, [item for items in others.values() for item in items],
        store.keys) if others else None
    if together is None:
        return writer.apply_all(con, completed, keep, store.keys)
    startless, committed = together
    spools.mark_written(others, committed)
    return keep(startless)


def maybe_recover(store: Store, *, complete: Complete, local: Local, force: bool = False) -> None:
    """Ingest orphaned spools and mark runs whose process died as crashed, without ever making
    the read that calls this wait or fail.

    Orphaned spools are looked for on every call (a directory listing), so a long-lived reader
    sees the runs of processes that exited at once; dead runs at most every RECOVERY_INTERVAL
    seconds per catalog object. The write lock is only tried, not waited for (unless
    ``force``): when another process holds the catalog, a later read recovers.
    """
    orphans = orphaned_spools(store, local)
    now = time.monotonic()
    due = force or not store.last_recovery or now - store.last_recovery >= RECOVERY_INTERVAL
    if not orphans and not due:
        return
    dead: list[str] = []
    if due:
        store.last_recovery = now
        with store.connect(write=False) as con:
            dead = dead_runs(con, local)
    if not orphans and not dead:
        return
    try:
        kept = commit(store, [], orphans, complete=complete, local=local, find_dead=False,
                      dead=dead, timeout=None if force else 0.0)
    except Exception as exc:  # the read goes on; the spools stay for a later one
        if dead:
            store.last_recovery = 0.0  # look for them again at the next read
        if not isinstance(exc, OSError | CatalogError):  # locked or full: not news
            warnings.warn(f"could not recover what exited processes left in "
                          f"{store.spool_dir} ({exc!r}); it stays there for a later read",
                          TrackerWarning, stacklevel=3)
        return
    if kept:
        warnings.warn(f"recovery kept {kept} event(s) the catalog could not store in "
                      f"{spools.quarantine_dir(store)}", TrackerWarning, stacklevel=3)


def dead_runs(con: Any, local: Local) -> list[str]:
    """Runs still marked running whose process is gone (not this process's own runs)."""
    running = con.execute("SELECT id, host, pid, process_start, epoch(heartbeat_at) FROM runs "
                          "WHERE status = 'running'").fetchall()
    return [r[0] for r in running if r[0] not in local.runs and is_dead(*r[1:])]


def orphaned_spools(store: Store, local: Local) -> list[Path]:
    """The spools beside the catalog whose process is gone."""
    store.vet()  # the spool folder is one of the catalog's files: never list a planted one
    return spools.orphaned(store.spool_dir, local.spools)


def is_dead(host: str | None, pid: int | None, started: float | None,
             heartbeat: float | None) -> bool:
    alive = spools.owner_alive(host, pid, started)
    if alive is not None:
        return not alive
    return heartbeat is not None and time.time() - heartbeat > STALE_HEARTBEAT


# Crashed runs end at their last sign of life; a back end spells the duration and the list of
# ids its own way (tracker.storage.pg_recovery passes PostgreSQL's).
CRASHED = ("UPDATE runs SET status = 'crashed', ended_at = coalesce(heartbeat_at, started_at), "
           "duration = epoch(coalesce(heartbeat_at, started_at)) - epoch(started_at) "
           "WHERE status = 'running' AND list_contains(?, id)")


def mark_crashed(con: Any, dead: Sequence[str], spooled: Batch, statement: str = CRASHED) -> None:
    """Dead runs, and runs of dead processes' spools, that never ended are crashed."""
    crashed = sorted(set(dead) | {item.run_id for item in spooled})
    if crashed:
        con.execute(statement, [crashed])
