"""Folding a batch of a run's events into rows, one list per table: what both writers store
for them, the file catalog's (:mod:`tracker.storage.writer`) and PostgreSQL's
(:mod:`tracker.storage.pg_writer`), each then writing the rows its own way. Times stay epoch
seconds here; each writer binds them as its driver needs.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from typing import Any

from tracker import events, models, values
from tracker.events import Spooled


class Rows:
    """Rows gathered from a whole batch, so each table gets one insert, not one per event."""

    def __init__(self) -> None:
        self.new_runs: list[dict[str, Any]] = []
        self.updates: list[tuple[str, dict[str, Any]]] = []
        self.params: list[tuple[Any, ...]] = []
        self.metrics: list[tuple[Any, ...]] = []
        self.cells: list[tuple[Any, ...]] = []
        self.environments: dict[str, Any] = {}
        self.artifacts: list[tuple[Any, ...]] = []
        self.tags: list[tuple[str, str, str | None, float]] = []
        # (run_id, status, epoch seconds) ending runs stored before, maybe set by hand since
        self.ends_after_hand: list[tuple[str, str, float]] = []


def gather(rows: Rows, run_id: str, numbered: list[Spooled],
           row: dict[str, Any] | None, now: float) -> bool:
    """Fold one run's events (those past ``row``'s spool_seq) into column values (a whole new
    row when ``row``, the stored one, is None; else updates) and rows; False, and nothing
    gathered, for events of a run whose start was never recorded."""
    start = len(rows.params), len(rows.metrics), len(rows.cells), len(rows.artifacts), \
        len(rows.tags)
    state: dict[str, Any] = {}
    params: dict[str, Any] = {}
    metrics: dict[str, Any] = {}
    started = None  # the Start's own time, when the start is in these events
    for _, _, event in numbered:
        if isinstance(event, events.Start):
            started = event.attrs.get("started_at")
            if row is None:
                state.update(start_columns(run_id, event.attrs))
        elif isinstance(event, events.Param):
            rows.params.append((run_id, event.key, values.json_text(event.value), event.kind,
                                event.ts))
            params[event.key] = event.value
        elif isinstance(event, events.Metric):
            rows.metrics.append((run_id, event.key, event.value, event.step, event.ts))
            metrics[event.key] = values.encode_float(event.value)
        elif isinstance(event, events.Artifact):
            rows.artifacts.append((run_id, event.role, event.uri, event.facts, event.ts,
                                   event.via))
        elif isinstance(event, events.Cell):
            rows.cells.append(cell_row(run_id, event.cell))
        elif isinstance(event, events.Tag):
            rows.tags.append((run_id, event.key, event.value, event.ts))
        elif isinstance(event, events.Env):
            rows.environments[event.env_id] = event.data
            state["environment_id"] = event.env_id
        elif isinstance(event, events.Update):
            state.update(event.attrs)
        elif isinstance(event, events.End):
            state.update(status=event.status, ended_at=event.ts, error=event.error)
            # its status may have been set by hand since it started (None: not asked)
            if row is not None and row.get("by_hand") is not False:
                rows.ends_after_hand.append((run_id, event.status, event.ts))
    if row is None and "id" not in state:  # nothing to attach them to
        _truncate(rows, *start)
        return False
    if params:
        state["params"] = merged((row or {}).get("params"), params)
    if metrics:
        state["metrics"] = merged((row or {}).get("metrics"), metrics)
    state.update(heartbeat_at=now, spool_seq=numbered[-1].seq)
    if state.get("ended_at") is not None and (row is None or started is not None):
        # from the events' own times (a PostgreSQL writer creates the row first, then folds
        # the Start with the rest): never from a stored start rounded to the microsecond
        state["duration"] = state["ended_at"] - (started or state["started_at"])
    if row is None:
        rows.new_runs.append(state)
    else:
        rows.updates.append((run_id, state))
    return True


def _truncate(rows: Rows, params: int, metrics: int, cells: int, artifacts: int,
              tags: int) -> None:
    """Take back the rows a run's events added (the run turned out to have no row)."""
    del rows.params[params:], rows.metrics[metrics:], rows.cells[cells:]
    del rows.artifacts[artifacts:], rows.tags[tags:]


def start_columns(run_id: str, attrs: dict[str, Any]) -> dict[str, Any]:
    """A new run's columns from its Start event (and NUMBERED_NAME when its name is to be
    numbered by the writer)."""
    columns = {"id": run_id, "status": models.RUNNING, "params": "{}", "metrics": "{}",
               "started_at": attrs.get("started_at") or time.time()}
    columns.update({k: v for k, v in attrs.items() if k in START_KEYS and v is not None})
    return columns


START_KEYS = {"name", "project", "host", "pid", "process_start", "username", "labels", "notes",
               "parent_id", "notebook", "notebook_name", "notebook_title", "notebook_hash",
               models.NUMBERED_NAME}


def merged(stored: str | None, new: dict[str, Any]) -> str:
    """A run's params or metrics JSON text, ``new`` values over the ``stored`` ones.

    A big text this process made (:data:`_MADE`) whose keys ``new`` does not hold is extended
    as text rather than parsed and written again: a run logging thousands of params per second
    would otherwise parse all it has at every write."""
    if stored and new and len(stored) >= _BIG:
        made = _made_keys(stored)
        if made is not None and made.isdisjoint(new):
            text = stored[:-1] + ", " + json.dumps(new)[1:]
            _remember(text, made.union(new))
            return text
    current = json.loads(stored) if stored else {}
    current.update(new)
    text = json.dumps(current)
    if len(text) >= _BIG:
        _remember(text, frozenset(current))
    return text


#: The last few big texts merged() returned, with their keys. A stored text equal to one of
#: them is that very JSON object (json.dumps output, no duplicate keys), whoever read it back.
_MADE: OrderedDict[str, frozenset[str]] = OrderedDict()
_MADE_KEPT = 4
_BIG = 64 * 1024  # characters; a smaller text parses in well under a millisecond
_made_lock = threading.Lock()  # the flusher and a flush() of another catalog may both merge


def _made_keys(text: str) -> frozenset[str] | None:
    with _made_lock:
        return _MADE.get(text)


def _remember(text: str, keys: frozenset[str]) -> None:
    with _made_lock:
        _MADE[text] = keys
        _MADE.move_to_end(text)
        while len(_MADE) > _MADE_KEPT:
            _MADE.popitem(last=False)


def cell_row(run_id: str, cell: dict[str, Any]) -> tuple[Any, ...]:
    """A cells row in the table's column order (its start in epoch seconds)."""
    return (run_id, cell["seq"], cell.get("execution_count"), cell.get("cell_id"),
            cell.get("source_hash"), cell.get("source"), cell.get("started_at"),
            cell.get("duration"), cell.get("success"), cell.get("error_type"),
            cell.get("error_message"))
