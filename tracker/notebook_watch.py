"""The executed notebook that ``jupyter execute`` and nbconvert write after the kernel is gone,
stored with the run by a watcher process.

Those runners write the executed notebook (outputs included) only once the kernel has exited:
the run has ended and been written by then, with the input notebook as its snapshot. So at the
kernel's shutdown :func:`spawn` starts ``python -m tracker.notebook_watch``, detached: not a
child of the kernel, in a session of its own (ipykernel stops the children in its process group,
the runner signals the kernel's group), stdin, stdout and stderr on /dev/null and no other
descriptor of the kernel's (nbclient waits for the kernel's pipes to close), so the runner never
waits for it. Once the kernel is gone, the watcher looks at the notebook each time it changes,
until the runner exits or :data:`WAIT` seconds have passed, and stores it once the runner has
written it after the run ended, as a valid notebook holding the code cells the run executed: one
more ``notebook`` record of the run, written the way the run's own events are
(:mod:`tracker.delivery`, numbered after them), so ``tracker notebook RUN`` gives back the
executed notebook and the input one stays recorded. It prints nothing; when anything fails the
input notebook stays the run's snapshot, silently (nobody is left to warn:
docs/design.md §8).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from typing import TYPE_CHECKING, NamedTuple

from tracker import _process
from tracker.storage import spools

if TYPE_CHECKING:
    from tracker.catalog import Catalog
    from tracker.notebook import NotebookInfo
    from tracker.storage.recovery import Local

WAIT = 60.0  # seconds the watcher waits for the runner to write the notebook
_POLL = 0.1
# File times come from the kernel's coarse clock, up to a tick behind time.time(): a notebook
# written just after the run ended may look a few milliseconds older than its end.
_CLOCK_SLACK = 0.05
_SETTLE_TRIES = 20  # waits of _POLL * 5 for the kernel's last events to reach the catalog
# The watcher is started by sh, which leaves it running in the background and exits at once
# (printing its pid): so it is no child of the kernel, nothing the kernel must reap or stops
# with its children; its own descriptors are /dev/null, and close_fds leaves it no other.
_DETACHED = '"$@" </dev/null >/dev/null 2>&1 & echo $!'
_START_WAIT = 5.0  # seconds for sh to start it


class Watch(NamedTuple):
    """What the watcher needs: the run, the notebook the runner writes, the hash of the code
    cells it must hold, the time it must be newer than, and the runner's and the kernel's
    process (pid and start time, so a reused pid is not taken for them)."""

    run_id: str
    notebook: str
    code_hash: str
    since: float
    runner: tuple[int, float | None]
    kernel: tuple[int, float | None]


def follow(catalog: Catalog, run_id: str, info: NotebookInfo) -> None:
    """At the kernel's shutdown: start a watcher if the runner writes the notebook of ``info``
    (what the run executed) once this kernel is gone."""
    from tracker import capture
    from tracker.notebook import executed_notebook

    with capture.suppressed():  # tracker's own reads and process, not the notebook's
        copy = executed_notebook(info.path)
        if copy is not None and copy.after_exit and info.code_hash:
            spawn(catalog, run_id, copy.path, code_hash=info.code_hash, runner=copy.runner)


def spawn(catalog: Catalog, run_id: str, notebook: str, *, code_hash: str,
          runner: int) -> int:
    """Start the watcher for the ``notebook`` that ``runner`` (a pid) writes once this process,
    the kernel, has exited; return the watcher's pid."""
    from tracker.reading import on_postgres

    here = os.getpid()
    watch = Watch(run_id, notebook, code_hash, time.time() - _CLOCK_SLACK,
                  (runner, _process.process_start(runner)), (here, _process.process_start(here)))
    env = dict(os.environ)
    if not on_postgres(catalog):  # a PostgreSQL catalog's URL came from there already
        env["TRACKER_CATALOG"] = str(catalog.path)
    started = subprocess.run(
        ["/bin/sh", "-c", _DETACHED, "tracker-watch", sys.executable, "-m",
         "tracker.notebook_watch", json.dumps(watch._asdict())],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        close_fds=True, start_new_session=True, env=env, timeout=_START_WAIT, check=True)
    return int(started.stdout)


def watch(spec: str) -> bool:
    """Wait, check and store as the module's docstring says; True if the notebook was stored."""
    given = Watch(**json.loads(spec))
    # Imported now, while the kernel and the runner finish: nbformat's jsonschema takes
    # seconds on a loaded machine (see the docstring of tracker.notebook).
    import nbformat  # noqa: F401

    from tracker.catalog import Catalog

    if not _written(given, time.monotonic() + WAIT):
        return False
    return store(Catalog(), given.run_id, given.notebook)


def _written(given: Watch, deadline: float) -> bool:
    """Whether the runner wrote the executed notebook before ``deadline``: looked at each time
    the file changes once the kernel is gone (``jupyter execute a.ipynb b.ipynb`` writes a's
    before it runs b), a last time when the runner has exited."""
    from tracker.capture import stat_signature  # (mtime_ns, size): any write changes it

    seen: tuple[int, int] | None = None
    while time.monotonic() < deadline:
        runner_gone = not _alive(*given.runner)
        if not _alive(*given.kernel):
            now = stat_signature(given.notebook)
            if now != seen and now is not None:
                seen = now
                if _is_executed(given):
                    return True
            if runner_gone:
                return False
        time.sleep(_POLL)
    return False


def _alive(pid: int, started: float | None) -> bool:
    """Whether ``pid`` is still the process that started at ``started`` (recovery's test)."""
    return bool(spools.owner_alive(socket.gethostname(), pid, started))


def _is_executed(given: Watch) -> bool:
    """Whether the runner wrote the notebook after the run ended: a valid notebook with the
    code cells the run executed (a stale one from an earlier run, or another notebook, is not)."""
    try:
        if os.stat(given.notebook).st_mtime < given.since:
            return False  # the file as it was before the run ended (--inplace's input)
        import nbformat

        nbformat.validate(nbformat.read(given.notebook, as_version=4))
    except Exception:  # gone, unreadable or not a notebook
        return False
    from tracker.notebook import read_notebook

    return read_notebook(given.notebook).code_hash == given.code_hash


def store(catalog: Catalog, run_id: str, notebook: str) -> bool:
    """Record ``notebook`` as stored with the ended run ``run_id``, numbered after the run's
    own events, once none of them waits in a spool (the kernel's last ones, if it was killed
    before writing them, are recovered first). False if the run is not in the catalog."""
    from tracker import delivery, events
    from tracker.storage.recovery import Local

    local = Local(set(), set())
    for _ in range(_SETTLE_TRIES):
        _recover(catalog, local)
        applied = _applied(catalog, run_id)
        if applied is None:
            return False
        if not _waiting(catalog, run_id, applied):
            stored = events.Stored(run_id, "notebook", notebook, time.time())
            delivery.write_events(catalog, [events.Spooled(run_id, applied + 1, stored)],
                                  local=local, timeout=catalog.timeout)
            return True
        time.sleep(_POLL * 5)
    return False


def _recover(catalog: Catalog, local: Local) -> None:
    """What dead processes (the kernel) left in their spools, written now."""
    from tracker import delivery
    from tracker.reading import on_postgres

    if on_postgres(catalog):
        delivery.sync(catalog, local=local, timeout=catalog.timeout)
    else:
        delivery.recover(catalog, local=local, force=True)


def _applied(catalog: Catalog, run_id: str) -> int | None:
    """The last of the run's events the catalog applied (None: no such run)."""
    from tracker.reading import read_connection

    with read_connection(catalog) as (con, dialect):
        row = con.execute(dialect.finish("SELECT spool_seq FROM runs WHERE id = ?"),
                          [run_id]).fetchone()
    return None if row is None or row[0] is None else int(row[0])


def _waiting(catalog: Catalog, run_id: str, applied: int) -> bool:
    """Whether a spool still holds events of the run the catalog has not applied."""
    from tracker.storage import spools

    found, _ = spools.read(sorted(catalog.spool_dir.glob("*.jsonl")))
    return any(item.run_id == run_id and item.seq > applied for item in found)


if __name__ == "__main__":
    with contextlib.suppress(Exception):  # see the module's docstring: never a word
        watch(sys.argv[1])
