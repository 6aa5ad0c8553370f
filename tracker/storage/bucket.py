"""Kept contents in an S3-compatible bucket (``TRACKER_STORE=s3://bucket/prefix``), for teams.

boto3 is an optional dependency (``pip install tracker[bucket]``), imported when a bucket is
first used. The endpoint of a server other than AWS (MinIO, Ceph, a test server) comes from
``TRACKER_STORE_ENDPOINT`` or boto3's own ``AWS_ENDPOINT_URL``; credentials as boto3 finds them.
A content is uploaded only once it was verified in the local staging folder, and an object
already present is not uploaded again (its name is its BLAKE3 hash).
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlparse

from tracker.errors import ArgumentError
from tracker.storage.contents import (
    Entry,
    StoreUnavailable,
    check_file_named,
    checked_stream,
    is_key,
    is_owner,
)

ENDPOINT_VARIABLE = "TRACKER_STORE_ENDPOINT"


class BucketStore:
    """Contents as objects ``<prefix>/<key>`` in one bucket; shared: purge leaves it alone."""

    shared = True

    def __init__(self, bucket: str, prefix: str, client: Any) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.location = f"s3://{bucket}/{self.prefix}".rstrip("/")
        self._client = client

    @classmethod
    def from_url(cls, url: str) -> BucketStore:
        parsed = urlparse(url)
        if not parsed.netloc:
            raise ArgumentError(f"TRACKER_STORE={url[:80]!r} names no bucket; set it to "
                                "s3://bucket/prefix")
        try:
            import boto3
        except ImportError:
            raise ArgumentError("kept contents in a bucket (TRACKER_STORE) need boto3: pip "
                                "install 'tracker[bucket]', or unset TRACKER_STORE") from None
        endpoint = os.environ.get(ENDPOINT_VARIABLE) or None
        return cls(parsed.netloc, parsed.path, boto3.client("s3", endpoint_url=endpoint))

    def _name(self, key: str) -> str:
        if not is_key(key):
            raise ValueError(f"{key[:80]!r} is not the name of a kept content")
        return f"{self.prefix}/{key}" if self.prefix else key

    def has(self, key: str) -> bool:
        name = self._name(key)
        try:
            self._client.head_object(Bucket=self.bucket, Key=name)
        except self._client.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise self._unavailable(exc) from None
        except Exception as exc:  # botocore's others: no connection, a timeout
            raise self._unavailable(exc) from None
        return True

    @contextlib.contextmanager
    def _missing(self, key: str) -> Iterator[None]:
        """botocore's ClientError as OSError: FileNotFoundError for a missing object, as a
        folder store raises, so callers need not know botocore."""
        try:
            yield
        except self._client.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                raise FileNotFoundError(errno.ENOENT, "no such object in the bucket",
                                        f"{self.location}/{key}") from None
            raise OSError(f"{self.location}: {exc}") from None

    def add(self, staged: Path, key: str) -> None:
        name = self._name(key)
        try:
            self._client.upload_file(str(staged), self.bucket, name)
        except Exception as exc:  # botocore's errors: the batch is tried again later
            raise self._unavailable(exc) from None
        staged.unlink()

    def _unavailable(self, exc: Exception) -> StoreUnavailable:
        return StoreUnavailable(errno.EAGAIN, f"{self.location} is unavailable ({exc}); "
                                "kept contents wait and are stored once it answers")

    def open(self, key: str) -> IO[bytes]:
        with self._missing(key):
            body: IO[bytes] = self._client.get_object(Bucket=self.bucket,
                                                      Key=self._name(key))["Body"]
        return checked_stream(body, key)

    def restore(self, key: str, dest: Path) -> None:
        """Download the content into ``dest``, then check it has its name's hash."""
        with self._missing(key):
            self._client.download_file(self.bucket, self._name(key), str(dest))
        check_file_named(dest, key)

    def delete(self, key: str) -> None:
        self._client.delete_object(Bucket=self.bucket, Key=self._name(key))

    def entries(self) -> Iterator[Entry]:
        pages = self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=f"{self.prefix}/" if self.prefix else "")
        for page in pages:
            for item in page.get("Contents", ()):
                name = item["Key"].rsplit("/", 1)[-1]
                if is_key(name) and item["Key"] == self._name(name):  # not a mark
                    yield Entry(name, item["Size"], item["LastModified"].timestamp())

    def mark(self, owner: str, key: str) -> None:
        """Note that the catalog ``owner`` references ``key``: an empty object
        ``<prefix>/.marks/<owner>/<key>`` (:mod:`tracker.shared_store`)."""
        try:
            self._client.put_object(Bucket=self.bucket, Key=self._mark(owner, key), Body=b"")
        except Exception as exc:
            raise self._unavailable(exc) from None

    def unmark(self, owner: str, key: str) -> None:
        self._client.delete_object(Bucket=self.bucket, Key=self._mark(owner, key))

    def marks(self) -> dict[str, dict[str, float]]:
        found: dict[str, dict[str, float]] = {}
        start = self._hidden("marks")
        pages = self._client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket,
                                                                       Prefix=start)
        for page in pages:
            for item in page.get("Contents", ()):
                owner, _, key = item["Key"][len(start):].partition("/")
                if is_owner(owner) and is_key(key):
                    found.setdefault(key, {})[owner] = item["LastModified"].timestamp()
        return found

    def remove_unless_marked(self, key: str) -> bool:
        """As ``FolderStore.remove_unless_marked``: copied aside and deleted, then the marks
        are read again; a content marked meanwhile is copied back."""
        name = self._name(key)
        aside = f"{self._hidden('aside')}{key}"
        with contextlib.suppress(FileNotFoundError), self._missing(key):
            self._client.copy_object(Bucket=self.bucket, Key=aside,
                                     CopySource={"Bucket": self.bucket, "Key": name})
            self._client.delete_object(Bucket=self.bucket, Key=name)
            marked = key in self.marks()
            if marked:
                self._client.copy_object(Bucket=self.bucket, Key=name,
                                         CopySource={"Bucket": self.bucket, "Key": aside})
            self._client.delete_object(Bucket=self.bucket, Key=aside)
            return not marked
        return False

    def _hidden(self, folder: str) -> str:
        """Where tracker's own objects of one kind (marks, contents set aside) live."""
        return f"{self.prefix}/.{folder}/" if self.prefix else f".{folder}/"

    def _mark(self, owner: str, key: str) -> str:
        if not (is_owner(owner) and is_key(key)):
            raise ValueError(f"{owner[:40]!r}/{key[:80]!r} is not a mark of a kept content")
        return f"{self._hidden('marks')}{owner}/{key}"
