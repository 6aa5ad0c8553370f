"""The ``%tracker`` line magic: the notebook's own commands for its run (status, new, end,
param, tag, input, output, runs), each a small function of the extension's session.

A command the user typed never raises into the notebook: a failure is a TrackerWarning that says
what failed, every time (unlike the hooks' one warning per session).
"""

from __future__ import annotations

import ast
import re
import shlex
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tracker import notices

if TYPE_CHECKING:
    from tracker.ipython import Session
    from tracker.run import Run

USAGE = """\
%tracker                  status of this notebook's run
%tracker new [NAME]       end this run and start another in the same kernel
%tracker end              end this run (cells are recorded again once
                          %tracker new or a logging call starts the next)
%tracker param K=V ...    set params (values are Python literals, else text)
%tracker tag K=V ...      set tags (text; again replaces); --delete K ... removes them
%tracker input PATH ...   record files or URIs this run read
%tracker output PATH ...  record files or URIs this run wrote
%tracker runs [FILTER]    show the runs table (the filter language of tracker.runs)
%tracker help             this list"""


def magic(session: Session) -> Callable[[str], Any]:
    """The ``%tracker`` magic bound to ``session``, for the extension to register."""
    def tracker(line: str) -> Any:
        """Control this notebook's run; ``%tracker help`` lists the sub-commands."""
        words = line.split(None, 1)
        command = words[0] if words else "status"
        rest = words[1] if len(words) > 1 else ""
        handler = _COMMANDS.get(command)
        if handler is None:
            if command not in ("help", "-h", "--help"):
                print(f"tracker: unknown command {command!r}")
            print(USAGE)
            return None
        try:
            return handler(session, rest.strip())
        except Exception as exc:  # a command the user asked for: say why, every time
            notices.warn(f"tracker: %tracker {line.strip()} failed ({type(exc).__name__}: {exc})",
                         stacklevel=2)
            return None

    tracker.__doc__ = USAGE
    return tracker


def _status(session: Session, rest: str) -> None:
    run = session.run
    if run is None:
        print("tracker: no run (start one with %tracker new)")
        return
    state = "ended" if run.ended else "running"
    where = session.notebook.path if session.notebook else "no notebook"
    params = ", ".join(f"{k}={v!r}" for k, v in list(run.params.items())[:8]) or "none"
    metrics = ", ".join(f"{k}={v:g}" for k, v in list(run.metrics.items())[:8]) or "none"
    print(f"run {run.id} '{session.run_name()}' ({state})\n  notebook: {where}\n"
          f"  catalog:  {run.catalog.store.shown}\n  params:   {params}\n  metrics:  {metrics}\n"
          f"  cells:    {session.cells_recorded} recorded\n  key:      {run.key}")


def _new(session: Session, rest: str) -> None:
    session.end()
    run = session.start(name=" ".join(shlex.split(rest)) or None)
    print(f"tracker: started run {run.id} '{session.run_name()}'")


def _end(session: Session, rest: str) -> None:
    if session.run is None or session.run.ended:
        print("tracker: no run is open")
        return
    session.end()
    print(f"tracker: ended run {session.run.id} ({session.run.exit_status})")


def _param(session: Session, rest: str) -> None:
    try:
        params = parse_params(rest)
    except ValueError as exc:  # the user's typing: say what is wrong, record nothing
        print(f"tracker: {exc}; nothing was recorded (usage: %tracker param K=V ...)")
        return
    run = _open_run(session, "%tracker param")
    for key, value in params:
        run.log_param(key, value)


def parse_params(line: str) -> list[tuple[str, Any]]:
    """``K=V`` words as (key, value) pairs, values as Python literals, else text.

    A word ends at a space outside quotes and brackets, so ``d={'k': 1}`` is one word. Raises
    ValueError for any word that is not ``K=V``, an unclosed quote or bracket, or a value that
    starts like a literal (a quote or bracket) but is not one: then nothing is recorded.
    """
    pairs = []
    for word in _words(line):
        key, sep, text = word.partition("=")
        if not sep or not (key.isidentifier() or _DOTTED.fullmatch(key)):
            raise ValueError(f"expected KEY=VALUE, got {word!r}")
        pairs.append((key, _literal(text)))
    return pairs


_DOTTED = re.compile(r"[A-Za-z_][\w.-]*")  # keys such as optimizer.lr or batch-size
_CLOSING = {"(": ")", "[": "]", "{": "}"}


def _words(line: str) -> list[str]:
    """Split at spaces that are outside quotes and brackets."""
    words: list[str] = []
    current: list[str] = []
    closers: list[str] = []  # the brackets or quote still open, innermost last
    escaped = False
    for char in line.strip():
        if escaped:
            escaped = False
        elif closers and closers[-1] in "'\"":
            escaped = char == "\\"
            if char == closers[-1]:
                closers.pop()
        elif char in "'\"":
            closers.append(char)
        elif char in _CLOSING:
            closers.append(_CLOSING[char])
        elif closers and char == closers[-1]:
            closers.pop()
        elif char.isspace() and not closers:
            if current:
                words.append("".join(current))
            current = []
            continue
        current.append(char)
    if closers:
        raise ValueError(f"{closers[-1]!r} missing at the end of {line.strip()!r}")
    if current:
        words.append("".join(current))
    return words


def _tag(session: Session, rest: str) -> None:
    """``K=V ...`` sets tags, ``--delete K ...`` removes them; a malformed word records nothing."""
    words = shlex.split(rest)
    removing = words[:1] == ["--delete"]
    pairs = [word.partition("=") for word in words]
    bad = [] if removing else [word for word, (key, sep, _) in zip(words, pairs, strict=True)
                               if not sep or not key]
    if bad or not words[1 if removing else 0:]:
        shown = repr(bad[0]) if bad else "nothing"
        print(f"tracker: expected KEY=VALUE ... or --delete KEY ..., got {shown}; no tag set")
        return
    run = _open_run(session, "%tracker tag")
    if removing:
        for key in words[1:]:
            run.delete_tag(key)
        return
    run.set_tags({key: value for key, _, value in pairs})


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        if text and text[0] in "'\"([{":
            raise ValueError(f"{text!r} is not a Python literal") from None
        return text


def _input(session: Session, rest: str) -> None:
    _artifacts(session, "input", rest)


def _output(session: Session, rest: str) -> None:
    _artifacts(session, "output", rest)


def _artifacts(session: Session, role: str, rest: str) -> None:
    """``%tracker input|output PATH ...``: every path, or a usage line when none is given."""
    paths = shlex.split(rest)
    if not paths:
        print(f"tracker: give the file or URI this run {'read' if role == 'input' else 'wrote'}"
              f": %tracker {role} PATH ...")
        return
    run = _open_run(session, f"%tracker {role}")
    for path in paths:
        (run.log_input if role == "input" else run.log_output)(path)


def _runs(session: Session, rest: str) -> Any:
    from tracker.widgets import RunTable

    return RunTable(rest or None, catalog=session.catalog)


def _open_run(session: Session, by: str) -> Run:
    """The session's run; after ``%tracker end``, a new one, with a notice saying so."""
    run = session.run
    if run is not None and not run.ended:
        return run
    return session.resume(by)


_COMMANDS: dict[str, Callable[[Session, str], Any]] = {
    "status": _status, "new": _new, "end": _end, "param": _param, "tag": _tag, "input": _input,
    "output": _output, "runs": _runs,
}
#: The sub-commands of ``%tracker``, in the order USAGE lists them (tests check USAGE and the
#: README against it)
SUBCOMMANDS = tuple(_COMMANDS)
