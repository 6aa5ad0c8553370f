"""The public surface of ``import tracker`` is exactly what is documented, and cheap to import."""

from __future__ import annotations

import inspect
import subprocess
import sys
from collections.abc import Callable

import pytest

import tracker

PUBLIC = {
    "AmbiguousRunError", "ArgumentError", "ArtifactNotFoundError", "Catalog", "CatalogError",
    "CatalogFullError", "CatalogLockedError", "CatalogOwnershipError", "CatalogVersionError",
    "DescriptorError", "FilterSyntaxError", "NotACatalogError", "ReadOnlySQLError", "Run",
    "RunInfo", "RunNotFoundError", "SQLError", "TrackerError", "TrackerWarning", "artifacts",
    "count_runs", "current_run", "default_catalog", "delete_run", "delete_runs", "delete_tag",
    "end_run", "export_run", "flush", "get_artifact", "get_run", "import_mlflow", "import_run",
    "keys", "lineage", "lineage_graph", "load_ipython_extension", "log_input", "log_metric",
    "log_metrics", "log_output", "log_param", "log_params", "metric_history", "purge",
    "restore_run", "runs", "set_status", "set_tag", "set_tags", "show", "sql", "start_run",
    "unload_ipython_extension", "update_run", "use_catalog",
    "diff", "reproduce",  # issue #14: tracker.diffing, tracker.reproduction
    "push", "pull",  # issue #13: tracker.transfer
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
            "'anywidget', 'numpy', 'pyarrow', 'IPython', 'nbformat', 'polars', 'h5py', 'netCDF4', "
            "'xarray', 'h5netcdf', 'sqlite3', 'psycopg') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


BAD_CALLS = {
    "get_run(None)": lambda: tracker.get_run(None),
    "get_run(key of another project)": lambda: tracker.get_run("tracker://other/runs/01m7zw"),
    "runs(where=123)": lambda: tracker.runs(where=123),
    "runs(limit=-1)": lambda: tracker.runs(limit=-1),
    "runs('((...')": lambda: tracker.runs("(" * 200 + "status = 'completed'" + ")" * 200),
    "runs(order_by=5)": lambda: tracker.runs(order_by=5),
    "runs(nonsense=1)": lambda: tracker.runs(**{"nonsense": 1}),
    "count_runs(by=5)": lambda: tracker.count_runs(by=5),
    "metric_history(key=5)": lambda: tracker.metric_history("01m7zwkkx6hq", key=5),
    "artifacts(role='inputs')": lambda: tracker.artifacts(role="inputs"),
    "lineage(b'')": lambda: tracker.lineage(b"01m7zwkkx6hq"),
    "lineage_graph(depth=0)": lambda: tracker.lineage_graph("01m7zwkkx6hq", depth=0),
    "lineage_graph(depth='2')": lambda: tracker.lineage_graph("01m7zwkkx6hq", depth="2"),
    "lineage_graph(None)": lambda: tracker.lineage_graph(None),
    "purge('abc')": lambda: tracker.purge(older_than="abc"),
    "delete_runs()": lambda: tracker.delete_runs(),
    "delete_run(5)": lambda: tracker.delete_run(5),
    "set_status(status='done')": lambda: tracker.set_status("01m7zwkkx6hq", "done"),
    "set_status(force='yes')": lambda: tracker.set_status("01m7zwkkx6hq", "failed",
                                                          force="yes"),
    "set_status(None, force=True)": lambda: tracker.set_status("01m7zwkkx6hq", None,
                                                               force=True),
    "get_artifact(123)": lambda: tracker.get_artifact(123),
    "get_artifact('out\\0.csv')": lambda: tracker.get_artifact("out\0.csv"),
    "show(bogus=1)": lambda: tracker.show(bogus=1),
    "restore_run(None)": lambda: tracker.restore_run(None),
    "update_run(labels='abc')": lambda: tracker.update_run("01m7zwkkx6hq", labels="abc"),
    "export_run(None)": lambda: tracker.export_run(None, "out.yaml"),
    "import_mlflow('')": lambda: tracker.import_mlflow(""),
    "import_mlflow(5)": lambda: tracker.import_mlflow(5),
    "import_mlflow('ftp://x')": lambda: tracker.import_mlflow("ftp://host/mlruns"),
    "import_mlflow(mlflow_python=5)": lambda: tracker.import_mlflow(".", mlflow_python=5),
    "use_catalog(123)": lambda: tracker.use_catalog(123),
    "use_catalog('')": lambda: tracker.use_catalog(""),
    "Catalog(123)": lambda: tracker.Catalog(123),
    "Catalog('')": lambda: tracker.Catalog(""),
    "Catalog(timeout='soon')": lambda: tracker.Catalog("c.duckdb", timeout="soon"),
    "Catalog(timeout=-1)": lambda: tracker.Catalog("c.duckdb", timeout=-1),
    "Catalog.flush(timeout='x')": lambda: tracker.default_catalog().flush(timeout="x"),
    "start_run(labels='gpu')": lambda: tracker.start_run("z", labels="gpu"),
    "end_run('bogus')": lambda: (tracker.start_run("x"), tracker.end_run(status="bogus")),
    "Run.end(None)": lambda: tracker.start_run("y").end(None),
}


@pytest.mark.parametrize("call", BAD_CALLS.values(), ids=BAD_CALLS.keys())
def test_public_functions_raise_only_tracker_errors(call: Callable[[], object]) -> None:
    with pytest.raises(tracker.TrackerError) as caught:
        call()
    # and the standard type a caller would catch: a bad argument is a ValueError and TypeError
    assert isinstance(caught.value, LookupError | ValueError)


def test_end_run_with_a_bad_status_keeps_the_run_open() -> None:
    run = tracker.start_run("still-open")
    with pytest.raises(tracker.ArgumentError, match="completed, failed, crashed"):
        tracker.end_run(status="bogus")
    assert tracker.current_run() is run and not run.ended


#: Catalog methods with no module function: the file and its lock, for tracker's own modules
#: and tools that play by the catalog's rules, and the plural of restore_run that the CLI uses.
CATALOG_ONLY = {"connect", "vet", "read_locked", "ensure_folder", "recorder_for_write",
                "restore_runs"}
#: Module functions with no Catalog method: they choose the catalog or load the extension.
MODULE_ONLY = {"default_catalog", "use_catalog", "load_ipython_extension",
               "unload_ipython_extension"}


def _methods() -> dict[str, inspect.Signature]:
    return {name: inspect.signature(getattr(tracker.Catalog("unused.duckdb"), name))
            for name, member in vars(tracker.Catalog).items()
            if callable(member) and not name.startswith("_") and name not in CATALOG_ONLY}


def test_module_functions_and_catalog_methods_are_the_same_calls() -> None:
    functions = {name: inspect.signature(getattr(tracker, name)) for name in tracker.__all__
                 if inspect.isfunction(getattr(tracker, name)) and name not in MODULE_ONLY}
    assert set(functions) == set(_methods())
    assert {name: str(signature) for name, signature in functions.items()} == {
        name: str(signature) for name, signature in _methods().items()}
