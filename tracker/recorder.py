"""The per-process recorder that carries a run's events to the catalog.

A background thread drains the runs' in-memory queue in two stages:

1. spool: the events are appended as JSON lines to ``<catalog>.spool/<run id>.jsonl``. Cheap, and
   enough to survive a ``kill -9`` of the process (the next process to open the catalog ingests
   orphaned spools). The notebook extension runs this stage synchronously when a cell finishes.
2. catalog: about once a second, pending events go to the catalog in one write transaction
   (``tracker.delivery``, then ``tracker.storage``), after which the spool is truncated.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import errno
import getpass
import json
import math
import os
import socket
import sys
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tracker import (
    _ids,
    arguments,
    background_keeps,
    events,
    models,
    notices,
    redaction,
    teardown,
    values,
)
from tracker._process import process_start
from tracker.errors import (
    CatalogError,
    CatalogFullError,
    CatalogLockedError,
    TrackerError,
    TrackerWarning,
)
from tracker.run import Run

# write_behind's exit handler, registered as it is imported, runs after _close_all below.
from tracker.storage import spools, write_behind  # noqa: F401

if TYPE_CHECKING:
    from tracker import script_capture
    from tracker.catalog import Catalog
    from tracker.storage import recovery

FLUSH_INTERVAL = 1.0  # seconds between catalog writes while events keep coming
# A new run reaches the catalog this soon rather than at once: a short run that ends (or is
# flushed) within it is written in one attach, not two (~10 ms saved per run).
START_DELAY = 0.05
#: What is logged is in the spool file (safe from kill -9) within this many seconds, even while
#: the catalog is locked by another process: a thread of its own spools, apart from the writer.
SPOOL_BOUND = 1.0
_SPOOL_EVERY = SPOOL_BOUND / 4
HEARTBEAT_INTERVAL = 60.0  # a live run touches heartbeat_at at least this often


def _line_encoder() -> Callable[[list[Any]], str]:
    """The JSON text of a spool line, as ``json.JSONEncoder(default=str).encode`` writes it.

    The C encoder is made once and called directly: ``encode()`` builds one per call, half of
    a line's cost, paid for every logged value. No cycle check: an event's fields are built by
    tracker (normalised, redacted), and a cycle would still fail, as a RecursionError.
    """
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # a Python without the _json accelerator
        return json.JSONEncoder(default=str).encode
    encoder = make(None, str, json.encoder.encode_basestring_ascii, None, ": ", ", ", False,
                   False, True)
    return lambda row: "".join(encoder(row, 0))


encode_line = _line_encoder()


def user_name() -> str | None:
    """The login name of this process's user, recorded with what it does."""
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return None


class Recorder:
    """One per catalog per process: the event queue, the spool files and the flusher thread."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.queue: collections.deque[events.Event] = collections.deque()
        self.stack: list[Run] = []  # active runs, innermost last
        self._seq: dict[str, int] = {}
        self._spool: Any = None  # this process's spool file, opened by the first event
        self._pending: list[events.Spooled] = []
        self._spool_lock = threading.Lock()
        self._db_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._due = math.inf  # time.monotonic() by which pending events must be written
        self._last_write = 0.0
        self._last_beat = time.monotonic()
        self._warned = notices.Once()  # one warning per recorder (see warn())
        self._thread: threading.Thread | None = None  # the writer: spools, then writes
        #: big contents recorded ``storing``, named by the writer after each write
        self._storing = background_keeps.Settler()
        self._orphans_named = False  # those dead processes left: looked for once
        self._spooler: threading.Thread | None = None  # spools while the writer waits
        #: replaces secrets in what runs record; the notebook extension applies its settings
        self.redactor = redaction.for_catalog(catalog)
        #: set by the notebook extension: the run a log call starts when none is open (the
        #: notebook's next run, after ``%tracker end``); None leaves it to the script's run
        self.autostart: Callable[[], Run | None] | None = None
        self._files: script_capture.ScriptCapture | None = None  # a script's runs' files
        self.host = socket.gethostname()
        self.user = user_name()
        self._own_process()
        #: runs of the process this one was forked from: their events are quarantined here
        self._parents: set[str] = set()
        with _recorders_guard:
            _recorders.add(self)

    def _own_process(self) -> None:
        """This process's identity and spool file name (a forked child takes its own)."""
        self.pid = os.getpid()
        self.process_start = process_start(self.pid)
        owner = {"host": self.host, "pid": self.pid, "process_start": self.process_start}
        self._owner_line = (json.dumps({"owner": owner}) + "\n").encode()
        self.spool_path = (self.catalog.spool_dir
                           / f"{self.host}-{self.pid}-{_ids.new_run_id()}.jsonl")

    def forked(self) -> None:
        """In a child made by fork (a multiprocessing worker): start afresh, as a spawned
        process would. The parent's locks may have been held at the fork, its threads are
        gone, what it queued and spooled is the parent's to write, and its runs are not the
        child's: events logged to them here would take sequence numbers the parent uses too,
        and be skipped as already written, so they are quarantined instead (one warning)."""
        self._spool_lock, self._db_lock = threading.Lock(), threading.Lock()
        self._wake, self._stop = threading.Event(), threading.Event()
        self._warned = notices.Once()
        self._thread = self._spooler = None
        with contextlib.suppress(Exception):
            if self._spool is not None:
                self._spool.close()  # this process's descriptor only: the parent's stays open
        self._spool = None
        self._parents = {*self._parents, *self._seq, *(run.id for run in self.stack)}
        self._seq.clear()
        self.stack.clear()
        self.queue.clear()
        self._pending.clear()
        self._due, self._last_write = math.inf, 0.0
        self.autostart = None  # the notebook's next run is the kernel's to start, not a worker's
        self._own_process()
        self._storing.forked()  # the parent's to name: its locks stay with the parent

    @property
    def current(self) -> Run | None:
        """The innermost active run."""
        return self.stack[-1] if self.stack else None

    def start_run(self, name: str | None = None, *, project: str | None = None,
                  params: Mapping[str, Any] | None = None,
                  labels: Sequence[str] | None = None, notes: str | None = None,
                  parent: str | None = None, session: bool = False,
                  attrs: Mapping[str, Any] | None = None) -> Run:
        """Start a run, or return the active one when ``name`` is None or its own name."""
        labels = arguments.texts(labels, "labels", "['baseline', 'gpu']")
        arguments.run_texts(name=name, project=project, labels=labels, notes=notes)
        active = self.current
        if active is not None and (name is None or name == active.name) and parent is None:
            if params:
                active.log_params(params)
            return active
        parent_id = parent or (active.id if active is not None else None)
        project = project or os.environ.get("TRACKER_PROJECT") or "default"
        _warn_if_escaped(name, project, notes, *(labels or ()))
        run = Run(self, _ids.new_run_id(), values.text(name) if name else _ids.new_run_name(),
                  values.text(project), parent_id)
        run.session = session
        self.queue.append(events.Start(run.id, self._start_attrs(run, labels, notes, attrs)))
        self.stack.append(run)
        if not session:
            self._capture_files()
        if params:
            run.log_params(params)
        self._write_soon(START_DELAY)  # a new run should be visible (almost) at once
        return run

    def _capture_files(self) -> None:
        """Capture the files a script's run reads and writes, as the notebook extension does
        for a notebook's (:mod:`tracker.script_capture`)."""
        try:
            if self._files is None:
                from tracker.script_capture import ScriptCapture

                self._files = ScriptCapture(self)
            self._files.run_started()
        except Exception as exc:
            self.warn(f"tracker could not capture this run's files ({exc!r}); record them "
                      "with log_input / log_output")

    def ending(self, run: Run) -> None:
        """Called by :meth:`Run.end` before the end is queued: the files a script's run wrote
        become its outputs."""
        if self._files is None or run.session:
            return
        try:
            self._files.run_ending(run)
        except Exception as exc:
            self.warn(f"tracker could not record the files run {run.id} wrote ({exc!r})")

    def _start_attrs(self, run: Run, labels: Sequence[str] | None, notes: str | None,
                     attrs: Mapping[str, Any] | None) -> dict[str, Any]:
        scrub = self.redactor.text
        return {
            "name": scrub(run.name), "project": run.project, "started_at": time.time(),
            "host": self.host, "pid": self.pid, "process_start": self.process_start,
            "username": self.user, "labels": [scrub(values.text(label)) for label in labels or ()],
            "notes": None if notes is None else scrub(values.text(notes)),
            "parent_id": run.parent_id, **values.cleaned(dict(attrs or {})),
        }

    def active_or_autostart(self) -> Run:
        """The active run; a script that logs without starting one gets one, as in MLflow."""
        run = self.current  # read once: every log call comes here
        if run is not None:
            return run
        run = self.autostart() if self.autostart is not None else None
        if run is not None:
            return run
        script = Path(sys.argv[0]).stem if sys.argv and sys.argv[0] else None
        return self.start_run(script or None)

    def finished(self, run: Run) -> None:
        """Called by :meth:`Run.end`: the run is durable in the spool when this returns.

        The catalog write follows from the background thread at once; a process killed in
        between leaves a spool that the next process to open the catalog ingests.
        """
        if run in self.stack:
            self.stack.remove(run)
        try:
            self.spool()
        except (OSError, TrackerError) as exc:  # a full disk, a folder that cannot be made:
            self.warn(self._trouble(exc))  # the events stay queued, and end() returns
        self._write_soon()

    # -- the two stages ----------------------------------------------------------------

    def spool(self) -> None:
        """Stage 1: move queued events to the spool file (durable against kill -9).

        When the file cannot be written (a full disk), the events go back to the front of the
        queue in order, and whatever part of them reached the file is cut off: retried later.
        """
        with self._spool_lock:
            if not self.queue:
                return
            # Opened before any event leaves the queue: if opening fails, nothing is lost.
            handle = self._spool or self._open_spool()
            taken = []
            while self.queue:
                taken.append(self.queue.popleft())
            lines, pending, seqs, rejected = self._encoded(taken)
            try:
                if rejected:  # first: if this fails, nothing was written
                    spools.quarantine(self.catalog.store, self.spool_path.stem, rejected)
            except BaseException:
                self.queue.extendleft(reversed(taken))
                raise
            try:
                spools.append_whole(handle, "".join(lines).encode())
            except BaseException:
                self.queue.extendleft(reversed([item.event for item in pending]))
                raise
            self._seq.update(seqs)
            self._pending.extend(pending)
        if rejected:
            forked = " (logged in a forked process to its parent's run: start a run of the " \
                "worker's own)" if any(reject.error == FORKED for reject in rejected) else ""
            self.warn(f"{len(rejected)} event(s) could not be written to the spool{forked}; "
                      f"kept in {spools.quarantine_dir(self.catalog.store)}")

    def _encoded(self, queued: list[events.Event]) -> tuple[
            list[str], list[events.Spooled], dict[str, int], list[spools.Reject]]:
        """Spool lines for ``queued``, numbered per run, and the events JSON cannot hold."""
        seqs: dict[str, int] = {}
        lines, pending, rejected = [], [], []
        for event in queued:
            run_id = event.run_id
            if run_id in self._parents:
                rejected.append(spools.Reject(FORKED, run_id, None, event))
                continue
            seq = seqs.get(run_id, self._seq.get(run_id, 0)) + 1
            try:
                lines.append(encode_line([seq, *events.as_list(event)]) + "\n")
            except Exception as exc:  # a raw event with an object JSON cannot write
                rejected.append(spools.Reject(repr(exc), run_id, None, event))
                continue
            seqs[run_id] = seq
            pending.append(events.Spooled(run_id, seq, event))
        return lines, pending, seqs, rejected

    def _open_spool(self) -> Any:
        folder = self.spool_path.parent
        if not folder.exists():
            self.catalog.ensure_folder()
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        # One file per process, not per run: a sweep of short runs opens no file per run.
        # Unbuffered: a write that fails leaves nothing behind in a buffer to be written later.
        handle = open(self.spool_path, "ab", buffering=0)  # noqa: SIM115 (kept open)
        try:
            os.chmod(self.spool_path, 0o600)
            spools.append_whole(handle, self._owner_line)
        except BaseException:
            handle.close()
            self.spool_path.unlink(missing_ok=True)
            raise
        self._spool = handle
        return handle

    def flush(self, *, timeout: float | None = None) -> None:
        """Both stages now, from the calling thread, within ``timeout`` in all: the flusher
        thread may be waiting for the catalog's lock already, and its wait counts as ours."""
        try:
            self.spool()
        except OSError as exc:
            raise self._failed_stage(exc) from exc
        wait = self.catalog.timeout if timeout is None else timeout
        deadline = time.monotonic() + wait
        if not self._db_lock.acquire(timeout=max(wait, 0.001)):
            from tracker.storage import lock as _lock

            shown = self.catalog.store.shown
            holder = _lock.holder_of(f"{shown}.lock") or "another process"
            raise CatalogLockedError(
                f"catalog {shown} is locked by {holder}; gave up after {wait:g} s "
                "(set TRACKER_LOCK_TIMEOUT to wait longer)", path=shown, holder=holder)
        try:
            self._write(max(deadline - time.monotonic(), 0.0))
        except TrackerError:
            raise
        except OSError as exc:  # a full disk, a bucket out of reach: kept, and retried
            raise self._failed_stage(exc) from exc
        finally:
            self._db_lock.release()

    def _failed_stage(self, exc: OSError) -> CatalogError:
        """A stage's OSError as the catalog error a caller of flush() catches."""
        error = CatalogFullError if exc.errno == errno.ENOSPC else CatalogError
        return error(self._trouble(exc), path=self.catalog.store.shown)

    def _trouble(self, exc: BaseException) -> str:
        """What a failed stage means for the user, and what to do."""
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            return (f"the disk holding {self.spool_path.parent} is full: what this process "
                    "logs is kept in memory, in order, and written once space is freed")
        if self._spool is None:  # nothing reached the disk yet
            return (f"could not record to the catalog {self.catalog.store.shown} ({exc}); what "
                    "this process logs is kept in memory, in order, and tracking retries in "
                    "the background")
        return (f"could not record to the catalog {self.catalog.store.shown} ({exc}); what is "
                f"logged is kept in {self.spool_path.parent} and tracking retries in the "
                "background")

    def _write(self, timeout: float | None, cancel: threading.Event | None = None) -> None:
        from tracker import delivery

        with self._spool_lock:
            batch, self._pending = self._pending, []
        if not batch:
            return
        later: list[background_keeps.Storing] = []
        try:
            kept = delivery.write_events(self.catalog, batch,
                                         local=local_to(self.catalog.spool_dir),
                                         spool=self.spool_path, timeout=timeout, cancel=cancel,
                                         later=later)
        except BaseException:
            # Named all the same: the batch may have committed before it failed (a
            # quarantine write, a lock lost after the commit), and then nothing else would
            # ever name what it recorded. If it did not, their updates change nothing.
            self._storing.add(later)
            with self._spool_lock:  # keep them for the next attempt, in order
                self._pending[:0] = batch
            raise
        if later:
            self._storing.add(later)
            self._wake.set()  # the flusher names them next
        if kept:
            self.warn(f"{kept} event(s) the catalog could not store were kept in "
                      f"{spools.quarantine_dir(self.catalog.store)}")
        self._last_write = time.monotonic()
        self._after_write()

    def _after_write(self) -> None:
        """Everything up to now is in the catalog: empty the spool. Each run keeps its sequence
        counter for the life of the process: an event logged on an ended run (a tag set after
        the end) must number past what runs.spool_seq and any ``.written`` mark hold, or the
        writer would take it for one already applied and skip it."""
        with self._spool_lock:
            if self._pending or self._spool is None:
                return
            self._spool.truncate(0)  # append mode: the next write lands at offset 0
            spools.append_whole(self._spool, self._owner_line)

    def _remove_spool(self) -> None:
        """At exit, once everything is in the catalog, the spool file goes."""
        with self._spool_lock:
            if self._pending or self._spool is None:
                return
            self._spool.close()
            self._spool = None
            self.spool_path.unlink(missing_ok=True)
            spools.written_path(self.spool_path).unlink(missing_ok=True)

    # -- the background thread -----------------------------------------------------------

    def _write_soon(self, within: float = 0.0) -> None:
        """Have the flusher write to the catalog within ``within`` seconds rather than at its
        next interval."""
        self._due = min(self._due, time.monotonic() + within)
        self._ensure_thread()

    def _ensure_thread(self) -> None:
        if self._spooler is None or not self._spooler.is_alive():
            self._spooler = threading.Thread(target=self._spool_loop, name="tracker-spooler",
                                             daemon=True)
            self._spooler.start()
        if self._thread is not None and self._thread.is_alive():
            self._wake.set()
            return
        self._thread = threading.Thread(target=self._loop, name="tracker-flusher", daemon=True)
        self._thread.start()

    def _spool_loop(self) -> None:
        """Spool often, whatever the writer is waiting for: the SPOOL_BOUND promise."""
        while not self._stop.wait(_SPOOL_EVERY):
            try:
                self.spool()
            except Exception as exc:
                self.warn(self._trouble(exc))
                self._stop.wait(1.0)  # a full disk: no point re-encoding the queue 4 times a second

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(min(max(self._due - time.monotonic(), 0.0), 0.25))
            self._wake.clear()
            try:
                self._tick()
            except Exception as exc:
                if self._stop.is_set():
                    return
                self.warn(self._trouble(exc))
                time.sleep(1.0)

    def _tick(self) -> None:
        now = time.monotonic()
        if self.stack and now - self._last_beat >= HEARTBEAT_INTERVAL:
            self._last_beat = now
            for run in self.stack:
                self.queue.append(events.Beat(run.id, time.time()))
        # Cleared before spooling: an event whose _write_soon this overwrites was queued
        # before it, so the spool below takes it and this tick writes it.
        due = now >= self._due
        if due:
            self._due = math.inf
        if self.queue:
            self.spool()
        due = due or now - self._last_write >= FLUSH_INTERVAL
        if self._pending and due and not self._stop.is_set():
            with self._db_lock:
                self._write(None, cancel=self._stop)
        if self._storing.waiting() and not self._stop.is_set():
            self._storing.settle(self.catalog, guard=self._db_lock, cancel=self._stop)
        if not self._orphans_named and self._last_write and not self._stop.is_set():
            background_keeps.settle_orphans(self.catalog, guard=self._db_lock,
                                            cancel=self._stop)
            self._orphans_named = True

    def name_contents(self, *, timeout: float | None = None) -> None:
        """Name the big contents this recorder still stores, now (see
        :mod:`tracker.background_keeps`)."""
        self._storing.settle(self.catalog, guard=self._db_lock, timeout=timeout)

    def warn(self, message: str) -> None:
        """One warning per recorder: tracking trouble must not flood a notebook."""
        # The spooler and the writer often meet the same trouble at once: Once is thread-safe.
        if self._warned.first():  # from the flusher too: under `-W error` it must not raise
            notices.warn(message, stacklevel=2)

    def stop_threads(self) -> None:
        """End the flusher and the spooler and wait for them; what they held stays queued for
        the calling thread to write. The flusher must be out of DuckDB before the interpreter
        finalises: a daemon thread cut off inside its C++ code aborts the whole process."""
        self._stop.set()
        self._wake.set()
        for thread in (self._thread, self._spooler):
            if thread is not None and thread is not threading.current_thread():
                # Unbounded on purpose: a cancelled lock wait returns at once, and what remains
                # is at most one DuckDB statement, which must not be cut off.
                thread.join()

    def _name_at_exit(self, timeout: float) -> None:
        """Name what is still storing, whatever the deadline (exit waits no longer than it
        did when contents were named before their batch); what fails is left staged, for the
        next process to name."""
        try:
            self._storing.settle(self.catalog, guard=self._db_lock, timeout=timeout)
        except Exception:
            self._storing.abandon()

    def close_at_exit(self, *, deadline: float = 0.8) -> None:
        """End the runs still open and write what can be written within ``deadline``."""
        for run in reversed(list(self.stack)):
            self.ending(run)
            run.queue_end(run.exit_status)  # not end(): that would wake the flusher again
        self.stack.clear()
        try:
            self.spool()  # the ends are durable before anything else can go wrong
        except Exception:
            pass
        started = time.monotonic()
        self.stop_threads()
        until = time.monotonic() + max(deadline - (time.monotonic() - started), 0.05)
        try:
            self.spool()  # whatever the flusher left; the next process ingests what is late
            if self._db_lock.acquire(timeout=max(until - time.monotonic(), 0.05)):
                try:
                    self._write(max(until - time.monotonic(), 0.05))
                finally:
                    self._db_lock.release()
                self._name_at_exit(max(until - time.monotonic(), 0.05))
            self._remove_spool()
            # The file left whole on its own: commits checkpointed out of its log. Not waited
            # for: while another process holds the lock, the log stays (any DuckDB replays it).
            self.catalog.store.checkpoint(timeout=0.0)
        except Exception as exc:
            if self._spool is None and (self.queue or self._pending):  # nothing on disk
                notices.warn(f"tracker could not record this process's runs to the catalog "
                             f"{self.catalog.store.shown} ({exc}); they are lost",
                             stacklevel=1)
            # otherwise the spool holds everything, for the next process to write


def _warn_if_escaped(*texts: Any) -> None:
    if not all(values.valid_text(t) for t in texts if isinstance(t, str)):
        warnings.warn(f"a run's name, project, notes or labels: {values.ESCAPED_NOTE}",
                      TrackerWarning, stacklevel=4)


_recorders: weakref.WeakSet[Recorder] = weakref.WeakSet()
# Copying a WeakSet while another thread adds to it raises "Set changed size during iteration"
# (a widget's loader thread reading while the main thread starts a run).
_recorders_guard = threading.Lock()
FORKED = "logged in a forked process to a run of its parent"


def _all_recorders() -> list[Recorder]:
    """This process's recorders now."""
    with _recorders_guard:
        return list(_recorders)


def _after_fork() -> None:
    """Every recorder starts afresh in a forked child; a multiprocessing worker, which ends
    with os._exit (no atexit), closes its runs through multiprocessing's own finalizers."""
    global _recorders_guard
    _recorders_guard = threading.Lock()  # a parent's thread may have held it at the fork
    for recorder in list(_recorders):
        with contextlib.suppress(Exception):
            recorder.forked()
    util = sys.modules.get("multiprocessing.util")
    if util is not None:
        with contextlib.suppress(Exception):
            util.Finalize(None, _close_all, exitpriority=0)


os.register_at_fork(after_in_child=_after_fork)


def flush_pending(spool_dir: Path, *, timeout: float | None = None) -> None:
    """Write what every recorder of this process holds for the catalog spooling into
    ``spool_dir`` (any Catalog object of it), each within ``timeout`` (the catalog's own by
    default); raises CatalogLockedError past it.

    Reads call this so that they see this process's own writes, whichever Catalog object
    made them.
    """
    for recorder in _all_recorders():
        if recorder.catalog.spool_dir == spool_dir:
            recorder.flush(timeout=timeout)


def name_contents(catalog: Catalog, *, timeout: float | None = None) -> None:
    """Name now the big contents that every recorder of this process for ``catalog`` (any
    Catalog object of it) still stores, and those dead processes left (see
    :mod:`tracker.background_keeps`): before a content is read or copied elsewhere."""
    try:
        for recorder in _all_recorders():
            if recorder.catalog.spool_dir == catalog.spool_dir:
                recorder.name_contents(timeout=timeout)
        background_keeps.settle_orphans(catalog, timeout=timeout, lost=True)
    except (OSError, TrackerError) as exc:  # the catalog locked, a full disk: named later
        notices.warn(f"tracker could not name a big content it is still storing ({exc}); "
                     "it stays 'storing' until the flusher or the next process names it",
                     stacklevel=3)


def local_to(spool_dir: Path) -> recovery.Local:
    """What this process itself writes to the catalog spooling into ``spool_dir`` (any Catalog
    object of it): its active runs and its spools, which recovery must never take for a dead
    process's."""
    from tracker.storage import recovery

    mine = [recorder for recorder in _all_recorders() if recorder.catalog.spool_dir == spool_dir]
    return recovery.Local({run.id for recorder in mine for run in recorder.stack},
                          {recorder.spool_path for recorder in mine})


def _stop_all_threads() -> None:
    """At exit, before DuckDB's own teardown (the runs are ended later, by _close_all)."""
    for recorder in _all_recorders():
        recorder.stop_threads()


teardown.before_teardown(_stop_all_threads)


@atexit.register
def _close_all() -> None:
    for recorder in _all_recorders():
        for run in recorder.stack:
            if not run.session and getattr(sys, "last_value", None) is not None:
                run.exit_status = models.FAILED
        recorder.close_at_exit()
