"""The columnar copy of every run's latest params and metrics, which filters and tables read.

``runs.params`` and ``runs.metrics`` hold each run's latest values as JSON: faithful, but a filter
over JSON parses every run's document (~60 ms per scan at 100k runs). So ``run_values`` holds the
same values one column per key, added as keys appear: a filter scans a typed column and the runs
table reads columns instead of parsing. Column names are internal (``p1``, ``m1``): keys are data,
and DuckDB's names are case-insensitive while keys are not. ``value_columns`` maps each key to its
column.

Per param key there are two VARCHAR columns: ``p<n>`` holds the text form (a string as itself,
any other value as JSON text, null as NULL) and ``p<n>_json`` the JSON text, which tells the
boolean ``true`` from the string "true". Per metric key, ``m<n>`` is a DOUBLE.

The columns are derived from the JSON, and writers leave them behind: filling ~45 typed
columns in the writer's transaction, or only carrying them empty in ``runs``, made every
write's detach checkpoint up to 2x slower (docs/design.md §6). A row written or changed by a
writer has ``runs.values_fresh`` NULL; :func:`catch_up`, run by a reader that can take the write
lock without waiting, rewrites the ``run_values`` of every such run at once and marks them
fresh. Reads go through :func:`source`, which joins the two tables and takes a stale run's
values from its JSON, so no read ever sees a column disagree with what was committed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tracker.errors import NotACatalogError

Layout = Mapping[tuple[str, str], str]
"""(namespace, key) -> column of ``run_values``, e.g. ``("params", "lr") -> "p3"``."""


def pointer(key: str) -> str:
    """The JSON Pointer (RFC 6901) of a top-level key, so dots, quotes and slashes are just text."""
    return "/" + key.replace("~", "~0").replace("/", "~1")


def named(layout: Layout, namespace: str) -> list[tuple[str, str]]:
    """The (key, column) pairs of one namespace (``"params"`` or ``"metrics"``), by key."""
    return sorted((key, name) for (space, key), name in layout.items() if space == namespace)


def layout(con: Any) -> dict[tuple[str, str], str]:
    """Which column of ``run_values`` holds each params and metrics key.

    The names are read from the file but become SQL text, so each must be one :func:`ensure`
    makes (``p3`` for params, ``m3`` for metrics); a file edited outside tracker that holds
    another is refused (NotACatalogError), never queried."""
    placed = {}
    for namespace, key, name in con.execute(
            "SELECT namespace, key, name FROM value_columns").fetchall():
        if not (isinstance(name, str) and _NAME.fullmatch(name)
                and _PREFIXES.get(namespace) == name[0]):
            raise _foreign(con, namespace, name)
        placed[namespace, key] = name
    return placed


_PREFIXES = {"params": "p", "metrics": "m"}
_NAME = re.compile(r"[pm][1-9][0-9]{0,8}")


def _foreign(con: Any, namespace: object, name: object) -> NotACatalogError:
    from tracker.storage.files import restore_advice

    row = con.execute("SELECT path FROM duckdb_databases() "
                      "WHERE database_name = 'catalog'").fetchone()
    path = str(row[0]) if row else "file"
    return NotACatalogError(
        f"catalog {path} cannot be read: it names a value column {str(name)[:60]!r} for "
        f"{str(namespace)[:20]!r} that tracker never writes (the file was changed outside "
        f"tracker); it was left untouched. {restore_advice(Path(path))}", path=path)


def refresh(con: Any, run_ids: Sequence[str] | None = None) -> None:
    """Rewrite the value columns of ``run_ids`` (None: every run) from their JSON, giving every
    known key its columns first, and mark the runs fresh. Run inside the caller's write
    transaction, after ``param_keys`` and ``metric_keys`` know every key the runs hold."""
    _rewrite(con, "$ids::VARCHAR[] IS NULL OR list_contains($ids::VARCHAR[], id)",
             {"ids": None if run_ids is None else list(run_ids)})


def catch_up(con: Any) -> None:
    """Fill the value columns of every run a writer left behind (see the module's notes)."""
    _rewrite(con, _STALE, {})


_STALE = "values_fresh IS NOT TRUE"


def _rewrite(con: Any, runs: str, args: dict[str, Any]) -> None:
    """Rebuild the ``run_values`` rows of the runs matching ``runs`` (SQL binding ``args``)."""
    names, values, pointers = extraction(ensure(con))
    con.execute(f"DELETE FROM run_values WHERE id IN (SELECT id FROM runs WHERE {runs})", args)
    con.execute(
        f"INSERT INTO run_values (id{''.join(', ' + name for name in names)}) "
        f"SELECT id{''.join(', ' + value for value in values)} "
        f"FROM (SELECT id, {EXTRACTED} FROM runs WHERE {runs})", {**pointers, **args})
    con.execute(f"UPDATE runs SET values_fresh = true WHERE {runs}", args)


def stale(con: Any) -> int:
    """How many runs' value columns lag behind their JSON."""
    return int(con.execute(f"SELECT count(*) FROM runs WHERE {_STALE}").fetchone()[0])


@dataclass(frozen=True)
class Placement:
    """Where a read finds each key's values: ``layout`` maps every known key to a column name
    (those of ``run_values``, and ``pn1``, ``mn1``... for keys no column holds yet), and
    ``stale`` how many runs' columns lag behind their JSON."""

    layout: dict[tuple[str, str], str]
    stale: int
    placed: frozenset[str]  # the names that are columns of run_values


def placement(con: Any) -> Placement:
    """The :class:`Placement` of the open catalog (two small reads when every run is fresh)."""
    placed = layout(con)
    names = frozenset(placed.values())
    lagging = stale(con)
    if not lagging:
        return Placement(placed, 0, names)
    unplaced = sorted(set(_known_keys(con)) - set(placed))
    return Placement({**placed, **{pair: f"{pair[0][0]}n{i}"
                                   for i, pair in enumerate(unplaced, start=1)}}, lagging, names)


def source(where: Placement, keys: Iterable[tuple[str, str]] | None = None,
           runs: str = "", args: Sequence[Any] = ()) -> tuple[str, list[Any]]:
    """SQL that reads name instead of ``runs`` (with its ``?`` parameters): every column of
    ``runs``, its ``rowid``, and the value columns of ``keys`` (None: every key), placed by
    ``where.layout``. ``runs`` is a WHERE clause (binding ``args``) limiting the runs before
    they are joined to their values, so a page joins only its own rows.

    The join is left out when no key is wanted; a stale run's values come from its JSON,
    parsed only for stale rows (DuckDB evaluates a CASE branch for its rows alone).
    """
    wanted = where.layout if keys is None else \
        {pair: where.layout[pair] for pair in keys if pair in where.layout}
    scan = f"(SELECT rowid AS rowid, * FROM runs {runs}) runs"
    if not wanted:
        return f"(SELECT * FROM {scan})", list(args)
    names, values, pointers = extraction(wanted)
    placed = [name for name in names if name.removesuffix("_json") in where.placed]
    join = f"LEFT JOIN (SELECT id, {', '.join(placed)} FROM run_values) v ON v.id = runs.id" \
        if placed else ""
    if not where.stale:
        return f"(SELECT runs.*, {', '.join(placed)} FROM {scan} {join})", list(args)
    lists = ", ".join(f"CASE WHEN values_fresh THEN NULL ELSE {expression.format(p='?', m='?')}"
                      f" END AS {alias}" for expression, alias in _LISTS)
    chosen = [f"CASE WHEN values_fresh THEN {name} ELSE {value} END AS {name}"
              if name in placed else f"{value} AS {name}"
              for name, value in zip(names, values, strict=True)]
    return (f"(SELECT runs.* EXCLUDE (_text, _json, _metric), {', '.join(chosen)} FROM "
            f"(SELECT *, {lists} FROM {scan}) runs {join})",
            [pointers["p"], pointers["p"], pointers["m"], *args])


# One parse of each document extracts every key (a list of pointers), not one per key.
_LISTS = (("json_extract_string(params, {p}::VARCHAR[])", "_text"),
          ("CAST(json_extract(params, {p}::VARCHAR[]) AS VARCHAR[])", "_json"),
          ("json_extract_string(metrics, {m}::VARCHAR[])", "_metric"))
EXTRACTED = ", ".join(f"{expression.format(p='$p', m='$m')} AS {alias}"
                      for expression, alias in _LISTS)
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


def ensure(con: Any) -> dict[tuple[str, str], str]:
    """Give every key in ``param_keys`` and ``metric_keys`` its columns, and return where each
    key's are. Only a key never seen before costs an ALTER."""
    columns = layout(con)
    counts = {"params": 0, "metrics": 0}
    for namespace, _ in columns:
        counts[namespace] += 1
    for namespace, key in sorted(set(_known_keys(con)) - set(columns)):
        counts[namespace] += 1
        name = f"{namespace[0]}{counts[namespace]}"
        if namespace == "params":
            con.execute(f"ALTER TABLE run_values ADD COLUMN {name} VARCHAR")
            con.execute(f"ALTER TABLE run_values ADD COLUMN {name}_json VARCHAR")
        else:
            con.execute(f"ALTER TABLE run_values ADD COLUMN {name} DOUBLE")
        con.execute("INSERT INTO value_columns VALUES (?, ?, ?)", [namespace, key, name])
        columns[namespace, key] = name
    return columns


def _known_keys(con: Any) -> list[tuple[str, str]]:
    """Every (namespace, key) a run ever logged."""
    return con.execute("SELECT DISTINCT 'params', key FROM param_keys UNION "
                       "SELECT DISTINCT 'metrics', key FROM metric_keys").fetchall()
