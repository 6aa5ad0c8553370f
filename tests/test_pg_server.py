"""The throwaway PostgreSQL cluster the back-end tests use (tests/pg_server.py) is real: a
server on a Unix socket, a fresh database per test, and it can be stopped and started."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pg_server
import psycopg
import pytest

from tracker._process import is_zombie


def test_each_test_gets_an_empty_database_of_its_own(pg_cluster: Any, pg_url: str) -> None:
    with psycopg.connect(pg_url) as connection:
        version = connection.execute("SHOW server_version_num").fetchone()
        tables = connection.execute(
            "SELECT count(*) FROM information_schema.tables "
            "WHERE table_schema NOT IN ('pg_catalog', 'information_schema')").fetchone()
        connection.execute("CREATE TABLE mine (x int)")
    assert version is not None and int(version[0]) >= 150000
    assert tables == (0,)
    other = pg_cluster.url(pg_cluster.fresh_database())
    with psycopg.connect(other) as connection:
        assert connection.execute("SELECT to_regclass('mine')").fetchone() == (None,)


def test_the_server_listens_on_its_socket_only(pg_url: str) -> None:
    with psycopg.connect(pg_url) as connection:
        assert connection.execute("SHOW listen_addresses").fetchone() == ("",)
        assert connection.info.host.startswith("/")


def test_a_stopped_server_refuses_connections_and_comes_back(pg_cluster: Any,
                                                             pg_url: str) -> None:
    pg_cluster.stop()
    try:
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(pg_url, connect_timeout=2)
    finally:
        pg_cluster.start()
    with psycopg.connect(pg_url) as connection:
        assert connection.execute("SELECT 1").fetchone() == (1,)


@pytest.mark.slow
def test_a_cluster_left_running_by_a_killed_session_is_stopped_and_removed_by_the_next(
        pg_cluster: Any) -> None:
    made = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import pg_server
        cluster = pg_server.Cluster()
        print(cluster.root, flush=True)
        os._exit(0)  # as a killed pytest: the server runs on, its folder stays
        """)], capture_output=True, text=True, timeout=300, check=True)
    left = Path(made.stdout.strip())
    server_pid = int((left / "data" / "postmaster.pid").read_text().split()[0])
    assert _running(server_pid)
    assert pg_server.sweep(pg_server.binaries()) == [left]
    assert not left.exists() and not _running(server_pid)
    assert pg_cluster.root not in pg_server.sweep(pg_server.binaries())  # its maker runs
    assert pg_cluster.root.exists()


def _running(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, which no parent reaped in a container, does not)."""
    return Path(f"/proc/{pid}").exists() and not is_zombie(pid)
