"""The sidecar lock (tracker.storage.lock) between real processes: shared to read, exclusive to
write, a wait bounded by its timeout, and the holder named when it runs out."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import tracker
from tracker.storage.lock import flocked, locked

HOLDER = textwrap.dedent("""
    import pathlib, sys, time
    from tracker.storage.lock import locked
    with locked(sys.argv[1], write=sys.argv[2] == "write", timeout=10):
        pathlib.Path(sys.argv[3]).touch()
        time.sleep(60)
""")

Hold = Callable[[Path, str], "subprocess.Popen[bytes]"]


@pytest.fixture
def hold(tmp_path: Path) -> Iterator[Hold]:
    """Start a process holding the lock of a catalog path (``write`` or ``read``)."""
    started: list[subprocess.Popen[bytes]] = []

    def start(path: Path, mode: str) -> subprocess.Popen[bytes]:
        ready = tmp_path / f"ready-{len(started)}"
        process = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), mode, str(ready)])
        started.append(process)
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert time.monotonic() < deadline and process.poll() is None, "holder did not start"
            time.sleep(0.02)
        return process

    yield start
    for process in started:
        process.kill()
        process.wait()


def test_readers_share_the_lock(tmp_path: Path, hold: Hold) -> None:
    path = tmp_path / "catalog.duckdb"
    hold(path, "read")
    started = time.monotonic()
    with locked(str(path), write=False, timeout=5):
        pass
    assert time.monotonic() - started < 1


def test_a_writer_waits_for_a_reader_and_gives_up_naming_it(tmp_path: Path, hold: Hold) -> None:
    path = tmp_path / "catalog.duckdb"
    reader = hold(path, "read")
    started = time.monotonic()
    with pytest.raises(tracker.CatalogLockedError, match=f"PID {reader.pid}") as caught:
        with locked(str(path), write=True, timeout=0.3):
            pass
    assert 0.3 <= time.monotonic() - started < 2
    assert caught.value.holder is not None and str(reader.pid) in caught.value.holder


def test_a_reader_waits_for_a_writer(tmp_path: Path, hold: Hold) -> None:
    path = tmp_path / "catalog.duckdb"
    hold(path, "write")
    with pytest.raises(tracker.CatalogLockedError, match="gave up after 0.2 s"):
        with locked(str(path), write=False, timeout=0.2):
            pass


def test_the_lock_is_free_once_its_holder_is_gone(tmp_path: Path, hold: Hold) -> None:
    path = tmp_path / "catalog.duckdb"
    writer = hold(path, "write")
    writer.kill()
    writer.wait()  # the OS drops a dead process's locks
    with locked(str(path), write=True, timeout=2):
        pass


def test_a_cancelled_wait_ends_at_once(tmp_path: Path, hold: Hold) -> None:
    path = tmp_path / "catalog.duckdb"
    hold(path, "write")
    cancel = threading.Event()
    threading.Timer(0.2, cancel.set).start()
    started = time.monotonic()
    with pytest.raises(tracker.CatalogLockedError, match="cancelled"):
        with locked(str(path), write=True, timeout=30, cancel=cancel):
            pass
    assert time.monotonic() - started < 2


def test_threads_of_one_process_take_turns(tmp_path: Path) -> None:
    path = str(tmp_path / "catalog.duckdb")
    inside: list[int] = []
    overlaps: list[int] = []

    def work() -> None:
        for _ in range(20):
            with locked(path, write=True, timeout=10):
                inside.append(1)
                if len(inside) > 1:
                    overlaps.append(1)
                time.sleep(0.001)
                inside.pop()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert overlaps == []


READER = textwrap.dedent("""
    import pathlib, sys, time
    from tracker.storage.lock import locked
    pathlib.Path(sys.argv[2]).touch()
    with locked(sys.argv[1], write=False, timeout=30):
        pathlib.Path(sys.argv[3]).touch()
        time.sleep(0.2)
""")


def test_a_waiting_reader_goes_before_a_waiting_writer(tmp_path: Path, hold: Hold) -> None:
    # Without a turn for readers, the writer won half of these races (both retry every few ms).
    for turn in range(5):
        path = tmp_path / f"catalog-{turn}.duckdb"
        writer = hold(path, "write")
        waiting, read = tmp_path / f"waiting-{turn}", tmp_path / f"read-{turn}"
        reader = subprocess.Popen([sys.executable, "-c", READER, str(path), str(waiting),
                                   str(read)])
        while not waiting.exists():
            time.sleep(0.01)
        time.sleep(0.3)  # the reader is in its wait
        threading.Timer(0.3, writer.kill).start()
        with locked(str(path), write=True, timeout=30):
            assert read.exists(), f"the writer went first in turn {turn}"
        reader.wait()


def test_flocked_takes_a_file_lock_only_while_nobody_holds_it(tmp_path: Path) -> None:
    target = tmp_path / "staged"
    target.write_bytes(b"content")
    first = flocked(target)
    assert first is not None
    try:
        assert flocked(target) is None  # another descriptor, even of this process, holds it
    finally:
        os.close(first)
    second = flocked(target)
    assert second is not None
    os.close(second)


def test_flocked_refuses_a_file_removed_before_it_was_locked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "journal"
    target.write_bytes(b"")
    opened = os.open

    def open_then_removed(path: str, flags: int, mode: int = 0o777) -> int:
        fd = opened(path, flags, mode)
        target.unlink()  # whoever finished with it, between our listing and our lock
        return fd

    monkeypatch.setattr(os, "open", open_then_removed)
    assert flocked(target) is None
