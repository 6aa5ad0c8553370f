"""A notebook cell's source read as Python: IPython's magics and shell lines do not parse."""

from __future__ import annotations

import ast
import re

_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")


def parsed(source: str) -> ast.Module | None:
    """The cell's syntax tree, each magic or shell line (``%pip install x``, ``!ls``) read as
    ``pass`` on the same line and column, so positions still hold and a magic inside a block
    leaves the block whole; None for a cell that is not Python, or too deeply nested to parse."""
    try:
        return ast.parse(without_magics(source))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def without_magics(source: str) -> str:
    """``source`` with each line that starts with ``%`` or ``!`` (after its indent) as ``pass``."""
    out = []
    for line in lines(source):
        body = line.rstrip("\r\n")
        stripped = body.lstrip()
        if stripped.startswith(("%", "!")):
            line = body[: len(body) - len(stripped)] + "pass" + line[len(body):]
        out.append(line)
    return "".join(out)


def lines(text: str) -> list[str]:
    """Lines as ast counts them, ends kept (``str.splitlines`` also splits at ``\\x0c``)."""
    return _LINE.findall(text)
