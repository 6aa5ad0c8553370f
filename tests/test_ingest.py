"""Applying recorded events to the catalog, and recovering what dead processes left behind:
what the catalog cannot store is kept in quarantine, never dropped, and never blocks the rest."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import tracker
from tracker import delivery, events
from tracker.recorder import local_to
from tracker.storage import spools


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _run_events(run_id: str, name: str, *, first_seq: int = 1) -> list[list[Any]]:
    """What a recorder spools for a short run: start, a param, a metric, end."""
    now = time.time()
    events = [["start", run_id, {"name": name, "project": "default", "started_at": now}],
              ["param", run_id, "lr", 0.1, "float", now],
              ["metric", run_id, "loss", 0.5, 1, now],
              ["end", run_id, "completed", now, None]]
    return [[first_seq + i, *event] for i, event in enumerate(events)]


def _orphaned_spool(catalog: tracker.Catalog, lines: list[str]) -> Path:
    """A spool left by a process of this host that has exited."""
    catalog.spool_dir.mkdir(parents=True, exist_ok=True)
    pid = _dead_pid()
    path = catalog.spool_dir / f"{socket.gethostname()}-{pid}-0001.jsonl"
    owner = {"owner": {"host": socket.gethostname(), "pid": pid, "process_start": None}}
    path.write_text(json.dumps(owner) + "\n" + "".join(lines))
    return path


def _lines(events: list[list[Any]]) -> list[str]:
    return [json.dumps(event) + "\n" for event in events]


def _write(catalog: tracker.Catalog, batch: list[events.Spooled]) -> int:
    """Write ``batch`` as this process's recorder would (recovering on a first write)."""
    return delivery.write_events(catalog, batch, local=local_to(catalog.spool_dir))


def _quarantined(catalog: tracker.Catalog) -> list[dict[str, Any]]:
    folder = spools.quarantine_dir(catalog.store)
    return [json.loads(line) for path in sorted(folder.glob("*.jsonl"))
            for line in path.read_text().splitlines()]


def test_recovery_skips_a_line_cut_short_and_keeps_it(catalog: tracker.Catalog) -> None:
    # A write cut short by a full disk, then three complete runs logged after space was freed.
    cut_short = json.dumps([5, "metric", "r0", "loss", 0.25, 2, time.time()])[:20] + "\n"
    lines = [*_lines(_run_events("r0", "before")[:3]), cut_short]
    for n in range(1, 4):
        lines += _lines(_run_events(f"r{n}", f"after-{n}"))
    lines.append(_lines(_run_events("r4", "last"))[0][:-10])  # the kill cut the very last line
    spool = _orphaned_spool(catalog, lines)

    with pytest.warns(tracker.TrackerWarning, match="quarantine"):
        frame = catalog.runs()
    assert sorted(frame["name"]) == ["after-1", "after-2", "after-3", "before"]
    assert set(frame.loc[frame["name"] != "before", "status"]) == {"completed"}
    assert not spool.exists()  # everything in it is either in the catalog or in quarantine
    kept = _quarantined(catalog)
    assert [entry["event"] for entry in kept] == [cut_short, lines[-1]]
    assert all("line" in entry["error"] for entry in kept)


def test_an_event_the_catalog_refuses_is_quarantined_and_the_rest_applied(
        catalog: tracker.Catalog) -> None:
    # Events as an older tracker spooled them, before values were checked at log time.
    good = _run_events("good", "good")
    poisoned = _run_events("poisoned", "poisoned")
    poisoned.insert(2, [9, "param", "poisoned", "\ud800", 1, "int", time.time()])
    poisoned.insert(3, [10, "metric", "poisoned", "m", 0.5, 2**70, time.time()])
    for seq, event in enumerate(poisoned, start=1):
        event[0] = seq
    unnamed = _run_events("unnamed", "bad-\udfff")  # a start the catalog refuses
    batch = [events.Spooled(event[2], event[0], events.from_list(event[1:]))
             for event in [*good, *poisoned, *unnamed]]

    assert _write(catalog, batch) == 2 + len(unnamed)

    frame = tracker.Catalog(catalog.path).runs()  # a fresh process reads the catalog fine
    assert sorted(frame["name"]) == ["good", "poisoned"]
    assert catalog.get_run("poisoned").params == {"lr": 0.1}
    assert catalog.get_run("poisoned").status == "completed"
    kept = _quarantined(catalog)
    assert [(entry["run_id"], entry["seq"]) for entry in kept] == [
        ("poisoned", 3), ("poisoned", 4), *[("unnamed", n) for n in range(1, 5)]]
    assert "Conversion" in kept[0]["error"]
    assert kept[0]["event"] == ["param", "poisoned", "\ud800", 1, "int", kept[0]["event"][5]]
    assert "no start event" in kept[-1]["error"]


def test_a_dead_process_spool_with_a_poison_event_no_longer_breaks_reads(
        catalog: tracker.Catalog) -> None:
    events = _run_events("mixed", "mixed")
    events.insert(2, [3, "param", "mixed", "k", "a\ud800", "str", time.time()])
    for seq, event in enumerate(events, start=1):
        event[0] = seq
    _orphaned_spool(catalog, _lines(events + _run_events("other", "other")))

    with pytest.warns(tracker.TrackerWarning, match="quarantine"):
        assert sorted(catalog.runs()["name"]) == ["mixed", "other"]
    assert sorted(tracker.Catalog(catalog.path).runs()["name"]) == ["mixed", "other"]
    assert [entry["seq"] for entry in _quarantined(catalog)] == [3]


def test_a_spool_whose_bad_lines_cannot_be_kept_is_not_deleted(catalog: tracker.Catalog) -> None:
    catalog.runs()
    spool = _orphaned_spool(catalog, [*_lines(_run_events("r1", "r1")), "garbage\n"])
    spools.quarantine_dir(catalog.store).write_text("")  # a file where the folder should be

    assert list(catalog.runs()["name"]) == ["r1"]  # the read goes on; what could be, is in
    assert spool.exists()

    os.unlink(spools.quarantine_dir(catalog.store))
    with pytest.warns(tracker.TrackerWarning, match="quarantine"):
        assert list(catalog.runs()["name"]) == ["r1"]  # a replay applies nothing twice
    assert not spool.exists()
    assert [entry["event"] for entry in _quarantined(catalog)] == ["garbage\n"]


def test_a_malformed_event_is_quarantined_and_the_rest_applied(catalog: tracker.Catalog) -> None:
    events = _run_events("r1", "r1")
    events.insert(1, [2, "artifact", "r1", "input"])  # too short: not what any tracker wrote
    for seq, event in enumerate(events, start=1):
        event[0] = seq
    _orphaned_spool(catalog, _lines(events))

    with pytest.warns(tracker.TrackerWarning, match="quarantine"):
        assert catalog.runs()["status"].tolist() == ["completed"]
    kept = _quarantined(catalog)  # a line that is no event's shape is kept as it was read
    assert [entry["event"] for entry in kept] == ['[2, "artifact", "r1", "input"]\n']
    assert "line 3" in kept[0]["error"]


class _Counting:
    """A DuckDB connection that counts the statements it runs (executemany: one per row)."""

    def __init__(self, con: Any, sql: list[str]) -> None:
        self._con, self.sql = con, sql

    def execute(self, query: str, *args: Any) -> Any:
        self.sql.append(query)
        return self._con.execute(query, *args)

    def executemany(self, query: str, rows: Any) -> Any:
        self.sql.extend(query for _ in rows)
        return self._con.executemany(query, rows)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._con, name)


def _statements_of(catalog: tracker.Catalog, monkeypatch: pytest.MonkeyPatch,
                   batch: list[events.Spooled]) -> list[str]:
    """The SQL statements ``write_events`` runs for ``batch``."""
    sql: list[str] = []
    connect = catalog.connect

    @contextlib.contextmanager
    def counting(**kwargs: Any) -> Any:
        with connect(**kwargs) as con:
            yield _Counting(con, sql)

    monkeypatch.setattr(catalog, "connect", counting)
    _write(catalog, batch)
    monkeypatch.undo()
    return sql


def _short_run(run_id: str, params: int, metrics: int) -> list[events.Spooled]:
    now = time.time()
    shapes: list[events.Event] = [events.Start(run_id, {"name": run_id, "started_at": now})]
    shapes += [events.Param(run_id, f"p{i}", i / 10, "float", now) for i in range(params)]
    shapes += [events.Metric(run_id, f"m{i}", i / 10, None, now) for i in range(metrics)]
    shapes.append(events.End(run_id, "completed", now + 1, None))
    return [events.Spooled(run_id, seq, event) for seq, event in enumerate(shapes, start=1)]


def test_a_run_is_written_in_a_few_statements_whatever_its_size(
        catalog: tracker.Catalog, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(catalog, _short_run("first", 20, 5))  # creates the catalog, its columns
    small = _statements_of(catalog, monkeypatch, _short_run("small", 1, 1))
    large = _statements_of(catalog, monkeypatch, _short_run("large", 20, 5))
    assert len(large) == len(small) <= 12  # one insert per table, not one per row
    assert not [sql for sql in large if sql.startswith("ALTER")]  # its keys have columns
    assert not [sql for sql in large if sql.startswith("UPDATE")]  # a new run is inserted whole
    runs = catalog.runs("params.p19 = 1.9 AND metrics.m4 = 0.4")
    assert sorted(runs["id"]) == ["first", "large"]
    assert list(runs["duration"]) == [1.0, 1.0]


def test_many_runs_in_one_batch_keep_every_value(catalog: tracker.Catalog) -> None:
    # Past ingest's bulk threshold rows go through a DataFrame rather than bound lists.
    batch = [event for i in range(600) for event in _short_run(f"r{i:03}", 2, 1)]
    assert _write(catalog, batch) == 0
    runs = catalog.runs("params.p1 = 0.1", order_by="name", limit=None)
    assert len(runs) == 600
    assert list(runs["metrics.m0"].unique()) == [0.0]
    history = catalog.metric_history("r599")
    assert list(history["value"]) == [0.0]
    assert catalog.runs(limit=1)["started_at"].dt.tz is not None


def test_a_write_to_an_existing_run_rewrites_only_its_new_values(
        catalog: tracker.Catalog) -> None:
    _write(catalog, _short_run("run", 2, 1)[:-1])  # still running
    now = time.time()
    _write(catalog, [
        events.Spooled("run", 5, events.Param("run", "p1", "changed", "str", now)),
        events.Spooled("run", 6, events.Metric("run", "late", 2.0, 3, now)),
        events.Spooled("run", 7, events.End("run", "completed", now, None))])
    run = catalog.runs(limit=None).iloc[0]
    assert (run["params.p0"], run["params.p1"], run["metrics.m0"], run["metrics.late"]) == (
        0.0, "changed", 0.0, 2.0)
    assert run["status"] == "completed"


def test_a_refused_event_survives_a_failed_quarantine_write(
        catalog: tracker.Catalog, monkeypatch: pytest.MonkeyPatch) -> None:
    # The disk is full when the refused param is quarantined: the recorder retries the batch.
    catalog.runs()
    now = time.time()
    start = events.Start("r1", {"name": "q", "project": "default", "started_at": now})
    batch = [events.Spooled("r1", 1, start),
             events.Spooled("r1", 2, events.Param("r1", "k", 1, "int", "not-a-time")),
             events.Spooled("r1", 3, events.Metric("r1", "m", 1.0, 0, now))]
    real = spools.quarantine

    def full(*args: Any, **kwargs: Any) -> Path:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(spools, "quarantine", full)
    with pytest.raises(OSError):
        _write(catalog, batch)
    monkeypatch.setattr(spools, "quarantine", real)

    assert _write(catalog, batch) == 1
    assert [(entry["run_id"], entry["seq"]) for entry in _quarantined(catalog)] == [("r1", 2)]
    assert catalog.metric_history("r1")["key"].tolist() == ["m"]


def test_an_artifact_spooled_before_via_existed_is_recorded_with_via_unknown(
        catalog: tracker.Catalog, tmp_path: Path) -> None:
    data = tmp_path / "data.csv"
    data.write_text("a\n1\n")
    events = _run_events("old", "old")
    # An older tracker's artifact event: no trailing via field.
    events.insert(3, [9, "artifact", "old", "input", str(data), None, time.time()])
    for seq, event in enumerate(events, start=1):
        event[0] = seq
    _orphaned_spool(catalog, _lines(events))

    frame = catalog.artifacts("old")
    assert list(frame["uri"]) == [str(data)]
    assert frame["via"].isna().all()
    assert catalog.get_run("old").inputs[0]["size"] == 4
