"""The param and metric keys a process knows the catalog file holds, so a write skips looking
them up (docs/design.md §6: the look-up was ~1 ms of a ~10 ms write).

Only what is known to be in the file is cached, never that a key is absent: a key not cached is
looked up in the write's transaction, so a key another process added is seen. Keys are learnt
from look-ups and, once their transaction commits, from inserts (``param_keys`` and
``metric_keys`` only ever grow). The cache holds only while the file is untouched between this
process's writes: its identity (inode, size, times) is taken after each write, still under the
lock, and a write that finds it changed starts afresh. A catalog deleted and created again, or
replaced by a rename or a copy, so never keeps keys it lost; nor does one another process
checkpointed meanwhile (its commits usually stay in the log, which this does not watch).
"""

from __future__ import annotations

import os


class KnownKeys:
    """The ``(key, kind)`` rows of ``param_keys`` and the ``(key,)`` rows of ``metric_keys``
    known to be committed in one catalog file; see the module's notes."""

    def __init__(self) -> None:
        self.params: set[tuple[str, ...]] = set()
        self.metrics: set[tuple[str, ...]] = set()
        self._file: tuple[int, ...] | None = None
        self._pending: tuple[set[tuple[str, ...]], set[tuple[str, ...]]] = (set(), set())

    def check(self, path: str) -> None:
        """Forget every key unless ``path`` is as this process's last write left it; call
        under the write lock, before the file is attached."""
        current = _identity(path)
        if current is None or current != self._file:
            self.params.clear()
            self.metrics.clear()
        self._file = None  # until seen() after this write: a failed write leaves no identity
        self.begin()

    def seen(self, path: str) -> None:
        """This process's write is done and detached: remember the file as it left it."""
        self._file = _identity(path)

    def begin(self) -> None:
        """A transaction starts: nothing it inserts is known yet."""
        self._pending = (set(), set())

    def hold(self, params: set[tuple[str, ...]], metrics: set[tuple[str, ...]]) -> None:
        """Keys the current transaction found or inserted: known once it commits."""
        self._pending[0].update(params)
        self._pending[1].update(metrics)

    def committed(self) -> None:
        """The current transaction committed: what it held is in the file."""
        self.params |= self._pending[0]
        self.metrics |= self._pending[1]
        self.begin()


def _identity(path: str) -> tuple[int, ...] | None:
    """What changes when the file at ``path`` is written, replaced or removed."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns
