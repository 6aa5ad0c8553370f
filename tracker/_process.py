"""What the processes around the kernel say: their command lines, folders and environments.

Notebook runners (``jupyter execute``, nbconvert, papermill, ``pytest --nbval``) tell the kernel
nothing, but they are its parent or grandparent, and their command lines name the notebook.
Reads /proc on Linux; elsewhere every function answers "nothing known".
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

_SUFFIX = ".ipynb"


def process_start(pid: int) -> float | None:
    """When ``pid`` started (clock ticks since boot), to tell a live run from a reused pid."""
    fields = _stat_fields(pid)
    try:
        return float(fields[19])
    except (IndexError, ValueError):
        return None


def is_zombie(pid: int) -> bool:
    """Whether ``pid`` has exited but was not reaped (state Z or X): its parent died first and
    nothing waits for it (a kernel nbval killed, in a container whose init does not reap)."""
    fields = _stat_fields(pid)
    return bool(fields) and fields[0] in ("Z", "X")


def _stat_fields(pid: int) -> list[str]:
    """The fields of ``/proc/<pid>/stat`` after the command name (state, ppid, ...); none if
    unreadable. The name (field 2) may hold spaces and parentheses: split after the last ")"."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as handle:
            return handle.read().rsplit(")", 1)[-1].split()
    except OSError:
        return []


# --------------------------------------------------------------------------- /proc


def ancestor_pids(*, levels: int) -> Iterator[int]:
    pid = os.getppid()
    for _ in range(levels):
        if pid <= 1:
            return
        yield pid
        pid = process_ppid(pid)


def process_ppid(pid: int) -> int:
    fields = _stat_fields(pid)
    return int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else 0


def process_cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            raw = handle.read()
    except OSError:
        return []
    return [os.fsdecode(part) for part in raw.split(b"\0") if part]


def process_env(pid: int, name: str) -> str | None:
    try:
        with open(f"/proc/{pid}/environ", "rb") as handle:
            raw = handle.read()
    except OSError:
        return None
    prefix = os.fsencode(name) + b"="
    for entry in raw.split(b"\0"):
        if entry.startswith(prefix):
            return os.fsdecode(entry[len(prefix) :])
    return None


def process_cwd(pid: int) -> str | None:
    if pid <= 0:
        return None
    try:
        return os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return None


# --------------------------------------------------------------------------- command lines

# Options whose value is a separate word, per tool: the value must not be taken for a notebook
# (`nbconvert --output out.ipynb`, `papermill -p name x.ipynb in.ipynb out.ipynb`).
_JUPYTER_VALUES = {
    opt: 1
    for opt in (
        "--output", "--output-dir", "--output_dir", "--to", "--template", "--template-file",
        "--theme", "--sanitize_html", "--writer", "--post", "--reveal-prefix", "--nbformat",
        "--log-level", "--config", "--timeout", "--startup_timeout", "--kernel_name",
        "--kernel", "--skip-cells-with-tag",
    )
}
_PAPERMILL_VALUES = {
    "-p": 2, "--parameters": 2, "-r": 2, "--parameters_raw": 2,
    "-f": 1, "--parameters_file": 1, "-y": 1, "--parameters_yaml": 1,
    "-b": 1, "--parameters_base64": 1, "-k": 1, "--kernel": 1, "-l": 1, "--language": 1,
    "--engine": 1, "--cwd": 1, "--autosave-cell-every": 1, "--stdout-file": 1,
    "--stderr-file": 1, "--log-level": 1, "--start-timeout": 1, "--start_timeout": 1,
    "--execution-timeout": 1,
}
_PYTEST_VALUES = {
    opt: 1
    for opt in (
        "-k", "-m", "-p", "-c", "-o", "-W", "-r", "-n", "--deselect", "--ignore",
        "--ignore-glob", "--rootdir", "--basetemp", "--confcutdir", "--override-ini",
        "--junitxml", "--junit-xml", "--tb", "--capture", "--maxfail", "--durations",
        "--import-mode", "--log-level", "--log-file", "--dist", "--color",
        "--nbval-sanitize-with", "--nbval-kernel-name", "--nbval-cell-timeout",
        "--nbval-current-env",
    )
}
# Interpreter options that take the next word as their value.
_PYTHON_VALUES = {"-W", "-X", "--check-hash-based-pycs"}
_PYTHON = re.compile(r"^(python|pypy)[\d.]*(\.exe)?$")


def notebooks_in_argv(argv: Sequence[str], cwd: str) -> list[str]:
    """The notebooks a notebook-running command line names, as absolute paths (unchecked).

    Knows ``jupyter execute``/``jupyter-execute``, ``jupyter nbconvert``, ``python -m
    nbconvert``, ``papermill`` (its input notebook only) and ``pytest --nbval``; other commands
    name no notebook. Relative paths are taken against ``cwd``, the command's working directory.
    """
    command = _command(argv)
    if command is None:
        return []
    tool, args = command
    if tool in ("jupyter-execute", "jupyter-nbconvert", "nbconvert", "nbclient"):
        found = _expand_globs(_positionals(args, _JUPYTER_VALUES, traitlets=True), cwd)
    elif tool == "papermill":
        found = _positionals(args, _PAPERMILL_VALUES)[:1]
    elif tool in ("pytest", "py.test"):
        found = [arg.split("::", 1)[0] for arg in _positionals(args, _PYTEST_VALUES)]
    else:
        return []
    return [os.path.normpath(os.path.join(cwd, path)) for path in found if path.endswith(_SUFFIX)]


def papermill_output(argv: Sequence[str], cwd: str) -> str | None:
    """The output notebook a ``papermill IN OUT`` command line writes (absolute, unchecked);
    None for another command, or for an output to stdout (``-``) or to a URL."""
    command = _command(argv)
    if command is None or command[0] != "papermill":
        return None
    named = _positionals(command[1], _PAPERMILL_VALUES)
    if len(named) < 2 or not named[1].endswith(_SUFFIX) or "://" in named[1]:
        return None
    return os.path.normpath(os.path.join(cwd, named[1]))


class RunnerOutput(NamedTuple):
    """The executed notebook a runner's command line says it writes (absolute, unchecked), and
    whether it writes it only once the kernel is gone (``jupyter execute``, nbconvert) rather
    than after every cell (papermill)."""

    path: str
    after_exit: bool


def runner_output(argv: Sequence[str], cwd: str, notebook: str) -> RunnerOutput | None:
    """Where the command line ``argv`` (run in ``cwd``) writes ``notebook`` once executed:
    papermill's output, ``jupyter execute --inplace`` / ``--output``, ``jupyter nbconvert
    --execute --to notebook`` (``--inplace``, ``--output``, ``--output-dir``, or its default
    ``<name>.nbconvert.ipynb``). None when it writes no notebook file, or names another one."""
    command = _command(argv)
    if command is None:
        return None
    tool, args = command
    if tool == "papermill":
        path = papermill_output(argv, cwd)
        return RunnerOutput(path, after_exit=False) if path else None
    if os.path.normpath(notebook) not in notebooks_in_argv(argv, cwd):
        return None
    if tool in ("jupyter-execute", "nbclient"):
        path = _execute_output(args, notebook)
    elif tool in ("jupyter-nbconvert", "nbconvert"):
        path = _nbconvert_output(args, notebook, cwd)
    else:
        return None
    return RunnerOutput(path, after_exit=True) if path else None


def _execute_output(args: Sequence[str], notebook: str) -> str | None:
    """nbclient's ``jupyter execute``: ``--inplace``, or ``--output BASE`` in the notebook's
    folder with ``.ipynb`` for a suffix (``{notebook_name}`` replaced); else nothing written."""
    if _flag(args, "--inplace", "--NbClientApp.inplace"):
        return notebook
    base = _option(args, "--output", "--NbClientApp.output_base")
    if base is None:
        return None
    name = _formatted(base, Path(notebook).stem)
    try:
        return str(Path(notebook).parent.joinpath(name).with_suffix(_SUFFIX)) if name else None
    except ValueError:  # a folder-only name ("out/"): nbclient fails too
        return None


def _nbconvert_output(args: Sequence[str], notebook: str, cwd: str) -> str | None:
    """nbconvert's notebook output: ``--output-dir`` (from ``cwd``) or the notebook's folder,
    ``--output`` or the notebook's name, ``.nbconvert`` added when neither is given."""
    inplace = _flag(args, "--inplace")
    to = _option(args, "--to", "--NbConvertApp.export_format")
    if _flag(args, "--stdout") or not (inplace or to == "notebook"):
        return None
    if inplace:
        return notebook
    folder = _option(args, "--output-dir", "--output_dir", "--FilesWriter.build_directory")
    base = _option(args, "--output", "--NbConvertApp.output_base") or "{notebook_name}"
    root, extension = os.path.splitext(base)
    base = root if extension == _SUFFIX else base
    name = _formatted(base, os.path.basename(notebook).rsplit(".", 1)[0])
    if name is None:
        return None
    if not folder and base == "{notebook_name}":
        name += ".nbconvert"  # nbconvert's suffix, so the input is not overwritten
    where = os.path.join(cwd, folder) if folder else os.path.dirname(notebook)
    return os.path.normpath(os.path.join(where, name + _SUFFIX))


def _formatted(base: str, notebook_name: str) -> str | None:
    """``base`` with ``{notebook_name}`` replaced, as the runners do; None if it is no pattern."""
    try:
        return base.format(notebook_name=notebook_name)
    except (KeyError, IndexError, ValueError):
        return None


def _option(args: Sequence[str], *names: str) -> str | None:
    """The value last given to any of ``names`` (``--name value`` or ``--name=value``)."""
    found = None
    for index, arg in enumerate(args):
        name, equals, value = arg.partition("=")
        if name in names:
            if equals:
                found = value
            elif index + 1 < len(args):
                found = args[index + 1]
    return found


def _flag(args: Sequence[str], flag: str, trait: str | None = None) -> bool:
    """Whether ``flag`` (``--inplace``) is given, or ``trait`` set true
    (``--NbClientApp.inplace=True``)."""
    value = _option(args, trait) if trait else None
    return flag in args or (value or "").lower() in ("true", "1")


def _command(argv: Sequence[str]) -> tuple[str, list[str]] | None:
    """(tool name, its arguments), seeing through ``python [-m] ...`` and ``jupyter <sub>``."""
    if not argv:
        return None
    tool, args = _program_name(argv[0]), list(argv[1:])
    if _PYTHON.match(tool):
        unwrapped = _strip_interpreter(args)
        if unwrapped is None:
            return None
        tool, args = unwrapped
    if tool in ("jupyter", "jupyter_core") and args and not args[0].startswith("-"):
        tool, args = f"jupyter-{args[0]}", args[1:]
    return tool, args


def _program_name(path: str) -> str:
    name = os.path.basename(path)
    for suffix in ("-script.py", ".py", ".exe"):
        name = name.removesuffix(suffix)
    return name


def _strip_interpreter(args: list[str]) -> tuple[str, list[str]] | None:
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "-m" and index + 1 < len(args):
            module = args[index + 1].removesuffix(".__main__").removesuffix(".cli")
            return module, args[index + 2 :]
        if arg.startswith("-m") and len(arg) > 2:
            return arg[2:], args[index + 1 :]
        if arg.startswith("-c") or arg == "-":
            return None
        if not arg.startswith("-"):
            return _program_name(arg), args[index + 1 :]
        index += 2 if arg in _PYTHON_VALUES else 1
    return None


def _positionals(
    args: Sequence[str], values: Mapping[str, int], *, traitlets: bool = False
) -> list[str]:
    """The positional words of ``args``, skipping each option's values.

    ``values`` maps an option to how many words it takes. ``--opt=value`` is one word; a short
    option with its value attached (``-kpython3``) takes one word fewer; with ``traitlets``,
    ``--Class.trait value`` takes one.
    """
    found: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        index += 1
        if arg == "--":
            found.extend(args[index:])
            break
        if not arg.startswith("-") or arg == "-":
            found.append(arg)
            continue
        if "=" in arg and arg.startswith("--"):
            continue
        index += _values_taken(arg, values, traitlets=traitlets)
    return found


def _values_taken(option: str, values: Mapping[str, int], *, traitlets: bool) -> int:
    if option in values:
        return values[option]
    if not option.startswith("--") and option[:2] in values:
        return values[option[:2]] - 1  # "-kpython3": the first value is attached
    if traitlets and option.startswith("--") and "." in option:
        return 1
    return 0


def _expand_globs(paths: list[str], cwd: str) -> list[str]:
    # nbconvert expands quoted globs itself ('nbs/*.ipynb'), so the shell may not have.
    expanded: list[str] = []
    for path in paths:
        if glob.has_magic(path):
            expanded.extend(sorted(glob.glob(os.path.join(cwd, path))))
        else:
            expanded.append(path)
    return expanded
