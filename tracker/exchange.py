"""Moving a run between catalogs as a self-contained YAML or JSON descriptor.

The descriptor holds everything recorded about the run (attributes, every param value with
its kind, every metric point, artifact versions and links, cells, environment, tags and their
removals, and the notebook stored with it), so importing it into another catalog gives back
the same run.
Importing never overwrites: a run already present is refused (push and pull,
:mod:`tracker.transfer`, bring one up to date by adding only what it lacks). Descriptors are
checked by :mod:`tracker.descriptor` before anything reaches SQL, and only the catalog's own
column names (:func:`tracker.storage.schema.column_names`) are put into SQL text.
Exporting never overwrites a file unless asked, and never a catalog or anything beside it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
import tempfile
import warnings
from collections.abc import Sequence, Set
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from tracker import arguments, descriptor, keeping, redaction, tags, values
from tracker.errors import ArgumentError, DescriptorError, TrackerWarning
from tracker.hashing import hash_bytes
from tracker.queries import flush_for_read, records, resolve
from tracker.storage import files as _files
from tracker.storage import schema, value_columns
from tracker.storage.writer import insert_missing

if TYPE_CHECKING:
    from tracker.catalog import Catalog

RUN_COLUMNS = [name for name, _ in schema.RUN_COLUMNS if name != "spool_seq"]
_BULK = 50  # rows above which an insert scans a DataFrame


class RecordStatements(NamedTuple):
    """The SQL that reads the records of runs on a back end. Each binds one list of run ids
    (``environment``: of environment ids); each section's rows start with their ``run_id``."""

    run: str
    params: str
    metrics: str
    artifacts: str
    cells: str
    environment: str
    tags: str


_IDS = "list_contains(?::VARCHAR[], run_id)"
RECORD = RecordStatements(
    run=f"SELECT {', '.join(RUN_COLUMNS)} FROM runs WHERE list_contains(?::VARCHAR[], id)",
    params=f"SELECT run_id, key, value, kind, logged_at FROM params WHERE {_IDS} "
           "ORDER BY logged_at, rowid",
    metrics=f"SELECT run_id, key, value, step, logged_at FROM metrics WHERE {_IDS} "
            "ORDER BY logged_at, rowid",
    artifacts="SELECT ra.run_id, a.*, ra.role, ra.via, ra.logged_at AS linked_at "
              "FROM run_artifacts ra JOIN artifacts a ON a.id = ra.artifact_id "
              "WHERE list_contains(?::VARCHAR[], ra.run_id)",
    cells=f"SELECT * FROM cells WHERE {_IDS} ORDER BY seq",
    environment="SELECT * FROM environments WHERE list_contains(?::VARCHAR[], id)",
    tags=f"SELECT run_id, key, value, set_at FROM tags WHERE {_IDS} ORDER BY key",
)
_SECTIONS = ("params", "metrics", "artifacts", "cells", "tags")


def read_records(con: Any, run_ids: Sequence[str], statements: RecordStatements = RECORD
                 ) -> list[dict[str, Any]]:
    """Everything recorded about these runs (which must exist), in their order, as descriptors
    hold it (without ``notebooks``): the same sections from either back end's ``statements``,
    one query per section for all the runs."""
    ids = list(run_ids)
    runs = {row["id"]: row for row in records(con, statements.run, [ids])}
    sections = {section: _by_run(records(con, getattr(statements, section), [ids]))
                for section in _SECTIONS}
    sections["artifacts"] = {run_id: [_as_copied(row) for row in rows]
                             for run_id, rows in sections["artifacts"].items()}
    environments = {row["id"]: row for row in records(con, statements.environment, [sorted(
        {row["environment_id"] for row in runs.values() if row["environment_id"]})])}
    return [{"format": descriptor.FORMAT,
             "version": descriptor.version_for(sections["tags"].get(run_id, [])),
             "run": runs[run_id], **{section: sections[section].get(run_id, [])
                                     for section in _SECTIONS},
             "environment": [environments[runs[run_id]["environment_id"]]]
             if runs[run_id]["environment_id"] in environments else []}
            for run_id in ids]


def _as_copied(row: dict[str, Any]) -> dict[str, Any]:
    """An artifact row as a copy of the run records it: a content another process is still
    storing (see :mod:`tracker.background_keeps`) does not travel, so ``not kept`` there."""
    if row.get("kept") != keeping.STORING:
        return row
    return {**row, "kept": keeping.NOT_KEPT, "blob": None}


def _by_run(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Rows grouped by their ``run_id``, which they lose; each group keeps its order."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        grouped.setdefault(row.pop("run_id"), []).append(row)
    return grouped


def export_run(catalog: Catalog, ref: str, path: str | os.PathLike[str], *,
               overwrite: bool = False, contents: bool = False) -> Path:
    """See :meth:`tracker.Catalog.export_run`; ``contents`` carries the run's kept contents
    in a folder beside the descriptor (:mod:`tracker.carried_contents`)."""
    target = Path(arguments.path(path, "path")).expanduser().absolute()
    _check_target(catalog, target, overwrite=overwrite)
    from tracker.recorder import name_contents

    flush_for_read(catalog)
    name_contents(catalog)  # a big content still being stored: named, so that it travels
    with catalog.connect() as con:
        data = read_records(con, [resolve(con, ref)])[0]
    data["notebooks"] = stored_notebooks(catalog, data["artifacts"])
    as_descriptor(data)  # one an import would refuse is refused here, before its contents
    if contents:  # before the descriptor: one that exists has its contents beside it
        from tracker import carried_contents

        carried_contents.carry(catalog, data["artifacts"], target, overwrite=overwrite)
    write_descriptor(data, target, overwrite=overwrite)
    return target


def write_descriptor(data: dict[str, Any], target: Path, *, overwrite: bool) -> None:
    """Write the record ``data`` to ``target`` as YAML (``.yaml``/``.yml``) or JSON, if an
    import can read it back: a file an import would refuse is never written."""
    text = _dump(_plain(data), yaml=target.suffix.lower() in (".yaml", ".yml"))
    size = len(text.encode("utf-8"))
    if size > descriptor.MAX_BYTES:
        raise DescriptorError(f"run {data['run']['id']} cannot be exported: its descriptor "
                              f"would be {size / 2**20:.0f} MiB, more than the "
                              f"{descriptor.MAX_BYTES // 2**20} MiB an import reads; push it "
                              "to the other catalog instead (tracker push)")
    _write_whole(target, text, overwrite=overwrite)


def as_descriptor(data: dict[str, Any]) -> dict[str, Any]:
    """A record read from a catalog, checked as an imported descriptor is (what push copies
    is exactly what an export then an import would); DescriptorError names the run."""
    try:
        return descriptor.validate(_plain(data))
    except DescriptorError as exc:
        raise DescriptorError(f"run {data['run']['id']} cannot be copied: {exc} (a longer "
                              "text than tracker records now: shorten a name, labels or notes "
                              "with tracker.update_run)", field=exc.field) from None


def stored_notebooks(catalog: Catalog, artifacts: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The notebooks stored with the run, as text: without them an import elsewhere would
    keep only their hash. One too big to carry, or gone, is left out with a warning."""
    carried, limit = [], descriptor.MAX_NOTEBOOK_BYTES
    for blob in sorted({row["blob"] for row in artifacts
                        if row["role"] == "notebook" and row["blob"]}):
        try:  # the blob folder, or a PostgreSQL catalog's blobs table
            with catalog.store.open_blob(blob) as stream:
                data = stream.read(limit + 1)
            content = data.decode() if len(data) <= limit else None
        except (OSError, UnicodeDecodeError) as exc:
            _warn(f"the stored notebook {blob} cannot be read ({exc}); the descriptor refers "
                  "to it by hash only")
            continue
        if content is None:
            _warn(f"the stored notebook {blob} is more than the {limit // 2**20} MiB a "
                  "descriptor carries; it refers to it by hash only")
            continue
        carried.append({"blob": blob, "content": content})
    return carried


def _warn(message: str) -> None:
    warnings.warn(f"tracker: export: {message}", TrackerWarning, stacklevel=4)


def _check_target(catalog: Catalog, target: Path, *, overwrite: bool) -> None:
    """Refuse to write over the catalog or its files (even with ``overwrite``), over a
    DuckDB database, over anything but a regular file, or over any file unless ``overwrite``."""
    resolved = target.resolve()
    folder = catalog.folder.resolve()
    name = catalog.path.resolve().name
    beside = {folder / f"{name}{suffix}" for suffix in ("", *_files.SIDECARS)}
    inside = any(resolved.is_relative_to(folder / f"{name}{suffix}")
                 for suffix, is_folder in _files.SIDECARS.items() if is_folder)
    if resolved in beside or inside:
        raise ArgumentError(f"{target} is the catalog {catalog.path} or one of its files; "
                            "export to another path")
    check_file_target(target, overwrite=overwrite)


def check_file_target(target: Path, *, overwrite: bool) -> None:
    """Refuse to write over anything but a regular file, over a DuckDB database, or over any
    file unless ``overwrite``."""
    resolved = target.resolve()
    try:
        info = os.stat(resolved)
    except FileNotFoundError:
        return
    if not stat.S_ISREG(info.st_mode):
        raise ArgumentError(f"{target} exists and is not a regular file; export to another "
                            "path")
    if _files.is_duckdb(resolved):
        raise ArgumentError(f"{target} is a DuckDB database; tracker never overwrites one, "
                            "export to another path")
    if not overwrite:
        raise ArgumentError(f"{target} already exists; pass overwrite=True (tracker export "
                            "--force) to replace it")


def _write_whole(target: Path, text: str, *, overwrite: bool) -> None:
    """Write ``text`` to a temporary file beside ``target`` and rename it into place, so a
    failed export leaves no half-written file; the descriptor is private to the user (0600)."""
    try:
        fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.",
                                         suffix=".part")
    except OSError as exc:
        raise ArgumentError(f"cannot write {target} ({exc.strerror}); export to a folder "
                            "you can write to") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
        if not overwrite and target.exists():  # appeared while the run was being read
            raise ArgumentError(f"{target} already exists; pass overwrite=True (tracker "
                                "export --force) to replace it")
        os.replace(temporary, target)
    except OSError as exc:
        raise ArgumentError(f"cannot write {target} ({exc.strerror}); nothing was "
                            "written") from None
    finally:
        Path(temporary).unlink(missing_ok=True)


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


def _dump(data: dict[str, Any], *, yaml: bool) -> str:
    if not yaml:
        return json.dumps(data, indent=2, ensure_ascii=False)
    import yaml as pyyaml

    class Dumper(pyyaml.SafeDumper):
        """Never an alias: import refuses them (see tracker.descriptor)."""

        def ignore_aliases(self, data: Any) -> bool:
            return True

    return pyyaml.dump(data, Dumper=Dumper, sort_keys=False, allow_unicode=True)


def import_run(catalog: Catalog, path: str | os.PathLike[str]) -> str:
    """See :meth:`tracker.Catalog.import_run`."""
    from tracker import carried_contents

    source = Path(arguments.path(path, "path"))
    data = descriptor.load(source)
    run_id = data["run"]["id"]
    carried = carried_contents.take_in(catalog, data["artifacts"], source.expanduser())
    if not import_checked(catalog, [data], carried=carried):
        raise ArgumentError(f"run {run_id} is already in {catalog.path}; nothing imported "
                            "(import into another catalog, or purge it there first)")
    return run_id


def import_checked(catalog: Catalog, runs: Sequence[dict[str, Any]], *,
                   carried: Set[str] = frozenset(),
                   redactor: redaction.Redactor | None = None) -> list[str]:
    """Add the runs of descriptors checked by :func:`tracker.descriptor.validate`, in one
    transaction, each as logging would have recorded it here; a run whose id the catalog
    already holds is left as it is. ``carried``: the kept contents the import stored in this
    catalog's store (the only ones its rows may name); ``redactor``: the one to record with
    (default: this catalog's). Returns the ids added."""
    recorded = recorded_here(catalog, runs, carried, redactor)
    with catalog.connect(write=True) as con:
        present = _present(con, [data["run"]["id"] for data in recorded])
        added = [data for data in recorded if data["run"]["id"] not in present]
        if not added:
            return []
        con.execute("BEGIN")
        _insert_runs(con, added)
        value_columns.refresh(con, [data["run"]["id"] for data in added])
        con.execute("COMMIT")
    return [data["run"]["id"] for data in added]


def update_checked(catalog: Catalog, runs: Sequence[dict[str, Any]], *,
                   carried: Set[str] = frozenset(),
                   redactor: redaction.Redactor | None = None) -> list[str]:
    """Bring the runs this catalog holds up to date with checked descriptors of them, in one
    transaction (:mod:`tracker.record_diff`: nothing recorded here is removed); runs it does
    not hold are left out. ``carried`` as for :func:`import_checked`. Returns the ids of the
    runs changed."""
    from tracker import record_diff

    recorded = recorded_here(catalog, runs, carried, redactor)
    with catalog.connect(write=True) as con:
        present = _present(con, [data["run"]["id"] for data in recorded])
        held = {data["run"]["id"]: data for data in read_records(con, sorted(present))}
        found = [record_diff.changes(data, held[data["run"]["id"]])
                 for data in recorded if data["run"]["id"] in present]
        changed = [change for change in found if not change.empty]
        if not changed:
            return []
        con.execute("BEGIN")
        for change in changed:
            _write_changes(con, change)
        value_columns.refresh(con, [change.run_id for change in changed])
        con.execute("COMMIT")
    return [change.run_id for change in changed]


#: A version recorded ``not kept`` here takes the kept content a copy of its run carried into
#: this catalog's store (its run was copied before the catalog had a store); nothing else
#: changes: a version kept, changed or unreadable here, or of another hash, stays as it is.
FILL_KEPT = ("UPDATE artifacts SET blob = v.blob, kept = 'kept' FROM (SELECT "
             "unnest(?::VARCHAR[]) AS id, unnest(?::VARCHAR[]) AS hash, "
             "unnest(?::VARCHAR[]) AS blob) v WHERE artifacts.id = v.id "
             "AND artifacts.hash = v.hash AND artifacts.kept = 'not kept' RETURNING artifacts.id")


def kept_versions(runs: Sequence[dict[str, Any]], carried: Set[str]) -> list[list[str]]:
    """:data:`FILL_KEPT`'s values for ``runs``: the ids, hashes and content names of their
    versions kept at the source whose content this catalog's store holds (``carried``);
    empty lists when there are none."""
    found = {row["id"]: (row["hash"], row["blob"]) for data in runs
             for row in data["artifacts"]
             if row.get("kept") == "kept" and row.get("blob") in carried and row.get("hash")}
    return [list(found), [hashed for hashed, _ in found.values()],
            [blob for _, blob in found.values()]]


def recorded_here(catalog: Catalog, runs: Sequence[dict[str, Any]], carried: Set[str],
                  redactor: redaction.Redactor | None) -> list[dict[str, Any]]:
    """The runs as this catalog (either back end) records them: redacted, the notebooks they
    carry stored as its blobs, and their rows naming only what it holds (those notebooks, and
    the kept contents ``carried`` into its store)."""
    redactor = redaction.for_catalog(catalog) if redactor is None else redactor
    recorded = [as_recorded(redactor, data) for data in runs]
    for data in recorded:  # the notebooks it carries become this catalog's blobs first
        data["artifacts"] = _keep_notebooks(catalog, data, carried)
    return recorded


def _present(con: Any, ids: list[str]) -> set[str]:
    return {row[0] for row in con.execute(
        "SELECT id FROM runs WHERE list_contains(?, id)", [ids]).fetchall()}


def _write_changes(con: Any, change: Any) -> None:
    """Write one run's :class:`tracker.record_diff.Changes` (the run is stored already)."""
    run_id = change.run_id
    names = [name for name in RUN_COLUMNS if name in change.run and name != "id"]
    if names:
        con.execute(f"UPDATE runs SET {', '.join(f'{name} = ?' for name in names)} "
                    "WHERE id = ?", [*(change.run[name] for name in names), run_id])
    for table in ("params", "metrics", "cells", "tags"):
        rows = getattr(change, table)
        if table == "tags" and rows:
            con.executemany("DELETE FROM tags WHERE run_id = ? AND key = ?",
                            [[run_id, row["key"]] for row in rows])
        _insert(con, table, [{**row, "run_id": run_id} for row in rows])
    _insert_keys(con, [{"params": change.params, "metrics": change.metrics}])
    _insert_new(con, "environments", change.environment)
    _insert_new(con, "artifacts", change.links)
    _insert(con, "run_artifacts", [link(run_id, row) for row in change.links])


def link(run_id: str, row: dict[str, Any]) -> dict[str, Any]:
    """The run_artifacts row of an artifact row of a descriptor."""
    return {"run_id": run_id, "artifact_id": row["id"], "role": row["role"],
            "logged_at": row["linked_at"], "via": row.get("via")}


def _insert_runs(con: Any, added: Sequence[dict[str, Any]]) -> None:
    """The rows of every run in ``added``, one insert per table (a run per statement took
    0.2 s a run when an MLflow history of 1,000 runs came in)."""
    rows: dict[str, list[dict[str, Any]]] = {table: [] for table in (
        "runs", "params", "metrics", "cells", "tags", "run_artifacts")}
    for data in added:
        run_id = data["run"]["id"]
        rows["runs"].append({**data["run"], "spool_seq": None})
        for table in ("params", "metrics", "cells", "tags"):
            rows[table] += [{**row, "run_id": run_id} for row in data[table]]
        rows["run_artifacts"] += [link(run_id, row) for row in data["artifacts"]]
    for table, table_rows in rows.items():
        _insert(con, table, table_rows)
    _insert_keys(con, added)
    for table in ("environments", "artifacts"):  # shared between runs: added once
        _insert_new(con, table, [row for data in added for row in data[
            "environment" if table == "environments" else table]])


def as_recorded(redactor: redaction.Redactor, data: dict[str, Any]) -> dict[str, Any]:
    """The descriptor as logging would have recorded it with ``redactor``: an import is a
    recording, so secrets (an export from an older tracker, a file edited by hand) are
    redacted, and keys that do not print are escaped, exactly as at log time."""
    params = []
    for row in data["params"]:
        key = values.key_text(row["key"])
        value, kind = redactor.param(key, json.loads(row["value"]), row["kind"])
        params.append({**row, "key": key, "value": json.dumps(value), "kind": kind})
    labels = data["run"]["labels"]
    run = {**data["run"], "labels": None if labels is None else [
               redactor.text(label) for label in labels],
           # The latest value of each key, rebuilt from the (redacted) history.
           "params": json.dumps({row["key"]: json.loads(row["value"]) for row in params})}
    for field in ("name", "notes", "error"):
        run[field] = redactor.text(run.get(field))
    artifacts = [{**row, "uri": redactor.text(row["uri"]), "key": redactor.text(row["key"])}
                 for row in data["artifacts"]]
    environment = [{**row, "data": json.dumps(redactor.value("", json.loads(row["data"])))}
                   for row in data["environment"]]
    return {**data, "run": run, "params": params, "artifacts": artifacts,
            "environment": environment,
            "metrics": [{**row, "key": values.key_text(row["key"])} for row in data["metrics"]],
            "cells": [_cell_as_recorded(redactor, row) for row in data["cells"]],
            "tags": _tags_as_recorded(redactor, data["tags"])}


def _tags_as_recorded(redactor: redaction.Redactor,
                      rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tags redacted as set_tag redacts them (a removal, without a value, as delete_tag
    records it); the last row of a key wins, as it would have."""
    kept = {}
    for row in rows:
        if row.get("value") is None:
            key, value = tags.checked_key(row["key"]), None
        else:
            key, value = tags.checked(row["key"], row["value"], redactor)
        kept[key] = {**row, "key": key, "value": value}
    return list(kept.values())


def _keep_notebooks(catalog: Catalog, data: dict[str, Any],
                    carried: Set[str]) -> list[dict[str, Any]]:
    """Store the notebooks the descriptor carries as this catalog's blobs (redacted, as any
    stored notebook is) and return the artifacts pointing at them. A notebook is refused
    unless its text has the hash its blob name says: a file edited by hand could otherwise
    put other content under a name every reader trusts. Any other blob is dropped unless the
    import stored it (``carried``, checked): a row naming one would show the run another
    run's bytes."""
    renamed: dict[str, dict[str, Any]] = {}
    for index, row in enumerate(data["notebooks"]):
        content = row["content"].encode()
        if hash_bytes(content).replace(":", "-") != row["blob"]:
            raise DescriptorError(f"notebooks[{index}].content does not match its blob name "
                                  f"{row['blob']}; re-export the run", field="notebooks")
        renamed[row["blob"]] = _store_blob(catalog, content)
    return [_backed(row, renamed, carried) for row in data["artifacts"]]


def _backed(row: dict[str, Any], stored: dict[str, dict[str, Any]],
            carried: Set[str]) -> dict[str, Any]:
    """An artifact row pointing only at what this import stored (a carried notebook or a
    carried kept content)."""
    if row["role"] == "notebook" and row.get("blob") in stored:
        return {**row, **stored[row["blob"]]}
    if row.get("blob") is None and row.get("kept") != "kept":
        return row
    if row.get("kept") == "kept" and row.get("blob") in carried:
        return row
    return {**row, "blob": None, "kept": "not kept"}


def _store_blob(catalog: Catalog, content: bytes) -> dict[str, Any]:
    """The content kept as a blob of the catalog, as a notebook is at the end of a run."""
    from tracker.delivery import store_blob

    catalog.ensure_folder()
    with tempfile.TemporaryDirectory(dir=catalog.folder, prefix=".import-") as folder:
        staged = Path(folder) / "notebook.ipynb"
        staged.write_bytes(content)
        facts = store_blob(catalog, str(staged))
    return {key: facts[key] for key in ("size", "hash", "blob")}


def _cell_as_recorded(redactor: redaction.Redactor, row: dict[str, Any]) -> dict[str, Any]:
    """A cell with its secrets redacted, and its hash taken after, as at record time (a hash
    of the clear source could be checked against guesses of the secret)."""
    source = row.get("source")
    if not source:
        return {**row, "error_message": redactor.text(row.get("error_message"))}
    scrubbed = redactor.source(source)
    digest = row.get("source_hash") if scrubbed == source else hash_bytes(scrubbed.encode())
    return {**row, "source": scrubbed, "source_hash": digest,
            "error_message": redactor.text(row.get("error_message"))}


def _insert_keys(con: Any, added: Sequence[dict[str, Any]]) -> None:
    """Register the runs' param and metric keys, which the runs table's columns come from."""
    params: list[tuple[str, ...]] = sorted({(row["key"], row["kind"]) for data in added
                                            for row in data["params"]})
    metrics: list[tuple[str, ...]] = sorted({(row["key"],) for data in added
                                             for row in data["metrics"]})
    for table, keys in (("param_keys", params), ("metric_keys", metrics)):
        if keys:
            insert_missing(con, table, keys)


def _insert_new(con: Any, table: str, rows: Sequence[dict[str, Any]]) -> None:
    """Insert the rows whose id ``table`` does not hold yet."""
    unique = {row["id"]: row for row in rows}
    if not unique:
        return
    held = {row[0] for row in con.execute(
        f"SELECT id FROM {table} WHERE list_contains(?, id)", [list(unique)]).fetchall()}
    _insert(con, table, [row for key, row in unique.items() if key not in held])


def _insert(con: Any, table: str, rows: Sequence[dict[str, Any]]) -> None:
    """Insert checked rows; the column list is the table's own, never the rows' keys. Many
    rows are scanned from a DataFrame: executemany runs one INSERT per row."""
    if not rows:
        return
    names, kinds = zip(*schema.typed_columns(table))
    if len(rows) < _BULK:
        marks = ", ".join("?" for _ in names)
        con.executemany(f"INSERT INTO {table} ({', '.join(names)}) VALUES ({marks})",
                        [[row.get(name) for name in names] for row in rows])
        return
    import pandas as pd

    frame = pd.DataFrame({name: pd.Series([row.get(name) for row in rows], dtype=object)
                          for name in names})
    con.register("_tracker_import", frame)
    try:
        casts = ", ".join(f"CAST(_tracker_import.{name} AS {kind.replace(' NOT NULL', '')})"
                          for name, kind in zip(names, kinds))
        con.execute(f"INSERT INTO {table} ({', '.join(names)}) SELECT {casts} "
                    "FROM _tracker_import")
    finally:
        con.unregister("_tracker_import")
