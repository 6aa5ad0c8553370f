"""The catalog's own content folder syncs kept contents behind the keep, with a journal.

``cp`` leaves its copy in the page cache; syncing a kept 1 GiB copy before the run records it
took as long as the copy itself (docs/design.md §8). So a content is renamed into the private
folder unsynced, and one background thread per process (``tracker-keep-sync``) syncs it about a
second later (:data:`HOLD`). Until then its name is in this process's journal,
``.unsynced/<boot_id>~<host>~<pid>~<start>`` (0600 in a 0700 folder, the line synced before the
rename: a few hundred bytes), so that after a crash the next process that uses the folder settles it
(:func:`recover`): a journal of this boot whose process is gone lists contents still whole in
the page cache (only a reboot loses them): they are synced; a journal of another boot lists
contents a power cut may have cut short: each is hashed, and one whose bytes are not its name's
is removed, so it is reported missing and kept again by a later run, never given back or
trusted. A team's shared folder and a bucket do not come here: they are synced before the rename
(many users, one journal each).
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import socket
import threading
import warnings
from pathlib import Path
from typing import NamedTuple

from tracker._process import process_start
from tracker.errors import TrackerWarning
from tracker.storage.hashed_copy import KEY_PREFIX, content_key, hash_fd
from tracker.storage.lock import flocked
from tracker.storage.spools import owner_alive, sync_path

__all__ = ["EXIT_WAIT", "HOLD", "JOURNALS", "boot_id", "journal", "recover", "sync_behind",
           "wait_synced"]

JOURNALS = ".unsynced"
EXIT_WAIT = 60.0  # seconds an exit waits for pending syncs; the next process does the rest
#: Seconds a content's sync waits, unless :func:`wait_synced` asks for it: the catalog's commits
#: that follow a keep (the record, the run's end) go first. A gigabyte's fdatasync started at
#: once made the commit after it wait 0.35-0.47 s (medians; 18 ms when held back).
HOLD = 1.0

_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
#: This host, as a journal's name holds it (a folder shared by hosts: see :func:`recover`).
_HOST = socket.gethostname().replace("~", "_").replace(os.sep, "_")
_lock = threading.Condition()
# Per folder, the contents renamed in and not synced yet, each with the turn of its latest
# keep: a content deleted and kept again while its first sync runs is synced again.
_pending: dict[Path, dict[str, int]] = {}
_turns = itertools.count()
_journaled: dict[Path, set[str]] = {}  # per folder, what this process's journal lists
_journals: dict[Path, Path] = {}  # per folder, this process's journal
_thread: threading.Thread | None = None
_closing = False  # the interpreter exits: contents are synced before their rename
_released = False  # wait_synced asks for the pending syncs now
_recovered: set[Path] = set()
_warned = False  # a give-up has been warned of: one warning per process, not one per batch
_recovering = threading.Lock()


def boot_id() -> str | None:
    """This boot's id (Linux), or None where there is none: then contents are synced before
    their rename, as in a shared folder. Tests patch it to fake another boot."""
    try:
        return _BOOT_ID.read_text(encoding="ascii").strip() or None
    except OSError:
        return None


def journal(folder: Path, key: str) -> bool:
    """Note in this process's journal that ``key`` is about to be renamed into ``folder``
    unsynced (the line on disk before this returns); False (nothing noted) when the caller
    must sync it itself: no boot id, or the interpreter exiting. Then :func:`sync_behind`."""
    boot = boot_id()
    with _lock:
        # At exit (threading has shut down: no thread may start) a content is synced here.
        if boot is None or _closing or not threading.main_thread().is_alive():
            return False
        path = _journals.setdefault(folder, _journal_path(folder, boot))
        fresh = not path.exists()
        if fresh:
            path.parent.mkdir(mode=0o700, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, f"{key}\n".encode("ascii"))
        finally:
            os.close(fd)
        sync_path(path)
        if fresh:  # the journal's name on disk too, and its folder's
            sync_path(path.parent)
            sync_path(folder)
        _journaled.setdefault(folder, set()).add(key)
    return True


def sync_behind(folder: Path, key: str) -> None:
    """Have the background thread sync the journaled ``key`` (renamed into ``folder`` or not:
    a failed rename leaves nothing to sync) in :data:`HOLD` seconds, and then drop it from
    the journal; at exit, done here and now."""
    with _lock:
        turn = _pending.setdefault(folder, {})[key] = next(_turns)
        if not _closing:
            _start()
            _lock.notify_all()
            return
    _sync_or_give_up(folder, {key: turn})


def wait_synced(timeout: float | None = None) -> bool:
    """Sync now every content this process kept, and wait until each is synced (or could not
    be: it stays in the journal for the next process); False if ``timeout`` seconds passed
    first."""
    global _released
    with _lock:
        _released = any(_pending.values())
        _lock.notify_all()
        return _lock.wait_for(lambda: not any(_pending.values()), timeout)


def recover(folder: Path) -> None:
    """Settle what crashed processes left unsynced in ``folder`` (see the module's docstring),
    once per process and folder: cheap when nothing is left. A live process's journal, this
    process's own and another host's are left alone; one that cannot be settled now (an I/O
    error) is left for the next process: a read never fails on it."""
    if folder in _recovered:
        return
    with _recovering:
        if folder in _recovered:
            return
        boot = boot_id()
        try:
            journals = list(os.scandir(folder / JOURNALS))
        except OSError:
            journals = []
        for entry in journals:
            owner = _owner(entry.name)  # None: a journal being rewritten (".name")
            if owner is None or owner.host != _HOST:
                continue  # another host's: only it can tell whether its process lives
            this_boot = owner.boot == boot
            if this_boot and _alive(owner):
                continue
            with contextlib.suppress(OSError):
                _settle(folder, Path(entry.path), trusted=this_boot)
        _recovered.add(folder)


class _Owner(NamedTuple):
    """Whose a journal is, from its name: ``<boot>~<host>~<pid>~<start or unknown>``."""

    boot: str
    host: str
    pid: int
    start: float | None


def _owner(name: str) -> _Owner | None:
    fields = name.split("~")
    if name.startswith(".") or len(fields) != 4:
        return None
    boot, host, pid, start = fields
    try:
        return _Owner(boot, host, int(pid), None if start == "unknown" else float(start))
    except ValueError:
        return None


def _alive(owner: _Owner) -> bool:
    """Whether the process that owns a journal is this one or lives (an unknown start time
    counts as the same process, as for spools)."""
    return owner.pid == os.getpid() or \
        bool(owner_alive(socket.gethostname(), owner.pid, owner.start))


def _settle(folder: Path, journal: Path, *, trusted: bool) -> None:
    """Sync each content ``journal`` lists and remove the journal. ``trusted`` (this boot's):
    the page cache holds their bytes; else each is hashed first and removed unless whole.
    Under an exclusive lock on the journal: processes started together after a reboot settle
    it once, and none removes a content another has just kept again."""
    fd = flocked(journal)
    if fd is None:  # another process is settling it, or settled it meanwhile
        return
    try:
        keys = set(_read_all(fd).decode("ascii", errors="replace").split())
        for key in sorted(keys):
            if not key.startswith(KEY_PREFIX) or os.sep in key:  # a line a power cut tore
                continue
            path = folder / key
            with contextlib.suppress(FileNotFoundError):
                damaged = None if trusted else _damaged(path, key)
                if damaged is None:
                    sync_path(path)
                else:
                    _remove(folder, path, damaged)
        sync_path(folder)  # each removal on disk before the journal that names it goes
        journal.unlink(missing_ok=True)
    finally:
        os.close(fd)


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)


_Identity = tuple[int, int, int]  # inode, size, mtime in ns: one version of a file


def _identity(info: os.stat_result) -> _Identity:
    return info.st_ino, info.st_size, info.st_mtime_ns


def _damaged(path: Path, key: str) -> _Identity | None:
    """The identity of ``path`` if its bytes are not the content named ``key``, else None."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        whole = content_key(hash_fd(fd).blake3) == key
        return None if whole else _identity(os.fstat(fd))
    finally:
        os.close(fd)


def _remove(folder: Path, path: Path, damaged: _Identity | None) -> None:
    """Remove the content at ``path``: renamed aside, then deleted, unless ``damaged`` is
    given and what was renamed aside is another file (the content kept again meanwhile,
    verified): that one is put back."""
    aside = folder / f".{path.name}.{os.getpid()}.damaged"
    os.replace(path, aside)
    if damaged is not None and _identity(os.stat(aside)) != damaged:
        os.replace(aside, path)
        return
    aside.unlink()


def _journal_path(folder: Path, boot: str) -> Path:
    pid = os.getpid()
    start = process_start(pid)
    started = "unknown" if start is None else f"{start:.0f}"
    return folder / JOURNALS / f"{boot}~{_HOST}~{pid}~{started}"


def _start() -> None:
    """Start the sync thread, once (the caller holds ``_lock``)."""
    global _thread
    if _thread is not None:
        return
    _thread = threading.Thread(target=_sync_forever, name="tracker-keep-sync", daemon=True)
    _thread.start()


def _sync_forever() -> None:
    global _released
    while True:
        with _lock:
            _lock.wait_for(lambda: any(_pending.values()))
            _lock.wait_for(_asked, HOLD)
            _released = False
            batch = {folder: dict(keys) for folder, keys in _pending.items() if keys}
        for folder, keys in batch.items():
            _sync_or_give_up(folder, keys)


def _asked() -> bool:
    return _released


def _sync(folder: Path, keys: dict[str, int]) -> None:
    """Sync ``keys`` (each with its turn) and ``folder``, then drop them from the pending set
    and the journal, unless kept again since. A content whose sync fails (EIO, a full disk for
    its delayed blocks) may never reach the disk: it is removed, as a damaged one is; one that
    cannot even be removed stays in the journal."""
    synced = set()
    for key in keys:
        try:
            sync_path(folder / key)
        except FileNotFoundError:  # deleted since, or its rename failed: nothing to sync
            pass
        except OSError:
            try:
                _remove(folder, folder / key, None)
            except FileNotFoundError:
                pass
            except OSError:
                continue
        synced.add(key)
    with contextlib.suppress(OSError):
        sync_path(folder)
    with _lock:
        done = _settled_turns(folder, keys)
        with contextlib.suppress(OSError):
            _drop(folder, synced & done)
        _lock.notify_all()


def _settled_turns(folder: Path, keys: dict[str, int]) -> set[str]:
    """Take ``keys`` out of the pending set but those kept again since their turn, and return
    the ones taken out (the caller holds ``_lock``)."""
    pending = _pending.get(folder, {})
    done = {key for key, turn in keys.items() if pending.get(key) == turn}
    for key in done:
        del pending[key]
    return done


def _sync_or_give_up(folder: Path, keys: dict[str, int]) -> None:
    """:func:`_sync`; after an unexpected error (a fault of ours) the pending ``keys`` are
    given up: they stay in the journal, for the next process of this boot to sync
    (:func:`recover`), no waiter hangs on them, and one warning per process says so."""
    try:
        _sync(folder, keys)
    except Exception as exc:
        _give_up(folder, keys, exc)


def _give_up(folder: Path, keys: dict[str, int], exc: Exception) -> None:
    global _warned
    with _lock:
        _settled_turns(folder, keys)
        _lock.notify_all()
        if _warned:
            return
        _warned = True
    with contextlib.suppress(Exception):  # under `-W error` the warning itself raises
        warnings.warn(f"tracker could not sync {len(keys)} kept content(s) in {folder} "
                      f"({type(exc).__name__}: {exc}); the next tracker process syncs them",
                      TrackerWarning, stacklevel=2)


def _drop(folder: Path, synced: set[str]) -> None:
    """Rewrite this process's journal without ``synced`` (written and synced under another
    name, then renamed over it), or remove it once it lists nothing (the caller holds
    ``_lock``)."""
    left = _journaled.get(folder, set()) - synced
    _journaled[folder] = left
    path = _journals.get(folder)
    if path is None:
        return
    if not left:
        path.unlink(missing_ok=True)
        return
    fresh = path.with_name(f".{path.name}")
    fd = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, "".join(f"{key}\n" for key in sorted(left)).encode("ascii"))
    finally:
        os.close(fd)
    sync_path(fresh)
    # No sync of the journals' folder: should the rename be lost, the old journal is back,
    # listing more contents than are unsynced, which recovery only syncs or checks again.
    os.replace(fresh, path)


@atexit.register
def _at_exit() -> None:
    """At exit, wait (bounded) for pending syncs; contents kept later are synced at once.
    Registered at import: ``tracker.recorder`` imports this module before it registers its own
    handler, so this one runs after the runs' last writes (atexit runs the last registered
    first), and a run's end never waits behind a gigabyte's sync."""
    global _closing
    with _lock:
        _closing = True
    wait_synced(EXIT_WAIT)


def _after_fork() -> None:
    """A forked child has no sync thread and a journal of its own (another pid)."""
    global _thread, _closing, _released, _lock, _recovering
    _lock, _recovering = threading.Condition(), threading.Lock()  # perhaps held by a thread gone
    _pending.clear()
    _journaled.clear()
    _journals.clear()
    _thread, _closing, _released = None, False, False


os.register_at_fork(after_in_child=_after_fork)
