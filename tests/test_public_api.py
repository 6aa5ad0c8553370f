"""The public surface of ``import tracker`` is exactly what is documented, and cheap to import."""

from __future__ import annotations

import subprocess
import sys

import tracker

PUBLIC = {
    "AmbiguousRunError", "ArgumentError", "Catalog", "CatalogError", "CatalogFullError",
    "CatalogLockedError", "CatalogOwnershipError", "CatalogVersionError", "DescriptorError",
    "FilterSyntaxError", "NoActiveRunError", "NotACatalogError", "ReadOnlySQLError", "Run",
    "RunInfo", "RunNotFoundError", "SQLError", "TrackerError", "TrackerWarning", "artifacts", "count_runs",
    "current_run", "default_catalog", "delete_run", "delete_runs", "end_run", "export_run",
    "flush", "get_run", "import_run", "keys", "lineage", "load_ipython_extension", "log_input",
    "log_metric", "log_metrics", "log_output", "log_param", "log_params", "metric_history",
    "purge", "restore_run", "runs", "show", "sql", "start_run", "unload_ipython_extension",
    "update_run", "use_catalog",
}


def test_all_is_the_public_surface_and_sorted() -> None:
    assert set(tracker.__all__) == PUBLIC
    assert tracker.__all__ == sorted(tracker.__all__)
    for name in tracker.__all__:
        assert getattr(tracker, name).__doc__, f"{name} has no docstring"


def test_errors_are_also_the_standard_exceptions_callers_catch() -> None:
    assert issubclass(tracker.RunNotFoundError, LookupError)
    assert issubclass(tracker.FilterSyntaxError, ValueError)
    assert issubclass(tracker.CatalogLockedError, TimeoutError)
    assert issubclass(tracker.ArgumentError, ValueError)
    assert issubclass(tracker.ArgumentError, TypeError)
    assert issubclass(tracker.ReadOnlySQLError, PermissionError)
    assert issubclass(tracker.CatalogOwnershipError, PermissionError)
    assert issubclass(tracker.CatalogFullError, OSError)
    assert all(issubclass(getattr(tracker, name), tracker.TrackerError)
               for name in PUBLIC if name.endswith("Error"))


def test_importing_tracker_loads_no_heavy_library() -> None:
    code = ("import sys, tracker; heavy = [m for m in ('duckdb', 'pandas', 'ipywidgets', "
            "'numpy', 'pyarrow', 'IPython', 'nbformat') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
