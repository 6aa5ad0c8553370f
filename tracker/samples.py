"""A few fields of a sample of the filtered runs, chosen in the catalog: what charts across runs
draw, however many runs match.

One SELECT: the filter compiles as for :meth:`tracker.Catalog.runs` (values bound), the fields
are read from the catalog's own value columns (their names come from its layout, never from the
user), and the sample is the ``limit`` matching runs first in the order of a hash of their id.
That order is fixed, so the same runs stay in the picture from one interaction to the next, and
it is unrelated to time, parameters or results, so the sample is a fair one. The number of runs
matched comes with it (a window count computed before the LIMIT).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tracker import arguments, filter_language, queries
from tracker.errors import ArgumentError
from tracker.frames import frame
from tracker.storage import value_columns
from tracker.storage.pg_store import PgStore

if TYPE_CHECKING:
    import pandas as pd

    from tracker.catalog import Catalog

DEFAULT_LIMIT = 500  # lines past a few hundred blur into one band; each costs render time


@dataclass(frozen=True)
class Sample:
    """``runs``: ``id``, ``name`` and one column per field (params as their text form, metrics
    as numbers; None where a run lacks the key), for at most the limit of runs;
    ``total``: how many runs the filter matched."""

    runs: pd.DataFrame
    total: int


def sample(catalog: Catalog, where: str | None, fields: Sequence[str], *,
           limit: int = DEFAULT_LIMIT) -> Sample:
    """Fields (``"params.lr"``, ``"metrics.acc"``) of at most ``limit`` runs matching
    ``where``, sampled in the catalog (see the module's notes)."""
    limit = arguments.count(limit, "limit")
    fields = list(dict.fromkeys(arguments.texts(fields, "fields", "['params.lr', 'metrics.acc']")
                                or []))
    keys = [_key(field) for field in fields]
    queries.check_filters(where)
    if isinstance(catalog.store, PgStore):
        from tracker import pg_queries

        table = pg_queries.sample(catalog.store, where, keys, limit)
    else:
        table = _sampled(catalog, where, keys, limit)
    total = int(table["_total"].iloc[0]) if len(table) else 0
    table = table.drop(columns="_total").rename(
        columns={f"f{index}": field for index, field in enumerate(fields)})
    return Sample(table, total)


def _sampled(catalog: Catalog, where: str | None, keys: Sequence[tuple[str, str]],
             limit: int) -> pd.DataFrame:
    """The sample's rows from a catalog file (f0, f1... for ``keys``, and ``_total``)."""
    queries.flush_for_read(catalog)
    with catalog.connect() as con:
        placed = value_columns.placement(con)
        condition = queries.matching(where, layout=placed.layout)
        source, args = value_columns.source(placed)
        # Column names are the catalog's own (p1, m2...), aliased to positions: no user text.
        chosen = [f"r.{placed.layout[key]} AS f{index}" if key in placed.layout
                  else f"NULL AS f{index}" for index, key in enumerate(keys)]
        return frame(con, f"SELECT r.id, r.name, count(*) OVER () AS _total"
                          f"{''.join(', ' + c for c in chosen)} FROM {source} r "
                          f"WHERE {condition.sql} ORDER BY hash(r.id), r.id LIMIT ?",
                     [*args, *condition.params, limit])


def _key(field: str) -> tuple[str, str]:
    namespace, key = filter_language.parse_key(field, argument="fields")
    if namespace not in ("params", "metrics"):
        raise ArgumentError(f"charts draw params and metrics, not {field!r}; "
                            "name them as 'params.lr' or 'metrics.acc'")
    return namespace, key


def numbers(values: Iterable[Any]) -> tuple[list[float | None], list[str] | None]:
    """A column as positions on an axis: numbers (or params' text of numbers) as they are; text
    (a categorical param) as the index of its value among the sorted distinct values, which
    are returned too. None and NaN are missing. Plain Python: a chart's columns are short."""
    items = [None if value is None or value != value else value for value in values]
    try:
        return [None if value is None else float(value) for value in items], None
    except (TypeError, ValueError):
        pass
    categories = sorted({str(value) for value in items if value is not None})
    index = {category: float(i) for i, category in enumerate(categories)}
    return [None if value is None else index[str(value)] for value in items], categories
