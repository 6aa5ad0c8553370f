"""The filter language: text such as ``params.lr > 0.01 and status = 'completed'`` to SQL.

This module owns the grammar users type into ``runs(filter=...)`` and the widgets' filter box
(MLflow's search syntax plus OR, NOT and parentheses), keyword filters (``compile_equals``) and
sort keys (``compile_order_by``). Everything compiles to SQL over ``runs AS r`` with ``?``
placeholders: every value the user typed is bound, never pasted, and params and metrics keys are
looked up in the catalog's map of internal column names (``tracker.storage.value_columns``), so
any key text works and none reaches the SQL. The text is parsed to an AST by
:mod:`tracker.filter_syntax`; this module compiles the AST, and holds the public functions.

Semantics worth knowing:

- A run missing a key never matches a comparison on it (``!=`` included); ``NOT e`` matches
  exactly the runs ``e`` does not match.
- Numbers compare as numbers, quoted strings compare the text form, true/false match JSON
  booleans only; metrics always compare as numbers.
- NaN metrics equal ``'NaN'`` and differ from every number; ``<``, ``>`` and sorting treat them
  as missing, so they never top a ranking.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timezone
from typing import Any

from tracker import arguments
from tracker.errors import ArgumentError
from tracker.filter_syntax import ATTRIBUTES, STEPPED

# The syntax's names under this module's own private names: the compiler below reads as it did
# when both lived here.
from tracker.filter_syntax import SURROGATE as _SURROGATE
from tracker.filter_syntax import Field as _Field
from tracker.filter_syntax import Literal as _Literal
from tracker.filter_syntax import Node as _Node
from tracker.filter_syntax import Parser as _Parser
from tracker.filter_syntax import Predicate as _Predicate
from tracker.filter_syntax import Problem as _Problem
from tracker.filter_syntax import parse as _parse
from tracker.filter_syntax import reported as _reported
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


# MLflow's run statuses, as users type them, mapped to ours.
_STATUS_ALIASES = {"finished": "completed", "killed": "crashed"}
# Operators -> SQL; the parser spells == as = and <> as !=.
_OPERATORS = {
    "=": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">=", "IN": "IN", "LIKE": "LIKE",
    "ILIKE": "ILIKE",
}  # fmt: skip
_ORDERING = ("<", "<=", ">", ">=")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


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
    row: bool = False  # inside the back end's keyed row (Dialect.keyed), not the runs' row

    def value(self, field: _Field, suffix: str = "") -> tuple[str, tuple[Any, ...]]:
        """A param's text form (``suffix="_json"``: its JSON text), a metric's number, and the
        values they bind; a key no run has is missing everywhere."""
        return self.dialect.value(self.alias, self.layout, field.namespace, field.key, suffix,
                                  row=self.row)

    def number(self, field: _Field) -> tuple[str, tuple[Any, ...]]:
        """A param's or metric's value as a number, NULL when it is not one."""
        return self.dialect.number(self.alias, self.layout, field.namespace, field.key,
                                   row=self.row)


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
    if field.namespace in ("params", "metrics"):
        sql, params = scope.number(field)
    else:
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
    keyed = scope.dialect.keyed(scope.alias, field.namespace, field.key) \
        if field.namespace in ("params", "metrics") else None
    if keyed is not None:
        # the comparison inside the back end's EXISTS over the key's row, which its indexes
        # answer; a run without the key has no row, so it matches no comparison, as before
        start, key_bound = keyed
        inside = _compared(predicate, replace(scope, row=True))
        return Compiled(f"{start}{inside.sql}){_indexed_text(predicate, scope)})",
                        key_bound + inside.params)
    return _compared(predicate, scope)


def _indexed_text(predicate: _Predicate, scope: _Scope) -> str:
    """What the back end adds to a param's equality with texts (= or IN) for its index."""
    texts = [literal.value for literal in predicate.values]
    if predicate.field.namespace != "params" or predicate.op not in ("=", "IN") \
            or predicate.negated or not all(isinstance(text, str) for text in texts):
        return ""
    return scope.dialect.indexed_text(predicate.field.key, texts)


def _compared(predicate: _Predicate, scope: _Scope) -> Compiled:
    """A comparison of the field with the predicate's literals (=, <, IN, LIKE...)."""
    field, op, values = predicate.field, predicate.op, predicate.values
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
