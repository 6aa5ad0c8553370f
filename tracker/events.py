"""What a run records, one named shape per kind of event, and their spool encoding.

Runs (``tracker.run``) and the notebook extension make these; the storage layer
(``tracker.storage``) spools them and writes them to the catalog. A spool line is
``[seq, kind, run id, field...]``: the fields in the order declared here, which is the order the
tuples of earlier versions had, so a spool left by any earlier process still reads.

A leaf: it imports nothing of tracker's, so every layer may use it.
"""

from __future__ import annotations

from typing import Any, NamedTuple


class Start(NamedTuple):
    """A run began; ``attrs`` holds the run's columns (name, project, host, pid...)."""

    run_id: str
    attrs: dict[str, Any]


class Param(NamedTuple):
    """A param was set (``kind``: how ``value`` decodes: str, int, float, bool, none, json)."""

    run_id: str
    key: str
    value: Any
    kind: str
    ts: float


class Metric(NamedTuple):
    """A metric value, at ``step`` when one was given."""

    run_id: str
    key: str
    value: float
    step: int | None
    ts: float


class Artifact(NamedTuple):
    """A file or URI the run read (role ``input``) or wrote (``output``); ``facts`` (size,
    mtime, hash, blob) are None until the file is looked at, off the hot path; ``via`` says how
    it was seen (:data:`tracker.models.VIAS`), None in lines spooled before it existed."""

    run_id: str
    role: str
    uri: str
    facts: dict[str, Any] | None
    ts: float
    via: str | None = None


class Stored(NamedTuple):
    """A file to keep with the run (the notebook as last saved), copied when written."""

    run_id: str
    role: str
    path: str
    ts: float


class Cell(NamedTuple):
    """A notebook cell ran (``cell``: its number, source, timing and outcome)."""

    run_id: str
    cell: dict[str, Any]


class Env(NamedTuple):
    """The environment the run ran in (packages, Python, git), by content id."""

    run_id: str
    env_id: str
    data: dict[str, Any]


class Tag(NamedTuple):
    """A tag was set to ``value`` (text), replacing any earlier value; None removes it."""

    run_id: str
    key: str
    value: str | None
    ts: float


class Update(NamedTuple):
    """Columns of the run changed (a notebook found late renames its run, say)."""

    run_id: str
    attrs: dict[str, Any]


class End(NamedTuple):
    """The run ended with ``status``."""

    run_id: str
    status: str
    ts: float
    error: str | None


class Beat(NamedTuple):
    """A live run's heartbeat: its process still runs it."""

    run_id: str
    ts: float


Event = Start | Param | Metric | Artifact | Stored | Cell | Env | Tag | Update | End | Beat

#: The kind each shape is spooled as, and back.
KINDS: dict[type[Any], str] = {Start: "start", Param: "param", Metric: "metric",
                               Artifact: "artifact", Stored: "stored", Cell: "cell", Env: "env",
                               Tag: "tag", Update: "set", End: "end", Beat: "beat"}
SHAPES: dict[str, type[Any]] = {kind: shape for shape, kind in KINDS.items()}


class Spooled(NamedTuple):
    """An event numbered for its run: ``runs.spool_seq`` keeps the last ``seq`` applied."""

    run_id: str
    seq: int
    event: Event


def make(kind: str, run_id: str, *fields: Any) -> Event:
    """The event of ``kind``; ValueError for a kind that does not exist, TypeError for fields
    that do not fit it."""
    shape = SHAPES.get(kind)
    if shape is None:
        raise ValueError(f"{kind!r} is not a kind of event")
    event: Event = shape(run_id, *fields)
    return event


def as_list(event: Event) -> list[Any]:
    """``[kind, run id, field...]``: how an event is written in a spool or quarantine line."""
    return [KINDS[type(event)], *event]


def from_list(items: list[Any]) -> Event:
    """The event a spool line's ``[kind, run id, field...]`` holds (ValueError, TypeError or
    IndexError for anything else)."""
    kind, run_id, *fields = items
    if not isinstance(kind, str) or not isinstance(run_id, str):
        raise ValueError("not [kind, run id, ...]")
    return make(kind, run_id, *fields)
