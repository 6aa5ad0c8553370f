"""Moving a run between catalogs as a self-contained YAML or JSON descriptor.

The descriptor holds everything recorded about the run (attributes, every param value with its
kind, every metric point, artifact versions and links, cells, environment), so importing it into
another catalog gives back the same run. Importing never overwrites: a run already present is
refused.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tracker import columns, schema, values
from tracker.ingest import _insert_missing
from tracker.errors import TrackerError
from tracker.search import _prepare_read, _records, resolve

if TYPE_CHECKING:
    from tracker.catalog import Catalog

FORMAT = "tracker-run"
FORMAT_VERSION = 1
_RUN_COLUMNS = [name for name, _ in schema.RUN_COLUMNS if name != "spool_seq"]


def export_run(catalog: Catalog, ref: str, path: str | os.PathLike[str]) -> Path:
    """See :meth:`tracker.Catalog.export_run`."""
    _prepare_read(catalog)
    with catalog.connect() as con:
        run_id = resolve(con, ref)
        run = _records(con, f"SELECT {', '.join(_RUN_COLUMNS)} FROM runs WHERE id = ?",
                       [run_id])[0]
        descriptor = {
            "format": FORMAT, "version": FORMAT_VERSION, "run": run,
            "params": _records(con, "SELECT key, value, kind, logged_at FROM params "
                               "WHERE run_id = ? ORDER BY logged_at, rowid", [run_id]),
            "metrics": _records(con, "SELECT key, value, step, logged_at FROM metrics "
                                "WHERE run_id = ? ORDER BY logged_at, rowid", [run_id]),
            "artifacts": _records(con, "SELECT a.*, ra.role, ra.logged_at AS linked_at "
                                  "FROM run_artifacts ra JOIN artifacts a ON a.id = "
                                  "ra.artifact_id WHERE ra.run_id = ?", [run_id]),
            "cells": _records(con, "SELECT * EXCLUDE (run_id) FROM cells WHERE run_id = ? "
                              "ORDER BY seq", [run_id]),
            "environment": _records(con, "SELECT * FROM environments WHERE id = ?",
                                    [run["environment_id"]]),
        }
    target = Path(path)
    text = _dump(_plain(descriptor), yaml=target.suffix.lower() in (".yaml", ".yml"))
    target.write_text(text, encoding="utf-8")
    return target


def _plain(value: Any) -> Any:
    """Timestamps as ISO text, JSON columns as data, non-finite floats as text."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, float):
        return values.encode_float(value)
    return value


def _dump(descriptor: dict[str, Any], *, yaml: bool) -> str:
    if not yaml:
        return json.dumps(descriptor, indent=2, ensure_ascii=False)
    import yaml as pyyaml

    return pyyaml.safe_dump(descriptor, sort_keys=False, allow_unicode=True)


def _load(path: Path) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml as pyyaml

            data = pyyaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as exc:  # yaml.YAMLError, json.JSONDecodeError
        raise TrackerError(f"{path} is not a tracker run descriptor ({exc})") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise TrackerError(f"{path} is not a tracker run descriptor")
    if data.get("version", 0) > FORMAT_VERSION:
        raise TrackerError(f"{path} was written by a newer tracker (descriptor version "
                           f"{data['version']})")
    return data


def import_run(catalog: Catalog, path: str | os.PathLike[str]) -> str:
    """See :meth:`tracker.Catalog.import_run`."""
    data = _load(Path(path))
    run = data["run"]
    with catalog.connect(write=True) as con:
        if con.execute("SELECT 1 FROM runs WHERE id = ?", [run["id"]]).fetchone():
            raise TrackerError(f"run {run['id']} is already in {catalog.path}; nothing imported")
        con.execute("BEGIN")
        _insert(con, "runs", {**run, "spool_seq": None})
        for row in data["params"]:
            _insert(con, "params", {"run_id": run["id"], **row})
        for row in data["metrics"]:
            value = values.NON_FINITE.get(row["value"], row["value"])
            _insert(con, "metrics", {"run_id": run["id"], **row, "value": value})
        _insert_keys(con, data)
        for row in data["cells"]:
            _insert(con, "cells", {"run_id": run["id"], **row})
        for row in data["environment"]:
            if not con.execute("SELECT 1 FROM environments WHERE id = ?", [row["id"]]).fetchone():
                _insert(con, "environments", row)
        for row in data["artifacts"]:
            _import_artifact(con, run["id"], row)
        columns.refresh(con, [run["id"]])
        con.execute("COMMIT")
    return run["id"]


def _insert_keys(con: Any, data: dict[str, Any]) -> None:
    """Register the run's param and metric keys, which the runs table's columns come from."""
    params = sorted({(row["key"], row["kind"]) for row in data["params"]})
    metrics = sorted({(row["key"],) for row in data["metrics"]})
    for table, keys in (("param_keys", params), ("metric_keys", metrics)):
        if keys:
            _insert_missing(con, table, keys)


def _import_artifact(con: Any, run_id: str, row: dict[str, Any]) -> None:
    link = {"run_id": run_id, "artifact_id": row["id"], "role": row["role"],
            "logged_at": row["linked_at"]}
    artifact = {k: v for k, v in row.items() if k not in ("role", "linked_at")}
    if not con.execute("SELECT 1 FROM artifacts WHERE id = ?", [row["id"]]).fetchone():
        _insert(con, "artifacts", artifact)
    _insert(con, "run_artifacts", link)


def _insert(con: Any, table: str, row: dict[str, Any]) -> None:
    columns = [c for c in row if row[c] is not None]
    names = ", ".join(columns)
    marks = ", ".join("?" for _ in columns)
    args = [json.dumps(row[c]) if isinstance(row[c], dict) else row[c] for c in columns]
    con.execute(f"INSERT INTO {table} ({names}) VALUES ({marks})", args)
