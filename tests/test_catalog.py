"""The catalog file: where it lives, who may read it, locking, versions, and bad files."""

from __future__ import annotations

import os
import socket
import sqlite3
import stat
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

import tracker
from tracker.errors import (
    CatalogError,
    CatalogFullError,
    CatalogLockedError,
    CatalogOwnershipError,
    CatalogVersionError,
    NotACatalogError,
)
from tracker.storage import instances as _duckdb
from tracker.storage import schema, value_columns


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


def _make_version_2(path: Path) -> None:
    """Turn a catalog back into schema version 2: value columns always filled by writers, an
    index on the run id of params and metrics, no ``via`` on artifact links, no history of
    statuses set by hand, no tags and no ``kept`` on artifact versions."""
    with tracker.Catalog(path).connect(write=True) as con:
        value_columns.catch_up(con)  # every value column filled
    con = duckdb.connect(str(path))
    for namespace, name in con.execute("SELECT namespace, name FROM value_columns").fetchall():
        for column in [name, f"{name}_json"] if namespace == "params" else [name]:
            kind = "VARCHAR" if namespace == "params" else "DOUBLE"
            con.execute(f"ALTER TABLE runs ADD COLUMN {column} {kind}")
            con.execute(f"UPDATE runs SET {column} = v.{column} FROM run_values v "
                        "WHERE v.id = runs.id")
    con.execute("DROP TABLE run_values")
    con.execute("DROP TABLE status_changes")  # version 5's
    con.execute("ALTER TABLE runs DROP COLUMN values_fresh")
    con.execute("CREATE INDEX metrics_run ON metrics (run_id)")
    con.execute("CREATE INDEX params_run ON params (run_id)")
    con.execute("ALTER TABLE run_artifacts DROP COLUMN via")
    con.execute("DROP TABLE tags")
    con.execute("DROP INDEX artifacts_key")  # DuckDB drops no column of an indexed table
    con.execute("ALTER TABLE artifacts DROP COLUMN kept")
    con.execute("CREATE INDEX artifacts_key ON artifacts (key)")
    con.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    con.close()


def _make_version_1(path: Path) -> None:
    """Turn a catalog back into schema version 1: version 2 without the columnar copy."""
    _make_version_2(path)
    con = duckdb.connect(str(path))
    for namespace, name in con.execute("SELECT namespace, name FROM value_columns").fetchall():
        con.execute(f"ALTER TABLE runs DROP COLUMN {name}")
        if namespace == "params":
            con.execute(f"ALTER TABLE runs DROP COLUMN {name}_json")
    con.execute("DROP TABLE value_columns")
    con.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    con.close()


def test_an_older_catalog_gains_the_history_of_statuses_set_by_hand(
        catalog: tracker.Catalog) -> None:
    with catalog.start_run("old") as run:
        pass
    catalog.flush()
    _make_version_2(catalog.path)

    migrated = tracker.Catalog(catalog.path)
    assert migrated.get_run(run.id).status_history == []
    info = migrated.set_status(run.id, "failed")
    assert [(c["old_status"], c["new_status"]) for c in info.status_history] == [
        ("completed", "failed")]


def test_a_version_2_catalog_loses_its_run_id_indexes_and_keeps_its_values(
        catalog: tracker.Catalog) -> None:
    with catalog.start_run("kept", params={"lr": 0.1}) as run:
        run.log_metric("acc", 0.9)
    catalog.flush()
    _make_version_2(catalog.path)

    migrated = tracker.Catalog(catalog.path)
    assert list(migrated.runs("params.lr < 0.2 AND metrics.acc > 0.5")["name"]) == ["kept"]
    version = migrated.sql("SELECT value FROM meta WHERE key = 'schema_version'").iloc[0, 0]
    assert version == str(schema.SCHEMA_VERSION)
    assert migrated.sql("SELECT index_name FROM duckdb_indexes() "
                        "WHERE database_name = current_database()")["index_name"].tolist() == [
        "artifacts_key"]
    assert migrated.sql("SELECT values_fresh FROM runs")["values_fresh"].tolist() == [True]
    assert "p1" not in set(migrated.sql("SELECT * FROM runs").columns)  # moved to run_values
    assert list(migrated.metric_history(run.id)["value"]) == [0.9]


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
    version = migrated.sql("SELECT value FROM meta WHERE key = 'schema_version'").iloc[0, 0]
    assert version == str(schema.SCHEMA_VERSION)
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

    last = schema.SCHEMA_VERSION
    monkeypatch.setattr(schema, "SCHEMA_VERSION", last + 1)
    monkeypatch.setitem(schema.MIGRATIONS, last, add_owner_column)
    migrated = tracker.Catalog(catalog.path)
    assert list(migrated.runs("params.lr = 0.1")["name"]) == ["kept"]
    version = migrated.sql("SELECT value FROM meta WHERE key = 'schema_version'").iloc[0, 0]
    assert version == str(last + 1)
    assert "owner" in set(migrated.sql("SELECT * FROM runs").columns)


def test_a_version_5_catalog_gains_tags_and_keeps_its_runs(catalog: tracker.Catalog) -> None:
    with catalog.start_run("kept", params={"lr": 0.1}, labels=["gpu"]) as run:
        pass
    catalog.flush()
    con = duckdb.connect(str(catalog.path))
    con.execute("DROP TABLE tags")  # what version 5 lacked, and the kept marks of 7
    con.execute("DROP INDEX artifacts_key")  # DuckDB drops no column of an indexed table
    con.execute("ALTER TABLE artifacts DROP COLUMN kept")
    con.execute("CREATE INDEX artifacts_key ON artifacts (key)")
    con.execute("UPDATE meta SET value = '5' WHERE key = 'schema_version'")
    con.close()

    migrated = tracker.Catalog(catalog.path)
    migrated.set_tag("source", "manual", run=run.id)
    assert migrated.get_run(run.id).tags == {"source": "manual"}
    assert list(migrated.runs("params.lr = 0.1 AND labels CONTAINS 'gpu'")["name"]) == ["kept"]
    version = migrated.sql("SELECT value FROM meta WHERE key = 'schema_version'").iloc[0, 0]
    assert version == str(schema.SCHEMA_VERSION) == "8"
    assert catalog.path.with_name(catalog.path.name + ".v5.bak").exists()
    assert migrated.artifacts().empty  # and the kept column is there to read


def test_a_version_7_catalog_keeps_its_tags_and_then_keeps_a_removed_one_removed(
        catalog: tracker.Catalog) -> None:
    with catalog.start_run("tagged") as run:
        run.set_tags({"stage": "draft", "owner": "ann"})
    catalog.flush()
    con = duckdb.connect(str(catalog.path))
    con.execute("ALTER TABLE tags ALTER COLUMN value SET NOT NULL")  # as version 7 made it
    con.execute("UPDATE meta SET value = '7' WHERE key = 'schema_version'")
    con.close()

    migrated = tracker.Catalog(catalog.path)
    assert migrated.get_run(run.id).tags == {"owner": "ann", "stage": "draft"}
    migrated.delete_tag("stage", run=run.id)
    assert migrated.get_run(run.id).tags == {"owner": "ann"}
    assert list(migrated.runs()["tags.owner"]) == ["ann"] and "tags.stage" not in \
        migrated.runs().columns


def test_a_version_2_catalog_keeps_its_file_links_with_an_unknown_via(
        catalog: tracker.Catalog, tmp_path: Path) -> None:
    data = tmp_path / "data.csv"
    data.write_text("a\n1\n")
    with catalog.start_run("old") as run:
        run.log_input(data)
    catalog.flush()
    _make_version_2(catalog.path)

    migrated = tracker.Catalog(catalog.path)
    with migrated.start_run("new") as run:
        run.log_output(data)
    frame = migrated.artifacts()
    assert list(frame["run_name"]) == ["old", "new"]
    assert frame["via"].isna().tolist() == [True, False]
    assert frame["via"].iloc[1] == "call"


def _hold(script: str, ready: Path) -> subprocess.Popen[bytes]:
    process = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)])
    deadline = time.monotonic() + 30
    while not ready.exists():
        assert time.monotonic() < deadline, "helper process did not start"
        time.sleep(0.05)
    return process


def _hold_sidecar_lock(catalog: tracker.Catalog, ready: Path) -> subprocess.Popen[bytes]:
    """Another process holding the catalog's write lock, as a writer in a long operation does."""
    return _hold(f"""
        import fcntl, os, time
        fd = os.open({str(catalog.path) + '.lock'!r}, os.O_RDWR)
        fcntl.lockf(fd, fcntl.LOCK_EX)
        open({str(ready)!r}, "w").close()
        time.sleep(60)
    """, ready)


def test_a_held_lock_times_out_with_the_holder_named(catalog: tracker.Catalog,
                                                     tmp_path: Path) -> None:
    catalog.runs()
    holder = _hold_sidecar_lock(catalog, tmp_path / "ready")
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


def test_urls_of_other_databases_are_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(tracker.CatalogError, match="nor a postgresql:// URL") as refused:
        tracker.Catalog("mysql://ann:hunter2@db.example/runs")
    assert "hunter2" not in str(refused.value)


def test_a_postgres_url_is_a_postgres_catalog(tmp_path: Path) -> None:
    catalog = tracker.Catalog(f"postgresql://ann:hunter2@/runs?host={tmp_path}&port=5999")
    assert type(catalog).__name__ == "PgCatalog" and "hunter2" not in repr(catalog)
    with pytest.raises(tracker.CatalogError, match="cannot connect") as refused:
        catalog.runs()
    assert "hunter2" not in str(refused.value)


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


# -- whose catalog it is ------------------------------------------------------------------

NOBODY = 65534  # another user, as far as the checks can tell


def _files_in(folder: Path) -> dict[str, tuple[int, int, int]]:
    """Every file under ``folder`` with its size, mode and modification time."""
    return {str(p.relative_to(folder)): (p.lstat().st_size, p.lstat().st_mode,
                                         p.lstat().st_mtime_ns) for p in folder.rglob("*")}


def _assert_refused(path: Path, error: type[Exception]) -> None:
    """Reads and writes both refuse ``path``, and nothing beside it is created or changed."""
    before = _files_in(path.parent)
    with pytest.raises(error, match="TRACKER_TRUSTED_CATALOGS" if error is CatalogOwnershipError
                       else str(path.name)):
        tracker.Catalog(path).runs()
    with pytest.raises(error):
        tracker.Catalog(path).start_run("mine")
    with pytest.raises(error), tracker.Catalog(path).connect(write=True):
        pass
    assert _files_in(path.parent) == before


def _catalog_with_a_run(path: Path) -> tracker.Catalog:
    catalog = tracker.Catalog(path)
    with catalog.start_run("kept"):
        pass
    catalog.flush()
    return catalog


def test_a_catalog_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "shared" / "catalog.duckdb"
    _catalog_with_a_run(path)
    os.chown(path, NOBODY, NOBODY)
    _assert_refused(path, CatalogOwnershipError)
    with pytest.raises(PermissionError, match="owned by"):
        tracker.Catalog(path).runs()


@pytest.mark.parametrize("mode", [0o666, 0o606])
def test_a_catalog_others_can_write_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "shared" / "catalog.duckdb"
    _catalog_with_a_run(path)
    os.chmod(path, mode)
    _assert_refused(path, CatalogOwnershipError)


def test_a_catalog_writable_by_a_group_of_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "shared" / "catalog.duckdb"
    _catalog_with_a_run(path)
    os.chown(path, os.geteuid(), NOBODY)
    os.chmod(path, 0o660)
    _assert_refused(path, CatalogOwnershipError)


@pytest.mark.parametrize("change", ["owner", "world-writable", "sticky /tmp-like"])
def test_a_catalog_in_a_folder_others_control_is_refused(tmp_path: Path, change: str) -> None:
    path = tmp_path / "shared" / "catalog.duckdb"
    _catalog_with_a_run(path)
    if change == "owner":
        os.chown(path.parent, NOBODY, NOBODY)
    else:
        os.chmod(path.parent, 0o777 if change == "world-writable" else 0o1777)
    _assert_refused(path, CatalogOwnershipError)


def test_a_new_catalog_in_a_folder_others_control_is_not_created(tmp_path: Path) -> None:
    folder = tmp_path / "shared"
    folder.mkdir()
    os.chmod(folder, 0o1777)
    _assert_refused(folder / "catalog.duckdb", CatalogOwnershipError)
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize("sidecar", [".lock", ".wal", ".draft", ".key", ".spool", ".blobs"])
def test_a_sidecar_planted_by_another_user_is_refused(tmp_path: Path, sidecar: str) -> None:
    path = tmp_path / "shared" / "catalog.duckdb"
    _catalog_with_a_run(path)
    planted = path.with_name(path.name + sidecar)
    if sidecar in (".spool", ".blobs"):
        planted.mkdir(exist_ok=True)
    else:
        planted.touch()
    os.chown(planted, NOBODY, NOBODY)
    _assert_refused(path, CatalogOwnershipError)


def test_a_symlinked_catalog_in_a_folder_another_user_owns_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "theirs" / "catalog.duckdb"
    _catalog_with_a_run(target)  # made while the folder was ours
    os.chown(target.parent, NOBODY, NOBODY)
    link = tmp_path / "mine" / "catalog.duckdb"
    link.parent.mkdir(mode=0o700)
    link.symlink_to(target)
    with pytest.raises(CatalogOwnershipError, match="theirs"):
        tracker.Catalog(link).runs()


def test_a_catalog_can_be_trusted_explicitly(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "shared" / "catalog.duckdb"
    _catalog_with_a_run(path)
    os.chmod(path.parent, 0o1777)
    os.chown(path, NOBODY, NOBODY)
    for trusted in (str(path), str(path.parent), str(tmp_path), f"/elsewhere{os.pathsep}*"):
        monkeypatch.setenv("TRACKER_TRUSTED_CATALOGS", trusted)
        assert list(tracker.Catalog(path).runs()["name"]) == ["kept"]
    monkeypatch.setenv("TRACKER_TRUSTED_CATALOGS", str(tmp_path / "other"))
    with pytest.raises(CatalogOwnershipError):
        tracker.Catalog(path).runs()


def test_ownership_is_checked_once_per_catalog_object_not_per_operation(
        tmp_path: Path) -> None:
    catalog = _catalog_with_a_run(tmp_path / "catalog.duckdb")
    os.chown(catalog.path, NOBODY, NOBODY)
    assert len(catalog.runs()) == 1  # checked when this object first opened it
    with pytest.raises(CatalogOwnershipError):
        tracker.Catalog(catalog.path).runs()


def test_a_folder_swapped_under_a_live_catalog_object_is_checked_again(tmp_path: Path) -> None:
    """Whoever may write the parent can move the folder away and put one of theirs in its
    place; the object that checked the first folder must not write into the second."""
    catalog = _catalog_with_a_run(tmp_path / "alice" / "catalog.duckdb")
    (tmp_path / "alice").rename(tmp_path / "alice.moved")
    (tmp_path / "alice").mkdir(mode=0o777)
    os.chown(tmp_path / "alice", NOBODY, NOBODY)
    with pytest.raises(CatalogOwnershipError):
        catalog.runs()
    with pytest.raises(CatalogOwnershipError), catalog.connect(write=True):
        pass
    assert list((tmp_path / "alice").iterdir()) == []


# -- what is at the path ------------------------------------------------------------------


def _within(seconds: float, action: object) -> BaseException | None:
    """Run ``action`` on a thread; fail the test if it has not returned in ``seconds``."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            action()  # type: ignore[operator]
            outcome.append(None)
        except BaseException as exc:  # handed back to the test
            outcome.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    assert outcome, f"still waiting after {seconds} s"
    return outcome[0]


def _write_meta(catalog: tracker.Catalog) -> None:
    with catalog.connect(write=True) as con:
        con.execute("INSERT INTO meta VALUES ('note', 'written')")


def test_damaged_catalogs_raise_catalog_errors_and_are_left_untouched(tmp_path: Path) -> None:
    original = _catalog_with_a_run(tmp_path / "good.duckdb").path.read_bytes()
    used = len(original) // 4  # past it, blocks are free space a flip does not damage
    damaged = [original[:end] for end in range(0, used, used // 12)]
    for offset in [*range(0, 4096 * 3, 1024), *range(4096 * 3, used, used // 16)]:
        flipped = bytearray(original)
        flipped[offset] ^= 0xFF
        damaged.append(bytes(flipped))
    refused = 0
    for n, content in enumerate(damaged):
        path = tmp_path / f"damaged{n}.duckdb"
        path.write_bytes(content)
        for action in (tracker.Catalog(path).runs,
                       lambda p=path: _write_meta(tracker.Catalog(p))):
            error = _within(10, action)
            if error is None:
                continue  # the damage was in a part this operation never reads
            assert isinstance(error, CatalogError), f"case {n}: {error!r}"
            assert str(path) in str(error) and "no backup" in str(error)
            assert path.read_bytes() == content
            refused += 1
    assert refused >= len(damaged)  # at least one of the two operations noticed, on average


def test_a_damaged_catalog_names_the_backup_to_restore(catalog: tracker.Catalog) -> None:
    with catalog.start_run("kept"):
        pass
    catalog.flush()
    for version in (1, 2):
        backup = catalog.path.with_name(f"{catalog.path.name}.v{version}.bak")
        backup.write_bytes(catalog.path.read_bytes())
    catalog.path.write_bytes(catalog.path.read_bytes()[:5000])
    with pytest.raises(NotACatalogError, match=r"catalog\.duckdb\.v2\.bak"):
        tracker.Catalog(catalog.path).runs()


@pytest.mark.parametrize("kind", ["directory", "fifo", "socket", "device", "lock directory",
                                  "lock fifo", "lock symlink"])
def test_odd_things_at_the_catalog_path_are_refused_at_once(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "catalog.duckdb"
    if kind.startswith("lock"):
        _catalog_with_a_run(path)
    odd = path.with_name(path.name + ".lock") if kind.startswith("lock") else path
    if kind.endswith("directory"):
        odd.unlink(missing_ok=True)
        odd.mkdir()
    elif kind.endswith("fifo"):
        odd.unlink(missing_ok=True)
        os.mkfifo(odd)
    elif kind == "socket":
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(odd))
        server.close()  # the socket file stays
    else:
        odd.unlink(missing_ok=True)
        odd.symlink_to("/dev/null" if kind == "device" else tmp_path / "elsewhere")
    for action in (tracker.Catalog(path).runs, lambda: _write_meta(tracker.Catalog(path))):
        error = _within(5, action)
        assert isinstance(error, CatalogError), repr(error)
        assert str(odd) in str(error)
    assert not (tmp_path / "elsewhere").exists()


@pytest.mark.parametrize("kind", ["csv", "parquet", "sqlite", "empty"])
def test_files_of_other_formats_are_refused_quickly_and_without_a_lock(tmp_path: Path,
                                                                       kind: str) -> None:
    path = tmp_path / f"runs.{kind}"
    if kind == "csv":
        path.write_text("a,b\n1,2\n")
    elif kind == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({"a": [1, 2]}), path)
    elif kind == "sqlite":
        con = sqlite3.connect(path)
        con.execute("CREATE TABLE runs (id TEXT)")
        con.commit()
        con.close()
    else:
        path.touch()
    content = path.read_bytes()
    started = time.monotonic()
    with pytest.raises(NotACatalogError, match="not a DuckDB file"):
        tracker.Catalog(path).runs()
    with pytest.raises(NotACatalogError):
        tracker.Catalog(path).start_run("mine")
    assert time.monotonic() - started < 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]
    assert path.read_bytes() == content


@pytest.mark.parametrize("stored", ["abc", "-1", "0", None])
def test_a_bad_schema_version_is_refused_and_left_untouched(catalog: tracker.Catalog,
                                                            stored: str | None) -> None:
    catalog.runs()
    con = duckdb.connect(str(catalog.path))
    con.execute("DELETE FROM meta WHERE key = 'schema_version'")
    if stored is not None:
        con.execute("INSERT INTO meta VALUES ('schema_version', ?)", [stored])
    con.close()
    content = catalog.path.read_bytes()
    for action in (tracker.Catalog(catalog.path).runs,
                   lambda: _write_meta(tracker.Catalog(catalog.path))):
        with pytest.raises(NotACatalogError, match="no valid schema version"):
            action()
    assert catalog.path.read_bytes() == content


# -- full and read-only disks -------------------------------------------------------------


def test_a_full_disk_keeps_runs_in_the_spool_until_space_is_freed(
        small_disk: Path, fill_disk: Callable[[Path], Path]) -> None:
    catalog = _catalog_with_a_run(small_disk / "catalog.duckdb")
    with pytest.warns(tracker.TrackerWarning, match="is full") as warned:
        # Holding the catalog keeps the background flusher out until the disk is full; then
        # it fails too, and warns.
        with catalog.connect():
            with catalog.start_run("late", params={"note": "x" * 1000}) as run:
                for step in range(100):
                    run.log_metric("loss", 1 / (step + 1), step=step)
            filler = fill_disk(small_disk)
        for action in (catalog.flush, catalog.runs):
            with pytest.raises(CatalogFullError, match="full") as caught:
                action()
            assert isinstance(caught.value, OSError)
            assert "catalog.duckdb.spool" in str(caught.value)
        deadline = time.monotonic() + 10
        while not warned and time.monotonic() < deadline:
            time.sleep(0.05)
        filler.unlink()
        catalog.flush()
    assert sorted(tracker.Catalog(catalog.path).runs()["name"]) == ["kept", "late"]
    assert len(catalog.metric_history(run.id, "loss")) == 100


def test_a_read_only_folder_gives_a_catalog_error_naming_it(small_disk: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    path = small_disk / "catalog.duckdb"
    for action in (tracker.Catalog(path).runs, lambda: _write_meta(tracker.Catalog(path))):
        with pytest.raises(CatalogError, match=f"folder {small_disk} .*cannot be written"):
            action()
    assert list(small_disk.iterdir()) == []


# -- resources and waits ------------------------------------------------------------------


def _threads() -> int:
    return len(os.listdir("/proc/self/task"))


def test_reading_many_catalogs_keeps_few_duckdb_instances(tmp_path: Path) -> None:
    first = tracker.Catalog(tmp_path / "catalog0.duckdb")
    first.runs()
    threads = _threads()
    for n in range(1, 50):
        assert tracker.Catalog(tmp_path / f"catalog{n}.duckdb").runs().empty
    assert _duckdb.live_instances() <= _duckdb.KEPT + 1
    assert _threads() <= threads + 2 * _duckdb.KEPT
    assert first.runs().empty  # a closed instance is started again when needed


def test_flush_gives_up_after_its_timeout_not_twice_it(tmp_path: Path) -> None:
    catalog = tracker.Catalog(tmp_path / "catalog.duckdb", timeout=2)
    catalog.runs()
    holder = _hold_sidecar_lock(catalog, tmp_path / "ready")
    try:
        with pytest.warns(tracker.TrackerWarning, match="locked") as warned:
            with catalog.start_run("waiting"):
                pass
            time.sleep(0.5)  # the background flusher is now waiting for the lock
            started = time.monotonic()
            with pytest.raises(CatalogLockedError, match=f"PID {holder.pid}"):
                catalog.flush()
            assert time.monotonic() - started < 1.6 * catalog.timeout
            deadline = time.monotonic() + 10
            while not warned and time.monotonic() < deadline:
                time.sleep(0.05)
    finally:
        holder.kill()
        holder.wait()
    catalog.flush()
    assert list(catalog.runs()["name"]) == ["waiting"]


@pytest.mark.parametrize("timeout", [float("inf"), 1e10])
def test_an_endless_timeout_waits_as_long_as_the_platform_allows(tmp_path: Path,
                                                                 timeout: float) -> None:
    catalog = tracker.Catalog(tmp_path / "catalog.duckdb", timeout=timeout)
    assert catalog.timeout == threading.TIMEOUT_MAX
    assert catalog.runs().empty


def test_an_endless_lock_timeout_setting_is_the_longest_wait(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACKER_LOCK_TIMEOUT", "inf")
    catalog = tracker.Catalog(tmp_path / "catalog.duckdb")
    assert catalog.timeout == threading.TIMEOUT_MAX
    assert catalog.runs().empty


@pytest.mark.parametrize("setting", ["nan", "-5", "abc"])
def test_a_bad_lock_timeout_setting_is_a_warning_and_the_default(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, setting: str) -> None:
    with monkeypatch.context() as env, pytest.warns(tracker.TrackerWarning,
                                                    match="TRACKER_LOCK_TIMEOUT"):
        env.setenv("TRACKER_LOCK_TIMEOUT", setting)
        catalog = tracker.Catalog(tmp_path / "catalog.duckdb")
    assert catalog.timeout == 30
    assert catalog.runs().empty


def test_an_endless_timeout_is_the_longest_wait_for_any_operation(tmp_path: Path) -> None:
    catalog = tracker.Catalog(tmp_path / "catalog.duckdb")
    with catalog.connect(timeout=float("inf")) as con:
        assert con.execute("SELECT 1").fetchone() == (1,)
    catalog.flush(timeout=float("inf"))
    with pytest.raises(tracker.ArgumentError, match="timeout"):
        catalog.flush(timeout=float("nan"))
