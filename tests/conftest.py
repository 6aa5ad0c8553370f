"""Fixtures shared by the whole suite: every test gets its own catalog, never ~/.tracker."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config

import tracker
from tracker import api, ipython
from tracker import recorder as recorder_module

PYTHON = sys.executable


_CLOSED: list[Any] = []  # recorders of finished tests, closed (see _isolated)


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Point the default catalog and IPython's profile at the test's own folder."""
    monkeypatch.setenv("TRACKER_CATALOG", str(tmp_path / "default" / "catalog.duckdb"))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    # a PostgreSQL catalog's local folder (spools) is under the user's data folder
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.delenv("TRACKER_NOTEBOOK", raising=False)
    monkeypatch.delenv("TRACKER_PROJECT", raising=False)
    tracker.use_catalog(None)
    before = set(recorder_module._recorders)
    yield
    _end_open_runs(api._default)
    tracker.use_catalog(None)
    # The test's recorders are closed as at exit, now, while their folder and DuckDB instance
    # are there: left running, hundreds of them wrote into finished tests' catalogs beside the
    # next tests' DuckDB work (one such write died in duckdb.connect: SIGSEGV, the whole suite
    # with it), and closed at the session's exit, each attached its catalog again (minutes).
    # Kept: collected, a recorder whose spool still holds events (a test's broken catalog)
    # would leave the open file to the garbage collector (a ResourceWarning in another test).
    for made in set(recorder_module._recorders) - before:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "could not record": the test's catalog is gone
            made.close_at_exit(deadline=0.05)
        _CLOSED.append(made)


def _end_open_runs(catalog: tracker.Catalog | None) -> None:
    recorder = catalog.recorder if catalog is not None else None
    if recorder is None:
        return
    for run in reversed(list(recorder.stack)):
        run.end()


@pytest.fixture
def catalog(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tracker.Catalog]:
    """A fresh, empty catalog in the test's temporary folder; in a test that records on both
    back ends (``write_backend``, tests/backends.py), a fresh PostgreSQL database in its turn."""
    import backends

    on_server = backends.on_server(request)
    fresh = tracker.Catalog(request.getfixturevalue("pg_url") if on_server else
                            tmp_path / "catalog.duckdb")
    yield fresh
    _end_open_runs(fresh)
    if on_server:  # sent before the session's server stops, not into its shutdown
        with contextlib.suppress(tracker.CatalogError):
            fresh.flush()


@pytest.fixture
def runner_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a notebook runner started by a test (``jupyter execute``, nbclient):
    a catalog in ``tmp_path``, and nothing of the test's own that names a notebook."""
    values = {**os.environ, "TRACKER_CATALOG": str(tmp_path / "catalog" / "catalog.duckdb")}
    for name in ("TRACKER_NOTEBOOK", "PYTEST_CURRENT_TEST", "JPY_SESSION_NAME"):
        values.pop(name, None)
    return values


@pytest.fixture(params=["file", "postgresql"])
def write_backend(request: pytest.FixtureRequest) -> str:
    """The back end a write-side test's ``catalog`` is, each in turn: a module opts in with
    ``pytestmark = backends.WRITES_ON_BOTH``; a test pins it with
    ``@pytest.mark.parametrize("write_backend", backends.FILE_ONLY)`` and says why."""
    return str(request.param)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Any]:
    """One throwaway PostgreSQL cluster for the session (tests/pg_server.py); a missing server
    or driver fails the test under CI=true, else skips it (as the browser tests do)."""
    import importlib.util

    import pg_server

    try:
        if importlib.util.find_spec("psycopg") is None:
            raise pg_server.PostgresUnavailable(
                "psycopg is not installed (pip install -e '.[test]' or 'tracker[postgres]')")
        cluster = pg_server.Cluster()
    except pg_server.PostgresUnavailable as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is needed in CI: {exc}")
        pytest.skip(f"no PostgreSQL here: {exc}")
    yield cluster
    cluster.close()


@pytest.fixture
def pg_url(pg_cluster: Any) -> str:
    """The URL of a fresh, empty database of its own on the session's PostgreSQL cluster."""
    return str(pg_cluster.url(pg_cluster.fresh_database()))


@pytest.fixture(params=["file", "postgresql"])
def read_backend(request: pytest.FixtureRequest) -> str:
    """The back end a read-side test reads from, each in turn (tests/backends.py); a test pins
    it with ``@pytest.mark.parametrize("read_backend", backends.FILE_ONLY)`` and says why."""
    return str(request.param)


@pytest.fixture
def reads(read_backend: str, catalog: tracker.Catalog,
          request: pytest.FixtureRequest) -> Iterator[tracker.Catalog]:
    """The catalog a test reads: ``catalog`` itself, or a PostgreSQL catalog fed every event
    ``catalog``'s writer commits (tests/backends.py), so both hold the same runs. Its own
    patch: a test's ``monkeypatch.undo()`` must not stop the feed."""
    import backends

    if read_backend == "file":
        yield catalog
        return
    with pytest.MonkeyPatch.context() as patch:
        yield backends.mirror(catalog, request.getfixturevalue("pg_url"), patch)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A private folder on its own 16 MB tmpfs, to fill up for real (root can mount one, and CI
    runs as root on this kind of machine: there a failure to mount fails the test)."""
    folder = tmp_path / "disk"
    folder.mkdir(mode=0o700)
    _mounted_or_skip(["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", str(folder)],
                     "a tmpfs")
    try:
        yield folder
    finally:
        # Lazy: this process keeps the catalog's lock file open for its lifetime.
        subprocess.run(["umount", "-l", str(folder)], check=True)


def _mounted_or_skip(command: list[str], what: str) -> None:
    """Run a mount's command; in CI (root, the tools installed by .ci/run) a failure fails the
    test, elsewhere it skips it."""
    try:
        done = subprocess.run(command, capture_output=True, text=True)
        problem = done.stderr.strip() if done.returncode else ""
    except FileNotFoundError as exc:
        problem = str(exc)
    if not problem:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"cannot make {what} in CI: {problem}")
    pytest.skip(f"cannot make {what} here: {problem}")


@pytest.fixture
def reflink_disk(tmp_path: Path) -> Iterator[Path]:
    """A private folder on its own XFS file system with reflinks (a sparse 300 MiB image,
    loop-mounted: root and Debian's xfsprogs, which .ci/run installs), where a copy can share
    the source's blocks."""
    image, folder = tmp_path / "xfs.img", tmp_path / "xfs"
    folder.mkdir(mode=0o700)
    with open(image, "wb") as f:
        f.truncate(300 << 20)  # XFS's smallest
    _mounted_or_skip(["mkfs.xfs", "-q", "-m", "reflink=1", str(image)], "an XFS image")
    _mounted_or_skip(["mount", "-o", "loop", str(image), str(folder)], "an XFS mount")
    try:
        folder.chmod(0o700)
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)


@pytest.fixture
def fill_disk() -> Callable[[Path], Path]:
    """``fill_disk(folder)`` writes a file there until the disk is full and returns it;
    removing the file frees the space."""

    def fill(folder: Path) -> Path:
        filler = folder / "filler"
        with open(filler, "wb", buffering=0) as f:
            for chunk in (b"x" * 65536, b"x"):  # big writes, then the last bytes one by one
                try:
                    while True:
                        f.write(chunk)
                except OSError:
                    pass
        return filler

    return fill


@pytest.fixture
def ip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[InteractiveShell]:
    """A fresh shell working in the test's folder; the extension is unloaded afterwards."""
    monkeypatch.chdir(tmp_path)
    for name in ("JPY_SESSION_NAME", "PYTEST_CURRENT_TEST", "TRACKER_CAPTURE"):
        monkeypatch.delenv(name, raising=False)
    InteractiveShell.clear_instance()
    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    shell = InteractiveShell.instance(config=config)
    yield shell
    session = ipython.session_of(shell)
    if session is not None:
        ipython.unload(shell)
        session.guarded("ending the run", session.end)
    shell.history_manager.end_session()
    InteractiveShell.clear_instance()


@pytest.fixture
def call_near_fifo() -> Callable[[Path, Callable[[], Any]], Any]:
    """``call_near_fifo(fifo, call)``: ``call()``'s result, or the exception it raised, from a
    thread given 20 s; a call still blocked (reading the FIFO) fails the test, and is let go."""

    def run(fifo: Path, call: Callable[[], Any]) -> Any:
        outcome: list[Any] = []

        def attempt() -> None:
            try:
                outcome.append(call())
            except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
                outcome.append(exc)

        worker = threading.Thread(target=attempt, daemon=True)
        worker.start()
        worker.join(timeout=20)
        try:
            assert not worker.is_alive(), f"blocked on the FIFO {fifo}"
        finally:
            with contextlib.suppress(OSError):  # let a blocked reader go
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        return outcome[0]

    return run


class _Recording:
    """A DuckDB connection that remembers the SQL it runs."""

    def __init__(self, connection: Any, statements: list[str]) -> None:
        self.connection = connection
        self.statements = statements

    def execute(self, sql: str, *args: Any) -> Any:
        self.statements.append(sql)
        return self.connection.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.connection, name)


@pytest.fixture
def sql_statements(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every statement run on an attached DuckDB catalog from now on, in order."""
    from tracker.storage import instances

    ran: list[str] = []
    attach, detach = instances.attach, instances.detach
    monkeypatch.setattr(instances, "attach",
                        lambda *args, **kwargs: _Recording(attach(*args, **kwargs), ran))
    monkeypatch.setattr(instances, "detach", lambda connection, path, **kwargs:
                        detach(connection.connection, path, **kwargs))
    return ran
