"""Kept contents carried with an exported run, in a folder beside its descriptor.

``tracker export RUN run.yaml --contents`` writes, next to ``run.yaml``, the folder
``run.yaml.contents/`` holding each content the run kept, under its name in the store
(``blake3-<hex>``). Importing ``run.yaml`` looks for that folder and takes in a content only
after checking it: a regular file (never a symlink) named like a kept content, of the size the
descriptor records, whose bytes, hashed as they are copied into this catalog's store, have
that BLAKE3 name and the xxh3 hash the descriptor records. A content that does not is refused
with the whole import (:class:`~tracker.errors.DescriptorError`): the descriptor's claims are
never trusted. A version whose content is not in the folder is imported ``not kept``.
"""

from __future__ import annotations

import contextlib
import os
import stat
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tracker.errors import ArgumentError, CatalogError, DescriptorError, TrackerWarning
from tracker.storage import contents

if TYPE_CHECKING:
    from tracker.catalog import Catalog

__all__ = ["SUFFIX", "carry", "copy_between", "folder_for", "take_in"]

SUFFIX = ".contents"


def folder_for(descriptor: Path) -> Path:
    """The folder beside ``descriptor`` that carries its run's kept contents."""
    return descriptor.with_name(descriptor.name + SUFFIX)


def _kept_keys(artifacts: Iterable[dict[str, Any]]) -> list[str]:
    return sorted({row["blob"] for row in artifacts if row.get("kept") == "kept"
                   and isinstance(row.get("blob"), str) and contents.is_key(row["blob"])})


def carry(catalog: Catalog, artifacts: Iterable[dict[str, Any]], descriptor: Path, *,
          overwrite: bool) -> int:
    """Copy the kept contents of ``artifacts`` from the store into the folder beside
    ``descriptor``; how many were carried. One missing from the store is left out with a
    warning (the import then records that version ``not kept``)."""
    folder = folder_for(descriptor)
    if folder.exists() and not (overwrite and folder.is_dir() and not folder.is_symlink()):
        raise ArgumentError(f"{folder} already exists; pass overwrite=True (tracker export "
                            "--force) to add to it, or export to another path")
    keys = _kept_keys(artifacts)
    if not keys:
        return 0
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
    except OSError as exc:
        raise ArgumentError(f"cannot create {folder} ({exc.strerror}); export to a folder "
                            "you can write to") from None
    carried = 0
    for key in keys:
        carried += _carry_one(catalog.content_store, key, folder)
    return carried


def _carry_one(store: contents.ContentStore, key: str, folder: Path) -> int:
    """Copy one content under its name, through a temporary file: 1 if carried, else 0."""
    target, partial = folder / key, folder / f".{key}.part"
    if target.is_file() and not target.is_symlink():
        return 1  # carried by an earlier export of another run: the same bytes
    try:
        store.restore(key, partial)
        os.replace(partial, target)
    except FileNotFoundError:
        warnings.warn(f"tracker: export: the kept content {key} is missing from the store "
                      f"{store.location}; the run is exported without it", TrackerWarning,
                      stacklevel=4)
        return 0
    except OSError as exc:
        raise ArgumentError(f"cannot write {target} ({exc.strerror or exc}); nothing more "
                            "was carried") from None
    finally:
        partial.unlink(missing_ok=True)
    return 1


def take_in(catalog: Catalog, artifacts: Iterable[dict[str, Any]], descriptor: Path) -> set[str]:
    """Store the kept contents the folder beside ``descriptor`` carries for ``artifacts``,
    each checked (see the module docstring); the names stored. No folder: none."""
    folder = folder_for(descriptor)
    if not folder.is_dir():
        return set()
    wanted: dict[str, dict[str, Any]] = {}
    for row in artifacts:
        if row.get("blob") in _kept_keys([row]):
            wanted.setdefault(row["blob"], row)
    from tracker import shared_store

    catalog.ensure_folder()
    staging = contents.staging_dir(catalog.blob_dir)
    store = catalog.content_store
    owner = shared_store.owner(catalog) if store.shared else None
    taken = set()
    for key, row in wanted.items():
        if _take_one(store, folder / key, key, row, staging, owner):
            taken.add(key)
    return taken


def copy_between(source: Catalog, target: Catalog,
                 artifacts: Iterable[dict[str, Any]]) -> set[str]:
    """Copy the kept contents of ``artifacts`` from ``source``'s store into ``target``'s (push
    and pull), each checked as an import checks a carried one; the names ``target`` holds
    then. One it holds already is only marked as its (a shared store); none travels when
    either catalog has no store (a PostgreSQL catalog without ``TRACKER_STORE``)."""
    import tempfile

    from tracker import shared_store

    rows = {row["blob"]: row for row in artifacts if row.get("blob") in _kept_keys([row])}
    if not rows or not target.stores_contents:
        return set()
    try:
        origin = source.content_store
    except (ArgumentError, CatalogError):  # a server without TRACKER_STORE here: none to copy
        return set()
    target.ensure_folder()
    staging = contents.staging_dir(target.blob_dir)
    store = target.content_store
    owner = shared_store.owner(target) if store.shared else None
    held = set()
    with tempfile.TemporaryDirectory(dir=staging, prefix=".copy-") as folder:
        for key, row in sorted(rows.items()):
            if owner is not None:  # before looking, as a run marks what it keeps
                store.mark(owner, key)
            if store.has(key) or (_carry_one(origin, key, Path(folder)) and
                                  _take_one(store, Path(folder) / key, key, row, staging,
                                            owner)):
                held.add(key)
    return held


def _take_one(store: contents.ContentStore, path: Path, key: str, row: dict[str, Any],
              staging: Path, owner: str | None) -> bool:
    """Store the file ``path`` as the content ``key`` once it proves to be it; False if the
    folder does not carry it."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(info.st_mode) or info.st_size != row.get("size"):
        raise _refused(path, "is not a regular file of the size the descriptor records")
    seen = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
    try:
        staged = contents.stage_copy(str(path), staging, seen)  # a swap for a link: changed
    except OSError as exc:
        raise _refused(path, f"cannot be read ({exc.strerror or exc})") from None
    try:
        if staged.key != key or staged.fast_hash != row.get("hash"):
            raise _refused(path, "does not have the content its name and the descriptor say")
        contents.store_staged(store, staged, str(path), expected_hash=row.get("hash"),
                              owner=owner)
    finally:
        with contextlib.suppress(OSError):
            staged.path.unlink(missing_ok=True)
    return True


def _refused(path: Path, why: str) -> DescriptorError:
    return DescriptorError(f"{path} {why}; nothing was imported: export the run again",
                           field="artifacts")
