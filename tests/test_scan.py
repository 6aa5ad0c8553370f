"""Tests for tracker.scan: files written by other processes, and files shell commands name.

The first tests walk real folders and start real processes in this interpreter; the last run
one notebook in a real kernel (nbclient) whose cells copy, compress, fork workers, rename and
move files, and check what its run recorded.
"""

from __future__ import annotations

import os
import subprocess
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from capture_recorder import Recorder
from nbformat.v4 import new_code_cell, new_notebook

import tracker
from tracker.capture import suppressed
from tracker.errors import TrackerWarning
from tracker.hashing import hash_bytes
from tracker.models import RunInfo
from tracker.scan import PRUNED_DIRS, CellScan, changed_files

TIMEOUT = 120


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return Path(os.path.realpath(tmp_path))


def _names(paths: list[str], root: Path) -> list[str]:
    return sorted(os.path.relpath(path, root) for path in paths)


# --- the walk -----------------------------------------------------------------------------------


def test_changed_files_finds_what_changed_since_even_with_an_old_mtime(root: Path) -> None:
    (root / "old.txt").write_text("before")
    time.sleep(0.05)
    since = time.time_ns()
    (root / "sub").mkdir()
    (root / "sub" / "new.txt").write_text("during")
    (root / "copied.txt").write_text("gzip and cp -p keep the original's mtime")
    os.utime(root / "copied.txt", (1_000_000_000, 1_000_000_000))
    result = changed_files([str(root)], since)
    assert result.complete
    assert _names(result.paths, root) == ["copied.txt", "sub/new.txt"]


def test_changed_files_skips_tool_folders_virtualenvs_notebooks_and_symlinks(
        root: Path) -> None:
    since = time.time_ns()
    for name in (".git", ".ipynb_checkpoints", ".cache", ".virtual_documents", *PRUNED_DIRS):
        (root / name).mkdir()
        (root / name / "f.txt").write_text("x")
    (root / ".jupyter_ystore.db").write_text("x")
    (root / "env" / "lib").mkdir(parents=True)
    (root / "env" / "pyvenv.cfg").write_text("home = /usr/bin")
    (root / "env" / "lib" / "site.py").write_text("x")
    (root / "nb.ipynb").write_text("{}")
    (root / "elsewhere").mkdir()
    (root / "elsewhere" / "kept.txt").write_text("x")
    (root / "linked").symlink_to(root / "elsewhere")
    result = changed_files([str(root)], since)
    assert _names(result.paths, root) == ["elsewhere/kept.txt"]


def test_changed_files_walks_nested_roots_once(root: Path) -> None:
    since = time.time_ns()
    (root / "sub").mkdir()
    (root / "sub" / "f.txt").write_text("x")
    result = changed_files([str(root / "sub"), str(root), str(root / "sub")], since)
    assert _names(result.paths, root) == ["sub/f.txt"]


def test_changed_files_stops_at_its_entry_budget(root: Path) -> None:
    since = time.time_ns()
    for index in range(30):
        (root / f"f{index}.txt").write_text("x")
    result = changed_files([str(root)], since, max_entries=10)
    assert not result.complete
    assert len(result.paths) == 10


# --- after a cell, in this interpreter -----------------------------------------------------------


class Cell(Recorder):
    """A started FileCapture over ``root`` with a CellScan, and what they reported."""

    def __init__(self, root: Path) -> None:
        super().__init__(root, on_process=self._on_process)
        self.scan = CellScan(self.capture, [str(root)])

    def _on_process(self, event: str, args: tuple[Any, ...]) -> None:
        self.scan.note_process(event, args)


@pytest.fixture
def cell(root: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cell]:
    monkeypatch.chdir(root)
    watched = Cell(root)
    watched.capture.start()
    yield watched
    watched.capture.stop()


def test_a_command_s_outputs_are_written_and_the_files_it_names_are_read(
        cell: Cell, root: Path) -> None:
    with suppressed():  # written before the run
        (root / "a.txt").write_text("a")
        (root / "unrelated.txt").write_text("u")
    time.sleep(0.05)
    cell.scan.begin()
    subprocess.run(["cp", "a.txt", "b.txt"], check=True)
    os.system("cat a.txt > c.txt")
    cell.scan.finish("")
    assert _names(cell.writes, root) == ["b.txt", "c.txt"]
    assert _names(cell.reads, root) == ["a.txt"]
    assert cell.via == {str(root / "a.txt"): "inferred", str(root / "b.txt"): "scan",
                        str(root / "c.txt"): "scan"}


def test_shell_lines_of_the_cell_name_inputs(cell: Cell, root: Path) -> None:
    with suppressed():  # written before the run
        (root / "x.csv").write_text("x")
        (root / "y.csv").write_text("y")
        (root / "listed.txt").write_text("l")
        (root / "z.py").write_text("z")
    time.sleep(0.05)
    cell.scan.begin()
    subprocess.run(["true"], check=True)  # as IPython's `!` does, under a pty: no arguments
    cell.scan.finish("!wc -l *.csv --files0-from=y.csv {variable} $HOME > counts.txt\n"
                     "names = !ls listed.txt\n"
                     "# !cat z.py is a comment, as is unrelated.txt\n")
    assert _names(cell.reads, root) == ["listed.txt", "x.csv", "y.csv"]


def test_a_scan_past_its_budget_records_what_it_found_and_warns_once(
        cell: Cell, root: Path) -> None:
    small = CellScan(cell.capture, [str(root)], max_entries=5)
    small.begin()
    subprocess.run(["touch", *(f"f{index}.txt" for index in range(20))], check=True)
    with pytest.warns(TrackerWarning, match="stopped after 5 entries"):
        small.finish("")
    assert len(cell.writes) == 5
    small.begin()
    subprocess.run(["touch", "again.txt"], check=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the second time, no warning
        small.finish("")


def test_files_changed_before_the_cell_s_first_process_are_not_its_outputs(
        cell: Cell, root: Path) -> None:
    cell.scan.begin()
    with suppressed():  # unseen by the capture, as an editor or another kernel writing
        (root / "elsewhere.txt").write_text("x")
    time.sleep(0.05)
    subprocess.run(["touch", "mine.txt"], check=True)
    cell.scan.finish("")
    assert _names(cell.writes, root) == ["mine.txt"]


def test_a_cell_that_starts_no_process_is_not_scanned(cell: Cell, root: Path) -> None:
    cell.scan.begin()
    with suppressed():  # unseen by the capture, as an editor or another kernel writing
        (root / "elsewhere.txt").write_text("x")
    cell.scan.finish("")
    assert cell.writes == []


# --- in a real kernel --------------------------------------------------------------------------


CELLS = (
    "%load_ext tracker",
    "!cp a.txt b.txt",
    "%%bash\ntr a-z A-Z < a.txt > upper.txt",
    "import subprocess\nsubprocess.run(['gzip', '-k', 'x.csv'], check=True)",
    ("import multiprocessing\n"
     "def write_part(index):\n"
     "    with open(f'part-{index}.txt', 'w') as handle:\n"
     "        handle.write(str(index))\n"
     "with multiprocessing.Pool(2) as pool:\n"
     "    pool.map(write_part, [1, 2])"),
    "kept = multiprocessing.Pool(1)",
    ("import shutil\n"
     "kept.apply(shutil.copyfile, ('a.txt', 'kept.txt'))  # a reused worker starts nothing"),
    "kept.close()\nkept.join()",
    ("import os, tempfile\n"
     "with tempfile.NamedTemporaryFile('w', dir='.', suffix='.tmp', delete=False) as tmp:\n"
     "    tmp.write('final content')\n"
     "os.replace(tmp.name, 'final.txt')"),
    ("os.makedirs('data', exist_ok=True)\n"
     "shutil.move('shared.txt', 'data/moved.txt')"),
    "!touch .git/index .cache/c.bin __pycache__/m.pyc .ipynb_checkpoints/k.ipynb env/lib/x.py",
)


@pytest.fixture(scope="module")
def kernel_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[RunInfo, Path, Path]:
    """One notebook run in a real kernel: (its run, its folder, the catalog)."""
    from nbclient import NotebookClient

    base = Path(os.path.realpath(tmp_path_factory.mktemp("scan")))
    folder, catalog_path = base / "work", base / "catalog" / "catalog.duckdb"
    folder.mkdir()
    (folder / "a.txt").write_text("a content")
    (folder / "x.csv").write_text("x\n1\n")
    (folder / "shared.txt").write_text("shared content")
    for name in (".git", ".cache", "__pycache__", ".ipynb_checkpoints", "env/lib"):
        (folder / name).mkdir(parents=True)
    (folder / "env" / "pyvenv.cfg").write_text("home = /usr/bin")
    catalog = tracker.Catalog(catalog_path)
    with catalog.start_run("producer") as producer:
        producer.log_output(folder / "shared.txt")
    time.sleep(0.05)  # the setup's files are older than the first cell

    path = folder / "scan.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell(source) for source in CELLS], metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}),
        path)
    env = {**os.environ, "TRACKER_CATALOG": str(catalog_path)}
    for name in ("TRACKER_NOTEBOOK", "PYTEST_CURRENT_TEST", "JPY_SESSION_NAME"):
        env.pop(name, None)
    client = NotebookClient(nbformat.read(path, as_version=4), timeout=TIMEOUT,
                            kernel_name="python3", resources={"metadata": {"path": str(folder)}})
    client.execute(env=env)
    runs = tracker.Catalog(catalog_path).runs(where="name = 'scan #1'")
    return tracker.Catalog(catalog_path).get_run(runs["id"].iloc[0]), folder, catalog_path


def _recorded(run: RunInfo, role: str, folder: Path) -> dict[str, str | None]:
    """The run's files in ``role`` under ``folder``, relative, with their hashes."""
    return {os.path.relpath(a["uri"], folder): a["hash"] for a in run.artifacts
            if a["role"] == role and a["uri"].startswith(f"{folder}/")}


def _seen(run: RunInfo, role: str, folder: Path) -> dict[str, str]:
    """How each of the run's files in ``role`` under ``folder`` was seen."""
    return {os.path.relpath(a["uri"], folder): a["via"] for a in run.artifacts
            if a["role"] == role and a["uri"].startswith(f"{folder}/")}


@pytest.mark.slow
def test_kernel_shell_copy_records_its_source_as_input_and_its_copy_as_output(
        kernel_run: tuple[RunInfo, Path, Path]) -> None:
    run, folder, _ = kernel_run
    assert _recorded(run, "input", folder)["a.txt"] == hash_bytes(b"a content")
    assert _recorded(run, "output", folder)["b.txt"] == hash_bytes(b"a content")
    assert _seen(run, "input", folder)["a.txt"] == "inferred"
    assert _seen(run, "output", folder)["b.txt"] == "scan"


@pytest.mark.slow
def test_kernel_bash_cell_output_is_recorded(kernel_run: tuple[RunInfo, Path, Path]) -> None:
    run, folder, _ = kernel_run
    assert _recorded(run, "output", folder)["upper.txt"] == hash_bytes(b"A CONTENT")


@pytest.mark.slow
def test_kernel_subprocess_gzip_output_is_recorded(
        kernel_run: tuple[RunInfo, Path, Path]) -> None:
    run, folder, _ = kernel_run
    outputs = _recorded(run, "output", folder)
    assert outputs["x.csv.gz"] == hash_bytes((folder / "x.csv.gz").read_bytes())
    assert "x.csv" in _recorded(run, "input", folder)


@pytest.mark.slow
def test_kernel_pool_workers_outputs_are_recorded(kernel_run: tuple[RunInfo, Path, Path]) -> None:
    run, folder, _ = kernel_run
    outputs = _recorded(run, "output", folder)
    assert outputs["part-1.txt"] == hash_bytes(b"1")
    assert outputs["part-2.txt"] == hash_bytes(b"2")
    assert outputs["kept.txt"] == hash_bytes(b"a content")  # written in a later cell
    assert _seen(run, "output", folder)["part-1.txt"] == "scan"


@pytest.mark.slow
def test_kernel_temp_file_replaced_into_place_is_recorded_under_its_final_name_only(
        kernel_run: tuple[RunInfo, Path, Path]) -> None:
    run, folder, _ = kernel_run
    outputs = _recorded(run, "output", folder)
    assert outputs["final.txt"] == hash_bytes(b"final content")
    assert _seen(run, "output", folder)["final.txt"] == "rename"
    assert not any(name.endswith(".tmp") for name in outputs)


@pytest.mark.slow
def test_kernel_moved_file_is_an_output_with_its_content(
        kernel_run: tuple[RunInfo, Path, Path]) -> None:
    run, folder, _ = kernel_run
    assert _recorded(run, "output", folder)["data/moved.txt"] == hash_bytes(b"shared content")
    assert _seen(run, "output", folder)["data/moved.txt"] == "rename"
    assert _seen(run, "input", folder)["shared.txt"] == "rename"


@pytest.mark.slow
def test_kernel_moving_a_known_version_links_lineage(
        kernel_run: tuple[RunInfo, Path, Path]) -> None:
    run, folder, catalog_path = kernel_run
    assert _recorded(run, "input", folder)["shared.txt"] == hash_bytes(b"shared content")
    lineage = tracker.Catalog(catalog_path).lineage(run.id)
    assert list(lineage[lineage["direction"] == "upstream"]["run_name"]) == ["producer"]


@pytest.mark.slow
def test_kernel_nothing_under_tool_folders_or_notebooks_is_recorded(
        kernel_run: tuple[RunInfo, Path, Path]) -> None:
    run, folder, _ = kernel_run
    recorded = {**_recorded(run, "output", folder), **_recorded(run, "input", folder)}
    assert sorted(recorded) == ["a.txt", "b.txt", "data/moved.txt", "final.txt", "kept.txt",
                                "part-1.txt", "part-2.txt", "shared.txt", "upper.txt", "x.csv",
                                "x.csv.gz"]
    assert run.status == "completed"
