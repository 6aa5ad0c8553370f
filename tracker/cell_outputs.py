"""Each cell's outputs as the kernel publishes them, for a run whose runner saves no executed
notebook (``jupyter execute nb.ipynb``, nbclient used from Python, a test harness).

:func:`install` wraps the send of the kernel's message session (shared by ipykernel's stdout and
stderr streams, display publisher, display hook and tracebacks): each ``stream``,
``display_data``, ``update_display_data``, ``execute_result``, ``error`` and ``clear_output``
message is turned into its notebook output, under the execute request it answers, after it has
been sent unchanged. Any other message costs one type check. At the run's end :meth:`notebook`
gives the notebook as saved, each code cell with the outputs and execution count of its last
execution in the run (found by the request's ``cellId`` where the client sends one, else by
source, in order): the run's executed snapshot, stored by the session like the runner's.

Memory is bounded: an output keeps at most :data:`MAX_OUTPUT` characters, the run at most
:data:`MAX_RUN`; what is left out is said in the output, as Jupyter says it truncated one.
A failure while observing stops the observing (the messages still go out) and is reported once
by the session at the run's end (:attr:`OutputCapture.failure`).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any, NamedTuple

# Bounds on the kernel's memory and on the time the notebook takes to build, redact and store
# at the shutdown (~0.6 s for 8 MiB holding a secret to replace, here).
MAX_OUTPUT = 2 * 1024 * 1024  # characters kept of one output
MAX_RUN = 8 * 1024 * 1024  # characters kept of all the run's outputs
_KINDS = frozenset({"stream", "display_data", "update_display_data", "execute_result", "error",
                    "clear_output"})
_CUT = "\n[output truncated by tracker: more than {} characters]\n"
_KEPT = "kept"  # a stream output's characters so far, while it grows
_RUN_FULL = "[outputs not kept by tracker: the run's outputs passed {} characters]\n"


class Executed(NamedTuple):
    """A cell the run executed: its execution count, the client's cell id, its source."""

    execution_count: int | None
    cell_id: str | None
    source: str


class OutputCapture:
    """The outputs of the current run's cells, by the id of the request that executed them."""

    def __init__(self, kernel: Any) -> None:
        self.kernel = kernel
        self.failure: Exception | None = None
        self._lock = threading.Lock()  # streams are sent from ipykernel's IOPub thread
        self._send: Callable[..., Any] = kernel.session.send
        self.reset()

    def reset(self) -> None:
        """Forget what was seen: a new run starts."""
        with self._lock:
            self._cells: dict[str, Executed] = {}
            self._outputs: dict[str, list[dict[str, Any]]] = {}
            self._clear_on_next: set[str] = set()
            self._displays: dict[str, list[dict[str, Any]]] = {}
            self._size = 0
            self._sizes: dict[str, int] = {}  # characters kept by request
            self._shown: dict[str, set[str]] = {}  # display ids by request
            self._by_cell: dict[str, str] = {}  # each cell id's last request
            self._full: set[str] = set()  # requests told the run's outputs are full

    # -- observing ---------------------------------------------------------------------------

    def send(self, stream: Any, msg_or_type: Any, content: Any = None, parent: Any = None,
             *args: Any, **kwargs: Any) -> Any:
        """The session's send, then the message observed (see the module's docstring)."""
        sent = self._send(stream, msg_or_type, content, parent, *args, **kwargs)
        if self.failure is None:
            try:
                self._observe(msg_or_type, content, parent)
            except Exception as exc:
                self.failure = exc
        return sent

    def _observe(self, msg: Any, content: Any, parent: Any) -> None:
        kind = msg if isinstance(msg, str) else _header_type(msg)
        if kind not in _KINDS:
            return
        if isinstance(msg, dict):
            content, parent = msg.get("content"), msg.get("parent_header")
        request = parent.get("msg_id") if isinstance(parent, dict) else None
        if not request or not isinstance(content, dict):
            return
        with self._lock:
            if kind == "clear_output":
                self._clear(request, wait=bool(content.get("wait")))
            elif kind == "update_display_data":
                self._update(content)
            else:
                self._add(request, kind, content)

    def _clear(self, request: str, *, wait: bool) -> None:
        if wait:  # cleared when the next output comes, as Jupyter does
            self._clear_on_next.add(request)
        else:
            self._drop(request)

    def _drop(self, request: str) -> None:
        """Forget the outputs of ``request`` (cleared, or replaced by a later execution), and
        give back their room under the run's cap."""
        dropped = {id(output) for output in self._outputs.pop(request, ())}
        self._size -= self._sizes.pop(request, 0)
        for display in self._shown.pop(request, ()):
            kept = [output for output in self._displays.get(display, ())
                    if id(output) not in dropped]
            if kept:
                self._displays[display] = kept
            else:
                self._displays.pop(display, None)

    def _update(self, content: dict[str, Any]) -> None:
        for output in self._displays.get(_display_id(content) or "", ()):
            output["data"], output["metadata"] = _bundle(content)
            _cap(output)  # in place of what it showed: the run's count is not moved

    def _add(self, request: str, kind: str, content: dict[str, Any]) -> None:
        if request in self._clear_on_next:
            self._clear_on_next.discard(request)
            self._drop(request)
        outputs = self._outputs.setdefault(request, [])
        if self._size >= MAX_RUN:
            if request not in self._full:
                self._full.add(request)
                outputs.append(_stream("stderr", _RUN_FULL.format(MAX_RUN)))
            return
        if kind == "stream":
            self._count(request, _append_stream(outputs, content))
            return
        output = _output(kind, content)
        self._count(request, _cap(output))
        outputs.append(output)
        display = _display_id(content)
        if display:
            self._displays.setdefault(display, []).append(output)
            self._shown.setdefault(request, set()).add(display)

    def _count(self, request: str, size: int) -> None:
        self._size += size
        self._sizes[request] = self._sizes.get(request, 0) + size

    def executed(self, count: int | None, cell_id: str | None, source: str) -> None:
        """Note that the cell being executed now is one of the run's (its outputs are found
        by its request, the kernel's current one; ``cell_id`` None: the request's)."""
        parent = self.kernel.get_parent()
        request = _request_id(parent)
        if not request:
            return
        if cell_id is None:  # the cell that loaded tracker: its id is in the request
            cell_id = (parent.get("metadata") or {}).get("cellId")
        cell_id = cell_id if isinstance(cell_id, str) else None
        with self._lock:
            if cell_id is not None:
                self._forget_earlier(cell_id, request)
            self._cells[request] = Executed(count, cell_id, source)

    def _forget_earlier(self, cell_id: str, request: str) -> None:
        """Drop the outputs of the cell's earlier executions, which its last replaces (a
        plotting cell run again and again must not fill the run's cap)."""
        earlier = self._by_cell.get(cell_id)
        self._by_cell[cell_id] = request
        if earlier is not None and earlier != request:
            self._cells.pop(earlier, None)
            self._drop(earlier)

    # -- the executed notebook ---------------------------------------------------------------

    def notebook(self, raw: bytes) -> bytes | None:
        """The notebook ``raw`` (a saved nbformat 4 ``.ipynb``) with each code cell's outputs
        and execution count from the run; None when it is not one or the run executed none
        of its cells."""
        try:
            document = json.loads(raw)
        except ValueError:  # an editor mid-save
            return None
        if not isinstance(document, dict) or document.get("nbformat") != 4 \
                or not isinstance(document.get("cells"), list):
            return None
        with self._lock:
            executed = _matched(document["cells"], self._cells)
            if not executed:
                return None
            for index, cell in enumerate(document["cells"]):
                if isinstance(cell, dict) and cell.get("cell_type") == "code":
                    request = executed.get(index)
                    run = self._cells.get(request) if request else None
                    cell["execution_count"] = run.execution_count if run else None
                    cell["outputs"] = [_finished(o) for o in self._outputs.get(request or "", ())]
        return (json.dumps(document, indent=1, ensure_ascii=False) + "\n").encode(
            "utf-8", "surrogatepass")


def install(kernel: Any) -> OutputCapture | None:
    """Observe the outputs ``kernel`` (ipykernel's) publishes; None for another kernel."""
    session = getattr(kernel, "session", None)
    if session is None or not callable(getattr(kernel, "get_parent", None)):
        return None
    capture = OutputCapture(kernel)
    session.send = capture.send
    return capture


def _header_type(msg: Any) -> str | None:
    header = msg.get("header") if isinstance(msg, dict) else None
    kind = header.get("msg_type") if isinstance(header, dict) else None
    return kind if isinstance(kind, str) else None


def _display_id(content: dict[str, Any]) -> str | None:
    """The id a display was given to be updated by (``display(..., display_id=True)``)."""
    transient = content.get("transient")
    display = transient.get("display_id") if isinstance(transient, dict) else None
    return display if isinstance(display, str) else None


def _request_id(parent: Any) -> str | None:
    header = parent.get("header") if isinstance(parent, dict) else None
    return header.get("msg_id") if isinstance(header, dict) else None


def _matched(cells: list[Any], executed: dict[str, Executed]) -> dict[int, str]:
    """The request whose outputs each code cell (by index) gets: the last execution of the cell
    with its id; else the first execution left with its source, in order (a notebook run top to
    bottom executes each cell once; VS Code's cell ids are not the notebook's; an edited or
    unsaved cell matches none)."""
    from tracker.notebook import cell_source, normalise

    code = [(index, cell) for index, cell in enumerate(cells)
            if isinstance(cell, dict) and cell.get("cell_type") == "code"]
    by_id = {run.cell_id: request for request, run in executed.items() if run.cell_id}
    found = {index: by_id[cell["id"]] for index, cell in code
             if isinstance(cell.get("id"), str) and cell["id"] in by_id}
    taken = set(found.values())
    left = [request for request in executed if request not in taken]
    for index, cell in code:
        if index in found:
            continue
        source = normalise(cell_source(cell))
        request = next((r for r in left if normalise(executed[r].source) == source), None)
        if request is not None:
            left.remove(request)
            found[index] = request
    return found


def _stream(name: str, text: str) -> dict[str, Any]:
    return {"output_type": "stream", "name": name, "text": text}


def _bundle(content: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    data, metadata = content.get("data"), content.get("metadata")
    return (dict(data) if isinstance(data, dict) else {},
            dict(metadata) if isinstance(metadata, dict) else {})


def _output(kind: str, content: dict[str, Any]) -> dict[str, Any]:
    """The notebook output (nbformat 4) of an iopub message's ``content``."""
    if kind == "error":
        traceback = content.get("traceback")
        return {"output_type": "error", "ename": str(content.get("ename", "")),
                "evalue": str(content.get("evalue", "")),
                "traceback": [str(line) for line in traceback]
                if isinstance(traceback, list) else []}
    data, metadata = _bundle(content)
    output: dict[str, Any] = {"output_type": kind, "data": data, "metadata": metadata}
    if kind == "execute_result":
        count = content.get("execution_count")
        output["execution_count"] = count if isinstance(count, int) else None
    return output


def _append_stream(outputs: list[dict[str, Any]], content: dict[str, Any]) -> int:
    """Add a stream's text to ``outputs`` (to the last output if it is the same stream, as
    Jupyter shows it), cut at :data:`MAX_OUTPUT`; the characters kept. The pieces are joined
    when the notebook is built (:func:`_finished`): a cell printing for hours sends thousands."""
    name, text = str(content.get("name", "stdout")), str(content.get("text", ""))
    last = outputs[-1] if outputs else None
    if last is None or _KEPT not in last or last["name"] != name:  # not a growing stream
        last = {"output_type": "stream", "name": name, "text": [], _KEPT: 0}
        outputs.append(last)
    room = MAX_OUTPUT - last[_KEPT]
    if room <= 0:
        return 0
    if len(text) > room:
        text = text[:room] + _CUT.format(MAX_OUTPUT)
    last["text"].append(text)
    last[_KEPT] += len(text)
    return len(text)


def _finished(output: dict[str, Any]) -> dict[str, Any]:
    """``output`` as the notebook stores it: a stream's pieces joined, and nothing else."""
    if output["output_type"] != "stream" or isinstance(output["text"], str):
        return output
    return _stream(output["name"], "".join(output["text"]))


def _cap(output: dict[str, Any]) -> int:
    """Cut ``output`` (not a stream) to :data:`MAX_OUTPUT`; the characters it keeps. A bundle
    too big keeps its plain text, cut, with the note; a traceback too long, its last lines."""
    size = _size(output.get("data", output.get("traceback")))
    if size <= MAX_OUTPUT:
        return size
    note = _CUT.format(MAX_OUTPUT)
    if output["output_type"] == "error":
        output["traceback"] = [note, *_tail(output["traceback"])]
    else:
        plain = str(output["data"].get("text/plain", ""))[:MAX_OUTPUT]
        output["data"], output["metadata"] = {"text/plain": plain + note}, {}
    return min(size, MAX_OUTPUT + len(note))


def _tail(lines: list[str]) -> list[str]:
    kept: list[str] = []
    size = 0
    for line in reversed(lines):
        size += len(line)
        if size > MAX_OUTPUT:
            break
        kept.append(line)
    return kept[::-1]


def _size(value: Any) -> int:
    """Characters ``value`` (a mime bundle or a traceback) takes, about as stored."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        return sum(_size(item) for item in value.values())
    if isinstance(value, list):
        return sum(_size(item) for item in value)
    return len(json.dumps(value, default=str))
