"""The ``tracker`` command line, called in-process through ``main`` against a temp catalog."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import backends
import pytest
from mlflow_stores import copy_store

import tracker
from tracker.cli import main


class _Terminal(io.StringIO):
    """Stdin as a terminal on which the user types the given answer."""

    def isatty(self) -> bool:
        return True


@pytest.fixture
def catalog(catalog: tracker.Catalog, monkeypatch: pytest.MonkeyPatch
            ) -> Iterator[tracker.Catalog]:
    """The suite's ``catalog`` (a file; in a write-side test marked for both back ends, then a
    PostgreSQL database), which the command line uses: ``$TRACKER_CATALOG`` names it."""
    monkeypatch.setenv("TRACKER_CATALOG", str(catalog.path))
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    tracker.use_catalog(None)
    yield catalog
    tracker.use_catalog(None)


def _run(catalog: tracker.Catalog, name: str, *, params: Mapping[str, Any] | None = None,
         metrics: Mapping[str, float] | None = None, fail: bool = False) -> str:
    run = catalog.start_run(name, params=params)
    run.log_metrics(metrics or {})
    run.end("failed" if fail else "completed", error="RuntimeError: boom" if fail else None)
    return run.id


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    assert backends.SECRET not in captured.out + captured.err  # a catalog URL's password
    return code, captured.out, captured.err


@pytest.fixture
def cli_reads(reads: tracker.Catalog, monkeypatch: pytest.MonkeyPatch) -> tracker.Catalog:
    """Point the command line at the catalog the test reads (tests/backends.py): the file, or
    the PostgreSQL catalog by a URL holding a password. Before any fixture that records."""
    monkeypatch.setenv("TRACKER_CATALOG", backends.address(reads))
    return reads


@pytest.fixture
def three(catalog: tracker.Catalog) -> list[str]:
    """Three runs, oldest first: two completed with params and metrics, one failed."""
    ids = [
        _run(catalog, "alpha", params={"lr": 0.1, "model": "cnn"}, metrics={"acc": 0.8}),
        _run(catalog, "beta", params={"lr": 0.2, "model": "cnn"}, metrics={"acc": 0.9}),
        _run(catalog, "gamma", params={"lr": 0.3, "model": "cnn"}, fail=True),
    ]
    catalog.flush()  # runs reach the catalog from a background thread; the CLI reads it
    return ids


# -- runs ---------------------------------------------------------------------------------------


def test_runs_lists_newest_first_then_the_count(
        cli_reads: tracker.Catalog, capsys: pytest.CaptureFixture[str], three: list[str]) -> None:
    code, out, err = _cli(capsys, "runs")
    lines = out.splitlines()
    assert (code, err) == (0, "")
    assert lines[0].split()[:5] == ["id", "name", "status", "started", "duration"]
    assert [line.split()[1] for line in lines[1:4]] == ["gamma", "beta", "alpha"]
    assert lines[1].split()[0] == three[2][-8:]  # the short id: the id's varying end
    assert "failed" in lines[1] and "completed" in lines[2]
    assert lines[-1] == "3 of 3 runs"


def test_a_short_id_copied_from_runs_names_the_run(
        cli_reads: tracker.Catalog, capsys: pytest.CaptureFixture[str], three: list[str]) -> None:
    short = _cli(capsys, "runs")[1].splitlines()[2].split()[0]
    code, out, _ = _cli(capsys, "show", short)
    assert (code, out.splitlines()[0].split()) == (0, ["id", three[1]])


def test_show_of_a_shared_prefix_lists_the_runs_it_matches(
        cli_reads: tracker.Catalog, capsys: pytest.CaptureFixture[str], three: list[str]) -> None:
    shared = three[0][:5]
    assert all(run_id.startswith(shared) for run_id in three)  # made within seconds
    code, _, err = _cli(capsys, "show", shared)
    assert (code, err) == (1, f"tracker: error: {shared!r} matches 3 runs "
                              f"({', '.join(three[::-1])}); give more characters\n")


def test_runs_and_show_give_start_times_to_the_second_with_the_local_zone(
        cli_reads: tracker.Catalog, capsys: pytest.CaptureFixture[str], three: list[str]) -> None:
    started = tracker.Catalog(os.environ["TRACKER_CATALOG"]).get_run(three[0]).started_at
    local = started.astimezone()
    zone = local.strftime("%Z")
    listing = _cli(capsys, "runs")[1]
    assert f"{local:%H:%M:%S} {zone}" in listing
    shown = _cli(capsys, "show", three[0])[1]
    assert f"{local:%Y-%m-%d %H:%M:%S} {zone}" in shown


def test_runs_shows_only_params_and_metrics_that_vary(
        cli_reads: tracker.Catalog, capsys: pytest.CaptureFixture[str], three: list[str]) -> None:
    header = _cli(capsys, "runs")[1].splitlines()[0].split()
    assert "lr" in header and "acc" in header
    assert "model" not in header  # the same on every run: nothing to compare


def test_runs_limit_reports_how_many_match_in_all(
        cli_reads: tracker.Catalog, capsys: pytest.CaptureFixture[str], three: list[str]) -> None:
    code, out, _ = _cli(capsys, "runs", "--limit", "2")
    assert code == 0
    assert len(out.splitlines()) == 4
    assert out.splitlines()[-1] == "2 of 3 runs"


def test_runs_where_and_order_by(
        cli_reads: tracker.Catalog, capsys: pytest.CaptureFixture[str], three: list[str]) -> None:
    code, out, _ = _cli(capsys, "runs", "--where", "params.lr < 0.25",
                        "--order-by", "metrics.acc DESC")
    assert code == 0
    assert [line.split()[1] for line in out.splitlines()[1:-1]] == ["beta", "alpha"]
    assert out.splitlines()[-1] == "2 of 2 runs"


def test_runs_bad_filter_exits_1_naming_the_position(
        cli_reads: tracker.Catalog, capsys: pytest.CaptureFixture[str], three: list[str]) -> None:
    code, out, err = _cli(capsys, "runs", "--where", "params.lr >> 3")
    assert (code, out) == (1, "")
    assert err.startswith("tracker: error: ")
    assert "position 11" in err
    assert len(err.splitlines()) == 1


def test_runs_warns_on_stderr_about_a_key_no_run_has(
        cli_reads: tracker.Catalog, capsys: pytest.CaptureFixture[str], three: list[str]) -> None:
    code, out, err = _cli(capsys, "runs", "--where", "params.lrr > 0.15")
    assert (code, out.splitlines()[-1]) == (0, "0 of 0 runs")
    assert err == "tracker: warning: no run has params.lrr; did you mean params.lr?\n"


@backends.WRITES_ON_BOTH
def test_tag_sets_replaces_and_deletes_tags_that_runs_and_show_display(
        capsys: pytest.CaptureFixture[str], three: list[str]) -> None:
    code, out, err = _cli(capsys, "tag", three[0], "source=manual", "stage=draft")
    assert (code, err) == (0, "")
    assert out == f"tags of {three[0]}: source=manual, stage=draft\n"
    assert _cli(capsys, "tag", three[0], "stage=final=yes", "--delete", "source")[1] == \
        f"tags of {three[0]}: stage=final=yes\n"
    header, *rows = _cli(capsys, "runs", "--where", "tags.stage LIKE 'final%'")[1].splitlines()
    assert "tags.stage" in header.split() and rows[-1] == "1 of 1 run"
    assert "stage=final=yes" not in rows[0] and "final=yes" in rows[0]
    shown = _cli(capsys, "show", three[0])[1]
    assert "\ntags\n  stage  final=yes\n" in shown
    csv = _cli(capsys, "runs", "--columns", "name,tags.stage", "--format", "csv")[1]
    assert csv.splitlines() == ["name,tags.stage", "gamma,", "beta,", "alpha,final=yes"]


@backends.WRITES_ON_BOTH
def test_tag_refuses_what_is_not_a_tag(capsys: pytest.CaptureFixture[str],
                                       three: list[str]) -> None:
    assert _cli(capsys, "tag", three[0])[0] == 2
    code, _, err = _cli(capsys, "tag", three[0], "nokey")
    assert code == 2 and "expected KEY=VALUE" in err
    code, _, err = _cli(capsys, "tag", "zzzzzzzz", "a=b")
    assert code == 1 and err.startswith("tracker: error: ")


def test_runs_cuts_long_cells_to_the_terminal_width(
        cli_reads: tracker.Catalog, capsys: pytest.CaptureFixture[str], catalog: tracker.Catalog,
        monkeypatch: pytest.MonkeyPatch) -> None:
    run_id = _run(catalog, "a-very-long-run-name-" * 4)
    catalog.flush()
    monkeypatch.setenv("COLUMNS", "70")
    code, out, _ = _cli(capsys, "runs")
    table = out.splitlines()[:-1]
    assert code == 0
    assert all(len(line) <= 70 for line in table)
    assert "…" in table[1]
    assert table[1].startswith(run_id[-8:])  # short ids are never cut


def test_runs_fits_80_columns_and_counts_the_columns_left_out(
        cli_reads: tracker.Catalog, capsys: pytest.CaptureFixture[str], catalog: tracker.Catalog,
        monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(3):
        _run(catalog, f"experiment-with-a-long-name-{i}",
             params={"learning_rate": i / 10, "batch": 32 + i, "dropout": i / 5},
             metrics={"accuracy": i / 3, "loss": 1 / (i + 1), "f1": i / 7})
    catalog.flush()
    monkeypatch.setenv("COLUMNS", "80")
    code, out, _ = _cli(capsys, "runs")
    lines = out.splitlines()
    header = lines[0].split()
    assert code == 0 and all(len(line) <= 80 for line in lines)
    assert lines[1].split()[1].startswith("experiment-with")  # a name still tells runs apart
    shown = [name for name in header if name not in ("id", "name", "status", "started",
                                                     "duration")]
    assert 0 < len(shown) < 6
    assert lines[-1] == f"3 of 3 runs; +{6 - len(shown)} more columns (--columns)"
    monkeypatch.setenv("COLUMNS", "250")
    lines = _cli(capsys, "runs")[1].splitlines()
    assert len(lines[0].split()) == 11 and lines[-1] == "3 of 3 runs"


def test_runs_csv_and_json_hold_every_column(
        cli_reads: tracker.Catalog, capsys: pytest.CaptureFixture[str], three: list[str]) -> None:
    code, out, _ = _cli(capsys, "runs", "--format", "json")
    records = json.loads(out)
    assert code == 0
    assert [r["name"] for r in records] == ["gamma", "beta", "alpha"]
    assert records[1]["params.lr"] == 0.2 and records[1]["metrics.acc"] == 0.9
    assert records[0]["metrics.acc"] is None
    assert records[0]["error"] == "RuntimeError: boom"
    code, out, _ = _cli(capsys, "runs", "--format", "csv", "--columns", "name,params.lr")
    assert code == 0
    assert out.splitlines() == ["name,params.lr", "gamma,0.3", "beta,0.2", "alpha,0.1"]


def test_runs_columns_are_checked(
        cli_reads: tracker.Catalog, capsys: pytest.CaptureFixture[str], three: list[str]) -> None:
    code, out, _ = _cli(capsys, "runs", "--columns", "name,started,params.missing")
    assert code == 0
    assert out.splitlines()[0].split() == ["name", "started", "missing"]
    code, _, err = _cli(capsys, "runs", "--columns", "name,colour")
    assert code == 1
    assert "unknown column 'colour'" in err


def test_runs_deleted_shows_the_trash_and_all_shows_both(
        capsys: pytest.CaptureFixture[str], catalog: tracker.Catalog, three: list[str]) -> None:
    catalog.delete_run(three[0])
    out = _cli(capsys, "runs", "--deleted")[1]
    assert [line.split()[0] for line in out.splitlines()[1:-1]] == [three[0][-8:]]
    assert _cli(capsys, "runs")[1].splitlines()[-1] == "2 of 2 runs"
    assert _cli(capsys, "runs", "--all")[1].splitlines()[-1] == "3 of 3 runs"
    assert _cli(capsys, "runs", "--deleted", "--limit", "1")[1].splitlines()[-1] == "1 of 1 run"
    assert _cli(capsys, "runs", "--all", "--deleted")[0] == 2


def test_runs_on_an_empty_catalog(cli_reads: tracker.Catalog, capsys: pytest.CaptureFixture[str],
                                  catalog: tracker.Catalog) -> None:
    assert _cli(capsys, "runs") == (0, "0 of 0 runs\n", "")


# -- show ---------------------------------------------------------------------------------------


def test_show_prints_params_history_metrics_and_file_lineage(
        cli_reads: tracker.Catalog, capsys: pytest.CaptureFixture[str], catalog: tracker.Catalog,
        tmp_path: Path) -> None:
    raw, clean = tmp_path / "raw.csv", tmp_path / "clean.csv"
    raw.write_text("a\n1\n")
    with catalog.start_run("prepare", params={"lr": 0.1}, labels=["etl"]) as producer:
        producer.log_input(raw)
        producer.log_param("lr", 0.01)
        producer.log_metric("rows", 1)
        clean.write_text("a\n1\n2\n")
        producer.log_output(clean)
    with catalog.start_run("train") as consumer:
        consumer.log_input(clean)
    catalog.flush()
    code, out, _ = _cli(capsys, "show", producer.id[:-1])
    assert code == 0
    assert f"id        {producer.id}" in out
    assert "status    completed" in out
    assert "labels    etl" in out
    assert "lr  0.01  (changed: 0.1 -> 0.01)" in out
    assert "rows  1" in out
    assert f"{raw}  v1  4 B  via call" in out
    assert f"{clean}  v1  6 B  via call  read by train ({consumer.id})" in out
    consumer_text = _cli(capsys, "show", consumer.id)[1]
    assert f"{clean}  v1  6 B  via call  from prepare ({producer.id})" in consumer_text


def test_show_leaves_deleted_readers_out_of_the_lineage_unless_all(
        capsys: pytest.CaptureFixture[str], catalog: tracker.Catalog, tmp_path: Path) -> None:
    clean = tmp_path / "clean.csv"
    clean.write_text("a\n1\n")
    with catalog.start_run("prepare") as producer:
        producer.log_output(clean)
    with catalog.start_run("train") as consumer:
        consumer.log_input(clean)
    catalog.delete_run(consumer.id)
    assert f"{clean}  v1  4 B  via call\n" in _cli(capsys, "show", producer.id)[1]
    shown = _cli(capsys, "show", producer.id, "--all")[1]
    assert f"{clean}  v1  4 B  via call  read by train ({consumer.id})" in shown


def test_show_json_has_every_field(cli_reads: tracker.Catalog, capsys: pytest.CaptureFixture[str],
                                   three: list[str]) -> None:
    code, out, _ = _cli(capsys, "show", three[1], "--format", "json")
    data = json.loads(out)
    assert code == 0
    assert data["id"] == three[1] and data["name"] == "beta"
    assert data["params"] == {"lr": 0.2, "model": "cnn"}
    assert data["metrics"] == {"acc": 0.9}
    assert data["param_history"]["lr"][0][1] == 0.2


def test_show_summarises_environment_and_failed_cells(
        cli_reads: tracker.Catalog, capsys: pytest.CaptureFixture[str], three: list[str],
        tmp_path: Path) -> None:
    exported = tmp_path / "run.json"
    assert _cli(capsys, "export", three[0], str(exported))[0] == 0
    descriptor = json.loads(exported.read_text())
    started = descriptor["run"]["started_at"]
    descriptor["run"]["environment_id"] = "env-1"
    descriptor["environment"] = [{"id": "env-1", "created_at": started, "data": {
        "python": "3.11.2", "platform": "Linux-6.1", "packages": {"numpy": "2.0", "pandas": "3.1"},
        "git": {"commit": "0123456789abcdef", "branch": "main", "dirty": True}}}]
    descriptor["cells"] = [
        {"seq": 1, "execution_count": 1, "source": "x = 1", "success": True},
        {"seq": 2, "execution_count": 2, "source": "1/0", "success": False,
         "error_type": "ZeroDivisionError", "error_message": "division by zero"},
    ]
    exported.write_text(json.dumps(descriptor))
    other = str(tmp_path / "other.duckdb")
    assert _cli(capsys, "--catalog", other, "import", str(exported))[0] == 0
    code, out, _ = _cli(capsys, "--catalog", other, "show", three[0])
    assert code == 0
    assert "python 3.11.2; Linux-6.1; git 0123456789 on main (dirty); 2 packages" in out
    assert "2 executed, 1 failed" in out
    assert "[2] ZeroDivisionError: division by zero" in out


def test_show_unknown_run_exits_1(
        cli_reads: tracker.Catalog, capsys: pytest.CaptureFixture[str], three: list[str]) -> None:
    code, out, err = _cli(capsys, "show", "zzzzzzzz")
    assert (code, out) == (1, "")
    assert err == "tracker: error: no run matches 'zzzzzzzz'\n"


# -- rm, restore, purge ---------------------------------------------------------------------


@backends.WRITES_ON_BOTH
def test_rm_refuses_without_yes_when_stdin_is_not_a_terminal(
        capsys: pytest.CaptureFixture[str], catalog: tracker.Catalog, three: list[str]) -> None:
    code, out, err = _cli(capsys, "rm", three[0])
    assert (code, out) == (1, "")
    assert "--yes" in err and "1 run" in err
    assert not catalog.get_run(three[0]).deleted


@backends.WRITES_ON_BOTH
def test_rm_asks_on_a_terminal(capsys: pytest.CaptureFixture[str], catalog: tracker.Catalog,
                               three: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", _Terminal("n\n"))
    code, _, err = _cli(capsys, "rm", three[0], three[1])
    assert code == 1
    assert "Delete 2 runs? [y/N]" in err
    assert not catalog.get_run(three[0]).deleted
    monkeypatch.setattr("sys.stdin", _Terminal("y\n"))
    code, out, _ = _cli(capsys, "rm", three[0], three[1])
    assert code == 0
    assert f"deleted {three[0]}" in out
    assert catalog.get_run(three[1]).deleted


@backends.WRITES_ON_BOTH
def test_rm_then_restore(capsys: pytest.CaptureFixture[str], catalog: tracker.Catalog,
                         three: list[str]) -> None:
    code, out, _ = _cli(capsys, "rm", three[1][:-1], "--yes")
    assert code == 0
    assert out.splitlines() == [f"deleted {three[1]}", f"restore with: tracker restore {three[1]}"]
    assert catalog.get_run(three[1]).deleted
    assert _cli(capsys, "restore", three[1]) == (0, f"restored {three[1]}\n", "")
    assert not catalog.get_run(three[1]).deleted


@backends.WRITES_ON_BOTH
def test_rm_where_deletes_what_the_filter_matches(capsys: pytest.CaptureFixture[str],
                                                  catalog: tracker.Catalog,
                                                  three: list[str]) -> None:
    code, out, _ = _cli(capsys, "rm", "--where", "status = 'failed'", "-y")
    assert code == 0
    assert out.splitlines()[0] == f"deleted {three[2]}"
    assert list(catalog.runs()["id"]) == [three[1], three[0]]
    assert _cli(capsys, "rm", "--where", "status = 'failed'") == (0, "no runs match\n", "")


def test_rm_needs_ids_or_a_filter(capsys: pytest.CaptureFixture[str], three: list[str]) -> None:
    code, _, err = _cli(capsys, "rm")
    assert code == 2
    assert "--where" in err
    assert _cli(capsys, "rm", three[0], "--where", "status = 'failed'")[0] == 2


@backends.WRITES_ON_BOTH
def test_restore_of_a_run_not_in_the_trash_says_so(capsys: pytest.CaptureFixture[str],
                                                   catalog: tracker.Catalog,
                                                   three: list[str]) -> None:
    catalog.delete_run(three[0])
    code, out, _ = _cli(capsys, "restore", three[1], three[0])
    assert code == 0
    assert out.splitlines() == [f"{three[1]} is not in the trash; nothing to restore",
                                f"restored {three[0]}"]


def test_sql_shows_the_query_s_own_column_names(
        cli_reads: tracker.Catalog, capsys: pytest.CaptureFixture[str], three: list[str]) -> None:
    code, out, _ = _cli(capsys, "sql", "SELECT name, notebook, notebook_name, started_at "
                        "FROM runs ORDER BY name LIMIT 1")
    assert code == 0
    assert out.splitlines()[0].split() == ["name", "notebook", "notebook_name", "started_at"]


@backends.WRITES_ON_BOTH
def test_restore_unknown_run_exits_1(capsys: pytest.CaptureFixture[str],
                                     catalog: tracker.Catalog) -> None:
    code, _, err = _cli(capsys, "restore", "nosuchrun")
    assert code == 1
    assert "no run matches 'nosuchrun'" in err


@backends.WRITES_ON_BOTH
def test_purge_removes_only_the_trash_for_good(capsys: pytest.CaptureFixture[str],
                                               catalog: tracker.Catalog,
                                               three: list[str]) -> None:
    catalog.delete_runs(ids=three[:2])
    code, out, _ = _cli(capsys, "purge", "--older-than", "30d", "--yes")
    assert (code, out) == (0, "no runs in the trash deleted more than 30d ago\n")
    code, _, err = _cli(capsys, "purge")
    assert code == 1
    assert "refusing to purge 2 runs" in err and "--yes" in err
    code, out, _ = _cli(capsys, "purge", "--yes")
    assert (code, out) == (0, "purged 2 runs, 0 stored files\n")
    assert list(catalog.runs(include_deleted=True)["id"]) == [three[2]]
    assert _cli(capsys, "purge", "--older-than", "soon")[0] == 2


# -- export, import, sql, profile -----------------------------------------------------------


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_export_then_import_into_another_catalog(capsys: pytest.CaptureFixture[str],
                                                 three: list[str], tmp_path: Path,
                                                 suffix: str) -> None:
    target = tmp_path / f"run{suffix}"
    code, out, _ = _cli(capsys, "export", three[1], str(target))
    assert code == 0
    assert out == f"exported {three[1]} to {target}\n"
    other = str(tmp_path / "other.duckdb")
    assert _cli(capsys, "import", str(target), "--catalog", other) == (0, f"imported {three[1]}\n",
                                                                       "")
    assert json.loads(_cli(capsys, "--catalog", other, "show", three[1], "--format", "json")[1])[
        "params"] == {"lr": 0.2, "model": "cnn"}
    code, _, err = _cli(capsys, "import", str(target))
    assert code == 1
    assert "already in" in err


def test_export_needs_a_known_extension(capsys: pytest.CaptureFixture[str], three: list[str],
                                        tmp_path: Path) -> None:
    code, _, err = _cli(capsys, "export", three[0], str(tmp_path / "run.txt"))
    assert code == 2
    assert ".yaml, .yml or .json" in err
    assert not (tmp_path / "run.txt").exists()


def test_export_replaces_a_file_only_with_force(capsys: pytest.CaptureFixture[str],
                                                three: list[str], tmp_path: Path) -> None:
    target = tmp_path / "run.json"
    target.write_text("mine")
    code, out, err = _cli(capsys, "export", three[0], str(target))
    assert (code, out, len(err.splitlines())) == (1, "", 1)
    assert "already exists" in err and "--force" in err
    assert target.read_text() == "mine"
    assert _cli(capsys, "export", three[0], str(target), "--force")[0] == 0
    assert json.loads(target.read_text())["run"]["id"] == three[0]


def test_export_never_writes_over_the_catalog(capsys: pytest.CaptureFixture[str],
                                             catalog: tracker.Catalog, three: list[str],
                                             tmp_path: Path) -> None:
    disguised = tmp_path / "catalog.json"
    disguised.symlink_to(catalog.path)
    before = catalog.path.read_bytes()
    code, _, err = _cli(capsys, "export", three[0], str(disguised), "--force")
    assert code == 1 and "another path" in err and len(err.splitlines()) == 1
    assert catalog.path.read_bytes() == before


def test_import_of_a_hostile_descriptor_exits_1_naming_the_field(
        capsys: pytest.CaptureFixture[str], three: list[str], tmp_path: Path) -> None:
    exported = tmp_path / "run.json"
    assert _cli(capsys, "export", three[0], str(exported))[0] == 0
    descriptor = json.loads(exported.read_text())
    descriptor["run"]["status) VALUES ('x'); DROP TABLE runs; --"] = "x"
    exported.write_text(json.dumps(descriptor))
    code, _, err = _cli(capsys, "--catalog", str(tmp_path / "other.duckdb"), "import",
                        str(exported))
    assert code == 1 and len(err.splitlines()) == 1
    assert "run has an unknown key" in err and "DROP TABLE runs" in err


def test_import_of_a_missing_file_exits_1(capsys: pytest.CaptureFixture[str],
                                          catalog: tracker.Catalog, tmp_path: Path) -> None:
    code, _, err = _cli(capsys, "import", str(tmp_path / "nope.yaml"))
    assert code == 1
    assert err.startswith("tracker: error: ") and "nope.yaml" in err


@pytest.mark.slow
def test_import_mlflow_prints_what_it_imported_and_skipped(capsys: pytest.CaptureFixture[str],
                                                           tmp_path: Path) -> None:
    store = Path(copy_store("mlruns", tmp_path))
    catalog = str(tmp_path / "imported.duckdb")
    argv = ("--catalog", catalog, "import-mlflow", str(store), "--mlflow-python", sys.executable)
    code, out, _ = _cli(capsys, *argv)
    assert (code, out.splitlines()) == (0, [
        f"imported 9 runs from {store.as_uri()}, skipped 0",
        "  note: 1 run still running in MLflow: imported as running, and importing again does "
        "not update them"])
    code, out, _ = _cli(capsys, *argv)
    assert (code, out.splitlines()) == (0, [f"imported 0 runs from {store.as_uri()}, skipped 9",
                                            "  9 skipped: already imported"])
    assert len(tracker.Catalog(catalog).runs()) == 8  # and one in the trash: deleted in MLflow


def test_import_mlflow_of_something_else_exits_1(capsys: pytest.CaptureFixture[str],
                                                 tmp_path: Path) -> None:
    code, _, err = _cli(capsys, "import-mlflow", str(tmp_path))
    assert code == 1
    assert err.startswith("tracker: error: ") and "is not an MLflow store" in err


def test_sql_prints_a_table_and_refuses_writes(
        cli_reads: tracker.Catalog, capsys: pytest.CaptureFixture[str], three: list[str]) -> None:
    code, out, _ = _cli(capsys, "sql", "SELECT name FROM runs ORDER BY name")
    assert code == 0
    assert out.splitlines() == ["name", "alpha", "beta", "gamma", "3 rows"]
    code, out, _ = _cli(capsys, "sql", "SELECT count(*) AS n FROM runs", "--format", "json")
    assert json.loads(out) == [{"n": 3}]
    code, _, err = _cli(capsys, "sql", "DELETE FROM runs")
    assert code == 1
    assert "read-only" in err
    code, _, err = _cli(capsys, "sql", "SELEC 1")
    assert code == 1
    assert err.startswith("tracker: error: ") and len(err.splitlines()) == 1


@pytest.mark.parametrize("query", ["DROP TABLE runs", "SELECT 1; DELETE FROM runs",
                                   "SELECT * FROM read_csv('/etc/passwd')"])
def test_sql_says_in_one_line_what_the_cli_allows(capsys: pytest.CaptureFixture[str],
                                                  three: list[str], query: str) -> None:
    code, out, err = _cli(capsys, "sql", query)
    assert (code, out) == (1, "")
    assert err.startswith("tracker: error: one read-only query is allowed: a SELECT")
    assert len(err.splitlines()) == 1 and "tracker.sql()" not in err
    assert _cli(capsys, "sql", "SELECT count(*) AS n FROM runs", "--format", "csv")[1] == "n\n3\n"


def test_enable_and_disable_keep_the_users_lines(capsys: pytest.CaptureFixture[str],
                                                 tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    config = tmp_path / "ipython" / "profile_lab" / "ipython_kernel_config.py"
    config.parent.mkdir(parents=True)
    mine = "c = get_config()\nc.InteractiveShell.colors = 'nocolor'\n"
    config.write_text(mine)
    code, out, _ = _cli(capsys, "enable", "--profile", "lab")
    assert code == 0
    assert str(config) in out
    text = config.read_text()
    assert text.startswith(mine) and "# >>> tracker >>>" in text
    assert _cli(capsys, "enable", "--profile", "lab")[1].startswith("already enabled")
    assert config.read_text() == text
    code, out, _ = _cli(capsys, "disable", "--profile", "lab")
    assert code == 0 and str(config) in out
    assert config.read_text() == mine
    assert "nothing changed" in _cli(capsys, "disable", "--profile", "lab")[1]


def test_catalog_option_wins_over_the_environment(capsys: pytest.CaptureFixture[str],
                                                  three: list[str], tmp_path: Path) -> None:
    other = str(tmp_path / "elsewhere.duckdb")
    assert _cli(capsys, "--catalog", other, "runs")[1] == "0 of 0 runs\n"
    assert _cli(capsys, "runs", "--catalog", other)[1] == "0 of 0 runs\n"
    assert _cli(capsys, "runs")[1].splitlines()[-1] == "3 of 3 runs"


def test_help_and_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _cli(capsys, "--help")
    assert code == 0
    assert "runs" in out and "purge" in out
    assert _cli(capsys)[0] == 2
    assert _cli(capsys, "frobnicate")[0] == 2
    assert _cli(capsys, "runs", "--limit", "-1")[0] == 2


def test_console_script_runs_in_a_real_process(three: list[str]) -> None:
    script = Path(sys.executable).with_name("tracker")
    result = subprocess.run([str(script), "runs", "--format", "csv", "--columns", "name"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.splitlines() == ["name", "gamma", "beta", "alpha"]
    module = subprocess.run([sys.executable, "-m", "tracker", "show", "nosuchrun"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert module.returncode == 1
    assert module.stderr == "tracker: error: no run matches 'nosuchrun'\n"


@pytest.mark.parametrize(("argv", "code", "says"), [
    (("runs", "--limit", "-1"), 2, "--limit: must be 0 or more"),
    (("runs", "--where", "(" * 200 + "status = 'completed'" + ")" * 200), 1, "nested more"),
    (("runs", "--where", "x" * 30_000), 1, "where is 30,000 characters long"),
    (("runs", "--order-by", "5"), 1, "expected a field name"),
    (("runs", "--columns", "nonsense"), 1, "unknown column 'nonsense'"),
    (("show", "a" * 1000), 1, "no run matches"),
    (("show", "tracker://elsewhere/runs/01m7zwkkx6hq"), 1, "no run matches"),
    (("rm", "' OR 1=1 --", "--yes"), 1, "no run matches"),
    (("purge", "--older-than=-3d", "--yes"), 2, "older_than must be an age"),
])


def test_hostile_arguments_exit_with_one_line(capsys: pytest.CaptureFixture[str],
                                              catalog: tracker.Catalog, argv: tuple[str, ...],
                                              code: int, says: str) -> None:
    exit_code, out, err = _cli(capsys, *argv)
    assert (exit_code, out) == (code, "")
    assert says in err
    if code == 1:
        assert err.startswith("tracker: error: ") and len(err.splitlines()) == 1
        assert len(err) < 400  # a 1000-character ref is cut in the message


# -- status (set by hand) ---------------------------------------------------------------------


@backends.WRITES_ON_BOTH
def test_status_marks_a_failed_run_completed_and_show_keeps_the_change(
        capsys: pytest.CaptureFixture[str], catalog: tracker.Catalog, three: list[str]) -> None:
    assert _cli(capsys, "status", three[2], "completed") == (
        0, f"{three[2]}: failed -> completed\n", "")
    assert catalog.get_run(three[2]).status == "completed"
    assert _cli(capsys, "status", three[2], "completed") == (
        0, f"{three[2]} is already completed\n", "")


@backends.WRITES_ON_BOTH
def test_status_refuses_running_for_a_finished_run_unless_forced(
        capsys: pytest.CaptureFixture[str], catalog: tracker.Catalog, three: list[str]) -> None:
    code, out, err = _cli(capsys, "status", three[0], "running")
    assert (code, out) == (1, "")
    assert "a completed run may be marked failed by hand, not running" in err
    assert "--force" in err
    assert _cli(capsys, "status", three[0], "running", "--force")[:2] == (
        0, f"{three[0]}: completed -> running\n")


def test_runs_csv_and_json_keep_int_params_whole_when_some_runs_lack_them(
        cli_reads: tracker.Catalog, capsys: pytest.CaptureFixture[str],
        catalog: tracker.Catalog) -> None:
    _run(catalog, "with", params={"epochs": 3})
    _run(catalog, "without")
    catalog.flush()
    code, out, _ = _cli(capsys, "runs", "--columns", "name,params.epochs", "--format", "csv")
    assert (code, out.splitlines()) == (0, ["name,params.epochs", "without,", "with,3"])
    code, out, _ = _cli(capsys, "runs", "--columns", "name,params.epochs", "--format", "json")
    assert json.loads(out) == [{"name": "without", "params.epochs": None},
                               {"name": "with", "params.epochs": 3}]
