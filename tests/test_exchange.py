"""A run exported from one catalog is the same run when imported into another."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

import tracker


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_a_run_round_trips_between_catalogs(catalog: tracker.Catalog, tmp_path: Path,
                                            suffix: str) -> None:
    data = tmp_path / "in.csv"
    data.write_text("x\n1\n")
    with catalog.start_run("exported", labels=["keep"], params={"lr": 0.1, "tag": "ü"}) as run:
        run.log_param("lr", 0.2)
        run.log_metric("loss", 0.5, step=1)
        run.log_metric("loss", math.nan, step=2)
        run.log_input(data)
    descriptor = catalog.export_run(run.id, tmp_path / f"run{suffix}")
    other = tracker.Catalog(tmp_path / "other" / "catalog.duckdb")
    assert other.import_run(descriptor) == run.id
    before, after = catalog.get_run(run.id), other.get_run(run.id)
    for field in ("name", "status", "labels", "params", "started_at", "ended_at", "artifacts"):
        assert getattr(after, field) == getattr(before, field), field
    assert after.param_history["lr"] == before.param_history["lr"]
    assert math.isnan(after.metrics["loss"])
    history = other.metric_history(run.id)
    assert list(history["step"]) == [1, 2]
    found = other.runs("params.lr = 0.2 AND params.tag = 'ü' AND metrics.loss = 'NaN'")
    assert list(found["id"]) == [run.id]  # an imported run is found by its values
    with pytest.raises(tracker.TrackerError, match="already in"):
        other.import_run(descriptor)


def test_importing_something_else_is_refused(catalog: tracker.Catalog, tmp_path: Path) -> None:
    stray = tmp_path / "config.yaml"
    stray.write_text("learning_rate: 0.1\n")
    with pytest.raises(tracker.TrackerError, match="not a tracker run descriptor"):
        catalog.import_run(stray)


def test_a_broken_descriptor_is_a_clear_error(catalog: tracker.Catalog, tmp_path: Path) -> None:
    broken = tmp_path / "run.yaml"
    broken.write_text("format: [unclosed\n")
    with pytest.raises(tracker.TrackerError, match="not a tracker run descriptor"):
        catalog.import_run(broken)
