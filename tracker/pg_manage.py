"""The changes of runs ported to a PostgreSQL catalog: soft delete and restore, edits, statuses
and tags set by hand, purge.

The counterparts of :mod:`tracker.manage`, which checks the arguments for both back ends; here
each change is one transaction. References resolve as in the file catalog (the same
messages); the rows a change touches are locked ``FOR UPDATE`` in id order first, as
:mod:`tracker.storage.pg_writer` locks them, so a change and a recording process wait for each
other instead of deadlocking, and a filter is judged on the rows as they are once locked.
Values are always bound; column names come from fixed lists only. A run the role may read but
not change (a project granted read-only) is refused, not skipped.
"""

from __future__ import annotations

import socket
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from tracker import arguments, filter_language, manage, models, queries
from tracker.errors import ProjectAccessError
from tracker.sql_dialects import POSTGRES
from tracker.storage import pg_access, pg_blobs
from tracker.storage.pg_store import PgStore

_IDS_EXAMPLE = "['0192f0c4', 'baseline']"


def delete_runs(store: PgStore, refs: Sequence[str]) -> list[str]:
    """Soft-delete the runs ``refs`` name; their ids."""
    return _stamp(store, refs, "UPDATE runs SET deleted_at = now() WHERE id = ANY(%s) "
                               "AND deleted_at IS NULL")


def delete_matching(store: PgStore, where: str | None, equals: Mapping[str, Any]) -> list[str]:
    """Soft-delete the runs outside the trash that the filter and ``equals`` match; their ids.

    One transaction: the filter picks the runs the role reads, which are locked (a run it may
    read but not change is a ProjectAccessError and nothing is deleted: row-level security
    would skip it silently), judged again as they are once locked (a run another process
    ended meanwhile), and stamped; none is stamped that did not match."""
    queries.check_filters(where, equals)
    condition = filter_language.compile_filter(where, dialect=POSTGRES)
    equal = filter_language.compile_equals(equals, dialect=POSTGRES)
    matching = (f"SELECT r.id FROM runs r WHERE r.deleted_at IS NULL AND ({condition.sql}) "
                f"AND ({equal.sql}) AND (%s::text[] IS NULL OR r.id = ANY(%s)) ORDER BY r.id")
    values = [*condition.params, *equal.params]
    with store.connect(write=True) as con:
        seen = [row[0] for row in con.execute(matching, [*values, None, None]).fetchall()]
        _must_write(con, seen, store)
        chosen = [row[0] for row in con.execute(matching, [*values, seen, seen]).fetchall()]
        con.execute("UPDATE runs SET deleted_at = now() WHERE id = ANY(%s)", [chosen])
    return chosen


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


def update_run(store: PgStore, ref: str, changes: Mapping[str, Any]) -> str:
    """Set the columns ``changes`` names (of :data:`tracker.manage.EDITABLE`) of the run
    ``ref`` names; its id."""
    names = [name for name in manage.EDITABLE if name in changes]
    with store.connect(write=True) as con:
        run_id = queries.resolve(con, ref, POSTGRES)
        if names:
            _must_write(con, [run_id], store)
            sets = ", ".join(f"{name} = %s" for name in names)
            con.execute(f"UPDATE runs SET {sets} WHERE id = %s",
                        [*(changes[name] for name in names), run_id])
    return run_id


def set_status(store: PgStore, ref: str, status: str, *, force: bool,
               own: Collection[str]) -> str:
    """Set the status of the run ``ref`` names by :data:`tracker.manage.TRANSITIONS` (all
    ``force``), keeping the change in ``status_changes``; its id. ``own``: the runs this
    process records, alive whatever their row says."""
    from tracker.recorder import user_name
    from tracker.storage import recovery

    with store.connect(write=True) as con:
        run_id = queries.resolve(con, ref, POSTGRES)
        _must_write(con, [run_id], store)
        old, host, pid, started, heartbeat = con.execute(
            "SELECT status, host, pid, process_start, extract(epoch FROM heartbeat_at) "
            "FROM runs WHERE id = %s FOR UPDATE", [run_id]).fetchone()
        if old == status:  # setting the status a run has is no change, and not history
            return run_id
        if not force:
            alive = run_id in own or not recovery.is_dead(
                host, pid, started, None if heartbeat is None else float(heartbeat))
            manage.check_transition(old, status, alive=alive, where=f"pid {pid} on {host}")
        con.execute(_STATUS_SQL[status == models.RUNNING], [status, run_id])
        con.execute("INSERT INTO status_changes (run_id, old_status, new_status, username, "
                    "host, changed_at, forced) VALUES (%s, %s, %s, %s, %s, now(), %s)",
                    [run_id, old, status, user_name(), socket.gethostname(), force])
    return run_id


# As tracker.manage sets it: a run that ends here ends at its last sign of life, as recovery
# does, and one forced back to running has no end. Keyed by "back to running".
_STATUS_SQL = {
    True: "UPDATE runs SET status = %s, ended_at = NULL, duration = NULL WHERE id = %s",
    False: "UPDATE runs SET status = %s, ended_at = coalesce(ended_at, heartbeat_at, "
           "started_at), duration = extract(epoch FROM coalesce(ended_at, heartbeat_at, "
           "started_at) - started_at) WHERE id = %s",
}


def set_tags(store: PgStore, ref: str, rows: Sequence[tuple[str, str | None]],
             now: float) -> str:
    """Set (value) or remove (None) the tags ``rows`` of the run ``ref`` names, as set at
    ``now`` (a later change another process made wins, as when recorded); its id."""
    from tracker.storage.pg_writer import write_tags

    with store.connect(write=True) as con:
        run_id = queries.resolve(con, ref, POSTGRES)
        if rows:
            _must_write(con, [run_id], store)
            write_tags(con.cursor(), {(run_id, key): (value, now) for key, value in rows})
    return run_id


# The rows of purged runs (their ids bound as %(ids)s), children first; then what no remaining
# run links to: an artifact version, its producer, an environment.
_PURGE = (
    "DELETE FROM run_artifacts WHERE run_id = ANY(%(ids)s)",
    "DELETE FROM artifacts a WHERE NOT EXISTS "
    "(SELECT 1 FROM run_artifacts ra WHERE ra.artifact_id = a.id)",
    "UPDATE artifacts SET producer_run_id = NULL WHERE producer_run_id = ANY(%(ids)s)",
    *(f"DELETE FROM {table} WHERE run_id = ANY(%(ids)s)"
      for table in ("params", "metrics", "cells", "status_changes", "tags")),
    "DELETE FROM runs WHERE id = ANY(%(ids)s)",
    "DELETE FROM environments e WHERE NOT EXISTS "
    "(SELECT 1 FROM runs r WHERE r.environment_id = e.id)",
)


def purge(store: PgStore, age: float, refs: Sequence[str] | None) -> dict[str, int]:
    """Remove for good the runs in the trash for ``age`` seconds or more (of those ``refs``
    names, if given), with everything recorded about them, and the stored blobs no run
    references any more: one transaction. Counts of what was removed (runs, blobs)."""
    old_enough = ("SELECT id FROM runs WHERE deleted_at IS NOT NULL "
                  "AND deleted_at <= now() - make_interval(secs => %s) "
                  "AND (%s::text[] IS NULL OR id = ANY(%s)) ORDER BY id")
    with store.connect(write=True) as con:
        ids = None if refs is None else [queries.resolve(con, ref, POSTGRES) for ref in refs]
        candidates = [row[0] for row in con.execute(old_enough, [age, ids, ids]).fetchall()]
        _lock_paths(con, candidates)  # first, as a writer takes them: versions may go
        chosen = [row[0] for row in con.execute(
            f"{old_enough} FOR UPDATE", [age, candidates, candidates]).fetchall()]
        for statement in _PURGE:
            con.execute(statement, {"ids": chosen})
        blobs = pg_blobs.remove_unreferenced(con)
    return {"runs": len(chosen), "blobs": blobs}


def referenced_blobs(store: PgStore) -> set[str]:
    """The stored contents and blobs some remaining run's artifacts name."""
    with store.connect() as con:
        return {row[0] for row in con.execute(
            "SELECT DISTINCT blob FROM artifacts WHERE blob IS NOT NULL").fetchall()}


def _lock_paths(con: Any, run_ids: Sequence[str]) -> None:
    """Take the advisory lock of each path these runs read or wrote, in sorted order, as
    :mod:`tracker.storage.pg_writer` takes them before linking a version: no writer links a run
    to a version while the purge finds it unlinked and removes it."""
    for (key,) in con.execute(
            "SELECT DISTINCT a.key FROM artifacts a JOIN run_artifacts ra "
            "ON ra.artifact_id = a.id WHERE ra.run_id = ANY(%s) ORDER BY 1",
            [list(run_ids)]).fetchall():
        con.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [f"path:{key}"])
