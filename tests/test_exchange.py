"""A run exported from one catalog is the same run when imported into another."""

from __future__ import annotations

import datetime as dt
import errno
import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import tracker
from tracker import descriptor, exchange
from tracker.hashing import hash_bytes


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_a_run_round_trips_between_catalogs(catalog: tracker.Catalog, tmp_path: Path,
                                            suffix: str) -> None:
    data = tmp_path / "in.csv"
    data.write_text("x\n1\n")
    with catalog.start_run("exported", labels=["keep"], params={"lr": 0.1, "tag": "ü"}) as run:
        run.set_tags({"source": "manual", "stage": "draft"})
        run.log_param("lr", 0.2)
        run.log_metric("loss", 0.5, step=1)
        run.log_metric("loss", math.nan, step=2)
        run.log_input(data)
    descriptor = catalog.export_run(run.id, tmp_path / f"run{suffix}")
    other = tracker.Catalog(tmp_path / "other" / "catalog.duckdb")
    assert other.import_run(descriptor) == run.id
    before, after = catalog.get_run(run.id), other.get_run(run.id)
    for field in ("name", "status", "labels", "params", "started_at", "ended_at", "tags"):
        assert getattr(after, field) == getattr(before, field), field
    # the file's record travels; its kept content does not (exports carry no contents)
    assert [{**row, "blob": None, "kept": "not kept"} for row in before.artifacts] == \
        after.artifacts
    assert after.artifacts[0]["via"] == "call"  # how the file was seen travels with it
    assert after.tags == {"source": "manual", "stage": "draft"}
    assert after.param_history["lr"] == before.param_history["lr"]
    assert math.isnan(after.metrics["loss"])
    history = other.metric_history(run.id)
    assert list(history["step"]) == [1, 2]
    found = other.runs("params.lr = 0.2 AND params.tag = 'ü' AND metrics.loss = 'NaN'")
    assert list(found["id"]) == [run.id]  # an imported run is found by its values
    with pytest.raises(tracker.TrackerError, match="already in"):
        other.import_run(descriptor)


def test_a_big_run_round_trips_row_for_row(catalog: tracker.Catalog, tmp_path: Path) -> None:
    with catalog.start_run("big", labels=["a", "b"]) as run:
        run.log_params({f"p{i}": i / 3 if i % 2 else f"v{i}" for i in range(120)})
        for step in range(200):
            run.log_metric("loss", math.nan if step == 7 else 1 / (step + 1), step=step)
    path = catalog.export_run(run.id, tmp_path / "big.json")
    other = tracker.Catalog(tmp_path / "other" / "catalog.duckdb")
    other.import_run(path)
    before, after = catalog.get_run(run.id), other.get_run(run.id)
    assert after.params == before.params and after.labels == before.labels
    assert after.started_at == before.started_at
    ours, theirs = catalog.metric_history(run.id), other.metric_history(run.id)
    assert list(theirs["step"]) == list(ours["step"]) == list(range(200))
    assert theirs["value"].equals(ours["value"]) and theirs["logged_at"].equals(ours["logged_at"])


def test_importing_something_else_is_refused(catalog: tracker.Catalog, tmp_path: Path) -> None:
    stray = tmp_path / "config.yaml"
    stray.write_text("learning_rate: 0.1\n")
    with pytest.raises(tracker.TrackerError, match="not a tracker run descriptor"):
        catalog.import_run(stray)


def test_a_broken_descriptor_is_a_clear_error(catalog: tracker.Catalog, tmp_path: Path) -> None:
    broken = tmp_path / "run.yaml"
    broken.write_text("format: [unclosed\n")
    with pytest.raises(tracker.TrackerError, match="not a tracker run descriptor"):
        catalog.import_run(broken)


# -- hostile descriptors -------------------------------------------------------------------


@pytest.fixture
def exported(catalog: tracker.Catalog, tmp_path: Path) -> dict[str, Any]:
    """A JSON descriptor of a run with a param, a metric and an input file, as a dict."""
    data = tmp_path / "in.csv"
    data.write_text("x\n1\n")
    with catalog.start_run("source", params={"lr": 0.1}) as run:
        run.log_metric("loss", 0.5, step=1)
        run.log_input(data)
    path = catalog.export_run(run.id, tmp_path / "run.json")
    return json.loads(path.read_text())


def _import(descriptor: dict[str, Any] | str, tmp_path: Path, suffix: str = ".json"
            ) -> tracker.Catalog:
    """Write ``descriptor`` and import it into a fresh catalog, which is returned."""
    path = tmp_path / f"hostile{suffix}"
    path.write_text(descriptor if isinstance(descriptor, str) else json.dumps(descriptor))
    target = tracker.Catalog(tmp_path / "target" / "catalog.duckdb")
    target.import_run(path)
    return target


def test_an_injected_key_never_reaches_sql(exported: dict[str, Any], tmp_path: Path) -> None:
    startup = tmp_path / "startup" / "00-x.py"
    startup.parent.mkdir()
    key = (f"id, status, started_at) VALUES ('z','completed',now()); COPY (SELECT 'print(1)') "
           f"TO '{startup}' (HEADER false, QUOTE ''); DROP TABLE metrics; INSERT INTO runs (notes")
    exported["run"] = {"id": None, key: "pwned"}
    target = tracker.Catalog(tmp_path / "target" / "catalog.duckdb")
    with target.start_run("already here") as run:
        run.log_metric("acc", 1.0)
    with pytest.raises(tracker.DescriptorError) as caught:
        _import(exported, tmp_path)
    assert caught.value.field is not None and caught.value.field.startswith("run.id, status")
    assert not startup.exists()
    assert list(target.runs()["name"]) == ["already here"]
    assert list(target.metric_history(run.id)["value"]) == [1.0]  # metrics is still there


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A change to a descriptor: ``value`` put at ``path`` (``"metrics.0.step"``)."""
    *parents, last = path.split(".")

    def change(descriptor: dict[str, Any]) -> None:
        node: Any = descriptor
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        node[int(last) if isinstance(node, list) else last] = value
    return change


@pytest.mark.parametrize(("change", "field"), [
    (_set("run.foo", 1), "run.foo"),
    (_set("metrics.0.step", "x"), "metrics[0].step"),
    (_set("metrics.0.step", 2**63), "metrics[0].step"),
    (_set("metrics.0.value", "big"), "metrics[0].value"),
    (_set("run.id", "../../etc/passwd"), "run.id"),
    (_set("run.parent_id", "x'); DROP TABLE runs; --"), "run.parent_id"),
    (_set("run.started_at", "yesterday"), "run.started_at"),
    (_set("run.status", None), "run.status"),
    (_set("run.status", "hacked"), "run.status"),
    (_set("run.pid", True), "run.pid"),
    (_set("run.pid", 2**40), "run.pid"),
    (_set("run.labels", ["a"] * 1001), "run.labels"),
    (_set("run.labels", [1]), "run.labels[0]"),
    (_set("run.name", "x" * 5000), "run.name"),
    (_set("run.notes", "\ud800"), "run.notes"),
    (_set("run.params", "[1]"), "run.params"),
    (_set("params.0.value", "{not json"), "params[0].value"),
    (_set("params.0", "lr"), "params[0]"),
    (_set("params.0.kind", "evil"), "params[0].kind"),
    (_set("artifacts.0.role", "secret"), "artifacts[0].role"),
    (_set("artifacts.0.via", "telepathy"), "artifacts[0].via"),
    (_set("artifacts.0.blob", "../../../.ssh/id_rsa"), "artifacts[0].blob"),
    (_set("cells", [{"seq": 1, "success": "yes"}]), "cells[0].success"),
    (_set("environment", [{"id": "a"}, {"id": "b"}]), "environment"),
    (_set("metrics", {"loss": 0.5}), "metrics"),
    (_set("extra", []), "extra"),
    (_set("run", []), "run"),
    (_set("version", "1"), "version"),
    (_set("version", 99), "version"),
    (_set("format", 1), "format"),
])
def test_a_malformed_descriptor_names_the_bad_field(
        exported: dict[str, Any], tmp_path: Path, change: Callable[[dict[str, Any]], None],
        field: str) -> None:
    change(exported)
    with pytest.raises(tracker.DescriptorError) as caught:
        _import(exported, tmp_path)
    assert caught.value.field == field
    assert str(tmp_path / "hostile.json") in str(caught.value)
    assert tracker.Catalog(tmp_path / "target" / "catalog.duckdb").runs().empty


def test_a_descriptor_without_via_imports_with_via_unknown(
        exported: dict[str, Any], tmp_path: Path) -> None:
    del exported["artifacts"][0]["via"]  # written before records said how they were seen
    imported = _import(exported, tmp_path).get_run(exported["run"]["id"])
    assert [artifact["via"] for artifact in imported.artifacts] == [None]


def test_a_descriptor_must_be_a_regular_file(
        catalog: tracker.Catalog, tmp_path: Path,
        call_near_fifo: Callable[[Path, Callable[[], Any]], Any]) -> None:
    with pytest.raises(tracker.DescriptorError, match="not a regular file"):
        catalog.import_run(tmp_path)
    with pytest.raises(tracker.DescriptorError, match="cannot read"):
        catalog.import_run(tmp_path / "missing.json")
    with pytest.raises(tracker.ArgumentError, match="must be a file path"):
        catalog.import_run(None)  # type: ignore[arg-type]
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    outcome = call_near_fifo(fifo, lambda: catalog.import_run(fifo))
    assert isinstance(outcome, tracker.DescriptorError)


def test_a_descriptor_must_be_utf8_and_not_too_big(catalog: tracker.Catalog, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("format: tracker-run\nrun: {name: caf\u00e9}\n".encode("latin-1"))
    with pytest.raises(tracker.DescriptorError, match="not UTF-8"):
        catalog.import_run(latin)
    big = tmp_path / "big.json"
    big.write_text(json.dumps({"format": "tracker-run", "padding": "x" * 2000}))
    monkeypatch.setattr(descriptor, "MAX_BYTES", 1024)
    with pytest.raises(tracker.DescriptorError, match="larger than"):
        catalog.import_run(big)


def test_yaml_aliases_are_refused_before_they_expand(catalog: tracker.Catalog,
                                                     tmp_path: Path) -> None:
    lines = ["format: tracker-run", "version: 1", 'a0: &a0 ["lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 5)}]" for i in range(1, 7)]
    lines += ["run: {id: 01m7zwkkx6hqabcd, status: completed, "
              "started_at: '2024-01-01T00:00:00+00:00', labels: *a6}"]
    laughs = tmp_path / "laughs.yaml"
    laughs.write_text("\n".join(lines) + "\n")  # 78k labels from a few hundred bytes
    with pytest.raises(tracker.DescriptorError, match="alias"):
        catalog.import_run(laughs)
    assert catalog.runs().empty


def test_yaml_with_too_many_nodes_is_refused(catalog: tracker.Catalog, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    many = tmp_path / "many.yaml"
    many.write_text("format: tracker-run\nversion: 1\nrun: {labels: [" + "a, " * 50 + "]}\n")
    monkeypatch.setattr(descriptor, "MAX_YAML_NODES", 40)
    with pytest.raises(tracker.DescriptorError, match="YAML nodes"):
        catalog.import_run(many)


def test_a_hand_written_yaml_descriptor_imports(catalog: tracker.Catalog,
                                                tmp_path: Path) -> None:
    hand = tmp_path / "hand.yaml"
    hand.write_text("format: tracker-run\nversion: 1\nrun:\n  id: 01m7zwkkx6hqabcd\n"
                    "  status: completed\n  started_at: 2024-01-01 10:00:00\n"
                    "metrics:\n- {key: loss, value: .inf, step: 1, "
                    "logged_at: '2024-01-01T10:00:01+00:00'}\n")
    assert catalog.import_run(hand) == "01m7zwkkx6hqabcd"
    run = catalog.get_run("01m7zwkkx6hqabcd")
    assert run.started_at == dt.datetime(2024, 1, 1, 10, tzinfo=dt.timezone.utc)
    assert list(catalog.metric_history(run.id)["value"]) == [math.inf]
    dated = tmp_path / "dated.yaml"
    dated.write_text(hand.read_text().replace("01m7zwkkx6hqabcd", "01m7zwkkx6hqabce")
                     + "environment: [{id: e1, created_at: 2024-01-01, data: {on: 2024-01-01}}]\n")
    with pytest.raises(tracker.DescriptorError) as caught:
        catalog.import_run(dated)
    assert caught.value.field == "environment[0].data"  # a YAML date is no JSON value


# -- exporting safely ----------------------------------------------------------------------


def test_export_replaces_a_file_only_when_asked(catalog: tracker.Catalog,
                                                tmp_path: Path) -> None:
    with catalog.start_run("kept") as run:
        pass
    target = tmp_path / "run.yaml"
    target.write_text("mine\n")
    with pytest.raises(tracker.ArgumentError, match="overwrite=True"):
        catalog.export_run(run.id, target)
    assert target.read_text() == "mine\n"
    assert catalog.export_run(run.id, target, overwrite=True) == target
    assert "format: tracker-run" in target.read_text()
    assert "&" not in target.read_text()  # no anchors: import refuses aliases
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


@pytest.mark.parametrize("name", [
    "catalog.duckdb", "catalog.duckdb.lock", "catalog.duckdb.wal", "catalog.duckdb.draft",
    "catalog.duckdb.key", "catalog.duckdb.spool/run.json", "catalog.duckdb.blobs/x.yaml",
    "other.duckdb",
    "link.json",
])
def test_export_never_overwrites_a_catalog(catalog: tracker.Catalog, tmp_path: Path,
                                           name: str) -> None:
    with catalog.start_run("kept") as run:
        pass
    tracker.Catalog(tmp_path / "other.duckdb").runs()  # another catalog, created
    (tmp_path / "link.json").symlink_to(catalog.path)
    catalog.flush()
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    with pytest.raises(tracker.ArgumentError, match="another path"):
        catalog.export_run(run.id, tmp_path / name, overwrite=True)
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
    assert list(catalog.runs()["name"]) == ["kept"]


def test_a_run_an_import_would_refuse_is_not_exported_and_a_push_skips_it(
        catalog: tracker.Catalog, tmp_path: Path) -> None:
    with catalog.start_run("old") as old:
        pass
    with catalog.start_run("new") as new:
        pass
    catalog.flush()
    with catalog.connect(write=True) as con:  # a name longer than tracker now records
        con.execute("UPDATE runs SET name = ? WHERE id = ?", ["n" * 5000, old.id])
    target = tmp_path / "old.json"
    with pytest.raises(tracker.DescriptorError, match=f"run {old.id} cannot be copied: "
                                                      "run.name is 5000 characters long"):
        catalog.export_run(old.id, target)
    assert not target.exists()
    pushed = catalog.push(tmp_path / "other.duckdb")
    assert pushed.copied == [new.id] and pushed.unchanged == []
    assert list(pushed.skipped) == [old.id] and "update_run" in pushed.skipped[old.id]
    catalog.update_run(old.id, name="old")  # what the message says to do
    assert catalog.push(tmp_path / "other.duckdb").copied == [old.id]


def test_a_run_too_large_for_one_descriptor_is_not_exported(
        catalog: tracker.Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with catalog.start_run("wide", params={f"p{i}": "v" * 100 for i in range(200)}) as run:
        pass
    # 200 params: ~22 KiB in the run's params, as much again as their rows: ~60 KiB in all
    monkeypatch.setattr(descriptor, "MAX_BYTES", 32 * 1024)
    with pytest.raises(tracker.DescriptorError, match="push it to the other catalog instead"):
        catalog.export_run(run.id, tmp_path / "wide.json")
    assert not (tmp_path / "wide.json").exists()


def test_a_failed_export_leaves_no_file(catalog: tracker.Catalog, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    with catalog.start_run("kept") as run:
        pass

    class FullDisk:
        """``os`` as tracker.exchange sees it, on a disk that fills up at the rename."""

        def __getattr__(self, name: str) -> Any:
            return getattr(os, name)

        @staticmethod
        def replace(*args: Any) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(exchange, "os", FullDisk())
    with pytest.raises(tracker.ArgumentError, match="No space left"):
        catalog.export_run(run.id, tmp_path / "run.json")
    assert not [p for p in tmp_path.iterdir() if "run.json" in p.name]


def test_an_import_is_recorded_as_logging_would_record_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A run exported with redaction off (or by an older tracker) still holds its secrets ...
    monkeypatch.setenv("TRACKER_REDACT", "0")
    clear = tracker.Catalog(tmp_path / "clear" / "catalog.duckdb")
    secret = "hunter2-hunter2"
    with clear.start_run("old", notes=f"password={secret}",
                         params={"db_password": secret, "lr": 0.1}) as run:
        run.set_tags({"api_token": secret, "note": f"password={secret}"})
    descriptor = clear.export_run(run.id, tmp_path / "old.json")
    assert secret in descriptor.read_text()
    # ... which importing, a recording like any other, redacts.
    monkeypatch.delenv("TRACKER_REDACT")
    other = tracker.Catalog(tmp_path / "other" / "catalog.duckdb")
    other.import_run(descriptor)
    info = other.get_run(run.id)
    assert info.params["lr"] == 0.1
    assert str(info.params["db_password"]).startswith("<redacted:str:")
    assert secret not in (info.notes or "")
    assert info.tags["api_token"].startswith("<redacted:str:")
    assert secret not in info.tags["note"]
    other.flush()
    stored = b"".join(path.read_bytes() for path in other.folder.rglob("*") if path.is_file())
    assert secret.encode() not in stored


def test_an_imported_environment_is_redacted(catalog: tracker.Catalog, tmp_path: Path) -> None:
    """An export edited by hand, or written with redaction off, may carry an environment with a
    git remote's token or a password: the import takes them out, as for every other field."""
    from tracker import _ids

    with catalog.start_run("with environment") as run:
        pass
    written = catalog.export_run(run.id, tmp_path / "run.json")
    data = json.loads(written.read_text())
    env_id = _ids.new_run_id()
    data["run"]["environment_id"] = env_id
    data["environment"] = [{"id": env_id, "created_at": data["run"]["started_at"], "data": {
        "git": {"remote": "https://alice:ghp_aB3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1dE3fG5@github.com/a/b"},
        "note": "password=hunter2hunter2", "python": "3.11.7"}}]
    written.write_text(json.dumps(data))
    other = tracker.Catalog(tmp_path / "other" / "catalog.duckdb")
    other.import_run(written)
    [stored] = other.sql("SELECT data FROM environments")["data"]
    assert "ghp_aB3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1dE3fG5" not in stored
    assert "hunter2hunter2" not in stored and json.loads(stored)["python"] == "3.11.7"


def test_a_version_1_descriptor_without_tags_imports(catalog: tracker.Catalog,
                                                     tmp_path: Path) -> None:
    with catalog.start_run("older") as run:
        pass
    written = catalog.export_run(run.id, tmp_path / "run.json")
    data = json.loads(written.read_text())
    assert data["version"] == 2
    del data["tags"]
    written.write_text(json.dumps({**data, "version": 1}))
    other = tracker.Catalog(tmp_path / "other" / "catalog.duckdb")
    assert other.get_run(other.import_run(written)).tags == {}


def test_a_removed_tag_travels_as_a_removal(catalog: tracker.Catalog, tmp_path: Path) -> None:
    with catalog.start_run("retagged") as run:
        run.set_tags({"stage": "draft", "owner": "ana"})
    catalog.delete_tag("stage", run=run.id)
    written = catalog.export_run(run.id, tmp_path / "run.json")
    data = json.loads(written.read_text())
    assert data["version"] == 3  # an older tracker, which cannot hold a removal, refuses it
    assert [(row["key"], row["value"]) for row in data["tags"]] == [("owner", "ana"),
                                                                    ("stage", None)]
    other = tracker.Catalog(tmp_path / "other" / "catalog.duckdb")
    other.import_run(written)
    assert other.get_run(run.id).tags == {"owner": "ana"}
    # the removal is kept, with its time, for a later merge of an older value to lose to
    assert other.sql("SELECT key, value IS NULL AS removed FROM tags ORDER BY key"
                     ).values.tolist() == [["owner", False], ["stage", True]]


def test_an_import_redacts_artifact_uris(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACKER_REDACT", "0")
    clear = tracker.Catalog(tmp_path / "clear" / "catalog.duckdb")
    with clear.start_run("old") as run:
        run.log_input("https://bob:Sup3rS3cret2@example.com/data.csv")
    descriptor = clear.export_run(run.id, tmp_path / "old.json")
    monkeypatch.delenv("TRACKER_REDACT")
    other = tracker.Catalog(tmp_path / "other" / "catalog.duckdb")
    other.import_run(descriptor)
    stored = other.sql("SELECT uri, key FROM artifacts")
    assert list(stored.columns) == ["uri", "key"] and len(stored) == 1
    for text in stored.iloc[0]:
        assert "Sup3rS3cret2" not in text and text.startswith("https://bob:<redacted:str:")


def test_an_imported_marker_is_kept_as_it_was(catalog: tracker.Catalog, tmp_path: Path) -> None:
    with catalog.start_run("redacted", params={"db_password": "hunter2-hunter2"}) as run:
        pass
    marker = catalog.get_run(run.id).params["db_password"]
    descriptor = catalog.export_run(run.id, tmp_path / "run.json")
    other = tracker.Catalog(tmp_path / "other" / "catalog.duckdb")
    other.import_run(descriptor)
    assert other.get_run(run.id).params["db_password"] == marker


@pytest.mark.parametrize("action", ["export", "import"])
def test_a_path_no_file_can_have_is_an_argument_error(catalog: tracker.Catalog, tmp_path: Path,
                                                      action: str) -> None:
    with catalog.start_run("kept") as run:
        pass
    with pytest.raises(tracker.ArgumentError, match="NUL"):
        if action == "export":
            catalog.export_run(run.id, str(tmp_path / "a\x00.json"))
        else:
            catalog.import_run(str(tmp_path / "a\x00.json"))


def test_a_bigint_param_that_is_not_hex_stays_text(exported: dict[str, Any],
                                                   tmp_path: Path) -> None:
    logged_at = exported["params"][0]["logged_at"]
    exported["params"].append({"key": "weird", "value": '"zz"', "kind": "bigint",
                               "logged_at": logged_at})
    target = _import(exported, tmp_path)
    assert target.get_run(exported["run"]["id"]).params["weird"] == "zz"


def _run_with_notebook(catalog: tracker.Catalog, tmp_path: Path, source: str) -> str:
    """A run with its notebook stored, as the extension stores it at the run's end."""
    notebook = tmp_path / "analysis.ipynb"
    notebook.write_text(json.dumps({
        "cells": [{"cell_type": "code", "execution_count": 1, "id": "c1", "metadata": {},
                   "outputs": [], "source": source}],
        "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    with catalog.start_run("with-notebook") as run:
        run.record("stored", "notebook", str(notebook), time.time())
    catalog.flush()
    return run.id


def _stored_notebook(catalog: tracker.Catalog, run_id: str) -> dict[str, Any]:
    [notebook] = [a for a in catalog.get_run(run_id).artifacts if a["role"] == "notebook"]
    return json.loads((catalog.blob_dir / notebook["blob"]).read_text())


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_the_stored_notebook_travels_with_the_run(catalog: tracker.Catalog, tmp_path: Path,
                                                 suffix: str) -> None:
    run_id = _run_with_notebook(catalog, tmp_path, "x = 41 + 1")
    path = catalog.export_run(run_id, tmp_path / f"run{suffix}")
    (tmp_path / "analysis.ipynb").unlink()  # the user's file is gone; the stored copy is not
    other = tracker.Catalog(tmp_path / "other" / "catalog.duckdb")
    other.import_run(path)
    assert _stored_notebook(other, run_id)["cells"][0]["source"] == "x = 41 + 1"
    assert other.artifacts(run_id, role="notebook")["hash"].tolist() == \
        catalog.artifacts(run_id, role="notebook")["hash"].tolist()


def test_a_carried_notebook_that_does_not_match_its_hash_is_refused(
        catalog: tracker.Catalog, tmp_path: Path) -> None:
    run_id = _run_with_notebook(catalog, tmp_path, "x = 1")
    path = catalog.export_run(run_id, tmp_path / "run.json")
    data = json.loads(path.read_text())
    data["notebooks"][0]["content"] = data["notebooks"][0]["content"].replace("x = 1", "rm()")
    path.write_text(json.dumps(data))
    other = tracker.Catalog(tmp_path / "other" / "catalog.duckdb")
    with pytest.raises(tracker.DescriptorError, match="does not match its blob name"):
        other.import_run(path)
    assert not other.blob_dir.exists() or not any(other.blob_dir.iterdir())


def test_a_carried_notebook_is_redacted_on_import(catalog: tracker.Catalog,
                                                  tmp_path: Path) -> None:
    secret = "sk-live-" + "a1B2c3D4e5F6g7H8i9J0k1L2"
    run_id = _run_with_notebook(catalog, tmp_path, "x = 1")
    path = catalog.export_run(run_id, tmp_path / "run.json")
    data = json.loads(path.read_text())  # as an older tracker, or a hand, may have written it
    content = data["notebooks"][0]["content"].replace("x = 1", f"api_key = '{secret}'")
    data["notebooks"][0] = {"blob": hash_bytes(content.encode()).replace(":", "-"),
                            "content": content}
    data["artifacts"][0]["blob"] = data["notebooks"][0]["blob"]
    path.write_text(json.dumps(data))
    other = tracker.Catalog(tmp_path / "other" / "catalog.duckdb")
    other.import_run(path)
    source = _stored_notebook(other, run_id)["cells"][0]["source"]
    assert secret not in source and source.startswith("api_key = ")


def test_a_notebook_too_big_to_carry_is_referred_to_by_hash_with_a_warning(
        catalog: tracker.Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_id = _run_with_notebook(catalog, tmp_path, "x = 1")
    monkeypatch.setattr(descriptor, "MAX_NOTEBOOK_BYTES", 100)
    with pytest.warns(tracker.TrackerWarning, match="more than the 0 MiB a descriptor carries"):
        path = catalog.export_run(run_id, tmp_path / "run.json")
    assert json.loads(path.read_text())["notebooks"] == []
    other = tracker.Catalog(tmp_path / "other" / "catalog.duckdb")
    other.import_run(path)
    [kept] = other.get_run(run_id).artifacts  # the record of it, without its content
    assert kept["hash"] == catalog.get_run(run_id).artifacts[0]["hash"]


def test_an_import_never_points_a_run_at_kept_contents_it_did_not_carry(
        catalog: tracker.Catalog, tmp_path: Path) -> None:
    target = tracker.Catalog(tmp_path / "target" / "catalog.duckdb")
    private = tmp_path / "private.csv"
    private.write_text("salary\n100\n")
    with target.start_run("victim") as victim:
        victim.log_output(private)
    target.flush()
    [theirs] = [a["blob"] for a in target.get_run(victim.id).artifacts]
    assert theirs  # kept in the target's store
    out = tmp_path / "out.csv"
    out.write_text("x\n1\n")
    with catalog.start_run("source") as run:
        run.log_output(out)
    path = catalog.export_run(run.id, tmp_path / "run.json")
    data = json.loads(path.read_text())
    data["artifacts"][0].update(blob=theirs, kept="kept")  # edited by hand
    path.write_text(json.dumps(data))
    target.import_run(path)
    [row] = target.get_run(run.id).artifacts
    assert (row["blob"], row["kept"]) == (None, "not kept")
    with pytest.raises(tracker.ArtifactNotFoundError, match="not kept"):
        target.get_artifact(out, run=run.id).open()


def _exported_with_contents(catalog: tracker.Catalog, tmp_path: Path,
                            data: bytes) -> tuple[str, Path, Path]:
    """A run that kept ``data`` as model.bin, exported with its contents; (id, output, file)."""
    output = tmp_path / "model.bin"
    output.write_bytes(data)
    with catalog.start_run("trained") as run:
        run.log_output(output)
    path = catalog.export_run(run.id, tmp_path / "run.json", contents=True)
    return run.id, output, path


def test_kept_contents_travel_with_an_export_that_carries_them(
        catalog: tracker.Catalog, tmp_path: Path) -> None:
    data = os.urandom(3000)
    run_id, output, path = _exported_with_contents(catalog, tmp_path, data)
    [key] = [entry.name for entry in (tmp_path / "run.json.contents").iterdir()]
    assert key == catalog.get_artifact(output).blob
    output.unlink()  # gone from disk: only the export has its bytes now
    other = tracker.Catalog(tmp_path / "other" / "catalog.duckdb")
    other.import_run(path)
    kept = other.get_artifact(output, run=run_id)
    assert (kept.kept, kept.blob) == ("kept", key)
    with kept.open() as stream:
        assert stream.read() == data
    with pytest.raises(tracker.ArgumentError, match="already exists"):
        catalog.export_run(run_id, tmp_path / "run.json", contents=True)
    plain = tracker.Catalog(tmp_path / "plain" / "catalog.duckdb")
    plain.import_run(catalog.export_run(run_id, tmp_path / "bare.json"))  # no contents: as before
    assert plain.get_artifact(output, run=run_id).kept == "not kept"


def _tamper_bytes(folder: Path) -> None:
    [carried] = list(folder.iterdir())
    carried.chmod(0o600)
    carried.write_bytes(os.urandom(carried.stat().st_size))  # same size, other bytes


def _tamper_link(folder: Path) -> None:
    [carried] = list(folder.iterdir())
    target = folder.parent / "elsewhere.bin"
    carried.rename(target)
    carried.symlink_to(target)  # the right bytes, but through a link


def _tamper_hash(folder: Path) -> None:
    descriptor_path = folder.parent / "run.json"
    data = json.loads(descriptor_path.read_text())
    data["artifacts"][0]["hash"] = "xxh3_128:" + "0" * 32  # the descriptor lies about it
    descriptor_path.write_text(json.dumps(data))


@pytest.mark.parametrize("tamper", [_tamper_bytes, _tamper_link, _tamper_hash])
def test_a_carried_content_is_taken_in_only_if_it_proves_to_be_what_it_claims(
        catalog: tracker.Catalog, tmp_path: Path, tamper: Callable[[Path], None]) -> None:
    run_id, _, path = _exported_with_contents(catalog, tmp_path, os.urandom(3000))
    tamper(tmp_path / "run.json.contents")
    other = tracker.Catalog(tmp_path / "other" / "catalog.duckdb")
    with pytest.raises(tracker.DescriptorError, match="nothing was imported"):
        other.import_run(path)
    with pytest.raises(tracker.RunNotFoundError):
        other.get_run(run_id)
    assert list(other.content_store.entries()) == []


def test_a_version_whose_content_the_export_lacks_is_imported_not_kept(
        catalog: tracker.Catalog, tmp_path: Path) -> None:
    run_id, output, path = _exported_with_contents(catalog, tmp_path, os.urandom(3000))
    for carried in (tmp_path / "run.json.contents").iterdir():
        carried.unlink()
    other = tracker.Catalog(tmp_path / "other" / "catalog.duckdb")
    other.import_run(path)
    assert other.get_artifact(output, run=run_id).kept == "not kept"


def test_an_empty_label_list_stays_empty(catalog: tracker.Catalog, tmp_path: Path) -> None:
    # the import turned [] into NULL, so a round trip changed the runs table's labels column
    with catalog.start_run("bare") as run:
        pass
    other = tracker.Catalog(tmp_path / "other" / "catalog.duckdb")
    other.import_run(catalog.export_run(run.id, tmp_path / "run.json"))
    assert list(other.runs()["labels"]) == list(catalog.runs()["labels"]) == [[]]
