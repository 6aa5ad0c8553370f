"""The changes of runs ported to a PostgreSQL catalog: the soft delete and its undo.

The counterparts of :func:`tracker.manage.delete_runs` and :func:`tracker.manage.restore_runs`,
each one transaction: references resolve as in the file catalog (the same messages), and
``deleted_at`` is stamped only where it is not set, so deleting twice keeps the first time.
"""

from __future__ import annotations

from collections.abc import Sequence

from tracker import arguments, queries
from tracker.sql_dialects import POSTGRES
from tracker.storage.pg_store import PgStore

_IDS_EXAMPLE = "['0192f0c4', 'baseline']"


def delete_runs(store: PgStore, refs: Sequence[str]) -> list[str]:
    """Soft-delete the runs ``refs`` name; their ids."""
    return _stamp(store, refs, "UPDATE runs SET deleted_at = now() WHERE id = ANY(%s) "
                               "AND deleted_at IS NULL")


def restore_runs(store: PgStore, refs: Sequence[str]) -> list[str]:
    """Undo the soft delete of the runs ``refs`` name; their ids."""
    return _stamp(store, refs, "UPDATE runs SET deleted_at = NULL WHERE id = ANY(%s)")


def _stamp(store: PgStore, refs: Sequence[str], statement: str) -> list[str]:
    """Resolve ``refs`` and run ``statement`` on their ids, in one transaction."""
    checked = arguments.texts(refs, "refs", _IDS_EXAMPLE) or []
    with store.connect(write=True) as con:
        chosen = [queries.resolve(con, ref, POSTGRES) for ref in checked]
        con.execute(statement, [chosen])
    return chosen
