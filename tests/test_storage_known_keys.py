"""The keys a process knows its catalog holds (tracker.storage.known_keys): a write of keys it
knows looks none up, and the cache never keeps a key the file does not hold."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tracker import events
from tracker.storage import writer
from tracker.storage.known_keys import KnownKeys
from tracker.storage.store import Store


def _run(run_id: str, param_kind: str = "float") -> list[events.Spooled]:
    now = time.time()
    value = 0.1 if param_kind == "float" else 3
    shapes: list[events.Event] = [
        events.Start(run_id, {"name": run_id, "project": "default", "started_at": now}),
        events.Param(run_id, "lr", value, param_kind, now),
        events.Metric(run_id, "loss", 0.5, 1, now),
        events.End(run_id, "completed", now + 1, None),
    ]
    return [events.Spooled(run_id, seq, event) for seq, event in enumerate(shapes, 1)]


def _apply(store: Store, batch: list[events.Spooled]) -> None:
    with store.connect(write=True) as con:
        assert writer.apply_all(con, batch, writer.keeper(store), store.keys) == []


def _keys(store: Store) -> list[tuple[Any, ...]]:
    with store.connect() as con:
        return con.execute("SELECT 'param', key, kind FROM param_keys UNION ALL "
                           "SELECT 'metric', key, NULL FROM metric_keys ORDER BY ALL").fetchall()


def test_a_write_of_keys_the_process_knows_looks_none_up(tmp_path: Path,
                                                         sql_statements: list[str]) -> None:
    statements = sql_statements
    store = Store(tmp_path / "catalog.duckdb", timeout=5.0)
    _apply(store, _run("r1"))
    assert any("param_keys" in sql for sql in statements)  # learnt by the first write
    statements.clear()
    _apply(store, _run("r2"))
    assert not [sql for sql in statements if "_keys" in sql]
    assert _keys(store) == [("metric", "loss", None), ("param", "lr", "float")]


def test_a_key_another_process_added_is_seen_and_never_added_twice(tmp_path: Path) -> None:
    path = tmp_path / "catalog.duckdb"
    store = Store(path, timeout=5.0)
    _apply(store, _run("r1"))  # this process knows lr (float) and loss
    other = ("import pathlib, sys, time\n"
             "from tracker import events\n"
             "from tracker.storage import writer\n"
             "from tracker.storage.store import Store\n"
             "store = Store(pathlib.Path(sys.argv[1]), timeout=30.0)\n"
             "now = time.time()\n"
             "batch = [events.Start('o1', {'name': 'o1', 'started_at': now}),\n"
             "         events.Param('o1', 'lr', 3, 'int', now),\n"
             "         events.Metric('o1', 'acc', 0.9, None, now)]\n"
             "with store.connect(write=True) as con:\n"
             "    writer.apply_all(con, [events.Spooled('o1', n, e) for n, e in\n"
             "                           enumerate(batch, 1)], writer.keeper(store))\n")
    subprocess.run([sys.executable, "-c", other, str(path)], check=True, timeout=120)
    batch = _run("r2", param_kind="int")
    batch.insert(3, events.Spooled("r2", 4, events.Metric("r2", "acc", 0.8, None, time.time())))
    batch[4] = batch[4]._replace(seq=5)
    _apply(store, batch)
    assert _keys(store) == [("metric", "acc", None), ("metric", "loss", None),
                            ("param", "lr", "float"), ("param", "lr", "int")]


def test_a_catalog_created_again_under_a_live_process_gets_its_keys_again(
        tmp_path: Path) -> None:
    path = tmp_path / "catalog.duckdb"
    store = Store(path, timeout=5.0)
    _apply(store, _run("r1"))
    for file in (path, path.with_name(f"{path.name}.wal")):
        file.unlink(missing_ok=True)
    _apply(Store(path, timeout=5.0), [_run("o1")[0]])  # another process creates it, no keys
    _apply(store, _run("r2"))
    assert _keys(store) == [("metric", "loss", None), ("param", "lr", "float")]


def test_a_backup_copied_over_the_catalog_gets_its_keys_again(tmp_path: Path) -> None:
    # The copy keeps the file's inode: its size and times tell it from what this process left.
    path = tmp_path / "catalog.duckdb"
    store = Store(path, timeout=5.0)
    _apply(store, [_run("r0")[0]])
    store.checkpoint()
    shutil.copyfile(path, tmp_path / "backup.duckdb")  # a run, no keys yet
    _apply(store, _run("r1"))
    store.checkpoint()
    shutil.copyfile(tmp_path / "backup.duckdb", path)
    _apply(store, _run("r2"))
    assert _keys(store) == [("metric", "loss", None), ("param", "lr", "float")]


def test_keys_of_a_transaction_rolled_back_are_not_known(tmp_path: Path) -> None:
    store = Store(tmp_path / "catalog.duckdb", timeout=5.0)
    now = time.time()
    foreign = [events.Spooled("f1", 1, events.Start("f1", {"name": "f1", "started_at": now})),
               events.Spooled("f1", 2, events.Metric("f1", "loss", 0.1, 2**70, now))]
    with store.connect(write=True) as con:
        # no BIGINT holds the foreign step: the whole group commit is rolled back
        assert writer.apply_together(con, _run("r1"), foreign, store.keys) is None
        assert not store.keys.params and not store.keys.metrics
        assert writer.apply_all(con, _run("r1"), writer.keeper(store), store.keys) == []
    assert store.keys.params == {("lr", "float")} and store.keys.metrics == {("loss",)}
    assert _keys(store) == [("metric", "loss", None), ("param", "lr", "float")]


def test_a_fresh_cache_knows_nothing_until_a_transaction_commits() -> None:
    keys = KnownKeys()
    keys.hold({("lr", "float")}, {("loss",)})
    assert not keys.params
    keys.committed()
    assert keys.params == {("lr", "float")} and keys.metrics == {("loss",)}
