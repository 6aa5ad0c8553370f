"""Write the MLflow stores tests/test_mlflow_import.py reads, with a real MLflow (run it with a
Python that has MLflow, e.g. the benchmarks' venv): an ``mlruns`` folder and ``mlflow.db``.

    python tests/data/mlflow/make_stores.py tests/data/mlflow

Both stores hold the same history, with fixed times so the tests can name them: two experiments
besides Default, runs with params, metric series with steps and timestamps, tags, a parent with
a nested child, a failed, a killed and a still-running run, a deleted run, and artifacts.
With ``--runs N`` it writes only a sqlite store of N plain runs (the import benchmark's).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z in milliseconds, MLflow's time unit


def _client(uri: str):  # noqa: ANN202 - MLflow may be missing where this module is linted
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"  # MLflow 3 refuses ./mlruns without it
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def write_history(uri: str, artifacts: Path) -> None:
    """The small history: the same calls for the file store and the sqlite store."""
    from mlflow.entities import Metric, Param, RunTag

    client = _client(uri)
    churn = client.create_experiment("churn", artifact_location=(artifacts / "churn").as_uri(),
                                      tags={"team": "ml"})
    sweeps = client.create_experiment("sweeps", artifact_location=(artifacts / "sweeps").as_uri())

    def run(experiment: str, name: str, start: int, *, user: str = "alice",
            tags: dict[str, str] | None = None) -> str:
        created = client.create_run(experiment, start_time=T0 + start, run_name=name,
                                    tags={"mlflow.user": user, **(tags or {})})
        return created.info.run_id

    baseline = run(churn, "baseline", 0, tags={"source": "notebook", "mlflow.note.content":
                                                "first try"})
    client.log_batch(baseline, params=[Param("lr", "0.01"), Param("model", "LR"),
                                       Param("epochs", "3"), Param("db_password", "hunter2")],
                     metrics=[Metric("loss", 1.0 / (step + 1), T0 + 1000 * step, step)
                              for step in range(3)]
                     + [Metric("acc", 0.91, T0 + 2500, 0), Metric("acc", float("nan"),
                                                                    T0 + 2600, 1)],
                     tags=[RunTag("stage", "dev")])
    model = artifacts / "model.txt"
    model.parent.mkdir(parents=True, exist_ok=True)
    model.write_text("weights\n")
    client.log_artifact(baseline, str(model))
    client.log_artifact(baseline, str(model), artifact_path="plots/nested")
    client.set_terminated(baseline, "FINISHED", end_time=T0 + 3000)

    failed = run(churn, "broken", 10_000, user="bob")
    client.log_param(failed, "lr", "10")
    client.set_terminated(failed, "FAILED", end_time=T0 + 11_000)

    killed = run(churn, "stopped", 20_000)
    client.log_metric(killed, "loss", 0.7, timestamp=T0 + 20_500, step=0)
    client.set_terminated(killed, "KILLED", end_time=T0 + 21_000)

    run(churn, "still-going", 30_000)  # never terminated: RUNNING

    gone = run(churn, "deleted", 40_000)
    client.set_terminated(gone, "FINISHED", end_time=T0 + 41_000)
    client.delete_run(gone)

    parent = run(sweeps, "sweep", 50_000)
    client.log_param(parent, "grid", "lr")
    for i, lr in enumerate(("0.1", "0.2")):
        child = run(sweeps, f"trial-{i}", 51_000 + i * 1000,
                    tags={"mlflow.parentRunId": parent})
        client.log_param(child, "lr", lr)
        client.log_metric(child, "loss", 0.5 - i / 10, timestamp=T0 + 51_500 + i * 1000, step=0)
        client.set_terminated(child, "FINISHED", end_time=T0 + 51_900 + i * 1000)
    client.set_terminated(parent, "FINISHED", end_time=T0 + 60_000)

    default = run("0", "in-default", 70_000)
    client.set_terminated(default, "FINISHED", end_time=T0 + 71_000)


def write_many(uri: str, count: int) -> None:
    """``count`` runs like the benchmarks' (20 params, 5 metrics of 10 steps), in one experiment."""
    from mlflow.entities import Metric, Param

    client = _client(uri)
    experiment = client.create_experiment("bulk")
    for i in range(count):
        run_id = client.create_run(experiment, start_time=T0 + i * 1000,
                                   run_name=f"run-{i}").info.run_id
        client.log_batch(run_id, params=[Param(f"p{k}", str(i * k)) for k in range(20)],
                         metrics=[Metric(f"m{k}", (i + k + s) / 7, T0 + i * 1000 + s, s)
                                  for k in range(5) for s in range(10)])
        client.set_terminated(run_id, "FINISHED", end_time=T0 + i * 1000 + 900)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="where to write mlruns/ and mlflow.db")
    parser.add_argument("--runs", type=int, help="only a sqlite store of this many plain runs")
    args = parser.parse_args()
    folder = args.folder.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    if args.runs is not None:
        write_many(f"sqlite:///{folder / 'mlflow.db'}", args.runs)
        return
    for path in (folder / "mlruns", folder / "mlflow.db", folder / "artifacts"):
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
    # Both stores are written from a temporary working folder: MLflow creates ./mlruns there
    # for the Default experiment of a sqlite store.
    with tempfile.TemporaryDirectory() as scratch:
        os.chdir(scratch)
        write_history((folder / "mlruns").as_uri(), folder / "artifacts" / "file")
        write_history(f"sqlite:///{folder / 'mlflow.db'}", folder / "artifacts" / "sqlite")
    print(f"wrote {folder / 'mlruns'} and {folder / 'mlflow.db'}", file=sys.stderr)


if __name__ == "__main__":
    main()
