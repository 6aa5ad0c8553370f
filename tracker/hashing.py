"""Content hashes of files, fast and cached, so re-recording an unchanged file costs a stat.

:func:`hash_file` gives ``"xxh3_128:<hex>"`` of a file (or of a folder's listing);
:class:`FileHasher` caches by (device, inode, size, mtime_ns), thread-safe, never raising for a
vanished or unreadable file. Reads go through :func:`tracker.capture.suppressed` so tracker
hashing a file is never mistaken for the notebook reading it.

Only regular files are read: a FIFO, socket or device (``/dev/zero``) would block or never end,
and the flusher holds the catalog's lock while it hashes, so such a path gets ``hash=None``. A
folder is hashed only up to :data:`DIR_MAX_ENTRIES` names and :data:`DIR_MAX_BYTES` bytes;
past either bound its ``hash`` and ``size`` are None (its mtime is still recorded).

A hash must be of the content the run saw, never of a later one: :meth:`FileHasher.on_log`
hashes a file when it is logged if it is small (:data:`HASH_ON_LOG_MAX`), and otherwise notes
its stat key (``seen``), which :meth:`FileHasher.as_seen` checks before and after hashing it
later; a file that changed in between gets ``hash=None``, never the hash of other content.
"""

from __future__ import annotations

import errno
import os
import stat
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tracker.capture import suppressed

__all__ = ["FileFacts", "FileHasher", "file_facts", "file_facts_as_seen", "file_facts_on_log",
           "hash_bytes", "hash_file", "pin_file"]

_CHUNK = 8 * 1024 * 1024
_HASH_PREFIX = "xxh3_128:"
_HASH_CACHE_LIMIT = 100_000
DIR_MAX_ENTRIES = 10_000
DIR_MAX_BYTES = 1 << 30
#: Files up to this size are hashed when a call logs them (``log_input``/``log_output``, the
#: outputs a cell wrote, at its end): 11-30 ms at 64 MiB, less than writing the file took.
HASH_ON_LOG_MAX = 64 << 20
#: Files up to this size are hashed when the capture sees them opened for reading (about
#: 0.15 ms at 1 MiB, once per file and run); larger ones when a write-open of the same path is
#: about to replace them, or later.
HASH_ON_READ_MAX = 1 << 20
# A file modified this recently may change again within its mtime's granularity (coarse kernel
# clocks: a few ms; some file systems: 2 s) without its stat key changing, so its hash is not
# cached: the next call reads it again.
_RACY_SECONDS = 2.0
_buffers = threading.local()

StatKey = tuple[int, int, int, int]  # (device, inode, size, mtime_ns)


@dataclass(frozen=True, slots=True)
class FileFacts:
    """What the catalog records about a file; ``hash`` is None when it could not be read."""

    path: str
    size: int | None
    mtime: float | None
    hash: str | None
    #: the stat key of a file logged but not hashed yet, for :meth:`FileHasher.as_seen`
    seen: StatKey | None = None

    def fields(self) -> dict[str, Any]:
        """What an artifact event carries: size, mtime, hash, and ``seen`` when set."""
        known = {"size": self.size, "mtime": self.mtime, "hash": self.hash}
        return known if self.seen is None else {**known, "seen": list(self.seen)}


def hash_bytes(data: bytes) -> str:
    """``"xxh3_128:<hex>"`` of ``data``: the form of every content hash tracker records."""
    import xxhash

    return _HASH_PREFIX + xxhash.xxh3_128_hexdigest(data)


def hash_file(path: str) -> str:
    """``"xxh3_128:<hex>"`` of a file's content, or of a folder's (name, size, hash) listing.

    Raises:
        OSError: the path is missing or unreadable, is not a regular file or folder (a FIFO, a
            device), or is a folder past :data:`DIR_MAX_ENTRIES` names or :data:`DIR_MAX_BYTES`.
    """
    if os.path.isdir(path):
        return _hash_dir(path, _hash_content)[0]
    return _hash_content(path)


class FileHasher:
    """Hashes files, caching by (device, inode, size, mtime_ns) so unchanged files are not reread.

    Thread-safe; never raises for a vanished or unreadable file (its ``hash`` is None).
    """

    def __init__(self) -> None:
        self._cache: dict[StatKey, str] = {}
        self._pinned: dict[StatKey, str] = {}
        self._lock = threading.Lock()

    def hash(self, path: str) -> FileFacts:
        """Size, mtime and content hash of a file or folder; ``hash`` is None for anything but
        a regular file or a folder within the bounds (see the module docstring)."""
        try:
            info = os.stat(path)
        except OSError:
            return FileFacts(path, None, None, None)
        try:
            if stat.S_ISDIR(info.st_mode):
                digest, size, mtime = _hash_dir(path, self._content_hash)
                return FileFacts(path, size, mtime, digest)
            return FileFacts(path, info.st_size, info.st_mtime, self._content_hash(path))
        except OSError:
            # A folder's own st_size is not its content's: unknown rather than wrong.
            known = None if stat.S_ISDIR(info.st_mode) else info.st_size
            return FileFacts(path, known, info.st_mtime, None)

    def on_log(self, path: str, limit: int) -> FileFacts | None:
        """A regular file as a logging call sees it: hashed now if it has at most ``limit``
        bytes, else its ``seen`` stat key for :meth:`as_seen`. None for anything else (a
        folder, a missing path), which is hashed later with :meth:`hash`."""
        try:
            info = os.stat(path)
        except OSError:
            return None
        if not stat.S_ISREG(info.st_mode):
            return None
        if info.st_size > limit:
            return FileFacts(path, info.st_size, info.st_mtime, None, seen=_stat_key(info))
        return self.hash(path)

    def as_seen(self, path: str, seen: StatKey) -> FileFacts:
        """The file as it was when its stat key was ``seen``: hashed only if it still has that
        key before and after it is read; ``hash`` is None when it changed (or is gone)."""
        seen = _as_key(seen)
        digest = self._pinned.get(seen)
        if digest is None:
            try:
                digest = self._content_hash(path, expected=seen)
            except OSError:
                digest = None
        return FileFacts(path, seen[2], seen[3] / 1e9, digest)

    def pin(self, path: str, seen: StatKey) -> None:
        """Hash a file logged with stat key ``seen`` now, before it is overwritten, for
        :meth:`as_seen`; nothing if it already changed. Kept apart from the cache: a
        freshly written file's key may be reused by other content (see _RACY_SECONDS)."""
        seen = _as_key(seen)
        try:
            digest = self._content_hash(path, expected=seen)
        except OSError:
            return
        with self._lock:
            if len(self._pinned) >= _HASH_CACHE_LIMIT:
                self._pinned.pop(next(iter(self._pinned)))
            self._pinned[seen] = digest

    def _content_hash(self, path: str, expected: StatKey | None = None) -> str:
        """The content hash; OSError if the file is not in the ``expected`` state or changes
        while it is read (its hash would match no content it ever had)."""
        with suppressed(), _open_regular(path) as stream:
            before = _stat_key(os.fstat(stream.fileno()))
            if expected is not None and before != expected:
                raise OSError(errno.ESTALE, "changed since it was logged", path)
            cached = self._cache.get(before)
            if cached is not None:
                return cached
            digest = _hash_stream(stream, before[2])
            if _stat_key(os.fstat(stream.fileno())) != before:
                raise OSError(errno.ESTALE, "changed while it was hashed", path)
            if time.time() - before[3] / 1e9 > _RACY_SECONDS:
                self._remember(before, digest)
            return digest

    def _remember(self, key: StatKey, digest: str) -> None:
        with self._lock:
            if len(self._cache) >= _HASH_CACHE_LIMIT:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = digest


_shared_hasher = FileHasher()


def file_facts(path: str) -> FileFacts:
    """:meth:`FileHasher.hash` through one process-wide cache."""
    return _shared_hasher.hash(path)


def file_facts_on_log(path: str, limit: int) -> FileFacts | None:
    """:meth:`FileHasher.on_log` through the process-wide cache."""
    return _shared_hasher.on_log(path, limit)


def file_facts_as_seen(path: str, seen: StatKey) -> FileFacts:
    """:meth:`FileHasher.as_seen` through the process-wide hasher, where :func:`pin_file`
    left the hash of a file taken before it was overwritten."""
    return _shared_hasher.as_seen(path, seen)


def pin_file(path: str, seen: StatKey) -> None:
    """:meth:`FileHasher.pin` through the process-wide hasher."""
    _shared_hasher.pin(path, seen)


def _as_key(seen: Sequence[int]) -> StatKey:
    """A stat key as a tuple (events carry it as a JSON list)."""
    device, inode, size, mtime_ns = seen
    return (device, inode, size, mtime_ns)


def _stat_key(info: os.stat_result) -> StatKey:
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)


def _hash_content(path: str) -> str:
    with suppressed(), _open_regular(path) as stream:
        return _hash_stream(stream, os.fstat(stream.fileno()).st_size)


def _open_regular(path: str) -> Any:
    """An unbuffered binary stream on ``path`` if it is a regular file, else OSError.

    O_NONBLOCK makes opening a FIFO with no writer return at once instead of waiting for one;
    the type is checked on the open descriptor, so a path swapped after a stat cannot slip by.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", path)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb", buffering=0)
    except BaseException:
        os.close(fd)
        raise


def _hash_stream(stream: Any, size: int) -> str:
    # readinto a reused buffer rather than mmap: a file truncated under an mmap raises SIGBUS,
    # which would kill the kernel; xxhash releases the GIL, so the reading thread does not block.
    import xxhash

    if size < _CHUNK:  # read whole: no chunk buffer kept in a user thread that hashed a read
        return _HASH_PREFIX + xxhash.xxh3_128_hexdigest(stream.readall())
    buffer = getattr(_buffers, "buffer", None)
    if buffer is None:
        buffer = _buffers.buffer = bytearray(_CHUNK)
    view = memoryview(buffer)
    hasher = xxhash.xxh3_128()
    while n := stream.readinto(view):
        hasher.update(view[:n])
    return _HASH_PREFIX + hasher.hexdigest()


def _hash_dir(path: str, content_hash: Callable[[str], str]) -> tuple[str, int, float]:
    """Hash of a folder's sorted (relative path, size, content hash) lines; total size and
    newest mtime."""
    import xxhash

    entries = _dir_entries(path)
    listing = "".join(f"{rel}\0{info.st_size}\0{content_hash(os.path.join(path, rel))}\n"
                      for rel, info in entries)
    size = sum(info.st_size for _, info in entries)
    mtime = max((info.st_mtime for _, info in entries), default=os.stat(path).st_mtime)
    digest = xxhash.xxh3_128(listing.encode("utf-8", "surrogateescape")).hexdigest()
    return _HASH_PREFIX + digest, size, mtime


def _dir_entries(path: str) -> list[tuple[str, os.stat_result]]:
    """A folder's regular files, sorted by relative path, checked against the bounds before
    any is read: OSError past :data:`DIR_MAX_ENTRIES` names (files and subfolders) or
    :data:`DIR_MAX_BYTES`."""
    entries: list[tuple[str, os.stat_result]] = []
    seen = size = 0
    for root, dirs, files in os.walk(path, onerror=_raise):
        seen += len(dirs) + len(files)
        for name in files:
            full = os.path.join(root, name)
            info = os.stat(full)
            if stat.S_ISREG(info.st_mode):
                entries.append((os.path.relpath(full, path), info))
                size += info.st_size
        if seen > DIR_MAX_ENTRIES or size > DIR_MAX_BYTES:
            raise OSError(errno.EFBIG, "folder too big to hash", path)
    entries.sort(key=lambda entry: entry[0])
    return entries


def _raise(error: OSError) -> None:
    raise error
