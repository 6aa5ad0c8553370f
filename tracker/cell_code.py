"""A notebook cell's source read as Python: IPython's magics and shell lines do not parse."""

from __future__ import annotations

import ast
import re

_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")
# What changes the scanner's state: a string's start or end, a bracket, a comment, an escape.
_TOKEN = re.compile(r"""[rRbBuUfF]{0,2}(?:'''|\"\"\"|'|")|[()\[\]{}]|#|\\""")
_UNPARSED = (SyntaxError, ValueError, RecursionError, MemoryError)


def parsed(source: str) -> ast.Module | None:
    """The cell's syntax tree; None for a cell that is not Python, or too deeply nested to
    parse. A cell that parses as it is is read as it is; only one that does not has its magic
    and shell lines (``%pip install x``, ``!ls``) read as ``pass``, in place (positions still
    hold, and a magic inside a block leaves the block whole)."""
    try:
        return ast.parse(source)
    except _UNPARSED:
        pass
    try:
        return ast.parse(without_magics(source))
    except _UNPARSED:
        return None


def without_magics(source: str) -> str:
    """``source`` with each line that starts a statement with ``%`` or ``!`` as ``pass``: not
    a line inside brackets (``% n)`` under a black-formatted string format), a string or after a
    backslash, which only continues one."""
    out = []
    starts, in_magic = True, False
    scanner = _Scanner()
    for line in lines(source):
        body = line.rstrip("\r\n")
        stripped = body.lstrip()
        if in_magic:  # IPython joins a magic's lines ended by a backslash: blank the rest
            line = line[len(body):]
            in_magic = body.endswith("\\")
        elif starts and stripped.startswith(("%", "!")):
            line = body[: len(body) - len(stripped)] + "pass" + line[len(body):]
            in_magic = body.endswith("\\")
        else:
            scanner.feed(body)
            starts = scanner.at_statement_start()
        out.append(line)
    return "".join(out)


class _Scanner:
    """Just enough of Python's tokenizer to tell whether the next line starts a statement:
    bracket depth, an open string, and a trailing backslash."""

    def __init__(self) -> None:
        self.depth = 0
        self.quote: str | None = None  # the open string's closing quote
        self.continued = False

    def at_statement_start(self) -> bool:
        return self.depth == 0 and self.quote is None and not self.continued

    def feed(self, line: str) -> None:
        self.continued = False
        at = 0
        while at < len(line):
            if self.quote is not None:
                at = self._in_string(line, at)
                continue
            found = _TOKEN.search(line, at)
            if found is None:
                return
            token, at = found.group(), found.end()
            if token == "#":
                return
            if token == "\\":
                self.continued = at == len(line)
            elif token in "([{":
                self.depth += 1
            elif token in ")]}":
                self.depth = max(self.depth - 1, 0)
            else:
                self.quote = token.lstrip("rRbBuUfF")

    def _in_string(self, line: str, at: int) -> int:
        """Past the open string's end on ``line``, or past the line (escapes skipped)."""
        quote = self.quote or ""
        while at < len(line):
            if line[at] == "\\":
                if at + 1 == len(line):
                    self.continued = True
                at += 2
            elif line.startswith(quote, at):
                self.quote = None
                return at + len(quote)
            else:
                at += 1
        if len(quote) == 1 and not self.continued:
            self.quote = None  # an unclosed one-line string ends with its line (a syntax error)
        return at


def lines(text: str) -> list[str]:
    """Lines as ast counts them, ends kept (``str.splitlines`` also splits at ``\\x0c``)."""
    return _LINE.findall(text)
