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
from tracker.storage import recovery, spools, writer
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
    recovery.maybe_recover(store, prepare=_as_is, local=NOBODY)
    assert _runs(store) == [("r1", "crashed")]
    assert not spool.exists()
    with store.connect() as con:
        assert con.execute("SELECT value FROM metrics").fetchall() == [(0.5,)]


def test_a_live_process_spool_is_left_alone(store: Store, live_pid: int) -> None:
    spool = _spool(store, live_pid, _started("r1", live_pid))
    before = spool.read_bytes()
    recovery.maybe_recover(store, prepare=_as_is, local=NOBODY, force=True)
    assert _runs(store) == []
    assert spool.read_bytes() == before


def test_a_run_whose_process_died_is_marked_crashed_once_due(store: Store,
                                                            live_pid: int) -> None:
    pid = _dead_pid()
    _write(store, [*_started("dead", pid), *_started("alive", live_pid)])
    recovery.maybe_recover(store, prepare=_as_is, local=NOBODY, force=True)
    assert _runs(store) == [("alive", "running"), ("dead", "crashed")]


def test_this_process_own_runs_and_spool_are_never_recovered(store: Store) -> None:
    # What the layer above says this process writes itself, even were its pid to look dead.
    pid = _dead_pid()
    spool = _spool(store, pid, _started("other", pid))
    _write(store, _started("mine", pid))
    own = recovery.Local({"mine"}, {spool})
    recovery.maybe_recover(store, prepare=_as_is, local=own, force=True)
    assert _runs(store) == [("mine", "running")]
    assert spool.exists()


def test_a_first_write_recovers_in_the_same_open(store: Store) -> None:
    pid = _dead_pid()
    _spool(store, pid, _started("orphan", pid))
    now = time.time()
    batch = [events.Spooled("new", 1, events.Start("new", {"name": "new", "started_at": now}))]
    assert recovery.write_events(store, batch, prepare=_as_is, local=NOBODY) == 0
    assert _runs(store) == [("new", "running"), ("orphan", "crashed")]
    assert store.last_recovery > 0
    assert os.listdir(store.spool_dir) == []
