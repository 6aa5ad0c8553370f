"""Writing recorded events into the catalog, and recovering what dead processes left behind.

Events arrive from a process's recorder (``tracker.run``) or from a spool file whose process died.
Each carries a per-run sequence number; ``runs.spool_seq`` remembers the last one applied, so a
spool replayed after a crash between commit and truncation never applies an event twice.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tracker import models, values

if TYPE_CHECKING:
    from tracker.catalog import Catalog

Event = tuple[Any, ...]
Batch = Sequence[tuple[str, int, Event]]  # (run id, seq, event)

RECOVERY_INTERVAL = 30.0  # seconds between checks for dead runs by a reading process
STALE_HEARTBEAT = 600.0  # a run on another host with no sign of life for this long crashed
_BULK = 500  # rows above which an insert goes through a DataFrame rather than executemany


def _ts(seconds: float | None) -> dt.datetime | None:
    return None if seconds is None else dt.datetime.fromtimestamp(seconds, dt.timezone.utc)


def write_events(catalog: Catalog, batch: Batch, *, timeout: float | None = None,
                 cancel: threading.Event | None = None) -> None:
    """Apply ``batch`` in one write transaction (hashing and copying happen before it)."""
    prepared = [(run_id, seq, _prepare(catalog, event)) for run_id, seq, event in batch]
    with catalog.connect(write=True, timeout=timeout, cancel=cancel) as con:
        con.execute("BEGIN")
        apply(con, prepared)
        con.execute("COMMIT")
    if not catalog._last_recovery:
        maybe_recover(catalog)


def _prepare(catalog: Catalog, event: Event) -> Event:
    """Hash local files and store blobs outside the lock: the slow part of an event."""
    from tracker.capture import suppressed

    with suppressed():  # tracker reading a file is not the notebook reading it
        return _prepared(catalog, event)


def _prepared(catalog: Catalog, event: Event) -> Event:
    kind = event[0]
    if kind == "artifact" and event[4] is None and "://" not in event[3]:
        from tracker.hashing import file_facts

        facts = file_facts(event[3])
        return (*event[:4], {"size": facts.size, "mtime": facts.mtime, "hash": facts.hash},
                *event[5:])
    if kind == "stored":
        _, run_id, role, path, ts = event
        return ("artifact", run_id, role, path, _store_blob(catalog, path), ts)
    return event


def _store_blob(catalog: Catalog, path: str) -> dict[str, Any]:
    from tracker.hashing import file_facts

    facts = file_facts(path)
    if facts.hash is None:
        return {"size": facts.size, "mtime": facts.mtime, "hash": None}
    folder = catalog.blob_dir
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    blob = folder / facts.hash.replace(":", "-")
    if not blob.exists():
        shutil.copyfile(path, blob)
        os.chmod(blob, 0o600)
    return {"size": facts.size, "mtime": facts.mtime, "hash": facts.hash, "blob": blob.name}


def apply(con: Any, batch: Batch) -> None:
    """Apply events inside the caller's transaction."""
    by_run: dict[str, list[tuple[int, Event]]] = defaultdict(list)
    for run_id, seq, event in batch:
        by_run[run_id].append((seq, event))
    existing = _existing_runs(con, list(by_run))
    for run_id, events in by_run.items():
        applied = existing.get(run_id, {}).get("spool_seq") or 0
        fresh = [(seq, event) for seq, event in events if seq > applied]
        if fresh:
            _apply_run(con, run_id, fresh, existing.get(run_id))


def _existing_runs(con: Any, ids: list[str]) -> dict[str, dict[str, Any]]:
    rows = con.execute(
        "SELECT id, spool_seq, params, metrics FROM runs WHERE list_contains(?, id)",
        [ids]).fetchall()
    return {r[0]: {"spool_seq": r[1], "params": r[2], "metrics": r[3]} for r in rows}


def _apply_run(con: Any, run_id: str, events: list[tuple[int, Event]],
               row: dict[str, Any] | None) -> None:
    updates: dict[str, Any] = {}
    params: list[tuple[Any, ...]] = []
    metrics: list[tuple[Any, ...]] = []
    for _, event in events:
        kind = event[0]
        if kind == "start" and row is None:
            _insert_run(con, run_id, event[2])
            row = {"params": None, "metrics": None}
        elif kind == "param":
            _, _, key, value, param_kind, ts = event
            params.append((run_id, key, json.dumps(value), param_kind, _ts(ts)))
        elif kind == "metric":
            _, _, key, value, step, ts = event
            metrics.append((run_id, key, value, step, _ts(ts)))
        elif kind == "artifact":
            _link_artifact(con, run_id, *event[2:])
        elif kind == "cell":
            _insert_cell(con, run_id, event[2])
        elif kind == "env":
            _insert_environment(con, event[2], event[3])
            updates["environment_id"] = event[2]
        elif kind == "set":
            updates.update(event[2])
        elif kind == "end":
            _, _, status, ts, error = event
            updates.update(status=status, ended_at=_ts(ts), error=error, _ended=ts)
        updates["heartbeat_at"] = _ts(time.time())
    if row is None:  # events of a run whose start was never recorded: nothing to attach to
        return
    if params:
        _insert_params(con, params)
        updates["params"] = _merged(row["params"], {p[1]: json.loads(p[2]) for p in params})
    if metrics:
        _insert_rows(con, "metrics", metrics)
        latest = {m[1]: values.encode_float(m[2]) for m in metrics}
        updates["metrics"] = _merged(row["metrics"], latest)
    updates["spool_seq"] = events[-1][0]
    _update_run(con, run_id, updates)


def _merged(stored: str | None, new: dict[str, Any]) -> str:
    current = json.loads(stored) if stored else {}
    current.update(new)
    return json.dumps(current)


def _insert_run(con: Any, run_id: str, attrs: dict[str, Any]) -> None:
    columns = {
        "id": run_id, "status": models.RUNNING,
        "started_at": _ts(attrs.get("started_at")) or _ts(time.time()),
        "heartbeat_at": _ts(time.time()), "params": "{}", "metrics": "{}",
    }
    for key in ("name", "project", "host", "pid", "process_start", "username", "labels",
                "notes", "parent_id", "notebook", "notebook_name", "notebook_title",
                "notebook_hash"):
        if attrs.get(key) is not None:
            columns[key] = attrs[key]
    names = ", ".join(columns)
    marks = ", ".join("?" for _ in columns)
    con.execute(f"INSERT INTO runs ({names}) VALUES ({marks})", list(columns.values()))


_SETTABLE = {"name", "project", "notebook", "notebook_name", "notebook_title", "notebook_hash",
             "labels", "notes", "status", "ended_at", "error", "environment_id", "heartbeat_at",
             "params", "metrics", "spool_seq"}


def _update_run(con: Any, run_id: str, updates: dict[str, Any]) -> None:
    ended = updates.pop("_ended", None)
    sets = {k: v for k, v in updates.items() if k in _SETTABLE}
    clauses = [f"{column} = ?" for column in sets]
    args = list(sets.values())
    if ended is not None:
        clauses.append("duration = ? - epoch(started_at)")
        args.append(ended)
    con.execute(f"UPDATE runs SET {', '.join(clauses)} WHERE id = ?", [*args, run_id])


def _insert_params(con: Any, rows: list[tuple[Any, ...]]) -> None:
    _insert_rows(con, "params", rows)
    kinds = sorted({(row[1], row[3]) for row in rows})
    known = set(con.execute(
        "SELECT key, kind FROM param_keys WHERE list_contains(?, key)",
        [[key for key, _ in kinds]]).fetchall())
    missing = [pair for pair in kinds if pair not in known]
    if missing:
        con.executemany("INSERT INTO param_keys VALUES (?, ?)", missing)


def _insert_rows(con: Any, table: str, rows: list[tuple[Any, ...]]) -> None:
    marks = ", ".join("?" for _ in rows[0])
    if len(rows) < _BULK:
        con.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)
        return
    import pandas as pd

    # executemany binds row by row; a DataFrame scan inserts 100k metric points in ~0.1 s.
    frame = pd.DataFrame(rows, columns=[f"c{i}" for i in range(len(rows[0]))])
    if table == "metrics":
        frame["c3"] = frame["c3"].astype("Int64")
    con.register("_tracker_rows", frame)
    try:
        con.execute(f"INSERT INTO {table} SELECT * FROM _tracker_rows")
    finally:
        con.unregister("_tracker_rows")


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


def _insert_cell(con: Any, run_id: str, cell: dict[str, Any]) -> None:
    con.execute(
        "INSERT INTO cells VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [run_id, cell["seq"], cell.get("execution_count"), cell.get("cell_id"),
         cell.get("source_hash"), cell.get("source"), _ts(cell.get("started_at")),
         cell.get("duration"), cell.get("success"), cell.get("error_type"),
         cell.get("error_message")])


def _insert_environment(con: Any, env_id: str, data: dict[str, Any]) -> None:
    if con.execute("SELECT 1 FROM environments WHERE id = ?", [env_id]).fetchone():
        return
    con.execute("INSERT INTO environments VALUES (?, ?, ?)",
                [env_id, json.dumps(data, default=str), _ts(time.time())])


# -- recovery ------------------------------------------------------------------------------


def owner_alive(host: str | None, pid: int | None, started: float | None) -> bool | None:
    """Whether the process that owns a run lives; None when it is on another host."""
    if host != socket.gethostname():
        return None
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    from tracker.run import process_start

    now = process_start(pid)
    return started is None or now is None or abs(now - started) < 1e-6


def maybe_recover(catalog: Catalog, *, force: bool = False) -> None:
    """Ingest orphaned spools and mark runs whose process died as crashed.

    Cheap when there is nothing to do (a directory listing and one read); at most every
    RECOVERY_INTERVAL seconds per catalog object unless ``force``.
    """
    now = time.monotonic()
    if not force and catalog._last_recovery and now - catalog._last_recovery < RECOVERY_INTERVAL:
        return
    catalog._last_recovery = now
    orphans = _orphaned_spools(catalog)
    with catalog.connect(write=False) as con:
        running = con.execute(
            "SELECT id, host, pid, process_start, epoch(heartbeat_at) FROM runs "
            "WHERE status = 'running'").fetchall()
    own = _own_run_ids(catalog)
    dead = [r[0] for r in running if r[0] not in own and _is_dead(*r[1:])]
    if orphans or dead:
        _recover(catalog, orphans, dead)


def _own_run_ids(catalog: Catalog) -> set[str]:
    recorder = catalog._recorder
    return {run.id for run in recorder.stack} if recorder is not None else set()


def _is_dead(host: str | None, pid: int | None, started: float | None,
             heartbeat: float | None) -> bool:
    alive = owner_alive(host, pid, started)
    if alive is not None:
        return not alive
    return heartbeat is not None and time.time() - heartbeat > STALE_HEARTBEAT


def _orphaned_spools(catalog: Catalog) -> list[Path]:
    folder = catalog.spool_dir
    if not folder.exists():
        return []
    own = _own_run_ids(catalog)
    recorder = catalog._recorder
    mine = set(recorder._spools) if recorder is not None else set()
    orphans = []
    for path in folder.glob("*.jsonl"):
        if path.stem in own or path.stem in mine:
            continue
        owner = _read_owner(path)
        if owner is None or owner_alive(owner.get("host"), owner.get("pid"),
                                        owner.get("process_start")) is False:
            orphans.append(path)
    return orphans


def _read_owner(path: Path) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as f:
            return json.loads(f.readline()).get("owner")
    except (OSError, ValueError, AttributeError):
        return None


def _read_spool(path: Path) -> list[tuple[str, int, Event]]:
    """The complete lines of a spool; a line cut short by a kill is dropped."""
    batch = []
    with open(path, encoding="utf-8") as f:
        f.readline()
        for line in f:
            try:
                seq, *event = json.loads(line)
            except ValueError:
                break
            batch.append((event[1], seq, tuple(event)))
    return batch


def _recover(catalog: Catalog, orphans: Iterable[Path], dead: list[str]) -> None:
    spooled = []
    for path in orphans:
        spooled.extend(_read_spool(path))
    prepared = [(run_id, seq, _prepare(catalog, event)) for run_id, seq, event in spooled]
    with catalog.connect(write=True) as con:
        con.execute("BEGIN")
        apply(con, prepared)
        crashed = sorted(set(dead) | {run_id for run_id, _, _ in spooled})
        con.execute(
            "UPDATE runs SET status = 'crashed', ended_at = coalesce(heartbeat_at, started_at), "
            "duration = epoch(coalesce(heartbeat_at, started_at)) - epoch(started_at) "
            "WHERE status = 'running' AND list_contains(?, id)", [crashed])
        con.execute("COMMIT")
    for path in orphans:
        path.unlink(missing_ok=True)
