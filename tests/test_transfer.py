"""Pushing runs from a file catalog to a team catalog on a real PostgreSQL server, and pulling
them back (tracker/transfer.py, tracker/pg_exchange.py, tracker/record_diff.py)."""

from __future__ import annotations

import dataclasses
import json
import math
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import tracker
from tracker import cli, pg_exchange, retrieval, transfer

SECRET = "s3cr3t-Pw"  # trust authentication on the test socket: libpq sends it, never asked


@pytest.fixture
def secret_url(pg_url: str) -> str:
    """The test database's URL with a password in it."""
    return pg_url.replace("postgresql://postgres@", f"postgresql://postgres:{SECRET}@", 1)


def record_runs(catalog: tracker.Catalog, folder: Path) -> list[str]:
    """A featurize run whose output a train run reads (named ``train #12``), with params of
    several kinds, metric series (a NaN too), tags and labels; one more run in the trash."""
    data = folder / "features.csv"
    with catalog.start_run("featurize", params={"rows": 10}) as first:
        data.write_text("x\n1\n")
        first.log_output(data)
    with catalog.start_run("train", labels=["baseline"],
                           params={"lr": 0.1, "opt": "adam", "deep": {"layers": [64, 32]}}
                           ) as second:
        second.log_input(data)
        second.set_tags({"stage": "draft"})
        for step in range(5):
            second.log_metric("loss", math.nan if step == 3 else 1 / (step + 1), step=step)
        second.log_metric("acc", 0.9)
    with catalog.start_run("train") as third:
        third.log_param("lr", 0.2)
    catalog.flush()  # a change by reference reads without waiting long for the writer
    catalog.delete_run(third.id)
    catalog.update_run(second.id, name="train #12")  # as a notebook's runs are numbered
    with catalog.connect(write=True) as con:  # an executed cell, as a notebook's run has
        con.execute("INSERT INTO cells VALUES (?, 1, 1, 'c1', 'xxh3:1', 'x = 1', now(), 0.25, "
                    "false, 'ValueError', 'bad')", [second.id])
    return [first.id, second.id, third.id]


def same_runs(one: tracker.Catalog, other: tracker.Catalog) -> None:
    """Both catalogs give the same runs table (columns, dtypes, values), histories, artifacts
    and lineage, and each run's record (the file versions' kept contents aside: exports carry
    none, and status set by hand keeps its history only where it was set)."""
    def table(catalog: tracker.Catalog) -> pd.DataFrame:
        return catalog.runs(include_deleted=True, order_by="id").reset_index(drop=True)

    pd.testing.assert_frame_equal(table(one), table(other))
    for run_id in table(one)["id"]:
        pd.testing.assert_frame_equal(one.metric_history(run_id), other.metric_history(run_id))
        assert record_of(one, run_id) == record_of(other, run_id)
        pd.testing.assert_frame_equal(one.lineage(run_id, include_deleted=True),
                                      other.lineage(run_id, include_deleted=True))


def record_of(catalog: tracker.Catalog, run_id: str) -> tracker.RunInfo:
    info = catalog.get_run(run_id)
    artifacts = [{**row, "blob": None, "kept": None} for row in info.artifacts]
    return dataclasses.replace(info, artifacts=artifacts, status_history=[])


def test_a_round_trip_file_to_server_to_file_gives_the_same_runs(
        catalog: tracker.Catalog, pg_url: str, tmp_path: Path) -> None:
    ids = record_runs(catalog, tmp_path)
    pushed = catalog.push(pg_url)
    assert sorted(pushed.copied) == sorted(ids) and not pushed.updated
    server = tracker.Catalog(pg_url)
    back = tracker.Catalog(tmp_path / "back" / "catalog.duckdb")
    pulled = back.pull(pg_url)
    assert sorted(pulled.copied) == sorted(ids)
    same_runs(catalog, server)
    same_runs(catalog, back)
    assert list(server.runs()["name"]) == ["train #12", "featurize"]  # the trash stays there
    assert server.get_run(ids[2]).deleted_at == catalog.get_run(ids[2]).deleted_at
    assert server.get_run(ids[1]).tags == {"stage": "draft"}
    assert [cell["source"] for cell in server.get_run(ids[1]).cells] == ["x = 1"]
    features = server.artifacts(ids[0])
    assert list(features["version"]) == [1] and list(features["role"]) == ["output"]


def test_pushing_twice_adds_nothing(catalog: tracker.Catalog, pg_url: str,
                                   tmp_path: Path) -> None:
    ids = record_runs(catalog, tmp_path)
    catalog.push(pg_url)
    server = tracker.Catalog(pg_url)
    counts = server.sql("SELECT (SELECT count(*) FROM runs) AS runs, (SELECT count(*) FROM "
                        "metrics) AS metrics, (SELECT count(*) FROM params) AS params, "
                        "(SELECT count(*) FROM run_artifacts) AS links, "
                        "(SELECT count(*) FROM artifacts) AS artifacts")
    again = catalog.push(pg_url)
    assert (again.copied, again.updated, sorted(again.unchanged)) == ([], [], sorted(ids))
    pd.testing.assert_frame_equal(server.sql(
        "SELECT (SELECT count(*) FROM runs) AS runs, (SELECT count(*) FROM metrics) AS metrics, "
        "(SELECT count(*) FROM params) AS params, (SELECT count(*) FROM run_artifacts) AS links, "
        "(SELECT count(*) FROM artifacts) AS artifacts"), counts)
    assert "copied 0, updated 0, already up to date 3" in str(again)


def test_a_run_changed_after_a_push_is_brought_up_to_date(
        catalog: tracker.Catalog, pg_url: str, tmp_path: Path) -> None:
    ids = record_runs(catalog, tmp_path)
    catalog.push(pg_url)
    catalog.restore_run(ids[2])
    catalog.set_tag("stage", "final", run=ids[1])
    catalog.set_status(ids[0], "failed")
    pushed = catalog.push(pg_url)
    assert sorted(pushed.updated) == sorted(ids) and not pushed.copied
    server = tracker.Catalog(pg_url)
    same_runs(catalog, server)
    assert server.get_run(ids[1]).tags == {"stage": "final"}
    assert server.get_run(ids[0]).status == "failed"
    assert len(server.runs()) == 3  # out of the trash, and nothing duplicated
    assert catalog.push(pg_url).updated == []


def test_a_run_continued_locally_gains_only_its_new_history(
        catalog: tracker.Catalog, pg_url: str) -> None:
    with catalog.start_run("long") as run:
        run.log_metric("loss", 1.0, step=0)
    catalog.flush()
    catalog.push(pg_url)
    catalog.update_run(run.id, notes="continued")
    with catalog.connect(write=True) as con:  # a second metric point, as a resumed run logs
        con.execute("INSERT INTO metrics SELECT run_id, key, 0.5, 1, logged_at + INTERVAL 1 "
                    "SECOND FROM metrics WHERE run_id = ?", [run.id])
    catalog.push(pg_url)
    history = tracker.Catalog(pg_url).metric_history(run.id)
    assert list(history["step"]) == [0, 1] and list(history["value"]) == [1.0, 0.5]
    assert tracker.Catalog(pg_url).get_run(run.id).notes == "continued"


def test_push_where_copies_only_the_matching_runs(catalog: tracker.Catalog, pg_url: str,
                                                  tmp_path: Path) -> None:
    ids = record_runs(catalog, tmp_path)
    pushed = catalog.push(pg_url, where="params.lr = 0.1")
    assert pushed.copied == [ids[1]]
    assert list(tracker.Catalog(pg_url).runs(include_deleted=True)["id"]) == [ids[1]]


def test_pull_where_brings_runs_from_the_server(catalog: tracker.Catalog, pg_url: str,
                                                tmp_path: Path) -> None:
    ids = record_runs(catalog, tmp_path)
    catalog.push(pg_url)
    laptop = tracker.Catalog(tmp_path / "laptop" / "catalog.duckdb")
    assert laptop.pull(pg_url, where="name = 'featurize'").copied == [ids[0]]
    assert list(laptop.runs()["id"]) == [ids[0]]
    assert laptop.pull(pg_url).copied == [ids[2], ids[1]]
    tracker.Catalog(pg_url).restore_run(ids[2])  # changed on the server: pulled again
    assert laptop.pull(pg_url).updated == [ids[2]]
    assert laptop.get_run(ids[2]).deleted_at is None


def test_a_version_already_taken_on_the_server_is_numbered_after_it(
        catalog: tracker.Catalog, pg_url: str, tmp_path: Path) -> None:
    data = tmp_path / "data.csv"
    data.write_text("mine\n")
    with catalog.start_run("mine") as mine:
        mine.log_output(data)
    colleague = tracker.Catalog(tmp_path / "colleague" / "catalog.duckdb")
    data.write_text("theirs\n")
    with colleague.start_run("theirs") as theirs:
        theirs.log_output(data)
    catalog.flush()
    colleague.flush()
    colleague.push(pg_url)
    catalog.push(pg_url)
    server = tracker.Catalog(pg_url)
    assert list(server.artifacts(theirs.id)["version"]) == [1]
    assert list(server.artifacts(mine.id)["version"]) == [2]
    assert catalog.push(pg_url).unchanged == [mine.id]  # the renumbered version is the same


def test_the_commands_push_and_pull_and_never_print_the_password(
        catalog: tracker.Catalog, secret_url: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    ids = record_runs(catalog, tmp_path)
    local = ["--catalog", str(catalog.path)]
    assert cli.main([*local, "push", "--to", secret_url, "--where", "params.lr = 0.1"]) == 0
    assert cli.main([*local, "push", "--to", secret_url]) == 0
    laptop = str(tmp_path / "laptop.duckdb")
    assert cli.main(["--catalog", laptop, "pull", "--from", secret_url]) == 0
    out, err = capsys.readouterr()
    assert "copied 1, updated 0, already up to date 0" in out
    assert "copied 2, updated 0, already up to date 1" in out
    assert "copied 3, updated 0" in out
    assert SECRET not in out + err and "postgres:***@" in out
    assert sorted(tracker.Catalog(laptop).runs(include_deleted=True)["id"]) == sorted(ids)
    assert cli.main([*local, "push", "--to", secret_url.replace("@/", "@/nowhere", 1)]) != 0
    assert SECRET not in "".join(capsys.readouterr())


def test_a_run_the_server_cannot_hold_is_skipped_and_said_the_others_go(
        catalog: tracker.Catalog, pg_url: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    ids = record_runs(catalog, tmp_path)
    catalog.update_run(ids[0], notes="a NUL \x00 PostgreSQL's text refuses")
    pushed = catalog.push(pg_url)
    assert list(pushed.skipped) == [ids[0]] and "NUL" in pushed.skipped[ids[0]]
    assert sorted(pushed.copied) == sorted(ids[1:])
    assert sorted(tracker.Catalog(pg_url).runs(include_deleted=True)["id"]) == sorted(ids[1:])
    assert cli.main(["--catalog", str(catalog.path), "push", "--to", pg_url]) == 1
    assert f"skipped {ids[0]}: " in capsys.readouterr().out
    assert catalog.get_run(ids[0]).notes.startswith("a NUL")  # still here, nothing dropped


def test_a_push_to_another_file_catalog_is_a_merge_too(catalog: tracker.Catalog,
                                                       tmp_path: Path) -> None:
    ids = record_runs(catalog, tmp_path)
    other = tracker.Catalog(tmp_path / "other" / "catalog.duckdb")
    assert sorted(catalog.push(other).copied) == sorted(ids)
    catalog.set_tag("stage", "final", run=ids[1])
    again = catalog.push(other.path)
    assert again.updated == [ids[1]] and sorted(again.unchanged) == sorted([ids[0], ids[2]])
    same_runs(catalog, other)
    assert catalog.push(other).updated == []


@pytest.mark.parametrize("to_server", [False, True], ids=["file", "postgres"])
def test_a_tag_removed_after_a_push_is_removed_there_and_an_older_copy_cannot_bring_it_back(
        catalog: tracker.Catalog, tmp_path: Path, request: pytest.FixtureRequest,
        to_server: bool) -> None:
    target = request.getfixturevalue("pg_url") if to_server else \
        tracker.Catalog(tmp_path / "team" / "catalog.duckdb")
    ids = record_runs(catalog, tmp_path)
    laptop = tracker.Catalog(tmp_path / "laptop" / "catalog.duckdb")
    catalog.push(laptop)  # a copy made while the tag was still there
    catalog.push(target)
    catalog.delete_tag("stage", run=ids[1])
    assert catalog.push(target).updated == [ids[1]]
    team = tracker.Catalog(target) if to_server else target
    assert team.get_run(ids[1]).tags == {}
    assert laptop.get_run(ids[1]).tags == {"stage": "draft"}
    laptop.push(target)  # its tag was set before the removal: it loses to it
    assert team.get_run(ids[1]).tags == {}
    assert catalog.push(target).updated == []


def test_two_machines_pushing_the_same_runs_at_once_store_each_once(
        catalog: tracker.Catalog, pg_url: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transfer, "_CHUNK", 2)  # several transactions each, interleaving
    monkeypatch.setattr(pg_exchange, "_CHUNK", 2)
    ids = record_runs(catalog, tmp_path)
    laptop = tracker.Catalog(tmp_path / "laptop" / "catalog.duckdb")
    catalog.push(laptop)  # the same runs on a second machine
    reports: list[Any] = []
    pushes = [threading.Thread(target=lambda c=c: reports.append(c.push(pg_url)))
              for c in (catalog, laptop)]
    for thread in pushes:
        thread.start()
    for thread in pushes:
        thread.join(timeout=120)
    assert len(reports) == 2
    assert sorted(reports[0].copied + reports[1].copied) == sorted(ids)
    server = tracker.Catalog(pg_url)
    same_runs(catalog, server)
    counts = server.sql("SELECT (SELECT count(*) FROM metrics) AS m, "
                        "(SELECT count(*) FROM artifacts) AS a")
    assert counts.to_dict("records") == [{"m": 6, "a": 1}]


def _run_with_contents(catalog: tracker.Catalog, folder: Path) -> tuple[str, Path]:
    """A run that kept an output and stored its notebook, as a notebook's run does."""
    notebook = folder / "analysis.ipynb"
    notebook.write_text(json.dumps({
        "cells": [{"cell_type": "code", "execution_count": 1, "id": "c1", "metadata": {},
                   "outputs": [], "source": "weights = train()"}],
        "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    model = folder / "model.bin"
    with catalog.start_run("with contents") as run:
        model.write_bytes(b"the weights")
        run.log_output(model)
        run.record("stored", "notebook", str(notebook), time.time())
    catalog.flush()
    return run.id, model


def _server_holds(server: tracker.Catalog) -> tuple[int, list[str]]:
    blobs = server.sql("SELECT count(*) AS n FROM blobs")["n"][0]
    return int(blobs), sorted(entry.key for entry in server.content_store.entries())


def test_push_and_pull_carry_stored_notebooks_and_kept_contents(
        catalog: tracker.Catalog, secret_url: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # the old code copied their records only, marked 'not kept', and said so in a note
    run_id, model = _run_with_contents(catalog, tmp_path)
    assert catalog.content_store.location == str(catalog.blob_dir)  # this laptop keeps its own
    monkeypatch.setenv("TRACKER_STORE", str(tmp_path / "team-store"))  # the team's store
    server = tracker.Catalog(secret_url)
    pushed = catalog.push(server)
    assert pushed.copied == [run_id] and pushed.notes == []
    kept = catalog.get_artifact(model).blob
    assert _server_holds(server) == (1, [kept])
    with server.get_artifact(model).open() as stream:
        assert stream.read() == b"the weights"
    assert cli.main(["--catalog", secret_url, "notebook", run_id, "-o",
                     str(tmp_path / "from-server.ipynb")]) == 0
    assert "weights = train()" in (tmp_path / "from-server.ipynb").read_text()

    again = catalog.push(server)  # pushing twice adds nothing, bytes included
    assert (again.copied, again.updated, again.unchanged) == ([], [], [run_id])
    assert _server_holds(server) == (1, [kept])

    monkeypatch.delenv("TRACKER_STORE")  # another laptop, keeping in its own folder
    back = tracker.Catalog(tmp_path / "back" / "catalog.duckdb")
    assert back.pull(server).copied == [run_id]
    assert cli.main(["--catalog", str(back.path), "notebook", run_id, "-o",
                     str(tmp_path / "pulled.ipynb")]) == 0
    assert (tmp_path / "pulled.ipynb").read_text() == (tmp_path / "from-server.ipynb").read_text()
    assert back.get_artifact(model).restore(tmp_path / "pulled.bin").read_bytes() == \
        b"the weights"
    assert [entry.key for entry in back.content_store.entries()] == [kept]


def test_a_push_to_a_server_without_a_store_says_what_stayed_behind(
        catalog: tracker.Catalog, pg_url: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRACKER_STORE", raising=False)
    run_id, model = _run_with_contents(catalog, tmp_path)
    pushed = catalog.push(pg_url)
    assert pushed.copied == [run_id]
    [note] = pushed.notes
    assert note.startswith("1 kept content(s) stayed behind") and "set TRACKER_STORE" in note
    server = tracker.Catalog(pg_url)
    assert list(server.artifacts(run_id, role="output")["kept"]) == ["not kept"]
    with pytest.raises(tracker.ArtifactNotFoundError, match="not kept"):
        server.get_artifact(model).open()
    with retrieval.run_notebook(server, run_id).open() as stream:  # the notebook travels
        assert b"weights = train()" in stream.read()


def test_pushing_again_once_the_server_has_a_store_fills_in_what_was_not_kept(
        catalog: tracker.Catalog, pg_url: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # the old code left the run alone (nothing in its records changed): 'not kept' for good
    monkeypatch.delenv("TRACKER_STORE", raising=False)
    run_id, model = _run_with_contents(catalog, tmp_path)
    [version] = catalog.sql("SELECT id FROM artifacts WHERE key LIKE '%model.bin'")["id"]
    server = tracker.Catalog(pg_url)
    assert catalog.push(server).filled == []
    laptop = tracker.Catalog(tmp_path / "laptop" / "catalog.duckdb")  # pulled meanwhile
    assert laptop.pull(server).copied == [run_id]
    assert laptop.get_artifact(model).kept == "not kept"

    monkeypatch.setenv("TRACKER_STORE", str(tmp_path / "team-store"))  # the server gets one
    server = tracker.Catalog(pg_url)
    again = catalog.push(server)
    assert (again.unchanged, again.filled) == ([run_id], [version])
    assert "kept contents filled in 1" in str(again)
    with server.get_artifact(model).open() as stream:
        assert stream.read() == b"the weights"
    assert server.sql("SELECT count(*) AS n FROM artifacts WHERE key LIKE '%model.bin'"
                      )["n"][0] == 1  # filled in, not a second version
    assert catalog.push(server).filled == []  # once

    monkeypatch.delenv("TRACKER_STORE")  # the laptop keeps in its own folder: pull fills it
    pulled = laptop.pull(server)
    assert (pulled.unchanged, pulled.filled) == ([run_id], [version])
    assert laptop.get_artifact(model).restore(tmp_path / "back.bin").read_bytes() == \
        b"the weights"
    assert laptop.pull(server).filled == []


def test_pulling_from_a_file_that_is_not_there_creates_nothing(catalog: tracker.Catalog,
                                                               tmp_path: Path) -> None:
    missing = tmp_path / "misspelt.duckdb"
    with pytest.raises(tracker.NotACatalogError, match="no catalog at"):
        catalog.pull(missing)
    assert list(tmp_path.glob("misspelt*")) == []
