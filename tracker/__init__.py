"""tracker: a run tracker that lives inside Jupyter.

``%load_ext tracker`` turns the notebook's kernel session into a recorded run; the functions
here log to it and query the catalog. Heavy libraries (duckdb, pandas, ipywidgets) load only
when first needed, so importing tracker is cheap.
"""

from __future__ import annotations

from typing import Any

# Imported with tracker: the recorder's exit handler is registered before any of the user's
# (atexit runs the last registered first), so a handler of theirs can still log to a run.
import tracker.recorder  # noqa: F401
from tracker.api import (
    artifacts,
    count_runs,
    current_run,
    default_catalog,
    delete_run,
    delete_runs,
    delete_tag,
    diff,
    end_run,
    export_run,
    flush,
    get_artifact,
    get_run,
    import_mlflow,
    import_run,
    keys,
    lineage,
    lineage_graph,
    log_input,
    log_metric,
    log_metrics,
    log_output,
    log_param,
    log_params,
    metric_history,
    pull,
    purge,
    push,
    reproduce,
    restore_run,
    runs,
    set_status,
    set_tag,
    set_tags,
    show,
    sql,
    start_run,
    update_run,
    use_catalog,
)
from tracker.catalog import Catalog
from tracker.errors import (
    AmbiguousRunError,
    ArgumentError,
    ArtifactNotFoundError,
    CatalogError,
    CatalogFullError,
    CatalogLockedError,
    CatalogOwnershipError,
    CatalogVersionError,
    DescriptorError,
    FilterSyntaxError,
    NotACatalogError,
    ReadOnlySQLError,
    RunNotFoundError,
    SQLError,
    TrackerError,
    TrackerWarning,
)
from tracker.models import RunInfo
from tracker.run import Run

__version__ = "0.1.0"

__all__ = [
    "AmbiguousRunError",
    "ArgumentError",
    "ArtifactNotFoundError",
    "Catalog",
    "CatalogError",
    "CatalogFullError",
    "CatalogLockedError",
    "CatalogOwnershipError",
    "CatalogVersionError",
    "DescriptorError",
    "FilterSyntaxError",
    "NotACatalogError",
    "ReadOnlySQLError",
    "Run",
    "RunInfo",
    "RunNotFoundError",
    "SQLError",
    "TrackerError",
    "TrackerWarning",
    "artifacts",
    "count_runs",
    "current_run",
    "default_catalog",
    "delete_run",
    "delete_runs",
    "delete_tag",
    "diff",
    "end_run",
    "export_run",
    "flush",
    "get_artifact",
    "get_run",
    "import_mlflow",
    "import_run",
    "keys",
    "lineage",
    "lineage_graph",
    "load_ipython_extension",
    "log_input",
    "log_metric",
    "log_metrics",
    "log_output",
    "log_param",
    "log_params",
    "metric_history",
    "pull",
    "purge",
    "push",
    "reproduce",
    "restore_run",
    "runs",
    "set_status",
    "set_tag",
    "set_tags",
    "show",
    "sql",
    "start_run",
    "unload_ipython_extension",
    "update_run",
    "use_catalog",
]


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext tracker``: start (or keep) this kernel session's run."""
    from tracker.ipython import load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext tracker``: stop recording cells and files.

    The run stays open until the kernel exits, so ``%reload_ext tracker`` keeps the same run;
    ``%tracker end`` ends it now.
    """
    from tracker.ipython import unload

    unload(ipython)
