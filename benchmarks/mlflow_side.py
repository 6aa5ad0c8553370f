"""MLflow's half of every comparison; runs only in the MLflow venv (benchmarks/.mlflow-venv).

``python -m benchmarks.mlflow_side '<json job>'`` runs one job (see :mod:`benchmarks.jobs`) and
prints its samples (seconds) and result. The tracking store is SQLite (``sqlite:///<db>``, a job's
``db``), the backend MLflow users share between notebooks on one machine, or a PostgreSQL
database (a job's ``uri``, ``postgresql+psycopg2://...``: a team's shared server;
artifacts then go to the job's ``folder``). Jobs mirror
:mod:`benchmarks.tracker_side`: the same operation, each tool's own public API.
"""

from __future__ import annotations

import collections
import os
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks import data
from benchmarks.jobs import (
    emit,
    error_kind,
    per_call_batch,
    read_loop,
    repeat,
    serve,
    wait_for_go,
    watch,
)

EXPERIMENT = "bench"
_STATUS = {"completed": "FINISHED", "failed": "FAILED", "running": "RUNNING"}


def _connect(job: dict[str, Any]) -> str:
    """Point MLflow at the job's store (``uri``, else the SQLite file ``db``; created on first
    use) and return the bench experiment id."""
    import mlflow

    # Artifacts default to ./mlruns: keep them beside the temporary database.
    os.chdir(job.get("folder") or Path(job["db"]).parent)
    mlflow.set_tracking_uri(job.get("uri") or f"sqlite:///{job['db']}")
    return mlflow.set_experiment(EXPERIMENT).experiment_id


def _database(job: dict[str, Any]) -> Any:
    """A DB-API connection to the job's store, for what MLflow has no call for (bulk rows,
    every run id): psycopg2 for a ``uri``, sqlite3 for a ``db``."""
    if job.get("uri"):
        import psycopg2

        return psycopg2.connect(job["uri"].replace("+psycopg2", "", 1))  # libpq's URL
    return sqlite3.connect(job["db"])


def op_import(job: dict[str, Any]) -> dict[str, Any]:
    """Time ``import mlflow`` in this fresh process."""
    started = time.perf_counter()
    import mlflow  # noqa: F401

    emit({"sample": time.perf_counter() - started})
    return {}


def op_first_run(job: dict[str, Any]) -> dict[str, Any]:
    """Import, point at a fresh SQLite db, start and end one run (the runner times the process)."""
    import mlflow

    _connect(job)
    with mlflow.start_run() as run:
        pass
    return {"run_id": run.info.run_id}


def op_one_run(job: dict[str, Any]) -> dict[str, Any]:
    """Time start + log_params(20) + log_metrics(5) + end of one run, after a warm-up run."""
    import mlflow

    _connect(job)
    runs = data.synthetic_runs(job["repeats"] + 1)

    def one() -> float:
        run = next(runs)
        started = time.perf_counter()
        with mlflow.start_run(run_name=run.name):
            mlflow.log_params(run.params)
            mlflow.log_metrics(run.metrics)
        return time.perf_counter() - started

    one()
    repeat(one, repeats=job["repeats"], budget_s=job["budget_s"])
    return {}


def op_log_calls(job: dict[str, Any]) -> dict[str, Any]:
    """Per-call seconds of log_param or log_metric, in batches of ``batch`` calls."""
    import mlflow

    _connect(job)
    log = mlflow.log_param if job["kind"] == "param" else mlflow.log_metric
    batch = per_call_batch(log, kind=job["kind"], size=job["batch"])

    with mlflow.start_run():
        log("warmup", 1.0)
        repeat(batch, repeats=job["repeats"], budget_s=job["budget_s"])
    return {}


def op_metric_loop(job: dict[str, Any]) -> dict[str, Any]:
    """Seconds for ``calls`` log_metric calls with increasing steps (the runner extrapolates)."""
    import mlflow

    _connect(job)

    def loop() -> float:
        with mlflow.start_run():
            started = time.perf_counter()
            for step in range(job["calls"]):
                mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
            return time.perf_counter() - started

    repeat(loop, repeats=job["repeats"], budget_s=job["budget_s"])
    return {}


def op_populate(job: dict[str, Any]) -> dict[str, Any]:
    """Create the schema through MLflow, then bulk-insert ``n`` runs in one transaction with
    the database's driver (MLflow has no bulk path: its own calls would take hours)."""
    started = time.perf_counter()
    experiment_id = _connect(job)
    connection = _database(job)
    with connection:
        for table, rows in _rows(int(experiment_id), job["n"], Path.cwd()).items():
            _insert(connection, table, rows, postgres=bool(job.get("uri")))
    connection.close()
    return {"seconds": time.perf_counter() - started, "experiment_id": experiment_id}


def _insert(connection: Any, table: str, rows: list[dict[str, Any]], *, postgres: bool) -> None:
    """Insert ``rows`` (dicts of the same columns) into ``table``; on PostgreSQL many rows per
    statement (psycopg2's executemany sends one statement per row)."""
    columns = ", ".join(rows[0])
    values = [tuple(row.values()) for row in rows]
    if postgres:
        from psycopg2.extras import execute_values

        execute_values(connection.cursor(), f"INSERT INTO {table} ({columns}) VALUES %s",
                       values, page_size=5_000)
        return
    marks = ", ".join("?" * len(rows[0]))
    connection.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})", values)


def _rows(experiment_id: int, n: int, root: Path) -> dict[str, list[dict[str, Any]]]:
    """The rows MLflow itself writes for a run with 20 params and 5 metrics (checked on 3.x)."""
    tables: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for run in data.synthetic_runs(n):
        run_id = uuid.uuid4().hex
        start_ms = int(run.started * 1000)
        end_ms = None if run.status == "running" else int((run.started + run.duration) * 1000)
        tables["runs"].append(
            {
                "run_uuid": run_id,
                "name": run.name,
                "source_type": "LOCAL",
                "source_name": "bench",
                "entry_point_name": "",
                "user_id": "bench",
                "status": _STATUS[run.status],
                "start_time": start_ms,
                "end_time": end_ms,
                "source_version": "",
                "lifecycle_stage": "active",
                "artifact_uri": f"{root}/mlruns/{experiment_id}/{run_id}/artifacts",
                "experiment_id": experiment_id,
            }
        )
        tags = {"mlflow.user": "bench", "mlflow.source.name": "bench", "mlflow.runName": run.name}
        tags["mlflow.source.type"] = "LOCAL"
        tables["tags"] += [{"key": k, "value": v, "run_uuid": run_id} for k, v in tags.items()]
        tables["params"] += [
            {"key": k, "value": str(v), "run_uuid": run_id} for k, v in run.params.items()
        ]
        for key, value in run.metrics.items():
            point = {"key": key, "value": value, "timestamp": start_ms, "step": 0, "is_nan": False}
            tables["metrics"].append({**point, "run_uuid": run_id})
            tables["latest_metrics"].append({**point, "run_uuid": run_id})
    return tables


def op_query(job: dict[str, Any]) -> dict[str, Any]:
    """Time runs-table queries (``kinds``: table, filter, top, count) on a populated db."""
    import mlflow

    experiment_id = _connect(job)
    mlflow.search_runs([experiment_id], max_results=1)  # warm-up: imports, engine, first page
    rows: dict[str, int] = {}
    for kind in job["kinds"]:

        def once(kind: str = kind) -> float:
            started = time.perf_counter()
            rows[kind] = _QUERIES[kind](mlflow, experiment_id, job["n"])
            return time.perf_counter() - started

        repeat(once, repeats=job["repeats"], budget_s=job["budget_s"], tag=kind)
    return {"rows": rows}


def _table(mlflow: Any, experiment_id: str, n: int) -> int:
    return len(mlflow.search_runs([experiment_id], max_results=n))


def _filter(mlflow: Any, experiment_id: str, n: int) -> int:
    return len(mlflow.search_runs([experiment_id], filter_string=data.FILTER, max_results=n))


def _top(mlflow: Any, experiment_id: str, n: int) -> int:
    order = [f"metrics.{data.ORDER_METRIC} DESC"]
    return len(mlflow.search_runs([experiment_id], order_by=order, max_results=100))


def _count(mlflow: Any, experiment_id: str, n: int) -> int:
    # MLflow has no count: listing the runs (without the DataFrame) is its cheapest way.
    found = mlflow.search_runs([experiment_id], max_results=n, output_format="list")
    return len(collections.Counter(run.info.status for run in found))


_QUERIES = {"table": _table, "filter": _filter, "top": _top, "count": _count}


def op_worker(job: dict[str, Any]) -> dict[str, Any]:
    """One of several processes writing runs at once; reports latencies, errors and its runs."""
    from mlflow.tracking import MlflowClient

    experiment_id = _connect(job)
    client = MlflowClient()
    waits: list[float] = []
    errors: collections.Counter[str] = collections.Counter()
    committed: list[str] = []
    wait_for_go(job["go"])
    for run in data.synthetic_runs(job["runs"], seed=job["worker"]):
        started = time.perf_counter()
        try:
            created = client.create_run(experiment_id, run_name=f"w{job['worker']}-{run.name}")
            client.log_batch(created.info.run_id, metrics=[], params=_params(run.params))
            client.log_metric(created.info.run_id, "m0", run.metrics["m0"])
            client.set_terminated(created.info.run_id)
        except Exception as error:  # counted, as a user's notebook would see it
            errors[error_kind(error)] += 1
            continue
        finally:
            waits.append(time.perf_counter() - started)
        committed.append(created.info.run_id)
    return {"waits": waits, "errors": dict(errors), "committed": committed,
            "finished_at": time.time()}


def _params(params: dict[str, Any]) -> list[Any]:
    from mlflow.entities import Param

    return [Param(key, str(value)) for key, value in list(params.items())[:5]]


def op_reader(job: dict[str, Any]) -> dict[str, Any]:
    """One of the processes looping over ``mlflow.search_runs()`` while others write."""
    import mlflow

    experiment_id = _connect(job)
    errors = read_loop(lambda: mlflow.search_runs([experiment_id]), go=job["go"],
                       stop=job["stop"])
    return {"errors": errors}


def op_watch(job: dict[str, Any]) -> dict[str, Any]:
    """Long-lived process B: polls ``mlflow.search_runs()``, says when each finished run shows."""
    import mlflow

    experiment_id = _connect(job)

    def finished() -> set[str]:
        frame = mlflow.search_runs([experiment_id])
        if frame.empty:  # no columns at all then
            return set()
        return set(frame.loc[frame["status"] == "FINISHED", "tags.mlflow.runName"])

    watch(finished, stop=job["stop"], poll_s=job["poll_s"])
    return {}


def op_watch_recent(job: dict[str, Any]) -> dict[str, Any]:
    """Long-lived process B reading the 10 newest runs (a runs browser's first page)."""
    import mlflow

    experiment_id = _connect(job)

    def finished() -> set[str]:
        frame = mlflow.search_runs([experiment_id], max_results=10,
                                   order_by=["attributes.start_time DESC"])
        if frame.empty:
            return set()
        return set(frame.loc[frame["status"] == "FINISHED", "tags.mlflow.runName"])

    watch(finished, stop=job["stop"], poll_s=job["poll_s"])
    return {}


def op_end_runs(job: dict[str, Any]) -> dict[str, Any]:
    """Long-lived process A: one warm-up run, then ``count`` runs ``pause_s`` apart; each
    name with the time of its end call."""
    import mlflow

    _connect(job)
    ended_at = {}
    for i in range(job["count"] + 1):
        name = f"live-{i}"
        mlflow.start_run(run_name=name)
        mlflow.log_param("lr", 0.1)
        mlflow.log_metric("loss", 0.5)
        if i:
            ended_at[name] = time.time()
        mlflow.end_run()
        time.sleep(job["pause_s"])
    return {"ended_at": ended_at}


def op_end_run(job: dict[str, Any]) -> dict[str, Any]:
    """Process A: start, log and end one run, then exit; ``ended_at`` is the end call's time."""
    import mlflow

    _connect(job)
    mlflow.start_run(run_name=job["name"])
    mlflow.log_param("lr", 0.1)
    mlflow.log_metric("loss", 0.5)
    ended_at = time.time()
    mlflow.end_run()
    return {"ended_at": ended_at}


def op_script(job: dict[str, Any]) -> dict[str, Any]:
    """Issue #10's script with MLflow: ``runs`` runs of one metric, then exit with status 0."""
    import mlflow

    _connect(job)
    ended_at = 0.0
    for i in range(job["runs"]):
        with mlflow.start_run(run_name=f"w{job['worker']}-{i}"):
            mlflow.log_metric("loss", 1 / (i + 1))
            ended_at = time.time()
    return {"ended_at": ended_at}


def op_count_runs(job: dict[str, Any]) -> dict[str, Any]:
    """Every run id in the store, read with its driver (what survived a concurrent write
    test)."""
    connection = _database(job)
    cursor = connection.cursor()
    cursor.execute("SELECT run_uuid FROM runs")
    ids = [row[0] for row in cursor.fetchall()]
    connection.close()
    return {"ids": ids}


if __name__ == "__main__":
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    serve({name[3:]: func for name, func in dict(globals()).items() if name.startswith("op_")})
