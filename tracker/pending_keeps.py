"""Contents a run chose to keep but has not copied yet, saved before they are overwritten.

A run decides to keep a file's content when it logs the file; the copy into the store is made
later, by the flusher (:mod:`tracker.delivery`, up to about a second later). A checkpoint saved
again every epoch would be gone by then, and that version recorded ``changed``. So each content
waiting to be kept is registered here (:func:`expect`), and while any waits, the process-wide
audit hook (:func:`tracker.capture.watch_changes`) tells :func:`before_change` of every write-open,
rename, removal and truncation in this process, capture or not: before the file at a waiting
path changes, it is copied into the catalog's staging folder, and the flusher stores that copy
(:func:`claim`), verified against the recorded hash as any other. Only a path with a waiting
content pays (one copy, on the writing thread); any other write costs one dict lookup.

Not seen: writes by other processes, through a descriptor opened before the file was logged, or
through a memory map; such a version is still recorded ``changed``, never stored wrongly.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tracker import capture
from tracker.storage import contents

__all__ = ["MAX_WAITING", "before_change", "claim", "expect", "identity", "settle"]

#: Paths followed at most: past it the oldest are dropped (their events were completed by
#: another process, which does not tell this one).
MAX_WAITING = 1000
_ACCESS = os.O_WRONLY | os.O_RDWR

Identity = str | tuple[int, ...]  # the recorded xxh3 hash, or the stat key of a big file


@dataclass
class _Waiting:
    """One content of one path: how many events wait for it, and what was done for them."""

    blob_dir: Path
    seen: tuple[int, ...] | None
    count: int = 0
    staged: contents.Staged | None = None  # copied before the file changed
    kept: contents.Kept | None = None  # stored: later events of the same content reuse it


_lock = threading.Lock()
_waiting: dict[str, dict[Identity, _Waiting]] = {}


def identity(hash_: str | None, seen: Sequence[int] | None) -> Identity | None:
    """What names one version of a file between its logging and its copy."""
    return hash_ if hash_ is not None else (tuple(seen) if seen else None)


def expect(path: str, facts: dict[str, Any], blob_dir: Path) -> None:
    """An event will keep the content of ``path`` recorded in ``facts`` (its ``hash``, or the
    ``seen`` stat key of a big file): save it if the file is about to change before then."""
    ident = identity(facts.get("hash"), facts.get("seen"))
    if ident is None:
        return
    with _lock:
        versions = _waiting.setdefault(path, {})
        waiting = versions.get(ident)
        if waiting is None:
            seen = tuple(facts["seen"]) if facts.get("seen") else None
            waiting = versions[ident] = _Waiting(blob_dir, seen)
        waiting.count += 1
        while len(_waiting) > MAX_WAITING:
            _drop(next(iter(_waiting)))
        capture.watch_changes(before_change)


def before_change(event: str, args: tuple[Any, ...]) -> None:
    """The audit hook's call: before a waiting path is written, renamed or removed, save it."""
    for path in _changed_paths(event, args):
        real = os.path.realpath(path)
        if real in _waiting:
            _save(real)


def _changed_paths(event: str, args: tuple[Any, ...]) -> list[str]:
    if event == "open":
        path, mode, flags = args
        writes = flags & _ACCESS if flags else isinstance(mode, str) and not set(mode) <= {
            "r", "b", "t"}
        paths = [path] if writes else []
    elif event == "os.rename":
        paths = [args[0], args[1]]  # its content leaves the source; the destination's is lost
    else:  # os.remove, os.truncate
        paths = [args[0]]
    return [os.fsdecode(os.fspath(p)) for p in paths if isinstance(p, str | bytes | os.PathLike)]


def _save(path: str) -> None:
    """Copy the newest waiting content of ``path`` not copied yet (an older one changed
    unseen, so it cannot be this one), if the file still is that content."""
    with _lock:
        versions = _waiting.get(path, {})
        todo = [w for w in versions.values() if w.staged is None and w.kept is None]
    if not todo:
        return
    waiting = todo[-1]
    try:
        staged = contents.stage_copy(path, contents.staging_dir(waiting.blob_dir), waiting.seen,
                                     hashed=False)  # the flusher hashes it
    except OSError:  # changed already, gone, unreadable: recorded as such by the flusher
        return
    with _lock:
        wanted = waiting.count > 0 and waiting.staged is None and waiting.kept is None
        if wanted:
            waiting.staged = staged
    if not wanted:  # the flusher kept it meanwhile
        staged.path.unlink(missing_ok=True)


def claim(path: str, ident: Identity | None) -> contents.Kept | contents.Staged | None:
    """For the flusher: the stored content of this version (kept for an earlier event), or
    its copy saved before the file changed (the caller stores it, then calls :func:`settle`)."""
    with _lock:
        waiting = _waiting.get(path, {}).get(ident) if ident is not None else None
        if waiting is None:
            return None
        return waiting.kept or waiting.staged


def settle(path: str, ident: Identity | None, kept: contents.Kept | None) -> None:
    """One event of this version is done, ``kept`` or not: forget it with its last event."""
    with _lock:
        versions = _waiting.get(path, {})
        waiting = versions.get(ident) if ident is not None else None
        if ident is None or waiting is None:
            return
        waiting.count -= 1
        if kept is not None:
            waiting.kept = kept
        if waiting.count <= 0:
            del versions[ident]
            _discard(waiting)
            if not versions:
                del _waiting[path]
        if not _waiting:
            capture.watch_changes(None)


def _drop(path: str) -> None:
    for waiting in _waiting.pop(path).values():
        _discard(waiting)


def _discard(waiting: _Waiting) -> None:
    if waiting.staged is not None:
        waiting.staged.path.unlink(missing_ok=True)
