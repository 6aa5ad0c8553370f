"""The changes of runs ported to a PostgreSQL catalog: the soft delete and its undo.

The counterparts of :func:`tracker.manage.delete_runs` and :func:`tracker.manage.restore_runs`,
each one transaction: references resolve as in the file catalog (the same messages), and
``deleted_at`` is stamped only where it is not set, so deleting twice keeps the first time. A
run the role may read but not change (a project granted read-only) is refused, not skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tracker import arguments, queries
from tracker.errors import ProjectAccessError
from tracker.sql_dialects import POSTGRES
from tracker.storage import pg_access
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
        _must_write(con, chosen, store)
        con.execute(statement, [chosen])
    return chosen


def _must_write(con: Any, chosen: list[str], store: PgStore) -> None:
    """Lock the runs (in id order, as the writer does); ProjectAccessError when the role may
    read some but not change them: row-level security would skip them silently
    (tracker.storage.pg_access), and a change said done must be done."""
    locked = {row[0] for row in con.execute(
        "SELECT id FROM runs WHERE id = ANY(%s) ORDER BY id FOR UPDATE", [chosen]).fetchall()}
    refused = sorted(set(chosen) - locked)
    if not refused:
        return
    projects = sorted({row[0] for row in con.execute(
        f"SELECT DISTINCT coalesce(project, '{pg_access.DEFAULT_PROJECT}') FROM runs "
        "WHERE id = ANY(%s)", [refused]).fetchall()})
    raise ProjectAccessError(
        f"this role may read but not change the runs {', '.join(refused[:3])}, "
        f"of project(s) {', '.join(map(repr, projects))}: nothing was changed; ask the "
        "catalog's owner for write access (tracker admin grant ROLE --project P)",
        path=store.shown)
