"""The SQL write of a batch of events (tracker.storage.writer): each event applied once, whatever
replays it, and an event the catalog refuses kept in quarantine while the rest is applied."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tracker import events
from tracker.storage import spools, writer
from tracker.storage.store import Store


def _run(run_id: str, *, first_seq: int = 1) -> list[events.Spooled]:
    now = time.time()
    shapes: list[events.Event] = [
        events.Start(run_id, {"name": run_id, "project": "default", "started_at": now}),
        events.Param(run_id, "lr", 0.1, "float", now),
        events.Metric(run_id, "loss", 0.5, 1, now),
        events.Metric(run_id, "loss", 0.25, 2, now),
        events.End(run_id, "completed", now + 2, None),
    ]
    return [events.Spooled(run_id, seq, event) for seq, event in enumerate(shapes, first_seq)]


def _apply(store: Store, batch: list[events.Spooled]) -> list[spools.Reject]:
    with store.connect(write=True) as con:
        return writer.apply_all(con, batch, writer.keeper(store))


def _rows(store: Store, sql: str) -> list[tuple[object, ...]]:
    with store.connect() as con:
        return con.execute(sql).fetchall()


def test_a_batch_applied_twice_is_applied_once(tmp_path: Path) -> None:
    # A process killed between its commit and truncating its spool: the spool is replayed.
    store = Store(tmp_path / "catalog.duckdb", timeout=5.0)
    batch = _run("r1")
    assert _apply(store, batch) == []
    assert _apply(store, batch) == []
    assert _rows(store, "SELECT status, duration, spool_seq FROM runs") == [("completed", 2.0, 5)]
    assert _rows(store, "SELECT step, value FROM metrics ORDER BY step") == [(1, 0.5), (2, 0.25)]
    assert _rows(store, "SELECT count(*) FROM params") == [(1,)]


def test_a_replay_applies_only_the_events_after_the_last_one_applied(tmp_path: Path) -> None:
    store = Store(tmp_path / "catalog.duckdb", timeout=5.0)
    batch = _run("r1")
    _apply(store, batch[:3])  # start, param, the first loss
    _apply(store, batch)  # the whole spool again, as recovery reads it
    assert _rows(store, "SELECT step FROM metrics ORDER BY step") == [(1,), (2,)]
    assert _rows(store, "SELECT status FROM runs") == [("completed",)]


def test_an_event_the_catalog_refuses_is_quarantined_and_the_rest_applied(
        tmp_path: Path) -> None:
    store = Store(tmp_path / "catalog.duckdb", timeout=5.0)
    batch = _run("r1")
    bad = events.Metric("r1", "loss", 0.1, 2**70, time.time())  # no BIGINT holds this step
    batch.insert(3, events.Spooled("r1", 4, bad))
    batch[4:] = [item._replace(seq=item.seq + 1) for item in batch[4:]]
    batch += _run("r2")

    refused = _apply(store, batch)

    assert [(reject.run_id, reject.seq) for reject in refused] == [("r1", 4)]
    assert _rows(store, "SELECT id, status FROM runs ORDER BY id") == [
        ("r1", "completed"), ("r2", "completed")]
    assert _rows(store, "SELECT count(*) FROM metrics WHERE run_id = 'r1'") == [(2,)]
    kept = [json.loads(line) for path in spools.quarantine_dir(store).glob("*.jsonl")
            for line in path.read_text().splitlines()]
    assert [(entry["run_id"], entry["seq"], entry["event"][:3]) for entry in kept] == [
        ("r1", 4, ["metric", "r1", "loss"])]  # the event as a spool line holds it


def test_events_of_a_run_that_never_started_are_kept_not_applied(tmp_path: Path) -> None:
    store = Store(tmp_path / "catalog.duckdb", timeout=5.0)
    startless = _run("r1")[1:]
    refused = _apply(store, startless)
    assert [reject.seq for reject in refused] == [2, 3, 4, 5]
    assert all("no start event" in reject.error for reject in refused)
    assert _rows(store, "SELECT count(*) FROM runs") == [(0,)]
