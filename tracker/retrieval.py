"""Getting kept contents back: one version of a file, its versions, a run's notebook, the store's
disk use.

:func:`get_artifact` finds a version in the catalog and returns a :class:`KeptFile`, which
restores, opens or loads the bytes the run saw from the content store
(:mod:`tracker.storage.contents`); the notebook stored with a run comes from the blob folder.
Nothing is ever unpickled on the user's behalf: :meth:`KeptFile.read_dataframe` reads CSV,
Parquet, Feather and JSON only.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from tracker import arguments, keeping, values
from tracker.errors import ArgumentError, ArtifactNotFoundError

if TYPE_CHECKING:
    import pandas as pd

    from tracker.catalog import Catalog

__all__ = ["KeptFile", "disk_usage", "get_artifact", "run_notebook",
           "versions"]

_BLOB = re.compile(r"[a-z0-9_]{1,32}-[0-9a-f]{1,128}")  # a stored file's name: no path in it
_READERS = {".csv": "read_csv", ".tsv": "read_csv", ".parquet": "read_parquet",
            ".pq": "read_parquet", ".feather": "read_feather", ".arrow": "read_feather",
            ".json": "read_json", ".jsonl": "read_json", ".ndjson": "read_json"}


@dataclass(frozen=True)
class KeptFile:
    """One version of a file a run read or wrote, as recorded; its bytes when ``kept``."""

    uri: str
    version: int
    size: int | None
    mtime: Any
    hash: str | None
    kept: str | None  # tracker.keeping's statuses: kept, changed, unreadable, not kept
    blob: str | None
    producer_run_id: str | None
    runs: tuple[str, ...]  # the runs that read or wrote this version
    catalog: Catalog

    def open(self) -> IO[bytes]:
        """The kept bytes as a binary file object (close it, or use ``with``). From a store
        others can write to, they are checked against their hash: a shared folder's before
        this returns, a bucket's as they are read (reading to the end of bytes that are not
        the content raises ContentDamaged, a TrackerError and FileNotFoundError)."""
        from tracker.storage import contents

        blob = self._blob()
        with self._readable():
            if contents.is_key(blob):
                return self.catalog.content_store.open(blob)
            return self.catalog.store.open_blob(blob)

    def restore(self, to: str | os.PathLike[str] | None = None, *,
                overwrite: bool = False) -> Path:
        """Write the kept bytes to ``to`` (default: where the file was); an existing file is
        replaced only with ``overwrite=True``. Returns the path written."""
        from tracker.reading import on_postgres
        from tracker.storage import contents

        blob = self._blob()
        dest = Path(os.path.expanduser(arguments.path(to, "to"))) if to is not None \
            else Path(self.uri)
        if dest.is_dir():
            dest = dest / Path(self.uri).name
        if dest.exists() and not overwrite:
            raise _exists(dest)
        staged: Path | None = None
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            # a fresh file of a name nobody has (O_EXCL): never a user's file or a symlink
            fd, name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
            os.close(fd)
            staged = Path(name)
            with self._readable():
                if contents.is_key(blob):
                    self.catalog.content_store.restore(blob, staged)
                    contents.check_size(staged, self.size, blob)
                elif on_postgres(self.catalog):
                    with self.open() as source, open(staged, "wb") as out:
                        shutil.copyfileobj(source, out)
                else:
                    contents.copy_file(self.catalog.blob_dir / blob, staged)
            os.chmod(staged, 0o644)  # mkstemp's 0600 is not what a restored file had
            _publish(staged, dest, overwrite=overwrite)
        except OSError as exc:
            raise ArgumentError(f"cannot write {dest} ({exc.strerror or exc}); choose another "
                                "destination") from None
        finally:
            if staged is not None:
                with contextlib.suppress(OSError):
                    staged.unlink(missing_ok=True)
        return dest

    def read_dataframe(self, **options: Any) -> pd.DataFrame:
        """The kept content as a DataFrame: CSV, TSV, Parquet, Feather or JSON (by the file's
        suffix); ``options`` go to the pandas reader. Pickles are never loaded."""
        import pandas as pd

        suffix = Path(self.uri).suffix.lower()
        reader = _READERS.get(suffix)
        if reader is None:
            raise ArgumentError(f"{self.uri} is not CSV, Parquet, Feather or JSON; use .open() "
                                "or .restore() and read it yourself")
        if suffix == ".tsv":
            options.setdefault("sep", "\t")
        if suffix in (".jsonl", ".ndjson"):
            options.setdefault("lines", True)
        with self._readable(), self.open() as stream:
            frame: pd.DataFrame = getattr(pd, reader)(stream, **options)
            if not stream.seekable():  # a bucket's, checked at its end: read up to it
                while stream.read(1 << 20):
                    pass
        return frame

    @contextlib.contextmanager
    def _readable(self) -> Iterator[None]:
        """Kept bytes missing from the store (a run imported from another catalog, a store
        cleaned by hand) or no longer matching their name as ArtifactNotFoundError, not a
        bare OSError."""
        from tracker.storage.contents import ContentDamaged

        try:
            yield
        except ContentDamaged:
            raise ArtifactNotFoundError(
                f"version {self.version} of {self.uri} was kept, but the stored file "
                f"{self.blob} is not that content any more (altered or damaged in "
                f"the store {self.catalog.content_store.location}): nothing was written; "
                "restore it from another copy of the store") from None
        except FileNotFoundError:
            raise ArtifactNotFoundError(
                f"version {self.version} of {self.uri} was kept, but its content is missing "
                f"from the store ({self.blob}): it was removed, or the run was imported from "
                "another catalog, whose contents are not carried") from None

    def _blob(self) -> str:
        if self.kept == keeping.STORING:
            raise ArtifactNotFoundError(
                f"version {self.version} of {self.uri} is still being stored by the process "
                "that kept it (a big content is named after its run is recorded); try again "
                "in a few seconds")
        if self.blob is None or not _BLOB.fullmatch(self.blob):
            why = f"its content was not kept ({self.kept})" if self.kept else \
                "its content was not kept (recorded before contents were kept)"
            fix = "keep it next time with tracker.log_output(path, keep=True) or a larger " \
                "limit in the keep policy"
            if not self.catalog.stores_contents:
                fix = "this catalog keeps contents only with TRACKER_STORE set (a folder " \
                    "every machine sees, or s3://bucket/prefix): set it to keep them next time"
            raise ArtifactNotFoundError(f"version {self.version} of {self.uri}: {why}; {fix}")
        return self.blob


def _exists(dest: Path) -> ArgumentError:
    return ArgumentError(f"{dest} exists; pass overwrite=True (--force) to replace it, or "
                         "choose another destination")


def _publish(staged: Path, dest: Path, *, overwrite: bool) -> None:
    """Put the restored file at ``dest``: replacing what is there only with ``overwrite``;
    else a hard link, which fails (FileExistsError) if ``dest`` appeared meanwhile."""
    if overwrite:
        os.replace(staged, dest)
        return
    try:
        os.link(staged, dest, follow_symlinks=False)
    except FileExistsError:
        raise _exists(dest) from None


_VERSION_ROWS = """
SELECT a.uri, a.version, a.size, a.mtime, a.hash, a.kept, a.blob, a.producer_run_id,
       array_agg(DISTINCT ra.run_id ORDER BY ra.run_id) FILTER (WHERE ra.run_id IS NOT NULL)
           AS runs,
       bool_or(r.deleted_at IS NULL) AS live,
       bool_or(ra.run_id = $run) AS of_run,
       bool_or(ra.run_id = $run AND ra.role = 'output') AS output_of_run
FROM artifacts a LEFT JOIN run_artifacts ra ON ra.artifact_id = a.id
     LEFT JOIN runs r ON r.id = ra.run_id
WHERE a.key = $key
GROUP BY a.id, a.uri, a.version, a.size, a.mtime, a.hash, a.kept, a.blob, a.producer_run_id
ORDER BY a.version
"""


def _uri(path_or_uri: str | os.PathLike[str]) -> str:
    text = arguments.path(path_or_uri, "path_or_uri")
    return text if "://" in text else os.path.realpath(os.path.expanduser(text))


def _version_rows(catalog: Catalog, uri: str, run: str | None) -> list[dict[str, Any]]:
    from tracker.queries import resolve
    from tracker.reading import read_connection

    with read_connection(catalog) as (con, dialect):
        run_id = resolve(con, run, dialect) if run is not None else None
        if not values.valid_text(uri):  # a name in another encoding: never recorded
            return []
        cursor = con.execute(dialect.finish_named(_VERSION_ROWS), {"run": run_id, "key": uri})
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]


def get_artifact(catalog: Catalog, path_or_uri: str | os.PathLike[str], run: str | None = None,
                 version: int | None = None) -> KeptFile:
    """See :func:`tracker.get_artifact`. A content still being stored (a big one, named in
    the background) is named first, if this process or a dead one left it."""
    kept = _get_artifact(catalog, path_or_uri, run, version)
    if kept.kept == keeping.STORING:
        from tracker.recorder import name_contents

        name_contents(catalog)
        kept = _get_artifact(catalog, path_or_uri, run, version)
    return kept


def _get_artifact(catalog: Catalog, path_or_uri: str | os.PathLike[str], run: str | None,
                  version: int | None) -> KeptFile:
    if version is not None:
        arguments.count(version, "version", minimum=1)
    uri = _uri(path_or_uri)
    rows = _version_rows(catalog, uri, run)
    if run is not None:  # what that run wrote, else what it read
        rows = sorted((row for row in rows if row["of_run"]),
                      key=lambda row: (bool(row["output_of_run"]), row["version"]))
    elif version is None:  # the newest version a run outside the trash touched
        rows = [row for row in rows if row["live"]] or rows
    touched = sorted(row["version"] for row in rows)
    if version is not None:
        rows = [row for row in rows if row["version"] == version]
    if not rows:
        where = f" in run {run}" if run is not None else ""
        if run is not None and touched:  # the run and the version disagree: say what it has
            where += f" (it read or wrote version {', '.join(map(str, touched))})"
        which = f"version {version} of " if version is not None else ""
        raise ArtifactNotFoundError(f"no recorded {which}{uri}{where}; 'tracker versions "
                                    f"{uri}' lists the versions the catalog knows")
    return _kept_file(catalog, rows[-1])


def _kept_file(catalog: Catalog, row: dict[str, Any]) -> KeptFile:
    return KeptFile(row["uri"], row["version"], row["size"], row["mtime"], row["hash"],
                    row["kept"], row["blob"], row["producer_run_id"], tuple(row["runs"] or ()),
                    catalog)


def versions(catalog: Catalog, path_or_uri: str | os.PathLike[str]) -> pd.DataFrame:
    """Every recorded version of a file: size, time, hash, whether kept, and its runs."""
    import pandas as pd

    rows = _version_rows(catalog, _uri(path_or_uri), None)
    columns = ["version", "size", "mtime", "hash", "kept", "producer_run_id", "runs"]
    return pd.DataFrame([{name: row[name] for name in columns} for row in rows],
                        columns=columns)


def run_notebook(catalog: Catalog, run: str) -> KeptFile:
    """The notebook stored with ``run`` (the executed one where the runner wrote it)."""
    from tracker.queries import records, resolve
    from tracker.reading import read_connection

    with read_connection(catalog) as (con, dialect):
        run_id = resolve(con, run, dialect)
        rows = records(con, dialect.finish(
            "SELECT a.uri, a.version, a.size, a.mtime, a.hash, a.kept, a.blob, "
            "a.producer_run_id, ARRAY[ra.run_id] AS runs FROM run_artifacts ra JOIN "
            "artifacts a ON a.id = ra.artifact_id WHERE ra.run_id = ? AND "
            "ra.role = 'notebook' ORDER BY ra.logged_at"), [run_id])
    if not rows:
        raise ArtifactNotFoundError(f"run {run} has no stored notebook (it did not run in a "
                                    "notebook, or the notebook was never found)")
    return _kept_file(catalog, rows[-1])


def disk_usage(catalog: Catalog) -> dict[str, Any]:
    """The content store's size: what live runs reference, what only trashed runs do (purge
    reclaims it), and what nothing references (purge removes it)."""
    from tracker.reading import read_connection
    from tracker.recorder import name_contents

    name_contents(catalog)  # what is still storing: in the store, and counted, first
    store = catalog.content_store
    with read_connection(catalog) as (con, dialect):  # this process's contents stored by then
        referenced = dict(con.execute(dialect.finish(
            "SELECT a.blob, bool_or(r.deleted_at IS NULL) FROM artifacts a "
            "JOIN run_artifacts ra ON ra.artifact_id = a.id JOIN runs r ON r.id = ra.run_id "
            "WHERE a.kept = 'kept' GROUP BY a.blob")).fetchall())
    stored = {entry.key: entry.size for entry in store.entries()}
    live = sum(size for key, size in stored.items() if referenced.get(key))
    trashed = sum(size for key, size in stored.items() if referenced.get(key) is False)
    return {"location": store.location, "contents": len(stored),
            "bytes": sum(stored.values()), "live_bytes": live, "trashed_bytes": trashed,
            "unreferenced_bytes": sum(stored.values()) - live - trashed}
