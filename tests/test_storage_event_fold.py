"""Folding events into rows: a run's params and metrics JSON, merged write after write."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import tracker
from tracker.storage import event_fold


def _params(count: int, prefix: str) -> dict[str, Any]:
    return {f"{prefix}{i:05d}": i * 0.5 for i in range(count)}


def test_merged_puts_new_values_over_the_stored_ones() -> None:
    stored = json.dumps({"lr": 0.1, "epochs": 3})
    assert json.loads(event_fold.merged(stored, {"lr": 0.2, "seed": None})) == {
        "lr": 0.2, "epochs": 3, "seed": None}
    assert event_fold.merged(None, {"a": "x"}) == '{"a": "x"}'


def test_a_big_text_it_made_is_extended_without_being_parsed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A run logging thousands of params: each write adds to the text it wrote last, never
    parses all of it again, and the text is what json.dumps of the whole would be."""
    first = event_fold.merged(None, _params(5000, "a"))
    assert len(first) >= event_fold._BIG

    def no_parse(text: str) -> Any:
        raise AssertionError("the stored text was parsed")

    monkeypatch.setattr(event_fold.json, "loads", no_parse)
    second = event_fold.merged(first, _params(10, "b"))
    third = event_fold.merged(second, {"c": [1, 2], "d": None})
    monkeypatch.undo()
    assert third == json.dumps({**_params(5000, "a"), **_params(10, "b"), "c": [1, 2], "d": None})


def test_a_new_value_of_a_stored_key_or_a_text_made_elsewhere_is_parsed() -> None:
    made = event_fold.merged(None, _params(5000, "a"))
    again = json.loads(event_fold.merged(made, {"a00007": "new"}))
    assert again["a00007"] == "new" and len(again) == 5000
    elsewhere = json.dumps(_params(5000, "a"), separators=(",", ":"))  # not a text made here
    assert json.loads(event_fold.merged(elsewhere, {"z": 1})) == {**_params(5000, "a"), "z": 1}


def test_a_run_with_thousands_of_params_keeps_each_one_across_writes(tmp_path: Path) -> None:
    catalog = tracker.Catalog(tmp_path / "c.duckdb")
    with catalog.start_run("many") as run:
        for round_ in range(4):  # the text passes _BIG at the second write
            catalog.log_params({f"p{round_}_{i:04d}": i for i in range(3000)})
            catalog.flush()
        catalog.log_param("p0_0007", "changed")
    catalog.flush()
    params = catalog.get_run(run.id).params
    assert len(params) == 12000 and params["p3_2999"] == 2999 and params["p0_0007"] == "changed"
