"""Writing a batch of recorded events into a PostgreSQL catalog, in one transaction.

The counterpart of :mod:`tracker.storage.writer` for a shared server, where many processes on
many machines write at once with no global lock:

- A run is created by ``INSERT ... ON CONFLICT (id) DO NOTHING``, so a batch sent again (its
  commit was lost with the connection) never duplicates it.
- Each run's row is then locked (``FOR UPDATE``, in id order so two writers never deadlock) and
  ``runs.spool_seq`` says which of its events are already applied: only later ones are, so a
  replayed spool or a retried flush applies nothing twice. Writers of different runs never wait
  for each other.
- A name numbered per notebook (``train #12``) and an artifact's version count up under an
  advisory lock on the name or path, held to the commit. A batch takes all of its advisory locks
  first, in one sorted order, then its rows in id order: two writers never wait for each other
  in a circle (a deadlock PostgreSQL would break by failing one).

The values written are the file catalog's (same columns, same JSON text), so both back ends read
the same. A batch the server refuses raises; the caller keeps the events (spool, quarantine).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from tracker import _ids, events, models
from tracker.events import Spooled
from tracker.storage import event_fold

Batch = Sequence[Spooled]

# The columns a later event may change (an Update's attrs are filtered by this list: its keys
# come from the recorder, and only these become SQL text).
_SETTABLE = ("name", "project", "notebook", "notebook_name", "notebook_title", "notebook_hash",
             "labels", "notes", "status", "ended_at", "error", "environment_id")
_TIMES = ("started_at", "ended_at", "heartbeat_at")


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def _ts(seconds: float | None) -> dt.datetime | None:
    """Epoch seconds as an instant to the microsecond the file catalog stores in runs, params,
    metrics, cells and tags: DuckDB's ``to_timestamp`` rounds ``seconds * 1e6``, where
    ``fromtimestamp`` is 1 µs off it for about one value in eight."""
    if seconds is None:
        return None
    return _EPOCH + dt.timedelta(microseconds=round(seconds * 1e6))


def _file_ts(seconds: float | None) -> dt.datetime | None:
    """The instant of a file's record (artifacts, run_artifacts), which the file catalog's
    writer converts in Python."""
    return None if seconds is None else dt.datetime.fromtimestamp(seconds, dt.timezone.utc)


def apply(con: Any, batch: Batch) -> list[Spooled]:
    """Apply ``batch`` inside the caller's transaction; return the events of runs whose start
    was never stored (nothing to attach them to: the caller keeps them)."""
    by_run: dict[str, list[Spooled]] = defaultdict(list)
    for item in sorted(batch, key=lambda item: (item.run_id, item.seq)):
        by_run[item.run_id].append(item)
    _take_advisory_locks(con, batch)
    _create_runs(con, by_run)
    stored = _locked_rows(con, sorted(by_run))
    rows = event_fold.Rows()
    startless: list[Spooled] = []
    now = time.time()
    for run_id, numbered in by_run.items():
        row = stored.get(run_id)
        if row is None:
            startless += numbered
            continue
        fresh = [item for item in numbered if item.seq > (row["spool_seq"] or 0)]
        if fresh:
            event_fold.gather(rows, run_id, fresh, row, now)
    with con.pipeline():  # the inserts and updates go in one round trip
        _write(con, rows)
    return startless


def _create_runs(con: Any, by_run: dict[str, list[Spooled]]) -> None:
    """Insert the row of each run whose Start is in the batch, unless it exists; ``spool_seq``
    0, so the run's events (its Start too) are then applied as new."""
    for run_id, numbered in by_run.items():
        start = next((item.event for item in numbered if isinstance(item.event, events.Start)),
                     None)
        if start is None:
            continue
        columns = event_fold.start_columns(run_id, start.attrs)
        columns.update(started_at=_ts(columns["started_at"]), spool_seq=0)
        if columns.pop(models.NUMBERED_NAME, False) and isinstance(columns.get("name"), str):
            columns["name"] = _numbered(con, columns["name"])
        names = ", ".join(columns)
        marks = ", ".join(["%s"] * len(columns))
        con.execute(f"INSERT INTO runs ({names}) VALUES ({marks}) ON CONFLICT (id) DO NOTHING",
                    list(columns.values()))


def _take_advisory_locks(con: Any, batch: Batch) -> None:
    """Lock every name the batch may number and every path it links, in sorted order, to the
    end of the transaction."""
    keys = set()
    for item in batch:
        event = item.event
        if isinstance(event, events.Start | events.Update) and \
                event.attrs.get(models.NUMBERED_NAME) and isinstance(event.attrs.get("name"), str):
            keys.add(f"name:{event.attrs['name']}")
        elif isinstance(event, events.Artifact):
            keys.add(f"path:{event.uri}")
    for key in sorted(keys):
        con.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [key])


def _numbered(con: Any, base: str) -> str:
    """``base #N``, N one more than any run named so (or plain ``base``, from before names were
    numbered) has; the advisory lock on the name (:func:`_take_advisory_locks`) keeps two writers
    from drawing one number."""
    numbered, plain = con.execute(
        "SELECT coalesce(max(CASE WHEN substr(name, %s) ~ %s "
        "THEN CASE WHEN substr(name, %s)::numeric <= %s "
        "THEN substr(name, %s)::bigint END END), 0), count(*) FILTER (WHERE name = %s) "
        "FROM runs WHERE name = %s OR starts_with(name, %s)",
        [len(base) + 3, f"^{models.NAME_NUMBER}$", len(base) + 3, models.LARGEST_NAME_NUMBER,
         len(base) + 3, base, base, f"{base} #"]).fetchone()
    return f"{base} #{max(int(numbered), int(plain)) + 1}"


def _locked_rows(con: Any, run_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The stored state of these runs, their rows locked to the end of the transaction."""
    found = con.execute(
        "SELECT id, spool_seq, params, metrics FROM runs WHERE id = ANY(%s) ORDER BY id "
        "FOR UPDATE", [run_ids]).fetchall()
    return {row[0]: {"spool_seq": row[1], "params": row[2], "metrics": row[3]}
            for row in found}


def _write(con: Any, rows: event_fold.Rows) -> None:
    """Write the folded rows (times bound as timestamps); keys and values are bound, column
    names come from fixed lists."""
    cursor = con.cursor()
    if rows.params:
        cursor.executemany("INSERT INTO params (run_id, key, value, kind, logged_at) "
                           "VALUES (%s, %s, %s, %s, %s)", _timed(rows.params, 4))
        cursor.executemany("INSERT INTO param_keys VALUES (%s, %s) ON CONFLICT DO NOTHING",
                           sorted({(row[1], row[3]) for row in rows.params}))
    if rows.metrics:
        cursor.executemany("INSERT INTO metrics (run_id, key, value, step, logged_at) "
                           "VALUES (%s, %s, %s, %s, %s)", _timed(rows.metrics, 4))
        cursor.executemany("INSERT INTO metric_keys VALUES (%s) ON CONFLICT DO NOTHING",
                           sorted({(row[1],) for row in rows.metrics}))
    if rows.cells:
        cursor.executemany(f"INSERT INTO cells VALUES ({', '.join(['%s'] * 11)})",
                           _timed(rows.cells, 6))
    if rows.environments:
        # No conflict target: one asks for SELECT on the new row, and a role sees an
        # environment only once a run of its references it (tracker.storage.pg_access).
        cursor.executemany("INSERT INTO environments VALUES (%s, %s, %s) "
                           "ON CONFLICT DO NOTHING",
                           [(key, json.dumps(data, default=str), _ts(time.time()))
                            for key, data in sorted(rows.environments.items())])
    if rows.ends_after_hand:
        # Before the row's status changes: the stored one is the status set by hand. Only a
        # run whose status was set by hand gets a row (tracker.storage.writer does the same).
        cursor.executemany(
            "INSERT INTO status_changes (run_id, old_status, new_status, username, host, "
            "changed_at, forced) SELECT id, status, %s, username, host, %s, false FROM runs "
            "WHERE id = %s AND status <> %s "
            "AND EXISTS (SELECT 1 FROM status_changes s WHERE s.run_id = runs.id)",
            [(new, _ts(ts), run_id, new) for run_id, new, ts in rows.ends_after_hand])
    for run_id, state in rows.updates:
        if state.pop(models.NUMBERED_NAME, False) and isinstance(state.get("name"), str):
            state["name"] = _numbered(cursor, state["name"])
        _update_run(cursor, run_id, state)
    write_tags(cursor, {(run_id, key): (value, ts) for run_id, key, value, ts in rows.tags})
    for run_id, role, uri, facts, ts, via in rows.artifacts:
        _link_artifact(cursor, run_id, role, uri, facts or {}, ts, via)


def _timed(rows: list[tuple[Any, ...]], column: int) -> list[tuple[Any, ...]]:
    """``rows`` with the epoch seconds at ``column`` as timestamps."""
    return [(*row[:column], _ts(row[column]), *row[column + 1:]) for row in rows]


def _update_run(cursor: Any, run_id: str, state: dict[str, Any]) -> None:
    names = [name for name in state if name in (*_SETTABLE, "params", "metrics",
                                                 "heartbeat_at", "spool_seq", "duration")]
    clauses = [f"{name} = %s" for name in names]
    args = [_ts(state[name]) if name in _TIMES else state[name] for name in names]
    if state.get("ended_at") is not None and "duration" not in state:
        # in float8, as DuckDB computes it (numeric arithmetic ended a few ulps apart)
        clauses.append("duration = %s::float8 - extract(epoch FROM started_at)::float8")
        args.append(state["ended_at"])
    cursor.execute(f"UPDATE runs SET {', '.join(clauses)} WHERE id = %s", [*args, run_id])


def write_tags(cursor: Any, tags: dict[tuple[str, str], tuple[str | None, float]]) -> None:
    """A tag change replaces (or, with None, removes) the run's tag of that key, unless the
    stored change was made later (another process's flush may bring an older change). A
    removal stays as a row without a value, so that an older value never brings the tag back."""
    if not tags:
        return
    cursor.executemany(
        "INSERT INTO tags VALUES (%s, %s, %s, %s) ON CONFLICT (run_id, key) DO UPDATE SET "
        "value = excluded.value, set_at = excluded.set_at "
        "WHERE tags.set_at <= excluded.set_at + interval '1 microsecond'",
        [(run_id, key, value, _ts(ts)) for (run_id, key), (value, ts) in tags.items()])


def _link_artifact(cursor: Any, run_id: str, role: str, uri: str, facts: dict[str, Any],
                   ts: float, via: str | None) -> None:
    """Link a run to the version of ``uri`` it read or wrote (a new version when the content
    changed), under the advisory lock on the path (:func:`_take_advisory_locks`): versions count
    up one by one."""
    digest = facts.get("hash")
    # every project's versions count (pg_access.FILE_VERSION): this role may see none of them
    same_id, latest, _ = cursor.execute("SELECT * FROM file_version(%s, %s, NULL, NULL)",
                                        [uri, digest]).fetchone()
    artifact_id = same_id or _ids.new_run_id()
    if same_id is None:
        cursor.execute(
            "INSERT INTO artifacts VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [artifact_id, uri, latest + 1, uri, facts.get("size"),
             _file_ts(facts.get("mtime")), digest, run_id if role == "output" else None,
             facts.get("blob"), _file_ts(ts), facts.get("kept")])
    # linked first: the link is what lets this role see (and so update) a version it shares
    cursor.execute("INSERT INTO run_artifacts VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                   [run_id, artifact_id, role, _file_ts(ts), via])
    if same_id is not None and facts.get("kept") == "kept" and facts.get("blob"):
        cursor.execute("UPDATE artifacts SET blob = %s, kept = 'kept' WHERE id = %s "
                       "AND coalesce(kept, '') <> 'kept'", [facts["blob"], artifact_id])
