"""The outputs a kernel publishes, stored with the run when the runner saves no executed notebook
(``jupyter execute nb.ipynb`` without ``--inplace``/``--output``, nbclient used from Python).

The runners are run for real and the stored notebook read back with ``tracker notebook RUN -o``,
as a user would; the notebook as saved stays recorded beside it.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

import tracker
from tracker import cell_outputs
from tracker.cli import main

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
TIMEOUT = 120
PNG = base64.b64encode(bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c63f8cfc0f01f0005000201a5d0c1ad0000000049454e44ae426082")).decode()
CELLS = ("%load_ext tracker",
         "print('hello from the kernel')",
         "6 * 7",
         "import base64\nfrom IPython.display import Image, display\n"
         f"display(Image(data=base64.b64decode('{PNG}')))",
         "1 / 0",
         "print('after the error')")


def write_notebook(path: Path, *cells: str) -> Path:
    notebook = new_notebook(cells=[new_markdown_cell("# Outputs", id="title"), *(
        new_code_cell(source, id=f"cell-{index}") for index, source in enumerate(cells))],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}})
    nbformat.write(notebook, path)
    return path


def stored(runner_env: dict[str, str], dest: Path) -> tuple[str, nbformat.NotebookNode]:
    """The only run's id and the notebook ``tracker notebook RUN -o`` gives back, validated."""
    catalog = runner_env["TRACKER_CATALOG"]
    run_id = tracker.Catalog(catalog).runs()["id"][0]
    assert main(["--catalog", catalog, "notebook", run_id, "-o", str(dest)]) == 0
    notebook = nbformat.read(dest, as_version=4)
    nbformat.validate(notebook)
    return run_id, notebook


def test_plain_jupyter_execute_stores_the_outputs_the_kernel_published(
        tmp_path: Path, runner_env: dict[str, str]) -> None:
    source = write_notebook(tmp_path / "nb.ipynb", *CELLS)
    saved = source.read_bytes()
    result = subprocess.run([str(BIN / "jupyter"), "execute", "--allow-errors", "nb.ipynb"],
                            cwd=tmp_path, env=runner_env, capture_output=True, text=True,
                            timeout=TIMEOUT, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "TrackerWarning" not in result.stderr
    assert source.read_bytes() == saved  # the user's notebook is not touched

    run_id, notebook = stored(runner_env, tmp_path / "out.ipynb")
    title, load, hello, answer, image, error, after = notebook.cells
    assert title.cell_type == "markdown" and title.source == "# Outputs"
    assert [cell.execution_count for cell in notebook.cells[1:]] == [1, 2, 3, 4, 5, 6]
    assert load.outputs == []
    assert hello.outputs == [{"output_type": "stream", "name": "stdout",
                              "text": "hello from the kernel\n"}]
    assert answer.outputs == [{"output_type": "execute_result", "execution_count": 3,
                               "data": {"text/plain": "42"}, "metadata": {}}]
    assert [output.output_type for output in image.outputs] == ["display_data"]
    assert image.outputs[0].data["image/png"] == PNG
    [failure] = error.outputs
    assert (failure.output_type, failure.ename, failure.evalue) == (
        "error", "ZeroDivisionError", "division by zero")
    assert any("1 / 0" in line or "\x1b" in line for line in failure.traceback)
    assert after.outputs[0].text == "after the error\n"
    # The notebook as saved stays recorded; the executed one is the run's newest.
    recorded = tracker.Catalog(runner_env["TRACKER_CATALOG"]).artifacts(run_id, role="notebook")
    assert list(recorded["uri"]) == [str(source), str(source)]
    assert len(set(recorded["hash"])) == 2


def test_nbclient_from_python_without_saving_keeps_outputs_cut_and_scrubbed(
        tmp_path: Path, runner_env: dict[str, str]) -> None:
    """Cells matched by source (nbclient sends no cell id), outputs as a notebook shows them
    (a stream written in pieces is one output, a display updated later shows its last value, a
    cleared output is gone), a printed secret redacted, an output past its cap cut with a note and
    the outputs past the run's cap left out with one."""
    from nbclient import NotebookClient

    big = cell_outputs.MAX_OUTPUT + 1000
    path = write_notebook(
        tmp_path / "analysis.ipynb", "%load_ext tracker",
        "import sys\nprint('a', end='')\nsys.stdout.flush()\nprint('b')",
        "from IPython.display import display, clear_output\n"
        "display('gone')\nclear_output()\nshown = display('first', display_id=True)",
        "shown.update('updated')",
        "db_password = 'hunter2-very-secret'\nprint(db_password)",
        f"print('x' * {big})",
        "for _ in range(6):\n"
        f"    display({{'text/plain': 'y' * {cell_outputs.MAX_RUN // 4}}}, raw=True)")
    executed = NotebookClient(nbformat.read(path, as_version=4), timeout=TIMEOUT,
                              kernel_name="python3",
                              resources={"metadata": {"path": str(tmp_path)}})
    executed.execute(env=runner_env)

    _, notebook = stored(runner_env, tmp_path / "out.ipynb")
    _, _, pieces, display, update, secret, huge, many = notebook.cells
    assert pieces.outputs == [{"output_type": "stream", "name": "stdout", "text": "ab\n"}]
    assert [output.data["text/plain"] for output in display.outputs] == ["'updated'"]
    assert update.outputs == []
    assert "hunter2" not in json.dumps(secret.outputs) and "<redacted" in secret.outputs[0].text
    [cut] = huge.outputs
    assert cut.text.startswith("x" * 1000)
    assert len(cut.text) < big and "truncated by tracker" in cut.text
    # Past the run's cap, a cell's further outputs are one note.
    *kept, note = many.outputs
    assert {output.output_type for output in kept} == {"display_data"} and len(kept) < 6
    assert note.text.startswith("[outputs not kept by tracker")


def test_a_failure_while_keeping_outputs_leaves_them_to_the_client_and_the_saved_notebook(
        tmp_path: Path, runner_env: dict[str, str]) -> None:
    from nbclient import NotebookClient

    path = write_notebook(
        tmp_path / "broken.ipynb", "%load_ext tracker",
        "get_ipython()._tracker_session.outputs._outputs = None  # the next output fails",
        "print('still shown')")
    client = NotebookClient(nbformat.read(path, as_version=4), timeout=TIMEOUT,
                            kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    executed = client.execute(env=runner_env)

    assert executed.cells[-1].outputs[0].text == "still shown\n"  # the client saw it
    run_id, notebook = stored(runner_env, tmp_path / "out.ipynb")
    assert [cell.get("outputs", []) for cell in notebook.cells] == [[], [], [], []]
    assert tracker.Catalog(runner_env["TRACKER_CATALOG"]).get_run(run_id).status == "completed"


def test_an_interactive_session_keeps_each_cell_s_last_outputs_matched_by_cell_id(
        tmp_path: Path, runner_env: dict[str, str]) -> None:
    """As JupyterLab runs cells: each request carries the cell's id, a cell runs again, and one
    is edited and not saved (matched by its id, not its source)."""
    from jupyter_client.manager import KernelManager

    path = write_notebook(tmp_path / "lab.ipynb", "%load_ext tracker", "print('first')",
                          "print('saved source')")
    manager = KernelManager(kernel_name="python3")
    manager.start_kernel(cwd=str(tmp_path), env={**runner_env, "TRACKER_NOTEBOOK": str(path)})
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=TIMEOUT)
        for cell_id, code in (("cell-0", "%load_ext tracker"), ("cell-1", "print('first')"),
                              ("cell-1", "print('again')"), ("cell-2", "print('edited')")):
            request = client.session.msg("execute_request", {
                "code": code, "silent": False, "store_history": True, "user_expressions": {},
                "allow_stdin": False, "stop_on_error": True}, metadata={"cellId": cell_id})
            client.shell_channel.send(request)
            reply = client.get_shell_msg(timeout=TIMEOUT)
            while reply["parent_header"].get("msg_id") != request["header"]["msg_id"]:
                reply = client.get_shell_msg(timeout=TIMEOUT)
            assert reply["content"]["status"] == "ok", reply["content"]
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=False)

    _, notebook = stored(runner_env, tmp_path / "out.ipynb")
    _, load, rerun, edited = notebook.cells
    assert [cell.execution_count for cell in (load, rerun, edited)] == [1, 3, 4]
    assert [output.text for output in rerun.outputs] == ["again\n"]
    assert [output.text for output in edited.outputs] == ["edited\n"]
    assert edited.source == "print('saved source')"  # the notebook as saved
