"""The few pieces of SQL in which the back ends differ, for the filter compiler
(:mod:`tracker.filter_language`): one parser and one compiler, and each back end's spelling of
a safe cast, of epoch seconds, of a metric at its largest step, of a labels test, of where a
run's params and metrics are, and of placeholders.

DuckDB reads params and metrics from the catalog's value columns (the layout's ``p1``, ``m1``);
PostgreSQL from its ``latest_values`` table, one row per run and key (the key bound as a value),
and tests a key in an ``EXISTS`` over that table (:meth:`Dialect.keyed`), which its indexes
answer. In neither does a key or a value typed by a user become SQL text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tracker.storage.pg_schema import TEXT_INDEXED

__all__ = ["DUCKDB", "POSTGRES", "Dialect"]


@dataclass(frozen=True)
class Dialect:
    """How one back end spells what the filter compiler needs; DuckDB's unless overridden."""

    name: str = "duckdb"

    def try_double(self, sql: str) -> str:
        """``sql`` as a double, NULL when it is not a number."""
        return f"TRY_CAST({sql} AS DOUBLE)"

    def nan(self) -> str:
        return "'NaN'::DOUBLE"

    def epoch(self, sql: str) -> str:
        """Seconds since 1970 of a timestamp, as a double."""
        return f"epoch({sql})"

    def stepped_metric(self, alias: str) -> str:
        """A run's value of one metric (the key bound to its ``?``) at its largest step; of
        points logged at one step in the same microsecond, the one inserted last."""
        return (f"(SELECT arg_max(m.value, (coalesce(m.step, 0), m.logged_at, m.rowid)) "
                f"FROM metrics m WHERE m.run_id = {alias}.id AND m.key = ?)")

    def labels_any(self, column: str, count: int) -> str:
        """Whether the labels ``column`` holds any of ``count`` bound labels."""
        return f"list_has_any({column}, [{', '.join('?' for _ in range(count))}])"

    def labels_count(self, column: str) -> str:
        return f"coalesce(len({column}), 0)"

    def like_escape(self) -> str:
        """What follows a LIKE pattern so that no character escapes (DuckDB's default)."""
        return ""

    def value(self, alias: str, layout: Mapping[tuple[str, str], str], namespace: str,
              key: str, suffix: str = "", *, row: bool = False) -> tuple[str, tuple[str, ...]]:
        """A param's text form (``suffix="_json"``: its JSON text), a metric's number, and the
        values to bind: the layout's column, or NULL for a key no run has. ``row``: as a
        column of the row :meth:`keyed` selects (never asked here: DuckDB keys none)."""
        name = layout.get((namespace, key))
        # The column names are ours, never user text.
        return (f"{alias}.{name}{suffix}" if name else "CAST(NULL AS VARCHAR)"), ()

    def number(self, alias: str, layout: Mapping[tuple[str, str], str], namespace: str,
               key: str, *, row: bool = False) -> tuple[str, tuple[str, ...]]:
        """A param's or metric's value as a number (NULL when it is not one), and the values
        to bind."""
        sql, bound = self.value(alias, layout, namespace, key, row=row)
        return self.try_double(sql), bound

    def keyed(self, alias: str, namespace: str, key: str) -> tuple[str, tuple[str, ...]] | None:
        """The start of an ``EXISTS`` selecting the run's row of one key, where a comparison
        of that key's value (as :meth:`value` with ``row``) is added and the parenthesis
        closed, and the values it binds; None when values are compared in the runs' row."""
        return None

    def indexed_text(self, key: str, texts: Sequence[str]) -> str:
        """What is added to a keyed row's test of equality with ``texts`` (as :meth:`keyed`)
        so that the back end's index of texts answers it; nothing when none would."""
        return ""

    def finish(self, sql: str) -> str:
        """The compiled SQL with this back end's placeholders (``?`` as compiled)."""
        return sql

    def finish_named(self, sql: str) -> str:
        """A statement of tracker's with named values (``$run``) in this back end's spelling."""
        return sql


class _Postgres(Dialect):
    """PostgreSQL: a cast function of the catalog's schema (``try_float8``, created with it),
    ``%s`` placeholders (the compiled SQL holds no other ``%`` or ``?``: no user text), keys
    read from the typed copy of each run's latest values (``latest_values``, kept by a trigger:
    :mod:`tracker.storage.pg_schema`): a comparison is an ``EXISTS`` its indexes answer (by
    key and number, by text); a value elsewhere (a sort key, IS NULL) is read from the run's
    JSON text (``json``, not ``jsonb``: it keeps numbers as written)."""

    def try_double(self, sql: str) -> str:
        return f"try_float8({sql})"

    def nan(self) -> str:
        return "'NaN'::float8"

    def epoch(self, sql: str) -> str:
        return f"date_part('epoch', {sql})"

    def stepped_metric(self, alias: str) -> str:
        return (f"(SELECT m.value FROM metrics m WHERE m.run_id = {alias}.id AND m.key = ? "
                "ORDER BY coalesce(m.step, 0) DESC, m.logged_at DESC, m.seq DESC LIMIT 1)")

    def labels_any(self, column: str, count: int) -> str:
        return f"({column} && ARRAY[{', '.join('?' for _ in range(count))}]::text[])"

    def labels_count(self, column: str) -> str:
        return f"coalesce(cardinality({column}), 0)"

    def like_escape(self) -> str:
        return " ESCAPE ''"  # PostgreSQL's LIKE escapes with a backslash by default

    def value(self, alias: str, layout: Mapping[tuple[str, str], str], namespace: str,
              key: str, suffix: str = "", *, row: bool = False) -> tuple[str, tuple[str, ...]]:
        # the JSON text is only asked of booleans (true/false), whose text form it is
        column = "CASE v.json_type WHEN 'boolean' THEN v.text_value END" if suffix == "_json" \
            else "v.text_value"
        return _of_row(column, alias, namespace, key, row)

    def number(self, alias: str, layout: Mapping[tuple[str, str], str], namespace: str,
               key: str, *, row: bool = False) -> tuple[str, tuple[str, ...]]:
        return _of_row("v.number", alias, namespace, key, row)

    def keyed(self, alias: str, namespace: str, key: str) -> tuple[str, tuple[str, ...]] | None:
        return f"EXISTS (SELECT 1 FROM latest_values v WHERE {_KEY % alias} AND (", \
            (namespace, key)

    def indexed_text(self, key: str, texts: Sequence[str]) -> str:
        # The text index holds short texts only (pg_schema.TEXT_INDEXED), and the server uses
        # it only where the query states its condition. A row equal to one of these texts has
        # the text's length, so the condition leaves no match out; with a longer text it is
        # not stated, and the key's entries in the number index find the rows.
        if all(len(key) + len(text) <= TEXT_INDEXED for text in texts):
            return f" AND length(v.key) + length(v.text_value) <= {TEXT_INDEXED}"
        return ""

    def finish(self, sql: str) -> str:
        return sql.replace("%", "%%").replace("?", "%s")

    def finish_named(self, sql: str) -> str:
        return re.sub(r"\$([a-z_]+)", r"%(\1)s", sql.replace("%", "%%"))


_KEY = "v.run_id = %s.id AND v.namespace = ? AND v.key = ?"


def _of_row(column: str, alias: str, namespace: str, key: str,
            row: bool) -> tuple[str, tuple[str, ...]]:
    """``column`` of the run's ``latest_values`` row of the key, as the keyed row's own
    column; outside one (a sort key, IS NULL), the same value from the run's own JSON: at 100k
    runs one ``->>`` a row beat a sub-select by primary key a row (2.9 s against 4.2 s for the
    top 100 by a metric, docs/scaling.md)."""
    if row:
        return column, ()
    document = f"{alias}.{'params' if namespace == 'params' else 'metrics'}::json"
    if column == "v.number":
        return f"try_float8({document} ->> ?)", (key,)
    if column == "v.text_value":
        return f"({document} ->> ?)", (key,)
    return f"CASE json_typeof({document} -> ?) WHEN 'boolean' THEN {document} ->> ? END", \
        (key, key)


DUCKDB = Dialect()
POSTGRES = _Postgres("postgresql")
