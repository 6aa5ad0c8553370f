"""A write's attachment kept for a moment after its commit, so that this process's next write
skips attaching the file again (docs/design.md §6).

Of a ~7 ms write of one run, attaching the catalog and replaying its log take ~2 ms and
detaching ~0.3. A process that writes again soon (a sweep of short runs, a loop that flushes)
keeps the file attached and the sidecar write lock held, for at most ``LINGER`` after its last
write and ``HOLD_MAX`` in all, and gives both up as soon as anyone else wants the catalog:
another thread of this process (:func:`tracker.storage.lock.acquire` asks first), another
process waiting for the lock (it says so on a byte of the lock file, which a watcher thread
looks at every ``POLL``), the interpreter exiting, a fork.

Each write's commit is in the log, fdatasynced, before the write returns, kept or not: keeping
changes only when another process can open the file, never what a crash leaves.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from tracker import teardown
from tracker.storage import files as _files
from tracker.storage import lock as _lock

#: Seconds an attachment is kept after its last write, and at most in all: a burst of writes
#: shares one attach, and a DuckDB shell (which cannot ask for the file) waits no longer.
LINGER = 0.1
HOLD_MAX = 1.0
#: Seconds between the watcher's looks for another process waiting for the lock.
POLL = 0.002

_live: weakref.WeakSet[Held] = weakref.WeakSet()
_live_guard = threading.Lock()


class Held:
    """One catalog file attached and write-locked past its write: taken by the next write of
    the same :class:`tracker.storage.store.Store`, or let go.

    ``close(done)`` detaches the file (``done``: the last write succeeded, and the file at the
    path is still the one attached); ``release`` unlocks it. The thread that creates a Held is
    inside its write: it calls :meth:`keep` or :meth:`drop` when that write ends, as does each
    thread that :meth:`take`\\ s it later.
    """

    def __init__(self, path: str, connection: Any, close: Callable[[bool], None],
                 release: Callable[[], None]) -> None:
        self.path = path
        self._connection = connection
        self._close = close
        self._release = release
        self._file = _files.identity(path)
        self._lock_key = _lock.key_of(path)  # resolved once: the watcher asks every POLL
        self._use = threading.Lock()  # held by the write inside, and while letting go
        self._use.acquire()
        self._alive = True
        self._since = self._last = time.monotonic()
        self._watcher: threading.Thread | None = None
        with _live_guard:
            _live.add(self)

    def take(self) -> Any | None:
        """The attached connection for one more write, or None when it was let go (or the file
        at the path is another one now): then the caller attaches afresh."""
        self._use.acquire()
        try:
            if self._alive and _files.identity(self.path) == self._file:
                return self._connection
            if self._alive:
                self._let_go(done=True)
        except BaseException:
            self._use.release()
            raise
        self._use.release()
        return None

    def keep(self) -> None:
        """The write succeeded: keep the attachment for the next, unless it is wanted now."""
        try:
            now = time.monotonic()
            if _lock.wanted(self._lock_key) or teardown.begun() or now - self._since >= HOLD_MAX:
                self._let_go(done=True)
                return
            self._last = now
            if self._watcher is None:
                self._start_watching()
        except BaseException:  # an interrupt, a thread that cannot start: nobody would let go
            if self._alive:
                self._let_go(done=True)
            raise
        finally:
            self._use.release()

    def _start_watching(self) -> None:
        _lock.keep_until_wanted(self._lock_key, self.give_up)
        self._watcher = threading.Thread(target=self._watch, name="tracker-held", daemon=True)
        self._watcher.start()

    def drop(self) -> None:
        """The write failed: detach (rolling back what it left open) and unlock."""
        try:
            self._let_go(done=False)
        finally:
            self._use.release()

    def give_up(self, timeout: float = -1, *, if_due: bool = False) -> None:
        """Detach and unlock now (from any thread), after the write inside, if any, ends
        within ``timeout`` seconds (else leave it: the caller's wait for the lock then times
        out, naming this process); ``if_due``: only if it is wanted or past its time by then."""
        if not self._use.acquire(timeout=timeout):
            return
        try:
            if self._alive and (not if_due or self._due()):
                self._let_go(done=True)
        finally:
            self._use.release()

    def _watch(self) -> None:
        while self._alive:
            time.sleep(POLL)
            if self._due():
                self.give_up(if_due=True)

    def _due(self) -> bool:
        now = time.monotonic()
        return (now - self._last >= LINGER or now - self._since >= HOLD_MAX
                or teardown.begun() or _lock.wanted(self._lock_key))

    def _let_go(self, *, done: bool) -> None:
        """Detach and unlock; the caller holds ``_use``."""
        self._alive = False
        _lock.keep_until_wanted(self._lock_key, None)
        # A file put in the kept one's place meanwhile is not what the write left behind.
        done = done and _files.identity(self.path) == self._file
        try:
            self._close(done)
        finally:
            self._release()

    def forget(self) -> None:
        """In a forked child: the parent's lock and attachment are not this process's."""
        self._alive = False
        self._use = threading.Lock()


def give_up_all() -> None:
    """Let every kept attachment go (at interpreter exit, before DuckDB's teardown)."""
    with _live_guard:
        kept = list(_live)
    for held in kept:
        held.give_up()


def _after_fork() -> None:
    global _live_guard
    _live_guard = threading.Lock()  # a parent's thread may have held it at the fork
    for held in list(_live):
        held.forget()


teardown.before_teardown(give_up_all)
if hasattr(os, "register_at_fork"):
    # Let go before a fork: DuckDB keeps one table of attached files per process, so a child
    # born while its parent's instance held the file could never attach it (that instance is
    # never closed in the child: tracker.storage.instances).
    os.register_at_fork(before=give_up_all, after_in_child=_after_fork)
