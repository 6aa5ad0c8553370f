"""Fixtures shared by the whole suite: every test gets its own catalog, never ~/.tracker."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import tracker
from tracker import api

PYTHON = sys.executable


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Point the default catalog and IPython's profile at the test's own folder."""
    monkeypatch.setenv("TRACKER_CATALOG", str(tmp_path / "default" / "catalog.duckdb"))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.delenv("TRACKER_NOTEBOOK", raising=False)
    monkeypatch.delenv("TRACKER_PROJECT", raising=False)
    tracker.use_catalog(None)
    yield
    _end_open_runs(api._default)
    tracker.use_catalog(None)


def _end_open_runs(catalog: tracker.Catalog | None) -> None:
    recorder = catalog._recorder if catalog is not None else None
    if recorder is None:
        return
    for run in reversed(list(recorder.stack)):
        run.end()


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[tracker.Catalog]:
    """A fresh, empty catalog in the test's temporary folder."""
    fresh = tracker.Catalog(tmp_path / "catalog.duckdb")
    yield fresh
    _end_open_runs(fresh)
