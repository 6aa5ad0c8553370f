"""Which notebook this kernel is running, and what that notebook says.

Owns finding the ``.ipynb`` behind a kernel session in every way Jupyter runs one
(:func:`find_notebook`, docs/design.md §4) and reading what a run needs from it: title, code hash,
``tracker`` metadata, parameters cells and cell tags (:func:`read_notebook`). Nothing here ever
writes to a notebook, and nothing raises into the user's kernel.

Notebooks are parsed as plain JSON rather than with ``nbformat.read``: importing nbformat pulls
in jsonschema's format checkers, measured at 1.3-1.9 s here, which would wreck
``%load_ext tracker``. nbformat is imported only to upgrade the rare pre-v4 file.
"""

from __future__ import annotations

import ast
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from tracker import _process, cell_code
from tracker.settings import TrackerSettings, tracker_settings

__all__ = [
    "CodeCell",
    "ExecutedCopy",
    "Located",
    "NotebookInfo",
    "assigned_names",
    "cell_source",
    "cell_tags",
    "code_hash",
    "find_notebook",
    "is_injected_parameters",
    "normalise",
    "read_notebook",
]

_SUFFIX = ".ipynb"
_MAX_SCANNED = 50  # notebooks read by the content match, newest first
_MAX_BYTES = 20 * 1024 * 1024  # larger notebooks are skipped by the content match
# papermill's Python translator writes f"# {comment}" with comment="Parameters" by default.
_INJECTED_HEADER = "# Parameters"
_ESCAPED_DIFFERENTLY = re.compile(r"[<>&/\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Located:
    """Where the running notebook is (``path`` absolute, or None) and how it was found.

    ``mode`` is one of "override", "vscode", "jupyter-server", "nbval", "parent-cmdline",
    "content-match" or "none"; ``problem`` says why a named notebook could not be read.
    """

    path: str | None
    mode: str
    problem: str | None = None


class CodeCell(NamedTuple):
    """One code cell: its id (None before nbformat 4.5), source and tags."""

    cell_id: str | None
    source: str
    tags: tuple[str, ...]


@dataclass(frozen=True)
class NotebookInfo:
    """What a run records about its notebook, read from the last saved file.

    ``code_hash`` is ``"xxh3_128:<hex>"`` over the code cells (papermill's injected cell left
    out, so runs with different parameters share it); it is None when the file could not be read.
    """

    path: str
    name: str
    title: str | None = None
    code_hash: str | None = None
    tracker_metadata: dict[str, Any] = field(default_factory=dict)
    settings: TrackerSettings = field(default_factory=TrackerSettings)
    parameters_source: str | None = None
    injected_source: str | None = None
    cells: tuple[CodeCell, ...] = ()


# --------------------------------------------------------------------------- finding


def find_notebook(
    user_ns: Mapping[str, Any] | None = None,
    *,
    override: str | None = None,
    first_cell: str | None = None,
) -> Located:
    """Find the notebook this kernel runs; never raises.

    Tries, in order: ``override``, env ``TRACKER_NOTEBOOK``, VS Code's ``__vsc_ipynb_file__``,
    jupyter_server's ``__session__`` / ``JPY_SESSION_NAME``, nbval's ``PYTEST_CURRENT_TEST``,
    the parent (and grandparent) process's command line, and finally notebooks near the kernel
    whose code holds ``first_cell`` (the cell that loaded the extension).
    """
    try:
        override = override or os.environ.get("TRACKER_NOTEBOOK")
        if override:
            return _named(override)
        namespace = user_ns if user_ns is not None else {}
        for mode, step in _STEPS:
            path = _guarded(step, namespace, first_cell)
            if path:
                return Located(os.path.abspath(path), mode)
    except Exception:
        pass  # a bad override or namespace: same as finding nothing
    return Located(None, "none")


def _named(name: str) -> Located:
    """A notebook named by the user (``TRACKER_NOTEBOOK``) as meant: a path, or a name in the
    working folder with or without ``.ipynb``. When neither exists the run still takes the
    name, at ``<name>.ipynb``, and ``problem`` says what was looked for."""
    given = os.path.abspath(os.path.expanduser(name))
    if os.path.isfile(given) or given.endswith(_SUFFIX) and os.path.exists(given):
        return Located(given, "override")
    with_suffix = given if given.endswith(_SUFFIX) else given + _SUFFIX
    if os.path.isfile(with_suffix):
        return Located(with_suffix, "override")
    tried = " nor ".join(dict.fromkeys((given, with_suffix)))
    return Located(with_suffix, "override",
                   f"TRACKER_NOTEBOOK={name!r} names no notebook (neither {tried} exists); "
                   "the run takes its name, without title, parameters or saved copy")


_Step = Callable[[Mapping[str, Any], str | None], str | None]


def _guarded(step: _Step, namespace: Mapping[str, Any], first_cell: str | None) -> str | None:
    # Each way of finding the notebook is a guess: one failing must not stop the others.
    try:
        return step(namespace, first_cell)
    except Exception:
        return None


def _from_vscode(namespace: Mapping[str, Any], first_cell: str | None) -> str | None:
    path = namespace.get("__vsc_ipynb_file__")
    return path if isinstance(path, str) and _is_notebook_file(path) else None


def _from_jupyter_server(namespace: Mapping[str, Any], first_cell: str | None) -> str | None:
    for value in (namespace.get("__session__"), os.environ.get("JPY_SESSION_NAME")):
        if isinstance(value, str) and value.endswith(_SUFFIX):
            found = _find_relative(value, os.getcwd())
            if found:
                return found
    return None


def _from_nbval(namespace: Mapping[str, Any], first_cell: str | None) -> str | None:
    # "notebooks/x.ipynb::Cell 3 (call)", relative to pytest's rootdir; nbval runs the kernel
    # in the notebook's folder, so the rootdir is the kernel's cwd or one of its ancestors.
    current = os.environ.get("PYTEST_CURRENT_TEST", "")
    path = current.split("::", 1)[0]
    if not path.endswith(_SUFFIX):
        return None
    found = _find_relative(path, os.getcwd())
    if found:
        return found
    parent_cwd = _process.process_cwd(os.getppid())
    return _find_relative(path, parent_cwd) if parent_cwd else None


def _from_parent_cmdline(namespace: Mapping[str, Any], first_cell: str | None) -> str | None:
    # Two levels, because `jupyter execute` and friends may be launched through a wrapper.
    for pid in _process.ancestor_pids(levels=2):
        argv = _process.process_cmdline(pid)
        named = _existing_notebooks_named(argv, _launch_dirs(pid)) if argv else []
        if len(set(named)) == 1:
            return named[0]
        if named and first_cell:
            return _only_match(named, first_cell)
    return None


class ExecutedCopy(NamedTuple):
    """Where the runner writes this kernel's notebook once executed (``path``), the runner's
    pid, and whether it writes it only once the kernel is gone (``after_exit``)."""

    path: str
    runner: int
    after_exit: bool


def executed_notebook(input_path: str) -> ExecutedCopy | None:
    """The notebook the runner writes this kernel's outputs to, if it names one: papermill's
    output (it saves it after every cell, so it holds them all at the kernel's shutdown), or
    the one ``jupyter execute --inplace``/``--output`` and ``nbconvert --execute --to notebook``
    write once the kernel is gone (:mod:`tracker.notebook_watch` stores that one)."""
    for pid in _process.ancestor_pids(levels=2):
        argv = _process.process_cmdline(pid)
        for base in _launch_dirs(pid) if argv else ():
            output = _process.runner_output(argv, base, input_path)
            if output is None:
                continue
            if output.after_exit or (os.path.isfile(output.path) and
                                     os.path.realpath(output.path) != os.path.realpath(input_path)):
                return ExecutedCopy(output.path, pid, output.after_exit)
    return None


def _existing_notebooks_named(argv: Sequence[str], bases: Sequence[str]) -> list[str]:
    for base in bases:
        named = [path for path in _process.notebooks_in_argv(argv, base) if _is_notebook_file(path)]
        if named:
            return named
    return []


def _launch_dirs(pid: int) -> list[str]:
    """Folders a process's relative arguments may be relative to, most likely first.

    Its cwd; but `papermill --cwd D` chdirs itself to D, so also the folder it was started
    in: its ``PWD`` as set by a shell, and the cwd of its parent (usually that shell).
    """
    candidates = (_process.process_cwd(pid), _process.process_env(pid, "PWD"),
                  _process.process_cwd(_process.process_ppid(pid)))
    return list(dict.fromkeys(folder for folder in candidates if folder))


def _from_content(namespace: Mapping[str, Any], first_cell: str | None) -> str | None:
    if not first_cell or not first_cell.strip():
        return None
    folders = {os.getcwd()}
    parent_cwd = _process.process_cwd(os.getppid())
    if parent_cwd:
        folders.add(parent_cwd)
    return _only_match(_newest_notebooks(folders), first_cell)


_STEPS: tuple[tuple[str, _Step], ...] = (
    ("vscode", _from_vscode),
    ("jupyter-server", _from_jupyter_server),
    ("nbval", _from_nbval),
    ("parent-cmdline", _from_parent_cmdline),
    ("content-match", _from_content),
)


def _is_notebook_file(path: str) -> bool:
    return path.endswith(_SUFFIX) and os.path.isfile(path)


def _find_relative(path: str, start: str) -> str | None:
    """``path`` joined to ``start`` or to the nearest ancestor of ``start`` where it exists."""
    if os.path.isabs(path):
        return path if _is_notebook_file(path) else None
    folder = os.path.abspath(start)
    while True:
        candidate = os.path.join(folder, path)
        if _is_notebook_file(candidate):
            return candidate
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent


# --------------------------------------------------------------------------- content match


def normalise(source: str) -> str:
    """``source`` with its whitespace made one space: how cell sources compare."""
    return " ".join(source.split())


def _newest_notebooks(folders: set[str]) -> list[str]:
    entries: list[tuple[float, str]] = []
    for folder in folders:
        try:
            with os.scandir(folder) as scan:
                for entry in scan:
                    if entry.name.endswith(_SUFFIX) and entry.is_file():
                        stat = entry.stat()
                        if stat.st_size <= _MAX_BYTES:
                            entries.append((stat.st_mtime, entry.path))
        except OSError:
            continue
    entries.sort(reverse=True)
    return [path for _, path in entries[:_MAX_SCANNED]]


def _only_match(paths: Sequence[str], first_cell: str) -> str | None:
    """The one notebook among ``paths`` with a code cell equal to ``first_cell``, if exactly one.

    Papermill outputs (metadata ``papermill.input_path``) repeat their input's cells; when they
    make the match ambiguous, they give way to the one notebook that is not an output.
    """
    wanted = normalise(first_cell)
    fragments = _json_fragments(first_cell)
    inputs: list[str] = []
    outputs: list[str] = []
    for path in dict.fromkeys(paths):
        notebook = _load_json(path, fragments=fragments)
        if notebook is None or all(normalise(c.source) != wanted for c in _code_cells(notebook)):
            continue
        (outputs if _is_papermill_output(notebook) else inputs).append(path)
        if len(inputs) > 1:
            return None  # ambiguous already: stop reading
    if inputs:
        return inputs[0]
    return outputs[0] if len(outputs) == 1 else None


def _json_fragments(source: str) -> set[str]:
    """Pieces of ``source`` that any notebook file holding it contains verbatim.

    Each line, stripped, as JSON writes it: a file lacking one is ruled out without parsing.
    Lines with characters some writers escape differently (non-ASCII, ``<>&/``) are left out.
    """
    fragments = set()
    for line in source.splitlines():
        stripped = line.strip()
        if stripped and stripped.isascii() and not _ESCAPED_DIFFERENTLY.search(stripped):
            fragments.add(json.dumps(stripped)[1:-1])
    return fragments


def _is_papermill_output(notebook: Mapping[str, Any]) -> bool:
    papermill = _as_dict(_as_dict(notebook.get("metadata")).get("papermill"))
    return bool(papermill.get("input_path"))


def _load_json(path: str, *, fragments: Iterable[str] = ()) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError):
        return None
    if not all(fragment in text for fragment in fragments):
        return None
    try:
        notebook = json.loads(text)
    except ValueError:
        return None
    return notebook if isinstance(notebook, dict) else None


# --------------------------------------------------------------------------- reading


def read_notebook(path: str) -> NotebookInfo:
    """Read title, code hash, ``tracker`` metadata, parameters and code cells; never raises.

    A file that is missing, not JSON or half-written (an editor mid-save) gives a NotebookInfo
    with only ``path`` and ``name``.
    """
    path = os.path.abspath(path)
    name = os.path.basename(path).removesuffix(_SUFFIX)
    try:
        notebook = _upgraded(_load_json(path), path)
        if notebook is None:
            return NotebookInfo(path=path, name=name)
        return _describe(notebook, path=path, name=name)
    except Exception:
        return NotebookInfo(path=path, name=name)


def _upgraded(notebook: dict[str, Any] | None, path: str) -> dict[str, Any] | None:
    nbformat_version = notebook.get("nbformat", 4) if notebook else 4
    if not isinstance(nbformat_version, int) or nbformat_version >= 4:
        return notebook
    import warnings

    import nbformat  # slow to import (see the module docstring); only for pre-v4 files

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nbformat's notes on the repairs it makes
        return dict(nbformat.read(path, as_version=4))


def _describe(notebook: Mapping[str, Any], *, path: str, name: str) -> NotebookInfo:
    cells = tuple(_code_cells(notebook))
    raw = _as_dict(notebook.get("metadata")).get("tracker")
    metadata = _as_dict(raw)
    return NotebookInfo(
        path=path,
        name=name,
        title=_title(notebook),
        code_hash=code_hash(cells),
        tracker_metadata=dict(metadata),
        settings=tracker_settings(raw),
        parameters_source=_tagged_source(cells, "parameters"),
        injected_source=_tagged_source(cells, "injected-parameters"),
        cells=cells,
    )


def _code_cells(notebook: Mapping[str, Any]) -> Iterator[CodeCell]:
    for cell in _cells(notebook):
        if cell.get("cell_type") == "code":
            cell_id = cell.get("id")
            yield CodeCell(
                cell_id if isinstance(cell_id, str) else None, cell_source(cell), _tags(cell)
            )


def _cells(notebook: Mapping[str, Any]) -> list[dict[str, Any]]:
    cells = notebook.get("cells")
    if not isinstance(cells, list):
        return []
    return [cell for cell in cells if isinstance(cell, dict)]


def cell_source(cell: Mapping[str, Any]) -> str:
    """A cell's source as one string (a notebook may store it as a list of lines)."""
    source = cell.get("source", "")
    if isinstance(source, list):
        return "".join(part for part in source if isinstance(part, str))
    return source if isinstance(source, str) else ""


def _tags(cell: Mapping[str, Any]) -> tuple[str, ...]:
    tags = _as_dict(cell.get("metadata")).get("tags")
    if not isinstance(tags, list):
        return ()
    return tuple(tag for tag in tags if isinstance(tag, str))


def _as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def code_hash(cells: Sequence[CodeCell], scrub: Callable[[str], str] = str) -> str:
    """``"xxh3_128:<hex>"`` over the code cells but papermill's injected one, each source
    passed through ``scrub`` first (a run records it with its secrets redacted)."""
    from tracker.hashing import hash_bytes

    code = "\n\n".join(scrub(cell.source) for cell in cells
                       if "injected-parameters" not in cell.tags)
    return hash_bytes(code.encode("utf-8"))


def _tagged_source(cells: Sequence[CodeCell], tag: str) -> str | None:
    return next((cell.source for cell in cells if tag in cell.tags), None)


_ATX_HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
_SETEXT_UNDERLINE = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")


def _title(notebook: Mapping[str, Any]) -> str | None:
    for cell in _cells(notebook):
        if cell.get("cell_type") == "markdown":
            heading = _first_heading(cell_source(cell))
            if heading:
                return heading
    return None


def _first_heading(markdown: str) -> str | None:
    """The text of the first ATX (``# Title``) or setext (``Title`` over ``===``) heading."""
    in_fence = False
    previous = ""
    for line in markdown.splitlines():
        if _FENCE.match(line):
            in_fence, previous = not in_fence, ""
            continue
        if in_fence:
            continue
        atx = _ATX_HEADING.match(line)
        if atx and atx.group(1).strip("# \t"):
            return atx.group(1).strip()
        if previous.strip() and _SETEXT_UNDERLINE.match(line):
            return previous.strip()
        previous = line
    return None


# --------------------------------------------------------------------------- cells


def assigned_names(source: str) -> list[str]:
    """Names a parameters cell binds at module level, in order, each once.

    Counts ``=``, annotated (with a value) and augmented assignments, including tuple targets
    and those inside top-level ``if``/``try``/``with`` blocks; not imports, functions, classes
    or loop variables. IPython magics and shell lines are dropped first; bad syntax gives [].
    """
    tree = cell_code.parsed(source)
    if tree is None:
        return []
    names: dict[str, None] = {}
    for node in _module_level_statements(tree.body):
        for target in _assignment_targets(node):
            for name in _bound_names(target):
                names.setdefault(name, None)
    return list(names)


def _module_level_statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    for node in body:
        yield node
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        for block in ("body", "orelse", "finalbody"):
            yield from _module_level_statements(getattr(node, block, []))
        for handler in getattr(node, "handlers", []):
            yield from _module_level_statements(handler.body)


def _assignment_targets(node: ast.stmt) -> list[ast.expr]:
    if isinstance(node, ast.Assign):
        return list(node.targets)
    if isinstance(node, ast.AnnAssign) and node.value is not None:
        return [node.target]
    if isinstance(node, ast.AugAssign):
        return [node.target]
    return []


def _bound_names(target: ast.expr) -> Iterator[str]:
    if isinstance(target, ast.Name):
        yield target.id
    elif isinstance(target, (ast.Tuple, ast.List)):
        for element in target.elts:
            yield from _bound_names(element)
    elif isinstance(target, ast.Starred):
        yield from _bound_names(target.value)


def is_injected_parameters(source: str) -> bool:
    """Whether ``source`` is a cell papermill injected (its first line is ``# Parameters``)."""
    first_line = source.lstrip().split("\n", 1)[0]
    return first_line.rstrip() == _INJECTED_HEADER


def cell_tags(info: NotebookInfo, *, cell_id: str | None, source: str) -> tuple[str, ...]:
    """Tags of the executing cell: found by ``cell_id`` when known, else by its source.

    Sources compare with whitespace normalised; the first equal cell wins. () if not found.
    """
    if cell_id:
        for cell in info.cells:
            if cell.cell_id == cell_id:
                return cell.tags
    wanted = normalise(source)
    for cell in info.cells:
        if normalise(cell.source) == wanted:
            return cell.tags
    return ()
