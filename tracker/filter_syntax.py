"""The filter language's syntax: text such as ``params.lr > 0.01 and status = 'completed'`` read
into an AST of frozen dataclasses (:class:`Predicate`, :class:`Logic`), which
:mod:`tracker.filter_language` compiles to SQL.

Reading order: the names a filter may use, a tokenizer, the AST, a recursive-descent parser
(precedence NOT > AND > OR; sort keys too), the resolution of a field name, and ``parse`` /
``reported``, which turn a :class:`Problem` at an offset into a FilterSyntaxError.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, TypeVar

from tracker.errors import FilterSyntaxError

_COLUMNS = (
    "id", "name", "project", "notebook", "notebook_name", "notebook_title", "status", "started_at",
    "ended_at", "duration", "host", "pid", "username", "labels", "notes", "parent_id", "deleted_at",
    "environment_id", "error",
)  # fmt: skip
# MLflow's names too: `created` and `run name` are aliases its search accepts.
_SYNONYMS = {
    "run_id": "id", "run_name": "name", "run name": "name", "start_time": "started_at",
    "created": "started_at", "end_time": "ended_at", "user": "username", "user_id": "username",
    "parent": "parent_id",
}  # fmt: skip
ATTRIBUTES: Mapping[str, str] = MappingProxyType({**{c: c for c in _COLUMNS}, **_SYNONYMS})
"""Filter name (lower case) -> ``runs`` column. Names may also be written ``attributes.<name>``
(or ``attribute.``, ``attr.``, ``run.``)."""

# How each non-text column compares; every other attribute is plain text.
_COLUMN_KINDS = {
    "status": "status", "started_at": "time", "ended_at": "time", "deleted_at": "time",
    "duration": "number", "pid": "number", "labels": "labels",
}  # fmt: skip
# metrics.<key> is the value logged last; this namespace is MLflow's latest: the value at the
# largest step (a point without a step counts as step 0, as in MLflow; ties: the last logged).
STEPPED = "metrics_at_max_step"
_NAMESPACES = {"params": "params", "param": "params", "parameters": "params",
               "parameter": "params", "metrics": "metrics", "metric": "metrics", "tags": "tags",
               "tag": "tags", STEPPED: STEPPED, "metric_at_max_step": STEPPED}  # fmt: skip
_ATTRIBUTE_PREFIXES = ("attributes", "attribute", "attr", "run")
# The files a run read or wrote: ``inputs CONTAINS 'data/x.csv'`` (role in ``run_artifacts``).
FILE_FIELDS: Mapping[str, str] = MappingProxyType({"inputs": "input", "outputs": "output"})
_SPELLINGS = {"==": "=", "<>": "!="}
_RESERVED = ("AND", "OR", "NOT", "IN", "IS", "LIKE", "ILIKE", "CONTAINS", "ASC", "DESC")
_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
    | (?P<member>(?<=`)\.(?:[^\W\d][\w.\-/]*)?)  # `metrics`.acc: the key after a quoted prefix
    | (?P<number>-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
    | (?P<name>[^\W\d][\w.\-/]*)  # bare keys may hold dots, dashes, slashes: metrics.train/loss
    | (?P<op>==|!=|<>|<=|>=|=|<|>)
    | (?P<punct>[(),])
    """,
    re.VERBOSE,
)
_QUOTES = {"'": "string", '"': "string", "`": "quoted"}
MAX_DEPTH = 50  # nested parentheses and NOTs; deeper would exhaust Python's recursion limit
SURROGATE = re.compile("[\ud800-\udfff]")  # a lone one is not Unicode: no database takes it
_T = TypeVar("_T")


class Problem(Exception):
    """``(message, position)`` of a syntax problem; raised to users as FilterSyntaxError."""


@dataclass(frozen=True)
class _Token:
    kind: str  # name, quoted (backticks), member (.key after one), string, number, op, punct, end
    value: str  # the source text, unescaped for quoted tokens
    position: int
    end: int

    def matches(self, *words: str) -> bool:
        """Whether this is one of ``words``: a bare keyword (any case) or punctuation."""
        return self.kind in ("name", "punct") and self.value.upper() in words

    def describe(self) -> str:
        return "the end of the text" if self.kind == "end" else repr(self.value)


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(text):
        if text[position] in _QUOTES:
            value, end = _read_quoted(text, position)
            tokens.append(_Token(_QUOTES[text[position]], value, position, end))
            position = end
            continue
        match = _TOKEN.match(text, position)
        if match is None:
            raise Problem(f"unexpected character {text[position]!r}", position)
        end = match.end()
        if match.lastgroup == "number" and re.match(r"[\w.]", text[end : end + 1]):
            raise Problem(f"malformed number {text[position : end + 1]!r}", position)
        if match.lastgroup != "space":
            tokens.append(_Token(match.lastgroup or "", match.group(), position, end))
        position = end
    tokens.append(_Token("end", "", len(text), len(text)))
    return tokens


def _read_quoted(text: str, start: int) -> tuple[str, int]:
    """Decode the quoted text opening at ``start``; a doubled quote or a backslash escapes it.

    A backslash escapes only the quote and itself, so Windows paths need no doubling.
    """
    quote, chars, i = text[start], [], start + 1
    while i < len(text):
        char, following = text[i], text[i + 1 : i + 2]
        if (char == "\\" and following in (quote, "\\")) or (char == quote == following):
            chars.append(following)
            i += 2
        elif char == quote:
            return "".join(chars), i + 1
        else:
            chars.append(char)
            i += 1
    raise Problem("unterminated quoted name" if quote == "`" else "unterminated string", start)


@dataclass(frozen=True)
class Field:
    namespace: str  # "attributes", "params", "metrics", "tags", STEPPED or "files"
    key: str  # the runs column for attributes, the role for files, else the key
    position: int

    @property
    def kind(self) -> str:
        """How the field compares: params, metrics, labels, status, time, number or text (tags
        are text)."""
        if self.namespace == "tags":
            return "text"
        if self.namespace == STEPPED:
            return "metrics"
        if self.namespace != "attributes":
            return self.namespace
        return _COLUMN_KINDS.get(self.key, "text")

    def __str__(self) -> str:
        if self.namespace == "files":
            return f"{self.key}s"
        return self.key if self.namespace == "attributes" else f"{self.namespace}.{self.key}"


@dataclass(frozen=True)
class Literal:
    value: Any  # str, int, float, bool or None
    position: int
    text: str  # as written, so a number compares with a text column as typed


@dataclass(frozen=True)
class Predicate:
    field: Field
    op: str  # =, !=, <, <=, >, >=, IN, LIKE, ILIKE, CONTAINS, or NULL (for IS NULL)
    values: tuple[Literal, ...]
    negated: bool
    position: int


@dataclass(frozen=True)
class Logic:
    op: str  # AND, OR, or NOT (with one operand)
    operands: tuple[Node, ...]


Node = Predicate | Logic


class Parser:
    """Recursive descent over the tokens of one text; precedence NOT > AND > OR."""

    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.index = 0
        self.depth = 0

    def peek(self) -> _Token:
        return self.tokens[self.index]

    def advance(self) -> _Token:
        token = self.tokens[self.index]
        self.index = min(self.index + 1, len(self.tokens) - 1)
        return token

    def accept(self, *words: str) -> bool:
        """Consume the next token if it is one of ``words``."""
        found = self.peek().matches(*words)
        if found:
            self.advance()
        return found

    def expression(self) -> Node:
        return self._junction("OR", self._conjunction)

    def _conjunction(self) -> Node:
        return self._junction("AND", self._negation)

    def _junction(self, word: str, operand: Callable[[], Node]) -> Node:
        operands = [operand()]
        while self.accept(word):
            operands.append(operand())
        return operands[0] if len(operands) == 1 else Logic(word, tuple(operands))

    def _negation(self) -> Node:
        if not self.peek().matches("NOT", "("):
            return self._predicate()
        opening = self.advance()
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise Problem(f"nested more than {MAX_DEPTH} levels deep", opening.position)
        if opening.matches("NOT"):
            inner: Node = Logic("NOT", (self._negation(),))
        else:
            inner = self.expression()
            self._expect(")", f"missing ')' to close the '(' at position {opening.position}")
        self.depth -= 1
        return inner

    def _expect(self, word: str, problem: str) -> _Token:
        token = self.advance()
        if not token.matches(word):
            raise Problem(f"{problem}, found {token.describe()}", token.position)
        return token

    def field(self) -> Field:
        """A field: ``status``, ``params.a.b``, ``params.`a b```, ``params."a b"``..."""
        token = self.advance()
        if token.kind == "quoted" and self.peek().kind == "member":
            return self._member(token)
        if token.kind == "quoted":
            return _resolve(token.value, token.position + 1)
        if token.kind != "name" or token.matches(*_RESERVED):
            raise Problem(f"expected a field name, found {token.describe()}", token.position)
        reference, following = token.value, self.peek()
        adjacent = following.kind in ("quoted", "string") and following.position == token.end
        quoted = reference.endswith(".") and adjacent
        if quoted:
            reference += self.advance().value
        return _resolve(reference, token.position, quoted=quoted)

    def _member(self, prefix: _Token) -> Field:
        """A quoted prefix and its key, as MLflow writes them: ```metrics`.acc``,
        ```params`."a b"``."""
        member = self.advance()
        reference, following = prefix.value + member.value, self.peek()
        quoted = member.value == "." and following.kind in ("quoted", "string") \
            and following.position == member.end
        if quoted:
            reference += self.advance().value
        elif member.value == ".":
            raise Problem(f"expected a key after {reference!r}", member.end)
        return _resolve(reference, prefix.position, quoted=quoted)

    def _predicate(self) -> Predicate:
        field = self.field()
        token = self.advance()
        if token.kind == "op":
            op = _SPELLINGS.get(token.value, token.value)
            return Predicate(field, op, (self._literal(),), False, token.position)
        if token.matches("IS"):
            negated = self.accept("NOT")
            self._expect("NULL", "expected NULL after IS")
            return Predicate(field, "NULL", (), negated, token.position)
        negated = token.matches("NOT")
        if negated:
            token = self.advance()
        if token.matches("IN"):
            return Predicate(field, "IN", self._values(), negated, token.position)
        if token.matches("LIKE", "ILIKE", "CONTAINS"):
            op = token.value.upper()
            return Predicate(field, op, (self._literal(),), negated, token.position)
        expected = "IN, LIKE, ILIKE or CONTAINS" if negated else "an operator (=, <, IN, IS...)"
        raise Problem(f"expected {expected}, found {token.describe()}", token.position)

    def _values(self) -> tuple[Literal, ...]:
        opening = self._expect("(", "expected '(' after IN")
        if self.peek().matches(")"):
            raise Problem("empty IN list", self.peek().position)
        values = [self._literal()]
        while self.accept(","):
            values.append(self._literal())
        self._expect(")", f"missing ')' to close the '(' at position {opening.position}")
        return tuple(values)

    def _literal(self) -> Literal:
        token = self.advance()
        if token.kind == "number":
            number = float(token.value) if set(".eE") & set(token.value) else int(token.value)
            return Literal(number, token.position, token.value)
        if token.kind == "string":
            return Literal(token.value, token.position, token.value)
        if token.matches("TRUE", "FALSE", "NULL"):
            value = {"TRUE": True, "FALSE": False, "NULL": None}[token.value.upper()]
            return Literal(value, token.position, token.value)
        hint = "; quote text, e.g. 'adam'" if token.kind == "name" else ""
        raise Problem(f"expected a value, found {token.describe()}{hint}", token.position)

    def sort_keys(self) -> list[tuple[Field, bool]]:
        """``field [ASC|DESC] [, ...]``; True means descending."""
        keys: list[tuple[Field, bool]] = []
        while not keys or self.accept(","):
            field, descending = self.field(), self.peek().matches("DESC")
            if field.namespace == "files":
                raise Problem(f"runs cannot be sorted by their {field}", field.position)
            self.accept("ASC", "DESC")
            keys.append((field, descending))
        return keys


def _resolve(reference: str, position: int, *, quoted: bool = False) -> Field:
    """The field a name refers to: ``params.<key>``, ``metrics.<key>`` or an attribute.

    ``quoted``: the key after the dot was quoted, so even an empty key was written out.
    """
    prefix, dot, rest = reference.partition(".")
    prefix = prefix.lower()
    if dot and not rest and not quoted and (prefix in _NAMESPACES or prefix in _ATTRIBUTE_PREFIXES):
        raise Problem(f"expected a key after {reference!r}", position + len(reference))
    if dot and prefix in _NAMESPACES:
        return Field(_NAMESPACES[prefix], rest, position)
    name = rest if dot and prefix in _ATTRIBUTE_PREFIXES else reference
    if name.lower() in FILE_FIELDS:
        return Field("files", FILE_FIELDS[name.lower()], position)
    column = ATTRIBUTES.get(name.lower())
    if column is None:
        raise Problem(_unknown_field(reference, prefix if dot else ""), position)
    return Field("attributes", column, position)


def _unknown_field(reference: str, prefix: str) -> str:
    """Why ``reference`` names nothing, with the closest names it may have meant."""
    if prefix and prefix not in _ATTRIBUTE_PREFIXES:
        guesses = difflib.get_close_matches(prefix, [*_NAMESPACES, *_ATTRIBUTE_PREFIXES], n=1)
        hint = f"did you mean {guesses[0]}.?" if guesses else \
            "use params.<key>, metrics.<key>, tags.<key> or an attribute such as status"
        return f"unknown field {reference!r}: {prefix!r} is not params, metrics, tags or " \
               f"attributes; {hint}"
    name = reference.rpartition(".")[2] if prefix else reference
    guesses = difflib.get_close_matches(name.lower(), sorted(ATTRIBUTES), n=3, cutoff=0.6)
    hint = f"did you mean {' or '.join(guesses)}?" if guesses else \
        "use params.<key>, metrics.<key>, tags.<key> or an attribute such as status"
    return f"unknown field {reference!r}; {hint}"


def parse(text: str, rule: Callable[[Parser], _T]) -> _T:
    """Apply a parser ``rule`` to ``text`` and insist that it consumed all of it."""
    surrogate = SURROGATE.search(text)
    if surrogate:
        raise Problem("a lone surrogate character (not valid Unicode)", surrogate.start())
    parser = Parser(text)
    result = rule(parser)
    token = parser.peek()
    if token.kind != "end":
        raise Problem(f"unexpected {token.describe()} after a complete expression", token.position)
    return result


@contextmanager
def reported(text: str) -> Iterator[None]:
    """Raise the problems found in ``text`` as FilterSyntaxError."""
    try:
        yield
    except Problem as problem:
        message, position = problem.args
        raise FilterSyntaxError(message, text=text, position=position) from None
