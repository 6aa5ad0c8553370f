"""Big contents kept in two steps, so that a run's batch waits for their copy and no more.

Keeping a content costs a copy, xxh3 (the version's recorded hash) and BLAKE3 (its name in the
store). On this machine's two cores BLAKE3 alone takes 0.72 s per GiB and ``cp`` 0.30 s, so a
batch that waits for the name cannot come near the time of ``cp`` (docs/design.md §8). A
content of at least :data:`MIN_SIZE` going to a local catalog's own folder is therefore copied
into the staging folder, hashed with xxh3 as it is copied (verified against the hash recorded
for it, or recorded with that hash), and recorded ``storing`` under a token in place of its
name. The flusher names it next (BLAKE3, and xxh3 again: the bytes on disk are the bytes
verified), moves it into the store, and records it ``kept`` under its key.

The staged copy is the record of the work left: ``storing-<token>`` in the staging folder,
locked (``flock``) by its process while it waits. One whose process died (its lock went with
it) is named by the next process that writes to the catalog, or that asks for the content.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tracker import keeping
from tracker.storage import contents
from tracker.storage.lock import flocked

if TYPE_CHECKING:
    from tracker.catalog import Catalog

__all__ = ["MAX_PER_BATCH", "MIN_SIZE", "PREFIX", "Settler", "Storing", "defers", "release",
           "settle_orphans", "stage"]

#: Named in the background from this size up: below it BLAKE3 costs under 12 ms.
MIN_SIZE = 16 << 20
#: Each waiting content holds a descriptor (its lock): past this many in one batch, the rest
#: are named before the batch is written, as small ones are.
MAX_PER_BATCH = 32
PREFIX = "storing-"
#: One statement, one pass over the versions, for every content named (there is no index on
#: blob): each version still storing under a token takes its status and key.
_SETTLE = ("UPDATE catalog.artifacts SET kept = v.status, blob = v.key FROM (SELECT "
           "unnest(?::VARCHAR[]) AS token, unnest(?::VARCHAR[]) AS status, "
           "unnest(?::VARCHAR[]) AS key) v WHERE artifacts.blob = v.token "
           "AND artifacts.kept = ?")


@dataclass
class Storing:
    """A content copied and verified, waiting for its name: ``token`` is what its version
    records as its blob meanwhile, and the staged copy's name; ``lock`` the open file that
    holds the copy's flock. ``key`` and ``status`` are set once it is named; ``origin`` (the
    path and version it was copied for) lets a batch that logs it twice copy it once."""

    token: str
    staged: contents.Staged
    lock: int
    key: str | None = None
    status: str = keeping.STORING
    origin: tuple[str, Any] | None = None


def defers(catalog: Catalog, store: contents.ContentStore, size: int) -> bool:
    """Whether a content of ``size`` bytes going to ``store`` is named in the background: a
    big one, into a local catalog's own folder (a shared folder or a bucket is written by
    others, and a PostgreSQL catalog's versions by other machines: kept at once there)."""
    from tracker.storage.store import Store

    return (size >= MIN_SIZE and isinstance(catalog.store, Store)
            and isinstance(store, contents.FolderStore) and not store.shared)


def stage(path: str, staging: Path, expected_hash: str | None,
          seen: Sequence[int] | None) -> Storing:
    """Copy ``path`` into ``staging`` with its xxh3, while it keeps the stat key ``seen``
    (when given), as a content waiting for its name; ContentChanged if it is not (any more)
    the version hashed ``expected_hash``."""
    staged = contents.stage_copy(path, staging, seen, strong=False)
    lock = -1
    try:
        if expected_hash is not None and staged.fast_hash != expected_hash:
            raise contents.ContentChanged(errno.ESTALE, "changed since it was hashed", path)
        locked = flocked(staged.path)
        if locked is None:  # the staged copy removed by hand meanwhile: nothing left to name
            raise FileNotFoundError(errno.ENOENT, "staged copy removed", str(staged.path))
        lock = locked
        token = PREFIX + secrets.token_hex(16)
        os.rename(staged.path, staging / token)  # locked before any other process can see it
    except BaseException:
        staged.path.unlink(missing_ok=True)
        if lock >= 0:
            os.close(lock)
        raise
    return Storing(token, staged._replace(path=staging / token), lock)


class Settler:
    """One recorder's contents waiting for their names, named from its flusher thread."""

    def __init__(self) -> None:
        self._items: list[Storing] = []
        self._lock = threading.Lock()
        self._naming = threading.Lock()  # one thread names them: the flusher, or a reader

    def add(self, items: Sequence[Storing]) -> None:
        with self._lock:
            self._items.extend(items)

    def waiting(self) -> bool:
        return bool(self._items)

    def forked(self) -> None:
        """In a child made by fork: let go of the parent's copies (this process's descriptors
        only: the parent keeps its locks) without taking a lock, which a thread of the parent
        may have held at the fork."""
        items, self._items = self._items, []
        self._lock, self._naming = threading.Lock(), threading.Lock()
        for item in items:
            _close(item)

    def abandon(self) -> None:
        """Let go of what still waits, its copies left staged for another process to name."""
        with self._lock:
            items, self._items = self._items, []
        for item in items:
            _close(item)

    def settle(self, catalog: Catalog, *, guard: Any = None, timeout: float | None = None,
               cancel: threading.Event | None = None) -> None:
        """Name and store each waiting content, then record them in one write, inside
        ``guard`` (the recorder's lock on its writes; not held while hashing, so a flush
        waits for no name); ``cancel`` stops between contents. What an error (the catalog
        locked past ``timeout``, a full disk) or ``cancel`` leaves waits for the next call.
        A content whose batch never committed is named too: its update changes nothing, and
        purge reclaims the unreferenced content."""
        with self._naming:
            with self._lock:
                items = list(self._items)
            # Into the catalog's own folder, where defers() sent it, whatever TRACKER_STORE
            # the process naming it has.
            store = contents.FolderStore(catalog.blob_dir)
            named = []
            for item in items:
                if cancel is not None and cancel.is_set():
                    break
                if item.key is None and item.status == keeping.STORING:
                    _name(store, item)
                named.append(item)
            if not named:
                return
            with guard if guard is not None else contextlib.nullcontext():
                _record(catalog, [(item.token, item.status, item.key) for item in named],
                        timeout, cancel)
            with self._lock:
                self._items = [item for item in self._items if item not in named]
            for item in named:
                release(item)


def release(item: Storing) -> None:
    """The staged copy removed (stored, or given up) and its lock let go."""
    try:
        item.staged.path.unlink(missing_ok=True)
    finally:
        _close(item)


def _close(item: Storing) -> None:
    with contextlib.suppress(OSError):
        os.close(item.lock)


def settle_orphans(catalog: Catalog, *, guard: Any = None, timeout: float | None = None,
                   cancel: threading.Event | None = None, lost: bool = False) -> None:
    """Name the contents that processes which died left waiting in ``catalog``'s staging
    folder (their locks are gone), each checked against the hash its version records, and
    record them (``guard``, ``cancel``: see :meth:`Settler.settle`). A copy no version waits
    for (its batch never committed: a replay of the spool keeps the file again) goes. With
    ``lost`` (before contents are read), a version still storing whose copy is gone (removed
    by hand: its process keeps the copy until the catalog names it) is recorded unreadable;
    without it, the catalog is read only when there are orphans."""
    from tracker.storage.store import Store

    folder = catalog.blob_dir / ".staging"
    # Only a local catalog stages (see defers), in this folder once anything big was kept:
    # otherwise the flusher's pass does not even open the catalog (a background read would
    # refuse the user's own duckdb.connect() of it in that moment). Before contents are read,
    # a folder removed by hand has lost every copy that was in it.
    if not isinstance(catalog.store, Store) or not (lost or folder.is_dir()):
        return
    orphans = [item for entry in folder.glob(PREFIX + "*") if (item := _adopted(entry))]
    if not orphans and not lost:
        return
    settler = Settler()
    try:
        recorded = _storing(catalog, timeout)
        gone = [token for token in recorded if not (folder / token).exists()] if lost else []
        if gone:
            with guard if guard is not None else contextlib.nullcontext():
                _record(catalog, [(token, keeping.UNREADABLE, None) for token in gone],
                        timeout, cancel)
        for item in orphans:
            digest = recorded.get(item.token)
            if not digest:
                release(item)
                continue
            item.staged = item.staged._replace(fast_hash=digest)
            settler.add([item])
        orphans = []
        settler.settle(catalog, guard=guard, timeout=timeout, cancel=cancel)
    finally:
        settler.abandon()  # what could not be recorded: left for the next try, by anyone
        for item in orphans:
            _close(item)


def _storing(catalog: Catalog, timeout: float | None) -> dict[str, str | None]:
    """The token of each version still storing, with the hash it records."""
    with catalog.store.connect(timeout=timeout, qualified=True) as con:
        return dict(con.execute("SELECT DISTINCT blob, hash FROM catalog.artifacts "
                                "WHERE kept = ?", [keeping.STORING]).fetchall())


def _adopted(entry: Path) -> Storing | None:
    """The orphan at ``entry``, locked, if no live process holds it."""
    try:
        lock = flocked(entry)
    except OSError:  # named and moved meanwhile
        return None
    if lock is None:  # its process is alive and holds it, or it was named meanwhile
        return None
    return Storing(entry.name, contents.Staged(entry, "", os.fstat(lock).st_size, ""), lock)


def _name(store: contents.ContentStore, item: Storing) -> None:
    """Hash the staged copy and move it into ``store`` under its key, through a second link:
    the copy stays under its token until the catalog records the key (a process killed in
    between leaves it to be named again, never a version naming nothing)."""
    link = item.staged.path.with_name(f".{item.token}.part")  # purge reclaims one left behind
    try:
        # Both names, and the content in the store, are new to a purge (it spares what is
        # younger than an hour), however long ago the copy was made.
        os.utime(item.lock)
        link.unlink(missing_ok=True)
        os.link(item.staged.path, link)
        # Checked against the xxh3 its version records: the bytes on disk are the ones verified.
        kept = contents.store_staged(store, item.staged._replace(path=link), item.token,
                                     expected_hash=item.staged.fast_hash or None)
        item.key, item.status = kept.key, keeping.KEPT
    except contents.ContentChanged:  # not the bytes verified when copied: a damaged disk
        item.status = keeping.CHANGED
    except FileNotFoundError:
        item.status = keeping.UNREADABLE
    except OSError as exc:
        if contents.retryable(exc):
            raise  # a full disk: named again once there is space
        item.status = keeping.UNREADABLE
    finally:
        link.unlink(missing_ok=True)


def _record(catalog: Catalog, outcomes: list[tuple[str, str, str | None]],
            timeout: float | None, cancel: threading.Event | None) -> None:
    """Record each (token, status, key): the versions still storing under the token get
    the status, and the key as their blob."""
    tokens, statuses, keys = zip(*outcomes, strict=True)
    columns = [list(tokens), list(statuses), list(keys), keeping.STORING]
    with catalog.store.connect(write=True, timeout=timeout, cancel=cancel,
                               qualified=True) as con:
        con.execute(_SETTLE, columns)
