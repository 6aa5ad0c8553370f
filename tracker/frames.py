"""Query results as pandas DataFrames, the form every read of tracker returns.

Shared by the reads of :mod:`tracker.queries` and the user's own ``sql()``
(:mod:`tracker.readonly_sql`); pandas and pyarrow are imported when a frame is first made.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


def frame(con: Any, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None
          ) -> pd.DataFrame:
    """The result of ``sql`` as a DataFrame, by way of Arrow.

    pandas keeps text in Arrow arrays, so Arrow hands it over as it is: ~2x faster than
    duckdb's own conversion, which builds a Python string per value (60 ms of a 16k-run filter).
    Lists (labels) become Python lists and missing ones None, as users expect. Integers and
    booleans keep their type where values are missing (:func:`_nullable_types`).
    """
    import pyarrow as pa

    # The relation API (``sql``), not execute(): duckdb warns when Arrow is fetched from a
    # DB-API result, and silencing that with warnings.catch_warnings() swapped the process's
    # warning state under every other thread, losing warnings the user was catching.
    con.complete()  # a result the caller left unread (a fetchone()) would refuse the relation
    relation = con.sql(sql, params=params or None)
    if relation is None:  # a statement with no result, such as SET
        import pandas as pd

        return pd.DataFrame()
    arrow = relation.to_arrow_table()
    # No thread pool: handing columns to threads cost more than it saved, most for small
    # results (the 10 newest runs: 0.92 ms threaded, 0.67 not; 2.6 and 1.1 on busy cores)
    # and nothing for big ones (100k runs: 35 and 31 ms).
    table = arrow.to_pandas(types_mapper=_nullable_types(), use_threads=False)
    for field in arrow.schema:
        if pa.types.is_list(field.type):  # numpy arrays otherwise
            table[field.name] = table[field.name].map(list, na_action="ignore")
    return table


def _nullable_types() -> Callable[[Any], Any]:
    """Arrow's integer and boolean types as pandas' nullable dtypes (``Int64``, ``boolean``),
    so a column keeps its type whether or not a value is missing: numpy's would turn ints into
    floats (``params.epochs`` 3.0) and booleans into objects once one run lacks the key.
    Floats stay float64 (missing is NaN), text stays object."""
    import pandas as pd
    import pyarrow as pa

    nullable = {pa.int8(): pd.Int8Dtype(), pa.int16(): pd.Int16Dtype(),
                pa.int32(): pd.Int32Dtype(), pa.int64(): pd.Int64Dtype(),
                pa.uint8(): pd.UInt8Dtype(), pa.uint16(): pd.UInt16Dtype(),
                pa.uint32(): pd.UInt32Dtype(), pa.uint64(): pd.UInt64Dtype(),
                pa.bool_(): pd.BooleanDtype()}
    return nullable.get
