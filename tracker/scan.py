"""The files another process wrote during a cell, and the files a shell command named.

A notebook's ``!cp a b``, ``subprocess.run(["gzip", ...])``, ``%%bash`` cells and worker
processes (multiprocessing, joblib/loky) write files that Python's ``open`` in the kernel never
sees. After a cell that started a process, :class:`CellScan` walks the capture roots (the
working folder and the notebook's folder) and reports every regular file whose inode changed
during the cell (``st_ctime_ns``, which a process cannot set back, unlike the mtime that
``gzip``, ``cp -p`` and ``tar`` copy from the original) as written; the existing files a shell
command names in its arguments, unchanged by the cell, are reported as read (inferred).

A cell "started a process" when the kernel raised a process audit event
(:data:`tracker.capture.PROCESS_EVENTS`: ``subprocess.Popen``, ``os.system``, ``os.fork``,
``os.forkpty`` (IPython's ``!``), ``os.posix_spawn``, ``os.exec*``, ``os.spawn*``), when a
child process ended during it (the children's CPU time grew: spawn and forkserver workers raise
no event), or when multiprocessing workers are still alive at its end (a reused pool or loky
executor writes in later cells without starting anything). Other cells pay two ``getrusage``
calls.

The walk is bounded: at most :data:`MAX_ENTRIES` directory entries and :data:`MAX_SECONDS`
seconds; past either it stops and warns once. It skips hidden names (``.git``, ``.cache``,
``.venv``, ``.ipynb_checkpoints``, JupyterLab's and editors' own files), never enters
:data:`PRUNED_DIRS`, folders holding a ``pyvenv.cfg`` (a virtual environment) or symlinked
folders, never reports notebooks (``*.ipynb``: Jupyter and papermill save them while cells run)
and hands every path to the capture's filters (the catalog's folder, site-packages, user
globs).

"Changed during the cell" starts at the cell's first process audit event (or at the cell's
start when it has none): a file another program (an editor, another kernel) changed between the
cell's start and its first process is not the cell's. One changed after that, before the cell
ends, cannot be told apart from the cell's own and is reported too: nothing short of tracing
the children (ptrace, fanotify: privileges this extension does not have) could tell.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shlex
import stat
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tracker import notices

__all__ = ["MAX_ENTRIES", "MAX_SECONDS", "PRUNED_DIRS", "CellScan", "changed_files"]

MAX_ENTRIES = 50_000  # directory entries looked at per scan
MAX_SECONDS = 1.0  # wall-clock seconds per scan
# Besides every hidden name (.git, .cache, .venv, .ipynb_checkpoints, JupyterLab's
# .virtual_documents and .jupyter_ystore.db, editors' lock files).
PRUNED_DIRS = frozenset({"__pycache__", "node_modules", "venv", "site-packages", "dist-packages"})
# File times come from the kernel's coarse clock, up to a tick (4-10 ms) behind time.time_ns().
_CLOCK_SLACK_NS = 20_000_000
_MAX_WORDS = 1_000  # words of one cell's commands looked at as possible input files
_MAX_GLOB = 100  # files one glob word may name
_SHELL_NAMES = frozenset({"sh", "bash", "dash", "zsh", "ksh"})
_SHELL_MAGICS = ("%%bash", "%%sh", "%%script")
_REDIRECT = re.compile(r"^\d*[<>]+&?")
# `!cmd`, `!!cmd`, `files = !cmd`, `%sx cmd`, `%system cmd`: IPython's shell escapes in a line.
_SHELL_LINE = re.compile(r"^\s*(?:[\w.,\s]+=\s*)?(?:!+|%sx\s|%system\s)(.*)$")
_CHECK_EVERY = 512  # entries between two looks at the clock


@dataclass
class ScanResult:
    """The changed files found, and whether the walk saw everything (False: a budget ran out)."""

    paths: list[str]
    complete: bool


def changed_files(roots: Sequence[str], since_ns: int, *, max_entries: int = MAX_ENTRIES,
                  max_seconds: float = MAX_SECONDS) -> ScanResult:
    """Regular files under ``roots`` whose inode changed at or after ``since_ns`` (ns since the
    epoch), pruning :data:`PRUNED_DIRS` and virtual environments, within the budgets."""
    deadline = time.monotonic() + max_seconds
    threshold = since_ns - _CLOCK_SLACK_NS
    found: list[str] = []
    stack = [os.path.abspath(root) for root in _outermost(roots)]
    entries = 0
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as listing:
                children = list(listing)
        except OSError:
            continue  # gone, or not ours to read
        if any(child.name == "pyvenv.cfg" for child in children):
            continue
        for child in children:
            entries += 1
            if entries > max_entries or (
                    entries % _CHECK_EVERY == 0 and time.monotonic() > deadline):
                return ScanResult(found, complete=False)
            if child.name.startswith("."):
                continue
            with contextlib.suppress(OSError):
                if child.is_dir(follow_symlinks=False):
                    if child.name not in PRUNED_DIRS:
                        stack.append(child.path)
                elif (child.is_file(follow_symlinks=False) and not child.name.endswith(".ipynb")
                      and child.stat(follow_symlinks=False).st_ctime_ns >= threshold):
                    found.append(child.path)
    return ScanResult(found, complete=True)


def _outermost(roots: Sequence[str]) -> list[str]:
    """The roots, without those inside another (each folder is walked once)."""
    real = sorted({os.path.realpath(root).rstrip("/") + "/" for root in roots})
    kept: list[str] = []
    for root in real:
        if not any(root.startswith(outer) for outer in kept):
            kept.append(root)
    return kept


@dataclass
class _Command:
    cwd: str
    words: list[str] = field(default_factory=list)


class CellScan:
    """One kernel's after-cell scan: :meth:`begin` at a cell's start, :meth:`note_process` from
    the capture's audit hook (any thread), :meth:`finish` at its end."""

    def __init__(self, capture: Any, roots: Sequence[str], *, max_entries: int = MAX_ENTRIES,
                 max_seconds: float = MAX_SECONDS) -> None:
        self._capture = capture  # a tracker.capture.FileCapture
        self._roots = list(roots)
        self._budget = (max_entries, max_seconds)
        self._start_ns: int | None = None
        self._children_cpu = 0.0
        self._own_children = False
        self._first_process_ns: int | None = None
        self._commands: list[_Command] = []
        self._warned = notices.Once()

    def begin(self, *, own_children: bool = False) -> None:
        """A cell starts: forget the last one's processes. ``own_children``: tracker's own
        processes may end during the cell (its environment snapshot runs git), so the
        children's CPU time will say nothing about the user's."""
        self._start_ns = time.time_ns()
        self._own_children = own_children
        self._children_cpu = _children_cpu()
        self._first_process_ns = None
        self._commands = []

    def note_process(self, event: str, args: tuple[Any, ...]) -> None:
        """A process audit event: the cell started a process (with these arguments)."""
        if self._first_process_ns is None:
            self._first_process_ns = time.time_ns()
        words, cwd = _event_words(event, args)
        if words:
            self._commands.append(_Command(cwd or os.getcwd(), words))

    def finish(self, source: str, *, own_children: bool = False) -> None:
        """A cell ended: if it started a process, report what changed and what it named."""
        start, self._start_ns = self._start_ns, None
        if start is None or not self._ran_process(own_children or self._own_children):
            return
        # What changed before the cell's first process started was not written by it.
        since = self._first_process_ns or start
        result = changed_files(self._roots, since, max_entries=self._budget[0],
                               max_seconds=self._budget[1])
        if not result.complete:
            self._warn_budget()
        for path in result.paths:
            self._capture.report(path, "write", via="scan")
        commands = [*self._commands, *(_Command(os.getcwd(), words)
                                       for words in _shell_words(source))]
        for path in _named_files(commands, since):
            self._capture.report(path, "read", via="inferred")

    def _ran_process(self, own_children: bool) -> bool:
        if self._first_process_ns is not None or _workers_alive():
            return True
        return not own_children and _children_cpu() != self._children_cpu

    def _warn_budget(self) -> None:
        if self._warned.first():
            notices.warn(
                f"tracker: looking for files written by this cell's processes stopped after "
                f"{self._budget[0]} entries or {self._budget[1]:g} s under "
                f"{', '.join(self._roots)}; "
                "files beyond were not recorded. Record them with tracker.log_output(path), or "
                "keep large folders outside the notebook's folder.", stacklevel=2)


def _children_cpu() -> float:
    """CPU seconds of the children this process has waited for (grows when one ends)."""
    try:
        import resource
    except ImportError:  # not on Windows
        return 0.0
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _workers_alive() -> bool:
    """Whether multiprocessing (or loky, built on it) has worker processes running."""
    module = sys.modules.get("multiprocessing")
    return module is not None and bool(module.active_children())


def _event_words(event: str, args: tuple[Any, ...]) -> tuple[list[str], str | None]:
    """The argument words of a process audit event, and the folder the process starts in."""
    if event == "subprocess.Popen":
        _, argv, cwd, _ = args
        folder = os.fsdecode(cwd) if cwd is not None else None
        return _argv_words(argv), folder
    if event == "os.system":
        return _split(os.fsdecode(args[0])), None
    if event in ("os.posix_spawn", "os.exec"):
        return _argv_words(args[1]), None
    if event == "os.spawn":
        return _argv_words(args[2]), None
    return [], None  # os.fork and os.forkpty carry no arguments


def _argv_words(argv: Any) -> list[str]:
    if isinstance(argv, (str, bytes, os.PathLike)):
        return _split(os.fsdecode(argv))
    words = [os.fsdecode(word) for word in argv if isinstance(word, (str, bytes, os.PathLike))]
    # `sh -c "cp a b"`: the command is one word; its own words name the files.
    if len(words) >= 3 and os.path.basename(words[0]) in _SHELL_NAMES and words[1] == "-c":
        return [*words[:2], *_split(words[2])]
    return words


def _shell_words(source: str) -> list[list[str]]:
    """The words of a cell's shell commands: ``!`` lines (a ``!`` command runs under a pty
    whose audit event carries no arguments) and ``%%bash``/``%%sh``/``%%script`` bodies."""
    lines = source.splitlines()
    if lines and lines[0].strip().startswith(_SHELL_MAGICS):
        return [_split(line) for line in lines[1:]]
    return [_split(match.group(1)) for match in map(_SHELL_LINE.match, lines) if match]


def _split(command: str) -> list[str]:
    try:
        return shlex.split(command, comments=True)
    except ValueError:  # an unbalanced quote: the shell will say so; the words still help
        return command.split()


def _named_files(commands: Iterable[_Command], since_ns: int) -> list[str]:
    """Existing regular files the commands name that the cell did not change (those are
    outputs); variables (``$x``, ``{x}``) are not expanded."""
    named: dict[str, None] = {}
    budget = _MAX_WORDS
    for command in commands:
        for word in command.words[1:]:  # the program itself is not read as data
            budget -= 1
            if budget < 0:
                return list(named)
            for path in _word_paths(word, command.cwd):
                named[path] = None
    threshold = since_ns - _CLOCK_SLACK_NS
    return [path for path in named if _unchanged_file(path, threshold)]


def _word_paths(word: str, cwd: str) -> list[str]:
    if word.startswith("-"):
        word = word.partition("=")[2]  # --input=data.csv
    word = _REDIRECT.sub("", word)
    if not word or "$" in word or "{" in word:
        return []
    path = os.path.normpath(os.path.join(cwd, os.path.expanduser(word)))
    if any(char in word for char in "*?["):
        return sorted(glob.glob(path))[:_MAX_GLOB]
    return [path]


def _unchanged_file(path: str, threshold: int) -> bool:
    try:
        info = os.stat(path)
    except (OSError, ValueError):
        return False
    return stat.S_ISREG(info.st_mode) and info.st_ctime_ns < threshold
