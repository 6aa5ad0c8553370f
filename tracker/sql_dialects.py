"""The few pieces of SQL in which the back ends differ, for the filter compiler
(:mod:`tracker.filter_language`): one parser and one compiler, and each back end's spelling of
a safe cast, of epoch seconds, of a metric at its largest step, of a labels test, of where a
run's params and metrics are, and of placeholders.

DuckDB reads params and metrics from the catalog's value columns (the layout's ``p1``, ``m1``);
PostgreSQL from the runs' JSON text, the key bound as a value (``params::json ->> %s``). In
neither does a key or a value typed by a user become SQL text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

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
              key: str, suffix: str = "") -> tuple[str, tuple[str, ...]]:
        """A param's text form (``suffix="_json"``: its JSON text), a metric's number, and the
        values to bind: the layout's column, or NULL for a key no run has."""
        name = layout.get((namespace, key))
        # The column names are ours, never user text.
        return (f"{alias}.{name}{suffix}" if name else "CAST(NULL AS VARCHAR)"), ()

    def finish(self, sql: str) -> str:
        """The compiled SQL with this back end's placeholders (``?`` as compiled)."""
        return sql

    def finish_named(self, sql: str) -> str:
        """A statement of tracker's with named values (``$run``) in this back end's spelling."""
        return sql


class _Postgres(Dialect):
    """PostgreSQL: a cast function of the catalog's schema (``try_float8``, created with it),
    ``%s`` placeholders (the compiled SQL holds no other ``%`` or ``?``: no user text), keys
    looked up in the JSON text (``json``, not ``jsonb``: it keeps numbers as written)."""

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
              key: str, suffix: str = "") -> tuple[str, tuple[str, ...]]:
        column = f"{alias}.{'params' if namespace == 'params' else 'metrics'}::json"
        if suffix == "_json":
            return f"(({column} -> ?)::text)", (key,)
        return f"({column} ->> ?)", (key,)

    def finish(self, sql: str) -> str:
        return sql.replace("%", "%%").replace("?", "%s")

    def finish_named(self, sql: str) -> str:
        return re.sub(r"\$([a-z_]+)", r"%(\1)s", sql.replace("%", "%%"))


DUCKDB = Dialect()
POSTGRES = _Postgres("postgresql")
