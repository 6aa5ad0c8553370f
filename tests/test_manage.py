"""Renaming, soft delete and restore, and purge: nothing is lost before a purge."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest

import tracker
from tracker.storage import contents


def test_update_run_renames_and_relabels(catalog: tracker.Catalog) -> None:
    with catalog.start_run("draft") as run:
        pass
    info = catalog.update_run(run.id, name="final", labels=["paper"], notes="figure 3")
    assert (info.name, info.labels, info.notes) == ("final", ("paper",), "figure 3")


def test_delete_hides_a_run_until_restored(catalog: tracker.Catalog) -> None:
    with catalog.start_run("keep") as keep, catalog.start_run("bin") as doomed:
        pass
    catalog.delete_run(doomed.id)
    assert list(catalog.runs()["name"]) == ["keep"]
    assert list(catalog.runs(include_deleted=True)["name"]) == ["bin", "keep"]
    assert catalog.get_run(doomed.id).deleted
    catalog.restore_run(doomed.id)
    assert sorted(catalog.runs()["name"]) == ["bin", "keep"]
    assert keep.id in set(catalog.runs()["id"])


def test_delete_runs_by_filter(catalog: tracker.Catalog) -> None:
    for lr in (0.1, 0.2, 0.3):
        with catalog.start_run(f"lr{lr}", params={"lr": lr}):
            pass
    deleted = catalog.delete_runs("params.lr >= 0.2")
    assert len(deleted) == 2
    assert list(catalog.runs()["name"]) == ["lr0.1"]
    with pytest.raises(ValueError, match="needs a filter"):
        catalog.delete_runs()


def test_purge_removes_only_trashed_runs_older_than_asked(catalog: tracker.Catalog) -> None:
    with catalog.start_run("old") as old, catalog.start_run("new") as new:
        old.log_metric("m", 1.0)
    catalog.delete_runs(ids=[old.id, new.id])
    con = duckdb.connect(str(catalog.path))
    con.execute("UPDATE runs SET deleted_at = now() - INTERVAL 40 DAY WHERE id = ?", [old.id])
    con.close()
    assert catalog.purge(older_than="30d")["runs"] == 1
    with pytest.raises(tracker.RunNotFoundError):
        catalog.get_run(old.id)
    assert int(catalog.sql("SELECT count(*) FROM metrics").iloc[0, 0]) == 0
    assert catalog.get_run(new.id).deleted
    catalog.purge()
    assert catalog.runs(include_deleted=True).empty


def test_purge_keeps_the_latest_pointer_right_and_user_files(catalog: tracker.Catalog,
                                                             tmp_path: Path) -> None:
    data = tmp_path / "model.pkl"
    data.write_bytes(b"v1")
    with catalog.start_run("v1") as first:
        first.log_output(data)
    data.write_bytes(b"v2!")
    with catalog.start_run("v2") as second:
        second.log_output(data)
    catalog.delete_run(second.id)
    catalog.purge()
    versions = catalog.artifacts(role="output")
    assert list(versions["version"]) == [1]
    assert list(versions["latest"]) == [True]
    assert data.read_bytes() == b"v2!"  # the user's file is never touched


def test_the_latest_version_skips_the_trash_and_comes_back_on_restore(
        catalog: tracker.Catalog, tmp_path: Path) -> None:
    data = tmp_path / "model.pkl"
    data.write_bytes(b"v1")
    with catalog.start_run("A") as first:
        first.log_output(data)
    data.write_bytes(b"v2!")
    with catalog.start_run("B") as second:
        second.log_output(data)
    catalog.delete_run(second.id)
    shown = catalog.artifacts(role="output")
    assert list(zip(shown["run_name"], shown["version"], shown["latest"])) == [("A", 1, True)]
    every = catalog.artifacts(role="output", include_deleted=True)
    assert list(zip(every["run_name"], every["latest"])) == [("A", True), ("B", False)]
    assert catalog.get_run(first.id).outputs[0]["latest"]
    catalog.restore_run(second.id)
    back = catalog.artifacts(role="output")
    assert list(zip(back["run_name"], back["latest"])) == [("A", False), ("B", True)]
    assert not catalog.get_run(first.id).outputs[0]["latest"]


def test_purge_removes_blobs_no_run_references(catalog: tracker.Catalog, tmp_path: Path) -> None:
    notebook = tmp_path / "analysis.ipynb"
    notebook.write_text("{}")
    with catalog.start_run("with-notebook") as run:
        run.record("stored", "notebook", str(notebook), time.time())
    catalog.flush()
    blobs = list(catalog.blob_dir.iterdir())
    assert len(blobs) == 1
    catalog.delete_run(run.id)
    assert catalog.purge()["blobs"] == 0  # a fresh blob may belong to a write in flight
    assert catalog.purge()["runs"] == 0
    hour_ago = time.time() - 3700
    os.utime(blobs[0], (hour_ago, hour_ago))
    assert catalog.purge()["blobs"] == 1
    assert not any(catalog.blob_dir.iterdir())
    assert notebook.exists()


@pytest.mark.parametrize(("call", "argument"), [
    (lambda c: c.purge(older_than="abc"), "older_than"),
    (lambda c: c.purge(older_than=-1), "older_than"),
    (lambda c: c.purge(older_than="-5d"), "older_than"),
    (lambda c: c.purge(older_than=float("nan")), "older_than"),
    (lambda c: c.purge(older_than=True), "older_than"),
    (lambda c: c.purge(older_than=["30d"]), "older_than"),
    (lambda c: c.purge(ids="01m7zwkkx6hq"), "ids"),
    (lambda c: c.delete_runs(), "delete_runs"),
    (lambda c: c.delete_runs(ids="01m7zwkkx6hq"), "ids"),
    (lambda c: c.delete_runs(ids=[5]), "ids"),
    (lambda c: c.restore_runs("01m7zwkkx6hq"), "refs"),
    (lambda c: c.update_run("01m7zwkkx6hq", labels="abc"), "labels"),
    (lambda c: c.update_run("01m7zwkkx6hq", labels=["ok", 5]), "labels"),
])


def test_bad_arguments_to_manage_runs_are_argument_errors(catalog: tracker.Catalog, call: Any,
                                                           argument: str) -> None:
    with pytest.raises(tracker.ArgumentError, match=f"^{argument} "):
        call(catalog)
    assert not catalog.path.exists()  # refused before the catalog was opened, or created


def test_update_run_keeps_a_label_list_as_given(catalog: tracker.Catalog) -> None:
    with catalog.start_run("draft") as run:
        pass
    assert catalog.update_run(run.id, labels=("a", "b")).labels == ("a", "b")
    with pytest.raises(tracker.ArgumentError):
        catalog.update_run(run.id, labels="abc")
    assert catalog.get_run(run.id).labels == ("a", "b")  # the refused call changed nothing


def _crash(catalog: tracker.Catalog, run_id: str) -> None:
    """Mark a run crashed as recovery would after its process died."""
    catalog.flush()
    con = duckdb.connect(str(catalog.path))
    con.execute("UPDATE runs SET status = 'crashed' WHERE id = ?", [run_id])
    con.close()


def test_set_status_marks_a_crashed_run_completed_and_keeps_who_did_it(
        catalog: tracker.Catalog) -> None:
    with catalog.start_run("lost") as run:
        pass
    _crash(catalog, run.id)
    info = catalog.set_status(run.id, "completed")
    assert info.status == "completed"
    [change] = info.status_history
    assert (change["old_status"], change["new_status"], change["forced"]) == (
        "crashed", "completed", False)
    assert change["username"] and change["host"] and change["changed_at"] is not None
    assert list(catalog.runs("status = 'completed'")["id"]) == [run.id]


def test_set_status_never_brings_a_finished_run_back_to_running(
        catalog: tracker.Catalog) -> None:
    with catalog.start_run("done") as run:
        pass
    with pytest.raises(ValueError, match="a completed run may be marked failed by hand, "
                                         "not running; pass force=True"):
        catalog.set_status(run.id, "running")
    assert catalog.get_run(run.id).status == "completed"
    assert catalog.get_run(run.id).status_history == []
    forced = catalog.set_status(run.id, "running", force=True)
    assert (forced.status, forced.ended_at) == ("running", None)
    assert forced.status_history[0]["forced"] is True


def test_set_status_does_not_end_a_run_whose_process_is_alive(
        catalog: tracker.Catalog) -> None:
    run = catalog.start_run("live")
    catalog.flush()
    with pytest.raises(ValueError, match=r"its process \(pid \d+ on .*\) is alive"):
        catalog.set_status(run.id, "failed")
    assert catalog.get_run(run.id).status == "running"
    run.end()


def test_a_run_ending_after_its_status_was_set_by_hand_keeps_both_in_its_history(
        catalog: tracker.Catalog) -> None:
    run = catalog.start_run("forced")
    catalog.flush()
    catalog.set_status(run.id, "failed", force=True)
    run.end()  # its own process ends it later: the later event wins, and both are history
    catalog.flush()
    info = catalog.get_run(run.id)
    assert info.status == "completed"
    assert [(change["old_status"], change["new_status"], change["forced"])
            for change in info.status_history] == [("running", "failed", True),
                                                   ("failed", "completed", False)]
    assert (info.status_history[1]["username"], info.status_history[1]["host"]) == (
        info.user, info.host)


def test_set_status_ends_a_running_run_whose_process_is_gone(
        catalog: tracker.Catalog) -> None:
    with catalog.start_run("orphan") as run:
        pass
    catalog.flush()
    con = duckdb.connect(str(catalog.path))  # as a killed process leaves it
    con.execute("UPDATE runs SET status = 'running', ended_at = NULL, pid = 2147483000 "
                "WHERE id = ?", [run.id])
    con.close()
    info = catalog.set_status(run.id, "failed")
    assert info.status == "failed" and info.ended_at is not None


def test_set_status_refuses_a_status_tracker_does_not_know(catalog: tracker.Catalog) -> None:
    with catalog.start_run("done") as run:
        pass
    with pytest.raises(ValueError, match=r"status must be one of 'running' \(its process"):
        catalog.set_status(run.id, "finished")


@pytest.mark.parametrize("force", [False, True])
def test_set_status_refuses_none_even_when_forced(catalog: tracker.Catalog,
                                                   force: bool) -> None:
    with catalog.start_run("done") as run:
        pass
    with pytest.raises(tracker.ArgumentError, match="status must be one of 'running'"):
        catalog.set_status(run.id, None, force=force)  # type: ignore[arg-type]
    assert catalog.get_run(run.id).status == "completed"


def test_purge_removes_a_runs_status_history(catalog: tracker.Catalog) -> None:
    with catalog.start_run("done") as run:
        pass
    catalog.set_status(run.id, "failed")
    catalog.delete_run(run.id)
    catalog.purge()
    assert catalog.sql("SELECT count(*) AS n FROM status_changes")["n"].iloc[0] == 0
def test_purge_keeps_contents_another_run_still_references(catalog: tracker.Catalog,
                                                           tmp_path: Path) -> None:
    data = b"the same model, written by two runs"
    for name in ("doomed", "survivor"):
        with catalog.start_run(name) as run:
            (tmp_path / f"{name}.bin").write_bytes(data)
            run.log_output(tmp_path / f"{name}.bin")
    catalog.flush()
    [content] = list(catalog.content_store.entries())
    os.utime(catalog.blob_dir / content.key, (time.time() - 7200,) * 2)  # past purge's grace
    catalog.delete_run(catalog.runs(name="doomed")["id"][0])
    catalog.purge()
    assert [entry.key for entry in catalog.content_store.entries()] == [content.key]
    catalog.delete_run(catalog.runs(name="survivor")["id"][0])
    catalog.purge()
    assert list(catalog.content_store.entries()) == []


def test_purge_spares_a_kept_content_a_run_is_about_to_reference(catalog: tracker.Catalog,
                                                                tmp_path: Path) -> None:
    data = b"weights a trashed run kept two days ago"
    (tmp_path / "old.bin").write_bytes(data)
    with catalog.start_run("trashed") as run:
        run.log_output(tmp_path / "old.bin")
    catalog.flush()
    [content] = list(catalog.content_store.entries())
    os.utime(catalog.blob_dir / content.key, (time.time() - 2 * 86400,) * 2)
    catalog.delete_run(run.id)
    # Another run's write prepares the same bytes (outside the lock) and finds them stored...
    (tmp_path / "new.bin").write_bytes(data)
    kept = contents.keep_file(catalog.content_store, str(tmp_path / "new.bin"),
                              contents.staging_dir(catalog.blob_dir), expected_hash=None)
    assert kept.key == content.key
    catalog.purge()  # ...and a purge runs before that write commits its reference
    assert (catalog.blob_dir / content.key).read_bytes() == data
