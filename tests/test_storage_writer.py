"""The SQL write of a batch of events (tracker.storage.writer): each event applied once, whatever
replays it, and an event the catalog refuses kept in quarantine while the rest is applied."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from tracker import events, models
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


def test_a_replay_that_starts_a_stored_run_keeps_what_was_stored(tmp_path: Path) -> None:
    # The whole spool of a run replayed after its first part was committed: the batch starts
    # the run, as a new run's batch does, yet the run is stored, and its summaries must be
    # the stored ones brought up to date, not the replayed part's alone.
    store = Store(tmp_path / "catalog.duckdb", timeout=5.0)
    now = time.time()
    shapes: list[events.Event] = [
        events.Start("r1", {"name": "r1", "project": "default", "started_at": now}),
        events.Param("r1", "lr", 0.1, "float", now),
        events.Metric("r1", "loss", 0.5, None, now),
        events.Param("r1", "layers", 3, "int", now + 1),
        events.Metric("r1", "acc", 0.9, None, now + 1),
        events.End("r1", "completed", now + 2, None),
    ]
    batch = [events.Spooled("r1", seq, event) for seq, event in enumerate(shapes, 1)]
    _apply(store, batch[:3])
    _apply(store, batch)
    [(params, metrics)] = _rows(store, "SELECT params::VARCHAR, metrics::VARCHAR FROM runs")
    assert json.loads(params) == {"lr": 0.1, "layers": 3}
    assert json.loads(metrics) == {"loss": 0.5, "acc": 0.9}
    assert _rows(store, "SELECT count(*) FROM params") == [(2,)]
    assert _rows(store, "SELECT count(*) FROM metrics") == [(2,)]


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


def _numbered_start(run_id: str, name: str) -> events.Spooled:
    attrs = {"name": name, "project": "default", "started_at": time.time(),
             models.NUMBERED_NAME: True}
    return events.Spooled(run_id, 1, events.Start(run_id, attrs))


def test_a_numbered_name_takes_the_next_number_of_its_base(tmp_path: Path) -> None:
    store = Store(tmp_path / "catalog.duckdb", timeout=5.0)
    _apply(store, _run("plain"))  # a run named before numbering: "plain" counts as one
    with store.connect(write=True) as con:
        con.execute("UPDATE runs SET name = 'train_cnn' WHERE id = 'plain'")
    _apply(store, [_numbered_start("a", "train_cnn"), _numbered_start("b", "train_cnn"),
                   _numbered_start("c", "other")])
    _apply(store, [_numbered_start("d", "train_cnn")])
    names = dict(_rows(store, "SELECT id, name FROM runs"))
    assert names == {"plain": "train_cnn", "a": "train_cnn #2", "b": "train_cnn #3",
                     "c": "other #1", "d": "train_cnn #4"}


def _named_start(run_id: str, name: str) -> events.Spooled:
    attrs = {"name": name, "project": "default", "started_at": time.time()}
    return events.Spooled(run_id, 1, events.Start(run_id, attrs))


def test_numbering_counts_names_written_in_the_same_batch(tmp_path: Path) -> None:
    # A script's run "train_cnn" ended just before a kernel started: one flush writes both.
    store = Store(tmp_path / "catalog.duckdb", timeout=5.0)
    _apply(store, [_named_start("plain", "train_cnn"), _numbered_start("a", "train_cnn"),
                   _named_start("typed", "other #7"), _numbered_start("b", "other")])
    names = dict(_rows(store, "SELECT id, name FROM runs"))
    assert names == {"plain": "train_cnn", "a": "train_cnn #2", "typed": "other #7",
                     "b": "other #8"}


def test_numbering_in_one_batch_gives_what_one_run_at_a_time_gives(tmp_path: Path) -> None:
    # Each plain name counts one, stored or in the batch; a name numbered in the batch counts
    # for a base that ends in it ("exp #1" numbered after "exp" was).
    store = Store(tmp_path / "catalog.duckdb", timeout=5.0)
    _apply(store, [_named_start("old", "fit")])
    _apply(store, [_named_start("p1", "fit"), _named_start("p2", "fit"),
                   _numbered_start("a", "fit"), _numbered_start("b", "exp"),
                   _numbered_start("c", "exp #1")])
    names = dict(_rows(store, "SELECT id, name FROM runs"))
    assert (names["a"], names["b"], names["c"]) == ("fit #4", "exp #1", "exp #1 #2")


def test_a_number_is_what_bigint_holds_as_every_catalog_reads_it(tmp_path: Path) -> None:
    store = Store(tmp_path / "catalog.duckdb", timeout=5.0)
    for i, odd in enumerate(("run #1e3", "run #0x10", "run #+5", "run #7.6", "run #" + "9" * 20)):
        _apply(store, [_named_start(f"stored{i}", odd)])
    _apply(store, [_numbered_start("a", "run"), _named_start("same-batch", "run #" + "9" * 19),
                   _named_start("zeros", "run #007")])
    _apply(store, [_numbered_start("b", "run")])
    names = dict(_rows(store, "SELECT id, name FROM runs"))
    assert (names["a"], names["b"]) == ("run #8", "run #9")
    # past 18 digits: the next number (19 digits) still counts, so none is drawn twice
    _apply(store, [_named_start("big", "exp #" + "9" * 18)])
    for run_id in ("c", "d"):
        _apply(store, [_numbered_start(run_id, "exp")])
    names = dict(_rows(store, "SELECT id, name FROM runs"))
    assert (names["c"], names["d"]) == ("exp #1" + "0" * 18, "exp #1" + "0" * 17 + "1")


_WRITER = """
import pathlib, sys, time
from tracker import events, models
from tracker.storage import writer
from tracker.storage.store import Store
store = Store(pathlib.Path(sys.argv[1]), timeout=60.0)
for i in range(5):
    run_id = f"{sys.argv[2]}-{i}"
    attrs = {"name": "train_cnn", "project": "default", "started_at": time.time(),
             models.NUMBERED_NAME: True}
    with store.connect(write=True) as con:
        writer.apply_all(con, [events.Spooled(run_id, 1, events.Start(run_id, attrs))],
                         writer.keeper(store))
"""


def test_kernels_of_one_notebook_writing_at_once_never_share_a_number(tmp_path: Path) -> None:
    path = tmp_path / "catalog.duckdb"
    with Store(path, timeout=5.0).connect(write=True):
        pass  # the catalog exists before the race
    children = [subprocess.Popen([sys.executable, "-c", _WRITER, str(path), f"k{k}"])
                for k in range(4)]
    assert [child.wait(timeout=120) for child in children] == [0] * 4
    names = [name for (name,) in _rows(Store(path, timeout=5.0), "SELECT name FROM runs")]
    assert sorted(names, key=lambda n: int(n.split("#")[1])) == [
        f"train_cnn #{n}" for n in range(1, 21)]


def test_an_older_tag_change_arriving_late_never_replaces_a_newer_one(tmp_path: Path) -> None:
    # Process P spooled stage=draft at t1; another set stage=final by reference at t2; P's
    # flush brings t1 afterwards. The same for a delete older than the value it would remove.
    store = Store(tmp_path / "catalog.duckdb", timeout=5.0)
    t1 = time.time()
    _apply(store, _run("r1")[:1])
    with store.connect(write=True) as con:
        writer.write_tags(con, [("r1", "stage", "final", t1 + 5), ("r1", "owner", "ann", t1 + 5)])
    late = [events.Tag("r1", "stage", "draft", t1), events.Tag("r1", "owner", None, t1),
            events.Tag("r1", "note", "kept", t1)]
    _apply(store, [events.Spooled("r1", seq, event) for seq, event in enumerate(late, 2)])
    assert _rows(store, "SELECT key, value FROM tags ORDER BY key") == [
        ("note", "kept"), ("owner", "ann"), ("stage", "final")]
    newer = [events.Tag("r1", "stage", "shipped", t1 + 9), events.Tag("r1", "owner", None, t1 + 9)]
    _apply(store, [events.Spooled("r1", seq, event) for seq, event in enumerate(newer, 5)])
    assert _rows(store, "SELECT key, value FROM tags ORDER BY key") == [
        ("note", "kept"), ("owner", None), ("stage", "shipped")]  # owner: removed


def test_a_removed_tag_is_never_brought_back_by_an_older_value_arriving_late(
        tmp_path: Path) -> None:
    # Another process removed stage by reference at t2; P's flush brings stage=draft from t1.
    # The removal stays as a row without a value, which the late, older value cannot replace.
    store = Store(tmp_path / "catalog.duckdb", timeout=5.0)
    t1 = time.time()
    _apply(store, _run("r1")[:1])
    with store.connect(write=True) as con:
        writer.write_tags(con, [("r1", "stage", "final", t1 - 5)])
        writer.write_tags(con, [("r1", "stage", None, t1 + 5), ("r1", "never", None, t1 + 5)])
    _apply(store, [events.Spooled("r1", 2, events.Tag("r1", "stage", "draft", t1)),
                   events.Spooled("r1", 3, events.Tag("r1", "never", "set", t1))])
    assert _rows(store, "SELECT key, value FROM tags WHERE value IS NOT NULL") == []
    _apply(store, [events.Spooled("r1", 4, events.Tag("r1", "stage", "again", t1 + 9))])
    assert _rows(store, "SELECT key, value FROM tags ORDER BY key") == [
        ("never", None), ("stage", "again")]


def test_a_new_run_is_stored_with_the_columns_it_has_and_the_rest_null(tmp_path: Path) -> None:
    store = Store(tmp_path / "catalog.duckdb", timeout=5.0)
    attrs = {"name": "train", "project": "p", "started_at": 1_700_000_000.5, "pid": 42,
             "labels": ["a", "b"], "notes": "first", "process_start": 12.5}
    _apply(store, [events.Spooled("r1", 1, events.Start("r1", attrs))])
    assert _rows(store, "SELECT name, project, epoch(started_at), pid, labels, notes, "
                        "process_start, status, ended_at, parent_id, spool_seq FROM runs") == [
        ("train", "p", 1_700_000_000.5, 42, ["a", "b"], "first", 12.5, "running", None, None,
         1)]


def test_a_start_whose_column_has_the_wrong_type_is_quarantined(tmp_path: Path) -> None:
    # A spool written by hand, or by another version: pid is no integer.
    store = Store(tmp_path / "catalog.duckdb", timeout=5.0)
    bad = events.Start("r1", {"name": "r1", "started_at": time.time(), "pid": "not a pid"})
    refused = _apply(store, [events.Spooled("r1", 1, bad), *_run("r2")])
    assert [(reject.run_id, reject.seq) for reject in refused] == [("r1", 1)]
    assert _rows(store, "SELECT id FROM runs") == [("r2",)]


def test_the_end_of_a_stored_run_never_set_by_hand_adds_no_history(
        tmp_path: Path, sql_statements: list[str]) -> None:
    # A run longer than the start delay: its start is written first, its end later.
    store = Store(tmp_path / "catalog.duckdb", timeout=5.0)
    batch = _run("r1")
    _apply(store, batch[:-1])
    sql_statements.clear()
    _apply(store, batch[-1:])
    assert not [sql for sql in sql_statements if "INSERT INTO catalog.status_changes" in sql]
    assert _rows(store, "SELECT status FROM runs") == [("completed",)]
    assert _rows(store, "SELECT count(*) FROM status_changes") == [(0,)]


def test_the_end_of_a_run_set_by_hand_is_kept_in_its_history(tmp_path: Path) -> None:
    store = Store(tmp_path / "catalog.duckdb", timeout=5.0)
    batch = _run("r1")
    _apply(store, batch[:-1])
    with store.connect(write=True) as con:  # as tracker.set_status does
        con.execute("UPDATE runs SET status = 'failed'")
        con.execute("INSERT INTO status_changes VALUES ('r1', 'running', 'failed', 'me', 'h', "
                    "now(), true)")
    _apply(store, batch[-1:])
    assert _rows(store, "SELECT old_status, new_status, forced FROM status_changes "
                        "ORDER BY changed_at") == [("running", "failed", True),
                                                   ("failed", "completed", False)]


def test_thousands_of_keys_are_looked_up_as_well_as_a_few(tmp_path: Path) -> None:
    """A batch with more new keys than the writer looks for one by one (it joins them then):
    keys stored by another process are found, and none is stored twice."""
    path = tmp_path / "catalog.duckdb"
    now = time.time()
    many = [f"p{i:04d}" for i in range(writer._JOIN_FROM + 50)]

    def run_with(run_id: str, keys: list[str]) -> list[events.Spooled]:
        shapes: list[events.Event] = [events.Start(run_id, {"name": run_id, "started_at": now})]
        shapes += [events.Param(run_id, key, 1, "int", now) for key in keys]
        shapes += [events.Metric(run_id, key, 0.5, None, now) for key in keys]
        return [events.Spooled(run_id, seq, event) for seq, event in enumerate(shapes, 1)]

    _apply(Store(path, timeout=5.0), run_with("r1", many[:100]))
    # Another process's store: it knows no key, so it looks all of them up.
    _apply(Store(path, timeout=5.0), run_with("r2", many))
    store = Store(path, timeout=5.0)
    assert _rows(store, "SELECT count(*), count(DISTINCT key) FROM param_keys") == [
        (len(many), len(many))]
    assert _rows(store, "SELECT count(*), count(DISTINCT key) FROM metric_keys") == [
        (len(many), len(many))]


def test_a_file_version_is_linked_once_per_run_and_role_with_its_first_via(
        tmp_path: Path) -> None:
    store = Store(tmp_path / "catalog.duckdb", timeout=5.0)
    now = time.time()
    facts = {"hash": "h1", "size": 3}
    sightings = [events.Artifact("r1", "output", "file:///data/out.csv", facts, now, "open"),
                 events.Artifact("r1", "output", "file:///data/out.csv", facts, now, "scan"),
                 events.Artifact("r1", "input", "file:///data/out.csv", facts, now, "open")]
    run = _run("r1")
    _apply(store, [*run[:1], *(events.Spooled("r1", seq, event)
                               for seq, event in enumerate(sightings, 2))])
    _apply(store, [*_run("r2")[:1], events.Spooled(
        "r2", 2, events.Artifact("r2", "input", "file:///data/out.csv", facts, now, "pandas"))])
    assert _rows(store, "SELECT version FROM artifacts") == [(1,)]
    assert _rows(store, "SELECT run_id, role, via FROM run_artifacts ORDER BY run_id, role") == [
        ("r1", "input", "open"), ("r1", "output", "open"), ("r2", "input", "pandas")]
