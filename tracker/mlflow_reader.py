"""Print an MLflow tracking store as JSON lines, through MLflow's own client.

A script run by the Python that has MLflow (tracker's own, or another given with
``--mlflow-python``): ``python mlflow_reader.py STORE_URI``. It imports nothing of tracker's, so
it runs in any environment with MLflow, and tracker never imports MLflow into the user's
process. Each line is one JSON object: first ``{"kind": "store"}``, then every experiment, then
every run (deleted ones too) with its params, tags, every metric point and its artifact files.
Exit status 3 means MLflow (or what the store needs, such as sqlalchemy) cannot be imported.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

MISSING_MLFLOW = 3
FAILED = 1
ERROR_PREFIX = "mlflow_reader: error: "  # MLflow logs to stderr too; this line is the reason
MAX_ARTIFACTS = 10_000  # files listed per run; the rest are counted, not listed
_PAGE = 1000
_BULK_RUNS = 100  # runs per bulk metric read
_BULK_POINTS = 2**31 - 1  # no cap: every point
_DATABASES = ("sqlite", "postgresql", "mysql", "mssql")


def main(argv: list[str]) -> int:
    """Write the store named by ``argv[0]`` to stdout; 0 when all of it was read."""
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 refuses ./mlruns else
    os.environ["MLFLOW_TRACKING_URI"] = argv[0]  # where mlflow-artifacts: URIs are served from
    # A server that does not answer: MLflow's default (7 retries with backoff) takes minutes.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    try:
        if argv[0].partition(":")[0].partition("+")[0] in _DATABASES:
            import alembic  # noqa: F401 - mlflow-skinny reads databases only with these two
            import sqlalchemy  # noqa: F401
        from mlflow.tracking import MlflowClient
        from mlflow.version import VERSION
    except ImportError as exc:
        print(f"{ERROR_PREFIX}{exc.name or exc}", file=sys.stderr)
        return MISSING_MLFLOW
    try:
        _emit({"kind": "store", "uri": argv[0], "mlflow": VERSION})
        _read(MlflowClient(tracking_uri=argv[0]), argv[0])
    except Exception as exc:  # noqa: BLE001 - reported on one line by tracker
        lines = str(exc).strip().splitlines() or [""]
        print(f"{ERROR_PREFIX}{type(exc).__name__}: {lines[0]}", file=sys.stderr)
        return FAILED
    return 0


def _read(client: Any, store: str) -> None:
    """Every experiment, then every run of each."""
    from mlflow.entities import ViewType

    experiments = list(_pages(lambda token: client.search_experiments(
        view_type=ViewType.ALL, max_results=_PAGE, page_token=token)))
    for experiment in experiments:
        _emit({"kind": "experiment", "id": experiment.experiment_id, "name": experiment.name,
               "deleted": experiment.lifecycle_stage == "deleted",
               "tags": dict(experiment.tags)})
    for experiment in experiments:
        token = None
        while True:  # a page of runs at a time: their metric histories are read together
            page = client.search_runs([experiment.experiment_id], run_view_type=ViewType.ALL,
                                      max_results=_PAGE, page_token=token)
            points = _histories(client, page)
            for run in page:
                _emit(_run(run, points[run.info.run_id], store))
            token = page.token
            if not token:
                break


def _pages(search: Any) -> Iterator[Any]:
    """Every item of a paged MLflow search."""
    token = None
    while True:
        page = search(token)
        yield from page
        token = page.token
        if not token:
            return


def _emit(record: dict[str, Any]) -> None:
    # ASCII JSON reads back whatever encoding the reader's python gives its stdout
    sys.stdout.write(json.dumps(record) + "\n")


def _histories(client: Any, runs: list[Any]) -> dict[str, list[list[Any]]]:
    """Every metric point of ``runs`` as [key, value, step, timestamp], by run id.

    Database stores have a bulk read (one query per key for many runs; MLflow's own UI uses
    it), reached through the client's store; other stores are read a run and a key at a time
    (three queries each on SQLite: 140 s for 1,000 runs of 5 metrics on a busy machine)."""
    points: dict[str, list[list[Any]]] = {run.info.run_id: [] for run in runs}
    store = getattr(getattr(client, "_tracking_client", None), "store", None)
    bulk = getattr(store, "get_metric_history_bulk", None)
    for key in sorted({key for run in runs for key in run.data.metrics}):
        ids = [run.info.run_id for run in runs if key in run.data.metrics]
        if bulk is None:
            found = [(run_id, point) for run_id in ids
                     for point in client.get_metric_history(run_id, key)]
        else:
            # MLflow 3's items are Metrics with a run_id; older ones hold the Metric in .metric
            found = [(item.run_id, getattr(item, "metric", item))
                     for start in range(0, len(ids), _BULK_RUNS)
                     for item in bulk(ids[start:start + _BULK_RUNS], key, _BULK_POINTS)]
        for run_id, point in found:
            points[run_id].append([key, point.value, point.step, point.timestamp])
    return points


def _run(run: Any, points: list[list[Any]], store: str) -> dict[str, Any]:
    info, data = run.info, run.data
    record = {"kind": "run", "id": info.run_id, "experiment_id": info.experiment_id,
              "name": info.run_name, "status": info.status, "start_time": info.start_time,
              "end_time": info.end_time, "user": info.user_id,
              "deleted": info.lifecycle_stage == "deleted", "artifact_uri": info.artifact_uri,
              "params": dict(data.params), "tags": dict(data.tags), "metrics": points}
    return {**record, **_artifacts(info, store)}


def _artifacts(info: Any, store: str) -> dict[str, Any]:
    """The run's artifact files as [path, size] under ``artifact_uri``: listed through MLflow's
    artifact repository for that URI (the client's list_artifacts would read the run again
    for each folder), from beside the store when a local artifact folder moved with it."""
    from mlflow.store.artifact import artifact_repository_registry as registry

    root = moved_folder(info.artifact_uri, store, info.run_id) or info.artifact_uri
    try:
        files = list(_walk(registry.get_artifact_repository(root).list_artifacts))
    except Exception as exc:  # noqa: BLE001 - any failure of a remote store is reported
        return {"artifacts": [], "artifacts_error": f"{type(exc).__name__}: {exc}"[:500]}
    return {"artifact_uri": root, "artifacts": files[:MAX_ARTIFACTS],
            "artifacts_unlisted": max(0, len(files) - MAX_ARTIFACTS)}


def _walk(list_artifacts: Any, path: str | None = None) -> Iterator[list[Any]]:
    for item in list_artifacts(path):
        if item.is_dir:
            yield from _walk(list_artifacts, item.path)
        else:
            yield [item.path, item.file_size]


def moved_folder(root: str | None, store: str, run_id: str) -> str | None:
    """A local artifact folder that is gone from where the store says, found at the same
    relative place beside a local store (an ``mlruns`` or ``mlartifacts`` folder copied along
    with it); None when the folder is where it was, or is not local."""
    if not root or not root.startswith("file:"):
        return None
    recorded = Path(unquote(urlparse(root).path))
    if recorded.exists():
        return None
    base = _store_folder(store)
    if base is None:
        return None
    parts = recorded.parts
    for start in range(1, len(parts)):
        if run_id not in parts[start:]:  # never some other run's folder
            return None
        candidate = base.joinpath(*parts[start:])
        if candidate.is_dir():
            return candidate.as_uri()
    return None


def _store_folder(store: str) -> Path | None:
    """The local folder a store lives in: an ``mlruns`` folder's parent, a sqlite file's
    folder."""
    if store.startswith("sqlite:///"):
        return Path(store.removeprefix("sqlite:///")).parent
    if store.startswith("file:"):
        return Path(unquote(urlparse(store).path)).parent
    return None


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
