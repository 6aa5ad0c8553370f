"""The plain data tracker hands back: a run as stored, and the statuses a run can have."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

RUNNING = "running"
COMPLETED = "completed"
FAILED = "failed"
CRASHED = "crashed"
STATUSES = (RUNNING, COMPLETED, FAILED, CRASHED)
FINAL_STATUSES = (COMPLETED, FAILED, CRASHED)
#: A start or update attribute asking the catalog to number the run's name: "train_cnn" is
#: stored as "train_cnn #12", the number assigned when the name is written (see the writer).
NUMBERED_NAME = "name_numbered"
#: What counts as a name's number ("train_cnn #N"), on every back end alike: a regex of the
#: digits (matched whole) and the largest value, BIGINT's.
NAME_NUMBER = "[0-9]{1,19}"
LARGEST_NAME_NUMBER = 2**63 - 1

#: How a file record was seen (the ``via`` of an artifact), and what each means.
VIAS: dict[str, str] = {
    "call": "an explicit log_input/log_output",
    "open": "Python's open (the audit hook)",
    **{name: f"a wrapped {name} reader or writer" for name in (
        "pandas", "pyarrow", "polars", "h5py", "netCDF4", "sqlite3", "duckdb")},
    "rename": "a rename or move into place",
    "scan": "a file changed during a cell that started a process",
    "inferred": "a path named in a shell command's arguments",
    "stored": "the notebook stored with its run",
    "mlflow": "an artifact of a run imported from MLflow (its URI, not its content)",
}


@dataclass(frozen=True)
class RunInfo:
    """A snapshot of one run as the catalog holds it (see :func:`tracker.get_run`)."""

    id: str
    key: str
    name: str
    project: str
    status: str
    started_at: dt.datetime
    ended_at: dt.datetime | None = None
    duration: float | None = None
    notebook: str | None = None
    notebook_name: str | None = None
    notebook_title: str | None = None
    notebook_hash: str | None = None
    host: str | None = None
    pid: int | None = None
    user: str | None = None
    heartbeat_at: dt.datetime | None = None
    labels: tuple[str, ...] = ()
    notes: str | None = None
    parent_id: str | None = None
    deleted_at: dt.datetime | None = None
    error: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    #: every value each param had, oldest first: ``{"lr": [(time, 0.1), (time, 0.01)]}``
    param_history: dict[str, list[tuple[dt.datetime, Any]]] = field(default_factory=dict)
    #: the run's tags as they are now (mutable notes, unlike params): ``{"source": "manual"}``
    tags: dict[str, str] = field(default_factory=dict)
    environment: dict[str, Any] | None = None
    #: ``{"role", "via", "uri", "version", "size", "hash", "producer_run_id", ...}`` per file
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    #: executed cells in execution order: ``{"seq", "execution_count", "source", "success", ...}``
    cells: list[dict[str, Any]] = field(default_factory=list)
    #: statuses set by hand, oldest first: ``{"old_status", "new_status", "username", "host",
    #: "changed_at", "forced"}`` (see :func:`tracker.set_status`)
    status_history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def inputs(self) -> list[dict[str, Any]]:
        """The files and URIs the run read."""
        return [a for a in self.artifacts if a["role"] == "input"]

    @property
    def outputs(self) -> list[dict[str, Any]]:
        """The files and URIs the run wrote."""
        return [a for a in self.artifacts if a["role"] == "output"]

    @property
    def deleted(self) -> bool:
        """True while the run is in the trash (soft-deleted, not purged)."""
        return self.deleted_at is not None
