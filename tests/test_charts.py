"""Tests for tracker.widgets.charts and tracker.samples: charts across the filtered runs, drawn
from a sample the catalog chooses."""

from __future__ import annotations

import re

import pandas as pd
import pytest

import tracker
from tracker import samples
from tracker.errors import ArgumentError, FilterSyntaxError
from tracker.widgets import RunCharts, RunTable

SCRIPT = "<script>alert(1)</script>"


@pytest.fixture
def sweep(reads: tracker.Catalog, catalog: tracker.Catalog) -> list[str]:
    """Twelve runs: lr and optimizer swept, acc rising with lr; one run in the trash (of the
    catalog the test reads: deletes on the way to PostgreSQL are not fed to it)."""
    ids = []
    for i in range(12):
        run = catalog.start_run(f"sweep #{i + 1}", params={
            "lr": 0.01 * (i + 1), "optimizer": "adam" if i % 2 else SCRIPT, "layers": i % 3})
        run.log_metric("acc", 0.5 + 0.04 * i)
        run.log_metric("loss", 1.0 - 0.05 * i)
        run.end()
        ids.append(run.id)
    reads.delete_runs(ids=ids[-1:])
    return ids


def test_sample_reads_the_fields_of_the_filtered_runs(
        reads: tracker.Catalog, catalog: tracker.Catalog, sweep: list[str]) -> None:
    drawn = samples.sample(reads, "params.lr > 0.05", ["params.lr", "metrics.acc"])

    assert drawn.total == 6  # 0.06 .. 0.11; the twelfth is in the trash
    assert sorted(drawn.runs["id"]) == sorted(sweep[5:11])
    assert list(drawn.runs.columns) == ["id", "name", "params.lr", "metrics.acc"]


def test_sample_is_at_most_the_limit_and_always_the_same_runs(
        reads: tracker.Catalog, catalog: tracker.Catalog, sweep: list[str]) -> None:
    first = samples.sample(reads, None, ["metrics.acc"], limit=4)
    again = samples.sample(reads, None, ["metrics.acc", "params.lr"], limit=4)

    assert (len(first.runs), first.total) == (4, 11)
    assert list(first.runs["id"]) == list(again.runs["id"])  # stable between interactions


def test_sample_binds_the_filter_and_refuses_other_fields(
        reads: tracker.Catalog, catalog: tracker.Catalog, sweep: list[str]) -> None:
    assert samples.sample(reads, f"params.optimizer = '{SCRIPT}'", ["params.lr"]).total == 6
    with pytest.raises(FilterSyntaxError):
        samples.sample(reads, "params.lr >", ["params.lr"])
    with pytest.raises(ArgumentError, match="params and metrics"):
        samples.sample(reads, None, ["status"])


@pytest.mark.parametrize("read_backend", ["postgresql"])
def test_the_sample_from_postgresql_is_the_file_catalogs(
        reads: tracker.Catalog, catalog: tracker.Catalog, sweep: list[str]) -> None:
    catalog.delete_runs(ids=sweep[-1:])  # as the sweep did on PostgreSQL
    fields = ["params.lr", "params.optimizer", "params.layers", "metrics.acc", "params.none"]
    for where in (None, "params.lr > 0.05", f"params.optimizer = '{SCRIPT}'"):
        pg, file = samples.sample(reads, where, fields), samples.sample(catalog, where, fields)
        assert pg.total == file.total > 0
        pd.testing.assert_frame_equal(pg.runs.sort_values("id", ignore_index=True),
                                      file.runs.sort_values("id", ignore_index=True))


def test_numbers_places_text_values_as_sorted_categories() -> None:
    assert samples.numbers(["0.1", None, "2"]) == ([0.1, None, 2.0], None)
    assert samples.numbers(["sgd", "adam", None, "sgd"]) == ([1.0, 0.0, None, 1.0],
                                                             ["adam", "sgd"])


def test_charts_draw_params_to_a_metric_and_a_scatter(
        reads: tracker.Catalog, catalog: tracker.Catalog, sweep: list[str]) -> None:
    charts = RunCharts(catalog=reads)
    charts.metric.value = "metrics.acc"

    assert charts.parallel.value.count("<polyline") == 11
    assert set(charts.axes.value) == {"params.layers", "params.lr", "params.optimizer"}
    assert "11 runs drawn" in charts.note.value
    charts.x.value, charts.y.value = "params.lr", "metrics.loss"
    assert charts.scatter.value.count("<circle") == 11
    assert re.search(r"<title>sweep #3\nlr 0.03, loss 0.9</title>", charts.scatter.value)


def test_charts_follow_the_tables_filter(
        reads: tracker.Catalog, catalog: tracker.Catalog, sweep: list[str]) -> None:
    charts = RunCharts(catalog=reads)

    charts.set_filter("params.optimizer = 'adam'")

    assert charts.parallel.value.count("<polyline") == 5
    assert "5 runs drawn" in charts.note.value


def test_charts_say_when_they_show_a_sample(
        reads: tracker.Catalog, catalog: tracker.Catalog, sweep: list[str]) -> None:
    charts = RunCharts(catalog=reads, limit=3)
    assert "3 of 11 runs drawn" in charts.note.value
    assert charts.parallel.value.count("<polyline") == 3


def test_charts_escape_every_value(
        reads: tracker.Catalog, catalog: tracker.Catalog, sweep: list[str]) -> None:
    charts = RunCharts(catalog=reads)
    charts.x.value = "params.optimizer"

    for svg in (charts.parallel.value, charts.scatter.value):
        assert SCRIPT not in svg and "&lt;script&gt;" in svg


def test_charts_of_an_empty_catalog_say_so(
        reads: tracker.Catalog, catalog: tracker.Catalog) -> None:
    assert "no params or metrics" in RunCharts(catalog=reads).note.value


def test_the_table_opens_charts_of_its_filtered_runs(
        reads: tracker.Catalog, catalog: tracker.Catalog, sweep: list[str]) -> None:
    table = RunTable("params.lr <= 0.04", catalog=reads, live=False)
    table.charts_button.click()

    assert isinstance(table.view, RunCharts)
    assert "4 runs drawn" in table.view.note.value
    table.filters.text.value = "params.lr <= 0.02"  # the open charts follow the new filter
    assert "2 runs drawn" in table.view.note.value
    table.close()
