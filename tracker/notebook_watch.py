"""The executed notebook that ``jupyter execute`` and nbconvert write after the kernel is gone,
stored with the run by a watcher process.

Those runners write the executed notebook (outputs included) only once the kernel has exited:
the run has ended and been written by then, with the input notebook as its snapshot. So at the
kernel's shutdown :func:`spawn` starts ``python -m tracker.notebook_watch``, detached: not a
child of the kernel, in a session of its own (ipykernel stops the children in its process group,
the runner signals the kernel's group), stdin, stdout and stderr on /dev/null and no other
descriptor of the kernel's (nbclient waits for the kernel's pipes to close), so the runner never
waits for it. The watcher waits up to :data:`WAIT` seconds for the runner and the kernel to exit,
then stores the notebook if the runner wrote it after the run ended, as a valid notebook holding
the code cells the run executed: one more ``notebook`` record of the run, written the way the
run's own events are (:mod:`tracker.delivery`, numbered after them), so ``tracker notebook RUN``
gives back the executed notebook and the input one stays recorded. It prints nothing; when
anything fails the input notebook stays the run's snapshot, silently (nobody is left to warn:
docs/design.md §8).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from tracker import _process

if TYPE_CHECKING:
    from tracker.catalog import Catalog

WAIT = 60.0  # seconds the watcher waits for the runner to exit and write the notebook
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
    cells it must hold, the time it must be newer than, and the processes to wait for (pid and
    start time, so a reused pid is not waited for)."""

    run_id: str
    notebook: str
    code_hash: str
    since: float
    processes: list[tuple[int, float | None]]


def spawn(catalog: Catalog, run_id: str, notebook: str, *, code_hash: str,
          wait_for: Sequence[int]) -> int:
    """Start the watcher for the ``notebook`` a runner writes once the processes ``wait_for``
    (the runner, the kernel) have exited; return its pid."""
    from tracker.reading import on_postgres

    watch = Watch(run_id, notebook, code_hash, time.time() - _CLOCK_SLACK,
                  [(pid, _process.process_start(pid)) for pid in wait_for])
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
    if not _exited(given.processes, time.monotonic() + WAIT) or not _is_executed(given):
        return False
    from tracker.catalog import Catalog

    return store(Catalog(), given.run_id, given.notebook)


def _exited(processes: Sequence[Sequence[Any]], deadline: float) -> bool:
    """Whether every process has exited (or been reaped) before ``deadline``."""
    while any(_alive(pid, started) for pid, started in processes):
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL)
    return True


def _alive(pid: int, started: float | None) -> bool:
    return _process.process_start(pid) == started and not _process.is_zombie(pid)


def _is_executed(given: Watch) -> bool:
    """Whether the runner wrote the notebook after the run ended: a valid notebook with the
    code cells the run executed (a stale one from an earlier run, or another notebook, is not)."""
    try:
        if os.stat(given.notebook).st_mtime < given.since:
            return False
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


def _recover(catalog: Catalog, local: Any) -> None:
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
