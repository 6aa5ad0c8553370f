"""Content hashes of files, fast and cached, so re-recording an unchanged file costs a stat.

:func:`hash_file` gives ``"xxh3_128:<hex>"`` of a file (or of a folder's listing);
:class:`FileHasher` caches by (device, inode, size, mtime_ns), thread-safe, never raising for a
vanished or unreadable file. Reads go through :func:`tracker.capture.suppressed` so tracker
hashing a file is never mistaken for the notebook reading it.
"""

from __future__ import annotations

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
        OSError: the path is missing or unreadable.
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
        """Size, mtime and content hash of a file or folder."""
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
            return FileFacts(path, info.st_size, info.st_mtime, None)

    def _content_hash(self, path: str) -> str:
        with suppressed(), open(path, "rb", buffering=0) as stream:
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
    with suppressed(), open(path, "rb", buffering=0) as stream:
        return _hash_stream(stream)


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

    entries = []
    for root, _dirs, files in os.walk(path, onerror=_raise):
        for name in files:
            full = os.path.join(root, name)
            info = os.stat(full)
            if stat.S_ISREG(info.st_mode):
                entries.append((os.path.relpath(full, path), info, content_hash(full)))
    entries.sort(key=lambda entry: entry[0])
    listing = "".join(f"{rel}\0{info.st_size}\0{digest}\n" for rel, info, digest in entries)
    size = sum(info.st_size for _, info, _ in entries)
    mtime = max((info.st_mtime for _, info, _ in entries), default=os.stat(path).st_mtime)
    digest = xxhash.xxh3_128(listing.encode("utf-8", "surrogateescape")).hexdigest()
    return _HASH_PREFIX + digest, size, mtime


def _raise(error: OSError) -> None:
    raise error
