"""The IPython extension in-process, with a real InteractiveShell running real cells."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import backends
import pytest
from IPython.core.interactiveshell import ExecutionResult, InteractiveShell
from jupyter_client.manager import KernelManager

import tracker
from tracker import ipython, magics, values
from tracker.errors import TrackerWarning
from tracker.hashing import hash_bytes
from tracker.models import RunInfo
from tracker.notebook import read_notebook
from tracker.storage.lock import locked


def write_notebook(path: Path, *cells: tuple[str, str] | str,
                   metadata: dict[str, Any] | None = None) -> Path:
    """A v4.5 notebook: a ``# Title`` markdown cell, then code cells (``(tag, source)`` pairs
    for tagged ones). Cell ids are ``c0``, ``c1``... in order."""
    body: list[dict[str, Any]] = [
        {"cell_type": "markdown", "id": "title", "metadata": {}, "source": "# A test notebook"}]
    for index, cell in enumerate(cells):
        tag, source = cell if isinstance(cell, tuple) else ("", cell)
        body.append({"cell_type": "code", "id": f"c{index}", "execution_count": None,
                     "metadata": {"tags": [tag]} if tag else {}, "outputs": [],
                     "source": source})
    document = {"cells": body, "metadata": {"tracker": metadata} if metadata else {},
                "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


@pytest.fixture
def notebook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A notebook with a ``parameters`` cell, named through ``TRACKER_NOTEBOOK``."""
    path = write_notebook(tmp_path / "analysis.ipynb", "%load_ext tracker",
                          ("parameters", "lr = 0.1\nepochs = 3"), "result = lr * epochs")
    monkeypatch.setenv("TRACKER_NOTEBOOK", str(path))
    return path


@pytest.fixture(autouse=True)
def _default_catalog(request: pytest.FixtureRequest,
                     monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """In a test marked for both back ends (tests/backends.py), the session's default catalog
    is the suite's file, then a fresh PostgreSQL database (``$TRACKER_CATALOG``)."""
    on_server = backends.on_server(request)
    if on_server:
        monkeypatch.setenv("TRACKER_CATALOG", request.getfixturevalue("pg_url"))
        tracker.use_catalog(None)
    yield
    if on_server:  # sent before the session's server stops, not into its shutdown
        with contextlib.suppress(tracker.CatalogError):
            tracker.flush()


def run(ip: InteractiveShell, source: str, **options: Any) -> ExecutionResult:
    """Execute one cell as a front end would (stored in history, numbered)."""
    return ip.run_cell(source, store_history=True, **options)


def loaded(ip: InteractiveShell) -> tracker.Run:
    """Load the extension from a cell, as a user does, and return the session's run."""
    assert run(ip, "%load_ext tracker").success
    session = ipython.session_of(ip)
    assert session is not None and session.run is not None
    return session.run


def recorded(run_id: str) -> RunInfo:
    """The run as the catalog holds it once everything logged so far is written."""
    tracker.flush()
    return tracker.get_run(run_id)


def session_run(ip: InteractiveShell) -> tracker.Run:
    session = ipython.session_of(ip)
    assert session is not None and session.run is not None
    return session.run


# --------------------------------------------------------------------------- one session, one run


@backends.WRITES_ON_BOTH
def test_loading_starts_a_run_named_after_the_notebook(ip: InteractiveShell,
                                                       notebook: Path) -> None:
    started = loaded(ip)
    info = recorded(started.id)
    assert info.name == "analysis #1"  # numbered, so the notebook's runs tell apart
    assert info.status == "running"
    assert info.notebook == str(notebook)
    assert info.notebook_name == "analysis"
    assert info.notebook_title == "A test notebook"
    assert info.notebook_hash.startswith("xxh3_128:")
    assert tracker.current_run() is started


@backends.WRITES_ON_BOTH
def test_loading_again_keeps_the_same_run(ip: InteractiveShell, notebook: Path) -> None:
    first = loaded(ip)
    assert run(ip, "%load_ext tracker").success
    tracker.load_ipython_extension(ip)  # what re-running a setup cell may do
    assert session_run(ip) is first
    assert len(tracker.runs()) == 1


@backends.WRITES_ON_BOTH
def test_reload_ext_keeps_the_same_run_and_its_hooks(ip: InteractiveShell,
                                                     notebook: Path) -> None:
    first = loaded(ip)
    assert run(ip, "%reload_ext tracker").success
    assert run(ip, "x = 1").success
    assert session_run(ip) is first
    info = recorded(first.id)
    assert [cell["source"] for cell in info.cells] == [
        "%load_ext tracker", "%reload_ext tracker", "x = 1"]
    assert len(tracker.runs()) == 1


@backends.WRITES_ON_BOTH
def test_unloaded_extension_records_nothing_until_loaded_again(ip: InteractiveShell,
                                                               notebook: Path) -> None:
    first = loaded(ip)
    assert run(ip, "%unload_ext tracker").success
    assert run(ip, "hidden = 1").success
    assert run(ip, "%load_ext tracker").success
    assert session_run(ip) is first
    sources = [cell["source"] for cell in recorded(first.id).cells]
    assert "hidden = 1" not in sources
    assert sources[-1] == "%load_ext tracker"


# --------------------------------------------------------------------------- parameters and cells


@backends.WRITES_ON_BOTH
def test_parameters_cell_values_are_recorded_with_history(ip: InteractiveShell,
                                                          notebook: Path) -> None:
    started = loaded(ip)
    assert run(ip, "lr = 0.1\nepochs = 3").success
    assert run(ip, "not_a_param = 5").success
    assert run(ip, "lr = 0.01\nepochs = 3").success  # the user edits the cell and re-runs it
    info = recorded(started.id)
    assert info.params == {"lr": 0.01, "epochs": 3}
    assert [value for _, value in info.param_history["lr"]] == [0.1, 0.01]
    assert [value for _, value in info.param_history["epochs"]] == [3]


def test_a_saved_cell_assigning_parameter_names_is_not_the_parameters_cell(
        ip: InteractiveShell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_notebook(tmp_path / "schedule.ipynb", "%load_ext tracker",
                          ("parameters", "lr = 0.1"), "lr = lr / 2")
    monkeypatch.setenv("TRACKER_NOTEBOOK", str(path))
    started = loaded(ip)
    assert run(ip, "lr = 0.1").success
    assert run(ip, "lr = lr / 2").success  # a later cell of the notebook, not a new value
    assert run(ip, "lr = 0.3").success  # the parameters cell, edited and not saved yet
    info = recorded(started.id)
    assert [value for _, value in info.param_history["lr"]] == [0.1, 0.3]


def test_parameters_cell_is_found_by_cell_id(ip: InteractiveShell, notebook: Path) -> None:
    started = loaded(ip)
    # The front end sends the id of the tagged cell; the source was edited and not saved yet.
    assert run(ip, "lr = 0.5\nepochs = 9", cell_id="c1").success
    info = recorded(started.id)
    assert info.params == {"lr": 0.5, "epochs": 9}
    assert info.cells[-1]["cell_id"] == "c1"


@backends.WRITES_ON_BOTH
def test_papermill_injected_cell_overrides_the_defaults(ip: InteractiveShell,
                                                        notebook: Path) -> None:
    started = loaded(ip)
    assert run(ip, "lr = 0.1\nepochs = 3").success
    assert run(ip, "# Parameters\nepochs = 10\n").success
    info = recorded(started.id)
    assert info.params == {"lr": 0.1, "epochs": 10}
    assert [value for _, value in info.param_history["epochs"]] == [3, 10]


@backends.WRITES_ON_BOTH
def test_cells_are_recorded_in_order_with_errors(ip: InteractiveShell, notebook: Path) -> None:
    started = loaded(ip)
    assert run(ip, "a = 1").success
    assert not run(ip, "raise ValueError('bad value')").success
    assert not run(ip, "def broken(:").success  # fails before it executes
    assert run(ip, "b = a + 1").success
    cells = recorded(started.id).cells
    assert [cell["seq"] for cell in cells] == [1, 2, 3, 4, 5]
    assert [cell["execution_count"] for cell in cells] == [1, 2, 3, 4, 5]
    assert [cell["source"] for cell in cells] == [
        "%load_ext tracker", "a = 1", "raise ValueError('bad value')", "def broken(:",
        "b = a + 1"]
    assert [cell["success"] for cell in cells] == [True, True, False, False, True]
    assert (cells[2]["error_type"], cells[2]["error_message"]) == ("ValueError", "bad value")
    assert cells[3]["error_type"] == "SyntaxError"
    assert cells[1]["error_type"] is None and cells[1]["error_message"] is None
    assert cells[1]["source_hash"] != cells[4]["source_hash"]
    assert all(cell["source_hash"].startswith("xxh3_128:") for cell in cells)
    assert cells[1]["duration"] >= 0 and cells[1]["started_at"] is not None
    assert all(cell["cell_id"] is None for cell in cells)


@pytest.mark.slow
def test_a_cell_longer_than_the_catalog_keeps_is_recorded_cut_and_the_run_exports(
        ip: InteractiveShell, notebook: Path, tmp_path: Path) -> None:
    started = loaded(ip)
    source = 'table = """' + "row,1\n" * (values.MAX_TEXT // 6) + '"""'  # pasted data
    assert run(ip, source).success
    cell = recorded(started.id).cells[1]
    assert len(cell["source"]) <= values.MAX_TEXT
    assert cell["source"].startswith('table = """row,1\n')
    kept, note = cell["source"].rsplit("\n", 1)
    assert source.startswith(kept) and f"{len(source) - len(kept):,} more characters" in note
    assert cell["source_hash"] == hash_bytes(source.encode())  # of the whole cell
    tracker.export_run(started.id, tmp_path / "run.json")  # refused when a text is too long
    assert (tmp_path / "run.json").stat().st_size > values.MAX_TEXT // 2


@backends.WRITES_ON_BOTH
def test_secrets_in_cells_and_parameters_are_redacted(ip: InteractiveShell,
                                                       tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_notebook(tmp_path / "login.ipynb", "%load_ext tracker",
                          ("parameters", "db_password = 'hunter2'\nrows = 10"))
    monkeypatch.setenv("TRACKER_NOTEBOOK", str(path))
    started = loaded(ip)
    assert run(ip, "db_password = 'hunter2'\nrows = 10").success
    assert not run(ip, "raise PermissionError(f'login refused: {db_password}')").success
    info = recorded(started.id)
    marker = info.params["db_password"]
    assert marker.startswith("<redacted:str:") and info.params["rows"] == 10
    assert info.cells[1]["source"] == f'db_password = "{marker}"\nrows = 10'
    assert info.cells[2]["error_message"] == f"login refused: {marker}"
    assert "hunter2" not in json.dumps(info.cells, default=str)
    # The notebook's code is hashed as redacted: the clear code's hash would confirm a guess.
    assert info.notebook_hash != read_notebook(str(path)).code_hash


def test_a_notebook_can_turn_redaction_off(ip: InteractiveShell, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_notebook(tmp_path / "open.ipynb", "%load_ext tracker",
                          ("parameters", "db_password = 'hunter2'"),
                          metadata={"redact": False})
    monkeypatch.setenv("TRACKER_NOTEBOOK", str(path))
    started = loaded(ip)
    assert run(ip, "db_password = 'hunter2'").success
    info = recorded(started.id)
    assert info.params["db_password"] == "hunter2"
    assert info.cells[1]["source"] == "db_password = 'hunter2'"


@backends.WRITES_ON_BOTH
def test_run_status_follows_the_last_executed_cell(ip: InteractiveShell,
                                                   notebook: Path) -> None:
    started = loaded(ip)
    assert not run(ip, "1 / 0").success
    assert run(ip, "ok = True").success
    assert not run(ip, "1 / 0").success
    ipython.session_of(ip).end()
    info = recorded(started.id)
    assert info.status == "failed"
    assert info.ended_at is not None


@backends.WRITES_ON_BOTH
def test_a_run_failed_by_its_last_cell_has_that_cell_s_error(ip: InteractiveShell,
                                                             notebook: Path) -> None:
    started = loaded(ip)
    assert run(ip, "x = 1").success
    failing = run(ip, "1 / 0")
    ipython.session_of(ip).end()
    info = recorded(started.id)
    assert info.error == f"[{failing.execution_count}] ZeroDivisionError: division by zero"
    assert list(tracker.runs("error is not null")["id"]) == [started.id]


@backends.WRITES_ON_BOTH
def test_a_cell_that_succeeds_after_a_failure_leaves_no_error(ip: InteractiveShell,
                                                              notebook: Path) -> None:
    started = loaded(ip)
    assert not run(ip, "1 / 0").success
    assert run(ip, "x = 1").success
    ipython.session_of(ip).end()
    assert (recorded(started.id).status, recorded(started.id).error) == ("completed", None)


def test_saved_notebook_is_stored_and_never_written(ip: InteractiveShell,
                                                    notebook: Path) -> None:
    before = (notebook.read_bytes(), notebook.stat().st_mtime_ns)
    started = loaded(ip)
    assert run(ip, "lr = 0.2\nepochs = 1").success
    assert run(ip, "%tracker end").success
    info = recorded(started.id)
    assert info.status == "completed"
    stored = [a for a in info.artifacts if a["role"] == "notebook"]
    assert [(a["uri"], a["via"]) for a in stored] == [(str(notebook), "stored")]
    blob = tracker.default_catalog().blob_dir / stored[0]["blob"]
    assert blob.read_bytes() == before[0]
    assert (notebook.read_bytes(), notebook.stat().st_mtime_ns) == before


def test_environment_is_recorded(ip: InteractiveShell, notebook: Path) -> None:
    started = loaded(ip)
    environment = None
    for _ in range(50):  # captured on a background thread, written with a later flush
        environment = recorded(started.id).environment
        if environment:
            break
        run(ip, "pass")
    assert environment is not None
    assert environment["python"].startswith("3.")
    assert {"platform", "host", "packages"} <= set(environment)


# --------------------------------------------------------------------------- files


def test_files_read_and_written_become_inputs_and_outputs(ip: InteractiveShell,
                                                          notebook: Path,
                                                          tmp_path: Path) -> None:
    (tmp_path / "raw.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    started = loaded(ip)
    assert run(ip, "from pathlib import Path\ntext = Path('raw.csv').read_text()").success
    assert run(ip, "Path('clean.csv').write_text(text.upper())").success
    assert run(ip, "again = Path('clean.csv').read_text()").success  # its own output: no input
    info = recorded(started.id)
    assert [a["uri"] for a in info.inputs] == [str(tmp_path / "raw.csv")]
    assert [a["uri"] for a in info.outputs] == [str(tmp_path / "clean.csv")]
    assert all(a["hash"].startswith("xxh3_128:") for a in info.inputs + info.outputs)
    assert info.outputs[0]["producer_run_id"] == started.id
    assert [a["via"] for a in info.inputs + info.outputs] == ["open", "open"]


@pytest.mark.parametrize("size", [100, 3 << 20], ids=["small", "past-the-read-hash-limit"])
def test_an_input_overwritten_in_place_keeps_the_content_that_was_read(
        ip: InteractiveShell, notebook: Path, tmp_path: Path, size: int) -> None:
    old = b"x" * (size - 1) + b" "
    (tmp_path / "data.txt").write_bytes(old)
    cleaner = loaded(ip)
    assert run(ip, "from pathlib import Path\nraw = Path('data.txt').read_bytes()").success
    assert run(ip, "Path('data.txt').write_bytes(raw.strip())").success
    assert run(ip, '%tracker new reader').success
    reader = session_run(ip)
    assert run(ip, "again = Path('data.txt').read_bytes()").success
    info = recorded(cleaner.id)
    assert [(a["version"], a["hash"]) for a in info.inputs] == [(1, hash_bytes(old))]
    assert sorted((a["version"], a["hash"], a["producer_run_id"]) for a in info.outputs) == [
        (2, hash_bytes(old.strip()), cleaner.id)]
    upstream = tracker.lineage(reader.id)
    assert list(upstream[["direction", "run_id", "version"]].itertuples(index=False)) == [
        ("upstream", cleaner.id, 2)]


def test_a_file_saved_again_in_a_later_cell_is_recorded_with_each_content(
        ip: InteractiveShell, notebook: Path, tmp_path: Path) -> None:
    trainer = loaded(ip)
    assert run(ip, "from pathlib import Path\nPath('model.pkl').write_bytes(b'epoch 1')").success
    tracker.flush()  # the first save is in the catalog before the second
    assert run(ip, "Path('model.pkl').write_bytes(b'epoch 2')").success
    assert run(ip, '%tracker new evaluate').success
    evaluate = session_run(ip)
    assert run(ip, "model = Path('model.pkl').read_bytes()").success
    info = recorded(trainer.id)
    assert sorted((a["version"], a["hash"], a["producer_run_id"]) for a in info.outputs) == [
        (1, hash_bytes(b"epoch 1"), trainer.id), (2, hash_bytes(b"epoch 2"), trainer.id)]
    upstream = tracker.lineage(evaluate.id)
    assert list(upstream[["run_id", "version"]].itertuples(index=False)) == [(trainer.id, 2)]


def test_capture_settings_from_notebook_metadata(ip: InteractiveShell, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_notebook(tmp_path / "quiet.ipynb", "x = 1",
                          metadata={"capture": {"exclude": ["*.log"]}})
    monkeypatch.setenv("TRACKER_NOTEBOOK", str(path))
    (tmp_path / "notes.log").write_text("ignored", encoding="utf-8")
    (tmp_path / "data.txt").write_text("kept", encoding="utf-8")
    started = loaded(ip)
    assert run(ip, "from pathlib import Path\n"
                   "Path('notes.log').read_text(), Path('data.txt').read_text()").success
    assert [a["uri"] for a in recorded(started.id).inputs] == [str(tmp_path / "data.txt")]


def test_capture_includes_folders_named_in_metadata(
        ip: InteractiveShell, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory,
        monkeypatch: pytest.MonkeyPatch) -> None:
    shared, scratch = tmp_path_factory.mktemp("shared"), tmp_path_factory.mktemp("scratch")
    (shared / "big.csv").write_text("1\n", encoding="utf-8")
    (scratch / "tmp.csv").write_text("2\n", encoding="utf-8")
    path = write_notebook(tmp_path / "wide.ipynb", "x = 1",
                          metadata={"capture": {"include": [f"{shared}/**"]}})
    monkeypatch.setenv("TRACKER_NOTEBOOK", str(path))
    started = loaded(ip)
    # Temp folders are left out by default; the include brings one back.
    assert run(ip, f"from pathlib import Path\nPath({str(shared / 'big.csv')!r}).read_text()\n"
                   f"Path({str(scratch / 'tmp.csv')!r}).read_text()").success
    assert [a["uri"] for a in recorded(started.id).inputs] == [str(shared / "big.csv")]


def test_capture_can_be_disabled_in_metadata(ip: InteractiveShell, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_notebook(tmp_path / "off.ipynb", "x = 1",
                          metadata={"capture": {"enabled": False}})
    monkeypatch.setenv("TRACKER_NOTEBOOK", str(path))
    (tmp_path / "data.txt").write_text("kept", encoding="utf-8")
    started = loaded(ip)
    assert run(ip, "from pathlib import Path\n"
                   "Path('data.txt').read_text(), Path('out.txt').write_text('x')").success
    assert recorded(started.id).artifacts == []


def test_notebook_metadata_sets_project_name_labels_and_catalog(
        ip: InteractiveShell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_notebook(tmp_path / "meta.ipynb", "x = 1", metadata={
        "project": "vision", "name": "baseline", "labels": ["gpu", "nightly"],
        "catalog": "shared/runs.duckdb"})
    monkeypatch.setenv("TRACKER_NOTEBOOK", str(path))
    monkeypatch.delenv("TRACKER_CATALOG")
    started = loaded(ip)
    catalog = tracker.default_catalog()
    assert catalog.path == tmp_path / "shared" / "runs.duckdb"
    catalog.flush()
    info = catalog.get_run(started.id)
    assert (info.project, info.name, info.labels) == ("vision", "baseline", ("gpu", "nightly"))
    assert info.key == f"tracker://vision/runs/{started.id}"


# --------------------------------------------------------------------------- the %tracker magic


def test_status_magic_prints_the_run(ip: InteractiveShell, notebook: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    started = loaded(ip)
    run(ip, "lr = 0.1\nepochs = 3")
    capsys.readouterr()
    assert run(ip, "%tracker").success
    out = capsys.readouterr().out
    assert f"run {started.id} 'analysis #1' (running)" in out
    assert str(notebook) in out
    assert "lr=0.1, epochs=3" in out
    assert "cells:    2 recorded" in out


def test_status_magic_says_the_number_is_to_come_while_the_catalog_is_locked(
        ip: InteractiveShell, notebook: Path, capsys: pytest.CaptureFixture[str]) -> None:
    catalog = tracker.default_catalog()
    catalog.runs()  # the catalog exists
    with locked(str(catalog.path), write=True, timeout=10):  # another process writing, say
        started = loaded(ip)
        capsys.readouterr()
        assert run(ip, "%tracker").success
        waiting = capsys.readouterr().out
    assert run(ip, "%tracker").success
    assert "'analysis (its number is given when the catalog is written)' (running)" in waiting
    assert f"run {started.id} 'analysis #1' (running)" in capsys.readouterr().out
    assert started.name == "analysis #1"


@backends.WRITES_ON_BOTH
def test_runs_of_one_notebook_are_numbered_in_order(ip: InteractiveShell,
                                                   notebook: Path) -> None:
    # A run from before names were numbered keeps its name; numbering continues after it.
    tracker.default_catalog().start_run("analysis").end()
    first = loaded(ip)
    assert run(ip, "%tracker new").success
    second = session_run(ip)
    assert run(ip, '%tracker new "by hand"').success
    named = session_run(ip)

    names = [recorded(r.id).name for r in (first, second, named)]
    assert names == ["analysis #2", "analysis #3", "by hand"]


@backends.WRITES_ON_BOTH
def test_new_magic_ends_the_run_and_starts_another(ip: InteractiveShell, notebook: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    first = loaded(ip)
    assert not run(ip, "1 / 0").success
    assert run(ip, '%tracker new "second try"').success
    second = session_run(ip)
    assert second is not first and second.name == "second try"
    assert f"started run {second.id} 'second try'" in capsys.readouterr().out
    assert run(ip, "y = 2").success
    assert recorded(first.id).status == "failed"
    info = recorded(second.id)
    assert info.status == "running"
    assert info.notebook == str(notebook)
    assert [cell["seq"] for cell in info.cells] == [1, 2]
    assert info.cells[-1]["source"] == "y = 2"


@backends.WRITES_ON_BOTH
def test_end_magic_ends_the_run_and_stops_recording(ip: InteractiveShell, notebook: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    started = loaded(ip)
    assert run(ip, "%tracker end").success
    assert f"ended run {started.id} (completed)" in capsys.readouterr().out
    assert run(ip, "after = 1").success
    assert run(ip, "%tracker end").success
    assert "no run is open" in capsys.readouterr().out
    info = recorded(started.id)
    assert info.status == "completed"
    assert "after = 1" not in [cell["source"] for cell in info.cells]


@backends.WRITES_ON_BOTH
def test_param_magic_parses_python_literals(ip: InteractiveShell, notebook: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    started = loaded(ip)
    assert run(ip, "%tracker param lr=0.01 layers=[64,32] note='two words' flag=True model=cnn"
               ).success
    assert run(ip, "%tracker param broken").success
    assert "expected KEY=VALUE, got 'broken'" in capsys.readouterr().out
    info = recorded(started.id)
    assert info.params == {"lr": 0.01, "layers": [64, 32], "note": "two words", "flag": True,
                           "model": "cnn"}


@backends.WRITES_ON_BOTH
def test_tag_magic_sets_replaces_and_deletes_text_tags(ip: InteractiveShell, notebook: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    started = loaded(ip)
    assert run(ip, "%tracker tag source=manual stage=draft 'note=two words' n=3").success
    assert run(ip, "%tracker tag stage=final").success
    assert run(ip, "%tracker tag --delete source").success
    assert run(ip, "%tracker tag ok=1 broken").success  # one bad word: nothing is set
    assert "got 'broken'; no tag set" in capsys.readouterr().out
    info = recorded(started.id)
    assert info.tags == {"n": "3", "note": "two words", "stage": "final"}


def test_input_and_output_magics_record_files_and_uris(ip: InteractiveShell, notebook: Path,
                                                       tmp_path: Path) -> None:
    (tmp_path / "given.csv").write_text("1\n", encoding="utf-8")
    (tmp_path / "made.csv").write_text("2\n", encoding="utf-8")
    started = loaded(ip)
    assert run(ip, "%tracker input given.csv s3://bucket/raw.parquet").success
    assert run(ip, "%tracker output made.csv").success
    info = recorded(started.id)
    assert sorted(a["uri"] for a in info.inputs) == [
        str(tmp_path / "given.csv"), "s3://bucket/raw.parquet"]
    assert [a["uri"] for a in info.outputs] == [str(tmp_path / "made.csv")]
    assert {a["via"] for a in info.artifacts} == {"call"}


def test_runs_magic_returns_the_runs_table(ip: InteractiveShell, notebook: Path) -> None:
    from tracker.widgets import RunTable

    loaded(ip)
    tracker.flush()
    result = run(ip, "%tracker runs status = 'running'")
    table = result.result
    try:
        assert isinstance(table, RunTable)
        assert table.catalog.path == tracker.default_catalog().path
        assert table.total == 1
    finally:
        table.close()


def test_unknown_magic_command_prints_the_usage(ip: InteractiveShell, notebook: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    loaded(ip)
    capsys.readouterr()
    assert run(ip, "%tracker frobnicate").success
    out = capsys.readouterr().out
    assert "unknown command 'frobnicate'" in out
    for command in magics.SUBCOMMANDS[1:]:
        assert f"%tracker {command}" in out
    assert run(ip, "%tracker help").success
    assert "unknown" not in capsys.readouterr().out


def test_failing_magic_warns_instead_of_raising(ip: InteractiveShell, notebook: Path) -> None:
    loaded(ip)
    with pytest.warns(TrackerWarning, match="%tracker new"):
        result = run(ip, "%tracker new 'unclosed")
    assert result.success


def test_param_magic_keeps_a_literal_with_spaces_whole(ip: InteractiveShell,
                                                       notebook: Path) -> None:
    started = loaded(ip)
    assert run(ip, "%tracker param d={'k': 1} pair=(1, 'a b') name=\"x y\"").success
    assert recorded(started.id).params == {"d.k": 1, "pair": [1, "a b"], "name": "x y"}


@pytest.mark.parametrize("line", ["d={'k': 1", "a=1 b='unclosed", "a=1 broken",
                                  "a=1 d={'k' 1}"])
def test_param_magic_with_an_error_records_nothing(ip: InteractiveShell, notebook: Path,
                                                   capsys: pytest.CaptureFixture[str],
                                                   line: str) -> None:
    started = loaded(ip)
    capsys.readouterr()
    assert run(ip, f"%tracker param {line}").success
    assert "nothing was recorded" in capsys.readouterr().out
    assert recorded(started.id).params == {}


@pytest.mark.parametrize("command", ["input", "output"])
def test_input_and_output_magics_without_a_path_say_how(ip: InteractiveShell, notebook: Path,
                                                        capsys: pytest.CaptureFixture[str],
                                                        command: str) -> None:
    started = loaded(ip)
    capsys.readouterr()
    assert run(ip, f"%tracker {command}").success
    assert f"%tracker {command} PATH" in capsys.readouterr().out
    assert recorded(started.id).artifacts == []


@backends.WRITES_ON_BOTH
def test_a_log_call_after_end_starts_the_next_run_and_says_so(
        ip: InteractiveShell, notebook: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = loaded(ip)
    assert run(ip, "%tracker end").success
    assert run(ip, "before = 1").success
    capsys.readouterr()
    assert run(ip, "import tracker\n"
                   "for step in range(3): tracker.log_metric('loss', 1.0 / (step + 1), step)"
               ).success
    second = session_run(ip)
    out = capsys.readouterr().out
    assert out.count("started run") == 1
    assert f"started run {second.id} 'analysis #2'" in out and f"run {first.id} was ended" in out
    assert run(ip, "after = 2").success
    info = recorded(second.id)
    assert info.status == "running" and info.metrics == {"loss": pytest.approx(1 / 3)}
    assert [cell["source"] for cell in info.cells][-1] == "after = 2"
    assert "before = 1" not in [cell["source"] for cell in recorded(first.id).cells]
    assert len(tracker.runs()) == 2


@backends.WRITES_ON_BOTH
def test_param_magic_after_end_starts_the_next_run_and_says_so(
        ip: InteractiveShell, notebook: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = loaded(ip)
    assert run(ip, "%tracker end").success
    capsys.readouterr()
    assert run(ip, "%tracker param lr=0.5").success
    second = session_run(ip)
    assert second is not first
    assert f"%tracker param started run {second.id}" in capsys.readouterr().out
    assert recorded(second.id).params == {"lr": 0.5}
    assert recorded(first.id).params == {}


# ------------------------------------------------------------------------ never break the notebook


def test_unusable_catalog_path_warns_once_and_cells_still_run(
        ip: InteractiveShell, notebook: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "blocker").write_text("a file where the catalog's folder should be")
    monkeypatch.setenv("TRACKER_CATALOG", str(tmp_path / "blocker" / "catalog.duckdb"))
    tracker.use_catalog(None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = [run(ip, source) for source in (
            "%load_ext tracker", "x = 20", "print(x + 1)",
            "import pathlib\npathlib.Path('out.txt').write_text('ok')", "x * 2", "%tracker")]
    assert all(result.success for result in results)
    assert "21" in capsys.readouterr().out
    assert results[4].result == 40
    assert (tmp_path / "out.txt").read_text() == "ok"
    tracker_warnings = [w for w in caught if issubclass(w.category, TrackerWarning)]
    assert len(tracker_warnings) == 1, [str(w.message) for w in caught]
    (tmp_path / "blocker").unlink()  # let the run end cleanly


def test_internal_error_in_a_hook_warns_once_and_cells_still_run(
        ip: InteractiveShell, notebook: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loaded(ip)

    def broken(*args: Any, **kwargs: Any) -> dict[str, Any]:
        raise RuntimeError("internal trouble")

    monkeypatch.setattr(ipython, "_cell_record", broken)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = [run(ip, source) for source in ("y = 6 * 7", "y", "z = y + 1")]
    assert [result.success for result in results] == [True, True, True]
    assert results[1].result == 42 and ip.user_ns["z"] == 43
    messages = [str(w.message) for w in caught if issubclass(w.category, TrackerWarning)]
    assert len(messages) == 1 and "internal trouble" in messages[0]


def test_failure_to_start_keeps_the_shell_usable(ip: InteractiveShell, notebook: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise OSError("no catalog today")

    monkeypatch.setattr(ipython, "_choose_catalog", broken)
    with pytest.warns(TrackerWarning, match="no catalog today"):
        assert run(ip, "%load_ext tracker").success
    assert run(ip, "w = 'still fine'").success and ip.user_ns["w"] == "still fine"


# --------------------------------------------------------------------------- finding the notebook


def test_plain_shell_without_notebook_warns_exactly_once(ip: InteractiveShell) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        started = loaded(ip)
        run(ip, "x = 1")
        run(ip, "%tracker new")
        run(ip, "y = 2")
    messages = [str(w.message) for w in caught if issubclass(w.category, TrackerWarning)]
    assert len(messages) == 1 and "no notebook found" in messages[0]
    info = recorded(started.id)
    assert info.name == "ipython-session" and info.notebook is None


def test_a_notebook_named_without_folder_or_suffix_keeps_its_parameters_and_title(
        ip: InteractiveShell, notebook: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(notebook.parent)
    monkeypatch.setenv("TRACKER_NOTEBOOK", "analysis")
    started = loaded(ip)
    assert run(ip, "lr = 0.2\nepochs = 3", cell_id="c1").success
    info = recorded(started.id)
    assert (info.notebook, info.notebook_title) == (str(notebook), "A test notebook")
    assert info.params == {"lr": 0.2, "epochs": 3}


def test_a_notebook_name_that_matches_no_file_warns_once(ip: InteractiveShell, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TRACKER_NOTEBOOK", "my-nb")
    with pytest.warns(TrackerWarning, match="names no notebook") as caught:
        started = loaded(ip)
        assert run(ip, "x = 1").success
    assert len(caught) == 1
    info = recorded(started.id)
    assert (info.name, info.notebook) == ("my-nb #1", str(tmp_path / "my-nb.ipynb"))


@pytest.mark.parametrize("variable", ["__session__", "__vsc_ipynb_file__"])
def test_front_end_variable_names_the_notebook(ip: InteractiveShell, tmp_path: Path,
                                               variable: str) -> None:
    # JupyterLab / Notebook 7 set __session__; VS Code sets __vsc_ipynb_file__.
    path = write_notebook(tmp_path / "from_front_end.ipynb", "%load_ext tracker")
    ip.user_ns[variable] = str(path)
    started = loaded(ip)
    info = recorded(started.id)
    assert (info.name, info.notebook) == ("from_front_end #1", str(path))


def test_kernel_finds_its_notebook_in_a_later_cell(ip: InteractiveShell, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # Two notebooks start with the same cell, so the loading cell alone is ambiguous.
    write_notebook(tmp_path / "other.ipynb", "%load_ext tracker", "other = 1")
    write_notebook(tmp_path / "mine.ipynb", "%load_ext tracker", "mine = 1  # unique",
                   metadata={"project": "found-late", "labels": ["late"]})
    monkeypatch.setattr(ip, "kernel", object(), raising=False)  # as ipykernel's shell has
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        started = loaded(ip)
        assert started.name == "ipython-session"
        run(ip, "mine = 1  # unique")
    assert not [w for w in caught if issubclass(w.category, TrackerWarning)]
    assert started.name == "mine"
    info = recorded(started.id)
    assert (info.name, info.project, info.labels) == ("mine #1", "found-late", ("late",))
    assert info.notebook == str(tmp_path / "mine.ipynb")
    assert info.notebook_title == "A test notebook"


def test_kernel_warns_after_the_last_try_to_find_its_notebook(
        ip: InteractiveShell, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ip, "kernel", object(), raising=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded(ip)
        counts = []
        for index in range(ipython._LOCATE_TRIES + 2):
            run(ip, f"cell_{index} = {index}")
            counts.append(sum(issubclass(w.category, TrackerWarning) for w in caught))
    assert counts == [0] * (ipython._LOCATE_TRIES - 1) + [1, 1, 1]


def test_nbval_run_ends_after_the_notebook_s_last_cell(ip: InteractiveShell, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    write_notebook(tmp_path / "checked.ipynb", "%load_ext tracker", "a = 1",
                   "raise KeyError('k')", "")
    monkeypatch.setenv("PYTEST_CURRENT_TEST", "checked.ipynb::Cell 0 (setup)")
    started = loaded(ip)
    run(ip, "a = 1")
    assert not started.ended
    run(ip, "raise KeyError('k')")
    assert started.ended  # nbval kills the kernel now: no atexit will end it
    info = recorded(started.id)
    assert info.status == "failed"
    assert any(a["role"] == "notebook" for a in info.artifacts)
    assert os.path.basename(info.notebook) == "checked.ipynb"


@pytest.mark.parametrize(("metadata", "problem"), [
    ({"labels": 5}, "labels must be"), ({"labels": True}, "labels must be"),
    ({"catalog": 123}, "catalog must be"),
    ({"catalog": "postgresql://u@h/db"}, "catalog 'postgresql://u@h/db' is a server"),
    ({"project": ["a", {"b": None}]}, "project must be"),
    ({"capture": {"enabled": "no", "include": 7}}, "capture.include must be"),
    ("not an object", "metadata.tracker must be an object"),
])
def test_unusable_notebook_metadata_warns_once_and_the_run_is_recorded(
        ip: InteractiveShell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        metadata: Any, problem: str) -> None:
    path = write_notebook(tmp_path / "odd.ipynb", "x = 1", metadata=metadata)
    monkeypatch.setenv("TRACKER_NOTEBOOK", str(path))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("TRACKER_CATALOG")  # so that metadata.tracker.catalog would count
    tracker.use_catalog(None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        started = loaded(ip)
        assert run(ip, "y = 6 * 7").success and ip.user_ns["y"] == 42
        assert run(ip, "%tracker new").success  # a second run: no second warning
    messages = [str(w.message) for w in caught if issubclass(w.category, TrackerWarning)]
    assert len(messages) == 1 and problem in messages[0], messages
    catalog = tracker.default_catalog()
    assert catalog.path == tmp_path / "home" / ".tracker" / "catalog.duckdb"
    info = recorded(started.id)
    assert (info.name, info.project, info.labels) == ("odd #1", "default", ())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "ipython", "odd.ipynb"]


def test_a_postgresql_catalog_records_the_notebook_run(
        ip: InteractiveShell, notebook: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # recorded into the server (tracker/storage/pg_recovery.py); the old code refused it
    monkeypatch.setenv("TRACKER_CATALOG", pg_url.replace("postgres@", "postgres:s3cr3t@", 1))
    tracker.use_catalog(None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert run(ip, "%load_ext tracker").success
        assert run(ip, "y = 6 * 7").success and ip.user_ns["y"] == 42
    assert [str(w.message) for w in caught if issubclass(w.category, TrackerWarning)] == []
    started = tracker.current_run()
    assert started is not None
    tracker.flush()
    info = tracker.Catalog(pg_url).get_run(started.id)
    assert (info.notebook, info.status) == (str(notebook), "running")
    assert [cell["source"] for cell in info.cells] == ["%load_ext tracker", "y = 6 * 7"]
    assert run(ip, "%tracker end").success
    tracker.flush()  # here, not after the session's last test has stopped the server
    assert tracker.Catalog(pg_url).get_run(started.id).status == "completed"


def test_a_shutdown_request_after_unloading_ends_the_run_as_completed(
        ip: InteractiveShell, notebook: Path) -> None:
    started = loaded(ip)
    assert run(ip, "%unload_ext tracker").success
    session = ipython.session_of(ip)
    assert session is not None
    session.at_shutdown()  # what the kernel's shutdown request calls
    info = recorded(started.id)
    assert (info.status, info.error) == ("completed", None)
    assert stored_notebooks(info) == [str(notebook)]


# ------------------------------------------------------------ real kernels: the shutdown request

JUPYTER = str(Path(sys.executable).parent / "jupyter")
# A child of the kernel that ignores the signals ipykernel stops its children with: the kernel
# cannot exit before the client's patience runs out (2.5 s, then SIGTERM), as with joblib's
# workers. Its pid is added to stubborn.pid, for the test to end it.
STUBBORN_CHILD = (
    "import subprocess, sys\n"
    "child = subprocess.Popen([sys.executable, '-c', 'import signal, time; "
    "signal.signal(signal.SIGTERM, signal.SIG_IGN); signal.signal(signal.SIGINT, signal.SIG_IGN); "
    "print(flush=True); time.sleep(60)'], stdout=subprocess.PIPE)\n"
    "child.stdout.readline()  # its signals are ignored from now on\n"
    "with open('stubborn.pid', 'a') as handle:\n"
    "    handle.write(f'{child.pid}\\n')")

CURRENT_RUN = "import tracker\nprint(tracker.current_run().id)"


@pytest.fixture
def kernel_env() -> dict[str, str]:
    """The environment of a real kernel: the test's catalog, nothing naming a notebook."""
    env = dict(os.environ)
    for name in ("TRACKER_NOTEBOOK", "PYTEST_CURRENT_TEST", "JPY_SESSION_NAME"):
        env.pop(name, None)
    return env


def stubborn_children(folder: Path) -> list[int]:
    pids = folder / "stubborn.pid"
    return [int(pid) for pid in pids.read_text().split()] if pids.exists() else []


@contextlib.contextmanager
def stubborn_children_ended(folder: Path) -> Iterator[None]:
    """Kill the stubborn children the block's kernels started, once the block is over."""
    try:
        yield
    finally:
        for pid in stubborn_children(folder):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def stored_notebooks(info: RunInfo) -> list[str]:
    """The paths of the notebooks stored with the run, each once: the notebook as saved, and
    under its path the one with the cells' outputs where the runner writes none (stored last,
    it is lost if the kernel is killed meanwhile; tests/test_cell_outputs.py checks it)."""
    return list(dict.fromkeys(a["uri"] for a in info.artifacts
                              if a["role"] == "notebook" and a["blob"]))


def jupyter_execute(notebook: Path, env: dict[str, str]) -> None:
    result = subprocess.run([JUPYTER, "execute", notebook.name], cwd=notebook.parent, env=env,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.slow
def test_a_kernel_too_slow_to_stop_has_its_run_ended_at_the_shutdown_request(
        tmp_path: Path, kernel_env: dict[str, str]) -> None:
    notebook = write_notebook(tmp_path / "stubborn.ipynb", "%load_ext tracker", STUBBORN_CHILD,
                              "raise ValueError('the last cell fails')")
    with stubborn_children_ended(tmp_path):
        result = subprocess.run([JUPYTER, "execute", "--allow-errors", notebook.name],
                                cwd=tmp_path, env=kernel_env, capture_output=True, text=True,
                                timeout=120, check=False)
        assert result.returncode == 0, result.stderr[-3000:]
        # The premise: the kernel could not stop its child, so the client killed the kernel.
        assert [alive(pid) for pid in stubborn_children(tmp_path)] == [True]

    [info] = [tracker.get_run(run_id) for run_id in tracker.runs()["id"]]
    assert (info.name, info.status) == ("stubborn #1", "failed")
    assert stored_notebooks(info) == [str(notebook)]
    assert [cell["success"] for cell in info.cells] == [True, True, False]


@pytest.mark.slow
def test_a_notebook_using_joblib_workers_ends_completed_every_time(
        tmp_path: Path, kernel_env: dict[str, str]) -> None:
    # ipykernel takes seconds to stop loky's workers; before, most runs ended `crashed`.
    notebook = write_notebook(
        tmp_path / "parallel.ipynb", "%load_ext tracker",
        "import math\nfrom joblib import Parallel, delayed\n"
        "roots = Parallel(n_jobs=2)(delayed(math.sqrt)(i) for i in range(100))")
    for _ in range(3):  # before the fix, 7 of 7 such executions here ended `crashed`
        jupyter_execute(notebook, kernel_env)

    runs = tracker.runs()
    assert list(runs["status"]) == ["completed"] * 3
    assert all(stored_notebooks(tracker.get_run(run_id)) == [str(notebook)]
               for run_id in runs["id"])


@contextlib.contextmanager
def driven_kernel(folder: Path, env: dict[str, str]) -> Iterator[tuple[KernelManager,
                                                                      Callable[..., str]]]:
    """A real kernel and ``execute(code)``, which runs a cell and returns what it printed
    (``wait=False``: only starts it); killed at the end if still alive, with the stubborn
    children its cells started."""
    manager = KernelManager(kernel_name="python3")
    manager.start_kernel(cwd=str(folder), env=env)
    client = manager.client()
    client.start_channels()

    def execute(code: str, *, wait: bool = True) -> str:
        printed: list[str] = []
        client.wait_for_ready(timeout=120)
        if not wait:
            client.execute(code)
            return ""
        reply = client.execute_interactive(code, timeout=120, output_hook=lambda message: (
            printed.append(message["content"]["text"])
            if message["msg_type"] == "stream" and message["content"]["name"] == "stdout"
            else None))
        assert reply["content"]["status"] == "ok", reply["content"]
        return "".join(printed)

    try:
        with stubborn_children_ended(folder):
            yield manager, execute
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


@pytest.mark.slow
def test_a_kernel_shows_the_numbered_name_the_catalog_gives_its_run(
        tmp_path: Path, kernel_env: dict[str, str]) -> None:
    # The catalog numbers a notebook's runs when it writes them; the kernel said 'numbered'.
    notebook = write_notebook(tmp_path / "numbered.ipynb", "%load_ext tracker")
    env = {**kernel_env, "TRACKER_NOTEBOOK": str(notebook)}
    with driven_kernel(tmp_path, env) as (_, execute):
        execute("%load_ext tracker")
        status = execute("%tracker")
        name = execute("import tracker\nprint(tracker.current_run().name)").strip()
        started = execute("%tracker new")
        second = execute("print(tracker.current_run().name)").strip()
    assert "'numbered #1' (running)" in status
    assert name == "numbered #1"
    assert started.startswith("tracker: started run ") and "'numbered #2'" in started
    assert second == "numbered #2"
    assert sorted(tracker.runs()["name"]) == ["numbered #1", "numbered #2"]


@pytest.mark.slow
def test_a_kernel_restart_ends_the_first_session_s_run_before_the_second_starts(
        tmp_path: Path, kernel_env: dict[str, str]) -> None:
    notebook = write_notebook(tmp_path / "restarted.ipynb", "%load_ext tracker")
    env = {**kernel_env, "TRACKER_NOTEBOOK": str(notebook)}
    with driven_kernel(tmp_path, env) as (manager, execute):
        execute("%load_ext tracker")
        execute(STUBBORN_CHILD)
        first_id = execute(CURRENT_RUN).strip()
        manager.restart_kernel(now=False)  # a shutdown request with restart=True
        execute("%load_ext tracker")
        second_id = execute(CURRENT_RUN).strip()

    first, second = tracker.get_run(first_id), tracker.get_run(second_id)
    assert first.status == "completed"
    assert stored_notebooks(first) == [str(notebook)]
    assert first.ended_at is not None and first.ended_at <= second.started_at


@pytest.mark.slow
def test_a_cell_logging_through_the_shutdown_starts_no_new_run(
        tmp_path: Path, kernel_env: dict[str, str]) -> None:
    """Once the shutdown request ended the run, a log call would start the notebook's next
    run (or, once the kernel says it is exiting, a script's run): what the cell still logs
    belongs to the run it was in."""
    notebook = write_notebook(tmp_path / "logging.ipynb", "%load_ext tracker")
    with driven_kernel(tmp_path, {**kernel_env, "TRACKER_NOTEBOOK": str(notebook)}) as (
            manager, execute):
        execute("%load_ext tracker")
        run_id = execute(CURRENT_RUN).strip()
        execute("import signal, time, tracker\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                "for step in range(600):\n    tracker.log_metric('loss', 1.0, step=step)\n"
                "    time.sleep(0.05)", wait=False)
        time.sleep(1.0)
        manager.shutdown_kernel()

    assert list(tracker.runs()["id"]) == [run_id]
    assert tracker.get_run(run_id).status == "failed"


@pytest.mark.slow
def test_a_cell_still_running_at_the_shutdown_request_fails_the_run(
        tmp_path: Path, kernel_env: dict[str, str]) -> None:
    notebook = write_notebook(tmp_path / "busy.ipynb", "%load_ext tracker")
    with driven_kernel(tmp_path, {**kernel_env, "TRACKER_NOTEBOOK": str(notebook)}) as (
            manager, execute):
        execute("%load_ext tracker")
        run_id = execute(CURRENT_RUN).strip()
        # Deaf to the interrupt a client sends before its shutdown request.
        execute("import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                "time.sleep(60)", wait=False)
        time.sleep(1.0)
        manager.shutdown_kernel()

    info = tracker.get_run(run_id)
    assert (info.status, info.error) == ("failed",
                                         "the kernel was shut down while a cell was running")
    assert stored_notebooks(info) == [str(notebook)]
    assert len(info.cells) == 2  # the cell cut off never finished
