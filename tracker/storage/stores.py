"""Which store holds kept contents: ``TRACKER_STORE`` names a folder or an S3-compatible
bucket; unset, the catalog's own blob folder.

A shared folder is shared with a group by intent (its admin gives it one: ``chmod 2770``), but
one every user may write (``/tmp``, sticky or not) is refused as a catalog there would be
(:mod:`tracker.storage.files`): anyone could plant or remove contents and marks. Listing it
in ``TRACKER_TRUSTED_CATALOGS`` lifts that, as for a catalog."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from tracker.errors import ArgumentError, CatalogOwnershipError
from tracker.storage.contents import ContentStore, FolderStore
from tracker.storage.files import TRUST_VARIABLE, is_trusted

__all__ = ["STORE_VARIABLE", "open_store"]

STORE_VARIABLE = "TRACKER_STORE"


def open_store(blob_dir: Path, setting: str | None = None) -> ContentStore:
    """The store ``setting`` (``$TRACKER_STORE`` when None) names: an ``s3://bucket/prefix``,
    a folder, or (unset) the catalog's own blob folder."""
    if setting is None:
        setting = os.environ.get(STORE_VARIABLE, "").strip()
    if not setting:
        return FolderStore(blob_dir)
    if setting.startswith("s3://"):
        from tracker.storage.bucket import BucketStore  # boto3 only for a bucket

        return BucketStore.from_url(setting)
    if "://" in setting:
        raise ArgumentError(f"{STORE_VARIABLE}={setting[:80]!r}: only s3:// buckets and "
                            f"folders can hold kept contents; set {STORE_VARIABLE} to "
                            "s3://bucket/prefix or a folder, or unset it")
    folder = Path(os.path.expanduser(setting))
    _check_not_public(folder)
    return FolderStore(folder, shared=True)


def _check_not_public(folder: Path) -> None:
    """CatalogOwnershipError if every user may write the shared ``folder``, unless trusted."""
    try:
        mode = os.stat(folder).st_mode
    except OSError:  # missing (tracker makes it, private) or unreachable (said when used)
        return
    if mode & stat.S_IWOTH and not is_trusted(folder):
        raise CatalogOwnershipError(
            f"refusing the shared store {folder} ({STORE_VARIABLE}): every user may write "
            "it, so anyone could plant or remove kept contents. Give it to a group instead "
            f"(chgrp GROUP {folder} && chmod 2770 {folder}), or, if you trust it, add it to "
            f"{TRUST_VARIABLE}", path=str(folder))
