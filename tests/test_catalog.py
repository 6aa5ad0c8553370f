"""The catalog file: where it lives, who may read it, locking, versions, and bad files."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import duckdb
import pytest

import tracker
from tracker import schema
from tracker.errors import CatalogLockedError, CatalogVersionError, NotACatalogError


def test_catalog_is_created_private_to_the_user(tmp_path: Path) -> None:
    catalog = tracker.Catalog(tmp_path / "private" / "runs.duckdb")
    with catalog.start_run("first"):
        pass
    catalog.flush()
    assert stat.S_IMODE(os.stat(tmp_path / "private").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(catalog.path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(str(catalog.path) + ".lock").st_mode) == 0o600


def test_default_location_follows_the_environment(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACKER_CATALOG", str(tmp_path / "env.duckdb"))
    assert tracker.Catalog().path == tmp_path / "env.duckdb"
    monkeypatch.delenv("TRACKER_CATALOG")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert tracker.Catalog().path == tmp_path / ".tracker" / "catalog.duckdb"


def test_a_file_that_is_not_duckdb_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "notes.duckdb"
    path.write_bytes(b"my thesis draft\n" * 100)
    with pytest.raises(NotACatalogError, match="left untouched"):
        tracker.Catalog(path).runs()
    assert path.read_bytes() == b"my thesis draft\n" * 100


def test_a_duckdb_database_of_something_else_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "sales.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE sales (amount INTEGER)")
    con.execute("INSERT INTO sales VALUES (42)")
    con.close()
    with pytest.raises(NotACatalogError, match="not a tracker catalog"):
        tracker.Catalog(path).runs()
    con = duckdb.connect(str(path), read_only=True)
    assert con.execute("SELECT * FROM sales").fetchall() == [(42,)]
    con.close()


def test_a_catalog_from_a_newer_tracker_is_refused(catalog: tracker.Catalog) -> None:
    catalog.runs()
    con = duckdb.connect(str(catalog.path))
    con.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    con.close()
    with pytest.raises(CatalogVersionError, match="schema version 99") as caught:
        tracker.Catalog(catalog.path).runs()
    assert caught.value.version == 99


def _make_version_1(path: Path) -> None:
    """Turn a catalog back into schema version 1: the same, without the columnar copy."""
    con = duckdb.connect(str(path))
    for namespace, name in con.execute("SELECT namespace, name FROM value_columns").fetchall():
        con.execute(f"ALTER TABLE runs DROP COLUMN {name}")
        if namespace == "params":
            con.execute(f"ALTER TABLE runs DROP COLUMN {name}_json")
    con.execute("DROP TABLE value_columns")
    con.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    con.close()


def test_a_version_1_catalog_is_backed_up_then_migrated(catalog: tracker.Catalog) -> None:
    with catalog.start_run("kept", params={"lr": 0.1, "model": "vit"}) as run:
        run.log_metric("acc", 0.9)
    with catalog.start_run("other", params={"lr": 0.5}):
        pass
    catalog.flush()
    _make_version_1(catalog.path)

    migrated = tracker.Catalog(catalog.path)
    frame = migrated.runs("params.lr < 0.2 AND metrics.acc > 0.5")
    assert list(frame["name"]) == ["kept"]
    assert frame.loc[0, "params.model"] == "vit"
    assert migrated.sql("SELECT value FROM meta WHERE key = 'schema_version'").iloc[0, 0] == "2"
    backup = catalog.path.with_name(catalog.path.name + ".v1.bak")
    con = duckdb.connect(str(backup), read_only=True)
    assert sorted(con.execute("SELECT name FROM runs").fetchall()) == [("kept",), ("other",)]
    con.close()


def test_migrations_run_in_order_after_the_backup(catalog: tracker.Catalog,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    with catalog.start_run("kept", params={"lr": 0.1}):
        pass
    catalog.flush()
    _make_version_1(catalog.path)

    def add_owner_column(con: object) -> None:
        con.execute("ALTER TABLE runs ADD COLUMN owner VARCHAR")  # type: ignore[attr-defined]

    monkeypatch.setattr(schema, "SCHEMA_VERSION", 3)
    monkeypatch.setitem(schema.MIGRATIONS, 2, add_owner_column)
    migrated = tracker.Catalog(catalog.path)
    assert list(migrated.runs("params.lr = 0.1")["name"]) == ["kept"]
    assert migrated.sql("SELECT value FROM meta WHERE key = 'schema_version'").iloc[0, 0] == "3"
    assert "owner" in set(migrated.sql("SELECT * FROM runs").columns)


def _hold(script: str, ready: Path) -> subprocess.Popen[bytes]:
    process = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)])
    deadline = time.monotonic() + 30
    while not ready.exists():
        assert time.monotonic() < deadline, "helper process did not start"
        time.sleep(0.05)
    return process


def test_a_held_lock_times_out_with_the_holder_named(catalog: tracker.Catalog,
                                                     tmp_path: Path) -> None:
    catalog.runs()
    ready = tmp_path / "ready"
    holder = _hold(f"""
        import fcntl, os, time
        fd = os.open({str(catalog.path) + '.lock'!r}, os.O_RDWR)
        fcntl.lockf(fd, fcntl.LOCK_EX)
        open({str(ready)!r}, "w").close()
        time.sleep(60)
    """, ready)
    try:
        started = time.monotonic()
        with pytest.raises(CatalogLockedError) as caught:
            tracker.Catalog(catalog.path, timeout=0.5).runs()
        assert time.monotonic() - started < 5
        assert f"PID {holder.pid}" in str(caught.value)
        assert str(catalog.path) in str(caught.value)
        assert isinstance(caught.value, TimeoutError)
    finally:
        holder.kill()
        holder.wait()
    assert tracker.Catalog(catalog.path, timeout=5).runs().empty


def test_another_tool_holding_duckdb_is_waited_for_then_named(catalog: tracker.Catalog,
                                                              tmp_path: Path) -> None:
    catalog.runs()
    ready = tmp_path / "ready"
    holder = _hold(f"""
        import duckdb, time
        con = duckdb.connect({str(catalog.path)!r})
        open({str(ready)!r}, "w").close()
        time.sleep(60)
    """, ready)
    try:
        with pytest.raises(CatalogLockedError, match=f"PID {holder.pid}"):
            tracker.Catalog(catalog.path, timeout=0.5).runs()
    finally:
        holder.kill()
        holder.wait()


def test_postgres_urls_are_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(tracker.CatalogError, match="only DuckDB"):
        tracker.Catalog("postgresql://db.example/runs")


@pytest.mark.slow
def test_catalog_files_are_readable_by_duckdb_1_5(catalog: tracker.Catalog,
                                                  tmp_path: Path) -> None:
    with catalog.start_run("compat", params={"lr": 0.1}, labels=["x"]) as run:
        run.log_metric("acc", 0.5)
    catalog.flush()
    venv = tmp_path / "duckdb15"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "duckdb==1.5.5"], check=True)
    script = ("import duckdb, sys; con = duckdb.connect(sys.argv[1], read_only=True); "
              "print(duckdb.__version__, con.execute('SELECT name, labels FROM runs').fetchall())")
    out = subprocess.run([str(venv / "bin" / "python"), "-c", script, str(catalog.path)],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "1.5.5 [('compat', ['x'])]"


def test_a_failed_write_leaves_the_file_closed_and_unchanged(catalog: tracker.Catalog) -> None:
    catalog.runs()
    with pytest.raises(RuntimeError), catalog.connect(write=True) as con:
        con.execute("BEGIN")
        con.execute("INSERT INTO meta VALUES ('half', 'done')")
        raise RuntimeError("the operation failed mid-transaction")
    # Another process opens the file at once: nothing in this one holds it any more.
    script = ("import duckdb, sys; con = duckdb.connect(sys.argv[1]); "
              "print(con.execute(\"SELECT count(*) FROM meta WHERE key = 'half'\").fetchone()[0])")
    out = subprocess.run([sys.executable, "-c", script, str(catalog.path)],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "0"


def test_a_long_transaction_on_one_catalog_does_not_hold_another_open(tmp_path: Path) -> None:
    # DuckDB keeps a detached file open while older transactions run on its instance, so one
    # instance shared by all catalogs let a slow write to one keep another attached and locked.
    busy = tracker.Catalog(tmp_path / "busy.duckdb")
    other = tracker.Catalog(tmp_path / "other.duckdb")
    with busy.start_run("big", params={"n": 1}):
        pass
    busy.flush()
    stop = threading.Event()

    def read_slowly() -> None:
        while not stop.is_set():
            with busy.connect(write=True) as con:
                con.execute("BEGIN")
                con.execute("SELECT count(*) FROM range(5000000)").fetchone()
                con.execute("COMMIT")

    reader = threading.Thread(target=read_slowly)
    reader.start()
    try:
        for i in range(30):
            with other.start_run(f"run {i}"):
                pass
            other.flush()
    finally:
        stop.set()
        reader.join()
    assert len(other.runs()) == 30
