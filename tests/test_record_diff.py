"""What one copy of a run's record adds to another (tracker/record_diff.py): the merge push and
pull write, compared by value whichever back end each copy was read from."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from tracker import record_diff

UTC = dt.timezone.utc
T0 = dt.datetime(2024, 5, 1, 12, tzinfo=UTC)


def _record(**sections: Any) -> dict[str, Any]:
    """A checked record of the run ``01r1`` with these sections (the rest empty)."""
    run = {"id": "01r1", "status": "completed", "started_at": T0, "labels": [],
           "params": '{"lr": 0.1}'}
    empty = {name: [] for name in ("params", "metrics", "cells", "tags", "artifacts",
                                   "environment")}
    return {**empty, **sections, "run": {**run, **sections.get("run", {})}}


def _metric(value: float, step: int, at: dt.datetime = T0) -> dict[str, Any]:
    return {"key": "loss", "value": value, "step": step, "logged_at": at}


def test_a_run_the_target_lacks_is_new_and_whole() -> None:
    source = _record(metrics=[_metric(0.5, 0)])
    change = record_diff.changes(source, None)
    assert change.new and change.run == source["run"] and change.metrics == source["metrics"]
    assert not change.empty


def test_the_same_run_read_in_another_zone_and_json_spacing_adds_nothing() -> None:
    source = _record(metrics=[_metric(math.nan, 0)], run={"params": '{"lr": 0.1}'})
    berlin = dt.timezone(dt.timedelta(hours=2))
    target = _record(metrics=[_metric(math.nan, 0, T0.astimezone(berlin))],
                     run={"params": '{"lr":0.1}', "started_at": T0.astimezone(berlin)})
    assert record_diff.changes(source, target).empty


def test_history_rows_are_counted_not_merely_matched() -> None:
    twice = [_metric(0.5, 0), _metric(0.5, 0)]
    change = record_diff.changes(_record(metrics=[*twice, _metric(0.4, 1)]),
                                 _record(metrics=twice[:1]))
    assert change.metrics == [_metric(0.5, 0), _metric(0.4, 1)]  # one more 0.5, and the 0.4
    assert record_diff.changes(_record(metrics=twice[:1]), _record(metrics=twice)).empty


def test_only_the_attributes_that_differ_are_set() -> None:
    change = record_diff.changes(_record(run={"status": "failed", "labels": ["a"]}),
                                 _record())
    assert change.run == {"status": "failed", "labels": ["a"]} and not change.new


def test_a_tag_is_replaced_only_by_one_set_as_late_or_later() -> None:
    late, early = T0 + dt.timedelta(hours=1), T0
    theirs = [{"key": "stage", "value": "final", "set_at": late}]
    older = [{"key": "stage", "value": "draft", "set_at": early}]
    assert record_diff.changes(_record(tags=older), _record(tags=theirs)).tags == []
    assert record_diff.changes(_record(tags=theirs), _record(tags=older)).tags == theirs


def test_cells_links_and_environments_are_added_by_identity() -> None:
    cell = {"seq": 1, "source": "x = 1"}
    link = {"id": "a1", "role": "input", "version": 1}
    env = {"id": "e1", "data": "{}"}
    held = _record(cells=[{**cell, "source": "edited"}], artifacts=[{**link, "version": 2}],
                   environment=[env])
    change = record_diff.changes(_record(cells=[cell, {"seq": 2}], artifacts=[
        link, {**link, "role": "output"}], environment=[env]), held)
    # the version the target numbered differently is the same link; cell 1 is already there
    assert change.cells == [{"seq": 2}] and change.links == [{**link, "role": "output"}]
    assert change.environment == []
