"""A process that showed the runs browser exits cleanly: no abort, no hang, no warning.

The browser reads the catalog from background threads (the dropdowns' counts, the live
ticker); a daemon thread still inside DuckDB or Arrow when the interpreter finalises aborts or
hangs the process. Each scenario runs RUNS processes, PARALLEL at a time, against one catalog
built once for the module: a file, then a PostgreSQL catalog (the server's driver has threads
and sockets of its own to wind down).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import backends
import pytest
from jupyter_client.manager import KernelManager
from jupyter_core.utils import ensure_event_loop

import tracker

pytestmark = [pytest.mark.slow, backends.WRITES_ON_BOTH]

REPO = Path(__file__).parent.parent
RUNS = 50
PARALLEL = 4
TIMEOUT = 120.0  # per process: far beyond a clean exit (a second or two), even on a busy machine
CATALOG_RUNS = 300
BAD_SIGNS = ("FATAL", "Fatal Python error", "terminate called", "TrackerWarning")

SHOWN = """
from tracker.widgets import RunTable
RunTable()
"""
# A running run on the first page keeps the ticker reading the catalog: exit comes mid-tick.
LIVE = """
import time
import tracker
from tracker.widgets import RunTable
tracker.start_run(name="live")
table = RunTable(interval=0.01)
assert table.live_updating
time.sleep(0.1)
"""
# The shutdown request follows at once: the dropdowns may still be loading. No %load_ext, so
# the browser is the first to import duckdb, as in a kernel that only browses.
KERNEL_CELL = """
import tracker
from tracker.widgets import RunTable
tracker.start_run(name="kernel")
t = RunTable()
live = RunTable(interval=0.01)
assert live.live_updating
"""


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("exit")


def _populate(name: str, job: dict[str, object]) -> None:
    """Fill a catalog with benchmarks/tracker_side.py's ``name`` (not installed: it fills
    catalogs quickly, with the writers' own code)."""
    sys.path.insert(0, str(REPO))
    try:
        from benchmarks import tracker_side
    finally:
        sys.path.remove(str(REPO))
    getattr(tracker_side, name)(job)


@pytest.fixture(scope="module")
def file_catalog(folder: Path) -> str:
    """A catalog file of CATALOG_RUNS runs, built once for the module."""
    catalog = folder / "catalog.duckdb"
    _populate("op_populate", {"catalog": str(catalog), "n": CATALOG_RUNS})
    return str(catalog)


@pytest.fixture(scope="module")
def server_catalog(pg_cluster: Any) -> str:
    """A PostgreSQL catalog of CATALOG_RUNS runs, built once for the module."""
    url = str(pg_cluster.url(pg_cluster.fresh_database()))
    _populate("op_pg_populate", {"catalog": url, "n": CATALOG_RUNS})
    return url


@pytest.fixture
def env(write_backend: str, folder: Path, request: pytest.FixtureRequest) -> dict[str, str]:
    """The environment of every process: a catalog of CATALOG_RUNS runs (a file, then a
    PostgreSQL catalog: ``write_backend``), nothing else."""
    catalog = request.getfixturevalue(
        "server_catalog" if write_backend == "postgresql" else "file_catalog")
    values = {**os.environ, "TRACKER_CATALOG": catalog, "IPYTHONDIR": str(folder / "ipython")}
    for name in ("TRACKER_NOTEBOOK", "PYTEST_CURRENT_TEST", "JPY_SESSION_NAME"):
        values.pop(name, None)
    return values


def run_script(code: str, env: dict[str, str]) -> tuple[int | str, str]:
    """Exit status (or "hang") and stderr of ``python -c code``."""
    try:
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                              text=True, timeout=TIMEOUT, check=False)
    except subprocess.TimeoutExpired as exc:
        return "hang", str(exc.stderr or "")
    return done.returncode, done.stderr


def shut_down_kernel(env: dict[str, str]) -> tuple[int | str, str]:
    """Exit status (or "hang") and stderr of a kernel that showed the browser, then was
    asked to shut down as JupyterLab asks."""
    with tempfile.TemporaryFile("w+") as stderr:
        manager = KernelManager(kernel_name="python3")
        manager.start_kernel(env=env, stderr=stderr)
        client = manager.client()
        client.start_channels()
        try:
            client.wait_for_ready(timeout=TIMEOUT)
            reply = client.execute_interactive(KERNEL_CELL, timeout=TIMEOUT)
            assert reply["content"]["status"] == "ok", reply["content"]
            client.shutdown()
            process = manager.provisioner.process  # type: ignore[union-attr]
            try:
                status: int | str = process.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                status = "hang"
                process.kill()
        finally:
            client.stop_channels()
            manager.cleanup_resources()
            ensure_event_loop().close()  # jupyter_client's loop for this thread, left open
        stderr.seek(0)
        return status, stderr.read()


def failures(start: Callable[[dict[str, str]], tuple[int | str, str]],
             env: dict[str, str]) -> list[str]:
    """RUNS processes, PARALLEL at a time: a line for each that did not exit cleanly."""
    with ThreadPoolExecutor(PARALLEL) as pool:
        outcomes = list(pool.map(lambda _: start(env), range(RUNS)))
    return [f"exit status {status}: {stderr.strip()[-300:]}" for status, stderr in outcomes
            if status != 0 or any(sign in stderr for sign in BAD_SIGNS)]


def test_a_script_that_showed_the_browser_exits_cleanly(env: dict[str, str]) -> None:
    assert failures(lambda e: run_script(SHOWN, e), env) == []


def test_a_script_exits_cleanly_while_live_updates_run(env: dict[str, str]) -> None:
    assert failures(lambda e: run_script(LIVE, e), env) == []


def test_a_kernel_with_the_browser_open_shuts_down_cleanly(env: dict[str, str]) -> None:
    assert failures(shut_down_kernel, env) == []


# Registered before duckdb is imported, so it runs after tracker's exit handler: a background
# thread then tries to read the catalog, as a widget's thread could.
READ_AT_EXIT = """
import atexit, sys, threading, time
import tracker

def read_from_a_thread():
    started = time.monotonic()
    try:
        tracker.runs()
    except tracker.CatalogError as exc:
        print(f"refused after {time.monotonic() - started:.1f} s: {exc}")
    else:
        print("read")

def at_exit():
    thread = threading.Thread(target=read_from_a_thread)
    thread.start()
    thread.join()

atexit.register(at_exit)
tracker.runs()
print("ready", flush=True)
sys.stdin.readline()
"""


def exit_reading(env: dict[str, str], *, locked: bool) -> str:
    """What READ_AT_EXIT's thread got, with the catalog locked by this process or not."""
    env = {**env, "TRACKER_LOCK_TIMEOUT": "20"}
    child = subprocess.Popen([sys.executable, "-c", READ_AT_EXIT], env=env, text=True,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert child.stdout is not None and child.stdout.readline() == "ready\n"
    catalog = tracker.Catalog(env["TRACKER_CATALOG"])
    with catalog.connect(write=True) if locked else contextlib.nullcontext():
        out, _ = child.communicate("\n", timeout=TIMEOUT)
    assert child.returncode == 0
    return out


STOPPED_AT_EXIT = """
import tracker
from tracker import teardown
from tracker.widgets import RunTable

def stopped():
    print("stopped", flush=True)

teardown.before_teardown(stopped)  # as the widgets' and the flusher's stoppers are
RunTable()
"""


def test_the_browsers_threads_are_stopped_at_exit(env: dict[str, str]) -> None:
    # the old code stopped them only once duckdb was imported: a process that browsed only a
    # PostgreSQL catalog left them running into the interpreter's teardown (a hang, now and then)
    done = subprocess.run([sys.executable, "-c", STOPPED_AT_EXIT], env=env, capture_output=True,
                          text=True, timeout=TIMEOUT, check=True)
    assert done.stdout == "stopped\n"


# pinned: the refusal guards DuckDB's instances, which abort a process finalised while a thread
# is inside one; a PostgreSQL catalog's read at exit goes through (the thread gets its runs)
@pytest.mark.parametrize("write_backend", backends.FILE_ONLY)
def test_a_background_thread_opens_no_catalog_once_the_process_exits(
        env: dict[str, str]) -> None:
    assert "is not opened from a background thread while the process exits" in exit_reading(
        env, locked=False)


# pinned: it holds the catalog file's own lock; a server has none to wait for
@pytest.mark.parametrize("write_backend", backends.FILE_ONLY)
def test_a_background_thread_waiting_for_the_lock_gives_up_at_exit(env: dict[str, str]) -> None:
    assert exit_reading(env, locked=True).startswith("refused after 0.")
