"""Copying a file and hashing exactly the bytes written, in one pass.

Keeping a content costs a copy and two hashes (BLAKE3 names it, xxh3 matches the hash the run
recorded). Copying first and hashing the copy reads every byte twice; here each buffer is read
once, hashed while it is in the CPU's cache, and written by a second thread meanwhile (BLAKE3
and xxh3 release the GIL), so the copy and the hashing overlap. Because the hashes are of the
very buffers written, the copy needs no reading back to be verified. Where the file system can
share blocks (a reflink), the file is cloned and the clone is hashed instead: no copy at all.
Measured in benchmarks/figures/contents.py (docs/design.md §8).
"""

from __future__ import annotations

import fcntl
import os
import queue
import threading
from typing import Any, NamedTuple

__all__ = ["BUFFER", "FICLONE", "Hashes", "copy_hashed", "hash_fd"]

#: Read, hash and write this much at a time: small enough to stay in a core's cache while it
#: is hashed, large enough that system calls cost nothing; four of them in flight.
BUFFER = 1 << 20
_IN_FLIGHT = 4
FICLONE = 0x40049409  # linux/fs.h: _IOW(0x94, 9, int)


class Hashes(NamedTuple):
    """A content's BLAKE3 and xxh3-128 digests (hex) and its size."""

    blake3: str
    xxh3: str
    size: int


def copy_hashed(src: int, out: int) -> Hashes:
    """Copy the open file ``src`` (from its start) to the empty file ``out`` and hash it."""
    try:
        fcntl.ioctl(out, FICLONE, src)
    except OSError:
        return _copy_and_hash(src, out)
    return hash_fd(out)


def hash_fd(fd: int) -> Hashes:
    """The hashes of the open file ``fd``, read from its start."""
    strong, fast, size = _hashers()
    view = memoryview(bytearray(BUFFER))
    while n := os.preadv(fd, [view], size):
        strong.update(view[:n])
        fast.update(view[:n])
        size += n
    return _hashes(strong, fast, size)


def _copy_and_hash(src: int, out: int) -> Hashes:
    """Read ``src`` into buffers and hash each; a writer thread writes them to ``out``."""
    strong, fast, size = _hashers()
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
            strong.update(view[:n])
            fast.update(view[:n])
            full.put((view, n))
            size += n
    finally:
        full.put(None)
        writer.join()
    if failed:
        raise failed[0]
    return _hashes(strong, fast, size)


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


def _hashers() -> tuple[Any, Any, int]:
    import blake3
    import xxhash

    # BLAKE3 splits a buffer over the cores left idle (AUTO): the writer needs only one.
    return blake3.blake3(max_threads=blake3.blake3.AUTO), xxhash.xxh3_128(), 0


def _hashes(strong: Any, fast: Any, size: int) -> Hashes:
    return Hashes(strong.hexdigest(), fast.hexdigest(), size)
