"""What one copy of a run's record adds to another copy of it: the rows push/pull write.

A record is a run as a checked descriptor holds it (:func:`tracker.descriptor.validate`): the
run's row and its params, metrics, artifacts, cells, tags and environment. Copying a run to a
catalog that has it already must add nothing twice and overwrite nothing recorded, so the
copy is a merge: history rows (params, metrics) the target lacks are appended, cells it lacks
(by number) added, links to file versions it lacks added, a tag replaced only by one set as
late or later, and the run's own attributes (status, end, name, trash...) taken from the source,
which recorded them. Rows are compared by value, times by the instant and JSON by its data,
so the same run read from either back end compares equal.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from typing import Any, NamedTuple

from tracker import values

# The run's columns that hold JSON text, compared by their data.
_JSON_RUN_FIELDS = ("params", "metrics")
_PARAM_FIELDS = ("key", "value", "kind", "logged_at")
_METRIC_FIELDS = ("key", "value", "step", "logged_at")


class Changes(NamedTuple):
    """The rows a copy of a run writes into a target; ``run`` is the whole row for a run the
    target lacks (``new``), else only the attributes that differ."""

    run_id: str
    new: bool
    run: dict[str, Any]
    params: list[dict[str, Any]]
    metrics: list[dict[str, Any]]
    cells: list[dict[str, Any]]
    tags: list[dict[str, Any]]
    links: list[dict[str, Any]]  # artifact rows (with role, via, linked_at) not linked yet
    environment: list[dict[str, Any]]

    @property
    def empty(self) -> bool:
        """Whether the target has the run as the source has it."""
        return not self.new and not any((self.run, self.params, self.metrics, self.cells,
                                         self.tags, self.links, self.environment))


def changes(source: dict[str, Any], target: dict[str, Any] | None) -> Changes:
    """What ``source`` (a checked record) adds to ``target`` (the target's record of the same
    run, None when it has none)."""
    run_id = source["run"]["id"]
    if target is None:
        return Changes(run_id, True, source["run"], source["params"], source["metrics"],
                       source["cells"], source["tags"], source["artifacts"],
                       source["environment"])
    return Changes(
        run_id, False, _changed_attributes(source["run"], target["run"]),
        _missing(source["params"], target["params"], _PARAM_FIELDS),
        _missing(source["metrics"], target["metrics"], _METRIC_FIELDS),
        _new_by(source["cells"], target["cells"], ("seq",)),
        _newer_tags(source["tags"], target["tags"]),
        _new_by(source["artifacts"], target["artifacts"], ("id", "role")),
        _new_by(source["environment"], target["environment"], ("id",)))


def canonical(value: Any) -> Any:
    """``value`` as compared and hashed: a NaN as its text (it equals nothing, itself
    included), lists as tuples. Aware times compare (and hash) by the instant, in any zone."""
    if isinstance(value, float) and value != value:
        return values.encode_float(value)
    if isinstance(value, list | tuple):
        return tuple(canonical(item) for item in value)
    return value


def _json(text: Any) -> Any:
    """JSON text as its data, keys sorted; anything else as it is."""
    if not isinstance(text, str):
        return text
    try:
        return json.dumps(json.loads(text), sort_keys=True)
    except ValueError:
        return text


def _changed_attributes(source: dict[str, Any], target: dict[str, Any]) -> dict[str, Any]:
    changed = {}
    for name, value in source.items():
        ours, theirs = canonical(value), canonical(target.get(name))
        if name in _JSON_RUN_FIELDS:
            ours, theirs = _json(ours), _json(theirs)
        if name != "id" and ours != theirs:
            changed[name] = value
    return changed


def _identity(row: dict[str, Any], fields: Sequence[str]) -> tuple[Any, ...]:
    return tuple(_json(canonical(row.get(name))) if name == "value"
                 else canonical(row.get(name)) for name in fields)


def _missing(source: list[dict[str, Any]], target: list[dict[str, Any]],
             fields: Sequence[str]) -> list[dict[str, Any]]:
    """The rows of ``source`` that ``target`` lacks, counted: a value logged twice at one
    instant is two rows, and a third copy is added only if the source has three."""
    held = Counter(_identity(row, fields) for row in target)
    added = []
    for row in source:
        key = _identity(row, fields)
        if held[key]:
            held[key] -= 1
        else:
            added.append(row)
    return added


def _new_by(source: list[dict[str, Any]], target: list[dict[str, Any]],
            fields: Sequence[str]) -> list[dict[str, Any]]:
    """The rows of ``source`` whose ``fields`` no row of ``target`` has."""
    held = {_identity(row, fields) for row in target}
    return [row for row in source if _identity(row, fields) not in held]


def _newer_tags(source: list[dict[str, Any]], target: list[dict[str, Any]]
                ) -> list[dict[str, Any]]:
    """The source's tags the target lacks or holds with another value set no later."""
    held = {row["key"]: row for row in target}
    newer = []
    for row in source:
        theirs = held.get(row["key"])
        if theirs is None or (theirs["value"] != row["value"]
                              and theirs["set_at"] <= row["set_at"]):
            newer.append(row)
    return newer
