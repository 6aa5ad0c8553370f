"""The columnar copy of every run's latest params and metrics, which filters and tables read.

``runs.params`` and ``runs.metrics`` hold each run's latest values as JSON: faithful, but a filter
over JSON parses every run's document (~60 ms per scan at 100k runs). So ``runs`` also holds the
same values one column per key, added as keys appear: a filter scans a typed column and the runs
table reads columns instead of parsing. Column names are internal (``p1``, ``m1``): keys are data,
and DuckDB's names are case-insensitive while keys are not. ``value_columns`` maps each key to its
column; they live in ``runs`` itself because a join to a side table cost ~20 ms per query.

Per param key there are two VARCHAR columns: ``p<n>`` holds the text form (a string as itself,
any other value as JSON text, null as NULL) and ``p<n>_json`` the JSON text, which tells the
boolean ``true`` from the string "true". Per metric key, ``m<n>`` is a DOUBLE.

The columns are derived: :func:`refresh` rewrites them from the JSON in the writer's
transaction, so they can never disagree with what was committed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

Layout = Mapping[tuple[str, str], str]
"""(namespace, key) -> column of ``runs``, e.g. ``("params", "lr") -> "p3"``."""


def pointer(key: str) -> str:
    """The JSON Pointer (RFC 6901) of a top-level key, so dots, quotes and slashes are just text."""
    return "/" + key.replace("~", "~0").replace("/", "~1")


def named(layout: Layout, namespace: str) -> list[tuple[str, str]]:
    """The (key, column) pairs of one namespace (``"params"`` or ``"metrics"``), by key."""
    return sorted((key, name) for (space, key), name in layout.items() if space == namespace)


def layout(con: Any) -> dict[tuple[str, str], str]:
    """Which column of ``runs`` holds each params and metrics key."""
    return {(namespace, key): name for namespace, key, name in
            con.execute("SELECT namespace, key, name FROM value_columns").fetchall()}


def refresh(con: Any, run_ids: Sequence[str] | None = None) -> None:
    """Rewrite the value columns of ``run_ids`` (None: every run) from their JSON.

    Run inside the caller's write transaction, after ``param_keys`` and ``metric_keys`` know
    every key the runs hold.
    """
    columns = _add_missing_columns(con)
    if not columns:
        return
    params, metrics = named(columns, "params"), named(columns, "metrics")
    sets = []
    for i, (_, name) in enumerate(params, start=1):
        sets += [f"{name} = s._text[{i}]", f"{name}_json = s._json[{i}]"]
    for i, (_, name) in enumerate(metrics, start=1):
        sets.append(f"{name} = TRY_CAST(s._metric[{i}] AS DOUBLE)")
    # One parse of each document extracts every key (a list of pointers), not one per key.
    con.execute(
        f"UPDATE runs SET {', '.join(sets)} FROM "
        "(SELECT id, json_extract_string(params, $p::VARCHAR[]) AS _text, "
        "CAST(json_extract(params, $p::VARCHAR[]) AS VARCHAR[]) AS _json, "
        "json_extract_string(metrics, $m::VARCHAR[]) AS _metric FROM runs "
        "WHERE $ids::VARCHAR[] IS NULL OR list_contains($ids::VARCHAR[], id)) s "
        "WHERE runs.id = s.id",
        {"p": [pointer(key) for key, _ in params], "m": [pointer(key) for key, _ in metrics],
         "ids": None if run_ids is None else list(run_ids)})


def _add_missing_columns(con: Any) -> dict[tuple[str, str], str]:
    """Give every key in ``param_keys`` and ``metric_keys`` its columns; returns the layout."""
    columns = layout(con)
    keys = con.execute("SELECT DISTINCT 'params', key FROM param_keys UNION "
                       "SELECT DISTINCT 'metrics', key FROM metric_keys").fetchall()
    counts = {"params": 0, "metrics": 0}
    for namespace, _ in columns:
        counts[namespace] += 1
    for namespace, key in sorted(set(keys) - set(columns)):
        counts[namespace] += 1
        name = f"{namespace[0]}{counts[namespace]}"
        if namespace == "params":
            con.execute(f"ALTER TABLE runs ADD COLUMN {name} VARCHAR")
            con.execute(f"ALTER TABLE runs ADD COLUMN {name}_json VARCHAR")
        else:
            con.execute(f"ALTER TABLE runs ADD COLUMN {name} DOUBLE")
        con.execute("INSERT INTO value_columns VALUES (?, ?, ?)", [namespace, key, name])
        columns[namespace, key] = name
    return columns
