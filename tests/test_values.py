"""Whatever a user logs is stored faithfully, or by description with one warning; never raises."""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import json
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tracker
from tracker import values


class Color(enum.Enum):
    RED = "red"


class Opaque:
    def __repr__(self) -> str:
        return "<Opaque " + "x" * 5000 + ">"


class Hostile:
    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")


FAITHFUL: list[tuple[str, Any, Any]] = [
    ("int", 3, 3),
    ("big_int", 2**70, 2**70),
    ("float", 0.125, 0.125),
    ("bool", True, True),
    ("none", None, None),
    ("str", "résumé ✓ 東京", "résumé ✓ 東京"),
    ("megabyte", "x" * 1_000_000, "x" * 1_000_000),
    ("nan", math.nan, math.nan),
    ("inf", math.inf, math.inf),
    ("ninf", -math.inf, -math.inf),
    ("np_int", np.int64(5), 5),
    ("np_float", np.float32(0.5), 0.5),
    ("np_bool", np.bool_(True), True),
    ("np_array", np.arange(4), [0, 1, 2, 3]),
    ("np_nan", np.float64("nan"), math.nan),
    ("series", pd.Series([1, 2]), [1, 2]),
    ("timestamp", pd.Timestamp("2026-01-02T03:04:05"), "2026-01-02T03:04:05"),
    ("datetime", dt.datetime(2026, 1, 2, 3, 4, 5), "2026-01-02T03:04:05"),
    ("date", dt.date(2026, 1, 2), "2026-01-02"),
    ("timedelta", dt.timedelta(minutes=2), 120.0),
    ("path", Path("/data/train.csv"), "/data/train.csv"),
    ("decimal", decimal.Decimal("1.10"), "1.10"),
    ("set", {3, 1, 2}, [1, 2, 3]),
    ("tuple", (1, "a"), [1, "a"]),
    ("list", [1, [2, {"a": None}]], [1, [2, {"a": None}]]),
    ("enum", Color.RED, "red"),
    ("bytes", b"\x00\x01", "b'\\x00\\x01'"),
]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    return a == b and type(a) is type(b)


@pytest.mark.parametrize(("key", "value", "expected"), FAITHFUL, ids=[f[0] for f in FAITHFUL])
def test_params_are_stored_faithfully(catalog: tracker.Catalog, key: str, value: Any,
                                      expected: Any) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # faithful storage warns about nothing
        with catalog.start_run() as run:
            run.log_param(key, value)
    assert _same(catalog.get_run(run.id).params[key], expected)


def test_nested_dicts_become_dotted_keys(catalog: tracker.Catalog) -> None:
    with catalog.start_run(params={"model": {"layers": {"n": 2}, "act": "relu"}}) as run:
        pass
    assert catalog.get_run(run.id).params == {"model.layers.n": 2, "model.act": "relu"}
    assert list(catalog.runs("params.model.layers.n = 2")["id"]) == [run.id]


def test_keys_with_unicode_and_punctuation(catalog: tracker.Catalog) -> None:
    keys = ["σ (noise)", "a/b~c", "'; DROP TABLE runs; --", 'quote"d', "", 42]
    with catalog.start_run() as run:
        for i, key in enumerate(keys):
            run.log_param(key, i)
    params = catalog.get_run(run.id).params
    assert params == {"σ (noise)": 0, "a/b~c": 1, "'; DROP TABLE runs; --": 2, 'quote"d': 3,
                      "_": 4, "42": 5}
    frame = catalog.runs()
    assert frame.loc[0, "params.'; DROP TABLE runs; --"] == 2


@pytest.mark.parametrize("value", [Opaque(), Hostile(), pd.DataFrame({"a": [1]}),
                                   np.zeros((200, 200))],
                         ids=["opaque", "hostile-repr", "dataframe", "big-array"])
def test_arbitrary_objects_are_described_with_one_warning(catalog: tracker.Catalog,
                                                          value: Any) -> None:
    with catalog.start_run() as run:
        with pytest.warns(tracker.TrackerWarning) as caught:
            run.log_param("thing", value)
            run.log_param("thing", value)
    assert len(caught) == 1
    stored = catalog.get_run(run.id).params["thing"]
    assert stored["type"].endswith(type(value).__qualname__)
    assert len(stored["repr"]) <= values.REPR_LIMIT + 40


@pytest.mark.parametrize(("value", "expected"), [
    (np.float32(0.25), 0.25), (np.int64(3), 3.0), (True, 1.0), (decimal.Decimal("0.5"), 0.5),
    (np.array([0.75]), 0.75), ("0.5", 0.5), (math.nan, math.nan), (math.inf, math.inf),
])
def test_metrics_accept_anything_numeric(catalog: tracker.Catalog, value: Any,
                                         expected: float) -> None:
    with catalog.start_run() as run:
        run.log_metric("m", value)
    assert _same(catalog.get_run(run.id).metrics["m"], expected)
    assert _same(float(catalog.metric_history(run.id)["value"][0]), expected)


def test_a_non_numeric_metric_warns_and_is_skipped(catalog: tracker.Catalog) -> None:
    with catalog.start_run() as run:
        with pytest.warns(tracker.TrackerWarning, match="metric 'acc' was not recorded"):
            run.log_metric("acc", "high")
        run.log_metric("acc", 0.9, step="3")  # a numeric string step is fine
    assert catalog.get_run(run.id).metrics == {"acc": 0.9}
    assert list(catalog.metric_history(run.id)["step"]) == [3]


def test_params_that_are_not_a_mapping_warn(catalog: tracker.Catalog) -> None:
    with catalog.start_run() as run:
        with pytest.warns(tracker.TrackerWarning, match="params were not recorded"):
            run.log_params(["not", "a", "dict"])  # type: ignore[arg-type]


def test_text_with_lone_surrogates_is_stored_escaped_with_a_warning(
        catalog: tracker.Catalog) -> None:
    # A lone surrogate is a valid Python str but not Unicode: no catalog can store it, and it
    # used to make every later read of the catalog fail.
    with pytest.warns(tracker.TrackerWarning, match="backslash-escaped"):
        with catalog.start_run("run-\ud800", notes="n\udcff", labels=["l\ud800"],
                               project="p\ud800") as run:
            run.log_param("key-\ud800", 1)
            run.log_param("value", "a\ud800b")
            run.log_param("nested", {"k": ["x\udfff"]})
            run.log_metric("loss-\ud800", 0.5)
            run.log_param("fine", "résumé")  # valid non-ASCII text is stored as is
    info = tracker.Catalog(catalog.path).get_run(run.id)
    assert (info.name, info.project, info.notes, info.labels) == (
        "run-\\ud800", "p\\ud800", "n\\udcff", ("l\\ud800",))
    assert info.params == {"key-\\ud800": 1, "value": "a\\ud800b", "nested.k": ["x\\udfff"],
                           "fine": "résumé"}
    assert info.metrics == {"loss-\\ud800": 0.5}


def test_a_step_outside_64_bits_is_dropped_with_a_warning(catalog: tracker.Catalog) -> None:
    with catalog.start_run() as run:
        with pytest.warns(tracker.TrackerWarning, match="outside the 64-bit range"):
            run.log_metric("m", 0.5, step=2**70)
        run.log_metric("m", 0.25, step=-(2**63))  # the smallest step that fits
    history = catalog.metric_history(run.id)
    assert history["value"].tolist() == [0.5, 0.25]
    assert history["step"].isna().tolist() == [True, False]


def test_an_int_too_long_for_decimal_text_reads_back(catalog: tracker.Catalog) -> None:
    huge = 10**5000  # Python refuses to turn it into decimal text
    with catalog.start_run() as run:
        run.log_param("huge", huge)
        run.log_param("negative", -huge)
    assert catalog.get_run(run.id).params == {"huge": huge, "negative": -huge}
    assert run.params == {"huge": huge, "negative": -huge}


def test_a_key_whose_str_raises_is_described(catalog: tracker.Catalog) -> None:
    class Unprintable:
        def __str__(self) -> str:
            raise RuntimeError("no str for you")

        __repr__ = __str__

    with catalog.start_run() as run:
        with pytest.warns(tracker.TrackerWarning, match="str\\(\\) failed"):
            run.log_param(Unprintable(), 1)
            run.log_metric(Unprintable(), 0.5)
        run.log_param("after", 2)
    name = f"<unprintable {__name__}.{Unprintable.__qualname__}>"
    info = catalog.get_run(run.id)
    assert info.params == {name: 1, "after": 2}
    assert info.metrics == {name: 0.5}


def test_decode_keeps_a_bigint_that_is_not_hex_as_text() -> None:
    assert values.decode(hex(2**70), "bigint") == 2**70
    assert values.decode("zz", "bigint") == "zz"


@given(st.text() | st.integers() | st.floats() | st.booleans() | st.none()
       | st.lists(st.integers(), max_size=3) | st.dictionaries(st.text(max_size=3), st.floats()))
def test_json_text_is_json_dumps_character_for_character(value: Any) -> None:
    """A param's value is written as JSON on every write: the quick path must not change a
    character (NaN, infinities, lone surrogates and containers included)."""
    assert values.json_text(value) == json.dumps(value)
