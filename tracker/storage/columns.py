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

The columns are derived, always from the JSON and in the writer's transaction, so they can
never disagree with what was committed: a new run's are computed by the INSERT that stores it
(``tracker.storage.writer``), and :func:`refresh` rewrites an existing run's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
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


def refresh(con: Any, run_ids: Sequence[str] | None = None,
            columns: Layout | None = None) -> None:
    """Rewrite the value columns of ``run_ids`` (None: every run) from their JSON.

    ``columns`` (from :func:`ensure`) limits the work to the columns a write touched: a batch
    changes no other, and rewriting a run's 45 columns costs ~4 ms where its few cost well
    under one. Run inside the caller's write transaction, after ``param_keys`` and
    ``metric_keys`` know every key the runs hold.
    """
    if columns is None:
        columns = ensure(con)
    names, values, pointers = extraction(columns)
    if not names:
        return
    sets = ", ".join(f"{name} = {value}" for name, value in zip(names, values, strict=True))
    con.execute(
        f"UPDATE runs SET {sets} FROM (SELECT id, {EXTRACTED} FROM runs "
        "WHERE $ids::VARCHAR[] IS NULL OR list_contains($ids::VARCHAR[], id)) s "
        "WHERE runs.id = s.id",
        {**pointers, "ids": None if run_ids is None else list(run_ids)})


# One parse of each document extracts every key (a list of pointers), not one per key.
EXTRACTED = ("json_extract_string(params, $p::VARCHAR[]) AS _text, "
             "CAST(json_extract(params, $p::VARCHAR[]) AS VARCHAR[]) AS _json, "
             "json_extract_string(metrics, $m::VARCHAR[]) AS _metric")
"""SQL selecting, from a row's ``params`` and ``metrics`` JSON, the lists of values that
:func:`extraction`'s expressions index; it binds the pointers as ``$p`` and ``$m``."""


def extraction(columns: Layout) -> tuple[list[str], list[str], dict[str, list[str]]]:
    """The value columns of ``columns``, the SQL computing each from what :data:`EXTRACTED`
    selects, and the pointers that SQL binds."""
    params, metrics = named(columns, "params"), named(columns, "metrics")
    names, values = [], []
    for i, (_, name) in enumerate(params, start=1):
        names += [name, f"{name}_json"]
        values += [f"_text[{i}]", f"_json[{i}]"]
    for i, (_, name) in enumerate(metrics, start=1):
        names.append(name)
        values.append(f"TRY_CAST(_metric[{i}] AS DOUBLE)")
    return names, values, {"p": [pointer(key) for key, _ in params],
                           "m": [pointer(key) for key, _ in metrics]}


def ensure(con: Any,
           keys: Iterable[tuple[str, str]] | None = None) -> dict[tuple[str, str], str]:
    """Give each (namespace, key) of ``keys`` (None: every key in ``param_keys`` and
    ``metric_keys``) its columns, and return where they are. Only a key never seen before
    costs an ALTER; the usual write costs one read of ``value_columns``."""
    columns = layout(con)
    if keys is None:
        keys = con.execute("SELECT DISTINCT 'params', key FROM param_keys UNION "
                           "SELECT DISTINCT 'metrics', key FROM metric_keys").fetchall()
    wanted = set(keys)
    counts = {"params": 0, "metrics": 0}
    for namespace, _ in columns:
        counts[namespace] += 1
    for namespace, key in sorted(wanted - set(columns)):
        counts[namespace] += 1
        name = f"{namespace[0]}{counts[namespace]}"
        if namespace == "params":
            con.execute(f"ALTER TABLE runs ADD COLUMN {name} VARCHAR")
            con.execute(f"ALTER TABLE runs ADD COLUMN {name}_json VARCHAR")
        else:
            con.execute(f"ALTER TABLE runs ADD COLUMN {name} DOUBLE")
        con.execute("INSERT INTO value_columns VALUES (?, ?, ?)", [namespace, key, name])
        columns[namespace, key] = name
    return {pair: name for pair, name in columns.items() if pair in wanted}
