"""The executed notebook of ``jupyter execute`` and nbconvert, which the runner writes after the
kernel is gone, stored with the run by the watcher the kernel leaves behind.

The runners are run for real (``jupyter execute --inplace`` / ``--output``, ``jupyter nbconvert
--to notebook --execute --inplace`` / ``--output``), and the run's stored notebook read back with
``tracker notebook RUN -o``, as a user would. The watcher's checks (a notebook written after the
run, with the run's code) and its detachment are tested on their own, without a kernel.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

import tracker
from tracker import _process, notebook_watch
from tracker.cli import main
from tracker.notebook import read_notebook

BIN = Path(sys.executable).parent
TIMEOUT = 120
CELLS = ("%load_ext tracker", "print('hello from the kernel')", "6 * 7")


def write_notebook(path: Path, *cells: str) -> Path:
    notebook = new_notebook(cells=[new_code_cell(source, id=f"cell-{index}")
                                   for index, source in enumerate(cells)], metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nbformat.write(notebook, path)
    return path


def outputs(path: Path) -> list[list[str]]:
    """Each code cell's outputs, as text: what an executed notebook has and an input lacks."""
    cells = nbformat.read(path, as_version=4).cells
    return [[output.get("text") or output.get("data", {}).get("text/plain", "")
             for output in cell.get("outputs", [])] for cell in cells]


EXECUTED = [[], ["hello from the kernel\n"], ["42"]]


def stored_notebook(catalog: str | Path, run_id: str, dest: Path, *, wait: float = 30.0) -> Path:
    """``tracker notebook RUN -o DEST``, again until the executed notebook is the one given back
    (the watcher stores it a moment after the runner exits), or ``wait`` seconds passed."""
    deadline = time.monotonic() + wait
    while True:
        assert main(["--catalog", str(catalog), "notebook", run_id, "-o", str(dest),
                     "--force"]) == 0
        if outputs(dest) == EXECUTED or time.monotonic() > deadline:
            return dest
        time.sleep(0.2)


RUNNERS = {
    "execute --inplace": (["jupyter", "execute", "--inplace", "nb.ipynb"], "nb.ipynb"),
    "execute --output": (["jupyter", "execute", "--output", "ran.ipynb", "nb.ipynb"],
                         "ran.ipynb"),
    "nbconvert --inplace": (["jupyter", "nbconvert", "--to", "notebook", "--execute",
                             "--inplace", "nb.ipynb"], "nb.ipynb"),
    "nbconvert --output": (["jupyter", "nbconvert", "--to", "notebook", "--execute",
                            "--output", "ran", "nb.ipynb"], "ran.ipynb"),
}


@pytest.mark.slow
@pytest.mark.parametrize("runner", list(RUNNERS))
def test_the_run_stores_the_notebook_the_runner_wrote_after_the_kernel(
        runner: str, tmp_path: Path, runner_env: dict[str, str]) -> None:
    command, written = RUNNERS[runner]
    source = write_notebook(tmp_path / "nb.ipynb", *CELLS)
    result = subprocess.run([str(BIN / command[0]), *command[1:]], cwd=tmp_path, env=runner_env,
                            capture_output=True, text=True, timeout=TIMEOUT, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # nothing from tracker: no warning at the shutdown, no exit error from the watcher's start
    assert "Traceback" not in result.stderr and "TrackerWarning" not in result.stderr
    assert outputs(tmp_path / written) == EXECUTED

    catalog_path = Path(runner_env["TRACKER_CATALOG"])
    run_id = tracker.Catalog(catalog_path).runs()["id"][0]
    kept = stored_notebook(catalog_path, run_id, tmp_path / "kept.ipynb")
    assert outputs(kept) == EXECUTED
    recorded = tracker.Catalog(catalog_path).artifacts(run_id, role="notebook")
    # The input notebook stays recorded; the executed one is the run's newest notebook.
    assert sorted(recorded["uri"]) == sorted([str(source), str(tmp_path / written)])
    assert tracker.Catalog(catalog_path).get_run(run_id).status == "completed"


# --------------------------------------------------------------------------- the watcher alone


@pytest.fixture
def ended_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[tracker.Catalog, str]:
    """A run that ended, in the catalog the watcher is given (``TRACKER_CATALOG``)."""
    path = tmp_path / "catalog" / "catalog.duckdb"
    monkeypatch.setenv("TRACKER_CATALOG", str(path))
    catalog = tracker.Catalog(path)
    with catalog.start_run("ran") as run:
        run.log_param("lr", 0.1)
    catalog.flush()
    return catalog, run.id


def executed_copy(path: Path) -> Path:
    """The notebook as a runner writes it once executed: the input's code, with outputs."""
    notebook = nbformat.read(write_notebook(path, *CELLS), as_version=4)
    notebook.cells[1].outputs = [nbformat.v4.new_output("stream", text="hello from the kernel\n")]
    notebook.cells[2].outputs = [nbformat.v4.new_output(
        "execute_result", data={"text/plain": "42"}, execution_count=2)]
    nbformat.write(notebook, path)
    return path


GONE = (0, -1.0)  # (pid, start time) of no process: one that has exited
HERE = (os.getpid(), _process.process_start(os.getpid()))  # alive throughout


def code_of(folder: Path, cells: tuple[str, ...] = CELLS) -> str:
    """The code hash of the notebook the run executed, as the kernel hands it to the watcher."""
    code = read_notebook(str(write_notebook(folder / "input.ipynb", *cells))).code_hash
    assert code is not None
    return code


def spec(run_id: str, path: Path, *, since: float, runner: tuple[int, float | None] = GONE,
         kernel: tuple[int, float | None] = GONE, cells: tuple[str, ...] = CELLS) -> str:
    """What the kernel hands the watcher: the run, the notebook, the code the run executed."""
    return json.dumps({"run_id": run_id, "notebook": str(path), "since": since,
                       "code_hash": code_of(path.parent, cells), "runner": runner,
                       "kernel": kernel})


def stored(catalog: tracker.Catalog, run_id: str) -> list[str]:
    return list(catalog.artifacts(run_id, role="notebook")["uri"])


def test_the_watcher_stores_a_notebook_written_after_the_run(
        ended_run: tuple[tracker.Catalog, str], tmp_path: Path) -> None:
    catalog, run_id = ended_run
    before = time.time()
    path = executed_copy(tmp_path / "ran.ipynb")
    assert notebook_watch.watch(spec(run_id, path, since=before - 1)) is True
    assert stored(catalog, run_id) == [str(path)]
    kept = stored_notebook(catalog.path, run_id, tmp_path / "kept.ipynb", wait=0)
    assert outputs(kept) == EXECUTED
    run = catalog.get_run(run_id)
    assert (run.status, run.params) == ("completed", {"lr": 0.1})  # the rest of it untouched


@pytest.mark.parametrize("problem", ["older than the run's end", "other code", "not a notebook",
                                     "missing"])
def test_the_watcher_leaves_a_notebook_that_is_not_the_runs_executed_one(
        problem: str, ended_run: tuple[tracker.Catalog, str], tmp_path: Path) -> None:
    catalog, run_id = ended_run
    path = executed_copy(tmp_path / "ran.ipynb")
    since, cells = time.time() - 60, CELLS
    if problem == "older than the run's end":
        since = time.time() + 60
    elif problem == "other code":
        cells = (*CELLS, "print('a cell the run never had')")
    elif problem == "not a notebook":
        path.write_text('{"cells": "no"}', encoding="utf-8")
    else:
        path.unlink()
    assert notebook_watch.watch(spec(run_id, path, since=since, cells=cells)) is False
    assert stored(catalog, run_id) == []


def test_the_watcher_gives_up_while_the_kernel_lives(
        ended_run: tuple[tracker.Catalog, str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    catalog, run_id = ended_run
    monkeypatch.setattr(notebook_watch, "WAIT", 0.3)
    path = executed_copy(tmp_path / "ran.ipynb")
    assert notebook_watch.watch(spec(run_id, path, since=0, kernel=HERE)) is False
    assert stored(catalog, run_id) == []


def test_the_watcher_stores_what_the_runner_writes_before_it_runs_its_next_notebook(
        ended_run: tuple[tracker.Catalog, str], tmp_path: Path) -> None:
    # `jupyter execute a.ipynb b.ipynb` writes a's notebook, then runs b for as long as it
    # takes: a's run gets its executed notebook once written, not when the runner exits.
    catalog, run_id = ended_run
    path = write_notebook(tmp_path / "ran.ipynb", *CELLS)  # the input, before the run ended
    time.sleep(0.1)
    since = time.time()
    writer = threading.Timer(0.5, executed_copy, [path])
    writer.start()
    try:
        assert notebook_watch.watch(spec(run_id, path, since=since, runner=HERE)) is True
    finally:
        writer.join()
    assert outputs(stored_notebook(catalog.path, run_id, tmp_path / "kept.ipynb", wait=0)) \
        == EXECUTED


def test_the_watcher_numbers_its_record_after_the_kernels_unwritten_events(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A kernel killed before it wrote its last events leaves them in its spool; the notebook
    # must be numbered after them, or the catalog would skip them as applied (runs.spool_seq).
    catalog_path = tmp_path / "catalog" / "catalog.duckdb"
    monkeypatch.setenv("TRACKER_CATALOG", str(catalog_path))
    script = ("import os, tracker\n"
              f"catalog = tracker.Catalog({str(catalog_path)!r})\n"
              "run = catalog.start_run('killed')\n"
              "catalog.flush()\n"
              "run.log_metric('late', 1.0)\n"
              "catalog.recorder.spool()\n"
              "print(run.id, flush=True)\n"
              "os._exit(0)\n")
    run_id = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=TIMEOUT, check=True).stdout.strip()
    path = executed_copy(tmp_path / "ran.ipynb")
    assert notebook_watch.watch(spec(run_id, path, since=0)) is True
    catalog = tracker.Catalog(catalog_path)
    assert catalog.get_run(run_id).metrics == {"late": 1.0}
    assert stored(catalog, run_id) == [str(path)]


KERNEL = ("import sys, tracker\n"
          "from tracker import notebook_watch\n"
          "catalog, run_id, path, code, runner = sys.argv[1:]\n"
          "print(notebook_watch.spawn(tracker.Catalog(catalog), run_id, path, code_hash=code,\n"
          "                           runner=int(runner)))\n")


def test_the_watcher_is_detached_from_the_kernel(ended_run: tuple[tracker.Catalog, str],
                                                tmp_path: Path) -> None:
    catalog, run_id = ended_run
    path = tmp_path / "ran.ipynb"
    read_end, write_end = os.pipe()  # a pipe of the kernel's, as nbclient reads its output
    with subprocess.Popen(["sleep", "30"]) as runner:
        try:
            # A stand-in kernel: it starts the watcher and exits, its stdout captured.
            kernel = subprocess.run(
                [sys.executable, "-c", KERNEL, str(catalog.path), run_id, str(path),
                 code_of(tmp_path), str(runner.pid)], pass_fds=(write_end,),
                capture_output=True, text=True, timeout=TIMEOUT, check=True)
            pid = int(kernel.stdout)  # returned at once: the watcher holds no captured pipe
            os.close(write_end)
            assert os.read(read_end, 1) == b""  # at once: nor the kernel's other descriptors
            assert os.getsid(pid) != os.getsid(0)  # a session of its own
            assert {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in (0, 1, 2)} == {"/dev/null"}
            executed_copy(path)  # the runner writes it once the kernel is gone
            deadline = time.monotonic() + 30
            while not stored(catalog, run_id) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert stored(catalog, run_id) == [str(path)]
        finally:
            runner.terminate()
            os.close(read_end)


@pytest.mark.slow
def test_a_postgresql_catalog_stores_the_executed_notebook_too(tmp_path: Path, pg_url: str,
                                                               runner_env: dict[str, str]) -> None:
    # The watcher is given the URL the way the kernel was (TRACKER_CATALOG), never on its
    # command line, where any user's `ps` would show the password.
    write_notebook(tmp_path / "nb.ipynb", *CELLS)
    subprocess.run([str(BIN / "jupyter"), "execute", "--inplace", "nb.ipynb"], cwd=tmp_path,
                   env={**runner_env, "TRACKER_CATALOG": pg_url}, capture_output=True,
                   timeout=TIMEOUT, check=True)
    run_id = tracker.Catalog(pg_url).runs()["id"][0]
    kept = stored_notebook(pg_url, run_id, tmp_path / "kept.ipynb")
    assert outputs(kept) == EXECUTED


@pytest.mark.slow
def test_a_secret_the_notebook_printed_is_redacted_in_the_stored_executed_notebook(
        tmp_path: Path, runner_env: dict[str, str]) -> None:
    password = "hunter2-" + "correct-horse"
    write_notebook(tmp_path / "nb.ipynb", "%load_ext tracker", f"db_password = '{password}'",
                   "print(db_password)")
    subprocess.run([str(BIN / "jupyter"), "execute", "--inplace", "nb.ipynb"], cwd=tmp_path,
                   env=runner_env, capture_output=True, timeout=TIMEOUT, check=True)
    assert password in (tmp_path / "nb.ipynb").read_text(encoding="utf-8")  # the runner's own

    catalog_path = Path(runner_env["TRACKER_CATALOG"])
    catalog = tracker.Catalog(catalog_path)
    run_id = catalog.runs()["id"][0]
    deadline = time.monotonic() + 30
    while len(catalog.artifacts(run_id, role="notebook")) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert main(["--catalog", str(catalog_path), "notebook", run_id,
                 "-o", str(tmp_path / "kept.ipynb")]) == 0
    printed = outputs(tmp_path / "kept.ipynb")[2]
    assert len(printed) == 1 and printed[0].startswith("<redacted:str:")
    leaks = [path for path in catalog_path.parent.rglob("*")
             if path.is_file() and password.encode() in path.read_bytes()]
    assert leaks == []
