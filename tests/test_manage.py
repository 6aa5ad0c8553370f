"""Renaming, soft delete and restore, and purge: nothing is lost before a purge."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any

import backends
import duckdb
import pytest

import tracker
from tracker import events
from tracker.pg_catalog import PgCatalog
from tracker.storage import contents, pg_blobs, pg_writer, writer


@backends.WRITES_ON_BOTH
def test_update_run_renames_and_relabels(catalog: tracker.Catalog) -> None:
    with catalog.start_run("draft") as run:
        pass
    info = catalog.update_run(run.id, name="final", labels=["paper"], notes="figure 3")
    assert (info.name, info.labels, info.notes) == ("final", ("paper",), "figure 3")


@backends.WRITES_ON_BOTH
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


@backends.WRITES_ON_BOTH
def test_delete_runs_by_filter(catalog: tracker.Catalog) -> None:
    for lr in (0.1, 0.2, 0.3):
        with catalog.start_run(f"lr{lr}", params={"lr": lr}):
            pass
    deleted = catalog.delete_runs("params.lr >= 0.2")
    assert len(deleted) == 2
    assert list(catalog.runs()["name"]) == ["lr0.1"]
    with pytest.raises(ValueError, match="needs a filter"):
        catalog.delete_runs()


@backends.WRITES_ON_BOTH
def test_purge_removes_only_trashed_runs_older_than_asked(catalog: tracker.Catalog) -> None:
    with catalog.start_run("old") as old, catalog.start_run("new") as new:
        old.log_metric("m", 1.0)
    catalog.delete_runs(ids=[old.id, new.id])
    _execute(catalog, "UPDATE runs SET deleted_at = now() - INTERVAL '40 days' WHERE id = ?",
             [old.id])
    assert catalog.purge(older_than="30d")["runs"] == 1
    with pytest.raises(tracker.RunNotFoundError):
        catalog.get_run(old.id)
    assert int(catalog.sql("SELECT count(*) FROM metrics").iloc[0, 0]) == 0
    assert catalog.get_run(new.id).deleted
    catalog.purge()
    assert catalog.runs(include_deleted=True).empty


@backends.WRITES_ON_BOTH
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


@backends.WRITES_ON_BOTH
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


@backends.WRITES_ON_BOTH
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
    _execute(catalog, "UPDATE runs SET status = 'crashed' WHERE id = ?", [run_id])


@backends.WRITES_ON_BOTH
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


@backends.WRITES_ON_BOTH
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


@backends.WRITES_ON_BOTH
def test_set_status_does_not_end_a_run_whose_process_is_alive(
        catalog: tracker.Catalog) -> None:
    run = catalog.start_run("live")
    catalog.flush()
    with pytest.raises(ValueError, match=r"its process \(pid \d+ on .*\) is alive"):
        catalog.set_status(run.id, "failed")
    assert catalog.get_run(run.id).status == "running"
    run.end()


@backends.WRITES_ON_BOTH
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


@backends.WRITES_ON_BOTH
def test_set_status_ends_a_running_run_whose_process_is_gone(
        catalog: tracker.Catalog) -> None:
    with catalog.start_run("orphan") as run:
        pass
    catalog.flush()
    _execute(catalog, "UPDATE runs SET status = 'running', ended_at = NULL, pid = 2147483000 "
             "WHERE id = ?", [run.id])  # as a killed process leaves it
    info = catalog.set_status(run.id, "failed")
    assert info.status == "failed" and info.ended_at is not None


@backends.WRITES_ON_BOTH
def test_set_status_refuses_a_status_tracker_does_not_know(catalog: tracker.Catalog) -> None:
    with catalog.start_run("done") as run:
        pass
    with pytest.raises(ValueError, match=r"status must be one of 'running' \(its process"):
        catalog.set_status(run.id, "finished")


@backends.WRITES_ON_BOTH
@pytest.mark.parametrize("force", [False, True])
def test_set_status_refuses_none_even_when_forced(catalog: tracker.Catalog,
                                                   force: bool) -> None:
    with catalog.start_run("done") as run:
        pass
    with pytest.raises(tracker.ArgumentError, match="status must be one of 'running'"):
        catalog.set_status(run.id, None, force=force)  # type: ignore[arg-type]
    assert catalog.get_run(run.id).status == "completed"


@backends.WRITES_ON_BOTH
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


# -- the same changes on both back ends: runs written by each back end's writer ---------------


@pytest.fixture(autouse=True)
def _own_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A home of the test's own: a PostgreSQL catalog's redaction key is made under ~."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


T0 = 1_780_000_000.5
DEAD_PID = 2147483000  # no process has it: the run's process is gone
NOTEBOOK = b'{"cells": [], "nbformat": 4}'
BLOB = "sha256-" + "ab" * 32  # the stored copy's name, as delivery names it


def _stored_runs() -> list[events.Spooled]:
    """A completed run with a param, a metric, a tag and an environment; a crashed one; a
    running one whose process is this test's (alive); a running one whose process is gone."""
    here = {"host": socket.gethostname(), "username": "ann"}
    shapes: dict[str, list[events.Event]] = {
        "01r1": [events.Start("01r1", {"name": "alpha", "started_at": T0, "pid": 1, **here}),
                 events.Param("01r1", "lr", 0.1, "float", T0 + 1),
                 events.Metric("01r1", "acc", 0.9, 0, T0 + 2),
                 events.Tag("01r1", "stage", "dev", T0 + 2),
                 events.Env("01r1", "env1", {"python": "3.11"}),
                 events.Artifact("01r1", "notebook", "/work/analysis.ipynb",
                                 {"size": len(NOTEBOOK), "hash": BLOB.replace("-", ":"),
                                  "blob": BLOB}, T0 + 9, "stored"),
                 events.End("01r1", "completed", T0 + 10, None)],
        "01r2": [events.Start("01r2", {"name": "beta", "started_at": T0 + 100, "pid": 1,
                                       **here}),
                 events.Param("01r2", "lr", 0.2, "float", T0 + 101),
                 events.End("01r2", "crashed", T0 + 110, None)],
        "01r3": [events.Start("01r3", {"name": "live", "started_at": T0 + 200,
                                       "pid": os.getpid(), **here})],
        "01r4": [events.Start("01r4", {"name": "orphan", "started_at": T0 + 300,
                                       "pid": DEAD_PID, **here})],
    }
    return [events.Spooled(run_id, seq, event) for run_id, run in shapes.items()
            for seq, event in enumerate(run, 1)]


def _record(catalog: tracker.Catalog, batch: list[events.Spooled]) -> None:
    """Write ``batch`` as a recording process would, with the catalog's own writer."""
    if isinstance(catalog, PgCatalog):
        with catalog.store.connect(write=True) as con:
            assert pg_writer.apply(con, batch) == []
        return
    with catalog.store.connect(write=True) as con:
        assert writer.apply_all(con, batch, writer.keeper(catalog.store)) == []


def _execute(catalog: tracker.Catalog, sql: str, args: list[Any]) -> None:
    """Change the stored rows behind tracker's back (``?`` placeholders), as time or a killed
    process would."""
    if isinstance(catalog, PgCatalog):
        with catalog.store.connect(write=True) as con:
            con.execute(sql.replace("?", "%s"), args)
        return
    con = duckdb.connect(str(catalog.path))
    con.execute(sql, args)
    con.close()


@pytest.fixture(params=["file", "postgresql"])
def stored(request: pytest.FixtureRequest, tmp_path: Path) -> tracker.Catalog:
    """The runs of :func:`_stored_runs` in a catalog file, or in a PostgreSQL catalog."""
    catalog = tracker.Catalog(request.getfixturevalue("pg_url") if request.param ==
                              "postgresql" else tmp_path / "stored.duckdb")
    _record(catalog, _stored_runs())
    _store_blob(catalog, BLOB, NOTEBOOK)
    return catalog


def _store_blob(catalog: tracker.Catalog, key: str, data: bytes) -> None:
    """Store a run's notebook where its catalog keeps blobs, as a recording process does."""
    if isinstance(catalog, PgCatalog):
        with catalog.store.connect(write=True) as con:
            pg_blobs.store(con, key, data)
        return
    catalog.blob_dir.mkdir(parents=True, exist_ok=True)
    (catalog.blob_dir / key).write_bytes(data)


def _age_blob(catalog: tracker.Catalog, key: str, seconds: float) -> None:
    """Make the stored blob ``key`` look stored ``seconds`` ago."""
    if isinstance(catalog, PgCatalog):
        _execute(catalog, "UPDATE blobs SET stored_at = now() - make_interval(secs => ?) "
                          "WHERE key = ?", [seconds, key])
        return
    os.utime(catalog.blob_dir / key, (time.time() - seconds,) * 2)


def test_update_run_edits_a_stored_run(stored: tracker.Catalog) -> None:
    info = stored.update_run("01r1", name="final", labels=["paper"], notes="figure 3")
    assert (info.name, info.labels, info.notes) == ("final", ("paper",), "figure 3")
    assert list(stored.runs(name="final")["id"]) == ["01r1"]
    with pytest.raises(tracker.ArgumentError, match="^labels "):
        stored.update_run("01r1", labels=["ok", 5])
    assert stored.get_run("01r1").labels == ("paper",)  # the refused call changed nothing
    assert stored.update_run("01r1", notes="api_key=AKIAABCDEFGHIJKLMNOP").notes != \
        "api_key=AKIAABCDEFGHIJKLMNOP"  # an edit is redacted as a recorded note is
    if isinstance(stored, PgCatalog):  # with a key in the user's local folder, not the database
        assert Path(stored.store.key_file).is_file()
    with pytest.raises(tracker.RunNotFoundError):
        stored.update_run("nope", name="x")


def test_set_status_follows_the_rules_and_keeps_the_history(stored: tracker.Catalog) -> None:
    info = stored.set_status("01r2", "completed")
    assert (info.status, [(c["old_status"], c["new_status"], c["forced"])
                          for c in info.status_history]) == (
        "completed", [("crashed", "completed", False)])
    assert info.status_history[0]["username"] and info.status_history[0]["host"]
    with pytest.raises(ValueError, match="a completed run may be marked failed by hand, "
                                         "not running; pass force=True"):
        stored.set_status("01r1", "running")
    forced = stored.set_status("01r1", "running", force=True)
    assert (forced.status, forced.ended_at, forced.status_history[0]["forced"]) == (
        "running", None, True)
    with pytest.raises(ValueError, match=r"its process \(pid \d+ on .*\) is alive"):
        stored.set_status("01r3", "failed")
    ended = stored.set_status("01r4", "failed")  # its process is gone
    assert ended.status == "failed" and ended.ended_at is not None
    assert ended.duration is not None and ended.duration >= 0
    with pytest.raises(tracker.ArgumentError, match="status must be one of 'running'"):
        stored.set_status("01r4", None, force=True)  # type: ignore[arg-type]
    assert stored.set_status("01r4", "failed").status_history == ended.status_history
    assert list(stored.runs("status = 'failed'")["id"]) == ["01r4"]


def test_a_run_ending_after_a_status_set_by_hand_keeps_both(stored: tracker.Catalog) -> None:
    stored.set_status("01r3", "failed", force=True)
    _record(stored, [events.Spooled("01r3", 2, events.End("01r3", "completed", time.time(),
                                                           None))])
    info = stored.get_run("01r3")
    assert info.status == "completed"
    assert [(c["old_status"], c["new_status"], c["forced"]) for c in info.status_history] == [
        ("running", "failed", True), ("failed", "completed", False)]


def test_tags_of_a_stored_run_are_set_replaced_and_removed(stored: tracker.Catalog) -> None:
    stored.set_tag("source", "manual", run="01r2")
    stored.set_tags({"stage": "prod", "reviewed": True}, run="01r1")
    stored.delete_tag("source", run="01r2")
    stored.delete_tag("never set", run="01r2")  # nothing to do
    assert stored.get_run("01r1").tags == {"reviewed": "True", "stage": "prod"}
    assert stored.get_run("01r2").tags == {}
    assert list(stored.runs("tags.stage = 'prod'")["id"]) == ["01r1"]
    with pytest.raises(tracker.ArgumentError, match="tag key"):
        stored.set_tag("", "x", run="01r1")
    with pytest.raises(tracker.RunNotFoundError):
        stored.set_tag("k", "v", run="nope")


def test_delete_by_filter_and_purge_what_is_old_enough(stored: tracker.Catalog) -> None:
    assert stored.delete_runs("params.lr > 0.05") == ["01r1", "01r2"]
    assert stored.delete_runs("params.lr > 0.05") == []  # in the trash already
    assert list(stored.runs(deleted_only=True, order_by="name")["id"]) == ["01r1", "01r2"]
    _execute(stored, "UPDATE runs SET deleted_at = deleted_at - INTERVAL '40 days' "
                     "WHERE id = ?", ["01r1"])
    assert stored.purge(older_than="30d") == {"runs": 1, "blobs": 0, "shared": 0}
    with pytest.raises(tracker.RunNotFoundError):
        stored.get_run("01r1")
    for table in ("params", "metrics", "tags", "environments"):
        left = stored.sql(f"SELECT count(*) AS n FROM {table} WHERE "  # noqa: S608 - fixed
                          f"{'id' if table == 'environments' else 'run_id'} IN ('01r1', 'env1')")
        assert int(left["n"].iloc[0]) == 0, table
    assert stored.get_run("01r2").deleted
    assert stored.purge(ids=["01r2"])["runs"] == 1
    assert sorted(stored.runs(include_deleted=True)["id"]) == ["01r3", "01r4"]
    with pytest.raises(tracker.ArgumentError, match="^ids "):
        stored.purge(ids="01r3")


def test_diff_compares_two_stored_runs(stored: tracker.Catalog) -> None:
    diff = stored.diff("01r1", "01r2")
    assert diff.params_changed == {"lr": (0.1, 0.2)}
    assert [(m.key, m.a, m.b) for m in diff.metrics] == [("acc", 0.9, None)]


def test_the_notebook_stored_with_a_run_is_written_back(stored: tracker.Catalog, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    from tracker import cli, retrieval

    with retrieval.run_notebook(stored, "01r1").open() as stream:
        assert stream.read() == NOTEBOOK
    catalog = str(stored.store.shown if isinstance(stored, PgCatalog) else stored.path)
    assert cli.main(["--catalog", catalog, "notebook", "01r1", "-o",
                     str(tmp_path / "ran.ipynb")]) == 0
    assert (tmp_path / "ran.ipynb").read_bytes() == NOTEBOOK
    with pytest.raises(tracker.ArtifactNotFoundError, match="no stored notebook"):
        retrieval.run_notebook(stored, "01r2")


def test_purge_removes_the_notebooks_no_run_references(stored: tracker.Catalog) -> None:
    from tracker import retrieval

    _record(stored, [events.Spooled("01r2", 4, events.Artifact(  # the same notebook, again
        "01r2", "notebook", "/work/analysis.ipynb", {"size": len(NOTEBOOK),
                                                     "hash": BLOB.replace("-", ":"),
                                                     "blob": BLOB}, T0 + 109, "stored"))])
    _age_blob(stored, BLOB, 7200)
    stored.delete_run("01r1")
    assert stored.purge() == {"runs": 1, "blobs": 0, "shared": 0}  # 01r2 still references it
    with retrieval.run_notebook(stored, "01r2").open() as stream:
        assert stream.read() == NOTEBOOK
    stored.delete_run("01r2")
    _store_blob(stored, BLOB, NOTEBOOK)  # a write on its way reuses it: spared for an hour
    assert stored.purge()["blobs"] == 0
    _age_blob(stored, BLOB, 7200)
    assert stored.purge()["blobs"] == 1
    stored.restore_run("01r3")  # nothing else was touched
    assert sorted(stored.runs()["id"]) == ["01r3", "01r4"]


def test_delete_by_filter_judges_a_run_as_it_is_once_its_row_is_locked(pg_url: str) -> None:
    import threading

    import psycopg

    catalog = tracker.Catalog(pg_url)
    _record(catalog, _stored_runs())
    ending = psycopg.connect(pg_url, options="-c search_path=tracker")  # another process...
    ending.execute("UPDATE runs SET status = 'completed' WHERE id = '01r3'")  # ...ends a run
    deleted: list[list[str]] = []
    deleting = threading.Thread(target=lambda: deleted.append(
        catalog.delete_runs("status = 'running'")))
    deleting.start()
    with psycopg.connect(pg_url, autocommit=True) as watcher:
        for _ in range(200):  # until the delete waits for the ended run's row
            if watcher.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type "
                               "= 'Lock' AND application_name = 'tracker'").fetchone()[0]:
                break
            time.sleep(0.05)
    ending.commit()
    ending.close()
    deleting.join(30)
    # read first and deleted after, the ended run went to the trash with the running one
    assert deleted == [["01r4"]]
    assert not catalog.get_run("01r3").deleted and catalog.get_run("01r4").deleted


def test_a_kept_file_and_the_lineage_graph_are_read_back(
        stored: tracker.Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACKER_STORE", str(tmp_path / "shared"))  # a folder the team shares
    data = tmp_path / "a.csv"
    data.write_bytes(b"x,y\n1,2\n")
    kept = contents.keep_file(stored.content_store, str(data),
                              contents.staging_dir(tmp_path / "staging"), expected_hash=None)
    facts = {"size": kept.size, "hash": kept.fast_hash, "kept": "kept", "blob": kept.key}
    _record(stored, [
        events.Spooled("01r1", 8, events.Artifact("01r1", "output", str(data), facts,
                                                  T0 + 5, "api")),
        events.Spooled("01r2", 4, events.Artifact("01r2", "input", str(data), facts,
                                                  T0 + 105, "api"))])
    version = stored.get_artifact(data)
    assert (version.version, version.producer_run_id, version.runs) == (1, "01r1",
                                                                        ("01r1", "01r2"))
    assert version.read_dataframe()["y"].tolist() == [2]
    assert stored.get_artifact(data, run="01r2").version == 1
    with pytest.raises(tracker.ArtifactNotFoundError, match="no recorded version 2"):
        stored.get_artifact(data, version=2)
    graph = stored.lineage_graph("01r2")
    assert sorted(node.label for node in graph.nodes) == ["a.csv v1", "alpha", "beta"]
    assert "alpha" in graph.text() and "beta" in graph.text()


def test_purge_waits_for_a_writer_linking_a_version_of_its_runs_files(pg_url: str) -> None:
    import threading

    import psycopg

    catalog = tracker.Catalog(pg_url)
    _record(catalog, _stored_runs())
    catalog.delete_run("01r1")
    writing = psycopg.connect(pg_url)  # a writer about to link a run to the notebook's version
    writing.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                    ["path:/work/analysis.ipynb"])
    purged: list[dict[str, int]] = []
    purging = threading.Thread(target=lambda: purged.append(catalog.purge()))
    purging.start()
    purging.join(1.5)
    assert purged == []  # it waits for the writer, not removes the version under it
    writing.rollback()
    writing.close()
    purging.join(30)
    assert purged[0]["runs"] == 1


def test_purge_brings_the_catalogs_marks_in_a_shared_store_up_to_date(
        stored: tracker.Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tracker import shared_store

    monkeypatch.setenv("TRACKER_STORE", str(tmp_path / "team-store"))
    data = tmp_path / "model.bin"
    data.write_bytes(os.urandom(3000))
    me = shared_store.owner(stored)
    kept = contents.keep_file(stored.content_store, str(data),
                              contents.staging_dir(tmp_path / "staging"), expected_hash=None,
                              owner=me)
    _record(stored, [events.Spooled("01r1", 8, events.Artifact(
        "01r1", "output", str(data), {"size": kept.size, "hash": kept.fast_hash,
                                      "kept": "kept", "blob": kept.key}, T0 + 5, "api"))])
    assert shared_store.owner(stored) == me  # one id, kept with the catalog
    stored.delete_run("01r1")
    monkeypatch.setattr(shared_store, "SETTLE", 0)  # marks made by runs long committed
    assert stored.purge(store=True)["shared"] == 0  # stored within the grace period: stays
    assert me not in stored.content_store.marks().get(kept.key, {})  # unmarked
    monkeypatch.setattr(shared_store, "GRACE", -1)  # stored long ago
    assert stored.purge(store=True)["shared"] == 1
    assert list(stored.content_store.entries()) == []
