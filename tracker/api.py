"""The module-level functions of ``tracker``: the same methods, on the default catalog.

The default catalog is ``$TRACKER_CATALOG``, else the notebook's ``metadata.tracker.catalog``
(set by the extension), else ``~/.tracker/catalog.duckdb``; :func:`use_catalog` changes it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tracker.catalog import Catalog

if TYPE_CHECKING:
    import pandas as pd

    from tracker.diffing import RunDiff
    from tracker.lineage_walk import LineageGraph
    from tracker.mlflow_import import MLflowImport
    from tracker.models import RunInfo
    from tracker.reproduction import Reproduction
    from tracker.retrieval import KeptFile
    from tracker.run import Run
    from tracker.transfer import Pushed

_default: Catalog | None = None


def default_catalog() -> Catalog:
    """The catalog the module-level functions use."""
    global _default
    if _default is None:
        _default = Catalog()
    return _default


def use_catalog(path: str | os.PathLike[str] | Catalog | None) -> Catalog:
    """Point the module-level functions at another catalog (None: back to the default)."""
    global _default
    _default = path if isinstance(path, Catalog) else (Catalog(path) if path is not None
                                                        else None)
    return default_catalog()


def start_run(name: str | None = None, *, project: str | None = None,
              params: Mapping[str, Any] | None = None, labels: Sequence[str] | None = None,
              notes: str | None = None, parent: str | None = None) -> Run:
    """Start a run and make it the active one; also a context manager.

    Calling it again with no name (or the active run's name) returns the active run, so
    re-running a notebook cell never duplicates a run; another name starts a child run.
    ``with start_run(...)`` ends the run ``completed``, or ``failed`` on an exception.
    """
    return default_catalog().start_run(name, project=project, params=params, labels=labels,
                                       notes=notes, parent=parent)


def current_run() -> Run | None:
    """The active run of this process, if any."""
    return default_catalog().current_run()


def end_run(status: str = "completed") -> None:
    """End the active run with ``status``: completed, failed or crashed."""
    default_catalog().end_run(status)


def log_param(key: str, value: Any) -> None:
    """Set a param of the active run (buffered: microseconds, no I/O)."""
    default_catalog().log_param(key, value)


def log_params(params: Mapping[str, Any]) -> None:
    """Set several params; nested dicts become dotted keys (``optimizer.lr``)."""
    default_catalog().log_params(params)


def log_metric(key: str, value: float, step: int | None = None) -> None:
    """Record a metric value (optionally at ``step``) for the active run."""
    default_catalog().log_metric(key, value, step)


def log_metrics(metrics: Mapping[str, float], step: int | None = None) -> None:
    """Record several metric values at one step."""
    default_catalog().log_metrics(metrics, step)


def set_tag(key: str, value: Any, *, run: str | None = None) -> None:
    """Set a tag of the active run (or of the run ``run`` names): a note such as
    ``source='manual'`` that setting again replaces; params keep their history, tags do not."""
    default_catalog().set_tag(key, value, run=run)


def set_tags(tags: Mapping[str, Any], *, run: str | None = None) -> None:
    """Set several tags of the active run (or of the run ``run`` names)."""
    default_catalog().set_tags(tags, run=run)


def delete_tag(key: str, *, run: str | None = None) -> None:
    """Remove a tag of the active run (or of the run ``run`` names)."""
    default_catalog().delete_tag(key, run=run)


def log_input(path: str | os.PathLike[str], *, keep: bool | None = None) -> None:
    """Record a file or URI the active run read (hashed in the background); ``keep`` as for
    :func:`log_output`."""
    default_catalog().log_input(path, keep=keep)


def log_output(path: str | os.PathLike[str], *, keep: bool | None = None) -> None:
    """Record a file or URI the active run wrote (hashed, and its content kept per the
    policy, in the background); ``keep=True`` keeps it whatever the policy, ``False`` never."""
    default_catalog().log_output(path, keep=keep)


def flush(*, timeout: float | None = None) -> None:
    """Wait (at most ``timeout`` seconds) until everything logged by this process is in the
    catalog."""
    default_catalog().flush(timeout=timeout)


def get_run(ref: str) -> RunInfo:
    """The run ``ref`` names: its id, a unique prefix of 4+ characters of its id or of its
    short id (the 8 characters listings show), or its ``tracker://`` key.

    Raises :class:`tracker.RunNotFoundError` when nothing matches,
    :class:`tracker.AmbiguousRunError` (listing the runs) when several do.
    """
    return default_catalog().get_run(ref)


def runs(where: str | None = None, *, order_by: str | Sequence[str] | None = None,
         limit: int | None = None, offset: int = 0, include_deleted: bool = False,
         deleted_only: bool = False, **equals: Any) -> pd.DataFrame:
    """Runs as a DataFrame; see :meth:`tracker.Catalog.runs` and the README's filter language."""
    return default_catalog().runs(where, order_by=order_by, limit=limit, offset=offset,
                                  include_deleted=include_deleted, deleted_only=deleted_only,
                                  **equals)


def count_runs(where: str | None = None, *, by: str | None = "status",
               include_deleted: bool = False) -> pd.DataFrame:
    """Numbers of runs, grouped ``by`` an attribute or a param."""
    return default_catalog().count_runs(where, by=by, include_deleted=include_deleted)


def keys() -> list[str]:
    """Every params, metrics and tags column the runs table can have (``params.lr``, ...)."""
    return default_catalog().keys()


def metric_history(ref: str, key: str | None = None) -> pd.DataFrame:
    """Every value of a run's metrics, in order (for plots)."""
    return default_catalog().metric_history(ref, key)


def artifacts(run: str | None = None, *, role: str | None = None,
              include_deleted: bool = False) -> pd.DataFrame:
    """Files and URIs read (``role="input"``) and written (``"output"``) by runs, and the
    notebooks stored with them (``"notebook"``); None is every role. Deleted runs' records
    only with ``include_deleted``."""
    return default_catalog().artifacts(run, role=role, include_deleted=include_deleted)


def get_artifact(path_or_uri: str | os.PathLike[str], run: str | None = None,
                 version: int | None = None) -> KeptFile:
    """One recorded version of a file: see :meth:`Catalog.get_artifact`."""
    return default_catalog().get_artifact(path_or_uri, run=run, version=version)


def lineage(ref: str, *, include_deleted: bool = False) -> pd.DataFrame:
    """Runs upstream (produced what ``ref`` read) and downstream (read what it wrote);
    deleted ones only with ``include_deleted``."""
    return default_catalog().lineage(ref, include_deleted=include_deleted)


def lineage_graph(ref: str, *, depth: int = 3, include_deleted: bool = False) -> LineageGraph:
    """The runs and files upstream and downstream of ``ref`` as a graph; ``.svg()`` draws it,
    and a notebook shows it as a picture: ``tracker.lineage_graph("01m7zw")``."""
    return default_catalog().lineage_graph(ref, depth=depth, include_deleted=include_deleted)
def diff(a: str, b: str) -> RunDiff:
    """What differs between two runs (params, code, files, environment, metrics): a
    :class:`tracker.diffing.RunDiff` that prints as text and shows as HTML in a notebook."""
    return default_catalog().diff(a, b)


def reproduce(ref: str, *, tolerance: float = 0.0,
              workdir: str | os.PathLike[str] | None = None,
              timeout: float | None = None, ignore: str | Sequence[str] = ()) -> Reproduction:
    """Re-execute a run's notebook and compare: see :meth:`Catalog.reproduce`."""
    return default_catalog().reproduce(ref, tolerance=tolerance, workdir=workdir,
                                       timeout=timeout, ignore=ignore)


def update_run(ref: str, *, name: str | None = None, labels: Sequence[str] | None = None,
               notes: str | None = None) -> RunInfo:
    """Rename a run, or replace its labels or notes."""
    return default_catalog().update_run(ref, name=name, labels=labels, notes=notes)


def set_status(ref: str, status: str, *, force: bool = False) -> RunInfo:
    """Set a run's status by hand (a crashed run marked completed or failed...); the rules are
    :meth:`tracker.Catalog.set_status`'s, ``force=True`` skips them. Kept in its history."""
    return default_catalog().set_status(ref, status, force=force)


def delete_run(ref: str) -> str:
    """Soft-delete a run; :func:`restore_run` undoes it until :func:`purge`."""
    return default_catalog().delete_run(ref)


def delete_runs(where: str | None = None, *, ids: Sequence[str] | None = None,
                **equals: Any) -> list[str]:
    """Soft-delete every run a filter matches (or the given ids)."""
    return default_catalog().delete_runs(where, ids=ids, **equals)


def restore_run(ref: str) -> str:
    """Bring a soft-deleted run back."""
    return default_catalog().restore_run(ref)


def purge(older_than: str | float | None = None, *,
          ids: Sequence[str] | None = None, store: bool = False) -> dict[str, int]:
    """Delete for good the runs soft-deleted more than ``older_than`` ago (e.g. ``"30d"``),
    only those of ``ids`` if given; ``store`` also cleans a shared ``TRACKER_STORE``."""
    return default_catalog().purge(older_than, ids=ids, store=store)


def export_run(ref: str, path: str | os.PathLike[str], *, overwrite: bool = False,
               contents: bool = False) -> Path:
    """Write a run as a self-contained YAML or JSON descriptor (an existing file only with
    ``overwrite=True``; never a catalog); ``contents`` also carries its kept contents in
    ``<path>.contents/``."""
    return default_catalog().export_run(ref, path, overwrite=overwrite, contents=contents)


def import_run(path: str | os.PathLike[str]) -> str:
    """Add a run exported from another catalog; returns its id."""
    return default_catalog().import_run(path)


def import_mlflow(store: str | os.PathLike[str], *,
                  mlflow_python: str | os.PathLike[str] | None = None) -> MLflowImport:
    """Import an MLflow history into the default catalog: see :meth:`Catalog.import_mlflow`."""
    return default_catalog().import_mlflow(store, mlflow_python=mlflow_python)


def push(to: str | os.PathLike[str] | Catalog, *, where: str | None = None) -> Pushed:
    """Copy the default catalog's runs to another (a team's ``postgresql://`` catalog):
    see :meth:`Catalog.push`."""
    return default_catalog().push(to, where=where)


def pull(source: str | os.PathLike[str] | Catalog, *, where: str | None = None) -> Pushed:
    """Copy another catalog's runs into the default one: see :meth:`Catalog.pull`."""
    return default_catalog().pull(source, where=where)


def sql(query: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Run one read-only query (a SELECT) on the catalog."""
    return default_catalog().sql(query, params)


def show(where: str | None = None, **options: Any) -> Any:
    """Display the runs browser (a :class:`tracker.widgets.RunTable`) and return it."""
    return default_catalog().show(where, **options)
