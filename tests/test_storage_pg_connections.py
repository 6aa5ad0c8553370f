"""The connections a process keeps to a PostgreSQL catalog (tracker/storage/pg_connections.py,
used by tracker/storage/pg_store.py), on a real server: operations reuse one connection instead
of opening one each, threads never share one, a connection the server dropped while idle is
replaced without the caller noticing, a forked child opens its own, and exit closes them."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from typing import Any

import psycopg
import pytest

from tracker.storage import pg_connections
from tracker.storage.pg_store import PgStore


def _backend(store: PgStore, *, write: bool = False) -> int:
    """The server process serving this operation of ``store``."""
    with store.connect(write=write) as connection:
        return int(connection.execute("SELECT pg_backend_pid()").fetchone()[0])


def _settled_count(url: str, backends: list[int], expected: int) -> bool:
    """Whether, within 10 s, exactly ``expected`` of ``backends`` are still connected (a
    closed connection's server process ends a moment later)."""
    deadline = time.monotonic() + 10
    with psycopg.connect(url, autocommit=True) as admin:
        while True:
            alive = admin.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)",
                                  [backends]).fetchone()
            if alive == (expected,) or time.monotonic() > deadline:
                return alive == (expected,)
            time.sleep(0.05)


def _counting_connects(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every connection psycopg opens from now on (the URL it was given)."""
    opened: list[str] = []
    real = psycopg.connect

    def counted(url: str, *args: Any, **kwargs: Any) -> Any:
        opened.append(url)
        return real(url, *args, **kwargs)

    monkeypatch.setattr(psycopg, "connect", counted)
    return opened


def test_operations_of_a_process_reuse_one_connection(
        pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    opened = _counting_connects(monkeypatch)
    store = PgStore(pg_url, 10)
    backends = {_backend(store, write=k % 2 == 0) for k in range(20)}
    assert len(opened) == 1 and len(backends) == 1
    with store.connect() as connection:  # reused, and still READ ONLY when asked
        assert connection.execute("SHOW transaction_read_only").fetchone() == ("on",)
    with store.connect(write=True) as connection:
        assert connection.execute("SHOW transaction_read_only").fetchone() == ("off",)


def test_threads_never_share_a_connection(pg_url: str) -> None:
    store = PgStore(pg_url, 10)
    inside = threading.Barrier(3)
    seen: list[int] = []

    def operation() -> None:
        with store.connect() as connection:
            seen.append(int(connection.execute("SELECT pg_backend_pid()").fetchone()[0]))
            inside.wait(10)  # all three operations are open at once

    threads = [threading.Thread(target=operation) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert len(set(seen)) == 3
    # afterwards at most KEEP stay open, and the next operations use them
    assert _settled_count(pg_url, seen, pg_connections.KEEP)
    after = {_backend(store) for _ in range(5)}
    assert after <= set(seen) and len(after) == 1


def test_a_connection_the_server_dropped_while_idle_is_replaced(pg_url: str) -> None:
    store = PgStore(pg_url, 10)
    first = _backend(store)
    with psycopg.connect(pg_url, autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s)", [first]).fetchone() == (True,)
    with store.connect(write=True) as connection:  # no error: a new connection did it
        connection.execute("INSERT INTO meta VALUES ('after', 'drop')")
        second = int(connection.execute("SELECT pg_backend_pid()").fetchone()[0])
    assert second != first
    with psycopg.connect(pg_url) as admin:
        assert admin.execute("SELECT value FROM tracker.meta WHERE key = 'after'"
                             ).fetchone() == ("drop",)


def test_a_connection_cut_in_an_operation_is_not_kept(pg_url: str) -> None:
    from tracker.errors import CatalogError

    store = PgStore(pg_url, 10)
    with pytest.raises(CatalogError, match="cannot connect"):
        with store.connect(write=True) as connection:
            connection.execute("SELECT pg_terminate_backend(pg_backend_pid())")
    assert _backend(store) > 0  # the next operation has a working connection


def test_a_forked_child_opens_its_own_connection(pg_url: str) -> None:
    # Forked in a fresh process: pytest's own has DuckDB's and Arrow's threads by now, and a
    # child forked from a process with threads may crash in them (it did: SIGSEGV).
    script = textwrap.dedent(f"""
        import os
        from tracker.storage.pg_store import PgStore

        def backend(store, write=False):
            with store.connect(write=write) as connection:
                return int(connection.execute("SELECT pg_backend_pid()").fetchone()[0])

        store = PgStore({pg_url!r}, 10)
        parent = backend(store)
        reading, writing = os.pipe()
        child = os.fork()
        if child == 0:  # uses the store, reports its backend, exits without cleanup
            try:
                os.close(reading)
                os.write(writing, str(backend(store, write=True)).encode())
            finally:
                os._exit(0)
        os.close(writing)
        with os.fdopen(reading) as said:
            childs = int(said.read() or 0)
        _, status = os.waitpid(child, 0)
        print(os.waitstatus_to_exitcode(status), parent, childs, backend(store))
        """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    status, parent, childs, after = (int(word) for word in done.stdout.split())
    assert status == 0
    assert childs not in (0, parent)
    assert after == parent  # the parent's session was left alone


def test_exit_closes_the_connections_and_never_hangs(pg_url: str) -> None:
    script = textwrap.dedent(f"""
        import warnings
        warnings.simplefilter("error")
        from tracker.storage.pg_store import PgStore
        store = PgStore({pg_url!r}, 10)
        with store.connect() as connection:
            connection.execute("SELECT 1")
        print("done")
        """)
    done = subprocess.run([sys.executable, "-X", "dev", "-c", script], capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 0 and done.stdout.strip() == "done", done.stderr
    assert "ResourceWarning" not in done.stderr and "Exception ignored" not in done.stderr


def test_a_store_that_is_dropped_closes_its_idle_connections(pg_url: str) -> None:
    import gc

    store = PgStore(pg_url, 10)
    backend = _backend(store)
    del store
    gc.collect()
    assert _settled_count(pg_url, [backend], 0), "the dropped store's connection stayed open"
