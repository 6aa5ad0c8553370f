"""Starting, logging to and ending runs, as a user of the Python API does.

On both back ends (issue #13): each test's ``catalog`` is a file, then a PostgreSQL database
(tests/backends.py); a test pinned to the file catalog says why.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import backends
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tracker
from tracker import delivery, hashing, values
from tracker.hashing import hash_bytes
from tracker.recorder import SPOOL_BOUND, encode_line
from tracker.storage import lock as _lock
from tracker.storage import recovery, spools
from tracker.storage import store as store_module

pytestmark = backends.WRITES_ON_BOTH


def test_a_run_used_as_a_context_manager_completes(catalog: tracker.Catalog) -> None:
    with catalog.start_run("baseline", project="mnist", params={"lr": 0.01},
                           labels=["cpu", "v1"]) as run:
        run.log_metric("acc", 0.91)
    info = catalog.get_run(run.id)
    assert (info.name, info.project, info.status) == ("baseline", "mnist", "completed")
    assert info.params == {"lr": 0.01}
    assert info.metrics == {"acc": 0.91}
    assert info.labels == ("cpu", "v1")
    assert info.ended_at is not None and info.duration >= 0
    assert info.key == f"tracker://mnist/runs/{run.id}"


def test_an_exception_in_the_block_marks_the_run_failed(catalog: tracker.Catalog) -> None:
    with pytest.raises(ZeroDivisionError):
        with catalog.start_run("broken") as run:
            1 / 0  # noqa: B018
    info = catalog.get_run(run.id)
    assert info.status == "failed"
    assert info.error == "ZeroDivisionError: division by zero"


def test_starting_again_returns_the_active_run(catalog: tracker.Catalog) -> None:
    first = catalog.start_run("setup")
    assert catalog.start_run() is first
    assert catalog.start_run("setup") is first
    first.end()
    assert len(catalog.runs()) == 1


def test_another_name_inside_a_run_starts_a_child(catalog: tracker.Catalog) -> None:
    with catalog.start_run("sweep") as parent:
        with catalog.start_run("trial-1") as child:
            assert catalog.current_run() is child
        assert catalog.current_run() is parent
    assert catalog.get_run(child.id).parent_id == parent.id
    assert catalog.current_run() is None


def test_setting_a_param_again_keeps_its_history(catalog: tracker.Catalog) -> None:
    with catalog.start_run() as run:
        run.log_param("lr", 0.1)
        run.log_param("lr", 0.1)  # a no-op: the same value
        run.log_param("lr", 0.01)
    history = catalog.get_run(run.id).param_history["lr"]
    assert [value for _, value in history] == [0.1, 0.01]
    assert history[0][0] <= history[1][0]


def test_metrics_keep_the_series_and_queries_see_the_latest(catalog: tracker.Catalog) -> None:
    with catalog.start_run() as run:
        for step in range(5):
            run.log_metric("loss", 1.0 / (step + 1), step=step)
        run.log_metrics({"acc": 0.5, "f1": 0.4}, step=4)
    assert catalog.get_run(run.id).metrics == {"loss": 0.2, "acc": 0.5, "f1": 0.4}
    series = catalog.metric_history(run.id, "loss")
    assert list(series["step"]) == [0, 1, 2, 3, 4]
    assert list(series["value"]) == [1.0, 0.5, 1 / 3, 0.25, 0.2]


def test_a_tag_set_again_replaces_its_value_and_delete_tag_removes_it(
        catalog: tracker.Catalog) -> None:
    with catalog.start_run("tagged") as run:
        run.set_tag("stage", "draft")
        run.set_tags({"stage": "final", "source": "manual", "epochs": 3})
        run.set_tag("doomed", "x")
        run.delete_tag("doomed")
        run.delete_tag("never-set")
    info = catalog.get_run(run.id)
    assert info.tags == {"epochs": "3", "source": "manual", "stage": "final"}
    assert info.params == {}  # tags are not params


def test_texts_longer_than_a_run_records_are_refused_so_every_run_can_be_exported(
        catalog: tracker.Catalog, tmp_path: Path) -> None:
    long_name, long_notes = "n" * (values.MAX_NAME + 1), "x" * (values.MAX_TEXT + 1)
    for arguments in ({"name": long_name}, {"name": "p", "project": long_name},
                      {"name": "l", "labels": ["l" * (values.MAX_LABEL + 1)]},
                      {"name": "ls", "labels": [str(i) for i in range(values.MAX_LABELS + 1)]},
                      {"name": "n", "notes": long_notes}):
        with pytest.raises(tracker.ArgumentError, match="the limit is"):
            catalog.start_run(**arguments)
    with pytest.warns(tracker.TrackerWarning) as caught, catalog.start_run("kept") as run:
        run.log_param("k" * (values.MAX_NAME + 1), 1)  # logging never raises: one warning each
        run.log_params({"deep": {"k" * values.MAX_NAME: 1}})
        run.log_metric("m" * (values.MAX_NAME + 1), 1.0)
        run.log_param("big", long_notes)
        with pytest.raises(tracker.ArgumentError, match="the limit is"):
            run.set_tag("t", long_notes)
    assert [str(w.message).split(" was ")[0][:8] for w in caught] == \
        ["param 'k", "param 'd", "metric '", "param 'b"]
    with pytest.raises(tracker.ArgumentError, match="the limit is"):
        catalog.update_run(run.id, notes=long_notes)
    info = catalog.get_run(run.id)
    assert info.metrics == {} and list(info.params) == ["big"]
    assert info.params["big"]["type"] == "builtins.str"  # by description: its type and a repr
    other = tracker.Catalog(tmp_path / "other.duckdb")
    assert other.import_run(catalog.export_run(run.id, tmp_path / "kept.json")) == run.id


def test_what_is_logged_on_an_ended_run_is_recorded(catalog: tracker.Catalog) -> None:
    run = catalog.start_run("reviewed")
    run.log_param("a", 1)
    run.end()
    catalog.flush()
    run.set_tag("verdict", "good")  # the natural use: a verdict once the run is over
    run.log_metric("late", 1.0)
    catalog.flush()
    info = catalog.get_run(run.id)
    assert info.tags == {"verdict": "good"}
    assert info.metrics == {"late": 1.0} and info.params == {"a": 1}


def test_tags_of_any_run_are_set_by_reference(catalog: tracker.Catalog) -> None:
    with catalog.start_run("finished", params={"lr": 0.1}) as run:
        run.set_tag("stage", "draft")
    catalog.set_tag("stage", "reviewed", run=run.id[:8])
    catalog.set_tags({"reviewer": "ann", "score": 4.5}, run=run.key)
    catalog.delete_tag("score", run=run.id)
    info = catalog.get_run(run.id)
    assert info.tags == {"reviewer": "ann", "stage": "reviewed"}
    assert info.status == "completed" and info.params == {"lr": 0.1}
    with pytest.raises(tracker.RunNotFoundError):
        catalog.set_tag("stage", "x", run="zzzzzzzzzzzz")


def test_module_functions_tag_the_active_run(catalog: tracker.Catalog) -> None:
    tracker.use_catalog(backends.address(catalog))
    try:
        tracker.set_tag("source", "script")
        tracker.set_tags({"team": "vision"})
        tracker.delete_tag("team")
        run_id = tracker.current_run().id
        tracker.end_run()
        assert tracker.get_run(run_id).tags == {"source": "script"}
    finally:
        tracker.use_catalog(None)


def test_a_secret_tag_is_redacted_like_a_param(catalog: tracker.Catalog) -> None:
    secret = "hunter2-hunter2"
    with catalog.start_run("secrets") as run:
        run.set_tag("db_password", secret)
        run.set_tag("command", f"train --token={secret}")
    catalog.set_tag("api_key", secret, run=run.id)
    tags = catalog.get_run(run.id).tags
    assert tags["db_password"].startswith("<redacted:str:")
    assert tags["api_key"].startswith("<redacted:str:")
    assert secret not in tags["command"]


@pytest.mark.parametrize(("key", "value"), [
    ("", "x"), (3, "x"), ("k" * 251, "x"), ("k", None), ("k", ["a"]), ("k", {"a": 1}),
])
def test_a_bad_tag_raises_an_argument_error_saying_what_a_tag_is(
        catalog: tracker.Catalog, key: object, value: object) -> None:
    with catalog.start_run("bad") as run:
        with pytest.raises(tracker.ArgumentError, match="tag"):
            run.set_tag(key, value)  # type: ignore[arg-type]
        with pytest.raises(tracker.ArgumentError, match="tag"):
            catalog.set_tag(key, value, run=run.id)  # type: ignore[arg-type]
    assert catalog.get_run(run.id).tags == {}


# The default catalog: the file $TRACKER_CATALOG names (tests/conftest.py).
@pytest.mark.parametrize("write_backend", backends.FILE_ONLY)
def test_module_functions_log_to_the_default_catalog(tmp_path: Path) -> None:
    run = tracker.start_run("module-level")
    tracker.log_param("seed", 7)
    tracker.log_params({"model": {"depth": 3, "kind": "tree"}})
    tracker.log_metric("score", 3.5, step=1)
    tracker.end_run()
    info = tracker.get_run(run.id)
    assert info.params == {"seed": 7, "model.depth": 3, "model.kind": "tree"}
    assert info.metrics == {"score": 3.5}
    assert tracker.default_catalog().path == tmp_path / "default" / "catalog.duckdb"


def test_logging_without_a_run_starts_one(catalog: tracker.Catalog) -> None:
    catalog.log_param("alpha", 1)
    run = catalog.current_run()
    assert run is not None
    run.end()
    assert catalog.get_run(run.id).params == {"alpha": 1}


def test_end_rejects_an_unknown_status(catalog: tracker.Catalog) -> None:
    run = catalog.start_run()
    with pytest.raises(tracker.ArgumentError, match="status must be one of"):
        run.end("finished")
    run.end("failed")
    assert catalog.get_run(run.id).status == "failed"


@pytest.mark.parametrize("labels", ["gpu", 5, ["gpu", 5], {"gpu": True}])
def test_start_run_refuses_labels_that_are_not_a_list_of_text(catalog: tracker.Catalog,
                                                              labels: object) -> None:
    with pytest.raises(tracker.ArgumentError, match="^labels "):
        catalog.start_run("labelled", labels=labels)  # type: ignore[arg-type]
    assert catalog.current_run() is None


def test_log_metrics_of_something_not_a_mapping_warns_and_records_nothing(
        catalog: tracker.Catalog) -> None:
    run = catalog.start_run()
    with pytest.warns(tracker.TrackerWarning, match="metrics were not recorded"):
        run.log_metrics(5)  # type: ignore[arg-type]
    run.log_metrics({"acc": 0.5})
    assert run.metrics == {"acc": 0.5}


def test_inputs_and_outputs_are_hashed_and_versioned(catalog: tracker.Catalog,
                                                     tmp_path: Path) -> None:
    data = tmp_path / "data.csv"
    data.write_text("a,b\n1,2\n")
    with catalog.start_run("prepare") as producer:
        producer.log_output(data)
    with catalog.start_run("train") as consumer:
        consumer.log_input(data)
        consumer.log_input("s3://bucket/extra.parquet")
    inputs = {a["uri"]: a for a in catalog.get_run(consumer.id).inputs}
    assert inputs[str(data)]["producer_run_id"] == producer.id
    assert inputs[str(data)]["hash"].startswith("xxh3_128:")
    assert inputs[str(data)]["size"] == 8
    assert inputs["s3://bucket/extra.parquet"]["hash"] is None
    data.write_text("a,b\n3,4\n")
    with catalog.start_run("prepare-again") as again:
        again.log_output(data)
    versions = catalog.artifacts(role="output")
    assert list(versions["version"]) == [1, 2]
    assert list(versions["latest"]) == [False, True]


def test_a_file_rewritten_right_after_it_was_logged_keeps_the_logged_content(
        catalog: tracker.Catalog, tmp_path: Path) -> None:
    # A checkpoint rewritten every epoch: each run records the bytes it logged, not the next.
    checkpoint = tmp_path / "x.txt"
    checkpoint.write_text("v1")
    with catalog.start_run("A") as first:
        first.log_output(checkpoint)
    checkpoint.write_text("v2")
    with catalog.start_run("B") as second:
        second.log_output(checkpoint)
    versions = catalog.artifacts(role="output")
    assert list(versions["run_id"]) == [first.id, second.id]
    assert list(versions["version"]) == [1, 2]
    assert list(versions["hash"]) == [hash_bytes(b"v1"), hash_bytes(b"v2")]


def test_a_big_file_changed_before_it_was_hashed_gets_no_hash_rather_than_a_wrong_one(
        catalog: tracker.Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hashing, "HASH_ON_LOG_MAX", 4, raising=False)  # hashed later
    recorder = catalog.recorder_for_write()
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"epoch 1")
    # The background writer waits, as it does behind a busy catalog; the rewrite goes through
    # a descriptor opened before the file was logged, which tracker cannot see (one it sees is
    # copied first: tests/test_contents.py).
    with recorder._db_lock, open(weights, "r+b", buffering=0) as unseen:
        with catalog.start_run("epoch-1") as first:
            first.log_output(weights)
        unseen.write(b"epoch 2 and more")
    with catalog.start_run("epoch-2") as second:
        second.log_output(weights)
    versions = catalog.artifacts(role="output")
    assert list(versions["run_id"]) == [first.id, second.id]
    assert list(versions["hash"].isna()) == [True, False]  # unknown, not "epoch 2"'s hash
    assert versions["size"][0] == len(b"epoch 1")
    assert versions["hash"][1] == hash_bytes(b"epoch 2 and more")


def test_events_wait_in_the_spool_until_written(catalog: tracker.Catalog) -> None:
    recorder = catalog.recorder_for_write()
    with recorder._db_lock:  # keep the background writer out: only the spool stage runs
        run = catalog.start_run("spooled")
        run.log_param("x", 1)
        recorder.spool()
        lines = recorder.spool_path.read_text().splitlines()
    assert json.loads(lines[0])["owner"]["pid"] > 0
    assert [json.loads(line)[1] for line in lines[1:]] == ["start", "param"]
    run.end()
    catalog.flush()  # in the catalog now: the spool has done its job
    assert recorder.spool_path.read_text().splitlines() == lines[:1]


# A file catalog's blobs are files beside it; a PostgreSQL catalog's are rows of its blobs table.
@pytest.mark.parametrize("write_backend", backends.FILE_ONLY)
def test_a_stored_copy_cut_short_never_sits_under_its_hash(
        catalog: tracker.Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Blobs are named by content hash and never rewritten, so a truncated one would be trusted.
    notebook = tmp_path / "analysis.ipynb"
    notebook.write_text(json.dumps({"cells": ["x = 1"] * 1000}))

    def killed_mid_copy(target: Path, content: bytes) -> None:
        target.write_bytes(content[:1])
        raise OSError("No space left on device")

    monkeypatch.setattr(store_module, "_write_private", killed_mid_copy)
    with pytest.raises(OSError):
        delivery.store_blob(catalog, str(notebook))
    assert not [blob for blob in catalog.blob_dir.iterdir() if not blob.name.startswith(".")]

    monkeypatch.undo()
    stored = delivery.store_blob(catalog, str(notebook))
    assert (catalog.blob_dir / stored["blob"]).read_bytes() == notebook.read_bytes()


def test_recovery_leaves_a_spool_whose_owner_is_still_writing_its_first_line(
        catalog: tracker.Catalog) -> None:
    # Another process between creating (or emptying) its spool and writing the owner line.
    catalog.spool_dir.mkdir(parents=True)
    being_written = catalog.spool_dir / "otherhost-4242-0000.jsonl"
    being_written.touch()
    with catalog.start_run("recovering"):
        pass
    catalog.flush()  # this process's first write, which recovers what dead processes left
    assert being_written.exists()

    long_ago = time.time() - recovery.STALE_HEARTBEAT - 60
    os.utime(being_written, (long_ago, long_ago))
    backends.recovered(catalog)
    assert not being_written.exists()  # nobody finished it: left over, and nothing to ingest
    assert list(catalog.runs()["name"]) == ["recovering"]


# DuckDB's file lock (the PostgreSQL counterpart, a table held on the server:
# test_concurrency.py, test_what_was_logged_while_the_server_held_its_tables_survives_kill_9).
@pytest.mark.parametrize("write_backend", backends.FILE_ONLY)
def test_what_is_logged_is_spooled_while_the_writer_waits_for_the_lock(
        catalog: tracker.Catalog) -> None:
    catalog.runs()
    run = catalog.start_run("waiting")
    spool = catalog.recorder_for_write().spool_path
    with _lock.locked(str(catalog.path), write=True, timeout=10):
        time.sleep(0.3)  # the background writer is now waiting for the catalog
        run.log_metric("loss", 0.5, step=1)
        time.sleep(SPOOL_BOUND)
        spooled = [json.loads(line) for line in spool.read_text().splitlines()[1:]]
    assert ["metric", run.id, "loss", 0.5, 1] in [event[1:6] for event in spooled]
    run.end()




# The catalog file on a full disk (CatalogFullError); a PostgreSQL catalog's disk is the server's.
@pytest.mark.parametrize("write_backend", backends.FILE_ONLY)
def test_a_full_disk_never_breaks_logging_and_loses_nothing(
        small_disk: Path, fill_disk: Callable[[Path], Path]) -> None:
    catalog = tracker.Catalog(small_disk / "catalog.duckdb")
    catalog.runs()  # the catalog exists; then the disk fills up
    filler = fill_disk(small_disk)
    with pytest.warns(tracker.TrackerWarning, match="is full"):
        with catalog.start_run("on-a-full-disk", params={"lr": 0.1}) as run:
            for step in range(1000):
                run.log_metric("loss", 1 / (step + 1), step=step)
        time.sleep(2 * SPOOL_BOUND)  # the background threads meet the full disk too
        with pytest.raises(tracker.CatalogFullError, match="is full"):
            catalog.flush()
    filler.unlink()
    catalog.flush()
    info = catalog.get_run(run.id)
    assert (info.status, info.params) == ("completed", {"lr": 0.1})
    assert catalog.metric_history(run.id)["step"].tolist() == list(range(1000))


def test_an_event_json_cannot_hold_is_quarantined_not_dropped(catalog: tracker.Catalog) -> None:
    with catalog.start_run("odd") as run:
        run.log_param("before", 1)
        with pytest.warns(tracker.TrackerWarning, match="quarantine"):
            run.record("env", "env-1", {"digits": 10**5000})  # no JSON text for this int
            catalog.flush()
        run.log_param("after", 2)
    assert catalog.get_run(run.id).params == {"before": 1, "after": 2}
    kept = [json.loads(line) for path in spools.quarantine_dir(catalog.store).glob("*.jsonl")
            for line in path.read_text().splitlines()]
    assert [entry["event"] for entry in kept] == [
        ["env", run.id, "env-1", {"digits": hex(10**5000)}]]


class _Described:
    def __str__(self) -> str:
        return "<described>"


_JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text()
    | st.builds(_Described), lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=4), inner, max_size=3), max_leaves=8)


@given(st.lists(_JSONISH, max_size=7))
def test_a_spool_line_is_the_json_the_standard_encoder_writes(row: list[object]) -> None:
    """Spool lines are encoded with the C encoder called directly (no per-line set-up): the text
    is the one ``json.JSONEncoder(default=str)`` writes, NaN and objects included."""
    assert encode_line(row) == json.JSONEncoder(default=str).encode(row)


def test_a_cyclic_value_fails_to_encode_rather_than_looping() -> None:
    looped: list[object] = [1]
    looped.append(looped)
    with pytest.raises((ValueError, RecursionError)):
        encode_line(["param", "r", "k", looped])


def _counting_writes(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The run ids of each catalog write (one attach each) from now on."""
    writes: list[list[str]] = []
    write_events = delivery.write_events

    def counted(catalog: tracker.Catalog, batch: recovery.Batch, **kwargs: object) -> int:
        writes.append(sorted({run_id for run_id, _, _ in batch}))
        return write_events(catalog, batch, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(delivery, "write_events", counted)
    return writes


def test_a_short_run_reaches_the_catalog_in_one_write(
        catalog: tracker.Catalog, monkeypatch: pytest.MonkeyPatch) -> None:
    with catalog.start_run("warm-up"):  # the flusher thread is running from here on
        pass
    catalog.flush()
    monkeypatch.setattr("tracker.recorder.START_DELAY", 5.0, raising=False)  # however slow the test
    writes = _counting_writes(monkeypatch)
    with catalog.start_run("short", params={"lr": 0.1}) as run:
        time.sleep(0.05)  # the flusher had time to write the start on its own
        run.log_metric("acc", 0.9)
    catalog.flush()
    assert writes == [[run.id]]
    assert catalog.get_run(run.id).status == "completed"


def test_a_new_run_reaches_the_catalog_without_a_flush(
        catalog: tracker.Catalog, monkeypatch: pytest.MonkeyPatch) -> None:
    run = catalog.start_run("long")
    writes = _counting_writes(monkeypatch)
    deadline = time.monotonic() + 10
    while not writes and time.monotonic() < deadline:
        time.sleep(0.01)
    assert writes == [[run.id]]
    catalog.end_run()


# -- files a script's runs read and write ------------------------------------------------------

_SCRIPT = '''
import os, sys
import pandas as pd
import tracker

pd.DataFrame({"x": [1, 2]}).to_csv("before.csv")  # no run yet: not recorded
with tracker.start_run("etl") as run:
    frame = pd.read_csv("raw.csv")
    frame.to_csv("clean.csv", index=False)
    with open("tmp.part", "w") as f:
        f.write("done")
    os.replace("tmp.part", "final.txt")
    with tracker.start_run("child") as child:
        open("child.txt", "w").write("mine")
open("after.txt", "w").write("the run has ended")
print(run.id, child.id)
'''


def _script(tmp_path: Path, source: str, **env: str) -> list[str]:
    """Run ``source`` as a script in ``tmp_path`` (its working folder); its printed words."""
    import subprocess
    import sys

    (tmp_path / "job.py").write_text(source, encoding="utf-8")
    done = subprocess.run([sys.executable, "job.py"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, env={**os.environ, **env})
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


# DuckDB's log file, checkpointed at exit: a PostgreSQL server keeps its own.
@pytest.mark.parametrize("write_backend", backends.FILE_ONLY)
def test_a_script_leaves_the_catalog_whole_in_one_file_at_exit(tmp_path: Path) -> None:
    # Writes leave their commits in the catalog's log (tracker.storage.instances); a process
    # that exits checkpoints it, so a copy of the .duckdb file alone holds every run.
    catalog = tmp_path / "catalog.duckdb"
    (run_id,) = _script(tmp_path, "import tracker\n"
                        "with tracker.start_run('whole', params={'lr': 0.1}) as run:\n"
                        "    tracker.log_metric('acc', 0.5)\n"
                        "tracker.flush()\n"
                        "print(run.id)\n", TRACKER_CATALOG=str(catalog))
    assert not catalog.with_name("catalog.duckdb.wal").exists()
    copy = tmp_path / "copy" / "catalog.duckdb"
    copy.parent.mkdir()
    copy.write_bytes(catalog.read_bytes())
    assert tracker.Catalog(copy).get_run(run_id).metrics == {"acc": 0.5}


@pytest.fixture
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A script's working folder, apart from the catalog's (whose files are never recorded)."""
    return tmp_path_factory.mktemp("work")


def test_a_script_s_run_records_the_files_it_reads_and_writes(catalog: tracker.Catalog,
                                                                work: Path) -> None:
    (work / "raw.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    run_id, child_id = _script(work, _SCRIPT, TRACKER_CATALOG=backends.address(catalog))
    info = catalog.get_run(run_id)
    assert [(a["uri"], a["via"]) for a in info.inputs] == [(str(work / "raw.csv"), "open")]
    assert sorted(a["uri"] for a in info.outputs) == [str(work / "clean.csv"),
                                                      str(work / "final.txt")]
    assert info.outputs[0]["hash"] == hash_bytes((work / info.outputs[0]["uri"]).read_bytes())
    assert [a["uri"] for a in catalog.get_run(child_id).outputs] == [str(work / "child.txt")]
    assert len(catalog.runs()) == 2  # before.csv and after.txt: written outside any run


def test_tracker_capture_0_turns_a_script_s_capture_off(catalog: tracker.Catalog,
                                                        work: Path) -> None:
    (work / "raw.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    run_id, _ = _script(work, _SCRIPT, TRACKER_CAPTURE="0",
                        TRACKER_CATALOG=backends.address(catalog))
    assert catalog.get_run(run_id).artifacts == []


_LOGS_AT_EXIT = '''
import atexit
import tracker

atexit.register(lambda: tracker.log_metric("at_exit", 1.0))
print(tracker.start_run(name="job").id)
'''


def test_an_exit_handler_the_script_registers_after_import_can_still_log(
        catalog: tracker.Catalog, work: Path) -> None:
    # The recorder's own exit handler (it ends the runs and writes) is registered by
    # `import tracker`, so it runs after the script's: not when the first run starts.
    (run_id,) = _script(work, _LOGS_AT_EXIT, TRACKER_CATALOG=backends.address(catalog))
    info = catalog.get_run(run_id)
    assert (info.status, info.metrics) == ("completed", {"at_exit": 1.0})


# A catalog whose folder cannot be made, though nothing says so before it is needed (an
# unmounted share, say): /proc takes no new folder, even from root.
UNUSABLE = "/proc/tracker-no-such-folder/catalog.duckdb"


def test_a_catalog_that_cannot_be_used_leaves_the_user_s_exception_alone() -> None:
    catalog = tracker.Catalog(UNUSABLE)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ValueError, match="the user's own bug"):
            with catalog.start_run("train") as run:
                run.log_metric("loss", 0.5)
                raise ValueError("the user's own bug")
        catalog.recorder.stop_threads()
    assert len([w for w in caught if "kept in memory" in str(w.message)]) == 1
    catalog.recorder.queue.clear()  # or this test process's exit would warn of them


def test_a_script_whose_runs_reach_no_disk_says_so_at_exit() -> None:
    script = ("import tracker\nwith tracker.start_run('train'):\n"
              "    tracker.log_metric('loss', 0.5)\nprint('end of script')\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "TRACKER_CATALOG": UNUSABLE},
                          check=False)
    assert done.returncode == 0 and done.stdout == "end of script\n"
    assert "they are lost" in done.stderr


_FORKED: dict[str, Any] = {}  # what a forked worker finds: set by the test before it forks


def _trial(index: int) -> str:
    with _FORKED["catalog"].start_run(f"trial-{index}") as run:
        run.log_metric("loss", 1 / (index + 1))
    return run.id


def _log_to_the_parent_s_run(_: int) -> None:
    _FORKED["run"].log_metric("from_worker", 1.0)
    _FORKED["catalog"].flush()


def test_runs_of_forked_workers_are_recorded_and_the_parent_s_run_is_left_alone(
        tmp_path: Path) -> None:
    """multiprocessing forks here by default: a worker inherits the parent's recorder, whose
    spool file, sequence numbers and locks are the parent's."""
    import multiprocessing

    catalog = tracker.Catalog(tmp_path / "catalog.duckdb")
    parent = catalog.start_run("parent")
    parent.log_metric("before", 1.0)
    _FORKED.update(catalog=catalog, run=parent)
    with warnings.catch_warnings(record=True), \
            multiprocessing.get_context("fork").Pool(2) as pool:
        warnings.simplefilter("always")
        trials = pool.map(_trial, range(4))
        pool.map(_log_to_the_parent_s_run, range(2))
        pool.close()
        pool.join()
    parent.log_metric("after", 2.0)
    parent.end()
    catalog.flush()
    runs = catalog.runs()
    assert set(trials) <= set(runs["id"])
    assert set(runs.loc[runs["id"].isin(trials), "metrics.loss"]) == {1.0, 0.5, 1 / 3, 0.25}
    assert sorted(catalog.get_run(parent.id).metrics) == ["after", "before"]
    quarantined = "".join(p.read_text() for p in (catalog.folder / "catalog.duckdb.spool")
                          .rglob("*") if p.is_file() and "quarantine" in str(p))
    assert "from_worker" in quarantined  # kept, not lost, and not in the parent's run
