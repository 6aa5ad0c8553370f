"""The content-addressed store of kept file contents: each distinct content stored once.

A kept content's name is ``blake3-<hex>``: BLAKE3 is a cryptographic hash, so nobody can make
two contents share a name (xxh3, which notices changes, does not resist that), and it hashes at
about memory speed (docs/design.md §8). The store is the catalog's blob folder,
another folder (a team's shared one) or an S3-compatible bucket: ``TRACKER_STORE``.

Copies are made so that a stored content is exactly what its name says and what the catalog
recorded: the source is copied into a private temporary file (a reflink where the file system
shares blocks, else read once and written by :mod:`tracker.storage.hashed_copy`), its stat key
must be the same before and after the copy, and the bytes written are hashed as they are
written (the clone, after it is made), BLAKE3 for its name and xxh3 to match the hash the run
recorded. Anything else raises :class:`ContentChanged` and nothing is stored.

Restoring trusts the catalog's own folder (0700, contents 0400, verified when stored; the
caller checks the size) and hashes what comes from a shared folder or a bucket, where others
can write: bytes without their name's hash raise :class:`ContentDamaged` (docs/design.md §8).
A shared folder's subfolders and contents are its group's, with the group permissions it has
(a team's, made by an admin: ``chgrp team; chmod 2770``), read-only once stored.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import io
import os
import shutil
import stat
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any, NamedTuple, Protocol

from tracker.errors import TrackerError
from tracker.storage import write_behind
from tracker.storage.hashed_copy import (
    FICLONE,
    KEY_PREFIX,
    Hashes,
    content_key,
    copy_hashed,
    hash_fd,
    strong_hasher,
)
from tracker.storage.spools import sync_path

__all__ = ["ContentChanged", "ContentDamaged", "ContentStore", "Entry", "FolderStore",
           "KEY_PREFIX", "Kept", "Staged", "StoreUnavailable", "check_file_named", "check_size",
           "is_key", "is_owner", "keep_file", "stage_copy", "store_staged"]

_CHUNK = 8 << 20
_HEX = frozenset("0123456789abcdef")


class ContentChanged(OSError):
    """The file changed while (or since) it was looked at: its bytes are not the recorded ones."""


class ContentDamaged(TrackerError, FileNotFoundError):
    """The stored file named for a content holds other bytes (altered or damaged in the
    store): that content is not there, as if missing, and nothing is given back. Also what
    reading a bucket's content to its end raises when its bytes were not that content."""


class StoreUnavailable(OSError):
    """The store cannot be reached or refused the request now (a bucket's network or server
    error): like a full disk, the batch waits and is tried again; nothing is judged unreadable."""


class Kept(NamedTuple):
    """A content in the store: its name, size, and its xxh3 hash as tracker records hashes."""

    key: str
    size: int
    fast_hash: str


class Entry(NamedTuple):
    """A stored content as a listing shows it."""

    key: str
    size: int
    mtime: float


class ContentStore(Protocol):
    """What a store does; :class:`FolderStore` and ``tracker.storage.bucket.BucketStore``."""

    location: str
    shared: bool  # another catalog may use it too: purge leaves it alone

    def has(self, key: str) -> bool: ...
    def add(self, staged: Path, key: str) -> None: ...
    def open(self, key: str) -> IO[bytes]: ...
    def restore(self, key: str, dest: Path) -> None: ...
    def delete(self, key: str) -> None: ...
    def entries(self) -> Iterator[Entry]: ...
    # A shared store's reference marks: which catalog references which content.
    def mark(self, owner: str, key: str) -> None: ...
    def unmark(self, owner: str, key: str) -> None: ...
    def marks(self) -> dict[str, dict[str, float]]: ...
    def remove_unless_marked(self, key: str) -> bool: ...


def is_owner(name: str) -> bool:
    """Whether ``name`` is a catalog's id in a shared store's marks (32 hex digits)."""
    return len(name) == 32 and set(name) <= _HEX


def is_key(name: str) -> bool:
    """Whether ``name`` is a kept content's name (and so holds no path)."""
    digest = name[len(KEY_PREFIX):]
    return name.startswith(KEY_PREFIX) and len(digest) == 64 and set(digest) <= _HEX


def _check_owner(owner: str) -> str:
    if not is_owner(owner):
        raise ValueError(f"{owner[:80]!r} is not a catalog's id in a shared store")
    return owner


def _check_key(key: str) -> str:
    if not is_key(key):
        raise ValueError(f"{key[:80]!r} is not the name of a kept content")
    return key


class FolderStore:
    """Contents as files named by their key in one folder: the catalog's own (private: 0700,
    contents 0400), or a team's (``shared``), whose subfolders and contents take the folder's
    group and its group permissions, never any for others (:meth:`_give`)."""

    def __init__(self, folder: Path, *, shared: bool = False) -> None:
        self.folder = folder
        self.location = str(folder)
        self.shared = shared

    def path(self, key: str) -> Path:
        return self.folder / _check_key(key)

    def has(self, key: str) -> bool:
        """Whether the content is stored; if so its mtime becomes now, so that a purge does
        not take it for an old unreferenced content while a run is about to reference it."""
        self._recover()
        return refresh(self.path(key))

    def add(self, staged: Path, key: str) -> None:
        """Move a verified staged copy in under its key (the same content: the first stays).
        The catalog records it ``kept`` next, and commits that durably, so a power cut must
        not leave the record naming an empty or missing file: into the catalog's own folder
        it is renamed unsynced, journaled, and synced just after (:mod:`.write_behind`);
        into a shared folder it is on disk before this returns."""
        target = self.path(key)
        self._recover()
        if refresh(target):
            staged.unlink()
            return
        self._make_root()
        self._give(staged, 0o400)  # a kept content never changes
        if not self.shared and write_behind.journal(self.folder, key):
            try:
                os.replace(staged, target)
            finally:
                write_behind.sync_behind(self.folder, key)
            return
        try:
            sync_path(staged)  # what cp does not do: see benchmarks/README.md
            os.replace(staged, target)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            # A shared folder on another device: copied under a temporary name, then renamed.
            partial = self.folder / f".{staged.name}"
            try:
                copy_file(staged, partial)
                sync_path(partial)
                self._give(partial, 0o400)
                os.replace(partial, target)
            finally:  # a failed copy (a full disk, retried later) leaves no partial behind
                partial.unlink(missing_ok=True)
            staged.unlink()
        sync_path(self.folder)

    def open(self, key: str) -> IO[bytes]:
        """The content's file, read-only. From a shared folder (others can write there) it is
        hashed first, as a restore hashes it: bytes without their name's hash raise
        ContentDamaged; the catalog's own folder is trusted, as by :meth:`restore`."""
        self._recover()
        stream = open(self.path(key), "rb")  # noqa: SIM115 - the caller closes it
        if self.shared:
            try:
                check_named(hash_fd(stream.fileno()), key)  # from offset 0; the file's stays 0
            except BaseException:
                stream.close()
                raise
        return stream

    def restore(self, key: str, dest: Path) -> None:
        """Copy the content into ``dest``. From a shared folder (others can write there) the
        copy is hashed as it is written, as when it was kept, and bytes without the hash they
        are named for raise ContentDamaged; the catalog's own folder (0700, contents 0400,
        verified when stored) is trusted, and its callers check the size."""
        self._recover()
        if not self.shared:
            copy_file(self.path(key), dest)
            return
        with open(self.path(key), "rb") as src, _rewritten(dest) as out:
            check_named(copy_hashed(src.fileno(), out.fileno()), key)

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def entries(self) -> Iterator[Entry]:
        self._recover()
        if not self.folder.is_dir():
            return
        for item in os.scandir(self.folder):
            if is_key(item.name) and item.is_file(follow_symlinks=False):
                info = item.stat(follow_symlinks=False)
                yield Entry(item.name, info.st_size, info.st_mtime)

    def mark(self, owner: str, key: str) -> None:
        """Note that the catalog ``owner`` references ``key``: an empty file
        ``.marks/<owner>/<key>`` (:mod:`tracker.shared_store`)."""
        folder = self._marks / _check_owner(owner)
        mark = folder / _check_key(key)
        with contextlib.suppress(FileNotFoundError):
            os.utime(mark)
            return
        self._make_root()
        for made in (self._marks, folder):
            with contextlib.suppress(FileExistsError):
                made.mkdir(mode=0o700)
                self._give(made, 0o700)
        # Readable and writable by the group: the users of one PostgreSQL catalog share its id.
        with contextlib.suppress(FileExistsError):
            os.close(os.open(mark, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
            self._give(mark, 0o600)

    def unmark(self, owner: str, key: str) -> None:
        (self._marks / _check_owner(owner) / _check_key(key)).unlink(missing_ok=True)

    def marks(self) -> dict[str, dict[str, float]]:
        """Each marked content's name, with the catalogs that mark it and when they did."""
        found: dict[str, dict[str, float]] = {}
        if self._marks.is_dir():
            for owner in os.scandir(self._marks):
                if is_owner(owner.name) and owner.is_dir(follow_symlinks=False):
                    for mark in os.scandir(owner.path):
                        if is_key(mark.name):
                            found.setdefault(mark.name, {})[owner.name] = \
                                mark.stat(follow_symlinks=False).st_mtime
        return found

    def remove_unless_marked(self, key: str) -> bool:
        """Remove a content no catalog marks. It is moved aside before the marks are read
        again: a catalog marks a content before it looks for it, so one that found it here
        has marked it by then (it goes back), and one that looks later stores it again."""
        aside = self.folder / f".{_check_key(key)}.{os.getpid()}.aside"
        try:
            os.replace(self.path(key), aside)
        except FileNotFoundError:
            return False
        if key in self.marks():
            os.replace(aside, self.path(key))
            return False
        aside.unlink()
        return True

    def _recover(self) -> None:
        """Settle what crashed processes left unsynced in the catalog's own folder, once per
        process (:func:`.write_behind.recover`); a shared folder syncs before each rename."""
        if not self.shared:
            write_behind.recover(self.folder)

    @property
    def _marks(self) -> Path:
        return self.folder / ".marks"

    def _make_root(self) -> None:
        """Create the folder if it is missing, private (0700) even when shared: its admin
        makes it a team's (README, Team catalogs), and what tracker stores in it follows."""
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)

    def _give(self, path: Path, private: int) -> None:
        """Set the mode of an entry this store just made: ``private`` (the owner's bits) and,
        in a shared folder, as many of the same bits for the group as the folder grants its
        group, once the entry is the folder's group's (chown, as a member of it; else it
        stays private). Others get nothing; a folder keeps its setgid bit."""
        if not self.shared:
            os.chmod(path, private)
            return
        root = os.stat(self.folder)
        group = (private >> 3) & root.st_mode & 0o070
        if group and os.stat(path).st_gid != root.st_gid:
            try:
                os.chown(path, -1, root.st_gid)
            except PermissionError:  # not a member of the folder's group
                group = 0
        setgid = root.st_mode & stat.S_ISGID if path.is_dir() and group else 0
        os.chmod(path, private | group | setgid)


def refresh(path: Path) -> bool:
    """Whether ``path`` is a stored file, its mtime set to now: purge removes only contents
    unreferenced *and* untouched for an hour, so one a run reuses survives until it commits."""
    try:
        os.utime(path)
    except FileNotFoundError:
        return False
    except PermissionError:  # a shared store's content of another user: purge leaves those
        pass
    return path.is_file()


def retryable(exc: OSError) -> bool:
    """Whether copying may work later: the store is full or out of reach (not the file)."""
    return isinstance(exc, StoreUnavailable) or exc.errno in (errno.ENOSPC, errno.EDQUOT)


def staging_dir(blob_dir: Path) -> Path:
    """Where copies wait until they are verified: beside the catalog, private."""
    folder = blob_dir / ".staging"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder


class Staged(NamedTuple):
    """A private copy in the staging folder, hashed as it was written: where, and what."""

    path: Path
    key: str
    size: int
    fast_hash: str


def keep_file(store: ContentStore, path: str, staging: Path, *,
              expected_hash: str | None, seen: Sequence[int] | None = None,
              owner: str | None = None) -> Kept:
    """Copy the regular file at ``path`` into ``store``, verified; ContentChanged if it is not
    (any more) the content recorded: another stat key than ``seen``, a change during the copy,
    or a copy whose xxh3 is not ``expected_hash``. ``owner``: see :func:`store_staged`."""
    staged = stage_copy(path, staging, seen)
    try:
        return store_staged(store, staged, path, expected_hash=expected_hash, owner=owner)
    finally:
        staged.path.unlink(missing_ok=True)


def stage_copy(path: str, staging: Path, seen: Sequence[int] | None = None, *,
               hashed: bool = True, strong: bool = True) -> Staged:
    """A private copy of ``path`` in ``staging``, hashed as it was written, made while the file
    kept one stat key (``seen`` when given), to be stored by :func:`store_staged`;
    ContentChanged (and nothing left behind) otherwise. ``hashed=False`` copies the fastest
    way and leaves hashing to :func:`store_staged`: a content saved on the user's thread,
    just before the file is overwritten. ``strong=False`` hashes with xxh3 only and leaves the
    key empty: named later (a big content, off the batch's path)."""
    staged = staging / f".{os.getpid()}-{threading.get_ident()}-{time.monotonic_ns()}.part"
    try:
        hashes = _copy_unchanged(path, staged, seen, hashed=hashed, strong=strong)
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
    if hashes is None:
        return Staged(staged, "", staged.stat().st_size, "")
    key = content_key(hashes.blake3) if hashes.blake3 else ""
    return Staged(staged, key, hashes.size, "xxh3_128:" + hashes.xxh3)


def store_staged(store: ContentStore, staged: Staged, path: str, *,
                 expected_hash: str | None, owner: str | None = None) -> Kept:
    """Move the copy ``staged`` (of ``path``) into ``store`` under its BLAKE3 name once its
    xxh3 is ``expected_hash`` (when given), else ContentChanged; marked for the catalog
    ``owner`` first in a shared store. The caller removes the staged file if it is still
    there (a failure)."""
    if not staged.key:  # copied without naming: hashed now, off the user's thread
        key, fast = hash_contents(staged.path)
        staged = staged._replace(key=key, fast_hash=fast)
    if expected_hash is not None and staged.fast_hash != expected_hash:
        raise ContentChanged(errno.ESTALE, "changed since it was hashed", path)
    if owner is not None:  # before looking: see FolderStore.remove_unless_marked
        store.mark(owner, staged.key)
    if store.has(staged.key):
        staged.path.unlink()
    else:
        store.add(staged.path, staged.key)
    return Kept(staged.key, staged.size, staged.fast_hash)


def _copy_unchanged(path: str, staged: Path, seen: Sequence[int] | None, *,
                    hashed: bool, strong: bool) -> Hashes | None:
    """Copy ``path`` to ``staged``, hashing what is written if ``hashed``. ContentChanged
    unless its stat key is ``seen`` (when given) and stays the same across the copy."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode):
            raise OSError(errno.EINVAL, "not a regular file", path)
        if seen is not None and tuple(seen) != _key(before):
            raise ContentChanged(errno.ESTALE, "changed since it was logged", path)
        os.set_blocking(fd, True)
        out = os.open(staged, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            hashes = copy_hashed(fd, out, strong=strong) if hashed else None
            if hashes is None:
                _copy_fd(fd, out, before.st_size)
            size = os.fstat(out).st_size
        finally:
            os.close(out)
        if _key(os.fstat(fd)) != _key(before) or size != before.st_size:
            raise ContentChanged(errno.ESTALE, "changed while it was copied", path)
        return hashes
    finally:
        os.close(fd)


def _key(info: os.stat_result) -> tuple[int, int, int, int]:
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)


def copy_file(source: Path, dest: Path) -> None:
    """Copy ``source`` to ``dest`` the fastest way the file systems allow; a symlink at
    ``dest`` is refused, never followed (restoring writes nowhere else than it was told)."""
    with open(source, "rb") as src, _rewritten(dest) as out:
        _copy_fd(src.fileno(), out.fileno(), os.fstat(src.fileno()).st_size)


@contextlib.contextmanager
def _rewritten(dest: Path) -> Iterator[IO[bytes]]:
    """``dest`` opened to be written whole (readable too: a copy may be hashed from it), mode
    0600 when created; a symlink there is refused, never followed."""
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    with open(os.open(dest, flags, 0o600), "r+b") as out:
        # Truncated only if not empty: on ext4 a truncation makes close() start writing the
        # whole file back (auto_da_alloc), 0.4 s of a 1 GiB restore's 1.7 s here.
        if os.fstat(out.fileno()).st_size:
            os.ftruncate(out.fileno(), 0)
        yield out


def _copy_fd(src: int, out: int, size: int) -> None:
    """A reflink (shared blocks: btrfs, XFS) if the file system can, else copy_file_range
    (an in-kernel copy; ext4 here), else a read/write copy (across devices, old kernels)."""
    try:
        fcntl.ioctl(out, FICLONE, src)
        return
    except OSError:
        pass
    done = 0
    try:
        while done < size:
            copied = os.copy_file_range(src, out, size - done, done, done)
            if copied == 0:  # some FUSE and NFS mounts stop early: copied again below
                break
            done += copied
        if done == size:
            return
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL) or done:
            raise
    with os.fdopen(os.dup(src), "rb") as reader, os.fdopen(os.dup(out), "wb") as writer:
        reader.seek(0)
        shutil.copyfileobj(reader, writer, _CHUNK)


def check_size(path: Path, size: int | None, key: str) -> None:
    """ContentDamaged unless the file written from the store has the recorded ``size``."""
    if size is not None and os.stat(path).st_size != size:
        raise ContentDamaged(errno.ENOENT, "the stored bytes are not of the recorded size", key)


def check_named(hashes: Hashes, key: str) -> None:
    """ContentDamaged unless ``hashes`` (of bytes read from the store) are of the content
    named ``key``."""
    if not _names(hashes.blake3, key):
        raise _misnamed(key)


def check_file_named(path: Path, key: str) -> None:
    """:func:`check_named` for a file written from the store (a bucket's download)."""
    if hash_contents(path)[0] != key:
        raise _misnamed(key)


def _names(blake3: str, key: str) -> bool:
    """Whether ``key`` is the name of the content whose BLAKE3 (hex) is ``blake3``."""
    return content_key(blake3) == key


def _misnamed(key: str) -> ContentDamaged:
    return ContentDamaged(errno.ENOENT, "the stored bytes do not have the hash they are named "
                          "for (altered or damaged in the store): nothing read from them is "
                          "that content; restore the store's file from another copy", key)


def checked_stream(stream: IO[bytes], key: str) -> IO[bytes]:
    """``stream`` (a bucket's download of the content ``key``) hashed as it is read: reaching
    its end raises ContentDamaged unless the bytes were that content. It cannot seek, so no
    byte goes unread; a reader that stops early has checked nothing (restore() checks all)."""
    return io.BufferedReader(_CheckedStream(stream, key), _CHUNK)


class _CheckedStream(io.RawIOBase):
    def __init__(self, stream: IO[bytes], key: str) -> None:
        super().__init__()
        self._stream, self._key = stream, key
        self._hash = strong_hasher()
        self._damaged: bool | None = None  # known at the end

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self._stream.read(len(view))
        if data:
            view[:len(data)] = data
            self._hash.update(data)
            return len(data)
        if self._damaged is None:
            self._damaged = not _names(self._hash.hexdigest(), self._key)
        if self._damaged:
            raise _misnamed(self._key)  # at every end reached, not only the first
        return 0

    def close(self) -> None:
        try:
            self._stream.close()
        finally:
            super().close()


def hash_contents(path: Path) -> tuple[str, str]:
    """(``blake3-<hex>``, ``xxh3_128:<hex>``) of a file, in one read."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        hashes = hash_fd(fd)
    finally:
        os.close(fd)
    return content_key(hashes.blake3), "xxh3_128:" + hashes.xxh3
