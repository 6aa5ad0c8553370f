"""Querying runs as DataFrames, finding one run, artifacts, lineage and raw SQL."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import backends
import pandas as pd
import pytest

import tracker
from tracker import _ids


@pytest.fixture
def three_runs(catalog: tracker.Catalog) -> list[str]:
    ids = []
    for name, lr, model, acc, status in [("a", 0.1, "cnn", 0.7, "completed"),
                                         ("b", 0.01, "mlp", 0.9, "failed"),
                                         ("c", 0.001, "cnn", None, "completed")]:
        run = catalog.start_run(name, params={"lr": lr, "model": model, "epochs": 3,
                                              "shuffle": True})
        if acc is not None:
            run.log_metric("acc", acc)
        run.end(status)
        ids.append(run.id)
    return ids


def test_runs_are_one_row_each_with_typed_param_and_metric_columns(
        reads: tracker.Catalog, catalog: tracker.Catalog, three_runs: list[str]) -> None:
    frame = reads.runs()
    assert list(frame["name"]) == ["c", "b", "a"]  # newest first
    assert frame["params.lr"].dtype == "float64"
    assert frame["params.epochs"].dtype == "Int64"  # pandas' nullable dtypes: see below
    assert frame["params.shuffle"].dtype == "boolean"
    assert list(frame["params.model"]) == ["cnn", "mlp", "cnn"]
    assert frame["metrics.acc"].isna().tolist() == [True, False, False]
    assert isinstance(frame["started_at"].dtype, pd.DatetimeTZDtype)


def test_int_and_bool_params_keep_their_type_when_some_runs_lack_them(
        reads: tracker.Catalog, catalog: tracker.Catalog) -> None:
    with catalog.start_run("with", params={"epochs": 3, "shuffle": False}):
        pass
    with catalog.start_run("without"):
        pass
    frame = reads.runs(order_by="name")
    assert frame["params.epochs"].dtype == "Int64"
    assert frame["params.epochs"].iloc[0] == 3 and frame["params.epochs"].isna().iloc[1]
    assert frame["params.shuffle"].dtype == "boolean"
    assert not frame["params.shuffle"].iloc[0] and frame["params.shuffle"].isna().iloc[1]
    assert frame.to_csv(columns=["name", "params.epochs"], index=False).splitlines() == [
        "name,params.epochs", "with,3", "without,"]


def test_filters_compare_numbers_as_numbers(reads: tracker.Catalog, catalog: tracker.Catalog,
                                            three_runs: list[str]) -> None:
    frame = reads.runs("params.lr > 0.005 and metrics.acc >= 0.8")
    assert list(frame["name"]) == ["b"]
    assert list(reads.runs("params.model = 'cnn' or status = 'failed'")["name"]) == \
        ["c", "b", "a"]
    assert list(reads.runs(status="completed", **{"params.model": "cnn"})["name"]) == ["c", "a"]


def test_order_by_puts_missing_values_last(reads: tracker.Catalog, catalog: tracker.Catalog,
                                           three_runs: list[str]) -> None:
    assert list(reads.runs(order_by="metrics.acc DESC")["name"]) == ["b", "a", "c"]
    assert list(reads.runs(order_by=["metrics.acc"])["name"]) == ["a", "b", "c"]
    page = reads.runs(order_by="name", limit=2, offset=1)
    assert list(page["name"]) == ["b", "c"]
    assert page.attrs["total"] == 3


def test_a_bad_filter_names_the_position(catalog: tracker.Catalog) -> None:
    with pytest.raises(ValueError, match="position"):
        catalog.runs("params.lr >")


def test_a_bad_filter_is_refused_before_the_catalog_is_opened(catalog: tracker.Catalog) -> None:
    for call in (lambda: catalog.runs("params.lr >"), lambda: catalog.runs(order_by="acc DESC"),
                 lambda: catalog.runs(**{"params.": 1}), lambda: catalog.count_runs("lr ="),
                 lambda: catalog.delete_runs("metrics.acc < 'x' AND")):
        with pytest.raises(ValueError):
            call()
    assert not catalog.path.exists()  # nothing was created for a query that could not run


def test_count_runs_groups_by_status_or_a_param(reads: tracker.Catalog, catalog: tracker.Catalog,
                                                three_runs: list[str]) -> None:
    by_status = reads.count_runs()
    assert dict(zip(by_status["status"], by_status["count"])) == {"completed": 2, "failed": 1}
    by_model = reads.count_runs(by="params.model")
    assert dict(zip(by_model["params.model"], by_model["count"])) == {"cnn": 2, "mlp": 1}
    assert int(reads.count_runs("params.lr < 0.05", by=None)["count"][0]) == 2


# pinned: tags set after the fact go through the file catalog's set_tags, which the mirror
# (tests/backends.py) is not fed (tags by reference on PostgreSQL: test_manage.py)
@pytest.mark.parametrize("read_backend", backends.FILE_ONLY)
def test_tags_are_columns_filters_sort_keys_and_groups(
        reads: tracker.Catalog, catalog: tracker.Catalog, three_runs: list[str]) -> None:
    a, b, c = three_runs
    catalog.set_tags({"source": "manual", "stage": "final"}, run=a)
    catalog.set_tag("source", "cli", run=b)
    frame = reads.runs()
    assert frame["tags.source"].tolist()[1:] == ["cli", "manual"]
    assert frame["tags.source"].isna().tolist() == [True, False, False]
    assert list(frame.columns[-2:]) == ["tags.source", "tags.stage"]  # after params, metrics
    assert list(reads.runs("tags.source = 'cli'")["name"]) == ["b"]
    assert list(reads.runs("tag.stage IS NULL")["name"]) == ["c", "b"]
    assert list(reads.runs("`tags`.source LIKE '%a%'", order_by="name")["name"]) == ["a"]
    assert list(reads.runs(**{"tags.source": ["cli", "manual"]}, order_by="tags.source")[
        "name"]) == ["b", "a"]
    page = reads.runs(order_by="tags.source DESC", limit=1)
    assert (list(page["name"]), page["tags.source"].tolist()) == (["a"], ["manual"])
    counts = reads.count_runs(by="tags.source")
    assert list(zip(counts["tags.source"].fillna("-"), counts["count"])) == [
        ("cli", 1), ("manual", 1), ("-", 1)]
    assert reads.keys()[-2:] == ["tags.source", "tags.stage"]
    assert "tags.stage" not in reads.runs("name = 'b'").columns  # no run here has it


# pinned: tags set after the fact go through the file catalog's set_tags, which the mirror
# (tests/backends.py) is not fed (tags by reference on PostgreSQL: test_manage.py)
@pytest.mark.parametrize("read_backend", backends.FILE_ONLY)
def test_a_filter_on_a_key_no_run_has_warns_with_the_closest_keys(
        reads: tracker.Catalog, catalog: tracker.Catalog, three_runs: list[str]) -> None:
    catalog.set_tag("source", "cli", run=three_runs[0])
    with pytest.warns(tracker.TrackerWarning) as caught:
        assert len(reads.runs("params.alpah > 0.3 OR params.lr > 0.05")) == 1
    assert [str(w.message) for w in caught] == ["no run has params.alpah"]
    with pytest.warns(tracker.TrackerWarning,
                      match=r"^no run has params\.mdel; did you mean params\.model\?$"):
        assert reads.runs("params.mdel = 'cnn'").empty
    with pytest.warns(tracker.TrackerWarning, match=r"did you mean tags\.source\?"):
        reads.runs(order_by="tags.sourc")
    with pytest.warns(tracker.TrackerWarning, match=r"did you mean metrics\.acc\?"):
        reads.count_runs(by="metrics.ac")
    with pytest.warns(tracker.TrackerWarning, match=r"params\.acc; did you mean metrics\.acc\?"):
        reads.runs("params.acc > 0.5")


def test_points_at_one_step_in_the_same_microsecond_resolve_to_the_last_logged(
        reads: tracker.Catalog, catalog: tracker.Catalog, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    with catalog.start_run("quick") as run:
        monkeypatch.setattr(time, "time", lambda: 1_700_000_000.0)  # a coarse clock
        run.log_metric("loss", 0.4, step=10)
        run.log_metric("loss", 0.3, step=10)
        monkeypatch.undo()
    frame = reads.runs(order_by="metrics_at_max_step.loss")
    assert frame["metrics_at_max_step.loss"].tolist() == [0.3] == frame["metrics.loss"].tolist()


def test_metrics_are_the_last_logged_and_mlflow_s_latest_is_the_largest_step(
        reads: tracker.Catalog, catalog: tracker.Catalog) -> None:
    with catalog.start_run("resumed") as run:
        run.log_metric("loss", 0.4, step=10)
        run.log_metric("loss", 0.3, step=10)  # the same step again: the last logged of it
        run.log_metric("loss", 0.9, step=2)  # a resumed job logs an earlier step again
    with catalog.start_run("stepless") as other:
        other.log_metric("loss", 0.7)
        other.log_metric("loss", 0.6)
    frame = reads.runs(order_by="metrics_at_max_step.loss")
    assert list(frame["name"]) == ["resumed", "stepless"]
    assert frame["metrics.loss"].tolist() == [0.9, 0.6]
    assert frame["metrics_at_max_step.loss"].tolist() == [0.3, 0.6]
    assert list(reads.runs("metrics_at_max_step.loss < 0.5")["name"]) == ["resumed"]
    assert list(reads.runs("metrics.loss < 0.5")["name"]) == []
    assert "metrics_at_max_step.loss" not in reads.runs().columns  # only when named
    counts = reads.count_runs(by="metric_at_max_step.loss")
    assert sorted(counts["metric_at_max_step.loss"]) == [0.3, 0.6]
    with pytest.warns(tracker.TrackerWarning, match=r"did you mean metrics_at_max_step\.loss"):
        reads.runs("metrics_at_max_step.los > 1")


def test_a_run_is_found_by_id_short_id_prefix_or_key(
        reads: tracker.Catalog, catalog: tracker.Catalog, three_runs: list[str]) -> None:
    run_id = three_runs[1]
    assert reads.get_run(run_id).name == "b"
    assert reads.get_run(f"tracker://default/runs/{run_id}").name == "b"
    assert reads.get_run(_ids.short_id(run_id)).name == "b"  # as listings show it
    assert reads.get_run(_ids.short_id(run_id)[:6]).name == "b"
    with pytest.raises(tracker.RunNotFoundError):
        reads.get_run("zzzzzzzz")
    with pytest.raises(tracker.ArgumentError, match="'01m' is too short to name a run: give "
                                                    "4 or more characters"):
        reads.get_run("01m")


def test_an_ambiguous_prefix_lists_every_run_it_matches(
        reads: tracker.Catalog, catalog: tracker.Catalog, three_runs: list[str]) -> None:
    shared = _common_prefix(three_runs)  # runs made together share the start of their ids
    with pytest.raises(tracker.AmbiguousRunError) as caught:
        reads.get_run(shared)
    assert str(caught.value) == (f"{shared!r} matches 3 runs ({', '.join(three_runs[::-1])}); "
                                 "give more characters")


def test_an_ambiguous_prefix_of_many_runs_says_how_many_and_lists_the_newest(
        reads: tracker.Catalog, catalog: tracker.Catalog) -> None:
    ids = []
    for index in range(25):
        with catalog.start_run(f"r{index}") as run:
            ids.append(run.id)
    shared = _common_prefix(ids)
    with pytest.raises(tracker.AmbiguousRunError, match=(
            rf"'{shared}' matches 25 runs \(the 10 newest: {', '.join(ids[:-11:-1])}\)")):
        reads.get_run(shared)
    assert [reads.get_run(_ids.short_id(run_id)).id for run_id in ids] == ids


def test_short_ids_tell_apart_100000_runs_made_within_one_minute(
        monkeypatch: pytest.MonkeyPatch) -> None:
    start = time.time_ns()
    ticks = iter(range(start, start + 60 * 10**9, 600_000))  # 100,000 ids in 60 seconds
    monkeypatch.setattr(_ids, "time", SimpleNamespace(time_ns=lambda: next(ticks)))
    ids = [_ids.new_run_id() for _ in range(100_000)]
    stamps = [run_id[:10] for run_id in ids]
    assert stamps == sorted(stamps)  # ids still sort by time, to the millisecond
    shared = Counter(_ids.short_id(run_id) for run_id in ids)
    # 40 bits each: on average 0.005 pairs of the 100,000 share a short id
    assert sum(count for count in shared.values() if count > 1) <= 2
    assert {len(_ids.short_id(run_id)) for run_id in ids} == {8}


def _unique(prefix: str, ids: list[str]) -> bool:
    return sum(i.startswith(prefix) for i in ids) == 1


def _common_prefix(ids: list[str]) -> str:
    prefix = ids[0]
    for other in ids[1:]:
        while not other.startswith(prefix):
            prefix = prefix[:-1]
    return prefix


def _featurize_then_train(catalog: tracker.Catalog,
                          tmp_path: Path) -> tuple[Path, tracker.Run, tracker.Run]:
    """A run that writes features.parquet, and one that reads it."""
    features = tmp_path / "features.parquet"
    features.write_bytes(b"PAR1 pretend")
    with catalog.start_run("featurize") as producer:
        producer.log_output(features)
    with catalog.start_run("train") as consumer:
        consumer.log_input(features)
    return features, producer, consumer


def test_lineage_links_a_reader_to_the_writer(
        reads: tracker.Catalog, catalog: tracker.Catalog, tmp_path: Path) -> None:
    features, producer, consumer = _featurize_then_train(catalog, tmp_path)
    up = reads.lineage(consumer.id)
    assert list(zip(up["direction"], up["run_name"])) == [("upstream", "featurize")]
    down = reads.lineage(producer.id)
    assert list(zip(down["direction"], down["run_name"])) == [("downstream", "train")]
    assert list(reads.artifacts(consumer.id)["uri"]) == [str(features)]


def test_lineage_and_artifacts_leave_out_deleted_runs_unless_asked(
        reads: tracker.Catalog, catalog: tracker.Catalog, tmp_path: Path) -> None:
    features, producer, consumer = _featurize_then_train(catalog, tmp_path)
    tracker.use_catalog(reads)
    tracker.delete_run(consumer.id)
    assert reads.lineage(producer.id).empty
    assert list(tracker.lineage(producer.id, include_deleted=True)["run_name"]) == ["train"]
    assert list(tracker.artifacts()["run_name"]) == ["featurize"]
    assert list(tracker.artifacts(include_deleted=True)["run_name"]) == ["featurize", "train"]
    assert list(reads.artifacts(consumer.id)["role"]) == ["input"]  # named: shown


def test_sql_reads_but_never_writes(
        reads: tracker.Catalog, catalog: tracker.Catalog, three_runs: list[str]) -> None:
    assert int(reads.sql("SELECT count(*) AS n FROM runs")["n"][0]) == 3
    # $1: both back ends bind it from a list (PostgreSQL has no ?)
    assert reads.sql("SELECT name FROM runs WHERE name = $1", ["a"])["name"].tolist() == ["a"]
    with pytest.raises(tracker.ReadOnlySQLError, match="read-only"):
        reads.sql("DELETE FROM runs")
    assert len(reads.runs()) == 3


def test_keys_lists_every_params_metrics_and_tags_column(
        reads: tracker.Catalog, catalog: tracker.Catalog) -> None:
    with catalog.start_run(params={"lr": 0.1, "Model": "cnn"}) as run:
        run.log_metric("acc", 0.5)
        run.set_tag("source", "cli")
    with catalog.start_run(params={"a.b": 1}):
        pass
    assert reads.keys() == ["params.Model", "params.a.b", "params.lr", "metrics.acc",
                              "tags.source"]
    assert set(reads.keys()) == {c for c in reads.runs().columns if "." in c}


def test_a_key_names_its_run_only_in_the_run_s_own_project(
        reads: tracker.Catalog, catalog: tracker.Catalog) -> None:
    with catalog.start_run("vision-run", project="vision") as run:
        pass
    assert reads.get_run(f"tracker://vision/runs/{run.id}").name == "vision-run"
    assert reads.get_run(f"tracker://vision/runs/{run.id[:10]}").name == "vision-run"
    for call in (catalog.get_run, catalog.delete_run, catalog.lineage):
        with pytest.raises(tracker.RunNotFoundError):
            call(f"tracker://other/runs/{run.id}")
    assert reads.get_run(run.id).deleted_at is None  # the wrong key deleted nothing


@pytest.mark.parametrize("ref", [None, 5, 1.5, b"01m7zw", ["01m7zw"]])
def test_a_ref_that_is_not_text_is_an_argument_error(
        reads: tracker.Catalog, catalog: tracker.Catalog, ref: object) -> None:
    with pytest.raises(tracker.ArgumentError, match="run reference must be text"):
        reads.get_run(ref)  # type: ignore[arg-type]


@pytest.mark.parametrize("ref", [
    "", "   ", "a" * 1_000_000, "01m7zw\x00kkx6", "\x1b[31m01m7zw", "' OR 1=1 --",
    "01m7zw\ud800", "tracker://", "tracker://default/runs/", "%", "_" * 8])
def test_a_hostile_ref_matches_no_run(
        reads: tracker.Catalog, catalog: tracker.Catalog, three_runs: list[str], ref: str) -> None:
    with pytest.raises(tracker.RunNotFoundError) as caught:
        reads.get_run(ref)
    assert len(str(caught.value)) < 200  # a huge ref is cut in the message


@pytest.mark.parametrize(("call", "argument"), [
    (lambda c: c.runs(where=123), "where"),
    (lambda c: c.runs(b"status = 'completed'"), "where"),
    (lambda c: c.runs(limit=-1), "limit"),
    (lambda c: c.runs(limit="5"), "limit"),
    (lambda c: c.runs(limit=True), "limit"),
    (lambda c: c.runs(limit=2.5), "limit"),
    (lambda c: c.runs(offset=-1), "offset"),
    (lambda c: c.runs(offset=None), "offset"),
    (lambda c: c.runs(order_by=5), "order_by"),
    (lambda c: c.runs(order_by=["metrics.x", 3]), "order_by"),
    (lambda c: c.runs(order_by=b"name"), "order_by"),
    (lambda c: c.runs("name = '" + "a" * 1_000_000 + "'"), "where"),
    (lambda c: c.count_runs(by=5), "by"),
    (lambda c: c.count_runs(where=["status"]), "where"),
    (lambda c: c.metric_history("01m7zwkkx6hq", key=5), "key"),
    (lambda c: c.metric_history("01m7zwkkx6hq", key="\ud800"), "key"),
    (lambda c: c.artifacts(role="inputs"), "role"),
    (lambda c: c.artifacts(role=1), "role"),
])
def test_bad_read_arguments_are_argument_errors_naming_the_argument(
        catalog: tracker.Catalog, call: Any, argument: str) -> None:
    with pytest.raises(tracker.ArgumentError, match=f"^{argument} "):
        call(catalog)
    assert not catalog.path.exists()  # refused before the catalog was opened, or created


def test_artifacts_role_names_the_roles_there_are(
        reads: tracker.Catalog, catalog: tracker.Catalog) -> None:
    with pytest.raises(tracker.ArgumentError) as caught:
        reads.artifacts(role="inputs")
    assert all(role in str(caught.value) for role in ("'input'", "'output'", "'notebook'"))
    assert reads.artifacts(role="notebook").empty


@pytest.mark.parametrize(("call", "error"), [
    (lambda c: c.runs("(" * 200 + "status = 'completed'" + ")" * 200), tracker.FilterSyntaxError),
    (lambda c: c.runs("not " * 2000 + "status = 'completed'"), tracker.FilterSyntaxError),
    (lambda c: c.runs("name = 'a\ud800b'"), tracker.FilterSyntaxError),
    (lambda c: c.runs(name="a\ud800b"), tracker.FilterSyntaxError),
    (lambda c: c.runs(**{"nonsense": 1}), tracker.FilterSyntaxError),
    (lambda c: c.count_runs(by="nonsense"), tracker.FilterSyntaxError),
    (lambda c: c.runs(" or ".join(["status = 'completed'"] * 50_000)), tracker.ArgumentError),
])
def test_hostile_filters_are_tracker_errors(
        reads: tracker.Catalog, catalog: tracker.Catalog, call: Any,
        error: type[Exception]) -> None:
    started = time.perf_counter()
    with pytest.raises(error):
        call(catalog)
    assert time.perf_counter() - started < 1.0


# recording a name holding NUL into PostgreSQL (whose text cannot hold one) is the recording
# port's to decide
@pytest.mark.parametrize("read_backend", backends.FILE_ONLY)
def test_a_filter_with_a_nul_byte_is_a_value_like_any_other(
        reads: tracker.Catalog, catalog: tracker.Catalog) -> None:
    catalog.start_run("a\x00b").end()
    assert list(reads.runs("name = 'a\x00b'")["name"]) == ["a\x00b"]


def _hold_read_lock(catalog: tracker.Catalog, ready: Path) -> subprocess.Popen[bytes]:
    """Another process holding the catalog's shared lock, as a long sql() or a widget does."""
    script = textwrap.dedent(f"""
        import time
        from tracker.storage.lock import locked
        with locked({str(catalog.path)!r}, write=False, timeout=10):
            open({str(ready)!r}, "w").close()
            time.sleep(60)
    """)
    holder = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.monotonic() + 30
    while not ready.exists():
        assert time.monotonic() < deadline, "helper process did not start"
        time.sleep(0.05)
    return holder


def test_a_read_goes_on_while_another_process_reads(tmp_path: Path) -> None:
    catalog = tracker.Catalog(tmp_path / "catalog.duckdb", timeout=5)
    run = catalog.start_run("mine")
    assert catalog.runs()["name"].tolist() == ["mine"]
    holder = _hold_read_lock(catalog, tmp_path / "ready")
    try:
        run.log_metric("loss", 0.5)  # not written yet: this read's flush needs the write lock
        started = time.monotonic()
        assert catalog.runs()["name"].tolist() == ["mine"]  # without its newest events
        assert time.monotonic() - started < 4
    finally:
        holder.kill()
        holder.wait()
    run.end()
    assert catalog.metric_history(run.id)["value"].tolist() == [0.5]  # written after all


def test_metric_history_of_a_key_that_is_not_text_is_an_argument_error(
        reads: tracker.Catalog, catalog: tracker.Catalog) -> None:
    with catalog.start_run("r") as run:
        run.log_metric("loss", 0.5)
    with pytest.raises(tracker.ArgumentError, match="lone surrogate"):
        reads.metric_history(run.id, "\ud800")
    assert reads.metric_history(run.id, "loss")["value"].tolist() == [0.5]


def test_a_filter_value_holding_nul_is_a_value_or_on_postgresql_an_argument_error(
        reads: tracker.Catalog, catalog: tracker.Catalog, read_backend: str) -> None:
    catalog.start_run("ab").end()
    calls = [(lambda: len(reads.runs("name = 'a\x00b'")), 0),
             (lambda: len(reads.runs(name="a\x00b")), 0),
             (lambda: reads.count_runs("name = 'a\x00b' or name = 'ab'", by=None)["count"][0], 1)]
    for call, expected in calls:
        if read_backend == "file":
            assert call() == expected
        else:  # PostgreSQL's text holds no NUL: said, not a driver's error
            with pytest.raises(tracker.ArgumentError, match="NUL character"):
                call()
