"""The filter language: text such as ``params.lr > 0.01 and status = 'completed'`` to SQL.

This module owns the grammar users type into ``runs(filter=...)`` and the widgets' filter box
(MLflow's search syntax plus OR, NOT and parentheses), keyword filters (``compile_equals``) and
sort keys (``compile_order_by``). Everything compiles to SQL over ``runs AS r`` with ``?``
placeholders: every value the user typed is bound, never pasted, and params and metrics keys are
looked up in the catalog's map of internal column names (``tracker.storage.value_columns``), so
any key text works and none reaches the SQL. Reading order: a tokenizer, a
recursive-descent parser to an AST of dataclasses, a compiler from the AST, the public functions.

Semantics worth knowing:

- A run missing a key never matches a comparison on it (``!=`` included); ``NOT e`` matches
  exactly the runs ``e`` does not match.
- Numbers compare as numbers, quoted strings compare the text form, true/false match JSON
  booleans only; metrics always compare as numbers.
- NaN metrics equal ``'NaN'`` and differ from every number; ``<``, ``>`` and sorting treat them
  as missing, so they never top a ranking.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import date, datetime, timezone
from types import MappingProxyType
from typing import Any, TypeVar

from tracker import arguments
from tracker.errors import ArgumentError, FilterSyntaxError
from tracker.sql_dialects import DUCKDB, Dialect

__all__ = [
    "ATTRIBUTES", "STEPPED", "Compiled", "compile_equals", "compile_filter", "compile_order_by",
    "fields", "parse_key", "stepped_metric_sql",
]  # fmt: skip


@dataclass(frozen=True)
class Compiled:
    """A SQL fragment with ``?`` placeholders and the values bound to them, in order."""

    sql: str
    params: tuple[Any, ...]


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
# MLflow's run statuses, as users type them, mapped to ours.
_STATUS_ALIASES = {"finished": "completed", "killed": "crashed"}
# Operators -> SQL; the parser spells == as = and <> as !=.
_OPERATORS = {
    "=": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">=", "IN": "IN", "LIKE": "LIKE",
    "ILIKE": "ILIKE",
}  # fmt: skip
_SPELLINGS = {"==": "=", "<>": "!="}
_ORDERING = ("<", "<=", ">", ">=")
_RESERVED = ("AND", "OR", "NOT", "IN", "IS", "LIKE", "ILIKE", "CONTAINS", "ASC", "DESC")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
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
_SURROGATE = re.compile("[\ud800-\udfff]")  # a lone one is not Unicode: no database takes it
_T = TypeVar("_T")


class _Problem(Exception):
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
            raise _Problem(f"unexpected character {text[position]!r}", position)
        end = match.end()
        if match.lastgroup == "number" and re.match(r"[\w.]", text[end : end + 1]):
            raise _Problem(f"malformed number {text[position : end + 1]!r}", position)
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
    raise _Problem("unterminated quoted name" if quote == "`" else "unterminated string", start)


@dataclass(frozen=True)
class _Field:
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
class _Literal:
    value: Any  # str, int, float, bool or None
    position: int
    text: str  # as written, so a number compares with a text column as typed


@dataclass(frozen=True)
class _Predicate:
    field: _Field
    op: str  # a key of _OPERATORS, CONTAINS, or NULL (for IS NULL)
    values: tuple[_Literal, ...]
    negated: bool
    position: int


@dataclass(frozen=True)
class _Logic:
    op: str  # AND, OR, or NOT (with one operand)
    operands: tuple[_Node, ...]


_Node = _Predicate | _Logic


class _Parser:
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

    def expression(self) -> _Node:
        return self._junction("OR", self._conjunction)

    def _conjunction(self) -> _Node:
        return self._junction("AND", self._negation)

    def _junction(self, word: str, operand: Callable[[], _Node]) -> _Node:
        operands = [operand()]
        while self.accept(word):
            operands.append(operand())
        return operands[0] if len(operands) == 1 else _Logic(word, tuple(operands))

    def _negation(self) -> _Node:
        if not self.peek().matches("NOT", "("):
            return self._predicate()
        opening = self.advance()
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _Problem(f"nested more than {MAX_DEPTH} levels deep", opening.position)
        if opening.matches("NOT"):
            inner: _Node = _Logic("NOT", (self._negation(),))
        else:
            inner = self.expression()
            self._expect(")", f"missing ')' to close the '(' at position {opening.position}")
        self.depth -= 1
        return inner

    def _expect(self, word: str, problem: str) -> _Token:
        token = self.advance()
        if not token.matches(word):
            raise _Problem(f"{problem}, found {token.describe()}", token.position)
        return token

    def field(self) -> _Field:
        """A field: ``status``, ``params.a.b``, ``params.`a b```, ``params."a b"``..."""
        token = self.advance()
        if token.kind == "quoted" and self.peek().kind == "member":
            return self._member(token)
        if token.kind == "quoted":
            return _resolve(token.value, token.position + 1)
        if token.kind != "name" or token.matches(*_RESERVED):
            raise _Problem(f"expected a field name, found {token.describe()}", token.position)
        reference, following = token.value, self.peek()
        adjacent = following.kind in ("quoted", "string") and following.position == token.end
        quoted = reference.endswith(".") and adjacent
        if quoted:
            reference += self.advance().value
        return _resolve(reference, token.position, quoted=quoted)

    def _member(self, prefix: _Token) -> _Field:
        """A quoted prefix and its key, as MLflow writes them: ```metrics`.acc``,
        ```params`."a b"``."""
        member = self.advance()
        reference, following = prefix.value + member.value, self.peek()
        quoted = member.value == "." and following.kind in ("quoted", "string") \
            and following.position == member.end
        if quoted:
            reference += self.advance().value
        elif member.value == ".":
            raise _Problem(f"expected a key after {reference!r}", member.end)
        return _resolve(reference, prefix.position, quoted=quoted)

    def _predicate(self) -> _Predicate:
        field = self.field()
        token = self.advance()
        if token.kind == "op":
            op = _SPELLINGS.get(token.value, token.value)
            return _Predicate(field, op, (self._literal(),), False, token.position)
        if token.matches("IS"):
            negated = self.accept("NOT")
            self._expect("NULL", "expected NULL after IS")
            return _Predicate(field, "NULL", (), negated, token.position)
        negated = token.matches("NOT")
        if negated:
            token = self.advance()
        if token.matches("IN"):
            return _Predicate(field, "IN", self._values(), negated, token.position)
        if token.matches("LIKE", "ILIKE", "CONTAINS"):
            op = token.value.upper()
            return _Predicate(field, op, (self._literal(),), negated, token.position)
        expected = "IN, LIKE, ILIKE or CONTAINS" if negated else "an operator (=, <, IN, IS...)"
        raise _Problem(f"expected {expected}, found {token.describe()}", token.position)

    def _values(self) -> tuple[_Literal, ...]:
        opening = self._expect("(", "expected '(' after IN")
        if self.peek().matches(")"):
            raise _Problem("empty IN list", self.peek().position)
        values = [self._literal()]
        while self.accept(","):
            values.append(self._literal())
        self._expect(")", f"missing ')' to close the '(' at position {opening.position}")
        return tuple(values)

    def _literal(self) -> _Literal:
        token = self.advance()
        if token.kind == "number":
            number = float(token.value) if set(".eE") & set(token.value) else int(token.value)
            return _Literal(number, token.position, token.value)
        if token.kind == "string":
            return _Literal(token.value, token.position, token.value)
        if token.matches("TRUE", "FALSE", "NULL"):
            value = {"TRUE": True, "FALSE": False, "NULL": None}[token.value.upper()]
            return _Literal(value, token.position, token.value)
        hint = "; quote text, e.g. 'adam'" if token.kind == "name" else ""
        raise _Problem(f"expected a value, found {token.describe()}{hint}", token.position)

    def sort_keys(self) -> list[tuple[_Field, bool]]:
        """``field [ASC|DESC] [, ...]``; True means descending."""
        keys: list[tuple[_Field, bool]] = []
        while not keys or self.accept(","):
            field, descending = self.field(), self.peek().matches("DESC")
            if field.namespace == "files":
                raise _Problem(f"runs cannot be sorted by their {field}", field.position)
            self.accept("ASC", "DESC")
            keys.append((field, descending))
        return keys


def _resolve(reference: str, position: int, *, quoted: bool = False) -> _Field:
    """The field a name refers to: ``params.<key>``, ``metrics.<key>`` or an attribute.

    ``quoted``: the key after the dot was quoted, so even an empty key was written out.
    """
    prefix, dot, rest = reference.partition(".")
    prefix = prefix.lower()
    if dot and not rest and not quoted and (prefix in _NAMESPACES or prefix in _ATTRIBUTE_PREFIXES):
        raise _Problem(f"expected a key after {reference!r}", position + len(reference))
    if dot and prefix in _NAMESPACES:
        return _Field(_NAMESPACES[prefix], rest, position)
    name = rest if dot and prefix in _ATTRIBUTE_PREFIXES else reference
    if name.lower() in FILE_FIELDS:
        return _Field("files", FILE_FIELDS[name.lower()], position)
    column = ATTRIBUTES.get(name.lower())
    if column is None:
        raise _Problem(_unknown_field(reference, prefix if dot else ""), position)
    return _Field("attributes", column, position)


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


def _parse(text: str, rule: Callable[[_Parser], _T]) -> _T:
    """Apply a parser ``rule`` to ``text`` and insist that it consumed all of it."""
    surrogate = _SURROGATE.search(text)
    if surrogate:
        raise _Problem("a lone surrogate character (not valid Unicode)", surrogate.start())
    parser = _Parser(text)
    result = rule(parser)
    token = parser.peek()
    if token.kind != "end":
        raise _Problem(f"unexpected {token.describe()} after a complete expression", token.position)
    return result


@contextmanager
def _reported(text: str) -> Iterator[None]:
    """Raise the problems found in ``text`` as FilterSyntaxError."""
    try:
        yield
    except _Problem as problem:
        message, position = problem.args
        raise FilterSyntaxError(message, text=text, position=position) from None


@dataclass(frozen=True)
class _Operand:
    """A field typed by a literal: the field's SQL and params, the bound value, its placeholder."""

    sql: str
    params: tuple[Any, ...]
    value: Any
    placeholder: str = "?"


@dataclass(frozen=True)
class _Scope:
    """Where fields live: ``runs AS alias``, the column of ``runs`` holding each key, and the
    back end's SQL (:mod:`tracker.sql_dialects`)."""

    alias: str
    layout: Mapping[tuple[str, str], str]
    dialect: Dialect = DUCKDB

    def value(self, field: _Field, suffix: str = "") -> tuple[str, tuple[Any, ...]]:
        """A param's text form (``suffix="_json"``: its JSON text), a metric's number, and the
        values they bind; a key no run has is missing everywhere."""
        return self.dialect.value(self.alias, self.layout, field.namespace, field.key, suffix)


def _scope(alias: str, layout: Mapping[tuple[str, str], str] | None,
           dialect: Dialect = DUCKDB) -> _Scope:
    if not _IDENTIFIER.match(alias):
        raise ArgumentError(f"alias must be a SQL identifier, not {alias!r}")
    return _Scope(alias, layout or {}, dialect)


def _field_sql(field: _Field, scope: _Scope) -> tuple[str, tuple[Any, ...]]:
    """The field's value in SQL: a param's text form, a metric, a tag, a column, the lower-case
    status."""
    if field.namespace == "tags":
        # The key is bound; max() makes it one value whatever the table holds.
        return (f"(SELECT max(t.value) FROM tags t WHERE t.run_id = {scope.alias}.id "
                "AND t.key = ?)", (field.key,))
    if field.namespace == STEPPED:
        return scope.dialect.stepped_metric(scope.alias), (field.key,)
    if field.namespace != "attributes":
        return scope.value(field)
    if field.key == "status":
        return f"lower({scope.alias}.status)", ()
    if field.key == "duration":
        # A running run has no duration yet: it is the time elapsed so far.
        alias, epoch = scope.alias, scope.dialect.epoch
        return f"coalesce({alias}.duration, {epoch('now()')} - {epoch(f'{alias}.started_at')})", ()
    return f"{scope.alias}.{field.key}", ()


def stepped_metric_sql(alias: str) -> str:
    """SQL of a run's value of one metric (the key bound to its ``?``) at its largest step;
    of points logged at one step in the same microsecond, the one inserted last (rowid)."""
    return DUCKDB.stepped_metric(alias)


def _number_sql(field: _Field, scope: _Scope, *, ordered: bool) -> tuple[str, tuple[Any, ...]]:
    sql, params = _field_sql(field, scope)
    if field.namespace == "attributes":
        return sql, params
    sql = scope.dialect.try_double(sql)
    # NaN sorts above every number; ranges and sorting treat it as missing instead.
    return (f"nullif({sql}, {scope.dialect.nan()})" if ordered else sql), params


def _number(literal: _Literal, field: _Field) -> float:
    """A literal as a number; quoted numbers such as '0.5' or 'NaN' are accepted."""
    try:
        if not isinstance(literal.value, bool):
            return float(literal.value)
    except (TypeError, ValueError):
        pass
    raise _Problem(f"{field} compares with numbers, not {literal.text}", literal.position)


def _text(literal: _Literal, field: _Field) -> str:
    if isinstance(literal.value, bool):
        raise _Problem(f"{field} compares with text, not {literal.text}", literal.position)
    return literal.value if isinstance(literal.value, str) else literal.text


def _timestamp(literal: _Literal, field: _Field) -> str:
    """A quoted ISO date or time, checked here so a typo is a syntax error, not a SQL error; or
    a number, milliseconds since 1970 as MLflow's ``start_time > 1700000000000``."""
    if isinstance(literal.value, int | float) and not isinstance(literal.value, bool):
        try:
            return datetime.fromtimestamp(literal.value / 1000, timezone.utc).isoformat()
        except (OverflowError, OSError, ValueError):
            pass
    if isinstance(literal.value, str):
        try:
            return datetime.fromisoformat(literal.value.strip()).isoformat()
        except ValueError:
            pass
    message = f"{field} compares with a quoted date or time such as '2026-01-31' (or a number " \
        "of milliseconds since 1970, as in MLflow)"
    raise _Problem(message, literal.position)


def _operand(field: _Field, literal: _Literal, *, ordered: bool, scope: _Scope) -> _Operand:
    """Type ``field`` by ``literal``: numbers numerically, strings as text, booleans as JSON."""
    kind, value = field.kind, literal.value
    if kind == "params" and isinstance(value, bool):
        if ordered:
            raise _Problem("true/false only compare with =, != or IN", literal.position)
        # JSON text is true for a boolean but "true" for a string: only booleans compare.
        text, bound = scope.value(field, "_json")
        sql = f"CASE {text} WHEN 'true' THEN true WHEN 'false' THEN false END"
        return _Operand(sql, bound, value)
    if kind == "text" or (kind == "params" and isinstance(value, str)):
        return _Operand(*_field_sql(field, scope), _text(literal, field))
    if kind in ("params", "metrics", "number"):
        return _Operand(*_number_sql(field, scope, ordered=ordered), _number(literal, field))
    if kind == "time":
        timestamp = _timestamp(literal, field)
        return _Operand(*_field_sql(field, scope), timestamp, "CAST(? AS TIMESTAMPTZ)")
    status = _text(literal, field).lower()
    return _Operand(*_field_sql(field, scope), _STATUS_ALIASES.get(status, status))


def _compile_node(node: _Node, scope: _Scope) -> Compiled:
    if isinstance(node, _Predicate):
        return _compile_predicate(node, scope)
    parts = [_compile_node(operand, scope) for operand in node.operands]
    if node.op == "NOT":
        # SQL's NOT keeps an unknown unknown; ours matches exactly the runs its operand does not.
        return Compiled(f"(NOT coalesce({parts[0].sql}, false))", parts[0].params)
    return _joined(node.op, parts)


def _joined(op: str, parts: list[Compiled]) -> Compiled:
    sql = f" {op} ".join(part.sql for part in parts)
    return Compiled(f"({sql})", tuple(value for part in parts for value in part.params))


def _compile_predicate(predicate: _Predicate, scope: _Scope) -> Compiled:
    field, op, values = predicate.field, predicate.op, predicate.values
    if op in ("=", "!=") and values[0].value is None:
        predicate = replace(predicate, op="NULL", values=(), negated=op == "!=")
    elif any(literal.value is None for literal in values):
        raise _Problem("null only works with =, != or IS [NOT] NULL", predicate.position)
    if field.kind == "labels":
        return _compile_labels(predicate, scope)
    if field.namespace == "files":
        return _compile_files(predicate, scope)
    if predicate.op == "NULL":
        sql, params = _field_sql(field, scope)
        return Compiled(f"{sql} IS {'NOT ' if predicate.negated else ''}NULL", params)
    if op == "CONTAINS":
        raise _Problem(f"CONTAINS works only on labels, not on {field}", predicate.position)
    if op in ("LIKE", "ILIKE"):
        _check_pattern(predicate)
    ordered = op in _ORDERING
    operands = [_operand(field, literal, ordered=ordered, scope=scope) for literal in values]
    first, bound = operands[0], tuple(operand.value for operand in operands)
    for literal, operand in zip(values, operands, strict=True):
        if (operand.sql, operand.params) != (first.sql, first.params):
            raise _Problem("an IN list cannot mix numbers, text and true/false", literal.position)
    placeholders = ", ".join(operand.placeholder for operand in operands)
    right = f"({placeholders})" if op == "IN" else placeholders
    negation = "NOT " if predicate.negated else ""
    escape = scope.dialect.like_escape() if op in ("LIKE", "ILIKE") else ""
    return Compiled(f"{first.sql} {negation}{_OPERATORS[op]} {right}{escape}",
                    first.params + bound)


def _check_pattern(predicate: _Predicate) -> None:
    """LIKE and ILIKE take a quoted pattern and work on text: attributes and params."""
    field, literal, op = predicate.field, predicate.values[0], predicate.op
    if field.kind not in ("text", "status", "params"):
        raise _Problem(f"{op} works on text fields, params and tags, not on {field}",
                       predicate.position)
    if not isinstance(literal.value, str):
        raise _Problem(f"{op} needs a quoted pattern such as 'res%'", literal.position)


def _compile_labels(predicate: _Predicate, scope: _Scope) -> Compiled:
    """labels CONTAINS 'x' (also spelled = 'x'), IN (any of), their negations, IS [NOT] NULL."""
    column, op = f"{scope.alias}.labels", predicate.op
    if op == "NULL":
        counted = scope.dialect.labels_count(column)
        return Compiled(f"{counted} {'>' if predicate.negated else '='} 0", ())
    if op not in ("CONTAINS", "IN", "=", "!="):
        raise _Problem("labels support CONTAINS, =, !=, IN and IS [NOT] NULL", predicate.position)
    bound = tuple(_text(literal, predicate.field) for literal in predicate.values)
    sql = scope.dialect.labels_any(column, len(bound))
    if predicate.negated or op == "!=":
        # A run without labels does not contain the label, so it matches the negation.
        sql = f"NOT coalesce({sql}, false)"
    return Compiled(sql, bound)


def _compile_files(predicate: _Predicate, scope: _Scope) -> Compiled:
    """inputs/outputs CONTAINS 'path' (also = and IN: any of), their negations, IS [NOT] NULL
    (no such files): an EXISTS over the run's file links, the path bound."""
    op = predicate.op
    if op not in ("CONTAINS", "IN", "=", "!=", "NULL"):
        raise _Problem(f"{predicate.field.key}s support CONTAINS, =, !=, IN and IS [NOT] NULL",
                       predicate.position)
    paths = tuple(uri for literal in predicate.values
                  for uri in _file_uris(_text(literal, predicate.field)))
    among = f"AND a.uri IN ({', '.join('?' for _ in paths)})" if paths else ""
    sql = (f"EXISTS (SELECT 1 FROM run_artifacts ra JOIN artifacts a ON a.id = ra.artifact_id "
           f"WHERE ra.run_id = {scope.alias}.id AND ra.role = ? {among})")
    if (op == "NULL") != (predicate.negated or op == "!="):
        sql = f"NOT {sql}"
    return Compiled(sql, (predicate.field.key, *paths))


def _file_uris(path: str) -> tuple[str, ...]:
    """The URIs a path typed in a filter may be stored as: files are recorded by their real
    absolute path, so a relative path is taken from the current directory; a URI as given."""
    if "://" in path or not path:
        return (path,)
    real = os.path.realpath(os.path.expanduser(path))
    return (real,) if real == path else (path, real)


def compile_filter(text: str | None, *, alias: str = "r",
                   layout: Mapping[tuple[str, str], str] | None = None,
                   dialect: Dialect = DUCKDB) -> Compiled:
    """Compile a filter string to a WHERE-clause fragment over ``runs AS <alias>``.

    ``layout`` names the value column of each (namespace, key) (``value_columns.layout``); keys
    it lacks match no run. ``dialect`` is the back end's SQL (:mod:`tracker.sql_dialects`).

    Blank or None matches every run (``TRUE``). Raises FilterSyntaxError (a ValueError) naming
    the problem and its offset.

    >>> compile_filter("params.lr > 0.01 and status = 'FINISHED'").params
    (0.01, 'completed')
    """
    scope = _scope(alias, layout, dialect)
    checked = arguments.filter_text(text, "where")
    if checked is None:
        return Compiled("TRUE", ())
    with _reported(checked):
        return _finished(_compile_node(_parse(checked, _Parser.expression), scope), dialect)


def _finished(compiled: Compiled, dialect: Dialect) -> Compiled:
    return Compiled(dialect.finish(compiled.sql), compiled.params)


def compile_equals(equals: Mapping[str, Any], *, alias: str = "r",
                   layout: Mapping[tuple[str, str], str] | None = None,
                   dialect: Dialect = DUCKDB) -> Compiled:
    """AND of ``key = value`` for keyword filters such as ``runs(status="completed")``.

    Keys resolve and values type as in the filter language (``"params.lr"``, ``"user"``); a
    list, tuple or set means IN, None means IS NULL, a date or datetime compares as ISO text.
    """
    scope = _scope(alias, layout, dialect)
    parts = []
    for key, value in equals.items():
        with _reported(key):
            parts.append(_compile_predicate(_equality(_parse(key, _Parser.field), value), scope))
    if len(parts) < 2:
        return _finished(parts[0], dialect) if parts else Compiled("TRUE", ())
    return _finished(_joined("AND", parts), dialect)


def _equality(field: _Field, value: Any) -> _Predicate:
    if not isinstance(value, (list, tuple, set, frozenset)):
        return _Predicate(field, "=", (_python_literal(value),), False, 0)
    if not value:
        raise _Problem("empty IN list", 0)
    return _Predicate(field, "IN", tuple(_python_literal(item) for item in value), False, 0)


def _python_literal(value: Any) -> _Literal:
    if isinstance(value, (datetime, date)):
        value = value.isoformat()
    if value is not None and not isinstance(value, (str, int, float)):
        raise _Problem(f"cannot compare with a {type(value).__name__}", 0)
    if isinstance(value, str) and _SURROGATE.search(value):
        raise _Problem("the value holds a lone surrogate character (not valid Unicode)", 0)
    if isinstance(value, int) and not -(2**63) <= value < 2**63:
        raise _Problem("the number is outside the 64-bit range values are stored in", 0)
    return _Literal(value, 0, str(value))


def parse_key(text: str, *, argument: str = "key") -> tuple[str, str]:
    """Split a field name into (namespace, key): ``"params.a.b"`` -> ``("params", "a.b")``.

    Attributes give ``("attributes", <runs column>)``, e.g. for the widgets' column headers.
    Raises FilterSyntaxError on unknown names, ArgumentError (naming ``argument``) on non-text.
    """
    arguments.filter_text(text, argument, "'status' or 'params.lr'")
    with _reported(text):
        field = _parse(text, _Parser.field)
    return field.namespace, field.key


def fields(where: str | None, equals: Mapping[str, Any] | None = None,
           order_by: str | Sequence[str] | None = None) -> list[tuple[str, str]]:
    """The (namespace, key) of every params, metrics and tags field a filter, its equality tests
    and sort keys name, in order: to tell a user which of them no run has. Raises as the
    compile functions do on bad text."""
    named: list[_Field] = []
    checked = arguments.filter_text(where, "where")
    if checked is not None:
        with _reported(checked):
            named += _predicate_fields(_parse(checked, _Parser.expression))
    for key in equals or {}:
        with _reported(key):
            named.append(_parse(key, _Parser.field))
    texts = [order_by] if isinstance(order_by, str | None) else list(order_by)
    for item in texts:
        text = arguments.filter_text(item, "order_by")
        if text is not None:
            with _reported(text):
                named += [field for field, _ in _parse(text, _Parser.sort_keys)]
    found = [(field.namespace, field.key) for field in named
             if field.namespace not in ("attributes", "files")]
    return list(dict.fromkeys(found))


def _predicate_fields(node: _Node) -> list[_Field]:
    if isinstance(node, _Predicate):
        return [node.field]
    return [field for operand in node.operands for field in _predicate_fields(operand)]


def compile_order_by(items: str | Sequence[str] | None, *, alias: str = "r",
                     layout: Mapping[tuple[str, str], str] | None = None,
                     dialect: Dialect = DUCKDB) -> Compiled:
    """Compile sort keys such as ``"metrics.acc DESC"`` to an ORDER BY list (without ORDER BY).

    Missing values sort last in both directions; params sort numerically when numeric, then by
    text; the run id breaks ties so pages are stable. None sorts newest first.
    """
    scope = _scope(alias, layout, dialect)
    texts = [items] if isinstance(items, str | None) else arguments.texts(
        items, "order_by", "['metrics.acc DESC', 'name']")
    keys: list[tuple[_Field, bool]] = []
    for item in texts or ():
        text = arguments.filter_text(item, "order_by")
        if text is not None:
            with _reported(text):
                keys.extend(_parse(text, _Parser.sort_keys))
    if not keys:
        return Compiled(f"{scope.alias}.started_at DESC NULLS LAST, {scope.alias}.id DESC", ())
    terms: list[str] = []
    params: list[Any] = []
    for field, descending in keys:
        for sql, bound in _sort_expressions(field, scope):
            terms.append(f"{sql} {'DESC' if descending else 'ASC'} NULLS LAST")
            params.extend(bound)
    if not any((field.namespace, field.key) == ("attributes", "id") for field, _ in keys):
        # The tie-breaker follows the last key, so a reversed sort is the exact reverse order.
        terms.append(f"{scope.alias}.id {'DESC' if keys[-1][1] else 'ASC'}")
    return _finished(Compiled(", ".join(terms), tuple(params)), dialect)


def _sort_expressions(field: _Field, scope: _Scope) -> list[tuple[str, tuple[Any, ...]]]:
    if field.namespace in ("attributes", "tags"):
        return [_field_sql(field, scope)]
    number = _number_sql(field, scope, ordered=True)
    # A param may hold text: numbers first, in numeric order, then the rest by their text.
    return [number, _field_sql(field, scope)] if field.namespace == "params" else [number]
