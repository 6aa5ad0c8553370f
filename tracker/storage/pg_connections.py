"""The connections one process keeps open to a PostgreSQL catalog, reused from one operation to
the next.

Opening a connection costs several round trips and a server process (about 8 ms over a Unix
socket, more over a network), which dominated a run's write and a reader's query. So a
:class:`~tracker.storage.pg_store.PgStore` hands each finished operation's connection back to its
:class:`Idle` connections and the next operation, on any thread, takes one from there. A
connection is used by one thread at a time (taken out while in use, so threads never share
one); at most :data:`KEEP` wait idle (the flusher's and a reader's), the rest are closed.

A connection that went away while idle (a server restarted, a backend terminated) is found out
by the next operation's ``BEGIN`` and replaced (:mod:`tracker.storage.pg_store`). A child
process never touches its parent's connections (their socket is the parent's session: closing
it would end that session too); it opens its own. Idle connections are closed at interpreter
exit, and a connection handed back after that is closed at once.
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Any

#: idle connections kept per catalog and process: the flusher's and one reader's
KEEP = 2

#: connections inherited across a fork: never used nor closed in the child (closing would end
#: the parent's session), kept referenced so no finaliser warns about them
_inherited: list[Any] = []
_everywhere: weakref.WeakSet[Idle] = weakref.WeakSet()


class Idle:
    """The idle connections of ``owner`` (a catalog's store) in this process, closed when the
    owner is collected or the interpreter exits (``weakref.finalize`` runs at exit too)."""

    def __init__(self, owner: object) -> None:
        self._lock = threading.Lock()
        self._connections: list[Any] = []
        self._pid = os.getpid()
        self._closing = False
        weakref.finalize(owner, self.close)
        _everywhere.add(self)

    def take(self) -> Any | None:
        """An idle connection of this process, or None when there is none."""
        with self._lock:
            self._after_fork()
            while self._connections:
                connection = self._connections.pop()
                if reusable(connection):
                    return connection
                connection.close()
        return None

    def give(self, connection: Any) -> None:
        """Keep ``connection``, done with, for the next operation; or close it: one in a
        transaction or broken, one more than :data:`KEEP`, or any once the process exits."""
        with self._lock:
            self._after_fork()
            if reusable(connection) and not self._closing and len(self._connections) < KEEP:
                self._connections.append(connection)
                return
        connection.close()

    def close(self) -> None:
        """Close the idle connections, and from now on every one handed back."""
        with self._lock:
            self._after_fork()
            self._closing = True
            connections, self._connections = self._connections, []
        for connection in connections:
            connection.close()

    def _after_fork(self) -> None:
        """In a child process, leave the parent's connections alone. Called by the fork hook
        (a thread of the parent's may have held the lock: the child gets a new one) and, lock
        held, by each method (a fork the hook did not see)."""
        if self._pid == os.getpid():
            return
        _inherited.extend(self._connections)
        self._connections = []
        self._pid = os.getpid()

    def _forked(self) -> None:
        self._lock = threading.Lock()
        self._after_fork()


def reusable(connection: Any) -> bool:
    """True for an open connection outside any transaction (as far as the client knows)."""
    from psycopg import pq

    return not connection.closed and not connection.broken and \
        connection.info.transaction_status == pq.TransactionStatus.IDLE


def _in_child() -> None:
    for idle in list(_everywhere):
        idle._forked()


os.register_at_fork(after_in_child=_in_child)
