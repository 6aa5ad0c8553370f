"""tracker reproduce: notebooks run by papermill in real kernels, then re-executed from the
catalog in a scratch folder, and the report (and the CLI's exit status) checked."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

import tracker
from tracker.cli import main
from tracker.diffing import FileDiff, MetricDiff
from tracker.reexecution import inject_parameters
from tracker.reproduction import InputCheck, Reproduction, placed

TRAIN = """\
import csv
import os
import random

import tracker

with open("data.csv", encoding="utf-8") as handle:
    total = sum(float(row[0]) for row in csv.reader(handle)) * scale
os.makedirs("out", exist_ok=True)
with open("out/model.txt", "w", encoding="utf-8") as handle:
    handle.write(f"{total}\\n")
tracker.log_metric("total", total)
"""


def _notebook(folder: Path, extra: str = "", *, load: str = "%load_ext tracker") -> Path:
    """A training-like notebook: a parameters cell, reads data.csv, writes out/model.txt."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "data.csv").write_text("1\n2\n3\n", encoding="utf-8")
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell(load),
        nbformat.v4.new_code_cell("scale = 1", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(TRAIN + extra)])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}
    path = folder / "train.ipynb"
    nbformat.write(notebook, path)
    return path


def _papermill(path: Path, catalog: Path, *params: str, **env: str) -> str:
    """Run ``path`` as a user would (papermill, ``-p`` params); the id of the run it made."""
    before = set(tracker.Catalog(catalog).runs()["id"]) if catalog.exists() else set()
    subprocess.run([sys.executable, "-m", "papermill", path.name, "ran.ipynb", *params],
                   cwd=path.parent, env={**os.environ, "TRACKER_CATALOG": str(catalog), **env},
                   capture_output=True, timeout=300, check=True)
    new = set(tracker.Catalog(catalog).runs()["id"]) - before
    assert len(new) == 1
    return new.pop()



@pytest.mark.slow
def test_a_deterministic_run_reproduces_with_its_recorded_parameters(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    catalog_path = tmp_path / "catalog" / "catalog.duckdb"
    path = _notebook(tmp_path / "project")
    original = _papermill(path, catalog_path, "-p", "scale", "7")
    model = path.parent / "out" / "model.txt"
    model.write_text("the user's newer model\n", encoding="utf-8")

    status = main(["--catalog", str(catalog_path), "reproduce", original, "--format", "json",
                   "--workdir", str(tmp_path / "again")])

    report = json.loads(capsys.readouterr().out)
    assert status == 0, json.dumps(report, indent=1)
    assert report["ok"] and report["error"] is None
    assert report["parameters"] == {"scale": 7}
    assert [(o["path"], o["status"]) for o in report["outputs"]] == [("out/model.txt", "same")]
    assert [(m["key"], m["a"], m["b"]) for m in report["metrics"]] == [("total", 42.0, 42.0)]
    assert [(i["status"], i["path"]) for i in report["inputs"]] == [
        ("same", str(path.parent / "data.csv"))]
    assert (tmp_path / "again" / "out" / "model.txt").read_text() == "42.0\n"
    assert model.read_text() == "the user's newer model\n"  # the user's files are left alone
    catalog = tracker.Catalog(catalog_path)
    again = catalog.get_run(report["run"])
    assert again.tags == {"reproduces": original}
    assert again.params["scale"] == 7 and again.status == "completed"
    assert catalog.runs(f"tags.reproduces = '{original}'")["id"].tolist() == [again.id]


_REPRODUCE_AND_LOOK = """
import sys
from tracker.cli import main
status = main(["--catalog", sys.argv[1], "reproduce", sys.argv[2], "--workdir", sys.argv[3]])
print(status, "pandas" in sys.modules, sys.modules.get("rfc3987_syntax") is not None)
"""


@pytest.mark.slow
def test_a_reproduction_reports_without_importing_pandas_or_iri_grammars(tmp_path: Path) -> None:
    # pandas costs a fresh `tracker reproduce` 0.3-1.7 s of issue #14's 2 s budget, and
    # rfc3987_syntax (jsonschema's, under nbformat) 2-4 s compiling grammars nothing uses.
    catalog_path = tmp_path / "catalog" / "catalog.duckdb"
    original = _papermill(_notebook(tmp_path / "project"), catalog_path)
    done = subprocess.run([sys.executable, "-c", _REPRODUCE_AND_LOOK, str(catalog_path),
                           original, str(tmp_path / "again")],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.stdout.split()[-3:] == ["0", "False", "False"], \
        done.stdout[-2000:] + done.stderr[-2000:]
    assert "WARNING" not in done.stderr  # the kernel's notice that TCP is not encrypted


@pytest.mark.slow
def test_a_notebook_recorded_by_an_auto_loaded_extension_is_recorded_again(
        tmp_path: Path) -> None:
    catalog_path = tmp_path / "catalog" / "catalog.duckdb"
    path = _notebook(tmp_path / "auto", load="print('no %load_ext here')")
    profile = Path(__file__).resolve().parents[1] / "jupyter_config" / "ipython"
    original = _papermill(path, catalog_path, IPYTHONDIR=str(profile))

    # this process's IPYTHONDIR does not load the extension: the reproducing kernel does
    assert os.environ.get("IPYTHONDIR") != str(profile)
    report = tracker.Catalog(catalog_path).reproduce(original, workdir=tmp_path / "again")

    assert report.ok, str(report)
    assert report.run is not None and report.run != original


@pytest.mark.slow
def test_a_run_writing_a_random_number_does_not_reproduce_and_names_the_output(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    catalog_path = tmp_path / "catalog" / "catalog.duckdb"
    path = _notebook(tmp_path, "with open('out/noise.txt', 'w') as f:\n"
                               "    f.write(str(random.random()))\n")
    original = _papermill(path, catalog_path)

    status = main(["--catalog", str(catalog_path), "reproduce", original])  # a temp folder

    text = capsys.readouterr().out
    assert status == 1
    assert "CHANGED  out/noise.txt" in text and "identical  out/model.txt" in text
    assert text.rstrip().endswith("NOT REPRODUCED: out/noise.txt differ")
    scratch = Path(text.splitlines()[0].rsplit(" in ", 1)[1])
    assert scratch.name.startswith("tracker-reproduce-")
    assert (scratch / "out" / "noise.txt").exists()
    shutil.rmtree(scratch)


@pytest.mark.slow
def test_outputs_that_differ_by_design_are_ignored_by_the_notebook_or_the_command(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    catalog_path = tmp_path / "catalog" / "catalog.duckdb"
    path = _notebook(tmp_path, "import time\nwith open('out/noise.txt', 'w') as f:\n"
                               "    f.write(str(random.random()))\n"
                               "tracker.log_metric('fit_seconds', time.perf_counter())\n")
    notebook = nbformat.read(path, as_version=4)
    notebook.metadata["tracker"] = {"reproduce": {"ignore": ["metrics.*_seconds"]}}
    nbformat.write(notebook, path)
    original = _papermill(path, catalog_path)

    # the notebook's author ignores the timing; the noise file still fails the run
    assert main(["--catalog", str(catalog_path), "reproduce", original,
                 "--workdir", str(tmp_path / "first")]) == 1
    text = capsys.readouterr().out
    assert text.rstrip().endswith("NOT REPRODUCED: out/noise.txt differ")
    assert "differs (ignored)" in text
    # the command line adds its own pattern
    assert main(["--catalog", str(catalog_path), "reproduce", original, "--ignore", "noise.txt",
                 "--workdir", str(tmp_path / "second")]) == 0
    text = capsys.readouterr().out
    assert "changed (ignored)  out/noise.txt" in text and "identical  out/model.txt" in text
    assert text.rstrip().endswith("reproduced: every output identical but those ignored "
                                  "(out/noise.txt, metrics.fit_seconds)")


@pytest.mark.slow
def test_a_changed_input_is_reported_and_its_kept_version_used(tmp_path: Path) -> None:
    catalog_path = tmp_path / "catalog" / "catalog.duckdb"
    path = _notebook(tmp_path / "kept")
    original = _papermill(path, catalog_path)
    data = path.parent / "data.csv"
    data.write_text("100\n", encoding="utf-8")  # changed since the run

    report = tracker.Catalog(catalog_path).reproduce(original, workdir=tmp_path / "again")

    assert [(c.path, c.status) for c in report.inputs] == [(str(data), "restored")]
    assert "kept version 1" in report.inputs[0].detail
    assert report.ok, str(report)  # it read the kept version, so it came out the same
    assert (Path(report.workdir) / "data.csv").read_text() == "1\n2\n3\n"
    assert data.read_text() == "100\n"


@pytest.mark.slow
def test_a_changed_input_that_was_not_kept_is_reported_and_fails(tmp_path: Path) -> None:
    catalog_path = tmp_path / "catalog" / "catalog.duckdb"
    path = _notebook(tmp_path / "not-kept")
    original = _papermill(path, catalog_path, TRACKER_KEEP="off")
    (path.parent / "data.csv").write_text("100\n", encoding="utf-8")

    report = tracker.Catalog(catalog_path).reproduce(original, workdir=tmp_path / "again")

    assert [c.status for c in report.inputs] == ["changed"]
    assert not report.ok
    assert [(f.path, f.status) for f in report.outputs] == [("out/model.txt", "changed")]
    assert [(m.key, m.a, m.b) for m in report.metrics] == [("total", 6.0, 100.0)]


@pytest.mark.slow
def test_the_tolerance_decides_whether_a_noisy_metric_matches(tmp_path: Path) -> None:
    catalog_path = tmp_path / "catalog" / "catalog.duckdb"
    path = _notebook(tmp_path, "tracker.log_metric('noisy', 0.5 + random.random() * 1e-9)\n")
    original = _papermill(path, catalog_path)
    catalog = tracker.Catalog(catalog_path)

    exact = catalog.reproduce(original, workdir=tmp_path / "exact")
    assert not exact.ok
    assert [(f.path, f.status) for f in exact.outputs] == [("out/model.txt", "same")]
    assert "NOT REPRODUCED: metrics.noisy differ" in str(exact)
    status = main(["--catalog", str(catalog_path), "reproduce", original, "--tolerance", "1e-6",
                   "--workdir", str(tmp_path / "tolerant")])
    assert status == 0


@pytest.mark.slow
def test_a_failing_cell_is_reported_not_raised(tmp_path: Path) -> None:
    catalog_path = tmp_path / "catalog" / "catalog.duckdb"
    path = _notebook(tmp_path, "if 'second-time' in os.getcwd():\n"
                               "    raise RuntimeError('not here')\n")
    original = _papermill(path, catalog_path)
    catalog = tracker.Catalog(catalog_path)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "file").touch()
    with pytest.raises(tracker.ArgumentError, match="not empty"):
        catalog.reproduce(original, workdir=tmp_path / "busy")
    with pytest.raises(tracker.ArgumentError, match="inside the catalog's folder"):
        catalog.reproduce(original, workdir=catalog_path.parent / "again")
    assert not (catalog_path.parent / "again").exists()

    report = catalog.reproduce(original, workdir=tmp_path / "second-time")

    assert report.error == "cell failed: RuntimeError: not here"
    assert not report.ok
    assert catalog.get_run(report.run or "").status == "failed"
    assert str(report).endswith("NOT REPRODUCED: cell failed: RuntimeError: not here")


def test_parameters_are_injected_after_the_parameters_cell() -> None:
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("%load_ext tracker"),
        nbformat.v4.new_code_cell("lr = 0.1\nname: str = 'a'\ntoken = 'x'\nmissing = 1\n"
                                  "same = 3", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("# Parameters\nlr = 0.5\n",
                                  metadata={"tags": ["injected-parameters"]}),
        nbformat.v4.new_code_cell("print(lr)")])
    params = {"lr": 0.5, "name": "b'\"", "token": "<redacted:str:0123abcd>",
              "nan": float("nan"), "other": 3, "same": 3}

    values, skipped = inject_parameters(notebook, params)

    assert values == {"lr": 0.5, "name": "b'\""}  # same = 3: the cell's own value, left alone
    assert set(skipped) == {"token", "missing"}
    sources = [cell.source for cell in notebook.cells]
    assert sources[1].startswith("lr = 0.1")
    assert sources[2] == "# Parameters\nlr = 0.5\nname = 'b\\'\"'\n"
    assert sources[3] == "print(lr)"  # the old injected cell is replaced, not kept
    assert len(sources) == 4


def test_a_notebook_without_a_parameters_cell_runs_as_stored() -> None:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    assert inject_parameters(notebook, {"x": 2}) == ({}, {})
    assert [cell.source for cell in notebook.cells] == ["x = 1"]


def test_a_run_made_with_the_defaults_runs_its_own_code_unchanged() -> None:
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("k = 5\nseed = 0\nsplit = 0.3",
                                  metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("print(k)")])
    assert inject_parameters(notebook, {"k": 5, "seed": 0, "split": 0.3}) == ({}, {})
    assert len(notebook.cells) == 2
    # a value edited and re-run in the session was recorded: that one is set again
    assert inject_parameters(notebook, {"k": 7, "seed": 0, "split": 0.3}) == ({"k": 7}, {})
    assert notebook.cells[1].source == "# Parameters\nk = 7\n"
    assert notebook.cells[1].metadata["tags"] == ["injected-parameters"]
    # seed = 0 recorded as False (another type) did change
    assert inject_parameters(notebook, {"k": 7, "seed": False, "split": 0.3})[0] == {
        "k": 7, "seed": False}


def test_a_parameters_cell_with_a_magic_still_gets_its_values() -> None:
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("%config InlineBackend.figure_format = 'svg'\nk = 5",
                                  metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("print(k)")])
    assert inject_parameters(notebook, {"k": 7}) == ({"k": 7}, {})
    assert notebook.cells[1].source == "# Parameters\nk = 7\n"


def test_a_parameters_cell_with_percent_lines_that_are_not_magics_runs_unchanged() -> None:
    # "%s rows" and "!" lines inside a string are Python, not magics
    source = 'sql = """\n%s rows\n!= 0\n"""\nk = 5'
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell(source, metadata={"tags": ["parameters"]})])
    params = {"sql": "\n%s rows\n!= 0\n", "k": 5}
    assert inject_parameters(notebook, params) == ({}, {})
    assert inject_parameters(notebook, {**params, "k": 7}) == ({"k": 7}, {})


def test_a_run_without_a_notebook_cannot_be_reproduced(tmp_path: Path) -> None:
    catalog = tracker.Catalog(tmp_path / "catalog.duckdb")
    with catalog.start_run("script") as run:
        pass
    with pytest.raises(tracker.ArtifactNotFoundError, match="not run in a notebook"):
        catalog.reproduce(run.id)
    with pytest.raises(tracker.ArgumentError, match="tolerance"):
        catalog.reproduce(run.id, tolerance=-1)


def _report(*ignore: str, outputs: tuple[str, ...] = ("logs/train.log",)) -> Reproduction:
    """A reproduction whose ``outputs``, timing metric and model differ, ignoring ``ignore``."""
    return Reproduction(
        "01m7zwkkx6hq", "01m7zwkm3b9r", "/tmp/again", "/tmp/again/train.ipynb", 0.0,
        outputs=[*(FileDiff("output", path, "changed") for path in outputs),
                 FileDiff("output", "out/model.txt", "same")],
        metrics=[MetricDiff("fit_seconds", 1.5, 1.7), MetricDiff("acc", 0.9, 0.9)],
        ignore=ignore)


def test_ignored_outputs_and_metrics_are_shown_but_do_not_decide_the_verdict() -> None:
    strict = _report()
    assert not strict.ok
    assert strict.verdict() == "NOT REPRODUCED: logs/train.log, metrics.fit_seconds differ"

    # "*.log" has no slash: it also matches the file name, in any folder
    lenient = _report("*.log", "metrics.*_seconds")
    assert lenient.ok
    assert lenient.verdict() == ("reproduced: every output identical but those ignored "
                                 "(logs/train.log, metrics.fit_seconds)")
    text = str(lenient)
    assert "changed (ignored)  logs/train.log" in text and "identical  out/model.txt" in text
    assert "fit_seconds  1.5  1.7  0.2  differs (ignored)" in text
    assert "may differ (ignore):\n  *.log\n  metrics.*_seconds\n" in text
    data = lenient.to_dict()
    assert [(o["path"], o["ignored"]) for o in data["outputs"]] == [
        ("logs/train.log", True), ("out/model.txt", False)]
    assert data["ignore"] == ["*.log", "metrics.*_seconds"] and data["ok"]

    # a pattern with a slash matches the whole path; one metric ignored leaves the other
    assert _report("train.log", "metrics.fit_seconds").ok
    assert _report("out/*.log", "metrics.fit_seconds").verdict() == \
        "NOT REPRODUCED: logs/train.log differ"


def test_metric_patterns_name_metrics_and_the_others_name_outputs() -> None:
    report = _report("metrics.*", "*seconds", outputs=("metrics.json", "out/metrics.csv"))
    assert report.verdict() == "NOT REPRODUCED: metrics.json, out/metrics.csv differ"
    # "./" marks a path: a file whose name starts "metrics."
    assert _report("./metrics.json", "*.csv", outputs=("metrics.json", "out/metrics.csv")
                   ).verdict() == "NOT REPRODUCED: metrics.fit_seconds differ"


def test_ignore_patterns_are_checked_and_read_as_the_report_shows_paths(
        tmp_path: Path) -> None:
    from tracker.reproduction import reproduce

    for wrong, message in ((3, "ignore must be a list of text"), ([" "], "is empty"),
                           (["ok", None], "must hold only text"), (["././"], "is empty"),
                           (["logs/\n*"], "holds a control character")):
        with pytest.raises(tracker.ArgumentError, match=message):
            reproduce(None, "01m7zw", ignore=wrong)  # type: ignore[arg-type]  # checked first
    # " ./logs/ " is logs/ and everything in it; no run is needed to see it refused or kept
    with pytest.raises(tracker.RunNotFoundError):
        reproduce(tracker.Catalog(tmp_path / "c.duckdb"), "01m7zw", ignore=" ./logs/ ")
    assert _report("./logs/").ok is False and _report("logs/", "metrics.*").ok
    assert _report("././logs/*.log", "metrics.*").ok


def test_unusable_ignore_patterns_in_the_notebook_are_one_warning() -> None:
    from tracker.reproduction import _notebook_ignores

    notebook = nbformat.v4.new_notebook(metadata={"tracker": {"reproduce": {"ignore": [3]}}})
    with pytest.warns(tracker.TrackerWarning, match="reproduce.ignore entry 0 must be text"):
        assert _notebook_ignores(notebook) == ()
    notebook.metadata["tracker"] = ["reproduce"]
    with pytest.warns(tracker.TrackerWarning, match="metadata.tracker must be an object"):
        assert _notebook_ignores(notebook) == ()
    notebook.metadata["tracker"] = {"reproduce": {"ignore": ["./out/", " *.log"]}}
    assert _notebook_ignores(notebook) == ("./out/", "*.log")


def test_the_report_html_escapes_every_recorded_string() -> None:
    hostile = "<script>alert(1)</script>"
    report = Reproduction(
        "01m7zwkkx6hq", hostile, f"/tmp/{hostile}", f"/tmp/{hostile}/n.ipynb", 0.0,
        {hostile: hostile}, {"p": hostile}, [InputCheck(hostile, "changed", hostile)],
        [FileDiff("output", hostile, "changed")], [MetricDiff(hostile, 1.0, 2.0)],
        error=hostile)
    page = report._repr_html_()
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_the_run_detail_shows_the_reproduce_command_escaped(tmp_path: Path) -> None:
    from tracker.widgets import RunDetail

    catalog = tracker.Catalog(tmp_path / "it's <here>" / "catalog.duckdb")
    with catalog.start_run("a") as first:
        pass
    with catalog.start_run("b") as second:
        pass
    detail = RunDetail(first.id, catalog=catalog)
    button, shown = detail.reproduce.children
    button.click()
    assert f"reproduce {first.id}</pre>" in shown.value
    assert "tracker --catalog &#x27;" in shown.value and "&lt;here&gt;" in shown.value
    assert "<here>" not in shown.value
    detail.load(second.id)
    assert shown.value == ""


def test_a_recorded_path_never_leads_outside_the_scratch_folder(tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    assert placed(scratch, "/home/u", "/home/u/data/x.csv") == scratch / "data" / "x.csv"
    assert placed(scratch, "/home/u", "/home/u/a/../../../etc/passwd") is None
    assert placed(scratch, "/home/u", "/etc/passwd") is None
    assert placed(scratch, "/home/u", "/home/u") is None


def test_a_notebook_for_a_kernel_not_installed_is_reported(tmp_path: Path) -> None:
    from tracker.reexecution import execute

    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1")])
    notebook.metadata["kernelspec"] = {"name": "no-such-kernel", "display_name": "x",
                                       "language": "python"}
    ran = execute(notebook, tmp_path / "n.ipynb", catalog=tmp_path / "c" / "catalog.duckdb",
                  timeout=None)
    assert ran.error is not None and "no kernel named 'no-such-kernel'" in ran.error


@pytest.mark.slow
def test_a_run_of_a_postgresql_catalog_reproduces_into_it(
        tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    # the old code refused reproduce on a PostgreSQL catalog (NotOnPostgresError)
    path = _notebook(tmp_path / "project")
    subprocess.run([sys.executable, "-m", "papermill", path.name, "ran.ipynb", "-p", "scale",
                    "7"], cwd=path.parent, env={**os.environ, "TRACKER_CATALOG": pg_url},
                   capture_output=True, timeout=300, check=True)
    server = tracker.Catalog(pg_url)
    [original] = server.runs()["id"]

    status = main(["--catalog", pg_url, "reproduce", original, "--format", "json",
                   "--workdir", str(tmp_path / "again")])

    report = json.loads(capsys.readouterr().out)
    assert status == 0 and report["ok"], json.dumps(report, indent=1)
    assert report["parameters"] == {"scale": 7}
    assert [(o["path"], o["status"]) for o in report["outputs"]] == [("out/model.txt", "same")]
    again = server.get_run(report["run"])
    assert again.tags == {"reproduces": original} and again.params["scale"] == 7
    assert server.runs(f"tags.reproduces = '{original}'")["id"].tolist() == [again.id]
    assert not (tmp_path / "again" / "catalog.duckdb").exists()  # recorded into the server
