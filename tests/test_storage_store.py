"""One catalog file (tracker.storage.store.Store): attached for an operation and detached after,
a new catalog published whole from a draft, the schema created or migrated once."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest

import tracker
from tracker.storage import instances, schema
from tracker.storage.store import Store


def _store(tmp_path: Path, name: str = "catalog.duckdb") -> Store:
    return Store(tmp_path / name, timeout=5.0)


def _version(path: Path) -> str:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return str(con.execute(
            "SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0])
    finally:
        con.close()


def test_a_first_write_publishes_a_whole_private_catalog(tmp_path: Path) -> None:
    store = _store(tmp_path)
    with store.connect(write=True) as con:
        # Built as a draft and renamed into place, whole, before the write runs: what the
        # write commits is in the file at the catalog's path, never in an unpublished draft.
        assert store.path.exists() and not store.path.with_name("catalog.duckdb.draft").exists()
        con.execute("INSERT INTO meta VALUES ('note', 'first')")
    assert store.path.exists() and not store.path.with_name("catalog.duckdb.draft").exists()
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert _version(store.path) == str(schema.SCHEMA_VERSION)


def test_a_first_read_creates_the_catalog_too(tmp_path: Path) -> None:
    store = _store(tmp_path, "new/catalog.duckdb")
    with store.connect() as con:
        assert con.execute("SELECT count(*) FROM runs").fetchone() == (0,)
    assert _version(store.path) == str(schema.SCHEMA_VERSION)
    assert stat.S_IMODE(store.folder.stat().st_mode) == 0o700


def test_the_file_is_detached_after_each_operation(tmp_path: Path) -> None:
    # Another process (here a DuckDB of its own, outside tracker's lock) can open the file
    # read-write as soon as an operation ends: nothing holds it between operations.
    store = _store(tmp_path)
    with store.connect(write=True) as con:
        con.execute("INSERT INTO meta VALUES ('note', 'committed')")
    script = textwrap.dedent("""
        import duckdb, sys
        con = duckdb.connect(sys.argv[1])
        print(con.execute("SELECT value FROM meta WHERE key = 'note'").fetchone()[0])
        con.close()
    """)
    done = subprocess.run([sys.executable, "-c", script, str(store.path)], capture_output=True,
                          text=True, timeout=60)
    assert done.stdout.strip() == "committed", done.stderr


def test_small_writes_stay_in_the_log_until_it_passes_its_limit(tmp_path: Path) -> None:
    # Checkpointing at every detach was most of a small write's time (docs/design.md §6): a
    # commit goes to the log, and the commit that takes the log past its limit checkpoints it,
    # so the log every attach replays stays small. Other processes read every commit.
    store = _store(tmp_path)
    wal = store.path.with_name("catalog.duckdb.wal")
    with store.connect(write=True):
        pass
    assert store.path.exists() and not wal.exists()  # a new catalog is published whole
    sizes = []
    for i in range(60):
        with store.connect(write=True) as con:
            con.execute("INSERT INTO meta VALUES (?, ?)", [f"k{i}", "x" * 1500])
        sizes.append(wal.stat().st_size if wal.exists() else 0)
    assert sizes[0] > 0  # the first write is in the log only
    assert sizes.count(0) >= 2  # checkpointed, more than once, each time the log was full
    assert max(sizes) <= instances.WAL_LIMIT + 4096  # one write of ~1.5 KiB past the limit
    script = ("import duckdb, sys; con = duckdb.connect(sys.argv[1], read_only=True); "
              "print(con.execute(\"SELECT count(*) FROM meta WHERE key LIKE 'k%'\").fetchone()[0])")
    done = subprocess.run([sys.executable, "-c", script, str(store.path)], capture_output=True,
                          text=True, timeout=60)
    assert done.stdout.strip() == "60", done.stderr


def _read_note(path: Path) -> subprocess.CompletedProcess[str]:
    """Another process opens the file read-write outside tracker's lock and reads meta.note."""
    script = textwrap.dedent("""
        import duckdb, sys
        con = duckdb.connect(sys.argv[1])
        row = con.execute("SELECT value FROM meta WHERE key = 'note'").fetchone()
        print(row[0] if row else "none")
        con.close()
    """)
    return subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True,
                          text=True, timeout=60)


def test_a_transaction_left_open_is_rolled_back_and_the_file_closed(tmp_path: Path) -> None:
    store = _store(tmp_path)
    with store.connect(write=True) as con:
        con.execute("SELECT 1")  # the catalog exists
    with store.connect(write=True) as con:
        con.execute("BEGIN")
        con.execute("INSERT INTO meta VALUES ('note', 'never committed')")
    assert _read_note(store.path).stdout.strip() == "none"
    with store.connect(write=True) as con:  # the next operation attaches as usual
        con.execute("INSERT INTO meta VALUES ('note', 'next')")
    assert _read_note(store.path).stdout.strip() == "next"


def test_an_operation_that_failed_mid_transaction_is_rolled_back(tmp_path: Path) -> None:
    store = _store(tmp_path)
    with store.connect(write=True) as con:
        con.execute("SELECT 1")  # the catalog exists
    with pytest.raises(duckdb.CatalogException), store.connect(write=True) as con:
        con.execute("BEGIN")
        con.execute("INSERT INTO meta VALUES ('note', 'never committed')")
        con.execute("SELECT * FROM no_such_table")
    done = _read_note(store.path)
    assert done.stdout.strip() == "none", done.stderr
    with store.connect() as con:
        assert con.execute("SELECT count(*) FROM runs").fetchone() == (0,)


def test_a_draft_left_by_a_killed_process_is_rebuilt(tmp_path: Path) -> None:
    store = _store(tmp_path)
    draft = store.path.with_name("catalog.duckdb.draft")
    draft.write_bytes(b"")  # what a process killed before DuckDB wrote the header leaves
    with store.connect(write=True) as con:
        assert con.execute("SELECT count(*) FROM runs").fetchone() == (0,)
    assert not draft.exists() and _version(store.path) == str(schema.SCHEMA_VERSION)


def _version_1_catalog(path: Path) -> None:
    """A catalog as tracker wrote it at schema version 1: no value columns yet."""
    con = duckdb.connect(str(path))
    later = {"value_columns", "run_values", "status_changes", "tags"}  # of versions 2, 4, 5, 6
    for name, body in schema.TABLES.items():
        if name not in later:  # nor the columns versions 3, 4 and 5 added
            body = body.removesuffix(", via VARCHAR").removesuffix(", values_fresh BOOLEAN")
            body = body.removesuffix(", kept VARCHAR")  # version 7
            con.execute(f"CREATE TABLE {name} ({body})")
    con.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    con.execute("INSERT INTO runs (id, status, started_at, params, metrics) VALUES "
                "('r1', 'completed', now(), '{\"lr\": 0.1}', '{\"acc\": 0.9}')")
    con.execute("INSERT INTO param_keys VALUES ('lr', 'float')")
    con.execute("INSERT INTO metric_keys VALUES ('acc')")
    con.close()
    os.chmod(path, 0o600)


def test_a_version_1_catalog_is_backed_up_and_migrated_once(tmp_path: Path) -> None:
    store = _store(tmp_path)
    _version_1_catalog(store.path)
    with store.connect() as con:
        names = {row[0] for row in con.execute(
            "SELECT name FROM value_columns ORDER BY name").fetchall()}
        assert len(names) == 2  # one column each for params.lr and metrics.acc
        assert con.execute("SELECT id FROM runs").fetchall() == [("r1",)]
    assert _version(store.path) == str(schema.SCHEMA_VERSION)
    assert _version(store.path.with_name("catalog.duckdb.v1.bak")) == "1"


def test_a_catalog_is_backed_up_with_the_commits_still_in_its_log(tmp_path: Path) -> None:
    store = _store(tmp_path)
    _version_1_catalog(store.path)
    con = duckdb.connect(str(store.path))
    con.execute("PRAGMA disable_checkpoint_on_shutdown")  # r2 stays in the log, as tracker's
    con.execute("INSERT INTO runs (id, status, started_at) VALUES ('r2', 'running', now())")
    con.close()
    assert store.path.with_name("catalog.duckdb.wal").exists()
    with store.connect() as con:
        assert con.execute("SELECT count(*) FROM runs").fetchone() == (2,)
    backup = duckdb.connect(str(store.path.with_name("catalog.duckdb.v1.bak")), read_only=True)
    try:
        assert backup.execute("SELECT id FROM runs ORDER BY id").fetchall() == [("r1",), ("r2",)]
    finally:
        backup.close()


def test_a_newer_catalog_is_refused_and_left_untouched(tmp_path: Path) -> None:
    store = _store(tmp_path)
    with store.connect(write=True) as con:
        con.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    before = store.path.read_bytes()
    with pytest.raises(tracker.CatalogVersionError, match="upgrade tracker"):
        with _store(tmp_path).connect():
            pass
    assert store.path.read_bytes() == before


def test_a_duckdb_file_of_other_tables_is_not_a_catalog(tmp_path: Path) -> None:
    path = tmp_path / "other.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE sales (amount DOUBLE)")
    con.close()
    with pytest.raises(tracker.NotACatalogError, match="not a tracker catalog"):
        with Store(path, timeout=5.0).connect(write=True):
            pass


def test_side_files_are_named_after_the_catalog(tmp_path: Path) -> None:
    store = _store(tmp_path, "runs.duckdb")
    assert (store.spool_dir.name, store.blob_dir.name) == ("runs.duckdb.spool",
                                                           "runs.duckdb.blobs")
    assert store.wait(None) == 5.0 and store.wait(1) == 1.0


def test_a_write_runs_on_the_calling_thread_alone_and_a_read_on_every_core(
        tmp_path: Path) -> None:
    # A write's few small statements are quicker without a pool of threads to wake; a read of a
    # large catalog scans in parallel. Each has its own instance of the same file.
    store = _store(tmp_path)
    threads = "SELECT current_setting('threads')"
    with store.connect(write=True) as con:
        assert con.execute(threads).fetchone() == (instances.WRITE_THREADS,)
    with store.connect() as con:
        assert con.execute(threads).fetchone() == (instances.READ_THREADS,)
    assert instances.WRITE_THREADS == 1 < instances.READ_THREADS


def test_a_qualified_write_leaves_the_default_database_alone(tmp_path: Path) -> None:
    store = _store(tmp_path)
    current = "SELECT current_database()"
    with store.connect(write=True, qualified=True) as con:
        assert con.execute(current).fetchone() == ("catalog",)  # the schema check needs it
    with store.connect(write=True, qualified=True) as con:
        assert con.execute(current).fetchone() == ("memory",)
        con.execute("INSERT INTO catalog.meta VALUES ('note', 'qualified')")
    with store.connect() as con:
        assert con.execute("SELECT value FROM meta WHERE key = 'note'").fetchall() == [
            ("qualified",)]
