"""Spool files on disk: finding those that dead processes left, reading them, and keeping in
quarantine what cannot be stored.

A spool is ``<catalog>.spool/<host>-<pid>-<id>.jsonl``: an owner line, then one JSON line per
event, ``[seq, kind, run id, ...]`` (a :mod:`tracker.events` shape; written by ``tracker.recorder``,
applied by :mod:`tracker.storage.writer`).
Nothing in a spool is ever dropped: a line that is not an event, and an event the catalog
refuses, go to ``<catalog>.spool/quarantine/<name>.jsonl`` as ``{"error", "run_id", "seq",
"event", "quarantined_at"}`` lines, and a spool is removed only once all of it is in the catalog
or in quarantine.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import stat
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from tracker import events, values
from tracker._process import is_zombie, process_start
from tracker.events import Spooled


class Spooling(Protocol):
    """A catalog's store as far as spools go: a file catalog's, or a PostgreSQL one's."""

    @property
    def spool_dir(self) -> Path: ...

STALE_HEARTBEAT = 600.0  # a run on another host with no sign of life for this long crashed



class Reject(NamedTuple):
    """Something that cannot be stored, kept in quarantine with why."""

    error: str
    run_id: str | None
    seq: int | None
    event: Any  # the event, or the text of a spool line that is not one


def owner_alive(host: str | None, pid: int | None, started: float | None) -> bool | None:
    """Whether the process that owns a run lives; None when it is on another host."""
    if host != socket.gethostname():
        return None
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    if is_zombie(pid):  # exited, not reaped: its spool is an orphan's
        return False
    now = process_start(pid)
    return started is None or now is None or abs(now - started) < 1e-6


def append_whole(handle: Any, data: bytes) -> None:
    """Append ``data`` to an unbuffered spool whole or not at all (a full disk cuts writes)."""
    start = os.fstat(handle.fileno()).st_size
    view = memoryview(data)
    try:
        while view:
            view = view[handle.write(view):]
    except BaseException:
        os.ftruncate(handle.fileno(), start)  # never a partial line for recovery to trip on
        raise


def orphaned(folder: Path, mine: set[Path]) -> list[Path]:
    """The spools in ``folder`` whose process is gone (``mine``, this process's, excepted)."""
    if not folder.exists():
        return []
    orphans = []
    for path in folder.glob("*.jsonl"):
        if path in mine:
            continue
        owner = _read_owner(path)
        if owner is None:
            # No owner line means no events (it is written first), but a live process is
            # between creating or truncating its spool and writing that line: only an old
            # one is left over.
            if _untouched_for(path) > STALE_HEARTBEAT:
                orphans.append(path)
            continue
        if owner_alive(owner.get("host"), owner.get("pid"), owner.get("process_start")) is False:
            orphans.append(path)
    return orphans


def _untouched_for(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return 0.0


def _read_owner(path: Path) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as f:
            return json.loads(f.readline()).get("owner")
    except (OSError, ValueError, AttributeError):
        return None


def read(paths: Iterable[Path]) -> tuple[list[Spooled], dict[Path, list[Reject]]]:
    """All events of ``paths``, and each path's unreadable lines (a file gone meanwhile was
    recovered by another process: it is skipped)."""
    found: list[Spooled] = []
    unreadable: dict[Path, list[Reject]] = {}
    for path in paths:
        try:
            batch, bad = _read_spool(path)
        except FileNotFoundError:
            continue
        found += batch
        unreadable[path] = bad
    return found, unreadable


def _read_spool(path: Path) -> tuple[list[Spooled], list[Reject]]:
    """The events of a spool, and the lines that are not events (one cut short by a kill or a
    full disk, garbage): those are skipped, for quarantine, and reading goes on."""
    batch, unreadable = [], []
    with open(path, "rb") as f:
        f.readline()
        for number, line in enumerate(f, start=2):
            try:
                batch.append(_spooled_event(line))
            except (ValueError, TypeError, IndexError) as exc:
                text = line.decode("utf-8", "backslashreplace")
                unreadable.append(Reject(f"line {number} of {path.name} is not an event: "
                                         f"{exc!r}", None, None, text))
    return batch, unreadable


def _spooled_event(line: bytes) -> Spooled:
    seq, *fields = json.loads(line)
    if type(seq) is not int:
        raise ValueError("not [seq, kind, run id, ...]")
    event = events.from_list(fields)
    return Spooled(event.run_id, seq, event)


def waiting_elsewhere(folder: Path, skip: set[Path]) -> dict[Path, list[Spooled]]:
    """The events in other processes' spools (``skip`` excepted), for a writer holding the lock
    to commit along with its own (group commit, docs/design.md §6).

    A spool is read as it is now: its owner may be appending (a last line without its newline
    ends the read) or truncating it (a line that does not parse ends it). Events a writer must
    completing first (files to hash, blobs to copy) end a run's share: their owner writes them.
    """
    found: dict[Path, list[Spooled]] = {}
    if not folder.exists():
        return found
    for path in folder.glob("*.jsonl"):
        if path in skip:
            continue
        try:
            data = path.read_bytes()
        except OSError:
            continue  # gone: its owner finished
        events_read = _whole_events(data)
        if events_read:
            found[path] = events_read
    return found


def _whole_events(data: bytes) -> list[Spooled]:
    read: list[Spooled] = []
    held: set[str] = set()  # runs whose next event needs completing
    for line in data.split(b"\n")[1:-1]:  # the owner line; the last, unfinished one
        try:
            item = _spooled_event(line)
        except (ValueError, TypeError, IndexError):
            break
        if isinstance(item.event, events.Artifact | events.Stored):
            held.add(item.run_id)
        if item.run_id not in held:
            read.append(item)
    return read


def written_path(spool: Path) -> Path:
    """Where a writer that committed a spool's events says up to which sequence number, per
    run: ``<spool>.written``, a JSON object {run id: seq}."""
    return spool.with_suffix(".written")


def mark_written(read: dict[Path, list[Spooled]], committed: dict[str, int]) -> None:
    """Tell the owner of each spool in ``read`` which of its events are in the catalog now
    (``committed``: run id -> last sequence number applied), so it need not wait its turn.
    What the catalog holds stays true, so an old mark never misleads; a spool gone meanwhile
    gets none."""
    for path, items in read.items():
        runs = {item.run_id for item in items}
        mark = {run_id: seq for run_id, seq in committed.items() if run_id in runs}
        if not mark or not path.exists():
            continue
        target = written_path(path)
        partial = target.with_suffix(f".{os.getpid()}.part")
        try:
            partial.write_text(json.dumps(mark), encoding="utf-8")
            os.replace(partial, target)
        except OSError:
            pass  # only a shortcut lost: the owner writes itself
        finally:
            partial.unlink(missing_ok=True)


def sweep_marks(folder: Path, *, older_than: float = 60.0) -> None:
    """Remove ``.written`` marks half-written by a writer killed meanwhile (``*.part``): a
    mark takes microseconds to write, so one untouched for a minute is nobody's."""
    cutoff = time.time() - older_than
    for partial in folder.glob("*.part"):
        with contextlib.suppress(OSError):  # gone meanwhile, or never ours to remove
            if partial.stat().st_mtime < cutoff:
                partial.unlink()


def written(spool: Path, batch: Iterable[Spooled]) -> bool:
    """Whether another process has committed all of ``batch`` (events of ``spool``)."""
    try:
        mark = json.loads(written_path(spool).read_bytes())
    except (OSError, ValueError):
        return False
    return isinstance(mark, dict) and all(
        isinstance(mark.get(item.run_id), int) and mark[item.run_id] >= item.seq
        for item in batch)


def retire(store: Spooling, unreadable: dict[Path, list[Reject]]) -> None:
    """Spools whose events are committed go, once their unreadable lines are in quarantine
    (a spool whose lines could not be kept stays; a replay is harmless: see runs.spool_seq).
    Called under the catalog's write lock, so two processes never quarantine a line twice."""
    for path, lines in unreadable.items():
        if not path.exists():
            continue  # another process recovered it first
        if lines:
            quarantine(store, path.stem, lines)
        path.unlink(missing_ok=True)
        written_path(path).unlink(missing_ok=True)


def quarantine_dir(store: Spooling) -> Path:
    """Where events that could not be stored are kept, as JSON lines, each with its error."""
    return store.spool_dir / "quarantine"


def quarantine(store: Spooling, name: str, rejects: Iterable[Reject]) -> Path:
    """Append ``rejects`` to ``quarantine/<name>.jsonl`` (private to the user, like the spool),
    flushed and fsynced before returning."""
    folder = quarantine_dir(store)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / f"{name}.jsonl"
    text = "".join(_quarantine_line(*reject) for reject in rejects)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as f:
        f.write(text)
        # On disk before the caller commits past these events: a replay will not see them again.
        f.flush()
        os.fsync(f.fileno())
    sync_path(folder)
    return path


def sync_path(path: Path) -> None:
    """Put a file's bytes (``fdatasync``), or a folder's names (a new file's name), on disk. A
    file system that cannot sync (EINVAL: some FUSE and network mounts) keeps them as it can."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        (os.fdatasync if stat.S_ISREG(os.fstat(fd).st_mode) else os.fsync)(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.EOPNOTSUPP):
            raise
    finally:
        os.close(fd)


def _quarantine_line(error: str, run_id: Any, seq: Any, event: Any) -> str:
    if type(event) in events.KINDS:  # as in a spool line: [kind, run id, field...]
        event = events.as_list(event)
    record = {"error": error, "run_id": run_id, "seq": seq, "event": event,
              "quarantined_at": time.time()}
    return json.dumps(_writable(record)) + "\n"


def _writable(value: Any) -> Any:
    """``value`` with whatever JSON cannot write as text: an int too long for decimal text as
    hex, any other object as its repr (or its type, when even that raises)."""
    if value is None or isinstance(value, str | float | bool):
        return value
    if isinstance(value, int):
        try:
            str(value)
            return value
        except ValueError:
            return hex(value)
    if isinstance(value, dict):
        return {values.text(key): _writable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_writable(item) for item in value]
    try:
        return repr(value)
    except Exception:
        return f"<unrepresentable {type(value).__name__}>"
