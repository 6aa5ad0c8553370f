"""A plain write's attachment kept for the next (tracker.storage.held): reused by the same
process's next write, and given up as soon as anyone else wants the catalog."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

import tracker
from tracker.storage import held
from tracker.storage.store import Store


@pytest.fixture
def kept_long(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Keep attachments for a minute unless wanted: only a hand-over lets anyone else in."""
    monkeypatch.setattr(held, "LINGER", 60.0)
    monkeypatch.setattr(held, "HOLD_MAX", 60.0)
    yield
    held.give_up_all()


def _ready_store(tmp_path: Path) -> Store:
    store = Store(tmp_path / "catalog.duckdb", timeout=10.0)
    with store.connect(write=True):
        pass  # creates the catalog: a plain write goes to a ready one
    return store


def _note(store: Store, value: str) -> None:
    with store.connect(write=True, qualified=True) as con:
        con.execute("INSERT INTO catalog.meta VALUES ('note', ?)", [value])


def _notes_from_another_process(path: Path, *, raw: bool = False) -> list[str]:
    """What a fresh process reads, through tracker's protocol (or, with ``raw``, a DuckDB of
    its own that asks nobody)."""
    opening = (f"duckdb.connect({str(path)!r}, read_only=True)" if raw else
               f"Store(pathlib.Path({str(path)!r}), timeout=10.0).connect()")
    script = textwrap.dedent(f"""
        import contextlib, duckdb, pathlib
        from tracker.storage.store import Store
        with contextlib.ExitStack() as stack:
            opened = {opening}
            con = opened if {raw} else stack.enter_context(opened)
            print(sorted(row[0] for row in con.execute(
                "SELECT value FROM meta WHERE key = 'note'").fetchall()))
            if {raw}:
                con.close()
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=60, check=True)
    return eval(result.stdout)  # a list of strings printed by the script  # noqa: S307


def test_the_next_write_reuses_the_attachment(tmp_path: Path, kept_long: None) -> None:
    store = _ready_store(tmp_path)
    seen = []
    for value in ("a", "b"):
        with store.connect(write=True, qualified=True) as con:
            con.execute("INSERT INTO catalog.meta VALUES ('note', ?)", [value])
            seen.append(con)
    assert seen[0] is seen[1]


def test_another_process_reading_is_handed_the_catalog(tmp_path: Path, kept_long: None) -> None:
    # The reader says it waits on the lock file; the keeper's watcher detaches and unlocks.
    # Without the hand-over the reader would wait out its 10 s and fail.
    store = _ready_store(tmp_path)
    _note(store, "kept")
    assert _notes_from_another_process(store.path) == ["kept"]
    _note(store, "again")  # the next write attaches again and keeps it again
    assert _notes_from_another_process(store.path) == ["again", "kept"]


def test_another_process_writing_is_handed_the_catalog(tmp_path: Path, kept_long: None) -> None:
    store = _ready_store(tmp_path)
    _note(store, "here")
    script = textwrap.dedent(f"""
        import pathlib
        from tracker.storage.store import Store
        store = Store(pathlib.Path({str(store.path)!r}), timeout=10.0)
        with store.connect(write=True, qualified=True) as con:
            con.execute("INSERT INTO catalog.meta VALUES ('note', 'there')")
    """)
    subprocess.run([sys.executable, "-c", script], timeout=60, check=True)
    with store.connect() as con:
        notes = con.execute("SELECT value FROM meta WHERE key = 'note'").fetchall()
    assert sorted(notes) == [("here",), ("there",)]


def test_another_thread_of_the_process_is_handed_the_catalog(
        tmp_path: Path, kept_long: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(held, "POLL", 60.0)  # the watcher sleeps: the thread itself asks
    store = _ready_store(tmp_path)
    _note(store, "kept")
    answers: list[int] = []

    def read() -> None:
        other = Store(store.path, timeout=10.0)  # another object for the same file
        with other.connect() as con:
            answers.append(con.execute("SELECT count(*) FROM meta WHERE key = 'note'")
                           .fetchone()[0])

    reader = threading.Thread(target=read)
    reader.start()
    reader.join(timeout=30)
    assert answers == [1]


@pytest.mark.parametrize("limit", ["LINGER", "HOLD_MAX"])
def test_an_attachment_is_let_go_after_its_time(tmp_path: Path, kept_long: None,
                                                monkeypatch: pytest.MonkeyPatch,
                                                limit: str) -> None:
    # A DuckDB of another tool cannot ask for the file: it can open it once the time is over,
    # after the last write (LINGER) or, while writes keep coming, after the first (HOLD_MAX).
    monkeypatch.setattr(held, limit, 0.2)
    store = _ready_store(tmp_path)
    _note(store, "kept a moment")
    _let_go_by_itself(store)
    assert _notes_from_another_process(store.path, raw=True) == ["kept a moment"]


def test_an_interrupt_while_keeping_lets_the_attachment_go(
        tmp_path: Path, kept_long: None, monkeypatch: pytest.MonkeyPatch) -> None:
    store = _ready_store(tmp_path)

    def interrupted(path: str) -> bool:
        raise KeyboardInterrupt

    monkeypatch.setattr(held._lock, "wanted", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _note(store, "committed")
    monkeypatch.undo()
    assert _notes_from_another_process(store.path, raw=True) == ["committed"]
    _note(store, "next")  # the Store goes on writing
    held.give_up_all()
    assert _notes_from_another_process(store.path, raw=True) == ["committed", "next"]


def _let_go_by_itself(store: Store) -> None:
    """Wait until the attachment's watcher has let it go (detached and unlocked)."""
    watcher = store._held._watcher if store._held is not None else None
    assert watcher is not None
    watcher.join(timeout=30)
    assert not watcher.is_alive()


def test_a_failed_write_lets_the_attachment_go(tmp_path: Path, kept_long: None) -> None:
    store = _ready_store(tmp_path)
    _note(store, "kept")
    with pytest.raises(duckdb.Error), store.connect(write=True, qualified=True) as con:
        con.execute("BEGIN")
        con.execute("INSERT INTO catalog.meta VALUES ('note', 'rolled back')")
        con.execute("SELECT * FROM no_such_table")
    # Unlocked at once, and rolled back: a DuckDB that asks nobody opens it.
    assert _notes_from_another_process(store.path, raw=True) == ["kept"]


def test_a_catalog_replaced_meanwhile_gets_the_next_write(tmp_path: Path,
                                                          kept_long: None) -> None:
    # A write kept attached to a file deleted since would commit into a file nobody sees.
    store = _ready_store(tmp_path)
    _note(store, "old")
    for leftover in (store.path, store.path.with_name("catalog.duckdb.wal")):
        leftover.unlink(missing_ok=True)
    _note(store, "new")
    held.give_up_all()
    assert _notes_from_another_process(store.path, raw=True) == ["new"]


def test_a_forked_child_writes_through_its_own_attachment(tmp_path: Path,
                                                          kept_long: None) -> None:
    store = _ready_store(tmp_path)
    _note(store, "parent")
    pid = os.fork()
    if pid == 0:  # the child: the parent let go before the fork, so the file is free
        code = 1
        try:
            _note(store, "child")
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert _notes_from_another_process(store.path) == ["child", "parent"]


def test_runs_flushed_in_a_loop_are_read_by_another_process(tmp_path: Path,
                                                            kept_long: None) -> None:
    # The public path: flush() keeps the attachment; a fresh process still reads every run.
    catalog = tracker.Catalog(tmp_path / "runs.duckdb")
    for index in range(3):
        with catalog.start_run(f"run {index}"):
            catalog.log_metric("loss", 1 / (index + 1))
        catalog.flush()
    assert catalog.store._held is not None and catalog.store._held.take() is not None
    catalog.store._held.keep()  # the loop's writes were kept: the file is attached now
    script = textwrap.dedent(f"""
        import tracker
        print(len(tracker.Catalog({str(tmp_path / "runs.duckdb")!r}).runs()))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=60, check=True)
    assert result.stdout.strip() == "3"


def test_a_process_exiting_while_it_keeps_the_file_leaves_it_whole(tmp_path: Path) -> None:
    # Exit lets go before DuckDB's teardown, then checkpoints: no abort, and the file alone
    # holds the run (no log left beside it).
    path = tmp_path / "exit.duckdb"
    script = textwrap.dedent(f"""
        import tracker
        from tracker.storage import held
        held.LINGER = held.HOLD_MAX = 60.0
        catalog = tracker.Catalog({str(path)!r})
        with catalog.start_run("last"):
            catalog.log_metric("loss", 0.5)
        catalog.flush()
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=60)
    assert (result.returncode, result.stderr) == (0, "")
    assert not path.with_name("exit.duckdb.wal").exists()
    con = duckdb.connect(str(path), read_only=True)
    try:
        assert con.execute("SELECT name, status FROM runs").fetchall() == [("last", "completed")]
    finally:
        con.close()


def test_a_catalog_copied_over_meanwhile_is_not_taken_for_the_kept_one(tmp_path: Path,
                                                                       kept_long: None) -> None:
    # The keys this process knew are in the kept file, not in the one copied over it: the next
    # write must look them up again, or the copy would get params with no key rows.
    path = tmp_path / "runs.duckdb"
    catalog = tracker.Catalog(path)
    for name in ("first", "kept"):  # a first write also recovers, so is not kept
        with catalog.start_run(name):
            catalog.log_param("lr", 0.1)
        catalog.flush()
    empty = tmp_path / "empty.duckdb"
    with Store(empty, timeout=10.0).connect(write=True):
        pass
    os.replace(empty, path)
    path.with_name("runs.duckdb.wal").unlink(missing_ok=True)
    with catalog.start_run("after"):
        catalog.log_param("lr", 0.2)
    catalog.flush()
    held.give_up_all()
    con = duckdb.connect(str(path), read_only=True)
    try:
        assert con.execute("SELECT key FROM param_keys").fetchall() == [("lr",)]
        assert con.execute("SELECT name FROM runs").fetchall() == [("after",)]
    finally:
        con.close()


def test_the_catalog_through_another_spelling_of_its_folder_is_handed_over(
        tmp_path: Path, kept_long: None) -> None:
    # DuckDB refuses a second attach of one file in a process whatever its path's spelling.
    store = _ready_store(tmp_path)
    _note(store, "kept")
    (tmp_path / "link").symlink_to(tmp_path)
    with Store(tmp_path / "link" / "catalog.duckdb", timeout=10.0).connect() as con:
        assert con.execute("SELECT value FROM meta WHERE key = 'note'").fetchall() == [("kept",)]
