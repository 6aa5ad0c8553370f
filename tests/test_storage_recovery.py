"""Recovering what dead processes left (tracker.storage.recovery): an orphaned spool ingested and
its runs marked crashed; a live process's spool, and this process's own runs, left alone."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tracker import events
from tracker._process import process_start
from tracker.storage import instances, recovery, spools, writer
from tracker.storage.store import Store

NOBODY = recovery.Local(set(), set())


def _as_is(batch: recovery.Batch) -> tuple[list[events.Spooled], list[spools.Reject]]:
    return list(batch), []  # nothing to hash or copy in these events


def _started(run_id: str, pid: int) -> list[list[object]]:
    """A run's spool lines up to a metric: it never ended."""
    now = time.time()
    attrs = {"name": run_id, "started_at": now, "host": socket.gethostname(), "pid": pid,
             "process_start": process_start(pid)}
    return [[1, "start", run_id, attrs], [2, "metric", run_id, "loss", 0.5, 1, now]]


def _write(store: Store, lines: list[list[object]]) -> None:
    """Write spool lines straight to the catalog, as a live process's flusher does."""
    batch = [events.Spooled(str(line[2]), int(str(line[0])), events.from_list(line[1:]))
             for line in lines]
    with store.connect(write=True) as con:
        writer.apply_all(con, batch, writer.keeper(store))


def _spool(store: Store, pid: int, lines: list[list[object]]) -> Path:
    store.spool_dir.mkdir(parents=True, exist_ok=True)
    path = store.spool_dir / f"{socket.gethostname()}-{pid}-0001.jsonl"
    owner = {"owner": {"host": socket.gethostname(), "pid": pid,
                       "process_start": process_start(pid)}}
    path.write_text("".join(json.dumps(line) + "\n" for line in [owner, *lines]))
    return path


@pytest.fixture
def store(tmp_path: Path) -> Store:
    fresh = Store(tmp_path / "catalog.duckdb", timeout=5.0)
    with fresh.connect(write=True):
        pass
    return fresh


@pytest.fixture
def live_pid() -> Iterator[int]:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield child.pid
    child.kill()
    child.wait()


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _runs(store: Store) -> list[tuple[object, ...]]:
    with store.connect() as con:
        return con.execute("SELECT id, status FROM runs ORDER BY id").fetchall()


def test_a_dead_process_spool_is_ingested_and_its_run_marked_crashed(store: Store) -> None:
    pid = _dead_pid()
    spool = _spool(store, pid, _started("r1", pid))
    recovery.maybe_recover(store, complete=_as_is, local=NOBODY)
    assert _runs(store) == [("r1", "crashed")]
    assert not spool.exists()
    with store.connect() as con:
        assert con.execute("SELECT value FROM metrics").fetchall() == [(0.5,)]


def test_a_live_process_spool_is_left_alone(store: Store, live_pid: int) -> None:
    spool = _spool(store, live_pid, _started("r1", live_pid))
    before = spool.read_bytes()
    recovery.maybe_recover(store, complete=_as_is, local=NOBODY, force=True)
    assert _runs(store) == []
    assert spool.read_bytes() == before


def test_a_run_whose_process_died_is_marked_crashed_once_due(store: Store,
                                                            live_pid: int) -> None:
    pid = _dead_pid()
    _write(store, [*_started("dead", pid), *_started("alive", live_pid)])
    recovery.maybe_recover(store, complete=_as_is, local=NOBODY, force=True)
    assert _runs(store) == [("alive", "running"), ("dead", "crashed")]


def test_this_process_own_runs_and_spool_are_never_recovered(store: Store) -> None:
    # What the layer above says this process writes itself, even were its pid to look dead.
    pid = _dead_pid()
    spool = _spool(store, pid, _started("other", pid))
    _write(store, _started("mine", pid))
    own = recovery.Local({"mine"}, {spool})
    recovery.maybe_recover(store, complete=_as_is, local=own, force=True)
    assert _runs(store) == [("mine", "running")]
    assert spool.exists()


class _Killed(BaseException):
    """A SIGKILL, at the point a test chooses."""


def test_a_first_write_killed_before_the_catalog_exists_never_loses_a_recovered_spool(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # nbval kills kernels while their first write may run. A writer that creates the catalog
    # and recovers a dead process's spool in the same open, killed just before the new file is
    # renamed into place, must not have retired that spool already: the next creator deletes
    # the unpublished draft, and the orphan's run would be gone (seen in CI: a notebook's run
    # missing from the catalog after `pytest --nbval`).
    store = Store(tmp_path / "catalog.duckdb", timeout=5.0)
    pid = _dead_pid()
    orphan = _spool(store, pid, _started("orphan", pid))

    def killed(self: Store, draft: Path) -> None:
        raise _Killed

    monkeypatch.setattr(Store, "_publish", killed)
    with pytest.raises(_Killed):
        recovery.write_events(store, _mine("mine"), complete=_as_is, local=NOBODY)
    monkeypatch.undo()

    assert orphan.exists()
    recovery.maybe_recover(Store(store.path, timeout=5.0), complete=_as_is, local=NOBODY,
                           force=True)
    assert _runs(store) == [("orphan", "crashed")]


def test_a_first_write_recovers_in_the_same_open(store: Store) -> None:
    pid = _dead_pid()
    _spool(store, pid, _started("orphan", pid))
    now = time.time()
    batch = [events.Spooled("new", 1, events.Start("new", {"name": "new", "started_at": now}))]
    assert recovery.write_events(store, batch, complete=_as_is, local=NOBODY) == 0
    assert _runs(store) == [("new", "running"), ("orphan", "crashed")]
    assert store.last_recovery > 0
    assert os.listdir(store.spool_dir) == []


def _metrics(store: Store) -> list[tuple[object, ...]]:
    with store.connect() as con:
        return con.execute("SELECT run_id, value FROM metrics ORDER BY run_id, step").fetchall()


def _mine(run_id: str) -> list[events.Spooled]:
    start = events.Start(run_id, {"name": run_id, "started_at": time.time()})
    return [events.Spooled(run_id, 1, start)]


def test_a_writer_commits_what_live_processes_spooled_and_tells_them(
        store: Store, live_pid: int) -> None:
    spool = _spool(store, live_pid, _started("theirs", live_pid))
    before = spool.read_bytes()
    assert recovery.write_events(store, _mine("mine"), complete=_as_is, local=NOBODY) == 0
    assert _runs(store) == [("mine", "running"), ("theirs", "running")]
    assert _metrics(store) == [("theirs", 0.5)]
    theirs = [events.Spooled("theirs", seq, None) for seq in (1, 2)]
    assert spools.written(spool, theirs)  # its owner need not wait for the lock
    assert not spools.written(spool, [*theirs, events.Spooled("theirs", 3, None)])
    assert spool.read_bytes() == before  # the owner still truncates its own spool
    # The owner's own write of the same events later applies nothing twice.
    _write(store, _started("theirs", live_pid))
    assert _metrics(store) == [("theirs", 0.5)]


def test_a_plain_write_names_its_tables_rather_than_switching_database(
        store: Store, live_pid: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # Two statements fewer per flush (USE catalog, USE memory): the writer's SQL says
    # catalog.<table>. A recovering write still makes the catalog the default database.
    assert recovery.write_events(store, _mine("first"), complete=_as_is, local=NOBODY) == 0
    defaults: list[bool] = []
    attach = instances.attach

    def recorded(*args: object, **kwargs: object) -> object:
        defaults.append(bool(kwargs.get("default", True)))
        return attach(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(instances, "attach", recorded)
    _spool(store, live_pid, _started("theirs", live_pid))  # committed along: group commit
    assert recovery.write_events(store, _mine("mine"), complete=_as_is, local=NOBODY) == 0
    assert defaults == [False]
    assert _runs(store) == [("first", "running"), ("mine", "running"), ("theirs", "running")]
    assert _metrics(store) == [("theirs", 0.5)]


def test_a_bad_live_spool_never_blocks_another_writer(store: Store, live_pid: int) -> None:
    # An int no float can hold raises OverflowError, not one of the catalog's data errors.
    bad = [*_started("theirs", live_pid), [3, "metric", "theirs", "loss", 10**400, 2, 1.0]]
    spool = _spool(store, live_pid, bad)
    assert recovery.write_events(store, _mine("mine"), complete=_as_is, local=NOBODY) == 0
    assert _runs(store) == [("mine", "running")]  # theirs is left to its owner to write
    assert not spools.written_path(spool).exists()


def test_a_mark_a_killed_writer_left_half_written_is_swept_by_recovery(
        store: Store, live_pid: int) -> None:
    spool = _spool(store, live_pid, _started("theirs", live_pid))
    left = spools.written_path(spool).with_suffix(".4242.part")  # its writer died writing it
    left.write_text('{"theirs": ')
    os.utime(left, (time.time() - 120,) * 2)
    fresh = spools.written_path(spool).with_suffix(".4243.part")  # one being written now
    fresh.write_text("{}")
    assert recovery.write_events(store, _mine("mine"), complete=_as_is, local=NOBODY) == 0
    assert not left.exists() and fresh.exists()
    assert sorted(path.suffix for path in store.spool_dir.iterdir()) == [
        ".jsonl", ".part", ".written"]


def test_a_live_spool_is_taken_up_to_a_gap_a_file_to_hash_or_a_torn_line(
        store: Store, live_pid: int) -> None:
    now = time.time()
    gap = [*_started("gap", live_pid), [4, "metric", "gap", "loss", 0.1, 3, now]]
    held = [_started("held", live_pid)[0],
            [2, "artifact", "held", "input", "/data.csv", None, now, "call"],
            [3, "metric", "held", "loss", 0.2, 1, now]]
    spool = _spool(store, live_pid, [*gap, *held])
    with open(spool, "ab") as f:
        f.write(b'[3, "metric", "gap", "loss", 0.3, 2')  # its owner is still appending
    recovery.write_events(store, _mine("mine"), complete=_as_is, local=NOBODY)
    assert _metrics(store) == [("gap", 0.5)]
    assert _runs(store) == [("gap", "running"), ("held", "running"), ("mine", "running")]
    assert json.loads(spools.written_path(spool).read_text()) == {"gap": 2, "held": 1}


_HOLDER = """
import pathlib, sys, time
from tracker.storage import recovery, writer
from tracker.storage.store import Store

store = Store(pathlib.Path(sys.argv[1]), timeout=5.0)
with store.connect(write=True) as con:
    pathlib.Path(sys.argv[2]).touch()  # holding the lock
    while not pathlib.Path(sys.argv[3]).exists():
        time.sleep(0.01)
    time.sleep(0.3)  # the other writer is in its wait for the lock
    recovery.apply_shared(con, store, [], writer.keeper(store), skip=set())
    time.sleep(60)  # killed -9 here, the lock still held
"""


def test_a_waiting_writer_returns_once_the_lock_holder_committed_its_batch(
        store: Store, tmp_path: Path) -> None:
    holding, waiting = tmp_path / "holding", tmp_path / "waiting"
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(store.path), str(holding),
                               str(waiting)])
    try:
        while not holding.exists():
            assert holder.poll() is None
            time.sleep(0.01)
        lines = _started("mine", os.getpid())
        spool = _spool(store, os.getpid(), lines)
        batch = [events.Spooled("mine", int(str(line[0])), events.from_list(line[1:]))
                 for line in lines]
        store.last_recovery = time.monotonic()  # not this object's first write
        waiting.touch()
        started = time.monotonic()
        assert recovery.write_events(store, batch, complete=_as_is, spool=spool,
                                     local=recovery.Local({"mine"}, {spool}), timeout=30) == 0
        assert time.monotonic() - started < 20  # long before the holder lets go
    finally:
        holder.kill()
        holder.wait()
    assert _runs(store) == [("mine", "running")]  # committed before the kill
    assert _metrics(store) == [("mine", 0.5)]


def test_a_process_that_exited_but_was_never_reaped_is_dead() -> None:
    # A kernel nbval killed, whose parent exited first, in a container whose init never
    # reaps: the pid lives on as a zombie, and its spool must still be recovered.
    import socket
    import subprocess
    import sys

    from tracker._process import process_start
    from tracker.storage import spools

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    started = process_start(child.pid)
    deadline = time.monotonic() + 10
    while not _zombie(child.pid) and time.monotonic() < deadline:
        time.sleep(0.01)  # exited; not waited for yet
    try:
        assert spools.owner_alive(socket.gethostname(), child.pid, started) is False
    finally:
        child.wait()


def _zombie(pid: int) -> bool:
    with open(f"/proc/{pid}/stat") as handle:
        return handle.read().rsplit(")", 1)[-1].split()[0] == "Z"
