"""``tracker lineage``: the text tree, the SVG file, and never replacing a file unasked."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import tracker
from tracker._ids import short_id
from tracker.cli import main


@pytest.fixture
def pair(catalog: tracker.Catalog, tmp_path: Path) -> tuple[str, str]:
    """prepare wrote clean.csv, which train read: (prepare's id, train's id)."""
    clean = tmp_path / "clean.csv"
    clean.write_text("a\n1\n")
    with catalog.start_run("prepare") as prepare:
        prepare.log_output(clean)
    with catalog.start_run("train") as train:
        train.log_input(clean)
    return prepare.id, train.id


def _cli(capsys: pytest.CaptureFixture[str], catalog: tracker.Catalog,
         *argv: str) -> tuple[int, str, str]:
    code = main(["--catalog", str(catalog.path), *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_lineage_prints_a_tree_by_default(capsys: pytest.CaptureFixture[str],
                                          catalog: tracker.Catalog,
                                          pair: tuple[str, str], tmp_path: Path) -> None:
    prepare, train = pair
    code, out, _ = _cli(capsys, catalog, "lineage", short_id(train))
    assert code == 0
    assert out.splitlines() == [f"train  {train}  (completed)",
                                f"   <- {tmp_path / 'clean.csv'} v1",
                                f"      <- prepare  {prepare}  (completed)"]


def test_lineage_writes_the_svg_and_refuses_to_replace_it_without_force(
        capsys: pytest.CaptureFixture[str], catalog: tracker.Catalog,
        pair: tuple[str, str], tmp_path: Path) -> None:
    prepare, train = pair
    target = tmp_path / "lineage.svg"
    code, out, _ = _cli(capsys, catalog, "lineage", train, "--svg", str(target))
    assert code == 0 and out.strip() == f"{target} (3 nodes)"
    runs = [g.get("data-run") for g in ET.parse(target).getroot().iter()
            if g.get("data-run")]
    assert sorted(runs) == sorted([prepare, train])

    target.write_text("mine")
    code, out, err = _cli(capsys, catalog, "lineage", prepare, "--svg", str(target))
    assert code == 1 and out == ""
    assert err.strip() == f"tracker: error: {target} exists; pass --force to replace it, or " \
                          "give another file"
    assert target.read_text() == "mine"
    assert _cli(capsys, catalog, "lineage", prepare, "--svg", str(target), "--force")[0] == 0
    assert ET.parse(target).getroot().get("class") == "tracker-lineage"


def test_lineage_depth_and_trash_options(capsys: pytest.CaptureFixture[str],
                                         catalog: tracker.Catalog,
                                         pair: tuple[str, str]) -> None:
    prepare, train = pair
    catalog.delete_run(train)
    assert "train" not in _cli(capsys, catalog, "lineage", prepare)[1]
    assert "train" in _cli(capsys, catalog, "lineage", prepare, "--all")[1]
    code, _, err = _cli(capsys, catalog, "lineage", prepare, "--depth", "0")
    assert code == 2 and "must be 1 to 20" in err
    code, _, err = _cli(capsys, catalog, "lineage", "nosuchrun")
    assert code == 1 and err.strip() == "tracker: error: no run matches 'nosuchrun'"


def test_python_m_tracker_lineage_runs_in_a_process(catalog: tracker.Catalog,
                                                    pair: tuple[str, str]) -> None:
    result = subprocess.run([sys.executable, "-m", "tracker", "--catalog", str(catalog.path),
                             "lineage", pair[0]], capture_output=True, text=True, check=True)
    assert result.stdout.splitlines()[0].startswith("prepare  ")
