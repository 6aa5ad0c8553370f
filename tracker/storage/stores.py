"""Which store holds kept contents: ``TRACKER_STORE`` names a folder or an S3-compatible
bucket; unset, the catalog's own blob folder."""

from __future__ import annotations

import os
from pathlib import Path

from tracker.errors import ArgumentError
from tracker.storage.contents import ContentStore, FolderStore

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
    return FolderStore(Path(os.path.expanduser(setting)), shared=True)
