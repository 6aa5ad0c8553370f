"""Changing runs after the fact: rename and relabel, set a status by hand, soft delete and
restore, purge for good.

Deletion is two steps, as in MLflow: ``delete_runs`` only stamps ``deleted_at`` (undone by
``restore_runs``); ``purge`` removes soft-deleted runs with everything recorded about them, the
artifact versions they produced, and the stored blobs no remaining run references. A user's own
files are never touched.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import socket
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from tracker import arguments, models, reading, redaction, tags, values
from tracker.errors import ArgumentError, CatalogError, TrackerError
from tracker.queries import check_filters, flush_for_read, matching, resolve
from tracker.storage import recovery, value_columns

if TYPE_CHECKING:
    from pathlib import Path

    from tracker.catalog import Catalog
    from tracker.models import RunInfo

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_IDS_EXAMPLE = "['01m7zwkkx6hq', 'tracker://default/runs/01m7zwkkx6hq']"


def parse_age(text: str | float | int | dt.timedelta) -> float:
    """Seconds from ``30d``, ``12h``, ``90m``, ``45s``, ``2w``, a number or a timedelta;
    ArgumentError for anything else, a negative or a NaN age included."""
    seconds = _seconds(text)
    if seconds is None or not seconds >= 0:  # NaN fails every comparison
        raise ArgumentError(f"older_than must be an age such as '30d', '12h', '90m', '45s', "
                            f"a number of seconds or a timedelta, 0 or more; not {text!r:.60}")
    return seconds


def _seconds(text: Any) -> float | None:
    if isinstance(text, dt.timedelta):
        return text.total_seconds()
    if isinstance(text, int | float) and not isinstance(text, bool):
        return float(text)
    match = _DURATION.match(text) if isinstance(text, str) else None
    return float(match.group(1)) * _SECONDS[match.group(2)] if match else None


def update_run(catalog: Catalog, ref: str, *, name: str | None = None,
               labels: Sequence[str] | None = None, notes: str | None = None) -> RunInfo:
    """See :meth:`tracker.Catalog.update_run`."""
    changes = edits(catalog, name=name, labels=labels, notes=notes)
    flush_for_read(catalog)
    with catalog.connect(write=True) as con:
        run_id = resolve(con, ref)
        if changes:
            sets = ", ".join(f"{column} = ?" for column in changes)
            con.execute(f"UPDATE runs SET {sets} WHERE id = ?", [*changes.values(), run_id])
    sync_active(catalog, run_id, changes)
    return catalog.get_run(run_id)


def edits(catalog: Catalog, *, name: str | None, labels: Sequence[str] | None,
          notes: str | None) -> dict[str, Any]:
    """The columns ``update_run`` sets (of :data:`EDITABLE`), checked, as stored: text with no
    lone surrogates, secrets replaced (edits included)."""
    redactor = redaction.for_catalog(catalog)

    def stored(text: Any) -> str:
        return redactor.text(values.text(text)) or ""

    given = arguments.texts(labels, "labels", "['baseline', 'gpu']")
    arguments.run_texts(name=name, labels=given, notes=notes)
    changes: dict[str, Any] = {}
    if name is not None:
        changes["name"] = stored(name)
    if given is not None:
        changes["labels"] = [stored(label) for label in given]
    if notes is not None:
        changes["notes"] = stored(notes)
    return changes


#: The columns of a run ``update_run`` may change: the only names its SQL holds.
EDITABLE = ("name", "labels", "notes")


def sync_active(catalog: Catalog, run_id: str, changes: dict[str, Any]) -> None:
    """Keep this process's in-memory run in step, so a later flush does not undo a rename."""
    recorder = catalog.recorder
    if recorder is None or "name" not in changes:
        return
    for run in recorder.stack:
        if run.id == run_id:
            run.name = changes["name"]


#: Each status, and what it means (shown when a status is refused).
STATUS_MEANINGS: dict[str, str] = {
    models.RUNNING: "its process is still going",
    models.COMPLETED: "it ended as it should",
    models.FAILED: "it ended with an error",
    models.CRASHED: "its process died without ending it",
}

#: What a status set by hand may be, by the run's status now (``force=True`` skips the rules):
#: a finished run never runs again, and ``crashed`` is tracker's finding that a run's process
#: died, not a verdict a person gives. A running run is ended by its own process, or by hand
#: once that process is gone (:func:`check_transition`).
TRANSITIONS: dict[str, tuple[str, ...]] = {
    models.RUNNING: (models.COMPLETED, models.FAILED, models.CRASHED),
    models.COMPLETED: (models.FAILED,),
    models.FAILED: (models.COMPLETED,),
    models.CRASHED: (models.COMPLETED, models.FAILED),
}


def set_status(catalog: Catalog, ref: str, status: str, *, force: bool = False) -> RunInfo:
    """See :meth:`tracker.Catalog.set_status`."""
    check_status(status, force)
    flush_for_read(catalog)
    from tracker.recorder import local_to, user_name

    with catalog.connect(write=True) as con:
        run_id = resolve(con, ref)
        old, host, pid, started, heartbeat = con.execute(
            "SELECT status, host, pid, process_start, epoch(heartbeat_at) FROM runs "
            "WHERE id = ?", [run_id]).fetchone()
        if old != status:  # setting the status a run has is no change, and not history
            if not force:
                own = run_id in local_to(catalog.spool_dir).runs
                check_transition(old, status, alive=own or not recovery.is_dead(
                    host, pid, started, heartbeat), where=f"pid {pid} on {host}")
            con.execute("BEGIN")
            _apply_status(con, run_id, status)
            con.execute("INSERT INTO status_changes VALUES (?, ?, ?, ?, ?, now(), ?)",
                        [run_id, old, status, user_name(), socket.gethostname(), force])
            con.execute("COMMIT")
    return catalog.get_run(run_id)


def check_status(status: Any, force: Any) -> None:
    """ArgumentError unless ``status`` is one tracker knows and ``force`` a bool."""
    if not isinstance(status, str):  # choice() lets None through, and NULL breaks the row
        raise ArgumentError(f"status must be one of {', '.join(map(repr, models.STATUSES))}; "
                            f"not {status!r:.60}")
    arguments.choice(status, "status", STATUS_MEANINGS)
    if not isinstance(force, bool):
        raise ArgumentError(f"force must be True or False, not {force!r:.60}")


def check_transition(old: str, new: str, *, alive: bool, where: str) -> None:
    """Refuse a change :data:`TRANSITIONS` does not allow, saying why and how to force it."""
    if old == models.RUNNING and alive:
        raise _refused(f"it is running and its process ({where}) is alive: the run is ended "
                       "there (tracker.end_run), or by tracker once that process is gone")
    if new not in TRANSITIONS[old]:
        allowed = " or ".join(TRANSITIONS[old])
        raise _refused(f"a {old} run may be marked {allowed} by hand, not {new}")


def _refused(reason: str) -> TrackerError:
    return ArgumentError(f"status not changed: {reason}; pass force=True (tracker status "
                         "--force) to set it anyway")


def _apply_status(con: Any, run_id: str, status: str) -> None:
    """Set the status; a run that ends here ends at its last sign of life, as recovery does,
    and one forced back to running has no end."""
    if status == models.RUNNING:
        con.execute("UPDATE runs SET status = ?, ended_at = NULL, duration = NULL WHERE id = ?",
                    [status, run_id])
        return
    con.execute(
        "UPDATE runs SET status = ?, "
        "ended_at = coalesce(ended_at, heartbeat_at, started_at), "
        "duration = epoch(coalesce(ended_at, heartbeat_at, started_at)) - epoch(started_at) "
        "WHERE id = ?", [status, run_id])


def set_tags(catalog: Catalog, ref: str, given: Mapping[str, Any],
             removed: Sequence[str] = ()) -> str:
    """Set the tags ``given`` and remove those ``removed`` of the run ``ref`` names, at once
    (any run, live or finished: tags have a table of their own, see :mod:`tracker.tags`);
    returns its id."""
    from tracker.storage.writer import write_tags

    rows = tag_rows(catalog, given, removed)
    now = time.time()
    flush_for_read(catalog)  # this process's queued events first: they are older
    with catalog.connect(write=True) as con:
        run_id = resolve(con, ref)
        if rows:
            con.execute("BEGIN")
            write_tags(con, [(run_id, key, value, now) for key, value in rows])
            con.execute("COMMIT")
    return run_id


def tag_rows(catalog: Catalog, given: Mapping[str, Any],
             removed: Sequence[str]) -> list[tuple[str, str | None]]:
    """``(key, value)`` of each tag to set, checked and redacted, then ``(key, None)`` of each
    to remove."""
    redactor = redaction.for_catalog(catalog)
    rows: list[tuple[str, str | None]] = [tags.checked(key, value, redactor)
                                          for key, value in tags.pairs(given)]
    return rows + [(tags.checked_key(key), None) for key in removed]


def delete_runs(catalog: Catalog, where: str | None = None, *,
                ids: Sequence[str] | None = None, **equals: Any) -> list[str]:
    """See :meth:`tracker.Catalog.delete_runs`; a filter or ids is required."""
    if where is None and ids is None and not equals:
        raise ArgumentError("delete_runs needs a filter, ids or equality tests; to delete every "
                            "run say so: delete_runs('id IS NOT NULL')")
    ids = arguments.texts(ids, "ids", _IDS_EXAMPLE)
    check_filters(where, equals)
    flush_for_read(catalog)
    with catalog.connect(write=True) as con:
        if ids is not None:
            chosen = [resolve(con, ref) for ref in ids]
        else:
            placed = value_columns.placement(con)
            condition = matching(where, equals, placed.layout)
            every, args = value_columns.source(placed)
            chosen = [row[0] for row in con.execute(
                f"SELECT id FROM {every} r WHERE {condition.sql}",
                [*args, *condition.params]).fetchall()]
        con.execute("UPDATE runs SET deleted_at = now() WHERE list_contains(?, id) "
                    "AND deleted_at IS NULL", [chosen])
    return chosen


def restore_runs(catalog: Catalog, refs: Sequence[str]) -> list[str]:
    """See :meth:`tracker.Catalog.restore_runs`."""
    refs = arguments.texts(refs, "refs", _IDS_EXAMPLE) or []
    with catalog.connect(write=True) as con:
        chosen = [resolve(con, ref) for ref in refs]
        con.execute("UPDATE runs SET deleted_at = NULL WHERE list_contains(?, id)", [chosen])
    return chosen


_PURGE = (
    "DELETE FROM run_artifacts WHERE list_contains($ids, run_id)",
    # A version no remaining run links to goes too; "latest" is the highest remaining version.
    "DELETE FROM artifacts a WHERE NOT EXISTS "
    "(SELECT 1 FROM run_artifacts ra WHERE ra.artifact_id = a.id)",
    "UPDATE artifacts SET producer_run_id = NULL WHERE list_contains($ids, producer_run_id)",
    "DELETE FROM params WHERE list_contains($ids, run_id)",
    "DELETE FROM metrics WHERE list_contains($ids, run_id)",
    "DELETE FROM cells WHERE list_contains($ids, run_id)",
    "DELETE FROM status_changes WHERE list_contains($ids, run_id)",
    "DELETE FROM tags WHERE list_contains($ids, run_id)",
    "DELETE FROM run_values WHERE list_contains($ids, id)",
    "DELETE FROM runs WHERE list_contains($ids, id)",
    "DELETE FROM environments e WHERE NOT EXISTS "
    "(SELECT 1 FROM runs r WHERE r.environment_id = e.id)",
)


def purge(catalog: Catalog, older_than: str | float | None = None, *,
          ids: Sequence[str] | None = None, store: bool = False) -> dict[str, int]:
    """See :meth:`tracker.Catalog.purge`. Returns counts of what was removed."""
    age = parse_age(older_than) if older_than is not None else 0.0
    ids = arguments.texts(ids, "ids", _IDS_EXAMPLE)
    flush_for_read(catalog)
    with catalog.connect(write=True) as con:
        ids = [resolve(con, ref) for ref in ids] if ids is not None else None
        chosen = [row[0] for row in con.execute(
            "SELECT id FROM runs WHERE deleted_at IS NOT NULL "
            "AND epoch(now()) - epoch(deleted_at) >= ? "
            "AND (?::VARCHAR[] IS NULL OR list_contains(?::VARCHAR[], id))",
            [age, ids, ids]).fetchall()]
        con.execute("BEGIN")
        for statement in _PURGE:
            con.execute(statement, {"ids": chosen} if "$ids" in statement else {})
        con.execute("COMMIT")
        # Under the write lock: no run commits a reference between this read and the unlinks.
        kept_blobs = {row[0] for row in con.execute(
            "SELECT DISTINCT blob FROM artifacts WHERE blob IS NOT NULL").fetchall()}
        removed = _remove_unreferenced_blobs(catalog, kept_blobs)
        shared = reclaim_shared(catalog, kept_blobs, remove=store)
    return {"runs": len(chosen), "blobs": removed, "shared": shared}


def reclaim_shared(catalog: Catalog, kept: set[str], *, remove: bool) -> int:
    """This catalog's marks in a shared store brought up to date; with ``remove``, what no
    catalog marks removed (:mod:`tracker.shared_store`). Nothing for the catalog's own."""
    from tracker import shared_store
    from tracker.storage import contents

    try:
        if not catalog.content_store.shared:
            return 0
    except (ArgumentError, CatalogError):  # no usable store (TRACKER_STORE): nothing to clean
        return 0
    try:
        return shared_store.reclaim(catalog, {key for key in kept if contents.is_key(key)},
                                    remove=remove)
    except Exception as exc:  # a bucket's network or server error, a folder gone
        raise CatalogError(f"the shared store {catalog.content_store.location} could not be "
                           f"cleaned ({type(exc).__name__}: {exc}); the runs were purged; run "
                           "purge again once it can be reached",
                           path=reading.shown(catalog)) from None


def _remove_if_untouched(blob: Path, cutoff: float) -> int:
    """Remove ``blob`` unless a run's write (outside the lock) reused it meanwhile: it is
    moved aside first, so a reuse either touched it before (its mtime is new: it goes back)
    or finds it gone (and stores it again). 1 if removed."""
    aside = blob.with_name(f".{blob.name}.{os.getpid()}.purged")
    os.replace(blob, aside)
    if aside.stat().st_mtime >= cutoff:
        os.replace(aside, blob)  # the same content by its name, if a run stored it again
        return 0
    aside.unlink()
    return 1


def _remove_unreferenced_blobs(catalog: Catalog, kept: set[str]) -> int:
    """Blobs are tracker's own copies (a run's saved notebook, kept contents), never the user's
    files. A shared store (``TRACKER_STORE``) is left alone: other catalogs may use it."""
    folder = catalog.blob_dir
    if not folder.exists():
        return 0
    removed = 0
    # A blob younger than an hour may belong to a run whose write is still on its way.
    cutoff = time.time() - 3600
    for blob in folder.iterdir():
        if blob.is_file() and blob.name not in kept and blob.stat().st_mtime < cutoff:
            removed += _remove_if_untouched(blob, cutoff)
    for partial in (folder / ".staging").glob(".*.part"):  # copies a killed process left
        if partial.stat().st_mtime < cutoff:
            partial.unlink()
    return removed
