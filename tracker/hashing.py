"""Content hashes of files, fast and cached, so re-recording an unchanged file costs a stat.

:func:`hash_file` gives ``"xxh3_128:<hex>"`` of a file (or of a folder's listing);
:class:`FileHasher` caches by (device, inode, size, mtime_ns), thread-safe, never raising for a
vanished or unreadable file. Reads go through :func:`tracker.capture.suppressed` so tracker
hashing a file is never mistaken for the notebook reading it.

Only regular files are read: a FIFO, socket or device (``/dev/zero``) would block or never end,
and the flusher holds the catalog's lock while it hashes, so such a path gets ``hash=None``. A
folder is hashed only up to :data:`DIR_MAX_ENTRIES` names and :data:`DIR_MAX_BYTES` bytes;
past either bound its ``hash`` and ``size`` are None (its mtime is still recorded).
"""

from __future__ import annotations

import errno
import os
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tracker.capture import suppressed

__all__ = ["FileFacts", "FileHasher", "file_facts", "hash_bytes", "hash_file"]

_CHUNK = 8 * 1024 * 1024
_HASH_PREFIX = "xxh3_128:"
_HASH_CACHE_LIMIT = 100_000
DIR_MAX_ENTRIES = 10_000
DIR_MAX_BYTES = 1 << 30
_buffers = threading.local()


@dataclass(frozen=True, slots=True)
class FileFacts:
    """What the catalog records about a file; ``hash`` is None when it could not be read."""

    path: str
    size: int | None
    mtime: float | None
    hash: str | None


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
        self._cache: dict[tuple[int, int, int, int], str] = {}
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

    def _content_hash(self, path: str) -> str:
        with suppressed(), _open_regular(path) as stream:
            before = _stat_key(os.fstat(stream.fileno()))
            cached = self._cache.get(before)
            if cached is not None:
                return cached
            digest = _hash_stream(stream)
            # A file changing while it is read gets no cache entry: its hash matches no state.
            if _stat_key(os.fstat(stream.fileno())) == before:
                self._remember(before, digest)
            return digest

    def _remember(self, key: tuple[int, int, int, int], digest: str) -> None:
        with self._lock:
            if len(self._cache) >= _HASH_CACHE_LIMIT:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = digest


_shared_hasher = FileHasher()


def file_facts(path: str) -> FileFacts:
    """:meth:`FileHasher.hash` through one process-wide cache."""
    return _shared_hasher.hash(path)


def _stat_key(info: os.stat_result) -> tuple[int, int, int, int]:
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)


def _hash_content(path: str) -> str:
    with suppressed(), _open_regular(path) as stream:
        return _hash_stream(stream)


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


def _hash_stream(stream: Any) -> str:
    # readinto a reused buffer rather than mmap: a file truncated under an mmap raises SIGBUS,
    # which would kill the kernel; xxhash releases the GIL, so the reading thread does not block.
    import xxhash

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
