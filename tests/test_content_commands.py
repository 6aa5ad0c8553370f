"""``tracker get``, ``versions``, ``notebook`` and ``du``: kept contents on the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import tracker
from tracker.cli import main


def _cli(capsys: pytest.CaptureFixture[str], catalog: tracker.Catalog,
         *argv: str) -> tuple[int, str, str]:
    code = main(["--catalog", str(catalog.path), *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_get_versions_and_du_give_kept_contents_back(
        capsys: pytest.CaptureFixture[str], catalog: tracker.Catalog, tmp_path: Path) -> None:
    output = tmp_path / "metrics.json"
    with catalog.start_run("kept") as run:
        output.write_text('[{"acc": 0.9}]')
        run.log_output(output)
    code, out, _ = _cli(capsys, catalog, "get", run.id, str(output),
                        "-o", str(tmp_path / "back.json"))
    assert (tmp_path / "back.json").read_text() == '[{"acc": 0.9}]'
    assert code == 0 and "version 1 of" in out
    code, out, _ = _cli(capsys, catalog, "versions", str(output), "--format", "json")
    [version] = json.loads(out)
    assert (version["version"], version["kept"], version["runs"]) == (1, "kept", [run.id])
    code, out, _ = _cli(capsys, catalog, "du")
    assert code == 0 and "contents           1 (14 B)" in out
    code, _, err = _cli(capsys, catalog, "notebook", run.id)
    assert code == 1 and "has no stored notebook" in err


def test_versions_prints_a_table(capsys: pytest.CaptureFixture[str], catalog: tracker.Catalog,
                                 tmp_path: Path) -> None:
    output = tmp_path / "model.bin"
    with catalog.start_run("kept") as run:
        output.write_bytes(b"x" * 2048)
        run.log_output(output)
    code, out, _ = _cli(capsys, catalog, "versions", str(output))
    header, row = out.splitlines()  # it printed a (text, columns) pair
    assert code == 0
    assert header.split()[0] == "version" and "size" in header.split()
    assert row.split()[0] == "1" and "2.0 KB" in row and run.id in row


def test_versions_of_a_file_never_recorded_is_an_error(
        capsys: pytest.CaptureFixture[str], catalog: tracker.Catalog, tmp_path: Path) -> None:
    code, out, err = _cli(capsys, catalog, "versions", str(tmp_path / "nothing.csv"))
    assert (code, out) == (1, "")
    assert err.startswith("tracker: error: no recorded version of ")


def test_get_version_is_the_version_that_run_read_or_wrote(
        capsys: pytest.CaptureFixture[str], catalog: tracker.Catalog, tmp_path: Path) -> None:
    output = tmp_path / "model.txt"
    runs = []
    for text in ("first", "second"):
        with catalog.start_run(text) as run:
            output.write_text(text)
            run.log_output(output)
        catalog.flush()  # kept before the next run rewrites it
        runs.append(run.id)
    back = tmp_path / "back.txt"
    assert _cli(capsys, catalog, "get", runs[1], str(output), "--version", "2",
                "-o", str(back))[0] == 0
    assert back.read_text() == "second"
    code, _, err = _cli(capsys, catalog, "get", runs[0], str(output), "--version", "2",
                        "-o", str(tmp_path / "x"))
    assert code == 1 and "it read or wrote version 1" in err
    assert not (tmp_path / "x").exists()
    code, _, err = _cli(capsys, catalog, "get", runs[1], str(output), "--version", "0")
    assert code == 2 and "must be 1 or more, not 0" in err
