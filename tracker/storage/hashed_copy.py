"""Copying a file and hashing exactly the bytes written, in one pass.

Keeping a content costs a copy and two hashes (BLAKE3 names it, xxh3 matches the hash the run
recorded). The copy is the kernel's (``copy_file_range``, as ``cp`` does), in 16 MiB chunks;
a second thread hashes each chunk of the *copy* as soon as it is written, through a read-only
map of the private staging file: the pages are still in memory, so the hashes are of the
stored bytes and cost no read and no copy to user space (BLAKE3 and xxh3 release the GIL, so
copying and hashing overlap). Where the file system can share blocks (a reflink), the file is
cloned and the clone is hashed: no copy at all. Where the kernel cannot copy (another device,
an old kernel), each 1 MiB buffer is read once, hashed, and written by a second thread.
Measured in benchmarks/figures/contents.py (docs/design.md §8).
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import queue
import threading
from typing import Any, NamedTuple

__all__ = ["BUFFER", "FICLONE", "KEY_PREFIX", "Hashes", "content_key", "copy_hashed", "hash_fd"]

#: Read, hash and write this much at a time: small enough to stay in a core's cache while it
#: is hashed, large enough that system calls cost nothing; four of them in flight.
BUFFER = 1 << 20
_IN_FLIGHT = 4
#: The kernel copies this much per call; the hasher maps and hashes each such chunk of the copy.
CHUNK = 16 << 20
#: copy_file_range cannot copy between these two files (other devices, an old kernel): read.
#: Map the chunk's pages at once (Linux), rather than one page fault per 64 KiB while hashing.
_POPULATE = getattr(mmap, "MAP_POPULATE", 0)
_NO_KERNEL_COPY = frozenset({errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL})
FICLONE = 0x40049409  # linux/fs.h: _IOW(0x94, 9, int)
#: A kept content's name is this and its BLAKE3 (hex): here, below both the store
#: (:mod:`tracker.storage.contents`) and the syncs it hands over (``write_behind``).
KEY_PREFIX = "blake3-"


class Hashes(NamedTuple):
    """A content's BLAKE3 and xxh3-128 digests (hex) and its size."""

    blake3: str
    xxh3: str
    size: int


def content_key(blake3: str) -> str:
    """The name of the content whose BLAKE3 (hex) is ``blake3``."""
    return KEY_PREFIX + blake3


def copy_hashed(src: int, out: int, *, strong: bool = True) -> Hashes:
    """Copy the open file ``src`` (from its start) to the empty file ``out`` and hash it;
    without ``strong`` only xxh3 (``blake3`` is empty), for a copy whose bytes are hashed
    again when it is named (see :mod:`tracker.background_keeps`)."""
    try:
        fcntl.ioctl(out, FICLONE, src)
    except OSError:
        pass
    else:
        # The clone's pages are not in memory (the source's are): without ``strong`` the
        # source is hashed, and whoever names the clone later hashes it and compares.
        return hash_fd(out if strong else src, strong=strong)
    hashes = _kernel_copy_and_hash(src, out, strong)
    if hashes is not None:
        return hashes
    os.ftruncate(out, 0)  # whatever the kernel copied before it gave up: copied again
    return _copy_and_hash(src, out, strong)


def hash_fd(fd: int, *, strong: bool = True) -> Hashes:
    """The hashes of the open file ``fd``, read from its start (xxh3 only without ``strong``)."""
    strong_hash, fast, size = _hashers(strong)
    view = memoryview(bytearray(BUFFER))
    while n := os.preadv(fd, [view], size):
        strong_hash.update(view[:n])
        fast.update(view[:n])
        size += n
    return _hashes(strong_hash, fast, size)


def _kernel_copy_and_hash(src: int, out: int, strong: bool) -> Hashes | None:
    """Copy with copy_file_range while a hasher thread hashes each chunk of ``out`` (which must
    be open for reading too) behind it; None if the kernel cannot copy these files whole."""
    strong_hash, fast, size = _hashers(strong)
    written: queue.SimpleQueue[int | None] = queue.SimpleQueue()
    failed: list[OSError] = []
    hasher = threading.Thread(target=_hash_behind,
                              args=(out, written, (strong_hash, fast), failed),
                              name="tracker-keep-hasher", daemon=True)
    _advise_sequential(src)
    hasher.start()
    try:
        while not failed and (n := _kernel_copy(src, out, size)):
            size += n
            written.put(size)
    finally:
        written.put(None)
        hasher.join()
    if failed:
        raise failed[0]
    if size < os.fstat(src).st_size:  # refused, or cut short (some FUSE and NFS mounts)
        return None
    return _hashes(strong_hash, fast, size)


def _kernel_copy(src: int, out: int, offset: int) -> int:
    """Bytes the kernel copied at ``offset`` (0: the end, or it cannot copy these files)."""
    try:
        return os.copy_file_range(src, out, CHUNK, offset, offset)
    except OSError as exc:
        if exc.errno in _NO_KERNEL_COPY:
            return 0
        raise


def _hash_behind(out: int, written: queue.SimpleQueue[int | None], hashers: tuple[Any, Any],
                 failed: list[OSError]) -> None:
    """The hasher thread: maps what the copier reports written (up to each offset it sends)
    and hashes it. Mapped read-only, only bytes already written, of a private file nobody else
    opens, so the file cannot shrink under the map."""
    done = 0
    while (end := written.get()) is not None:
        if failed:
            continue
        start = done - done % mmap.ALLOCATIONGRANULARITY
        try:
            with mmap.mmap(out, end - start, mmap.MAP_SHARED | _POPULATE, mmap.PROT_READ,
                           offset=start) as mapped, memoryview(mapped) as view:
                for hasher in hashers:
                    hasher.update(view[done - start:])
        except OSError as exc:
            failed.append(exc)
        done = end


def _copy_and_hash(src: int, out: int, strong: bool) -> Hashes:
    """Read ``src`` into buffers and hash each; a writer thread writes them to ``out``."""
    strong_hash, fast, size = _hashers(strong)
    free: queue.SimpleQueue[memoryview] = queue.SimpleQueue()
    full: queue.SimpleQueue[tuple[memoryview, int] | None] = queue.SimpleQueue()
    for _ in range(_IN_FLIGHT):
        free.put(memoryview(bytearray(BUFFER)))
    failed: list[OSError] = []
    writer = threading.Thread(target=_write_all, args=(out, full, free, failed),
                              name="tracker-keep-writer", daemon=True)
    writer.start()
    _advise_sequential(src)
    try:
        while not failed:
            view = free.get()
            n = os.preadv(src, [view], size)
            if not n:
                break
            strong_hash.update(view[:n])
            fast.update(view[:n])
            full.put((view, n))
            size += n
    finally:
        full.put(None)
        writer.join()
    if failed:
        raise failed[0]
    return _hashes(strong_hash, fast, size)


def _write_all(out: int, full: queue.SimpleQueue[tuple[memoryview, int] | None],
               free: queue.SimpleQueue[memoryview], failed: list[OSError]) -> None:
    """The writer thread: each buffer handed over, written whole, then handed back; the first
    error (a full disk) is kept for the reader, which stops."""
    while (item := full.get()) is not None:
        view, n = item
        try:
            done = 0
            while not failed and done < n:
                done += os.write(out, view[done:n])
        except OSError as exc:
            failed.append(exc)
        free.put(view)


def _advise_sequential(fd: int) -> None:
    """Tell the kernel ``fd`` is read once from start to end (more read-ahead): a hint only."""
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
    except OSError:
        pass


def strong_hasher() -> Any:
    """A BLAKE3 hasher, on one thread: the copy has the other core. Spread over idle cores
    (AUTO), BLAKE3 took twice the CPU time on a loaded machine, and the wall time followed
    (docs/design.md §8)."""
    import blake3

    return blake3.blake3()


def _hashers(strong: bool = True) -> tuple[Any, Any, int]:
    import xxhash

    return strong_hasher() if strong else _NoHash(), xxhash.xxh3_128(), 0


class _NoHash:
    """The strong hash left for later: takes the bytes, names nothing."""

    def update(self, data: Any) -> None:
        pass

    def hexdigest(self) -> str:
        return ""


def _hashes(strong: Any, fast: Any, size: int) -> Hashes:
    return Hashes(strong.hexdigest(), fast.hexdigest(), size)
