"""Cleaning a shared content store (``TRACKER_STORE``) without deleting another catalog's contents.

Several catalogs may keep contents in one folder or bucket, and none of them knows what the
others reference. So each catalog that uses a shared store has an id (a random one, in
``<catalog>.blobs/.store-owner``) and leaves a *mark* in the store for each content it keeps
(``.marks/<id>/<key>``), written before it looks whether the content is already there. Its
``purge`` brings its marks up to date (marks what it references, unmarks what it no longer
does); ``purge(store=True)`` (``tracker purge --store``) then also removes the contents that no
catalog marks and that were stored more than :data:`GRACE` ago. The grace period protects the
contents of catalogs that have not marked yet (kept by an older tracker, and never purged
since); a content is moved aside before the marks are read a last time, so one a catalog reuses
at that moment goes back.

Limits: a catalog that kept contents in the store with an older tracker and is not purged
within the grace period loses the contents no other catalog marks; a catalog deleted without
purging leaves its marks, and the contents stay (remove ``.marks/<id>/`` by hand).
"""

from __future__ import annotations

import errno
import functools
import os
import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tracker.storage import contents

if TYPE_CHECKING:
    from tracker.catalog import Catalog

__all__ = ["GRACE", "SETTLE", "owner", "reclaim"]

#: A content no catalog marks is removed only once it was stored this long ago (seconds).
GRACE = 7 * 24 * 3600
#: A mark younger than this may be a run's whose write to the catalog is still on its way.
SETTLE = 3600
_OWNER_FILE = ".store-owner"
_OWNER_ROW = "SELECT value FROM meta WHERE key = 'store_owner'"


def owner(catalog: Catalog) -> str:
    """This catalog's id in shared stores, made on first use: in its blob folder, or for a
    PostgreSQL catalog in its ``meta`` table (one id for every machine using it)."""
    from tracker.storage.pg_store import PgStore  # not tracker.reading: it reads above here

    if isinstance(catalog.store, PgStore):
        return _owner_in_database(catalog.store)
    return _owner_in(catalog.blob_dir)


def make_database_owner(con: Any) -> None:
    """Give a PostgreSQL catalog its id in shared stores unless it has one (``tracker admin
    init`` does, as the owner: a granted role may not write the ``meta`` table)."""
    con.execute("INSERT INTO meta VALUES ('store_owner', %s) ON CONFLICT (key) DO NOTHING",
                [secrets.token_hex(16)])


@functools.lru_cache(maxsize=16)
def _owner_in_database(store: Any) -> str:
    with store.connect() as con:
        row = con.execute(_OWNER_ROW).fetchone()
    if row is None:
        with store.connect(write=True) as con:
            make_database_owner(con)
            row = con.execute(_OWNER_ROW).fetchone()
    text = str(row[0])
    if not contents.is_owner(text):
        raise OSError(errno.EINVAL, "not a catalog id; delete meta.store_owner to make another",
                      store.shown)
    return text


@functools.lru_cache(maxsize=16)
def _owner_in(blob_dir: Path) -> str:
    path = blob_dir / _OWNER_FILE
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        blob_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        text = secrets.token_hex(16)
        try:
            with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
                out.write(text)
        except FileExistsError:  # another process made it first: theirs
            text = path.read_text(encoding="ascii").strip()
    if not contents.is_owner(text):
        raise OSError(errno.EINVAL, "not a catalog id; delete it to make another", str(path))
    return text


def reclaim(catalog: Catalog, referenced: set[str], *, remove: bool) -> int:
    """Update this catalog's marks in its shared store to ``referenced`` (the contents its
    runs name), then, if ``remove``, remove what no catalog marks and is older than
    :data:`GRACE`; how many contents were removed."""
    store = catalog.content_store
    me = owner(catalog)
    marks = store.marks()
    for key in referenced:
        if me not in marks.get(key, {}):
            store.mark(me, key)
    settled = time.time() - SETTLE
    for key, owners in marks.items():
        if owners.get(me, time.time()) < settled and key not in referenced:
            store.unmark(me, key)
            del owners[me]
    if not remove:
        return 0
    cutoff = time.time() - GRACE
    removed = 0
    for entry in list(store.entries()):
        if entry.mtime < cutoff and entry.key not in referenced and not marks.get(entry.key):
            removed += store.remove_unless_marked(entry.key)
    return removed
