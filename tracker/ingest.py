"""Writing recorded events into the catalog, and recovering what dead processes left behind.

Events arrive from a process's recorder (``tracker.run``) or from a spool file whose process died.
Each carries a per-run sequence number; ``runs.spool_seq`` remembers the last one applied, so a
spool replayed after a crash between commit and truncation never applies an event twice.

Nothing is dropped: an event the catalog refuses (a data error) is set aside in quarantine
(``tracker.spools``) with its error, and everything else is applied.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import socket
import threading
import time
import warnings
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tracker import models, schema, spools, values
from tracker.errors import CatalogError, TrackerWarning

if TYPE_CHECKING:
    from tracker.catalog import Catalog

Event = tuple[Any, ...]
Batch = Sequence[tuple[str, int, Event]]  # (run id, seq, event)
Reject = spools.Reject
Keep = Callable[[list[Reject]], list[Reject]]  # quarantines rejects, returns them

RECOVERY_INTERVAL = 30.0  # seconds between checks for dead runs by a reading process
STALE_HEARTBEAT = spools.STALE_HEARTBEAT
_BULK = 500  # rows above which an insert goes through a DataFrame rather than executemany


def _ts(seconds: float | None) -> dt.datetime | None:
    return None if seconds is None else dt.datetime.fromtimestamp(seconds, dt.timezone.utc)


def write_events(catalog: Catalog, batch: Batch, *, timeout: float | None = None,
                 cancel: threading.Event | None = None) -> int:
    """Apply ``batch`` in one write transaction (hashing and copying happen before it); return
    how many events were quarantined rather than applied.

    A process's first write also recovers what dead processes left, in the same catalog open:
    one open where a fresh kernel's first run used to need two.
    """
    recovering = not catalog._last_recovery
    if recovering:
        catalog._last_recovery = time.monotonic()
    orphans = _orphaned_spools(catalog) if recovering else []
    return _commit(catalog, batch, orphans, find_dead=recovering, timeout=timeout,
                   cancel=cancel)


def _commit(catalog: Catalog, batch: Batch, orphans: list[Path], *, find_dead: bool,
            dead: Sequence[str] = (), timeout: float | None = None,
            cancel: threading.Event | None = None) -> int:
    """Apply ``batch`` and the orphaned spools, mark dead runs crashed, then retire the spools
    (under the lock, so that two recovering processes never quarantine a line twice)."""
    spooled, unreadable = spools.read(orphans)
    prepared, rejected = _prepared_batch(catalog, [*batch, *spooled])
    with catalog.connect(write=True, timeout=timeout, cancel=cancel) as con:
        # Each refused event is in quarantine, on disk, before a commit moves runs.spool_seq
        # past it: else a failed quarantine write, or a kill, would make a replay skip it.
        keep = _keeper(catalog)
        keep(rejected)
        rejected += _apply_all(con, prepared, keep)
        _mark_crashed(con, _dead_runs(con, catalog) if find_dead else dead, spooled)
        spools.retire(catalog, unreadable)
    return len(rejected) + sum(len(lines) for lines in unreadable.values())


def _keeper(catalog: Catalog) -> Keep:
    """A function that quarantines rejects (durably) and returns them."""
    name = f"{socket.gethostname()}-{os.getpid()}"

    def keep(rejects: list[Reject]) -> list[Reject]:
        if rejects:
            spools.quarantine(catalog, name, rejects)
        return rejects

    return keep


def _apply_all(con: Any, batch: Batch, keep: Keep) -> list[Reject]:
    """Apply ``batch`` in one transaction; if the catalog refuses some of its data, apply run by
    run; return the events refused, each passed to ``keep`` as soon as it is known (a lock or
    I/O error is raised, not judged)."""
    try:
        startless = _transaction(con, batch)
    except Exception as exc:
        if not _data_error(exc):
            raise
    else:
        return keep(startless)
    by_run: dict[str, list[tuple[str, int, Event]]] = defaultdict(list)
    for item in batch:
        by_run[item[0]].append(item)
    # A run whose start is refused: its other events come back as startless, so kept too.
    return [reject for events in by_run.values() for reject in _bisected(con, events, keep)]


def _bisected(con: Any, events: list[tuple[str, int, Event]],
              keep: Keep) -> list[Reject]:
    """Apply ``events`` in order, halving around the ones the catalog refuses; a refused event
    goes to ``keep`` before the next half commits (and moves runs.spool_seq past it)."""
    try:
        startless = _transaction(con, events)
    except Exception as exc:
        if not _data_error(exc):
            raise
        if len(events) == 1:
            run_id, seq, event = events[0]
            return keep([(f"{type(exc).__name__}: {exc}", run_id, seq, event)])
    else:
        return keep(startless)
    half = len(events) // 2
    return _bisected(con, events[:half], keep) + _bisected(con, events[half:], keep)


def _transaction(con: Any, batch: Batch) -> list[Reject]:
    """Apply ``batch`` in a transaction of its own; return the events no run could take."""
    con.execute("BEGIN")
    try:
        startless = apply(con, batch)
        con.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(Exception):  # a failed COMMIT has already rolled back
            con.execute("ROLLBACK")
        raise
    return [("no start event of this run was ever stored", run_id, seq, event)
            for run_id, seq, event in startless]


def _data_error(exc: BaseException) -> bool:
    """An error about the events themselves (a value the catalog cannot hold, a malformed
    event), as opposed to the catalog being locked, full or unreadable."""
    import duckdb

    if isinstance(exc, (duckdb.DataError, duckdb.IntegrityError, duckdb.InvalidInputException)):
        return True
    return isinstance(exc, (ValueError, TypeError, LookupError, AttributeError)) and not \
        isinstance(exc, (duckdb.Error, OSError))


def _prepared_batch(catalog: Catalog, batch: Batch) -> tuple[list[tuple[str, int, Event]],
                                                             list[Reject]]:
    """Each event prepared (:func:`_prepare`), and those too malformed to prepare; an
    OSError (a file that cannot be read or copied now) is raised, to be retried."""
    prepared, rejected = [], []
    for run_id, seq, event in batch:
        try:
            prepared.append((run_id, seq, _prepare(catalog, event)))
        except OSError:
            raise
        except Exception as exc:
            rejected.append((f"{type(exc).__name__}: {exc}", run_id, seq, event))
    return prepared, rejected


def _prepare(catalog: Catalog, event: Event) -> Event:
    """Hash local files and store blobs outside the lock: the slow part of an event."""
    if event[0] not in ("artifact", "stored"):
        return event
    from tracker.capture import suppressed

    with suppressed():  # tracker reading a file is not the notebook reading it
        return _prepared(catalog, event)


def _prepared(catalog: Catalog, event: Event) -> Event:
    kind = event[0]
    if kind == "artifact" and event[4] is None and "://" not in event[3]:
        from tracker.hashing import file_facts

        return (*event[:4], _facts(file_facts(event[3])), *event[5:])
    if kind == "stored":
        _, run_id, role, path, ts = event
        return ("artifact", run_id, role, path, _store_blob(catalog, path), ts)
    return event


def _store_blob(catalog: Catalog, path: str) -> dict[str, Any]:
    from tracker import redaction
    from tracker.hashing import file_facts, hash_bytes

    facts = file_facts(path)
    if facts.hash is None:
        return _facts(facts)
    # What is stored is the notebook with its secrets replaced, and the hash is of that.
    content = redaction.for_catalog(catalog).notebook(Path(path).read_bytes())
    digest = hash_bytes(content)
    folder = catalog.blob_dir
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    blob = folder / digest.replace(":", "-")
    if not blob.exists():
        # Written under another name and renamed: a process killed mid-copy must not leave a
        # truncated file under the hash's name, which every later run would trust. (Purge
        # removes such leftovers, as it does any unreferenced file over an hour old.)
        partial = folder / f".{blob.name}.{os.getpid()}-{threading.get_ident()}.part"
        _write_private(partial, content)
        os.replace(partial, blob)
    return {"size": len(content), "mtime": facts.mtime, "hash": digest, "blob": blob.name}


def _write_private(path: Path, content: bytes) -> None:
    """Write a file only its owner may read (mode 0600 from the start)."""
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
        f.write(content)


def _facts(facts: Any) -> dict[str, Any]:
    """What an artifact event carries about a file (a tracker.hashing.FileFacts)."""
    return {"size": facts.size, "mtime": facts.mtime, "hash": facts.hash}


class _Rows:
    """Rows gathered from a whole batch, so each table gets one insert, not one per event."""

    def __init__(self) -> None:
        self.new_runs: list[dict[str, Any]] = []
        self.updates: list[tuple[str, dict[str, Any]]] = []
        self.params: list[tuple[Any, ...]] = []
        self.metrics: list[tuple[Any, ...]] = []
        self.cells: list[tuple[Any, ...]] = []
        self.environments: dict[str, Any] = {}
        self.artifacts: list[tuple[Any, ...]] = []


def apply(con: Any, batch: Batch) -> list[tuple[str, int, Event]]:
    """Apply events inside the caller's transaction; return those of runs whose start was
    never stored (nothing to attach them to: the caller keeps them)."""
    by_run: dict[str, list[tuple[int, Event]]] = defaultdict(list)
    for run_id, seq, event in batch:
        by_run[run_id].append((seq, event))
    existing = _existing_runs(con, list(by_run))
    rows = _Rows()
    now = time.time()
    startless = []
    for run_id, events in by_run.items():
        row = existing.get(run_id)
        applied = (row or {}).get("spool_seq") or 0
        fresh = [(seq, event) for seq, event in events if seq > applied]
        if fresh and not _gather(rows, run_id, fresh, row, now):
            startless += [(run_id, seq, event) for seq, event in fresh]
    _write(con, rows)
    return startless


def _existing_runs(con: Any, ids: list[str]) -> dict[str, dict[str, Any]]:
    rows = con.execute(
        "SELECT id, spool_seq, params, metrics FROM runs WHERE list_contains(?, id)",
        [ids]).fetchall()
    return {r[0]: {"spool_seq": r[1], "params": r[2], "metrics": r[3]} for r in rows}


def _gather(rows: _Rows, run_id: str, events: list[tuple[int, Event]],
            row: dict[str, Any] | None, now: float) -> bool:
    """Fold one run's events into column values (a whole new row, or updates) and rows;
    False, and nothing gathered, for events of a run whose start was never recorded."""
    start = len(rows.params), len(rows.metrics), len(rows.cells), len(rows.artifacts)
    state: dict[str, Any] = {}
    params: dict[str, Any] = {}
    metrics: dict[str, Any] = {}
    for _, event in events:
        kind = event[0]
        if kind == "start" and row is None:
            state.update(_start_columns(run_id, event[2]))
        elif kind == "param":
            _, _, key, value, param_kind, ts = event
            rows.params.append((run_id, key, json.dumps(value), param_kind, ts))
            params[key] = value
        elif kind == "metric":
            _, _, key, value, step, ts = event
            rows.metrics.append((run_id, key, value, step, ts))
            metrics[key] = values.encode_float(value)
        elif kind == "artifact":
            rows.artifacts.append((run_id, *event[2:]))
        elif kind == "cell":
            rows.cells.append(_cell_row(run_id, event[2]))
        elif kind == "env":
            rows.environments[event[2]] = event[3]
            state["environment_id"] = event[2]
        elif kind == "set":
            state.update(event[2])
        elif kind == "end":
            _, _, status, ts, error = event
            state.update(status=status, ended_at=ts, error=error)
    if row is None and "id" not in state:  # nothing to attach them to
        _truncate(rows, *start)
        return False
    if params:
        state["params"] = _merged((row or {}).get("params"), params)
    if metrics:
        state["metrics"] = _merged((row or {}).get("metrics"), metrics)
    state.update(heartbeat_at=now, spool_seq=events[-1][0])
    if row is None:
        if state.get("ended_at") is not None:
            state["duration"] = state["ended_at"] - state["started_at"]
        rows.new_runs.append(state)
    else:
        rows.updates.append((run_id, state))
    return True


def _truncate(rows: _Rows, params: int, metrics: int, cells: int, artifacts: int) -> None:
    """Take back the rows a run's events added (the run turned out to have no row)."""
    del rows.params[params:], rows.metrics[metrics:], rows.cells[cells:]
    del rows.artifacts[artifacts:]


def _start_columns(run_id: str, attrs: dict[str, Any]) -> dict[str, Any]:
    columns = {"id": run_id, "status": models.RUNNING, "params": "{}", "metrics": "{}",
               "started_at": attrs.get("started_at") or time.time()}
    columns.update({k: v for k, v in attrs.items() if k in _START_KEYS and v is not None})
    return columns


_START_KEYS = {"name", "project", "host", "pid", "process_start", "username", "labels", "notes",
               "parent_id", "notebook", "notebook_name", "notebook_title", "notebook_hash"}


def _write(con: Any, rows: _Rows) -> None:
    """One statement per table for the whole batch. A run's value columns are left to readers
    (``tracker.columns``): its row is written with ``values_fresh`` NULL."""
    if rows.params:
        _insert(con, "params", rows.params)
        _insert_missing(con, "param_keys", sorted({(row[1], row[3]) for row in rows.params}))
    if rows.metrics:
        _insert(con, "metrics", rows.metrics)
        _insert_missing(con, "metric_keys", sorted({(row[1],) for row in rows.metrics}))
    if rows.new_runs:
        _insert_runs(con, rows.new_runs)
    for run_id, updates in rows.updates:
        _update_run(con, run_id, updates)
    if rows.cells:
        _insert(con, "cells", rows.cells)
    for env_id, data in rows.environments.items():
        _insert_environment(con, env_id, data)
    for artifact in rows.artifacts:
        _link_artifact(con, *artifact)


def _merged(stored: str | None, new: dict[str, Any]) -> str:
    current = json.loads(stored) if stored else {}
    current.update(new)
    return json.dumps(current)


_RUN_NAMES = [name for name, _ in schema.RUN_COLUMNS]
_RUN_KINDS = dict(schema.RUN_COLUMNS)
# The Python form each column type is bound as: epoch seconds, labels and JSON as text.
_BOUND = {"TIMESTAMPTZ": "DOUBLE", "JSON": "VARCHAR", "VARCHAR[]": "VARCHAR"}


def _typed(kind: str, source: str) -> str:
    """SQL turning ``source``, a column's Python form (epoch seconds, a list of labels as JSON
    text), into the column's type ``kind``."""
    base = _base(kind)
    if base == "TIMESTAMPTZ":
        return f"to_timestamp(CAST({source} AS DOUBLE))"
    if base == "VARCHAR[]":
        return f"CAST(CAST({source} AS JSON) AS VARCHAR[])"
    return f"CAST({source} AS {_bound(kind)})"


def _insert_runs(con: Any, runs: list[dict[str, Any]]) -> None:
    """Insert new runs (labels as JSON text; ``values_fresh`` NULL, as any column not given)."""
    _insert(con, "runs", [tuple(json.dumps(run[c]) if c == "labels" and c in run else run.get(c)
                                for c in _RUN_NAMES) for run in runs])


_SETTABLE = {"name", "project", "notebook", "notebook_name", "notebook_title", "notebook_hash",
             "labels", "notes", "status", "ended_at", "error", "environment_id", "heartbeat_at",
             "params", "metrics", "spool_seq"}


def _update_run(con: Any, run_id: str, updates: dict[str, Any]) -> None:
    sets = {k: v for k, v in updates.items() if k in _SETTABLE}
    clauses = [f"{column} = {_typed(_RUN_KINDS[column], '?')}" for column in sets]
    args = [json.dumps(v) if k == "labels" else v for k, v in sets.items()]
    if updates.get("ended_at") is not None:
        clauses.append("duration = ? - epoch(started_at)")
        args.append(updates["ended_at"])
    if "params" in sets or "metrics" in sets:
        clauses.append("values_fresh = NULL")  # the value columns now lag: see tracker.columns
    con.execute(f"UPDATE runs SET {', '.join(clauses)} WHERE id = ?", [*args, run_id])


def _insert_missing(con: Any, table: str, keys: list[tuple[str, ...]]) -> None:
    """Add the (key[, kind]) rows ``table`` does not have yet, in one statement."""
    names = ", ".join(schema.column_names(table))
    lists = ", ".join("unnest(?::VARCHAR[])" for _ in keys[0])
    con.execute(f"INSERT INTO {table} SELECT {lists} EXCEPT SELECT {names} FROM {table}",
                [list(column) for column in zip(*keys, strict=True)])


def _insert(con: Any, table: str, rows: list[tuple[Any, ...]]) -> None:
    """Insert ``rows`` (tuples in the table's column order, times as epoch seconds; for runs,
    of :data:`_RUN_NAMES`) in one statement.

    One row (a run) is bound as values: 1.7 ms against 2.4 ms as lists. Few rows are bound as
    one list per column and unnested: executemany ran one INSERT per row, 9 ms for a run's 20
    params against 0.6 ms. Many are scanned from a DataFrame: 100k metric points in ~0.1 s,
    against ~0.35 s as lists.
    """
    names, kinds = zip(*(schema.RUN_COLUMNS if table == "runs" else schema.typed_columns(table)))
    insert = f"INSERT INTO {table} ({', '.join(names)}) SELECT "
    if len(rows) == 1:
        con.execute(insert + ", ".join(_typed(kind, "?") for kind in kinds), list(rows[0]))
        return
    if len(rows) < _BULK:
        con.execute(insert + ", ".join(f"{_typed(kind, f'unnest(${name}::{_bound(kind)}[])')}"
                                       for name, kind in zip(names, kinds)),
                    {name: list(column) for name, column in
                     zip(names, zip(*rows, strict=True), strict=True)})
        return
    import pandas as pd

    frame = pd.DataFrame({name: pd.Series([row[i] for row in rows], dtype=object)
                          for i, name in enumerate(names)})
    con.register("_tracker_rows", frame)
    try:
        con.execute(insert + ", ".join(_typed(kind, f"_tracker_rows.{name}")
                                       for name, kind in zip(names, kinds)) + " FROM _tracker_rows")
    finally:
        con.unregister("_tracker_rows")


def _base(kind: str) -> str:
    return kind.replace(" NOT NULL", "")


def _bound(kind: str) -> str:
    return _BOUND.get(_base(kind), _base(kind))


def _link_artifact(con: Any, run_id: str, role: str, uri: str, facts: dict[str, Any] | None,
                   ts: float) -> None:
    facts = facts or {}
    digest = facts.get("hash")
    latest = con.execute(
        "SELECT id, version, hash FROM artifacts WHERE key = ? ORDER BY version DESC LIMIT 1",
        [uri]).fetchone()
    if latest is not None and digest is not None and latest[2] == digest:
        artifact_id = latest[0]
    else:
        from tracker._ids import new_run_id

        artifact_id = new_run_id()
        producer = run_id if role == "output" else None
        con.execute(
            "INSERT INTO artifacts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [artifact_id, uri, (latest[1] + 1) if latest else 1, uri, facts.get("size"),
             _ts(facts.get("mtime")), digest, producer, facts.get("blob"), _ts(ts)])
    linked = con.execute(
        "SELECT 1 FROM run_artifacts WHERE run_id = ? AND artifact_id = ? AND role = ?",
        [run_id, artifact_id, role]).fetchone()
    if linked is None:
        con.execute("INSERT INTO run_artifacts VALUES (?, ?, ?, ?)",
                    [run_id, artifact_id, role, _ts(ts)])


def _cell_row(run_id: str, cell: dict[str, Any]) -> tuple[Any, ...]:
    return (run_id, cell["seq"], cell.get("execution_count"), cell.get("cell_id"),
            cell.get("source_hash"), cell.get("source"), cell.get("started_at"),
            cell.get("duration"), cell.get("success"), cell.get("error_type"),
            cell.get("error_message"))


def _insert_environment(con: Any, env_id: str, data: dict[str, Any]) -> None:
    if con.execute("SELECT 1 FROM environments WHERE id = ?", [env_id]).fetchone():
        return
    con.execute("INSERT INTO environments VALUES (?, ?, ?)",
                [env_id, json.dumps(data, default=str), _ts(time.time())])


# -- recovery ------------------------------------------------------------------------------


def maybe_recover(catalog: Catalog, *, force: bool = False) -> None:
    """Ingest orphaned spools and mark runs whose process died as crashed, without ever making
    the read that calls this wait or fail.

    Orphaned spools are looked for on every call (a directory listing), so a long-lived reader
    sees the runs of processes that exited at once; dead runs at most every RECOVERY_INTERVAL
    seconds per catalog object. The write lock is only tried, not waited for (unless
    ``force``): when another process holds the catalog, a later read recovers.
    """
    orphans = _orphaned_spools(catalog)
    now = time.monotonic()
    due = force or not catalog._last_recovery or now - catalog._last_recovery >= RECOVERY_INTERVAL
    if not orphans and not due:
        return
    dead: list[str] = []
    if due:
        catalog._last_recovery = now
        with catalog.connect(write=False) as con:
            dead = _dead_runs(con, catalog)
    if not orphans and not dead:
        return
    try:
        kept = _commit(catalog, [], orphans, find_dead=False, dead=dead,
                       timeout=None if force else 0.0)
    except Exception as exc:  # the read goes on; the spools stay for a later one
        if dead:
            catalog._last_recovery = 0.0  # look for them again at the next read
        if not isinstance(exc, OSError | CatalogError):  # locked or full: not news
            warnings.warn(f"could not recover what exited processes left in "
                          f"{catalog.spool_dir} ({exc!r}); it stays there for a later read",
                          TrackerWarning, stacklevel=3)
        return
    if kept:
        warnings.warn(f"recovery kept {kept} event(s) the catalog could not store in "
                      f"{spools.quarantine_dir(catalog)}", TrackerWarning, stacklevel=3)


def _dead_runs(con: Any, catalog: Catalog) -> list[str]:
    """Runs still marked running whose process is gone (not this process's own runs)."""
    running = con.execute("SELECT id, host, pid, process_start, epoch(heartbeat_at) FROM runs "
                          "WHERE status = 'running'").fetchall()
    own = _own_run_ids(catalog)
    return [r[0] for r in running if r[0] not in own and _is_dead(*r[1:])]


def _recorders_of(catalog: Catalog) -> list[Any]:
    """This process's recorders writing to the catalog's file (any Catalog object)."""
    from tracker.run import _recorders

    return [r for r in list(_recorders) if r.catalog.path == catalog.path]


def _own_run_ids(catalog: Catalog) -> set[str]:
    return {run.id for recorder in _recorders_of(catalog) for run in recorder.stack}


def _orphaned_spools(catalog: Catalog) -> list[Path]:
    catalog.vet()  # the spool folder is one of the catalog's files: never list a planted one
    return spools.orphaned(catalog.spool_dir, {r.spool_path for r in _recorders_of(catalog)})


def _is_dead(host: str | None, pid: int | None, started: float | None,
             heartbeat: float | None) -> bool:
    alive = spools.owner_alive(host, pid, started)
    if alive is not None:
        return not alive
    return heartbeat is not None and time.time() - heartbeat > STALE_HEARTBEAT


def _mark_crashed(con: Any, dead: Sequence[str], spooled: Batch) -> None:
    """Dead runs, and runs of dead processes' spools, that never ended are crashed."""
    crashed = sorted(set(dead) | {run_id for run_id, _, _ in spooled})
    if not crashed:
        return
    con.execute(
        "UPDATE runs SET status = 'crashed', ended_at = coalesce(heartbeat_at, started_at), "
        "duration = epoch(coalesce(heartbeat_at, started_at)) - epoch(started_at) "
        "WHERE status = 'running' AND list_contains(?, id)", [crashed])
