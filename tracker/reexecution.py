"""Running a stored notebook again: its recorded parameters injected, executed in a real kernel.

:func:`inject_parameters` does what papermill does (a cell tagged ``injected-parameters`` after
the cell tagged ``parameters``) with the run's recorded values, so that a run made with
``papermill -p lr 0.5`` or after editing the parameters cell runs with what it recorded.
:func:`execute` runs the notebook with nbclient (not papermill: nbclient is all papermill uses
to run a notebook, and tracker writes the parameters cell itself), in a kernel started with
the extension loaded and ``TRACKER_CATALOG`` / ``TRACKER_NOTEBOOK`` set, so the new run lands in
the same catalog under the notebook's own name.
"""

from __future__ import annotations

import ast
import math
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tracker import cell_code
from tracker.errors import TrackerError

__all__ = ["Execution", "execute", "inject_parameters", "skip_iri_grammars"]

PARAMETERS = "parameters"
INJECTED = "injected-parameters"
_INJECTED_HEADER = "# Parameters"  # papermill's first line, which the run detail recognises
_REDACTED = "<redacted:"
_COMPUTED = object()  # an assignment whose value is not a literal


def _tags(cell: Any) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _assignments(source: str) -> dict[str, Any]:
    """The names a cell assigns at top level (``lr = 0.1``, ``lr: float = 0.1``), in order,
    with the value when it is a literal (else ``_COMPUTED``)."""
    tree = cell_code.parsed(source)
    if tree is None:
        return {}
    names: dict[str, Any] = {}
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else \
            [node.target] if isinstance(node, ast.AnnAssign) else []
        value = getattr(node, "value", None)
        for target in targets:
            if isinstance(target, ast.Name):
                names[target.id] = _evaluated(value) if len(targets) == 1 else _COMPUTED
    return names


def _evaluated(node: ast.expr | None) -> Any:
    try:
        return ast.literal_eval(node) if node is not None else _COMPUTED
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return _COMPUTED


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and (a == b or (a != a and b != b))


def _literal(value: Any) -> str | None:
    """Python source that evaluates to ``value``, or None when there is none (a redacted
    secret, an object recorded as its repr)."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"float({str(value)!r})"
    if isinstance(value, str) and value.startswith(_REDACTED):
        return None
    text = repr(value)
    try:
        if ast.literal_eval(text) == value:
            return text
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        pass
    return None


def inject_parameters(notebook: Any, params: Mapping[str, Any]) -> tuple[dict[str, Any],
                                                                        dict[str, str]]:
    """Set the recorded values the notebook's own would not give again, as papermill does:
    a fresh injected-parameters cell after the parameters cell (replacing an earlier one),
    for the names that earlier cell set and those whose recorded value differs from the
    parameters cell's. Names whose value is the cell's own are left alone, so a run made with
    the defaults executes exactly its recorded code.

    Returns what was injected and, per name left out, why. A notebook without a parameters
    cell (or injected cell) is left as it is: it runs with its own values.
    """
    import nbformat

    cells = list(notebook.cells)
    injected = [c for c in cells if INJECTED in _tags(c)]
    before = {name: value for c in injected for name, value in _assignments(c.source).items()}
    at = next((i for i, c in enumerate(cells) if PARAMETERS in _tags(c)), None)
    defaults = _assignments(cells[at].source) if at is not None else {}
    values: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    for name in [*defaults, *(n for n in before if n not in defaults)]:
        if name not in params:
            skipped[name] = "not recorded"
        elif name not in before and _same(defaults[name], params[name]):
            continue  # the parameters cell sets the recorded value itself
        elif _literal(params[name]) is None:
            skipped[name] = "no Python literal for its recorded value (redacted, or a repr)"
        else:
            values[name] = params[name]
    if not values and not injected:
        return values, skipped
    lines = [_INJECTED_HEADER, *(f"{name} = {_literal(value)}" for name, value in values.items())]
    fresh = nbformat.v4.new_code_cell("\n".join(lines) + "\n", metadata={"tags": [INJECTED]})
    kept = [c for c in cells if INJECTED not in _tags(c)]
    position = kept.index(cells[at]) + 1 if at is not None else 0
    notebook.cells = [*kept[:position], fresh, *kept[position:]]
    return values, skipped


def skip_iri_grammars() -> None:
    """For a process of tracker's own (``tracker reproduce``), before nbclient is imported:
    jsonschema, which nbformat imports, loads ``rfc3987_syntax`` if it can, and that compiles
    its IRI grammars at import (2-4 s of a 3-6 s nbclient import here) for a format check
    nbformat's schemas never ask for. Marked missing, jsonschema leaves that check out. Never
    in a user's process (``tracker.reproduce()``): its jsonschema may want it."""
    if "jsonschema" not in sys.modules:
        sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Execution:
    """How a re-execution ended: ``error`` is None when every cell ran."""

    seconds: float
    error: str | None


def execute(notebook: Any, path: Path, *, catalog: str, timeout: float | None) -> Execution:
    """Write ``notebook`` to ``path``, run it there in a fresh kernel recording into
    ``catalog`` (what ``TRACKER_CATALOG`` holds: a file or a URL), and save the executed
    notebook over ``path``."""
    import time

    import nbformat

    try:
        from jupyter_client.kernelspec import NoSuchKernel
        from nbclient import NotebookClient
        from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
    except ImportError:
        raise TrackerError("reproducing a run needs nbclient and ipykernel: pip install "
                           "'tracker[reproduce]'") from None
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nbformat.write(notebook, path)  # the extension reads the notebook it is told it runs
    env = {**os.environ, "TRACKER_CATALOG": catalog, "TRACKER_NOTEBOOK": str(path)}
    # The kernel's one warning, that TCP on localhost is not encrypted, is noise in a report;
    # an extension that fails to load (tracker missing from the kernel's Python), a warning
    # too, then stops the kernel with its traceback instead of recording nothing unexplained.
    client = NotebookClient(notebook, timeout=timeout, resources={"metadata": {
        "path": str(path.parent)}}, extra_arguments=[
            "--ext=tracker", "--IPKernelApp.log_level=ERROR",
            "--IPKernelApp.reraise_ipython_extension_failures=True"])
    start = time.perf_counter()
    error = None
    try:
        client.execute(env=env)
    except CellExecutionError as exc:
        error = f"cell failed: {exc.ename}: {exc.evalue}"
    except NoSuchKernel as exc:
        error = f"no kernel named {exc.name!r} is installed; install it, or set the notebook's "\
                "kernelspec"
    except (CellTimeoutError, DeadKernelError, TimeoutError, RuntimeError, OSError) as exc:
        error = f"the notebook did not finish: {type(exc).__name__}: {exc}"
    seconds = time.perf_counter() - start
    nbformat.write(notebook, path)
    return Execution(seconds, error)
