"""Writing a batch of recorded events into the catalog: one statement per table.

Events arrive from a process's recorder (``tracker.recorder``) or from a spool file whose process
died (:mod:`tracker.storage.recovery`), already completed (files hashed, blobs stored) by
``tracker.delivery``.
Each carries a per-run sequence number; ``runs.spool_seq`` remembers the last one applied, so a
spool replayed after a crash between commit and truncation never applies an event twice.

Tables are named as ``catalog.<table>``, the name :mod:`tracker.storage.instances` attaches
the file under, so a write need not make the file its connection's default database (two
statements fewer per flush: ``Store.connect(qualified=True)``).

Nothing is dropped: an event the catalog refuses (a data error) is set aside in quarantine
(:mod:`tracker.storage.spools`) with its error, and everything else is applied.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import os
import re
import socket
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from tracker import events, models
from tracker.events import Spooled
from tracker.storage import event_fold, schema, spools
from tracker.storage.known_keys import KnownKeys

Batch = Sequence[Spooled]
Reject = spools.Reject
Keep = Callable[[list[Reject]], list[Reject]]  # quarantines rejects, returns them
#: applies a batch in a transaction of its own, returning the events no run could take
Transaction = Callable[[Any, Batch], list[Reject]]

_BULK = 500  # rows above which an insert goes through a DataFrame rather than executemany


def _ts(seconds: float | None) -> dt.datetime | None:
    return None if seconds is None else dt.datetime.fromtimestamp(seconds, dt.timezone.utc)


def keeper(store: spools.Spooling) -> Keep:
    """A function that quarantines rejects (durably) and returns them."""
    name = f"{socket.gethostname()}-{os.getpid()}"

    def keep(rejects: list[Reject]) -> list[Reject]:
        if rejects:
            spools.quarantine(store, name, rejects)
        return rejects

    return keep


def apply_all(con: Any, batch: Batch, keep: Keep, keys: KnownKeys | None = None, *,
              transaction: Transaction | None = None,
              data_error: Callable[[BaseException], bool] | None = None) -> list[Reject]:
    """Apply ``batch`` in one transaction; if the catalog refuses some of its data, apply run by
    run; return the events refused, each passed to ``keep`` as soon as it is known (a lock or
    I/O error is raised, not judged). ``keys``: the keys this process knows the file holds;
    ``transaction`` and ``data_error`` are the back end's (DuckDB's by default:
    :func:`_transaction`, :func:`_data_error`)."""
    if transaction is None:
        transaction = functools.partial(_transaction, keys=keys or KnownKeys())
    data_error = data_error or _data_error
    try:
        startless = transaction(con, batch)
    except Exception as exc:
        if not data_error(exc):
            raise
    else:
        return keep(startless)
    by_run: dict[str, list[Spooled]] = defaultdict(list)
    for item in batch:
        by_run[item.run_id].append(item)
    # A run whose start is refused: its other events come back as startless, so kept too.
    return [reject for events in by_run.values()
            for reject in _bisected(con, events, keep, transaction, data_error)]


def _bisected(con: Any, numbered: list[Spooled], keep: Keep, transaction: Transaction,
              data_error: Callable[[BaseException], bool]) -> list[Reject]:
    """Apply ``events`` in order, halving around the ones the catalog refuses; a refused event
    goes to ``keep`` before the next half commits (and moves runs.spool_seq past it)."""
    try:
        startless = transaction(con, numbered)
    except Exception as exc:
        if not data_error(exc):
            raise
        if len(numbered) == 1:
            run_id, seq, event = numbered[0]
            return keep([Reject(f"{type(exc).__name__}: {exc}", run_id, seq, event)])
    else:
        return keep(startless)
    half = len(numbered) // 2
    return _bisected(con, numbered[:half], keep, transaction, data_error) + \
        _bisected(con, numbered[half:], keep, transaction, data_error)


def _transaction(con: Any, batch: Batch, keys: KnownKeys) -> list[Reject]:
    """Apply ``batch`` in a transaction of its own; return the events no run could take."""
    keys.begin()
    con.execute("BEGIN")
    try:
        startless = apply(con, batch, keys=keys)
        con.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(Exception):  # a failed COMMIT has already rolled back
            con.execute("ROLLBACK")
        raise
    keys.committed()
    return startless_rejects(startless)


def startless_rejects(startless: Batch) -> list[Reject]:
    """Events of runs whose start was never stored, as rejects to keep in quarantine."""
    return [Reject("no start event of this run was ever stored", run_id, seq, event)
            for run_id, seq, event in startless]


def apply_together(con: Any, batch: Batch, others: Batch, keys: KnownKeys | None = None,
                   ) -> tuple[list[Reject], dict[str, int]] | None:
    """Apply ``batch`` and ``others`` (events other, live processes spooled and are waiting to
    write: group commit, docs/design.md §6) in one transaction; return ``batch``'s events no
    run could take, and each of the others' runs with its last sequence number now committed.
    None, with nothing applied, when anything in it fails: their owners then write (and
    quarantine) their own events. Any error, not only a data error: one bad foreign spool must
    never block this writer's own batch (alone, :func:`apply_all` raises a genuine I/O error)."""
    foreign = {item.run_id for item in others}
    keys = keys or KnownKeys()
    keys.begin()
    con.execute("BEGIN")
    try:
        startless = apply(con, batch, others, keys)
        committed = dict(con.execute(
            "SELECT id, spool_seq FROM catalog.runs "
            "WHERE list_contains(?, id) AND spool_seq IS NOT NULL",
            [sorted(foreign)]).fetchall())
        con.execute("COMMIT")
    except Exception:
        with contextlib.suppress(Exception):
            con.execute("ROLLBACK")
        return None
    keys.committed()
    return [Reject("no start event of this run was ever stored", run_id, seq, event)
            for run_id, seq, event in startless if run_id not in foreign], committed


def _data_error(exc: BaseException) -> bool:
    """An error about the events themselves (a value the catalog cannot hold, a malformed
    event), as opposed to the catalog being locked, full or unreadable."""
    import duckdb

    if isinstance(exc, (duckdb.DataError, duckdb.IntegrityError, duckdb.InvalidInputException)):
        return True
    return isinstance(exc, (ValueError, TypeError, LookupError, AttributeError)) and not \
        isinstance(exc, (duckdb.Error, OSError))


def apply(con: Any, batch: Batch, others: Batch = (), keys: KnownKeys | None = None,
          ) -> list[Spooled]:
    """Apply events inside the caller's transaction; return those of runs whose start was
    never stored (nothing to attach them to: the caller keeps them). The keys the catalog
    holds once it commits go to ``keys`` (:meth:`KnownKeys.hold`); it commits them.

    ``others`` are events read from live processes' spools: of each of their runs only those
    that continue its stored sequence without a gap are applied (a spool read while its owner
    truncates it could skip lines, and runs.spool_seq would then skip them for good)."""
    by_run: dict[str, list[Spooled]] = defaultdict(list)
    for item in [*batch, *others]:
        by_run[item.run_id].append(item)
    foreign = {item.run_id for item in others}
    keys = keys or KnownKeys()
    known = _known(con, by_run, [*batch, *others], keys)
    rows = event_fold.Rows()
    now = time.time()
    startless = []
    for run_id, numbered in by_run.items():
        row = known.runs.get(run_id)
        applied = (row or {}).get("spool_seq") or 0
        fresh = [item for item in numbered if item.seq > applied]
        if run_id in foreign:
            fresh = _unbroken(fresh, applied)
        if fresh and not event_fold.gather(rows, run_id, fresh, row, now):
            startless += fresh
    _write(con, rows, known)
    keys.hold(known.param_keys, known.metric_keys)
    return startless


def _unbroken(numbered: list[Spooled], applied: int) -> list[Spooled]:
    """The events that follow sequence number ``applied`` one by one."""
    unbroken: list[Spooled] = []
    for item in sorted(numbered, key=lambda item: item.seq):
        if item.seq != applied + len(unbroken) + 1:
            break
        unbroken.append(item)
    return unbroken


class _Known:
    """What the catalog already holds of a batch: its runs, and its param and metric keys."""

    def __init__(self) -> None:
        self.runs: dict[str, dict[str, Any]] = {}
        self.param_keys: set[tuple[str, ...]] = set()
        self.metric_keys: set[tuple[str, ...]] = set()


# The runs and the keys are two statements: their UNION ALL cost 2.5 ms, the two 0.8 and 0.7
# (planning, mostly; the data is little), and keys a process knows are not looked up at all
# (tracker.storage.known_keys). Whether a run's status was set by hand is asked only when a
# run that may be stored ends (its start is not in the batch): +0.4 ms, and a run never set by
# hand then skips _record_ends_after_hand's insert (2.2 ms); asked at every write, 0.8-1.1 ms.
_RUNS = ("SELECT id, spool_seq, params::VARCHAR, metrics::VARCHAR, {} FROM catalog.runs "
         "WHERE list_contains(?, id)")
_UNASKED = _RUNS.format("NULL")
_ASKED = _RUNS.format("id IN (SELECT run_id FROM catalog.status_changes)")
# A batch that starts each of its runs (any run shorter than recorder.START_DELAY) first asks
# only whether they are stored, without reading their JSON: 0.81-0.87 against 0.97-1.1 ms.
# Only a replay finds one, and then asks for the whole rows.
_ANY_STORED = "SELECT id FROM catalog.runs WHERE list_contains(?, id)"
_KEYS = ("SELECT key, kind FROM catalog.param_keys WHERE {} "
         "UNION ALL SELECT key, NULL FROM catalog.metric_keys WHERE {}")
# A few keys are looked for in the bound list row by row (1-2 ms: a join's set-up costs 5);
# thousands are joined, 3-4x faster than scanning the list for every stored key.
_LISTED, _JOINED = "list_contains(${}, key)", "key IN (SELECT unnest(${}::VARCHAR[]))"
_JOIN_FROM = 256  # keys looked up in one batch


def _known(con: Any, by_run: dict[str, list[Spooled]], batch: Batch, keys: KnownKeys) -> _Known:
    known = _Known()
    params, metrics, started, ended = _keys_and_ends(batch)
    for run_id, seq, stored_params, stored_metrics, by_hand in _stored_runs(
            con, list(by_run), started, ended):
        known.runs[run_id] = {"spool_seq": seq, "params": stored_params,
                              "metrics": stored_metrics, "by_hand": by_hand}
    known.param_keys, known.metric_keys = params & keys.params, metrics & keys.metrics
    if params <= keys.params and metrics <= keys.metrics:
        return known
    looked_up = {"params": sorted({key for key, _ in params - keys.params}),
                 "metrics": sorted({key for key, in metrics - keys.metrics})}
    how = [(_JOINED if len(looked_up[name]) >= _JOIN_FROM else _LISTED).format(name)
           for name in looked_up]
    for key, kind in con.execute(_KEYS.format(*how), looked_up).fetchall():
        if kind is None:
            known.metric_keys.add((key,))
        else:
            known.param_keys.add((key, kind))
    return known


def _stored_runs(con: Any, run_ids: list[str], started: set[str], ended: set[str],
                 ) -> list[tuple[Any, ...]]:
    """The stored rows of ``run_ids`` as ``_RUNS`` selects them (none for new runs)."""
    if started.issuperset(run_ids) and not con.execute(_ANY_STORED, [run_ids]).fetchall():
        return []
    return con.execute(_ASKED if ended - started else _UNASKED, [run_ids]).fetchall()


def _keys_and_ends(batch: Batch) -> tuple[set[tuple[str, ...]], set[tuple[str, ...]],
                                           set[str], set[str]]:
    """The batch's (param key, kind) and (metric key,) pairs, and the runs it starts and ends:
    one pass, since a batch of a busy run holds tens of thousands of events."""
    params: set[tuple[str, ...]] = set()
    metrics: set[tuple[str, ...]] = set()
    started: set[str] = set()
    ended: set[str] = set()
    for item in batch:
        event = item.event
        if isinstance(event, events.Param):
            params.add((event.key, event.kind))
        elif isinstance(event, events.Metric):
            metrics.add((event.key,))
        elif isinstance(event, events.Start):
            started.add(item.run_id)
        elif isinstance(event, events.End):
            ended.add(item.run_id)
    return params, metrics, started, ended


def _number_names(con: Any, rows: event_fold.Rows) -> None:
    """Give each run that asked for it (models.NUMBERED_NAME) the next number of its name,
    "train_cnn #12". Assigned here, inside the write transaction, which holds the catalog's
    exclusive lock: kernels of one notebook started at once can never draw the same number."""
    states = [*rows.new_runs, *(updates for _, updates in rows.updates)]
    asking = [state for state in states
              if state.pop(models.NUMBERED_NAME, False) and isinstance(state.get("name"), str)]
    if not asking:
        return
    # Names this batch writes as given count too: the catalog's query cannot see them yet.
    asked = {id(state) for state in asking}
    given = [state["name"] for state in states
             if isinstance(state.get("name"), str) and id(state) not in asked]
    drawn: dict[str, int] = {}
    for state in asking:
        base = state["name"]
        if base not in drawn:
            numbered, plain = _last_number(con, base)
            in_batch = max((_number_of(name, base) for name in given), default=0)
            drawn[base] = max(numbered, in_batch, plain + given.count(base))
        drawn[base] += 1
        state["name"] = f"{base} #{drawn[base]}"
        given.append(state["name"])  # "exp" and "exp #1" both asking: "exp #1 #1" counts


def _number_of(name: str, base: str) -> int:
    """The number ``name`` holds as a name of ``base``: N for "base #N" (digits, at most
    BIGINT's largest: the rule the catalogs' queries apply), else 0."""
    suffix = name.removeprefix(f"{base} #")
    if suffix == name or not _NUMBER.fullmatch(suffix):
        return 0
    return number if (number := int(suffix)) <= models.LARGEST_NAME_NUMBER else 0


_NUMBER = re.compile(models.NAME_NUMBER)


def _last_number(con: Any, base: str) -> tuple[int, int]:
    """The highest number a run named ``base #N`` has, and how many runs are named plain
    ``base`` (from before names were numbered): numbering continues after both."""
    numbered, plain = con.execute(
        "SELECT coalesce(max(CASE WHEN regexp_full_match(substr(name, ?), ?) "
        "THEN TRY_CAST(substr(name, ?) AS BIGINT) END), 0), "
        "count(*) FILTER (WHERE name = ?) FROM catalog.runs "
        "WHERE name = ? OR starts_with(name, ?)",
        [len(base) + 3, models.NAME_NUMBER, len(base) + 3, base, base, f"{base} #"]).fetchone()
    return int(numbered), int(plain)


def _write(con: Any, rows: event_fold.Rows, known: _Known) -> None:
    """One statement per table for the whole batch, none for keys the catalog has. A run's
    value columns are left to readers (``tracker.storage.value_columns``): its row is written with
    ``values_fresh`` NULL."""
    _number_names(con, rows)
    if rows.params:
        _insert(con, "params", rows.params)
        _insert_keys(con, "param_keys", {(row[1], row[3]) for row in rows.params},
                     known.param_keys)
    if rows.metrics:
        _insert(con, "metrics", rows.metrics)
        _insert_keys(con, "metric_keys", {(row[1],) for row in rows.metrics},
                     known.metric_keys)
    if rows.new_runs:
        _insert_runs(con, rows.new_runs)
    if rows.ends_after_hand:
        _record_ends_after_hand(con, rows.ends_after_hand)
    for run_id, updates in rows.updates:
        _update_run(con, run_id, updates)
    if rows.cells:
        _insert(con, "cells", rows.cells)
    if rows.tags:
        write_tags(con, rows.tags)
    for env_id, data in rows.environments.items():
        _insert_environment(con, env_id, data)
    for artifact in rows.artifacts:
        _link_artifact(con, *artifact)


def _record_ends_after_hand(con: Any, ends: list[tuple[str, str, float]]) -> None:
    """A run's own end arriving after its status was set by hand (tracker.set_status) wins,
    as the later event, and is kept in the status history beside the hand-set change: from
    that status to the process's, by the run's user on its host, not forced. ``ends`` are of
    runs already stored; only those whose status was set by hand get a row. Before the run's row is
    updated: the stored status is the one set by hand."""
    ids, statuses, times = (list(column) for column in zip(*ends, strict=True))
    con.execute(
        "INSERT INTO catalog.status_changes "
        "SELECT r.id, r.status, e.status, r.username, r.host, "
        "to_timestamp(e.ts), false FROM catalog.runs r, (SELECT unnest(?::VARCHAR[]) AS id, "
        "unnest(?::VARCHAR[]) AS status, unnest(?::DOUBLE[]) AS ts) e "
        "WHERE r.id = e.id AND r.status <> e.status "
        "AND EXISTS (SELECT 1 FROM catalog.status_changes s WHERE s.run_id = r.id)",
        [ids, statuses, times])


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


def _insert_row(con: Any, table: str, row: dict[str, Any]) -> None:
    """Insert one row: only the columns it has (any other is NULL), bound as values in their
    Python form. A run: 1.2 ms against 1.8 ms with every column bound and cast, and 2.4 ms as
    lists."""
    kinds = _RUN_KINDS if table == "runs" else dict(schema.typed_columns(table))
    given = [name for name in kinds if row.get(name) is not None]
    if not given:  # refused by its NOT NULL columns, as a data error
        con.execute(f"INSERT INTO catalog.{table} DEFAULT VALUES")
        return
    con.execute(f"INSERT INTO catalog.{table} ({', '.join(given)}) VALUES "
                f"({', '.join(_value(kinds[name]) for name in given)})",
                [row[name] for name in given])


def _value(kind: str) -> str:
    """A bound value of a column of type ``kind`` in its Python form: DuckDB casts the rest
    on insert (a value of the wrong type is a conversion error, a data error, as a CAST's)."""
    base = _base(kind)
    if base == "TIMESTAMPTZ":
        return "to_timestamp(?)"
    return "?::VARCHAR[]" if base == "VARCHAR[]" else "?"


def _insert_runs(con: Any, runs: list[dict[str, Any]]) -> None:
    """Insert new runs (``values_fresh`` NULL, as any column not given)."""
    if len(runs) == 1:
        _insert_row(con, "runs", runs[0])
        return
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
        # the value columns now lag: tracker.storage.value_columns
        clauses.append("values_fresh = NULL")
    con.execute(f"UPDATE catalog.runs SET {', '.join(clauses)} WHERE id = ?", [*args, run_id])


def write_tags(con: Any, changes: Sequence[tuple[str, str, str | None, float]]) -> None:
    """Apply tag changes ``(run_id, key, value, epoch seconds)`` in order: a value replaces the
    run's tag of that key, None removes it, unless the stored change was made later (another
    process's flush may bring an older change after a newer one). A removal is kept as a row
    without a value: else an older value arriving after it would bring the tag back. Keys and
    values are bound, never SQL text."""
    final = {(run_id, key): (value, ts) for run_id, key, value, ts in changes}  # last one wins
    run_ids, keys = (list(column) for column in zip(*final, strict=True))
    values_, times = (list(column) for column in zip(*final.values(), strict=True))
    # set_at holds microseconds: a change within one of the stored time is not older than it
    con.execute("DELETE FROM catalog.tags USING (SELECT unnest(?::VARCHAR[]) AS run_id, "
                "unnest(?::VARCHAR[]) AS key, unnest(?::DOUBLE[]) AS ts) changed "
                "WHERE tags.run_id = changed.run_id AND tags.key = changed.key "
                "AND epoch(tags.set_at) <= changed.ts + 1e-6", [run_ids, keys, times])
    con.execute("INSERT INTO catalog.tags (run_id, key, value, set_at) "  # where a newer stayed,
                "SELECT run_id, key, value, to_timestamp(ts) FROM (SELECT "  # it stays
                "unnest(?::VARCHAR[]) AS run_id, unnest(?::VARCHAR[]) AS key, "
                "unnest(?::VARCHAR[]) AS value, unnest(?::DOUBLE[]) AS ts) changed "
                "WHERE NOT EXISTS (SELECT 1 FROM catalog.tags "
                "WHERE tags.run_id = changed.run_id AND tags.key = changed.key)",
                [run_ids, keys, values_, times])


def _insert_keys(con: Any, table: str, keys: set[tuple[str, ...]],
                 known: set[tuple[str, ...]]) -> None:
    """Add the keys ``known`` does not hold, to the table and to ``known`` (the writer holds
    the lock: nobody adds them meanwhile)."""
    missing = sorted(keys - known)
    if missing:
        _insert(con, table, [tuple(key) for key in missing])
        known.update(missing)


def insert_missing(con: Any, table: str, keys: list[tuple[str, ...]]) -> None:
    """Add the (key[, kind]) rows ``table`` does not have yet, in one statement."""
    names = ", ".join(schema.column_names(table))
    lists = ", ".join("unnest(?::VARCHAR[])" for _ in keys[0])
    con.execute(f"INSERT INTO catalog.{table} SELECT {lists} EXCEPT SELECT {names} "
                f"FROM catalog.{table}",
                [list(column) for column in zip(*keys, strict=True)])


def _insert(con: Any, table: str, rows: list[tuple[Any, ...]]) -> None:
    """Insert ``rows`` (tuples in the table's column order, times as epoch seconds; for runs,
    of :data:`_RUN_NAMES`) in one statement.

    One row is bound as values (:func:`_insert_row`). Few rows are bound as
    one list per column and unnested: executemany ran one INSERT per row, 9 ms for a run's 20
    params against 0.6 ms. Many are scanned from a DataFrame: 100k metric points in ~0.1 s,
    against ~0.35 s as lists.
    """
    names, kinds = zip(*(schema.RUN_COLUMNS if table == "runs" else schema.typed_columns(table)))
    insert = f"INSERT INTO catalog.{table} ({', '.join(names)}) SELECT "
    if len(rows) == 1:
        _insert_row(con, table, dict(zip(names, rows[0], strict=True)))
        return
    if len(rows) < _BULK:
        con.execute(insert + ", ".join(_unnested(name, kind) for name, kind in zip(names, kinds)),
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


def _unnested(name: str, kind: str) -> str:
    """SQL unnesting list ``$name`` into a ``kind`` column, typed by the list's cast alone."""
    source = f"unnest(${name}::{_bound(kind)}[])"
    return source if _base(kind) == _bound(kind) else _typed(kind, source)


def _base(kind: str) -> str:
    return kind.replace(" NOT NULL", "")


def _bound(kind: str) -> str:
    return _BOUND.get(_base(kind), _base(kind))


def _link_artifact(con: Any, run_id: str, role: str, uri: str, facts: dict[str, Any] | None,
                   ts: float, via: str | None = None) -> None:
    """Link a run to the version of ``uri`` it read or wrote; ``via`` (how the file was seen) is
    None in events spooled before it existed. A second sighting keeps the first link's via."""
    facts = facts or {}
    digest = facts.get("hash")
    latest = con.execute(
        "SELECT id, version, hash FROM catalog.artifacts WHERE key = ? "
        "ORDER BY version DESC LIMIT 1",
        [uri]).fetchone()
    if latest is not None and digest is not None and latest[2] == digest:
        artifact_id = latest[0]
        _add_kept(con, artifact_id, facts)
        if con.execute("SELECT 1 FROM catalog.run_artifacts WHERE run_id = ? AND "
                       "artifact_id = ? AND role = ?", [run_id, artifact_id, role]).fetchone():
            return
    else:  # a new version: no run is linked to it yet (one statement less, ~0.5 ms)
        from tracker._ids import new_run_id

        artifact_id = new_run_id()
        producer = run_id if role == "output" else None
        con.execute(
            "INSERT INTO catalog.artifacts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [artifact_id, uri, (latest[1] + 1) if latest else 1, uri, facts.get("size"),
             _ts(facts.get("mtime")), digest, producer, facts.get("blob"), _ts(ts),
             facts.get("kept")])
    con.execute("INSERT INTO catalog.run_artifacts VALUES (?, ?, ?, ?, ?)",
                [run_id, artifact_id, role, _ts(ts), via])


def _add_kept(con: Any, artifact_id: str, facts: dict[str, Any]) -> None:
    """A content kept by a later sighting of the same version (another run wrote the same
    bytes and kept them) is recorded on the version that lacked it; one still being named
    (``storing``, its blob a token) only on a version neither kept nor storing."""
    if not facts.get("blob"):
        return
    if facts.get("kept") == "kept":
        con.execute("UPDATE catalog.artifacts SET blob = ?, kept = 'kept' WHERE id = ? "
                    "AND coalesce(kept, '') <> 'kept'", [facts["blob"], artifact_id])
    elif facts.get("kept") == "storing":
        con.execute("UPDATE catalog.artifacts SET blob = ?, kept = 'storing' WHERE id = ? "
                    "AND coalesce(kept, '') NOT IN ('kept', 'storing')",
                    [facts["blob"], artifact_id])


def _insert_environment(con: Any, env_id: str, data: dict[str, Any]) -> None:
    if con.execute("SELECT 1 FROM catalog.environments WHERE id = ?", [env_id]).fetchone():
        return
    con.execute("INSERT INTO catalog.environments VALUES (?, ?, ?)",
                [env_id, json.dumps(data, default=str), _ts(time.time())])


