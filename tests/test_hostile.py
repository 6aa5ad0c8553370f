"""Hostile input: whatever a user, a file or a notebook sends, tracker either accepts it or
raises a TrackerError; it never hangs, and the runs already recorded stay exactly as they were.

Every case runs against one baseline catalog with a few recorded runs. After each case the
baseline's runs, params and metrics must be unchanged, row for row, and the catalog must still
open. Calls run under a deadline, so a hang fails the case instead of the suite.
"""

from __future__ import annotations

import json
import math
import os
import socket
import sqlite3
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tracker
from tracker import TrackerError, TrackerWarning

DEADLINE = 20.0  # seconds any single call may take; generous for a loaded 2-core machine
_SETTINGS = settings(max_examples=60, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture])


class Baseline:
    """A catalog with three recorded runs and the fingerprint of what they hold."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.catalog = tracker.Catalog(folder / "catalog.duckdb")
        self.ids: list[str] = []
        for index, model in enumerate(("cnn", "vit", "mlp")):
            with self.catalog.start_run(f"base-{index}", labels=["base"],
                                        params={"lr": 0.1 * (index + 1), "model": model,
                                                "epochs": index + 3}) as run:
                for step in range(3):
                    run.log_metric("loss", 1.0 / (step + 1 + index), step=step)
            self.ids.append(run.id)
        self.catalog.flush()
        self.fingerprint = self.current()
        self.other = tracker.Catalog(folder / "other" / "catalog.duckdb")
        with self.other.start_run("other"):
            pass
        self.other.flush()

    def current(self) -> tuple[Any, ...]:
        """Every stored row of the baseline runs, in a stable order."""
        with self.catalog.connect() as con:
            ids = list(self.ids)
            runs = con.execute(
                "SELECT id, name, project, status, started_at, ended_at, labels, notes, "
                "deleted_at, error, params, metrics FROM runs WHERE list_contains(?, id) "
                "ORDER BY id", [ids]).fetchall()
            params = con.execute(
                "SELECT run_id, key, value, kind, logged_at FROM params "
                "WHERE list_contains(?, run_id) ORDER BY ALL", [ids]).fetchall()
            metrics = con.execute(
                "SELECT run_id, key, value, step, logged_at FROM metrics "
                "WHERE list_contains(?, run_id) ORDER BY ALL", [ids]).fetchall()
        return tuple(runs), tuple(params), tuple(metrics)

    def check_intact(self) -> None:
        assert self.current() == self.fingerprint, "the baseline runs changed"
        table = self.catalog.runs(include_deleted=True)
        assert set(self.ids) <= set(table["id"])


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Baseline]:
    yield Baseline(tmp_path_factory.mktemp("hostile"))


def answer(call: Callable[[], Any], *, seconds: float = DEADLINE) -> Any:
    """``call()``'s result or the TrackerError it raised; any other exception, or a call still
    running after ``seconds``, fails the test. Warnings must all be TrackerWarnings."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:  # noqa: BLE001 - judged below
            outcome["error"] = exc

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        worker = threading.Thread(target=target, daemon=True)
        worker.start()
        worker.join(seconds)
    assert not worker.is_alive(), f"still running after {seconds} s (a hang)"
    strangers = [w for w in caught if not issubclass(w.category, TrackerWarning)
                 and not issubclass(w.category, ResourceWarning)]
    assert not strangers, [str(w.message) for w in strangers]
    error = outcome.get("error")
    if error is not None and not isinstance(error, TrackerError):
        raise AssertionError(f"raised {type(error).__name__}, not a TrackerError: {error!r}"
                             ) from error
    return error if error is not None else outcome.get("value")


def _ids(values: list[Any]) -> list[str]:
    """Short test ids, even for values whose repr raises or is huge."""

    def shown(value: Any) -> str:
        try:
            text = repr(value)
        except Exception:  # noqa: BLE001 - a hostile __repr__, or a 5000-digit int
            return type(value).__name__
        return type(value).__name__ if " at 0x" in text else text[:30]

    return [f"{index}-{shown(value)}" for index, value in enumerate(values)]


# -- filters, sorting and paging -----------------------------------------------------------

FILTERS: list[Any] = [
    "", " ", "(", ")", "()", "((status = 'completed')", "status = 'completed'))",
    "(" * 200 + "status = 'completed'" + ")" * 200, "not " * 500 + "status = 'completed'",
    "status = 'completed' and " * 300 + "status = 'completed'",
    "status = 'x'; DROP TABLE runs", "status = 'x' --", "status = 'x' /* */",
    "name = 'a'' OR 1=1 --'", "name = \"a\" OR \"1\"=\"1\"", "1 = 1", "1=1; DELETE FROM runs",
    "params.`lr` > 0", "params.`lr``; DROP TABLE runs; --` > 0", 'params."x""y" = 1',
    "params.lr > 1e999999", "params.lr > -1e999999", "params.lr > 99999999999999999999999999",
    "params.lr > 0x10", "params.lr > 1_000", "metrics.loss = 'NaN'", "metrics.loss > 'abc'",
    "params.lr in ()", "params.lr in (" + ", ".join(["1"] * 5000) + ")",
    "params.lr in (1, 'a', true, null)", "labels contains 1", "labels contains null",
    "status like '%'", "status like '\\'", "status ilike '%%%%%%%%%%%%%%%%%%%%%%%%%%'",
    "started_at > 'not a date'", "started_at > '99999-01-01'", "duration > 'abc'",
    "pid = 99999999999999999999", "status = 'completed' and", "and status = 'completed'",
    "status is", "status is not", "status is maybe", "params.", "metrics.", "params..x = 1",
    "`` = 1", "params.`` = 1", "attributes. = 1", "attributes.nonsense = 1", "nonsense = 1",
    "runs.id = 'x'", "r.id = 'x'", "id = (SELECT id FROM runs)", "id in (SELECT id FROM runs)",
    "status = 'completed\x00'", "status = '\ud800'", "params.\ud800 = 1", "\x00", "\x1b[31m",
    "name = '" + "a" * 100_000 + "'", "params." + "k" * 10_000 + " = 1", "a" * 1_000_000,
    "'unclosed", "\"unclosed", "`unclosed", "params.lr >", "> 1", "= =", "status == 'completed'",
    "status <> 'completed'", "status != ", "not", "or", "and", "status = 'completed' or",
    "params.lr between 0 and 1", "params.lr @> 1", "params.lr ~ 'x'", "status = $1",
    "status = ?", "status = :name", "ÄÖÜ = 1", "params.日本 = '語'", "metrics.loss > -0.0",
    "metrics.loss < inf", "metrics.loss = nan", 123, 1.5, b"status = 'completed'",
    ["status = 'completed'"], {"status": "completed"}, object(), True,
]


@pytest.mark.parametrize("where", FILTERS, ids=_ids(FILTERS))
def test_a_hostile_filter_is_answered_or_refused(baseline: Baseline, where: Any) -> None:
    answer(lambda: baseline.catalog.runs(where))
    answer(lambda: baseline.catalog.count_runs(where))
    baseline.check_intact()


ORDERINGS: list[Any] = [
    "", "name", "name DESC", "name desc nulls first", "metrics.loss DESC", "params.lr",
    "nonsense", "name; DROP TABLE runs", "name DESC, (SELECT 1)", "1", "random()", "name ASC ASC",
    "params.`x` DESC", "metrics.\ud800", "\x00", "a" * 100_000, ["name", "name"], ["name", 3],
    [], [None], 5, 5.5, object(), {"name": "desc"}, b"name", ("name",),
]


@pytest.mark.parametrize("order_by", ORDERINGS, ids=_ids(ORDERINGS))
def test_a_hostile_sort_key_is_answered_or_refused(baseline: Baseline, order_by: Any) -> None:
    answer(lambda: baseline.catalog.runs(order_by=order_by))
    baseline.check_intact()


PAGES: list[tuple[Any, Any]] = [
    (-1, 0), (0, 0), (0, -1), (-1, -1), (2**63, 0), (2**64, 0), (0, 2**63), (10**100, 0),
    (1.5, 0), (math.nan, 0), (math.inf, 0), ("5", 0), (True, 0), (None, None), (5, "1"),
    (b"5", 0), ([5], 0), (object(), 0), (1, 10**30), (None, -(2**70)),
]


@pytest.mark.parametrize(("limit", "offset"), PAGES, ids=_ids(PAGES))
def test_a_hostile_page_is_answered_or_refused(baseline: Baseline, limit: Any,
                                                offset: Any) -> None:
    answer(lambda: baseline.catalog.runs(limit=limit, offset=offset))
    baseline.check_intact()


EQUALS: list[dict[str, Any]] = [
    {"status": "completed"}, {"nonsense": 1}, {"params.lr": 0.1}, {"params.lr": object()},
    {"status": ["completed"]}, {"status": None}, {"id; DROP TABLE runs": 1},
    {"\ud800": 1}, {"status": "\ud800"}, {"status": 10**5000}, {"duration": math.nan},
    {"started_at": "garbage"},
]


@pytest.mark.parametrize("equals", EQUALS, ids=_ids(EQUALS))
def test_hostile_equality_tests_are_answered_or_refused(baseline: Baseline,
                                                        equals: dict[str, Any]) -> None:
    answer(lambda: baseline.catalog.runs(**equals))
    baseline.check_intact()


@_SETTINGS
@given(where=st.text(max_size=200))
def test_any_text_as_a_filter_is_answered_or_refused(baseline: Baseline, where: str) -> None:
    answer(lambda: baseline.catalog.runs(where))
    baseline.check_intact()


# -- params and metrics --------------------------------------------------------------------


class _Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no str for you")

    __repr__ = __str__

    def __hash__(self) -> int:
        return 1


class _Unequal:
    def __eq__(self, other: object) -> bool:
        raise RuntimeError("no comparison")

    __hash__ = object.__hash__


def _recursive_list() -> list[Any]:
    items: list[Any] = []
    items.append(items)
    return items


def _deep_dict(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = {"leaf": 1}
    for _ in range(depth):
        node = {"k": node}
    return node


PARAM_KEYS: list[Any] = [
    "\ud800", "a\ud800b", "", " ", "\x00", "a\x00b", "k" * 100_000, "x'); DROP TABLE runs; --",
    'x"y', "x`y", "a.b.c", ".", "..", "~/", "/etc/passwd", "日本語", "🙂", "\u202e", 5, 5.5,
    None, True, (1, 2), b"bytes", _Unprintable(), frozenset({1}),
]

PARAM_VALUES: list[Any] = [
    "\ud800", "a\ud800b", 10**5000, -(10**5000), 2**63, -(2**63) - 1, 2**64, math.nan,
    math.inf, -math.inf, -0.0, 1e308, 5e-324, "x" * 1_000_000, "\x00", "'; DROP TABLE runs; --",
    b"\xff\xfe", bytearray(b"abc"), _Unprintable(), _Unequal(), _recursive_list(),
    _deep_dict(100), {"": 1}, {"\ud800": 1}, {1: 2, "1": 3}, [math.nan], list(range(100_000)),
    {str(i): i for i in range(2_000)}, object(), type, print, lambda: 1, Ellipsis,
    NotImplemented, complex(1, 2), {1, 2, 3}, range(10), iter([1]), Path("/etc/passwd"),
]


def _log_and_read(baseline: Baseline, log: Callable[[tracker.Run], None]) -> None:
    """Log into a fresh run beside a good param; the run and the good param must be recorded."""

    def scenario() -> str:
        with baseline.catalog.start_run("hostile") as run:
            run.log_param("good", 1)
            log(run)
        baseline.catalog.flush()
        return run.id

    run_id = answer(scenario)
    assert isinstance(run_id, str), f"logging raised {run_id!r}"
    stored = answer(lambda: baseline.catalog.get_run(run_id))
    assert not isinstance(stored, TrackerError), stored
    assert stored.params.get("good") == 1 and stored.status == "completed"
    baseline.check_intact()


@pytest.mark.parametrize("key", PARAM_KEYS, ids=_ids(PARAM_KEYS))
def test_a_hostile_param_key_never_poisons_the_catalog(baseline: Baseline, key: Any) -> None:
    _log_and_read(baseline, lambda run: run.log_param(key, 1))


@pytest.mark.parametrize("value", PARAM_VALUES, ids=_ids(PARAM_VALUES))
def test_a_hostile_param_value_never_poisons_the_catalog(baseline: Baseline,
                                                         value: Any) -> None:
    _log_and_read(baseline, lambda run: run.log_param("hostile", value))


METRICS: list[tuple[Any, Any]] = [
    (0.5, 2**70), (0.5, -(2**70)), (0.5, 2**63), (0.5, -1), (0.5, 1.5), (0.5, "3"),
    (0.5, math.nan), (0.5, object()), (math.nan, 1), (math.inf, 1), (-math.inf, 1),
    (10**5000, 1), ("0.5", 1), ("abc", 1), (None, 1), (object(), 1), ([1, 2], 1), (True, 1),
    (complex(1, 1), 1), (_Unprintable(), 1), (b"1", 1), (1e308 * 10, 1),
]


@pytest.mark.parametrize(("value", "step"), METRICS, ids=_ids(METRICS))
def test_a_hostile_metric_never_poisons_the_catalog(baseline: Baseline, value: Any,
                                                    step: Any) -> None:
    _log_and_read(baseline, lambda run: run.log_metric("hostile", value, step=step))


METRIC_KEYS: list[Any] = ["\ud800", "", "\x00", "k" * 100_000, 5, None, _Unprintable()]


@pytest.mark.parametrize("key", METRIC_KEYS, ids=_ids(METRIC_KEYS))
def test_a_hostile_metric_key_never_poisons_the_catalog(baseline: Baseline, key: Any) -> None:
    _log_and_read(baseline, lambda run: run.log_metric(key, 0.5))


RUN_ATTRIBUTES: list[dict[str, Any]] = [
    {"name": "\ud800"}, {"name": "x" * 100_000}, {"project": "\ud800"}, {"project": ""},
    {"labels": ["\ud800"]}, {"labels": "abc"}, {"labels": [object()]}, {"notes": "\ud800"},
    {"notes": "\x00" * 10}, {"name": 5}, {"project": 5}, {"labels": 5}, {"parent": "nonsense"},
    {"params": {"\ud800": 1}}, {"params": 5},
]


@pytest.mark.parametrize("attributes", RUN_ATTRIBUTES, ids=_ids(RUN_ATTRIBUTES))
def test_hostile_run_attributes_never_poison_the_catalog(baseline: Baseline,
                                                         attributes: dict[str, Any]) -> None:
    rest = {k: v for k, v in attributes.items() if k != "name"}

    def scenario() -> None:
        with baseline.catalog.start_run(attributes.get("name", "hostile"), **rest):
            pass
        baseline.catalog.flush()

    answer(scenario)
    answer(lambda: baseline.catalog.runs())
    baseline.check_intact()


@_SETTINGS
@given(key=st.text(max_size=50), value=st.one_of(
    st.text(max_size=200), st.integers(), st.floats(), st.booleans(), st.none(),
    st.lists(st.integers(), max_size=5), st.dictionaries(st.text(max_size=5), st.integers(),
                                                         max_size=3)))
def test_any_param_is_recorded_without_poisoning(baseline: Baseline, key: str,
                                                value: Any) -> None:
    _log_and_read(baseline, lambda run: run.log_param("hostile." + key, value))


# -- run references --------------------------------------------------------------------------

REFS: list[Any] = [
    "", " ", "x", "0", "%", "_", "*", "' OR '1'='1", "'; DELETE FROM runs; --", "\x00", "\ud800",
    "a" * 1_000_000, "tracker://", "tracker://default/runs/", "tracker://other/runs/{id}",
    "tracker://default/runs/{id}/../x", "tracker:///runs/{id}", "{id}x", "{prefix}%",
    None, 5, 5.5, b"abc", ["{id}"], object(), True,
]


def _ref(template: Any, baseline: Baseline) -> Any:
    if not isinstance(template, str):
        return template
    return template.replace("{id}", baseline.ids[0]).replace("{prefix}", baseline.ids[0][:6])


REF_CALLS: dict[str, Callable[[tracker.Catalog, Any], Any]] = {
    "get_run": lambda c, r: c.get_run(r),
    "metric_history": lambda c, r: c.metric_history(r),
    "lineage": lambda c, r: c.lineage(r),
    "lineage_graph": lambda c, r: c.lineage_graph(r),
    "artifacts": lambda c, r: c.artifacts(r),
    "delete_run": lambda c, r: c.delete_run(r),
    "restore_run": lambda c, r: c.restore_run(r),
    "update_run": lambda c, r: c.update_run(r, notes="hostile"),
}


@pytest.mark.parametrize("call", list(REF_CALLS))
@pytest.mark.parametrize("template", REFS, ids=_ids(REFS))
def test_a_hostile_run_reference_finds_nothing_it_should_not(baseline: Baseline, template: Any,
                                                            call: str) -> None:
    ref = _ref(template, baseline)
    answer(lambda: REF_CALLS[call](baseline.catalog, ref))
    baseline.check_intact()


# -- export and import descriptors -------------------------------------------------------------

_INJECTED_KEY = ("id, status, started_at) VALUES ('z','completed',now()); COPY (SELECT "
                 "'print(1)') TO '{canary}' (HEADER false, QUOTE ''); DROP TABLE metrics; "
                 "INSERT INTO runs (notes")


def _descriptor(baseline: Baseline, folder: Path) -> dict[str, Any]:
    path = folder / "exported.json"
    if not path.exists():
        baseline.catalog.export_run(baseline.ids[0], path)
    return json.loads(path.read_text(encoding="utf-8"))


def _new_id(descriptor: dict[str, Any]) -> dict[str, Any]:
    descriptor["run"]["id"] = "0" * 10 + "hostil"
    return descriptor


Mutation = Callable[[dict[str, Any], Path], Any]
DESCRIPTORS: dict[str, Mutation] = {
    "injected run key": lambda d, c: _new_id(d)["run"].update(
        {_INJECTED_KEY.format(canary=c): "x"}) or d,
    "injected reading key": lambda d, c: _new_id(d)["run"].update(
        {"notes) SELECT content FROM read_text('/etc/hostname'); --": 1}) or d,
    "injected param key": lambda d, c: _new_id(d)["params"][0].update(
        {_INJECTED_KEY.format(canary=c): 1}) or d,
    "injected metric key": lambda d, c: _new_id(d)["metrics"][0].update(
        {"value) VALUES (1); DROP TABLE runs; --": 1}) or d,
    "injected cell key": lambda d, c: _new_id(d)["cells"].append(
        {"seq": 1, "source; DROP TABLE runs": "x"}) or d,
    "injected artifact key": lambda d, c: _new_id(d)["artifacts"].append(
        {"id": "a", "role": "input", "uri; DROP TABLE runs": "x"}) or d,
    "injected environment key": lambda d, c: _new_id(d)["environment"].append(
        {"id": "e", "data": {}, "created_at; DROP TABLE runs": 1}) or d,
    "unknown section": lambda d, c: _new_id(d).update({"extra": [1]}) or d,
    "no run": lambda d, c: {k: v for k, v in d.items() if k != "run"},
    "run is a list": lambda d, c: {**d, "run": [1, 2]},
    "run is null": lambda d, c: {**d, "run": None},
    "run id missing": lambda d, c: {**d, "run": {k: v for k, v in d["run"].items()
                                                  if k != "id"}},
    "run id is a number": lambda d, c: {**d, "run": {**d["run"], "id": 5}},
    "run id is SQL": lambda d, c: {**d, "run": {**d["run"], "id": "x'; DROP TABLE runs; --"}},
    "run id is huge": lambda d, c: {**d, "run": {**d["run"], "id": "a" * 100_000}},
    "status unknown": lambda d, c: {**_new_id(d), "run": {**d["run"], "status": "pwned"}},
    "started_at garbage": lambda d, c: {**_new_id(d), "run": {**d["run"],
                                                               "started_at": "yesterday"}},
    "started_at number": lambda d, c: {**_new_id(d), "run": {**d["run"], "started_at": 1e300}},
    "labels a string": lambda d, c: {**_new_id(d), "run": {**d["run"], "labels": "abc"}},
    "labels nested": lambda d, c: {**_new_id(d), "run": {**d["run"], "labels": [[["x"]]]}},
    "labels huge": lambda d, c: {**_new_id(d), "run": {**d["run"], "labels": ["x"] * 10**6}},
    "name surrogate": lambda d, c: {**_new_id(d), "run": {**d["run"], "name": "\ud800"}},
    "params not a list": lambda d, c: {**_new_id(d), "params": {"lr": 1}},
    "param row not a dict": lambda d, c: {**_new_id(d), "params": [5]},
    "param kind unknown": lambda d, c: _new_id(d)["params"][0].update({"kind": "'; --"}) or d,
    "param value not JSON": lambda d, c: _new_id(d)["params"][0].update({"value": "{"}) or d,
    "metric step huge": lambda d, c: _new_id(d)["metrics"][0].update({"step": 2**70}) or d,
    "metric value text": lambda d, c: _new_id(d)["metrics"][0].update({"value": "abc"}) or d,
    "metric value dict": lambda d, c: _new_id(d)["metrics"][0].update({"value": {}}) or d,
    "metric without key": lambda d, c: _new_id(d)["metrics"][0].pop("key") and d,
    "artifact role odd": lambda d, c: _new_id(d)["artifacts"].append(
        {"id": "a", "key": "k", "version": 1, "uri": "u", "role": "'; --", "created_at": "x",
         "linked_at": "x"}) or d,
    "format wrong": lambda d, c: {**d, "format": "something"},
    "format a list": lambda d, c: {**d, "format": ["tracker-run"]},
    "version text": lambda d, c: {**d, "version": "abc"},
    "version negative": lambda d, c: {**d, "version": -1},
    "version future": lambda d, c: {**d, "version": 999},
    "version huge": lambda d, c: {**d, "version": 2**200},
    "not a dict": lambda d, c: [d],
    "a string": lambda d, c: "tracker-run",
    "null": lambda d, c: None,
    "empty": lambda d, c: {},
}


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
@pytest.mark.parametrize("mutation", list(DESCRIPTORS))
def test_a_hostile_descriptor_is_refused_or_imported_harmlessly(
        baseline: Baseline, tmp_path: Path, mutation: str, suffix: str) -> None:
    import yaml

    canary = tmp_path / "startup" / "00-x.py"
    canary.parent.mkdir()
    descriptor = DESCRIPTORS[mutation](_descriptor(baseline, tmp_path), canary)
    path = tmp_path / f"hostile{suffix}"
    text = (json.dumps(descriptor) if suffix == ".json"
            else yaml.safe_dump(descriptor, allow_unicode=True))
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    answer(lambda: baseline.catalog.import_run(path))
    assert not canary.exists(), "a descriptor wrote a file"
    baseline.check_intact()
    found = answer(lambda: baseline.catalog.sql("SELECT count(*) AS n FROM metrics"))
    assert not isinstance(found, TrackerError), found


def _billion_laughs() -> bytes:
    """Ten levels of nine aliases each: 9**10 labels once expanded, 1 KB as text."""
    lines = ["format: tracker-run", "version: 1", "a: &a [x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 10):
        name, previous = chr(ord("a") + level), chr(ord("a") + level - 1)
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 9) + "]")
    lines.append("run: {id: '0000000000bomb00', name: bomb, labels: *j}")
    return ("\n".join(lines) + "\n").encode()


RAW_DESCRIPTORS: dict[str, bytes] = {
    "billion laughs": _billion_laughs(),
    "not utf-8": b"format: tracker-run\nrun: {name: \xff\xfe}\n",
    "binary": bytes(range(256)) * 10,
    "python object tag": b"!!python/object/apply:os.system ['touch /tmp/pwned']\n",
    "deep nesting": b"[" * 100_000 + b"]" * 100_000,
    "huge scalar": b"format: tracker-run\nrun: {name: '" + b"x" * 5_000_000 + b"'}\n",
    "empty": b"",
    "json bomb": b'{"format": "tracker-run", "run": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
}


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
@pytest.mark.parametrize("name", list(RAW_DESCRIPTORS))
def test_a_hostile_descriptor_file_is_refused(baseline: Baseline, tmp_path: Path, name: str,
                                              suffix: str) -> None:
    path = tmp_path / f"raw{suffix}"
    path.write_bytes(RAW_DESCRIPTORS[name])
    result = answer(lambda: baseline.catalog.import_run(path))
    assert isinstance(result, TrackerError), f"imported {result!r}"
    assert not Path("/tmp/pwned").exists()
    baseline.check_intact()


def test_descriptor_paths_that_are_not_files_are_refused(baseline: Baseline,
                                                         tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    folder = tmp_path / "folder.json"
    folder.mkdir()
    for path in (fifo, folder, tmp_path / "missing.json", Path("/dev/zero"), Path("/proc/self")):
        result = answer(lambda p=path: baseline.catalog.import_run(p), seconds=10)
        assert isinstance(result, TrackerError), (path, result)
    baseline.check_intact()


EXPORT_TARGETS: dict[str, Callable[[Baseline, Path], Path]] = {
    "the catalog itself": lambda b, t: b.catalog.path,
    "the catalog's lock": lambda b, t: Path(str(b.catalog.path) + ".lock"),
    "an existing file": lambda b, t: t / "mine.txt",
    "a folder": lambda b, t: t,
    "a missing folder": lambda b, t: t / "missing" / "x.json",
    "/dev/full": lambda b, t: Path("/dev/full"),
}


@pytest.mark.parametrize("target", list(EXPORT_TARGETS))
def test_export_never_overwrites_what_it_should_not(baseline: Baseline, tmp_path: Path,
                                                    target: str) -> None:
    mine = tmp_path / "mine.txt"
    mine.write_text("precious")
    path = EXPORT_TARGETS[target](baseline, tmp_path)
    before = path.read_bytes() if path.is_file() else None
    result = answer(lambda: baseline.catalog.export_run(baseline.ids[0], path))
    assert isinstance(result, TrackerError), result
    if before is not None:
        assert path.read_bytes() == before
    assert mine.read_text() == "precious"
    baseline.check_intact()


# -- sql() --------------------------------------------------------------------------------------

SQL: list[str] = [
    "", " ", ";", "SELECT 1; SELECT 2", "SELECT 1;", "DELETE FROM runs", "DROP TABLE runs",
    "UPDATE runs SET name = 'x'", "INSERT INTO runs (id) VALUES ('x')", "TRUNCATE runs",
    "ALTER TABLE runs ADD COLUMN x INT", "CREATE TABLE x (a INT)", "CREATE TABLE memory.x (a INT)",
    "CREATE TEMP TABLE x AS SELECT 1", "CREATE VIEW v AS SELECT 1", "CREATE MACRO m() AS 1",
    "USE memory", "DETACH catalog", "ATTACH '{other}' AS o", "ATTACH ':memory:' AS m",
    "USE memory; DETACH catalog; ATTACH '{catalog}' AS catalog; DELETE FROM catalog.runs; SELECT 1",
    "COPY runs TO '{canary}'", "COPY (SELECT 1) TO '{canary}' (FORMAT csv)",
    "EXPORT DATABASE '{canary_dir}'", "IMPORT DATABASE '{canary_dir}'",
    "SELECT * FROM read_csv('/etc/passwd')", "SELECT * FROM read_text('/etc/hostname')",
    "SELECT * FROM read_blob('/etc/hostname')", "SELECT * FROM glob('/root/*')",
    "SELECT * FROM read_json('/etc/hostname')", "SELECT * FROM read_parquet('/x.parquet')",
    "SELECT * FROM '/etc/passwd'", "SELECT * FROM 'https://example.com/x.csv'",
    "SELECT getenv('HOME')", "SET GLOBAL memory_limit = '1MB'", "SET memory_limit = '1MB'",
    "RESET memory_limit", "PRAGMA enable_profiling", "SET enable_external_access = true",
    "SET lock_configuration = false", "INSTALL httpfs", "LOAD httpfs", "CHECKPOINT",
    "VACUUM", "CALL pragma_version()", "BEGIN", "COMMIT", "ROLLBACK", "PREPARE p AS SELECT 1",
    "EXECUTE p", "DEALLOCATE p", "SELECT * FROM query('DELETE FROM runs')",
    "WITH x AS (DELETE FROM runs RETURNING *) SELECT * FROM x", "SELECT 1 FROM nonexistent",
    "SELECT nonsense FROM runs", "SELEC 1", "SELECT '\ud800'", "SELECT 'a' || '\x00'",
    "SELECT count(*) FROM runs", "SELECT * FROM runs, runs r2 LIMIT 5", "SELECT $1",
    "SELECT ? + ?", "EXPLAIN SELECT 1", "DESCRIBE runs", "SHOW TABLES", "SUMMARIZE runs",
    "FROM runs", "VALUES (1)", "SELECT * FROM duckdb_settings()",
    "SELECT * FROM duckdb_databases()",
    "/* comment */ SELECT 1", "SELECT 1 -- ; DROP TABLE runs",
]


@pytest.mark.parametrize("statement", SQL, ids=_ids(SQL))
def test_sql_answers_reads_and_refuses_everything_else(baseline: Baseline, tmp_path: Path,
                                                      statement: str) -> None:
    other = baseline.other
    other_rows = other.runs()["id"].tolist()
    canary = tmp_path / "canary.csv"
    canary_dir = tmp_path / "exported"
    text = statement.format(other=other.path, catalog=baseline.catalog.path, canary=canary,
                            canary_dir=canary_dir)
    answer(lambda: baseline.catalog.sql(text))
    assert not canary.exists() and not canary_dir.exists(), "sql() wrote a file"
    assert other.runs()["id"].tolist() == other_rows, "sql() changed another catalog"
    baseline.check_intact()
    # The process's own writes still work: no setting of tracker's instances was changed.
    with baseline.catalog.start_run("after-sql") as run:
        run.log_metric("m", 1.0)
    baseline.catalog.flush()


SQL_PARAMS: list[Any] = [None, [], [1], [1, 2, 3], "ab", 5, [object()], {"a": 1}, [b"x"],
                         [10**5000]]


@pytest.mark.parametrize("params", SQL_PARAMS, ids=_ids(SQL_PARAMS))
def test_sql_parameters_are_bound_or_refused(baseline: Baseline, params: Any) -> None:
    answer(lambda: baseline.catalog.sql("SELECT ? AS x", params))
    baseline.check_intact()


@pytest.mark.parametrize("query", [None, 5, b"SELECT 1", ["SELECT 1"], object()],
                         ids=["None", "int", "bytes", "list", "object"])
def test_sql_refuses_queries_that_are_not_text(baseline: Baseline, query: Any) -> None:
    result = answer(lambda: baseline.catalog.sql(query))
    assert isinstance(result, TrackerError), result


# -- catalog paths ----------------------------------------------------------------------------


def _sqlite(path: Path) -> None:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE runs (id TEXT)")
    con.commit()
    con.close()


def _socket(path: Path) -> None:
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.close()


CATALOG_PATHS: dict[str, Callable[[Path], Path | str]] = {
    "a folder": lambda t: (t / "cat.duckdb").mkdir() or t / "cat.duckdb",
    "a fifo": lambda t: os.mkfifo(t / "cat.duckdb") or t / "cat.duckdb",
    "a socket": lambda t: _socket(t / "cat.duckdb") or t / "cat.duckdb",
    "a symlink to /dev/null": lambda t: os.symlink("/dev/null", t / "c.duckdb") or t / "c.duckdb",
    "a symlink to /dev/zero": lambda t: os.symlink("/dev/zero", t / "z.duckdb") or t / "z.duckdb",
    "a dangling symlink": lambda t: os.symlink(t / "nowhere", t / "c.duckdb") or t / "c.duckdb",
    "a csv file": lambda t: (t / "some.csv").write_text("a,b\n1,2\n") and t / "some.csv",
    "a parquet name": lambda t: (t / "x.parquet").write_bytes(b"PAR1\x00PAR1") and t / "x.parquet",
    "an empty file": lambda t: (t / "empty.duckdb").write_bytes(b"") or t / "empty.duckdb",
    "random bytes": lambda t: (t / "r.duckdb").write_bytes(os.urandom(10_000)) and t / "r.duckdb",
    "a sqlite file": lambda t: _sqlite(t / "s.db") or t / "s.db",
    "a file under a file": lambda t: (t / "f").write_text("x") and t / "f" / "cat.duckdb",
    "a lock that is a folder": lambda t: (t / "l.duckdb.lock").mkdir() or t / "l.duckdb",
    "a lock that is a fifo": lambda t: os.mkfifo(t / "m.duckdb.lock") or t / "m.duckdb",
    "a url": lambda t: "postgresql://user@host/db",  # type: ignore[dict-item,return-value]
    "a NUL in the name": lambda t: t / "a\x00b.duckdb",
    "a very long name": lambda t: t / ("n" * 300 + ".duckdb"),
    "a very deep path": lambda t: t.joinpath(*["d"] * 2000) / "c.duckdb",
    "a folder's own path": lambda t: t,
    "a surrogate name": lambda t: t / "\ud800.duckdb",
    "a name that is not UTF-8": lambda t: t / os.fsdecode(b"\xff.duckdb"),
    "a folder that takes no files": lambda t: Path("/proc/x.duckdb"),
}


@pytest.mark.parametrize("case", list(CATALOG_PATHS))
def test_an_unusable_catalog_path_is_refused_at_once(baseline: Baseline, tmp_path: Path,
                                                     case: str) -> None:
    path = CATALOG_PATHS[case](tmp_path)
    before = Path(path).read_bytes() if _is_regular(path) else None

    def use() -> Any:
        catalog = tracker.Catalog(path)
        catalog.runs()
        with catalog.start_run("x"):
            pass
        catalog.flush()

    answer(use, seconds=10)
    if before is not None:
        assert Path(path).read_bytes() == before, "a file that is not a catalog was changed"
    baseline.check_intact()


def _is_regular(path: Path | str) -> bool:
    try:
        return Path(path).is_file() and not Path(path).is_symlink()
    except (OSError, ValueError):
        return False


# -- notebook metadata ---------------------------------------------------------------------------

METADATA: list[Any] = [
    {"labels": 5}, {"labels": True}, {"labels": [1, 2]}, {"labels": ["\x00"]},
    {"labels": ["x"] * 1000}, {"labels": [["nested"]]}, {"project": ""}, {"project": "\ud800"},
    {"project": "p" * 10_000}, {"project": {"x": 1}}, {"name": 5}, {"name": "\x1b[31mred"},
    {"catalog": 123}, {"catalog": "postgresql://u@h/db"}, {"catalog": ""}, {"catalog": "\x00"},
    {"catalog": ["a.duckdb"]}, {"catalog": "/dev/null"}, {"catalog": "sub/../../x/../fifo"},
    {"catalog": "{baseline}"}, {"capture": 5}, {"capture": {"enabled": "no"}},
    {"capture": {"include": [5]}}, {"capture": {"exclude": "**"}}, {"capture": {"include": "/"}},
    {"redact": "yes"}, {"redact": {"keys": ["("]}}, {"redact": {"values": 5}},
    {"redact": {"values": ["(a+)+$"]}}, "not an object", [1, 2], 5, {"unknown": {"deep": [1]}},
]


def _notebook_with(path: Path, metadata: Any) -> Path:
    """A one-cell notebook whose ``metadata.tracker`` is ``metadata``."""
    document = {"cells": [{"cell_type": "code", "id": "c0", "execution_count": None,
                           "metadata": {}, "outputs": [], "source": "x = 1"}],
                "metadata": {"tracker": metadata}, "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


@pytest.mark.parametrize("metadata", METADATA, ids=_ids(METADATA))
def test_hostile_notebook_metadata_never_stops_the_notebook_or_its_run(
        baseline: Baseline, ip: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        metadata: Any) -> None:
    from tracker import ipython

    os.mkfifo(tmp_path / "fifo")
    if isinstance(metadata, dict) and metadata.get("catalog") == "{baseline}":
        metadata = {"catalog": str(baseline.catalog.path)}
    monkeypatch.setenv("TRACKER_NOTEBOOK", str(_notebook_with(tmp_path / "odd.ipynb", metadata)))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("TRACKER_CATALOG")  # so that metadata.tracker.catalog counts
    tracker.use_catalog(None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert ip.run_cell("%load_ext tracker", store_history=True).success
        assert ip.run_cell("y = 6 * 7", store_history=True).success and ip.user_ns["y"] == 42
    assert all(issubclass(w.category, TrackerWarning) for w in caught), caught
    assert len(caught) <= 2, [str(w.message) for w in caught]
    session = ipython.session_of(ip)
    assert session is not None and session.run is not None and session.catalog is not None
    session.catalog.flush()
    assert session.catalog.get_run(session.run.id).name  # the run is recorded
    assert not (tmp_path / "123").exists() and not (tmp_path / "postgresql:").exists()
    baseline.check_intact()
