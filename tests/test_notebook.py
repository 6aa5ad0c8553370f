"""Finding the running notebook in every execution mode, and reading what it says."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tracker._process import RunnerOutput, notebooks_in_argv, papermill_output, runner_output
from tracker.notebook import (
    Located,
    NotebookInfo,
    assigned_names,
    cell_tags,
    find_notebook,
    is_injected_parameters,
    read_notebook,
)

NOTEBOOKS = Path(__file__).parent / "data" / "notebooks"
VENV_BIN = Path(sys.executable).parent
FIRST_CELL = "%load_ext tracker  # marker-7f3a9"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory and none of the variables that name a notebook."""
    for name in ("TRACKER_NOTEBOOK", "JPY_SESSION_NAME", "PYTEST_CURRENT_TEST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write_notebook(path: Path, *sources: str, metadata: dict | None = None) -> Path:
    """A minimal valid v4 notebook whose code cells hold ``sources``."""
    cells = [
        {"cell_type": "code", "id": f"c{i}", "metadata": {}, "source": source,
         "outputs": [], "execution_count": None}
        for i, source in enumerate(sources)
    ]
    notebook = {"cells": cells, "metadata": metadata or {}, "nbformat": 4, "nbformat_minor": 5}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(notebook), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- find_notebook


def test_override_argument_wins_over_everything(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRACKER_NOTEBOOK", str(write_notebook(workdir / "env.ipynb", "y = 2")))
    vscode = write_notebook(workdir / "vs.ipynb", "x = 1")
    given = write_notebook(workdir / "given.ipynb", "z = 3")
    located = find_notebook({"__vsc_ipynb_file__": str(vscode)}, override="given.ipynb")
    assert located == Located(str(given), "override")


def test_env_override_wins_over_vscode(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = write_notebook(workdir / "elsewhere" / "env.ipynb", "y = 2")
    monkeypatch.setenv("TRACKER_NOTEBOOK", str(env))
    vscode = write_notebook(workdir / "vs.ipynb", "x = 1")
    located = find_notebook({"__vsc_ipynb_file__": str(vscode)})
    assert located == Located(str(env), "override")


@pytest.mark.parametrize("name", ["my-nb", "my-nb.ipynb", "./my-nb"])
def test_a_notebook_named_without_its_suffix_is_found_in_the_working_folder(
        workdir: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    notebook = write_notebook(workdir / "my-nb.ipynb", "x = 1")
    monkeypatch.setenv("TRACKER_NOTEBOOK", name)
    assert find_notebook({}) == Located(str(notebook), "override")


def test_a_file_named_exactly_wins_over_the_name_with_a_suffix(workdir: Path) -> None:
    write_notebook(workdir / "job.ipynb", "x = 1")
    exact = write_notebook(workdir / "job", "y = 2")  # a notebook saved without the suffix
    assert find_notebook({}, override="job") == Located(str(exact), "override")


def test_a_name_no_notebook_has_says_what_was_looked_for(workdir: Path) -> None:
    located = find_notebook({}, override="missing")
    assert located.path == str(workdir / "missing.ipynb")
    assert located.problem is not None
    assert str(workdir / "missing") in located.problem
    assert str(workdir / "missing.ipynb") in located.problem


def test_vscode_variable_wins_over_session(workdir: Path) -> None:
    vscode = write_notebook(workdir / "vs.ipynb", "x = 1")
    session = write_notebook(workdir / "lab.ipynb", "x = 1")
    located = find_notebook({"__vsc_ipynb_file__": str(vscode), "__session__": str(session)})
    assert located == Located(str(vscode), "vscode")


def test_session_variable_names_an_existing_notebook(workdir: Path) -> None:
    session = write_notebook(workdir / "lab.ipynb", "x = 1")
    assert find_notebook({"__session__": str(session)}) == Located(str(session), "jupyter-server")


def test_session_may_be_relative_to_cwd_or_its_ancestors(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = write_notebook(workdir / "project" / "lab.ipynb", "x = 1")
    assert find_notebook({"__session__": "project/lab.ipynb"}).path == str(session)
    monkeypatch.chdir(workdir / "project")  # the server root is above the kernel's cwd
    assert find_notebook({"__session__": "project/lab.ipynb"}).path == str(session)


def test_session_env_var_is_used_without_the_variable(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = write_notebook(workdir / "lab.ipynb", "x = 1")
    monkeypatch.setenv("JPY_SESSION_NAME", str(session))
    assert find_notebook({}) == Located(str(session), "jupyter-server")


def test_missing_session_notebook_is_not_trusted(workdir: Path) -> None:
    # A notebook renamed since the kernel started: the old name no longer exists.
    assert find_notebook({"__session__": str(workdir / "renamed.ipynb")}).mode == "none"


def test_session_that_is_not_a_notebook_is_ignored(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    console = workdir / "console-1-abc"
    console.write_text("", encoding="utf-8")
    monkeypatch.setenv("JPY_SESSION_NAME", str(console))
    assert find_notebook({"__session__": str(console)}).mode == "none"


@pytest.mark.parametrize(
    "current_test",
    [
        "nbs/check.ipynb::Cell 0 (setup)",  # relative to the rootdir, an ancestor of the cwd
        "check.ipynb::Cell 3 (call)",  # relative to the cwd
        "{root}/nbs/check.ipynb::Cell 12 (teardown)",  # absolute
    ],
)
def test_nbval_current_test_names_the_notebook(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, current_test: str
) -> None:
    notebook = write_notebook(workdir / "nbs" / "check.ipynb", "x = 1")
    monkeypatch.chdir(workdir / "nbs")  # nbval runs the kernel in the notebook's folder
    monkeypatch.setenv("PYTEST_CURRENT_TEST", current_test.format(root=workdir))
    assert find_notebook({}) == Located(str(notebook), "nbval")


def test_current_test_of_a_python_test_is_not_a_notebook(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTEST_CURRENT_TEST", "tests/test_x.py::test_y (call)")
    assert find_notebook({}).mode == "none"


def test_nothing_found_gives_none(workdir: Path) -> None:
    write_notebook(workdir / "other.ipynb", "print('unrelated')")
    assert find_notebook({}, first_cell=FIRST_CELL) == Located(None, "none")
    assert find_notebook() == Located(None, "none")


def test_bad_inputs_never_raise(workdir: Path) -> None:
    assert find_notebook({"__vsc_ipynb_file__": 3, "__session__": object()}).mode == "none"
    assert find_notebook(None, first_cell="   ").mode == "none"


def test_content_match_finds_the_one_notebook_with_the_cell(workdir: Path) -> None:
    notebook = write_notebook(workdir / "mine.ipynb", "import os", f"  {FIRST_CELL}\n\n")
    write_notebook(workdir / "other.ipynb", "%load_ext tracker")
    (workdir / "junk.ipynb").write_text("{not json", encoding="utf-8")
    located = find_notebook({}, first_cell=FIRST_CELL)
    assert located == Located(str(notebook), "content-match")


def test_content_match_survives_json_escaping(workdir: Path) -> None:
    first = 'label = "caf\u00e9"\r\nsep\t= "</a>"  # marker-7f3a9\n'
    notebook = workdir / "escaped.ipynb"
    cell = {"cell_type": "code", "metadata": {}, "source": first.splitlines(keepends=True),
            "outputs": [], "execution_count": None}
    # ensure_ascii, as some writers do: "\u00e9" in the file, not "é".
    notebook.write_text(json.dumps({"cells": [cell], "metadata": {}, "nbformat": 4}), "utf-8")
    assert find_notebook({}, first_cell=first).path == str(notebook)


def test_content_match_with_two_candidates_gives_none(workdir: Path) -> None:
    write_notebook(workdir / "a.ipynb", FIRST_CELL)
    write_notebook(workdir / "b.ipynb", "x = 1", FIRST_CELL)
    assert find_notebook({}, first_cell=FIRST_CELL).mode == "none"


def test_content_match_prefers_the_input_over_papermill_outputs(workdir: Path) -> None:
    source = write_notebook(workdir / "train.ipynb", FIRST_CELL)
    papermill = {"papermill": {"input_path": str(source), "output_path": "train-out.ipynb"}}
    write_notebook(workdir / "train-out.ipynb", FIRST_CELL, metadata=papermill)
    assert find_notebook({}, first_cell=FIRST_CELL).path == str(source)


def run_under(tool: Path, child_code: str, *args: str, cwd: Path) -> Located:
    """Run ``child_code`` in a grandchild of a process whose command line is ``tool args``."""
    tool.write_text(
        "import subprocess, sys\n"
        # `sh -c "...; true"` forks, so the kernel stand-in is two levels below the tool.
        "subprocess.run(['sh', '-c', sys.argv[-1] + '; true'], check=True)\n",
        encoding="utf-8",
    )
    command = f"{sys.executable} -c {child_code!r}"
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    done = subprocess.run(
        [sys.executable, str(tool), *args, command], cwd=cwd, env=env,
        capture_output=True, text=True, check=True, timeout=60,
    )
    mode, path = done.stdout.split()
    return Located(None if path == "None" else path, mode)


def test_parent_command_line_names_the_notebook(
    workdir: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # A real process tree: papermill-named tool -> sh -> python, so the grandparent is read,
    # and the relative input path resolves against the tool's cwd, not the child's.
    notebook = write_notebook(workdir / "in.ipynb", "x = 1")
    tool = tmp_path_factory.mktemp("bin") / "papermill"
    child = (
        "import os; os.chdir('/'); from tracker.notebook import find_notebook as f; "
        "loc = f({}); print(loc.mode, loc.path)"
    )
    located = run_under(tool, child, "in.ipynb", "out.ipynb", "-p", "a", "1", cwd=workdir)
    assert located == Located(str(notebook), "parent-cmdline")


def test_parent_naming_several_notebooks_is_narrowed_by_first_cell(
    workdir: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    write_notebook(workdir / "a.ipynb", "x = 1")
    wanted = write_notebook(workdir / "b.ipynb", FIRST_CELL)
    tool = tmp_path_factory.mktemp("bin") / "jupyter-nbconvert"
    child = (
        "import os; os.chdir('/'); from tracker.notebook import find_notebook as f; "
        f"loc = f({{}}, first_cell={FIRST_CELL!r}); print(loc.mode, loc.path)"
    )
    located = run_under(tool, child, "--execute", "a.ipynb", "b.ipynb", cwd=workdir)
    assert located == Located(str(wanted), "parent-cmdline")


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["/venv/bin/python3", "/venv/bin/jupyter-execute", "nb.ipynb"], ["/w/nb.ipynb"]),
        (["python", "/venv/bin/jupyter", "execute", "--timeout", "60", "a/nb.ipynb"],
         ["/w/a/nb.ipynb"]),
        (["jupyter-execute", "--output=x.ipynb", "--kernel_name", "py", "nb.ipynb"],
         ["/w/nb.ipynb"]),
        (["jupyter", "nbconvert", "--to", "notebook", "--execute", "--output", "out.ipynb",
          "nb.ipynb"], ["/w/nb.ipynb"]),
        (["jupyter-nbconvert", "--ExecutePreprocessor.timeout", "600", "--execute",
          "/abs/nb.ipynb"], ["/abs/nb.ipynb"]),
        (["python", "-u", "-m", "nbconvert", "--execute", "--inplace", "nb.ipynb"],
         ["/w/nb.ipynb"]),
        (["python3.11", "-X", "frozen_modules=off", "-m", "nbconvert", "--execute", "../nb.ipynb"],
         ["/nb.ipynb"]),
        (["papermill", "in.ipynb", "out.ipynb"], ["/w/in.ipynb"]),
        (["/venv/bin/python", "/venv/bin/papermill", "-p", "alpha", "0.1", "-p", "src", "x.ipynb",
          "in.ipynb", "out.ipynb", "--cwd", "/data"], ["/w/in.ipynb"]),
        (["papermill", "-y", "a: 1", "-f", "p.yaml", "-k", "python3", "--cwd=/d", "nbs/in.ipynb",
          "out.ipynb"], ["/w/nbs/in.ipynb"]),
        (["papermill", "-kpython3", "-r", "name", "raw.ipynb", "in.ipynb", "out.ipynb"],
         ["/w/in.ipynb"]),
        (["python", "-m", "papermill", "--", "in.ipynb", "out.ipynb"], ["/w/in.ipynb"]),
        (["/venv/bin/python", "/venv/bin/pytest", "--nbval", "nbs/a.ipynb"], ["/w/nbs/a.ipynb"]),
        (["python", "-m", "pytest", "--nbval-lax", "-k", "x", "--deselect", "b.ipynb::Cell 1",
          "a.ipynb::Cell 0"], ["/w/a.ipynb"]),
        (["py.test", "--nbval", "a.ipynb", "tests/"], ["/w/a.ipynb"]),
    ],
)
def test_notebook_running_commands_name_their_notebook(
    argv: list[str], expected: list[str]
) -> None:
    assert notebooks_in_argv(argv, "/w") == expected


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["jupyter", "lab", "nb.ipynb"],  # a server, not a run: __session__ covers it
        ["python", "-m", "ipykernel_launcher", "-f", "/tmp/kernel.json"],
        ["python", "-c", "import x", "nb.ipynb"],
        ["python", "my_script.py", "nb.ipynb"],
        ["papermill", "-", "out.ipynb"],
        ["bash"],
    ],
)
def test_other_commands_name_no_notebook(argv: list[str]) -> None:
    assert notebooks_in_argv(argv, "/w") == []


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["papermill", "in.ipynb", "out/run.ipynb", "-p", "lr", "0.1"], "/w/out/run.ipynb"),
        (["python", "-m", "papermill", "-k", "python3", "in.ipynb", "/r/o.ipynb"], "/r/o.ipynb"),
        (["papermill", "in.ipynb", "-"], None),  # to stdout: nothing on disk to keep
        (["papermill", "in.ipynb", "s3://bucket/out.ipynb"], None),
        (["jupyter", "execute", "in.ipynb"], None),
    ],
)
def test_papermill_names_the_executed_notebook_it_writes(argv: list[str],
                                                         expected: str | None) -> None:
    assert papermill_output(argv, "/w") == expected


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        # jupyter execute writes nothing unless told, next to the notebook when told
        (["jupyter", "execute", "sub/nb.ipynb"], None),
        (["jupyter", "execute", "--inplace", "sub/nb.ipynb"], "/w/sub/nb.ipynb"),
        (["jupyter-execute", "--output", "ran.ipynb", "sub/nb.ipynb"], "/w/sub/ran.ipynb"),
        (["jupyter", "execute", "--output=ran_{notebook_name}", "sub/nb.ipynb"],
         "/w/sub/ran_nb.ipynb"),
        (["jupyter", "execute", "--NbClientApp.inplace=True", "sub/nb.ipynb"], "/w/sub/nb.ipynb"),
        (["jupyter", "execute", "--output", "{oops}", "sub/nb.ipynb"], None),
        # nbconvert: only to a notebook file; its default name has a .nbconvert suffix
        (["jupyter", "nbconvert", "--to", "notebook", "--execute", "--inplace", "sub/nb.ipynb"],
         "/w/sub/nb.ipynb"),
        (["python", "-m", "nbconvert", "--execute", "--inplace", "sub/nb.ipynb"],
         "/w/sub/nb.ipynb"),
        (["jupyter", "nbconvert", "--to", "notebook", "--execute", "--output", "ran",
          "sub/nb.ipynb"], "/w/sub/ran.ipynb"),
        (["jupyter", "nbconvert", "--to=notebook", "--execute", "--output=ran.ipynb",
          "sub/nb.ipynb"], "/w/sub/ran.ipynb"),
        (["jupyter", "nbconvert", "--to", "notebook", "--execute", "sub/nb.ipynb"],
         "/w/sub/nb.nbconvert.ipynb"),
        (["jupyter", "nbconvert", "--to", "notebook", "--execute", "--output-dir", "out",
          "sub/nb.ipynb"], "/w/out/nb.ipynb"),
        (["jupyter", "nbconvert", "--to", "html", "--execute", "sub/nb.ipynb"], None),
        (["jupyter", "nbconvert", "--to", "notebook", "--execute", "--stdout", "sub/nb.ipynb"],
         None),
        (["jupyter", "execute", "--inplace", "sub/other.ipynb"], None),  # not this notebook
    ],
)
def test_runners_name_the_executed_notebook_they_write_after_the_kernel(
        argv: list[str], expected: str | None) -> None:
    found = runner_output(argv, "/w", "/w/sub/nb.ipynb")
    assert found == (RunnerOutput(expected, after_exit=True) if expected else None)


def test_papermill_writes_its_executed_notebook_while_the_kernel_runs() -> None:
    found = runner_output(["papermill", "sub/nb.ipynb", "out.ipynb"], "/w", "/w/sub/nb.ipynb")
    assert found == RunnerOutput("/w/out.ipynb", after_exit=False)


def test_nbconvert_expands_quoted_globs(tmp_path: Path) -> None:
    for name in ("b.ipynb", "a.ipynb", "notes.txt"):
        (tmp_path / name).write_text("{}", encoding="utf-8")
    found = notebooks_in_argv(["jupyter-nbconvert", "--execute", "*.ipynb"], str(tmp_path))
    assert found == [str(tmp_path / "a.ipynb"), str(tmp_path / "b.ipynb")]


def clean_env(tmp_path: Path) -> dict[str, str]:
    drop = {"PYTEST_CURRENT_TEST", "TRACKER_NOTEBOOK", "JPY_SESSION_NAME"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["IPYTHONDIR"] = str(tmp_path / "ipython")  # no auto-loaded profile
    env["TRACKER_TEST_OUT"] = str(tmp_path / "located.txt")
    return env


@pytest.mark.slow
def test_jupyter_execute_kernel_finds_its_notebook(tmp_path: Path) -> None:
    folder = tmp_path / "work"
    shutil.copytree(NOTEBOOKS, folder)
    subprocess.run(
        [str(VENV_BIN / "jupyter"), "execute", "work/locate_self.ipynb"],
        cwd=tmp_path, env=clean_env(tmp_path), check=True, capture_output=True, timeout=120,
    )
    mode, path, _ = (tmp_path / "located.txt").read_text(encoding="utf-8").splitlines()
    assert (mode, path) == ("parent-cmdline", str(folder / "locate_self.ipynb"))


@pytest.mark.slow
def test_papermill_kernel_finds_its_input_notebook(tmp_path: Path) -> None:
    folder = tmp_path / "work"
    shutil.copytree(NOTEBOOKS, folder)
    # Launched from a shell, as users do; `--cwd /` moves papermill itself to "/", so the
    # relative input path must be resolved against the folder papermill was started in.
    command = f"{VENV_BIN / 'papermill'} work/locate_self.ipynb out.ipynb -p label tuned --cwd /"
    subprocess.run(
        ["sh", "-c", f"{command}; true"],
        cwd=tmp_path, env=clean_env(tmp_path), check=True, capture_output=True, timeout=120,
    )
    lines = (tmp_path / "located.txt").read_text(encoding="utf-8").splitlines()
    assert lines == ["parent-cmdline", str(folder / "locate_self.ipynb"), "tuned"]


@pytest.mark.slow
def test_nbclient_api_kernel_finds_its_notebook_by_content(tmp_path: Path) -> None:
    # Nothing names the notebook here: only the cell's source, matched in the kernel's cwd.
    folder = tmp_path / "work"
    shutil.copytree(NOTEBOOKS, folder)
    script = (
        "import nbclient, nbformat\n"
        "nb = nbformat.read('work/locate_self.ipynb', as_version=4)\n"
        "nbclient.NotebookClient(nb, resources={'metadata': {'path': 'work'}}).execute()\n"
    )
    subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path, env=clean_env(tmp_path), check=True, capture_output=True, timeout=120,
    )
    mode, path, _ = (tmp_path / "located.txt").read_text(encoding="utf-8").splitlines()
    assert (mode, path) == ("content-match", str(folder / "locate_self.ipynb"))


# --------------------------------------------------------------------------- read_notebook


def test_read_notebook_title_metadata_and_parameters() -> None:
    info = read_notebook(str(NOTEBOOKS / "titled.ipynb"))
    assert info.path == str(NOTEBOOKS / "titled.ipynb")
    assert info.name == "titled"
    assert info.title == "Churn model: *training*"  # fenced "# ..." skipped, closing #s gone
    assert info.tracker_metadata["project"] == "churn"
    assert info.tracker_metadata["capture"]["exclude"] == ["*.tmp"]
    assert info.parameters_source == "learning_rate = 0.01\nepochs: int = 10\nlayers, width = 3, 64"
    assert info.injected_source == "# Parameters\nlearning_rate = 0.1\n"
    assert [cell.cell_id for cell in info.cells] == ["load", "params", "injected", "train"]


def test_read_notebook_without_heading_or_tracker_metadata(tmp_path: Path) -> None:
    info = read_notebook(str(write_notebook(tmp_path / "plain.ipynb", "x = 1")))
    assert (info.title, info.tracker_metadata, info.parameters_source) == (None, {}, None)


def test_read_notebook_checks_the_tracker_metadata(tmp_path: Path) -> None:
    usable = read_notebook(str(write_notebook(
        tmp_path / "usable.ipynb", "x = 1", metadata={"tracker": {"project": "churn"}})))
    assert (usable.settings.project, usable.settings.problems) == ("churn", ())
    junk = read_notebook(str(write_notebook(
        tmp_path / "junk.ipynb", "x = 1", metadata={"tracker": [{"project": "churn"}]})))
    assert junk.tracker_metadata == {} and junk.settings.project is None
    assert junk.settings.problems[0].startswith("metadata.tracker must be an object")


def test_setext_heading_is_a_title(tmp_path: Path) -> None:
    path = write_notebook(tmp_path / "s.ipynb", "x = 1")
    notebook = json.loads(path.read_text(encoding="utf-8"))
    notebook["cells"].insert(0, {"cell_type": "markdown", "metadata": {}, "id": "m",
                                 "source": ["Sales report\n", "============\n", "text"]})
    path.write_text(json.dumps(notebook), encoding="utf-8")
    assert read_notebook(str(path)).title == "Sales report"


def edited(tmp_path: Path, change: Callable[[list], None]) -> str | None:
    notebook = json.loads((NOTEBOOKS / "titled.ipynb").read_text(encoding="utf-8"))
    change(notebook["cells"])
    path = tmp_path / "copy.ipynb"
    path.write_text(json.dumps(notebook), encoding="utf-8")
    return read_notebook(str(path)).code_hash


def test_code_hash_is_stable_and_follows_the_code_only(tmp_path: Path) -> None:
    original = read_notebook(str(NOTEBOOKS / "titled.ipynb")).code_hash
    assert original.startswith("xxh3_128:") and len(original) == len("xxh3_128:") + 32
    assert read_notebook(str(NOTEBOOKS / "titled.ipynb")).code_hash == original
    assert edited(tmp_path, lambda cells: None) == original

    def edit_markdown(cells: list) -> None:
        cells[0]["source"] = "Different prose"

    def edit_injected(cells: list) -> None:
        cells[4]["source"] = "# Parameters\nlearning_rate = 0.5\n"

    def edit_code(cells: list) -> None:
        cells[5]["source"] = "model = train(learning_rate, epochs * 2)"

    assert edited(tmp_path, edit_markdown) == original
    assert edited(tmp_path, edit_injected) == original  # papermill runs share the code hash
    assert edited(tmp_path, edit_code) != original


@pytest.mark.parametrize("content", ['{"cells": [{"cell_type": "co', "[1, 2]", "", "\xff\xfe"])
def test_unreadable_notebook_gives_minimal_info(tmp_path: Path, content: str) -> None:
    path = tmp_path / "half.ipynb"
    path.write_text(content, encoding="latin-1")
    assert read_notebook(str(path)) == NotebookInfo(path=str(path), name="half")


def test_half_written_and_missing_notebooks_give_minimal_info() -> None:
    broken = read_notebook(str(NOTEBOOKS / "broken.ipynb"))
    assert broken == NotebookInfo(path=str(NOTEBOOKS / "broken.ipynb"), name="broken")
    assert read_notebook("/no/such/dir/gone.ipynb").name == "gone"


def test_odd_shapes_inside_valid_json_are_tolerated(tmp_path: Path) -> None:
    path = tmp_path / "odd.ipynb"
    notebook = {"nbformat": 4, "metadata": {"tracker": "not a dict"}, "cells": [
        "not a cell", {"cell_type": "code", "source": None, "metadata": {"tags": "parameters"}},
        {"cell_type": "code", "source": ["a = 1\n", 7, "b = 2"], "metadata": []},
    ]}
    path.write_text(json.dumps(notebook), encoding="utf-8")
    info = read_notebook(str(path))
    assert info.tracker_metadata == {}
    assert [(c.cell_id, c.source, c.tags) for c in info.cells] == [
        (None, "", ()), (None, "a = 1\nb = 2", ())
    ]


def test_pre_v4_notebook_is_upgraded() -> None:
    info = read_notebook(str(NOTEBOOKS / "v3.ipynb"))
    assert info.title == "Old style notebook"
    assert info.tracker_metadata == {"project": "legacy"}
    assert [cell.source for cell in info.cells] == ["x = 1\ny = x + 1"]


def test_reading_never_writes_the_notebook() -> None:
    path = NOTEBOOKS / "titled.ipynb"
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    read_notebook(str(path))
    find_notebook({"__session__": str(path)})
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before


# --------------------------------------------------------------------------- cells


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("a = 1\nb = 2", ["a", "b"]),
        ("a = b = 1", ["a", "b"]),
        ("x, (y, *rest) = 1, (2, 3, 4)\n[p, q] = 1, 2", ["x", "y", "rest", "p", "q"]),
        ("lr: float = 0.1\nepochs: int", ["lr"]),  # a bare annotation binds nothing
        ("n = 1\nn += 1\nm -= 2", ["n", "m"]),
        ("obj.attr = 1\nd['k'] = 2\nkept = 3", ["kept"]),
        ("import os\nfrom x import y as z\ndef f():\n    inner = 1\nclass C:\n    field = 2",
         []),
        ("if DEBUG:\n    size = 10\nelse:\n    size = 1000\ntry:\n    a = 1\nexcept E:\n    b = 2",
         ["size", "a", "b"]),
        ("%matplotlib inline\n!pip list\nalpha = 0.5\nif True:\n    %time beta = 1\n",
         ["alpha"]),
        # black puts an operator first on a continuation line; it is no magic
        ('lr = 0.1\nmsg = ("lr: %f"\n       % lr)\n%matplotlib inline\n', ["lr", "msg"]),
        ("!pip install \\\n    requests\nlr = 0.1\n", ["lr"]),  # a magic's lines joined
        ("def broken(:\n    pass", []),
        ("x = 1\0", []),
        ("", []),
    ],
)
def test_assigned_names(source: str, expected: list[str]) -> None:
    assert assigned_names(source) == expected


def test_papermill_injected_cell_is_recognised() -> None:
    from papermill.parameterize import translate_parameters

    injected = translate_parameters("python3", "python", {"alpha": 0.5, "name": "x"}, "Parameters")
    assert is_injected_parameters(injected)
    assert is_injected_parameters("\n# Parameters\nalpha = 1\n")
    assert assigned_names(injected) == ["alpha", "name"]


@pytest.mark.parametrize(
    "source", ["alpha = 0.1", "# parameters\nalpha = 1", "# Parameters of the model\na = 1", ""]
)
def test_ordinary_cells_are_not_injected(source: str) -> None:
    assert not is_injected_parameters(source)


def test_cell_tags_by_id_then_by_source() -> None:
    info = read_notebook(str(NOTEBOOKS / "titled.ipynb"))
    train = "model = train(learning_rate, epochs)"
    assert cell_tags(info, cell_id="params", source="anything") == ("parameters",)
    assert cell_tags(info, cell_id=None, source=train) == ("train", "slow")
    assert cell_tags(info, cell_id="unknown-id", source=f"  {train}\n") == ("train", "slow")
    assert cell_tags(info, cell_id=None, source="print('not in the notebook')") == ()
    assert cell_tags(NotebookInfo(path="/x.ipynb", name="x"), cell_id="a", source=train) == ()
