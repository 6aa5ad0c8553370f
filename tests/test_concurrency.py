"""Several real processes on one catalog at once: nothing is lost, not even to kill -9.

On both back ends (issue #13): each test's ``catalog`` is a file, then a PostgreSQL database
(tests/backends.py). Pinned to the file catalog, each saying why: DuckDB's file lock and a
catalog file's creation, which a PostgreSQL catalog does not have.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import types
from pathlib import Path

import backends
import pytest

import tracker
from tracker.recorder import SPOOL_BOUND
from tracker.storage import lock as _lock

pytestmark = backends.WRITES_ON_BOTH

WRITER = textwrap.dedent("""
    import sys, tracker
    catalog = tracker.Catalog(sys.argv[1])
    worker, count = sys.argv[2], int(sys.argv[3])
    for i in range(count):
        with catalog.start_run(f"{worker}-{i}", params={"worker": worker, "i": i, "lr": i / 100},
                               labels=[worker]) as run:
            run.log_metric("loss", 1.0 / (i + 1), step=0)
            run.log_metric("loss", 0.5 / (i + 1), step=1)
            run.log_metric("acc", i / count)
        print(run.id, flush=True)  # acknowledged: ended, so on disk
""")


def _start_writer(path: Path | str, worker: str, count: int) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", WRITER, str(path), worker, str(count)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_four_processes_writing_at_once_lose_nothing(catalog: tracker.Catalog) -> None:
    writers = [_start_writer(backends.address(catalog), f"w{n}", 200) for n in range(4)]
    acknowledged = set()
    for writer in writers:
        out, err = writer.communicate(timeout=600)
        assert writer.returncode == 0, err
        acknowledged |= set(out.split())
    assert len(acknowledged) == 800
    frame = catalog.runs()
    assert set(frame["id"]) == acknowledged
    assert set(frame["status"]) == {"completed"}
    assert (frame["params.lr"] == frame["params.i"] / 100).all()
    assert int(catalog.sql("SELECT count(*) FROM metrics").iloc[0, 0]) == 800 * 3
    assert int(catalog.sql("SELECT count(*) FROM params").iloc[0, 0]) == 800 * 3
    by_worker = catalog.count_runs(by="params.worker")
    assert sorted(by_worker["count"]) == [200, 200, 200, 200]


@pytest.mark.slow
def test_a_writer_killed_mid_stream_loses_no_acknowledged_run(catalog: tracker.Catalog) -> None:
    writer = _start_writer(backends.address(catalog), "victim", 100_000)
    acknowledged = []
    assert writer.stdout is not None
    while len(acknowledged) < 150:
        acknowledged.append(writer.stdout.readline().strip())
    os.kill(writer.pid, signal.SIGKILL)
    acknowledged += writer.stdout.read().split()  # not communicate(): see _logged_before_kill
    writer.communicate()
    frame = backends.settled(catalog).runs(include_deleted=True)
    statuses = dict(zip(frame["id"], frame["status"]))
    missing = [run_id for run_id in acknowledged if run_id not in statuses]
    assert not missing
    assert all(statuses[run_id] == "completed" for run_id in acknowledged)
    # The run that was open when the process died is recorded as crashed, not running.
    assert "running" not in set(frame["status"])
    assert not list(catalog.spool_dir.glob("*.jsonl"))


def test_a_dead_process_run_is_marked_crashed_with_what_it_logged(
        catalog: tracker.Catalog) -> None:
    script = textwrap.dedent("""
        import os, signal, sys, tracker
        catalog = tracker.Catalog(sys.argv[1])
        run = catalog.start_run("doomed", params={"lr": 0.1})
        run.log_metric("loss", 0.4)
        catalog.recorder.spool()  # what a finished notebook cell guarantees
        print(run.id, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    done = subprocess.run([sys.executable, "-c", script, backends.address(catalog)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == -signal.SIGKILL
    run_id = done.stdout.strip()
    info = backends.settled(catalog).get_run(run_id)
    assert info.status == "crashed"
    assert info.params == {"lr": 0.1}
    assert info.metrics == {"loss": 0.4}
    assert info.ended_at is not None


# A PostgreSQL catalog's readers judge no process (a reader may be on another machine): the
# run is crashed by the next write or sync on its own machine (backends.settled, above).
@pytest.mark.parametrize("write_backend", backends.FILE_ONLY)
def test_a_running_run_whose_process_died_is_found_by_any_reader(tmp_path: Path) -> None:
    path = tmp_path / "stale.duckdb"
    script = textwrap.dedent("""
        import os, signal, sys, tracker
        catalog = tracker.Catalog(sys.argv[1])
        run = catalog.start_run("stuck")
        catalog.flush()  # in the catalog as running, spool emptied
        print(run.id, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    done = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True,
                          text=True, timeout=120)
    run_id = done.stdout.strip()
    time.sleep(0.1)
    assert tracker.Catalog(path).runs()["status"].tolist() == ["crashed"]
    assert tracker.Catalog(path).get_run(run_id).status == "crashed"


# A catalog file's creation (a draft renamed into place); PostgreSQL creates its tables in one
# transaction (tests/test_storage_pg_store.py: processes starting together create them once).
@pytest.mark.parametrize("write_backend", backends.FILE_ONLY)
def test_a_process_killed_while_creating_the_catalog_leaves_it_creatable(tmp_path: Path) -> None:
    """nbval SIGKILLs a kernel whose first write may still be creating the catalog: the
    catalog's path holds a file only once the file is whole, so the next process can open it."""
    path = tmp_path / "new.duckdb"
    script = textwrap.dedent("""
        import os, signal, sys, tracker
        from tracker.storage.store import Store

        def create_then_die(connection):
            create(connection)
            os.kill(os.getpid(), signal.SIGKILL)  # mid-creation: schema built, run not yet

        create, Store._create = Store._create, staticmethod(create_then_die)
        catalog = tracker.Catalog(sys.argv[1])
        with catalog.start_run("first", params={"lr": 0.1}) as run:
            run.log_metric("loss", 0.4)
        print(run.id, flush=True)  # ended, so in the spool
        catalog.flush()
    """)
    done = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert not path.exists()
    assert path.with_name("new.duckdb.draft").exists()  # what the kill left behind

    info = tracker.Catalog(path).get_run(done.stdout.strip())
    assert (info.name, info.status, info.params, info.metrics) == (
        "first", "completed", {"lr": 0.1}, {"loss": 0.4})
    assert not path.with_name("new.duckdb.draft").exists()
    assert path.stat().st_mode & 0o777 == 0o600


HOLDER = textwrap.dedent("""
    import sys
    from tracker.storage import lock as _lock
    with _lock.locked(sys.argv[1], write=sys.argv[2] == "write", timeout=60):
        print("locked", flush=True)
        sys.stdin.readline()  # held until the test says so
""")


def _hold_lock(path: Path, mode: str) -> subprocess.Popen[str]:
    """Another process holding the catalog's lock (``write`` or ``read``) until released."""
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), mode],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    return holder


def _release(holder: subprocess.Popen[str]) -> None:
    holder.communicate("\n", timeout=60)


LOGGER = textwrap.dedent("""
    import sys, time, tracker
    run = tracker.Catalog(sys.argv[1]).start_run("logging-while-locked")
    logged = 0
    while True:
        for _ in range(50):
            run.log_metric("loss", 1.0 / (logged + 1), step=logged)
            logged += 1
        print(time.time(), logged, flush=True)
        time.sleep(0.005)
""")


def _logged_before_kill(logger: subprocess.Popen[str], first: str) -> int:
    """Kill -9 the LOGGER; how many values it had logged SPOOL_BOUND before the kill, which
    tracker promises are in its spool. Its progress after ``first`` is read through the stream
    that line came from: communicate() reads the pipe itself, skipping what that readline
    buffered ahead, and would start mid-line."""
    assert logger.stdout is not None
    logger.kill()
    killed_at = time.time()
    progress = [line.split() for line in (first + logger.stdout.read()).splitlines()]
    logger.communicate()
    return max((int(count) for at, count in progress if float(at) <= killed_at - SPOOL_BOUND),
               default=0)


# DuckDB's file lock, held by another process: a PostgreSQL catalog has none (a table locked
# on the server: test_what_was_logged_while_the_server_held_its_tables_survives_kill_9).
@pytest.mark.slow
@pytest.mark.parametrize("write_backend", backends.FILE_ONLY)
def test_what_was_logged_while_another_process_held_the_catalog_survives_kill_9(
        tmp_path: Path) -> None:
    path = tmp_path / "held.duckdb"
    tracker.Catalog(path).runs()
    holder = _hold_lock(path, "write")
    logger = subprocess.Popen([sys.executable, "-c", LOGGER, str(path)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert logger.stdout is not None
    first = logger.stdout.readline()  # logging has begun
    time.sleep(3 * SPOOL_BOUND)  # the logger's writer waits for the catalog all along
    safe = _logged_before_kill(logger, first)
    _release(holder)

    assert safe > 0
    catalog = tracker.Catalog(path)
    assert catalog.runs()["status"].tolist() == ["crashed"]
    recorded = int(catalog.sql("SELECT count(*) FROM metrics").iloc[0, 0])
    assert recorded >= safe


# DuckDB's file lock, and recovery by readers: a PostgreSQL catalog's reads do not recover.
@pytest.mark.parametrize("write_backend", backends.FILE_ONLY)
def test_a_read_goes_on_when_recovery_cannot_have_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "reading.duckdb"
    tracker.Catalog(path).runs()
    holder = _hold_lock(path, "read")
    try:
        # A process that ends its run and dies before its writer could reach the catalog.
        script = textwrap.dedent("""
            import os, signal, sys, tracker
            with tracker.Catalog(sys.argv[1]).start_run("orphan") as run:
                run.log_param("lr", 0.1)
            os.kill(os.getpid(), signal.SIGKILL)
        """)
        subprocess.run([sys.executable, "-c", script, str(path)], timeout=120)
        started = time.monotonic()
        assert tracker.Catalog(path, timeout=10).runs().empty  # recovery is left for later
        assert time.monotonic() - started < 5  # far from waiting out the lock
    finally:
        _release(holder)
    assert tracker.Catalog(path).runs()["name"].tolist() == ["orphan"]


# Spools ingested by readers: a PostgreSQL catalog's reader may be on another machine than
# the spool, which the next write or sync on the spool's machine sends (test_pg_recording.py).
@pytest.mark.parametrize("write_backend", backends.FILE_ONLY)
def test_a_long_lived_reader_sees_runs_that_exited_processes_left_in_spools(
        tmp_path: Path) -> None:
    path = tmp_path / "long-lived.duckdb"
    reader = tracker.Catalog(path)
    assert reader.runs().empty  # the reader has read (and recovered) before
    script = textwrap.dedent("""
        import os, sys, tracker
        with tracker.Catalog(sys.argv[1]).start_run(sys.argv[2]):
            pass
        os._exit(0)  # gone without its exit handler: the run is only in the spool
    """)
    with _lock.locked(str(path), write=True, timeout=30):  # keep their writers out
        for n in range(3):
            subprocess.run([sys.executable, "-c", script, str(path), f"exited-{n}"],
                           timeout=120, check=True)
    assert len(list(reader.spool_dir.glob("*.jsonl"))) == 3
    started = time.monotonic()
    names = reader.runs()["name"].tolist()
    assert sorted(names) == ["exited-0", "exited-1", "exited-2"]
    assert time.monotonic() - started < 1


SCRIPT = textwrap.dedent("""
    import sys, tracker
    k = sys.argv[1]
    for i in range(30):
        with tracker.start_run(f"w{k}-{i}"):
            tracker.log_metric("loss", 1 / (i + 1))
""")


@pytest.mark.slow
def test_a_long_lived_reader_sees_all_runs_of_scripts_that_exited_within_a_second(
        catalog: tracker.Catalog) -> None:
    # Issue #10's scenario: eight plain scripts end 30 runs each and exit with status 0; a
    # process that read the catalog before they started (a notebook) must see all 240 at once,
    # not 30, 60 or 210 of them until some later recovery.
    reader = catalog
    assert reader.runs().empty
    env = {**os.environ, "TRACKER_CATALOG": backends.address(catalog)}
    scripts = [subprocess.Popen([sys.executable, "-c", SCRIPT, str(k)], env=env,
                                stderr=subprocess.PIPE, text=True) for k in range(8)]
    for script in scripts:
        _, err = script.communicate(timeout=600)
        assert script.returncode == 0, err
    exited = time.monotonic()
    while True:
        frame = reader.runs()
        waited = time.monotonic() - exited
        if len(frame) == 240 or waited > 5:
            break
        time.sleep(0.05)
    assert len(frame) == 240, f"saw {len(frame)} of 240 runs {waited:.1f} s after the exits"
    assert waited <= 1.0
    assert set(frame["name"]) == {f"w{k}-{i}" for k in range(8) for i in range(30)}
    assert set(frame["status"]) == {"completed"}


# DuckDB's file lock (tracker.storage.lock): PostgreSQL's writers wait on the server's locks.
@pytest.mark.parametrize("write_backend", backends.FILE_ONLY)
def test_a_waiting_writer_tries_again_every_few_milliseconds(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A long wait must not grow into long sleeps: the waiter would sleep through the moments
    # the catalog is free, and fresh writers would take it again and again (8 writers: 8.7 s).
    path = tmp_path / "busy.duckdb"
    holder = _hold_lock(path, "write")
    pauses: list[float] = []

    def sleep(seconds: float) -> None:
        pauses.append(seconds)
        time.sleep(seconds)

    monkeypatch.setattr(_lock, "time", types.SimpleNamespace(monotonic=time.monotonic,
                                                             sleep=sleep))
    try:
        with pytest.raises(tracker.CatalogLockedError):
            with _lock.locked(str(path), write=True, timeout=0.3):
                pass
    finally:
        _release(holder)
    assert len(pauses) > 10 and max(pauses) <= 0.01


TAGGER = textwrap.dedent("""
    import sys, tracker
    catalog = tracker.Catalog(sys.argv[1])
    run_id, worker = sys.argv[2], sys.argv[3]
    for i in range(30):
        catalog.set_tags({f"{worker}-{i}": i, "last": worker}, run=run_id)
    catalog.delete_tag("stage", run=run_id)
""")


@pytest.mark.slow
def test_two_processes_tagging_one_run_at_once_lose_no_tag(catalog: tracker.Catalog) -> None:
    with catalog.start_run("reviewed") as run:
        run.set_tags({"stage": "draft", "owner": "ann"})
    taggers = [subprocess.Popen([sys.executable, "-c", TAGGER, backends.address(catalog),
                                 run.id[:8], worker], stderr=subprocess.PIPE, text=True)
               for worker in ("ann", "bob")]
    for tagger in taggers:
        _, err = tagger.communicate(timeout=300)
        assert tagger.returncode == 0, err
    tags = catalog.get_run(run.id).tags
    assert tags.pop("last") in ("ann", "bob")
    assert tags == {"owner": "ann", **{f"{worker}-{i}": str(i) for worker in ("ann", "bob")
                                       for i in range(30)}}


RECORDING = textwrap.dedent("""
    import sys, time, tracker
    catalog = tracker.Catalog(sys.argv[1])
    with catalog.start_run("recording", params={"lr": 0.1}) as run:
        catalog.flush()  # in the catalog: another process can find it
        print(run.id, flush=True)
        for step in range(300):
            run.log_metric("loss", 1 / (step + 1), step=step)
            if step % 30 == 0:
                catalog.flush()  # written while the other process deletes it
            time.sleep(0.002)
        run.set_tag("verdict", "good")
""")


def _recording(catalog: tracker.Catalog) -> tuple[subprocess.Popen[str], str]:
    """Another process recording a run (:data:`RECORDING`), once the run is in ``catalog``;
    and the run's id."""
    recording = subprocess.Popen([sys.executable, "-c", RECORDING, backends.address(catalog)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert recording.stdout is not None
    return recording, recording.stdout.readline().strip()


def _finish(process: subprocess.Popen[str]) -> None:
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err


def test_a_run_deleted_while_its_process_records_stays_deleted_and_loses_nothing(
        catalog: tracker.Catalog) -> None:
    recording, run_id = _recording(catalog)
    assert catalog.delete_run(run_id) == run_id  # while it logs
    _finish(recording)
    assert catalog.runs().empty  # its later writes did not bring it back
    [deleted] = catalog.runs(deleted_only=True).itertuples()
    assert (deleted.id, deleted.status) == (run_id, "completed")
    assert catalog.metric_history(run_id, "loss")["step"].tolist() == list(range(300))
    catalog.restore_run(run_id)
    info = catalog.get_run(run_id)
    assert (info.params, info.metrics, info.tags) == (
        {"lr": 0.1}, {"loss": 1 / 300}, {"verdict": "good"})


TABLES = ("runs", "params", "metrics", "tags", "cells", "run_artifacts", "artifacts")


@pytest.mark.slow
@pytest.mark.parametrize("write_backend", ["postgresql"])
def test_what_was_logged_while_the_server_held_its_tables_survives_kill_9(
        catalog: tracker.Catalog) -> None:
    # The PostgreSQL counterpart of the DuckDB file lock held above: another session holds
    # every table tracker writes, so the logger's flusher waits inside its transaction.
    import psycopg

    address = backends.address(catalog)
    catalog.runs()  # the tables exist
    with psycopg.connect(address) as holder:
        holder.execute(f"LOCK TABLE {', '.join(f'tracker.{t}' for t in TABLES)} "
                       "IN EXCLUSIVE MODE")
        logger = subprocess.Popen([sys.executable, "-c", LOGGER, address],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert logger.stdout is not None
        first = logger.stdout.readline()  # logging has begun
        time.sleep(3 * SPOOL_BOUND)  # the logger's writer waits for the tables all along
        assert holder.execute("SELECT count(*) FROM tracker.runs").fetchone() == (0,)
        safe = _logged_before_kill(logger, first)
    assert safe > 0
    assert backends.settled(catalog).runs()["status"].tolist() == ["crashed"]
    recorded = int(catalog.sql("SELECT count(*) FROM metrics").iloc[0, 0])
    assert recorded >= safe


def test_a_run_edited_while_its_process_records_keeps_the_edit(catalog: tracker.Catalog) -> None:
    recording, run_id = _recording(catalog)
    catalog.update_run(run_id, name="renamed", labels=["reviewed"], notes="by ann")  # meanwhile
    _finish(recording)
    info = catalog.get_run(run_id)
    assert (info.name, info.labels, info.notes) == ("renamed", ("reviewed",), "by ann")
    assert (info.status, info.params, info.tags) == ("completed", {"lr": 0.1}, {"verdict": "good"})
    assert catalog.metric_history(run_id, "loss")["step"].tolist() == list(range(300))
