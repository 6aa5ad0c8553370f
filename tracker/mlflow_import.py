"""Importing an MLflow history: experiments become projects, MLflow runs tracker runs.

The store is read by MLflow's own client (it knows every store version), in a child process
running :mod:`tracker.mlflow_reader` under the Python that has MLflow: tracker's own by default,
or another one (``mlflow_python``) when MLflow lives in its own environment. Each MLflow run
becomes a run descriptor, checked by :mod:`tracker.descriptor` and added through
:func:`tracker.exchange.import_checked` like any import (into a PostgreSQL catalog, by
:func:`tracker.pg_exchange.merge`), so nothing from the store becomes SQL text and secrets in
params are redacted. A run's tracker id is its start time and a hash of its
MLflow id, so importing the same store again adds nothing.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tracker import _ids, arguments, descriptor, exchange, mlflow_reader, values
from tracker.errors import ArgumentError, DescriptorError

if TYPE_CHECKING:
    from tracker.catalog import Catalog

#: MLflow's run statuses as tracker's: KILLED is what tracker calls crashed (a run stopped from
#: outside, as the filter alias ``status = 'KILLED'`` already says); SCHEDULED has not started.
STATUSES = {"FINISHED": "completed", "FAILED": "failed", "KILLED": "crashed",
            "RUNNING": "running", "SCHEDULED": "running"}
#: MLflow's system tags that become run attributes rather than tags.
ATTRIBUTE_TAGS = ("mlflow.runName", "mlflow.user", "mlflow.note.content")
RUN_ID_TAG = "mlflow.run_id"  # the MLflow run an imported run came from
INSTALL = "pip install mlflow-skinny sqlalchemy alembic"
_BATCH = 500  # runs per transaction
_INT = re.compile(r"-?[1-9][0-9]{0,17}|0")
_SERVERS = ("http", "https", "databricks", "postgresql", "mysql", "mssql")
_SQLITE_HEADER = b"SQLite format 3\x00"


@dataclass
class MLflowImport:
    """What :func:`tracker.import_mlflow` did: the runs it added and those it skipped, why."""

    store: str
    #: tracker ids of the runs added, by MLflow run id
    imported: dict[str, str] = field(default_factory=dict)
    #: MLflow run id -> why it was not added (already imported, or refused by a check)
    skipped: dict[str, str] = field(default_factory=dict)
    #: things the user should know that did not stop a run (artifacts that could not be listed)
    notes: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"imported {_runs(len(self.imported))} from {self.store}, skipped "
                 f"{len(self.skipped)}"]
        reasons: dict[str, int] = {}
        for reason in self.skipped.values():
            reasons[reason] = reasons.get(reason, 0) + 1
        lines += [f"  {count} skipped: {reason}" for reason, count in sorted(reasons.items())]
        return "\n".join([*lines, *(f"  note: {note}" for note in self.notes)])


def import_mlflow(catalog: Catalog, store: str | os.PathLike[str], *,
                  mlflow_python: str | os.PathLike[str] | None = None) -> MLflowImport:
    """See :func:`tracker.import_mlflow`."""
    python = _python(mlflow_python)
    uri = store_uri(store)
    report = MLflowImport(store=uri)
    records = list(_read(uri, python))
    experiments = {r["id"]: r["name"] for r in records if r["kind"] == "experiment"}
    runs = [r for r in records if r["kind"] == "run"]
    ids = {run["id"]: _tracker_id(run) for run in runs}
    checked: dict[str, dict[str, Any]] = {}
    for run in runs:
        try:
            checked[run["id"]] = descriptor.validate(_descriptor(run, experiments, ids))
        except DescriptorError as exc:
            report.skipped[run["id"]] = f"refused by tracker's checks ({exc})"
        _note_artifacts(report, run)
    pending = list(checked.items())
    for start in range(0, len(pending), _BATCH):
        batch = pending[start:start + _BATCH]
        added, refused = _add(catalog, [data for _, data in batch])
        for mlflow_id, data in batch:
            run_id = data["run"]["id"]
            if run_id in added:
                report.imported[mlflow_id] = run_id
            else:
                report.skipped[mlflow_id] = f"refused by the catalog ({refused[run_id]})" \
                    if run_id in refused else "already imported"
    running = sum(checked[mlflow_id]["run"]["status"] == "running" for mlflow_id in report.imported)
    if running:
        report.notes.append(f"{_runs(running)} still running in MLflow: imported as running, "
                            "and importing again does not update them")
    return report


def _add(catalog: Catalog, runs: list[dict[str, Any]]) -> tuple[set[str], dict[str, str]]:
    """Add the checked runs the catalog lacks: the ids added, and the runs a server refused
    (by id: why; a text with a NUL), which keep no other out."""
    from tracker import reading

    if reading.on_postgres(catalog):
        from tracker import pg_exchange

        merged = pg_exchange.merge(catalog, runs, pg_exchange.redactor(), update=False)
        return set(merged.added), merged.refused
    return set(exchange.import_checked(catalog, runs)), {}


# -- the store ----------------------------------------------------------------------------


def store_uri(store: str | os.PathLike[str]) -> str:
    """The tracking URI MLflow's client takes for ``store``: an ``mlruns`` folder, an MLflow
    SQLite file, a ``sqlite:///``, ``file:`` or server URI. Local stores must exist and look
    like MLflow's (MLflow would create an empty one where there is none)."""
    text = arguments.path(store, "store")
    scheme = text.partition("://")[0].partition("+")[0] if "://" in text else ""
    if scheme in _SERVERS:
        return text
    if scheme == "sqlite":
        return f"sqlite:///{_sqlite_file(Path(text.removeprefix('sqlite:///')))}"
    if scheme == "file":
        text = text.removeprefix("file://")
    elif scheme:
        raise ArgumentError(f"store {text!r}: tracker reads mlruns folders, sqlite:/// files "
                            f"and {', '.join(_SERVERS)} URIs, not {scheme}://")
    path = Path(text).expanduser().absolute()
    if path.is_file():
        return f"sqlite:///{_sqlite_file(path)}"
    if not path.is_dir() or not any(path.glob("*/meta.yaml")):
        raise ArgumentError(f"{path} is not an MLflow store: give an mlruns folder (one with "
                            "an experiment's meta.yaml in it), an MLflow SQLite file or a "
                            "tracking server URL")
    return path.as_uri()


def _sqlite_file(path: Path) -> Path:
    path = path.expanduser().absolute()
    try:
        with open(path, "rb") as file:
            header = file.read(len(_SQLITE_HEADER))
    except OSError as exc:
        raise ArgumentError(f"cannot read {path} ({exc.strerror}); give an MLflow SQLite "
                            "file (sqlite:///mlflow.db)") from None
    if header != _SQLITE_HEADER:
        raise ArgumentError(f"{path} is not an SQLite database, so not an MLflow store")
    return path


def _python(mlflow_python: str | os.PathLike[str] | None) -> str:
    if mlflow_python is None:
        return sys.executable
    path = Path(arguments.path(mlflow_python, "mlflow_python")).expanduser()
    if not path.is_file() or not os.access(path, os.X_OK):
        raise ArgumentError(f"mlflow_python {str(path)!r} is not a Python executable; give "
                            "the python of an environment with MLflow (.../bin/python)")
    return str(path)


def _read(uri: str, python: str) -> Iterator[dict[str, Any]]:
    """The reader's records, or ArgumentError saying what MLflow lacked or why it failed."""
    reader = Path(mlflow_reader.__file__)
    with tempfile.TemporaryFile() as errors:
        try:
            done = subprocess.run([python, str(reader), uri], stdout=subprocess.PIPE,
                                  stderr=errors, check=False)
        except OSError as exc:
            raise ArgumentError(f"cannot run {python} ({exc.strerror})") from None
        errors.seek(0)
        reason = _reason(errors.read().decode("utf-8", "replace"))
    if done.returncode == mlflow_reader.MISSING_MLFLOW:
        raise ArgumentError(f"reading {uri} needs MLflow, and {python} cannot import "
                            f"{reason or 'mlflow'}: {INSTALL} (sqlalchemy and alembic are for "
                            "SQLite and database stores), or pass the python of an environment "
                            "that has MLflow (--mlflow-python)")
    if done.returncode != 0:
        raise ArgumentError(f"MLflow could not read {uri}: {reason or 'no reason given'}")
    try:
        records = [json.loads(line) for line in done.stdout.decode("utf-8").splitlines()]
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError both
        raise ArgumentError(f"the MLflow reader run by {python} wrote output tracker cannot "
                            f"read ({exc}); is {python} a Python with MLflow?") from None
    yield from records


def _reason(stderr: str) -> str:
    """The reader's own error line among MLflow's log lines."""
    lines = [line.removeprefix(mlflow_reader.ERROR_PREFIX) for line in stderr.splitlines()
             if line.startswith(mlflow_reader.ERROR_PREFIX)]
    return lines[-1] if lines else ""


# -- one run ------------------------------------------------------------------------------


def _tracker_id(run: dict[str, Any]) -> str:
    """Sorted by the MLflow run's start, and the same at every import of it."""
    millis = run["start_time"] or run["end_time"] or 0
    return _ids.derived_run_id(millis, f"mlflow:{run['id']}".encode())


def _descriptor(run: dict[str, Any], experiments: dict[str, str],
                ids: dict[str, str]) -> dict[str, Any]:
    """The run as a tracker descriptor (checked by the caller)."""
    start = _time(run["start_time"] or run["end_time"] or 0)
    end = _time(run["end_time"]) if run["end_time"] else None
    tags = run["tags"]
    parent = ids.get(tags.get("mlflow.parentRunId", ""))
    points = sorted(run["metrics"], key=lambda point: (point[3], point[2]))
    latest = {key: values.encode_float(value) for key, value, _, _ in points}
    params = [_param(key, text, start) for key, text in sorted(run["params"].items())]
    summary = {row["key"]: json.loads(row["value"]) for row in params}
    record = {
        "id": ids[run["id"]], "status": STATUSES.get(run["status"], "crashed"),
        "started_at": start, "ended_at": end,
        "duration": (end - start).total_seconds() if end else None,
        "name": run["name"] or tags.get("mlflow.runName"),
        "project": experiments.get(run["experiment_id"], run["experiment_id"]),
        "username": run["user"] or tags.get("mlflow.user"),
        "notes": tags.get("mlflow.note.content"), "parent_id": parent,
        "deleted_at": _now() if run["deleted"] else None,
        "params": summary, "metrics": latest}
    return {"format": descriptor.FORMAT, "version": descriptor.FORMAT_VERSION,
            "run": record, "params": params, "tags": _tags(run, end or start),
            "metrics": [{"key": key, "value": values.encode_float(value), "step": step,
                         "logged_at": _time(stamp)} for key, value, step, stamp in points],
            "artifacts": _artifacts(run, ids[run["id"]], end or start)}


def _tags(run: dict[str, Any], set_at: dt.datetime) -> list[dict[str, Any]]:
    """The run's MLflow tags, less those that became attributes, plus the MLflow run id (MLflow
    keeps no time for a tag: the run's last known time stands for it)."""
    kept = {k: v for k, v in run["tags"].items() if k not in ATTRIBUTE_TAGS}
    return [{"key": key, "value": value, "set_at": set_at}
            for key, value in sorted({**kept, RUN_ID_TAG: run["id"]}.items())]


def _param(key: str, text: str, logged_at: dt.datetime) -> dict[str, Any]:
    """MLflow keeps every param as text; numbers written by ``str()`` read back as numbers,
    so ``params.lr > 0.01`` compares numbers as tracker's own params do."""
    value, kind, _ = values.normalize_param(_typed(text))
    return {"key": key, "value": json.dumps(value), "kind": kind, "logged_at": logged_at}


def _typed(text: str) -> Any:
    if _INT.fullmatch(text):
        return int(text)
    try:
        number = float(text)
    except ValueError:
        return text
    return number if math.isfinite(number) and repr(number) == text else text


def _artifacts(run: dict[str, Any], run_id: str, created: dt.datetime) -> list[dict[str, Any]]:
    """One output record per artifact file (its URI and size; MLflow keeps no hash), or the
    run's artifact folder when the files could not be listed."""
    root = (run["artifact_uri"] or "").rstrip("/")
    files = run["artifacts"]
    if not files and root and run.get("artifacts_error"):
        files = [["", None]]
    records = []
    for path, size in files:
        uri = f"{root}/{path}" if path else root
        records.append({"id": _ids.derived_run_id(int(created.timestamp() * 1000),
                                                  f"mlflow-artifact:{uri}".encode()),
                        "key": uri, "version": 1, "uri": uri, "size": size,
                        "created_at": created, "role": "output", "linked_at": created,
                        "producer_run_id": run_id, "via": "mlflow"})
    return records


def _note_artifacts(report: MLflowImport, run: dict[str, Any]) -> None:
    if run.get("artifacts_error"):
        report.notes.append(f"run {run['id']}: its artifacts could not be listed "
                            f"({run['artifacts_error']}); the artifact folder is recorded")
    if run.get("artifacts_unlisted"):
        report.notes.append(f"run {run['id']}: {run['artifacts_unlisted']} artifact files past "
                            f"the first {mlflow_reader.MAX_ARTIFACTS} are not recorded")


def _runs(count: int) -> str:
    return f"{count} run" if count == 1 else f"{count} runs"


def _time(millis: int) -> dt.datetime:
    """An MLflow time (ms since the epoch); one no datetime can hold (e.g. nanoseconds logged
    by mistake) refuses only its run."""
    try:
        return dt.datetime.fromtimestamp(millis / 1000, dt.timezone.utc)
    except (ValueError, OverflowError, OSError):
        raise DescriptorError(f"time {millis!r:.30} ms is not a date tracker can store "
                              "(years 1-9999)") from None


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)
