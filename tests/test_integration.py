"""Real kernels, executed the ways users run notebooks, then the catalog checked.

Each test writes small notebooks into its temp folder and runs them through nbclient,
``jupyter execute``, ``jupyter nbconvert --execute``, papermill (with ``-p`` and ``--cwd``),
nbval, or a kernel driven cell by cell (to kill it, or to run two at once). Kernels get
``TRACKER_CATALOG`` pointing at the test's own catalog, never ``~/.tracker``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

import tracker
from tracker.hashing import hash_bytes
from tracker.models import RunInfo

pytestmark = pytest.mark.slow

REPO = Path(__file__).parent.parent
BIN = Path(sys.executable).parent
TIMEOUT = 120


# --------------------------------------------------------------------------- helpers


def write_notebook(path: Path, *cells: str | tuple[str, str], title: str | None = None,
                   metadata: Mapping[str, Any] | None = None) -> Path:
    """A notebook of code cells (``(tag, source)`` for a tagged one), under a ``# title``."""
    body = [new_markdown_cell(f"# {title}", id="title")] if title else []
    for index, cell in enumerate(cells):
        tag, source = cell if isinstance(cell, tuple) else ("", cell)
        code = new_code_cell(source, id=f"cell-{index}")
        if tag:
            code.metadata["tags"] = [tag]
        body.append(code)
    notebook = new_notebook(cells=body, metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        **({"tracker": dict(metadata)} if metadata else {})})
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, path)
    return path


# The notebook most tests run: a parameters cell, an input, an output read back, a metric.
STANDARD_CELLS: tuple[str | tuple[str, str], ...] = (
    "%load_ext tracker",
    ("parameters", "alpha = 0.5\nlabel = 'default'"),
    ("import tracker\n"
     "with open('input.csv') as handle:\n"
     "    rows = handle.read().splitlines()\n"
     "tracker.log_metric('rows', float(len(rows)))"),
    ("with open('result.txt', 'w') as handle:\n"
     "    handle.write(f'{label}: {alpha * len(rows)}')"),
    ("with open('result.txt') as handle:  # its own output read back: not an input\n"
     "    again = handle.read()"),
)


def standard_notebook(folder: Path, name: str = "standard") -> Path:
    (folder / "input.csv").parent.mkdir(parents=True, exist_ok=True)
    (folder / "input.csv").write_text("a\n1\n2\n3\n", encoding="utf-8")
    return write_notebook(folder / f"{name}.ipynb", *STANDARD_CELLS, title="Standard run")


@pytest.fixture
def catalog_path(tmp_path: Path) -> Path:
    return tmp_path / "catalog" / "catalog.duckdb"


@pytest.fixture
def env(catalog_path: Path) -> dict[str, str]:
    """The environment of every kernel and tool: our catalog, nothing naming a notebook."""
    values = {**os.environ, "TRACKER_CATALOG": str(catalog_path)}
    for name in ("TRACKER_NOTEBOOK", "PYTEST_CURRENT_TEST", "JPY_SESSION_NAME"):
        values.pop(name, None)
    return values


def run_tool(args: list[str], *, cwd: Path, env: Mapping[str, str],
             check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, cwd=cwd, env=dict(env), capture_output=True, text=True,
                            timeout=TIMEOUT, check=False)
    if check:
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def runs_by_name(catalog_path: Path, *expected: str) -> dict[str, RunInfo]:
    """Every run in the catalog by name (names are unique within one test; a notebook's run
    is named after it with its number, "standard #1"). With ``expected`` names, reads again
    for up to 5 s until they are all there: a killed kernel's last events reach the catalog
    when a reader can ingest its spool, within 1 s as the README promises, not at once."""
    catalog = tracker.Catalog(catalog_path)
    deadline = time.monotonic() + 5
    while True:
        frame = catalog.runs(order_by="started_at")
        names = list(frame["name"])
        if set(expected) <= set(names) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len(set(names)) == len(names), names
    return {name: catalog.get_run(run_id) for name, run_id in zip(names, frame["id"], strict=True)}


def uris(artifacts: list[dict[str, Any]]) -> list[str]:
    return sorted(artifact["uri"] for artifact in artifacts)


def assert_standard_run(run: RunInfo, folder: Path, notebook: Path) -> None:
    """What every execution mode must record for the standard notebook."""
    assert run.notebook == str(notebook)
    assert run.notebook_name == notebook.stem
    assert run.notebook_title == "Standard run"
    assert run.notebook_hash and run.notebook_hash.startswith("xxh3_128:")
    assert run.metrics == {"rows": 4.0}
    assert [cell["source"] for cell in run.cells] == [
        cell if isinstance(cell, str) else cell[1] for cell in STANDARD_CELLS]
    assert all(cell["success"] for cell in run.cells)
    assert uris(run.inputs) == [str(folder / "input.csv")]
    assert uris(run.outputs) == [str(folder / "result.txt")]
    assert all(a["hash"].startswith("xxh3_128:") for a in run.inputs + run.outputs)
    assert run.outputs[0]["producer_run_id"] == run.id
    # The notebook as saved, and under its path the one with the cells' outputs where the
    # runner writes no executed notebook (tests/test_cell_outputs.py looks into it).
    stored = [a for a in run.artifacts if a["role"] == "notebook"]
    assert {a["uri"] for a in stored} == {str(notebook)} and all(a["blob"] for a in stored)
    assert run.environment is not None and run.environment["python"] == sys.version.split()[0]


@contextlib.contextmanager
def kernel(cwd: Path, env: Mapping[str, str]) -> Iterator[tuple[KernelManager,
                                                                  BlockingKernelClient]]:
    """A python3 kernel driven cell by cell; shut down gracefully unless already dead."""
    manager = KernelManager(kernel_name="python3")
    manager.start_kernel(cwd=str(cwd), env=dict(env))
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=TIMEOUT)
        yield manager, client
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=not manager.is_alive())


def execute(client: BlockingKernelClient, code: str) -> str:
    """Run one cell and return what it printed; a cell that raises fails the test."""
    printed: list[str] = []

    def collect(message: dict[str, Any]) -> None:
        if message["msg_type"] == "stream":
            printed.append(message["content"]["text"])

    reply = client.execute_interactive(code, timeout=TIMEOUT, output_hook=collect)
    assert reply["content"]["status"] == "ok", reply["content"]
    return "".join(printed)


# --------------------------------------------------------------------------- execution modes


def test_jupyter_execute_records_the_whole_run(tmp_path: Path, env: dict[str, str],
                                               catalog_path: Path) -> None:
    folder = tmp_path / "project"
    notebook = standard_notebook(folder)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org"]
    for command in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-q", "-m", "start"]):
        run_tool([*git, *command], cwd=folder, env=env)

    run_tool([str(BIN / "jupyter"), "execute", "standard.ipynb"], cwd=folder, env=env)

    run = runs_by_name(catalog_path)["standard #1"]
    assert run.status == "completed"
    assert_standard_run(run, folder, notebook)
    assert run.params == {"alpha": 0.5, "label": "default"}
    assert [cell["execution_count"] for cell in run.cells] == [1, 2, 3, 4, 5]
    repository = run.environment["git"]
    assert repository["branch"] == "main" and len(repository["commit"]) == 40
    assert repository["dirty"] is False  # result.txt is new, not a change to tracked files


def test_files_cleaned_in_place_keep_the_read_content_and_link_the_next_reader(
        tmp_path: Path, env: dict[str, str], catalog_path: Path) -> None:
    from PIL import Image

    folder = tmp_path / "project"
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "stores.tsv").write_text("store\tcity\n1\t paris\n2\tlyon \n")
    Image.new("RGB", (8, 8), "red").save(folder / "data" / "logo.png")
    (folder / "data" / "notes.md").write_text("# Notes  \nraw  \n")
    before = {path.name: path.read_bytes() for path in (folder / "data").iterdir()}
    write_notebook(
        folder / "cleaner.ipynb", "%load_ext tracker",
        "import pandas as pd\nfrom PIL import Image\n"
        "stores = pd.read_csv('data/stores.tsv', sep='\\t')\n"
        "logo = Image.open('data/logo.png')\nlogo.load()\n"
        "with open('data/notes.md') as handle:\n    notes = handle.read()",
        "stores['city'] = stores['city'].str.strip()\n"
        "stores.to_csv('data/stores.tsv', sep='\\t', index=False)\n"
        "logo.convert('L').save('data/logo.png')\n"
        "with open('data/notes.md', 'w') as handle:\n"
        "    handle.write('\\n'.join(line.rstrip() for line in notes.splitlines()))")
    write_notebook(
        folder / "reader.ipynb", "%load_ext tracker",
        "for name in ('stores.tsv', 'logo.png', 'notes.md'):\n"
        "    with open(f'data/{name}', 'rb') as handle:\n        handle.read()")
    for name in ("cleaner", "reader"):
        run_tool([str(BIN / "jupyter"), "execute", f"{name}.ipynb"], cwd=folder, env=env)

    runs = runs_by_name(catalog_path)
    cleaner, reader = runs["cleaner #1"], runs["reader #1"]
    after = {path.name: path.read_bytes() for path in (folder / "data").iterdir()}
    assert all(after[name] != before[name] for name in before)
    names = sorted(before)
    uri = {name: str(folder / "data" / name) for name in names}
    assert {a["uri"]: (a["version"], a["hash"]) for a in cleaner.inputs} == {
        uri[name]: (1, hash_bytes(before[name])) for name in names}
    assert {a["uri"]: (a["version"], a["hash"], a["producer_run_id"]) for a in
            cleaner.outputs} == {uri[name]: (2, hash_bytes(after[name]), cleaner.id)
                                 for name in names}
    lineage = tracker.Catalog(catalog_path).lineage(reader.id)
    assert sorted(lineage[["direction", "run_id", "uri", "version"]].itertuples(index=False)) == [
        ("upstream", cleaner.id, uri[name], 2) for name in names]


def test_nbconvert_execute_status_follows_the_last_cell(tmp_path: Path, env: dict[str, str],
                                                        catalog_path: Path) -> None:
    write_notebook(tmp_path / "fails_last.ipynb", "%load_ext tracker", "x = 1",
                   "raise ValueError('last cell broke')")
    write_notebook(tmp_path / "fails_middle.ipynb", "%load_ext tracker",
                   "raise KeyError('middle')", "y = 2")

    run_tool([str(BIN / "jupyter"), "nbconvert", "--to", "notebook", "--execute",
              "--allow-errors", "--output-dir", "out", "fails_last.ipynb",
              "fails_middle.ipynb"], cwd=tmp_path, env=env)

    runs = runs_by_name(catalog_path)
    failed, recovered = runs["fails_last #1"], runs["fails_middle #1"]
    assert failed.status == "failed"
    assert failed.notebook == str(tmp_path / "fails_last.ipynb")
    assert [(c["success"], c["error_type"]) for c in failed.cells] == [
        (True, None), (True, None), (False, "ValueError")]
    assert failed.cells[-1]["error_message"] == "last cell broke"
    assert failed.error == "[3] ValueError: last cell broke"  # `error is not null` finds it
    assert recovered.status == "completed" and recovered.error is None
    assert [c["success"] for c in recovered.cells] == [True, False, True]


def test_papermill_records_overrides_with_and_without_cwd(tmp_path: Path, env: dict[str, str],
                                                          catalog_path: Path) -> None:
    folder = tmp_path / "project"
    notebook = standard_notebook(folder)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    papermill = str(BIN / "papermill")
    # Both at once: two processes writing to one catalog is the normal case.
    with subprocess.Popen(
            [papermill, "standard.ipynb", str(tmp_path / "out-a.ipynb"), "-p", "alpha", "2",
             "-p", "label", "override"], cwd=folder, env=env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True) as from_folder:
        from_elsewhere = run_tool(
            [papermill, str(notebook), str(tmp_path / "out-b.ipynb"), "--cwd", str(folder),
             "-p", "alpha", "0.25"], cwd=elsewhere, env=env)
        output, _ = from_folder.communicate(timeout=TIMEOUT)
    assert from_folder.returncode == 0, output[-3000:] + from_elsewhere.stdout[-1000:]

    catalog = tracker.Catalog(catalog_path)
    frame = catalog.runs()
    runs = [catalog.get_run(run_id) for run_id in frame["id"]]
    assert len(runs) == 2
    by_alpha = {run.params["alpha"]: run for run in runs}
    assert by_alpha[2].params == {"alpha": 2, "label": "override"}
    assert [value for _, value in by_alpha[2].param_history["alpha"]] == [0.5, 2]
    assert by_alpha[0.25].params == {"alpha": 0.25, "label": "default"}
    for run in runs:
        assert run.status == "completed"
        assert run.name.startswith("standard #") and run.notebook == str(notebook)
        assert uris(run.inputs) == [str(folder / "input.csv")]
        assert any(c["source"].startswith("# Parameters") for c in run.cells)
    assert {run.name for run in runs} == {"standard #1", "standard #2"}  # told apart
    hashes = {run.notebook_hash for run in runs}
    assert len(hashes) == 1  # the injected cell is not part of the code hash
    # One environment, stored once for both runs.
    assert {run.environment["packages"]["tracker"] for run in runs} == {tracker.__version__}
    assert catalog.sql("SELECT count(*) AS n FROM environments")["n"].iloc[0] == 1


def test_nbclient_lineage_and_auto_loading_kernel_config(tmp_path: Path, env: dict[str, str],
                                                         catalog_path: Path) -> None:
    from nbclient import NotebookClient

    producer = write_notebook(
        tmp_path / "producer.ipynb", "%load_ext tracker",
        "with open('shared.csv', 'w') as handle:\n    handle.write('x\\n1\\n')")
    # No %load_ext: the kernel config in jupyter_config/ loads the extension.
    consumer = write_notebook(
        tmp_path / "consumer.ipynb",
        "with open('shared.csv') as handle:  # consumer\n    data = handle.read()",
        "with open('summary.txt', 'w') as handle:\n    handle.write(data.upper())")
    auto_env = {**env, "IPYTHONDIR": str(REPO / "jupyter_config" / "ipython")}
    for path, kernel_env in ((producer, env), (consumer, auto_env)):
        client = NotebookClient(nbformat.read(path, as_version=4), timeout=TIMEOUT,
                                kernel_name="python3",
                                resources={"metadata": {"path": str(tmp_path)}})
        client.execute(env=kernel_env)

    runs = runs_by_name(catalog_path)
    assert set(runs) == {"producer #1", "consumer #1"}
    assert runs["consumer #1"].notebook == str(consumer)
    assert runs["consumer #1"].status == "completed"
    assert [cell["seq"] for cell in runs["consumer #1"].cells] == [1, 2]
    lineage = tracker.Catalog(catalog_path).lineage(runs["consumer #1"].id)
    upstream = lineage[lineage["direction"] == "upstream"]
    assert list(upstream["run_id"]) == [runs["producer #1"].id]
    assert list(upstream["uri"]) == [str(tmp_path / "shared.csv")]
    downstream = tracker.Catalog(catalog_path).lineage(runs["producer #1"].id)
    assert list(downstream["run_id"]) == [runs["consumer #1"].id]


def test_nbval_records_each_notebook_and_its_failed_last_cell(
        tmp_path: Path, env: dict[str, str], catalog_path: Path) -> None:
    folder = tmp_path / "checked"
    notebook = standard_notebook(folder)
    write_notebook(folder / "raises.ipynb", "%load_ext tracker", "z = 3",
                   "# NBVAL_RAISES_EXCEPTION\nraise RuntimeError('expected by nbval')")

    run_tool([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval",
              "standard.ipynb", "raises.ipynb"], cwd=folder, env=env)

    runs = runs_by_name(catalog_path, "standard #1", "raises #1")
    assert set(runs) == {"standard #1", "raises #1"}
    # nbval kills its kernels (no atexit): the extension ends each run after its last cell.
    assert runs["standard #1"].status == "completed"
    assert_standard_run(runs["standard #1"], folder, notebook)
    assert runs["raises #1"].status == "failed"
    assert runs["raises #1"].cells[-1]["error_type"] == "RuntimeError"


def test_plain_ipython_process_records_a_run_without_notebook(
        tmp_path: Path, env: dict[str, str], catalog_path: Path) -> None:
    script = tmp_path / "analysis.ipy"
    script.write_text("%load_ext tracker\nimport tracker\ntracker.log_metric('m', 2.0)\n",
                      encoding="utf-8")
    result = run_tool([str(BIN / "ipython"), "--no-banner", "--quick", str(script)],
                      cwd=tmp_path, env=env)
    assert result.stderr.count("no notebook found") == 1

    run = tracker.Catalog(catalog_path).get_run(tracker.Catalog(catalog_path).runs()["id"][0])
    assert (run.name, run.notebook, run.status) == ("ipython-session", None, "completed")
    assert run.metrics == {"m": 2.0}


# ------------------------------------------------------------------------ crashes and concurrency


def test_killed_kernel_is_marked_crashed_and_keeps_finished_cells(
        tmp_path: Path, env: dict[str, str], catalog_path: Path) -> None:
    notebook = write_notebook(tmp_path / "doomed.ipynb", "x = 1")
    with kernel(tmp_path, {**env, "TRACKER_NOTEBOOK": str(notebook)}) as (manager, client):
        execute(client, "%load_ext tracker")
        execute(client, "import tracker\ntracker.log_metric('progress', 0.5)\nvalue = 7")
        execute(client, "with open('partial.txt', 'w') as handle:\n    handle.write('half')")
        run_id = execute(client, "print(tracker.current_run().id)").strip()
        client.execute("import time\ntime.sleep(60)")  # still running when the kernel dies
        time.sleep(0.5)
        os.kill(manager.provisioner.pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while manager.is_alive() and time.monotonic() < deadline:  # reaps the process
            time.sleep(0.05)

    run = tracker.Catalog(catalog_path).get_run(run_id)
    assert run.status == "crashed"
    assert run.name == "doomed #1" and run.notebook == str(notebook)
    assert run.ended_at is not None
    assert run.metrics == {"progress": 0.5}
    assert [cell["source"].splitlines()[0] for cell in run.cells] == [
        "%load_ext tracker", "import tracker", "with open('partial.txt', 'w') as handle:",
        "print(tracker.current_run().id)"]
    assert uris(run.outputs) == [str(tmp_path / "partial.txt")]


def test_two_kernels_writing_to_one_catalog_lose_nothing(tmp_path: Path, env: dict[str, str],
                                                         catalog_path: Path) -> None:
    points, cells = 300, 8
    loop = (f"for step in range({points}):\n"
            "    tracker.log_metric('loss', 1 / (step + 1), step=step)\n"
            "    if step % 15 == 14:\n"
            "        tracker.flush()  # many small write transactions, racing the other kernel\n")
    with contextlib.ExitStack() as stack:
        clients = []
        for name in ("left", "right"):
            folder = tmp_path / name
            notebook = write_notebook(folder / f"{name}.ipynb", "x = 1")
            clients.append(stack.enter_context(
                kernel(folder, {**env, "TRACKER_NOTEBOOK": str(notebook)}))[1])
        ids = [execute(client, "%load_ext tracker\nimport tracker\n"
                               "print(tracker.current_run().id)").strip() for client in clients]
        requests = [(client, client.execute(loop)) for client in clients]  # both at once
        for client, request in requests:
            while (reply := client.get_shell_msg(timeout=TIMEOUT))["parent_header"].get(
                    "msg_id") != request:
                pass
            assert reply["content"]["status"] == "ok", reply["content"]
        for index in range(cells - 2):
            for client in clients:
                execute(client, f"tracker.log_param('p{index}', {index})")

    catalog = tracker.Catalog(catalog_path)
    for run_id in ids:
        run = catalog.get_run(run_id)
        assert run.status == "completed"
        assert len(run.cells) == cells
        assert run.params == {f"p{index}": index for index in range(cells - 2)}
        history = catalog.metric_history(run_id, "loss")
        assert list(history["step"]) == list(range(points))


def test_secrets_reach_neither_the_spool_nor_the_catalog_nor_the_stored_notebook(
        tmp_path: Path, env: dict[str, str], catalog_path: Path) -> None:
    password = "hunter2-" + "correct-horse"
    token = "ghp_" + "aB3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1dE3fG5"  # GitHub's format, in pieces
    cells: list[str | tuple[str, str]] = [
        "%load_ext tracker",
        ("parameters", f"db_password = '{password}'\nrows = 3"),
        f"import os\nos.environ['GITHUB_TOKEN'] = '{token}'\nprint(len(db_password))",
        "import tracker\ntracker.current_run().log_param('github', os.environ['GITHUB_TOKEN'])",
    ]
    notebook = write_notebook(tmp_path / "secrets.ipynb", *cells)
    secrets = (password.encode(), token.encode())

    with kernel(tmp_path, {**env, "TRACKER_NOTEBOOK": str(notebook)}) as (_, client):
        for cell in cells:
            execute(client, cell if isinstance(cell, str) else cell[1])
        spooled = b"".join(path.read_bytes()
                           for path in catalog_path.parent.glob("*.spool/*.jsonl"))
        assert b"<redacted:str:" in spooled  # the cells are in the spool, redacted
        assert not [secret for secret in secrets if secret in spooled]

    run = runs_by_name(catalog_path)["secrets #1"]
    assert run.params["db_password"].startswith("<redacted:str:") and run.params["rows"] == 3
    assert run.params["github"].startswith("<redacted:str:")
    stored = [a for a in run.artifacts if a["role"] == "notebook"]
    blob = catalog_path.parent / "catalog.duckdb.blobs" / stored[0]["blob"]
    assert b"<redacted:str:" in blob.read_bytes()
    files = [path for path in catalog_path.parent.rglob("*") if path.is_file()]
    assert blob in files
    leaks = [(path.name, secret) for path in files for secret in secrets
             if secret in path.read_bytes()]
    assert leaks == []
