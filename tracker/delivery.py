"""Getting a batch of recorded events ready for the catalog, then handing it to storage.

What runs record names files; before a batch is written, outside the catalog's lock, local
files are hashed (an input or output whose facts were not taken yet) and the notebook kept with
a run is redacted and copied into the catalog's blob folder, by content hash. This is the run
buffer's work, above the storage layer: it needs the catalog's redaction settings and the
hashing of :mod:`tracker.hashing`. :mod:`tracker.storage.recovery` then writes the batch, and
what dead processes left, in one transaction.
"""

from __future__ import annotations

import functools
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from tracker import events
from tracker.errors import ArgumentError, CatalogOwnershipError
from tracker.events import Event, Spooled
from tracker.storage import recovery
from tracker.storage.spools import Reject
from tracker.storage.writer import Batch

if TYPE_CHECKING:
    from tracker.background_keeps import Storing
    from tracker.catalog import Catalog
    from tracker.storage.contents import ContentStore, Kept

#: Where completing a batch puts the contents it left to be named in the background (see
#: :mod:`tracker.background_keeps`); None: every content is named before the batch is written.
Later = list["Storing"] | None


def write_events(catalog: Catalog, batch: Batch, *, local: recovery.Local,
                 spool: Path | None = None, timeout: float | None = None,
                 cancel: threading.Event | None = None, later: Later = None) -> int:
    """Complete ``batch`` and write it, recovering on this object's first write (see
    :func:`tracker.storage.recovery.write_events`); return how many events were quarantined.
    ``local`` is what this process itself writes to the catalog; ``spool`` the file that holds
    ``batch``, from which another writer may commit it first. A PostgreSQL catalog's batch goes
    to :mod:`tracker.storage.pg_recovery` (one transaction, no lock to wait for or cancel).
    ``later`` takes the big contents recorded ``storing``, for the caller to name once the
    batch is written."""
    from tracker.storage.pg_store import PgStore

    complete = _completer(catalog, later)
    if isinstance(catalog.store, PgStore):
        from tracker.storage import pg_recovery

        return pg_recovery.write_events(catalog.store, batch, complete=complete, local=local,
                                        timeout=timeout)
    return recovery.write_events(catalog.store, batch, complete=complete, local=local,
                                 spool=spool, timeout=timeout, cancel=cancel)


def recover(catalog: Catalog, *, local: recovery.Local, force: bool = False) -> None:
    """What dead processes left, recovered if the catalog is free (never waits: a read calls
    this); see :func:`tracker.storage.recovery.maybe_recover`."""
    recovery.maybe_recover(catalog.store, complete=_completer(catalog), local=local, force=force)


def sync(catalog: Catalog, *, local: recovery.Local, timeout: float | None = None) -> int:
    """Send what this machine's dead processes left for a PostgreSQL catalog and mark their
    runs crashed (see :func:`tracker.storage.pg_recovery.sync`); return how many events were
    quarantined."""
    from tracker.storage import pg_recovery
    from tracker.storage.pg_store import PgStore

    return pg_recovery.sync(cast(PgStore, catalog.store), complete=_completer(catalog), local=local,
                            timeout=timeout)


def _completer(catalog: Catalog, later: Later = None) -> recovery.Complete:
    return functools.partial(completed_batch, catalog, later=later)


def completed_batch(catalog: Catalog, batch: Batch, *,
                    later: Later = None) -> tuple[list[Spooled], list[Reject]]:
    """Each event completed (files hashed, blobs stored or, with ``later``, big ones staged to
    be named), and those too malformed to complete; an OSError (a file that cannot be read or
    copied now) is raised, to be retried."""
    completed, rejected = [], []
    for item in batch:
        if not isinstance(item.event, _FILE_EVENTS):  # nothing to complete (most events)
            completed.append(item)
            continue
        run_id, seq, event = item
        try:
            completed.append(Spooled(run_id, seq, _complete(catalog, event, later)))
        except OSError:
            raise
        except Exception as exc:
            rejected.append(Reject(f"{type(exc).__name__}: {exc}", run_id, seq, event))
    return completed, rejected


_FILE_EVENTS = (events.Artifact, events.Stored)  # what completing touches


def _complete(catalog: Catalog, event: Event, later: Later) -> Event:
    """Hash local files and store blobs outside the lock: the slow part of an event."""
    from tracker.capture import suppressed

    with suppressed():  # tracker reading a file is not the notebook reading it
        return _completed(catalog, event, later)


def _completed(catalog: Catalog, event: Event, later: Later) -> Event:
    if isinstance(event, events.Artifact) and "://" not in event.uri:
        return event._replace(facts=_facts(catalog, event.uri, event.facts, later))
    if isinstance(event, events.Stored):
        return events.Artifact(event.run_id, event.role, event.path,
                               store_blob(catalog, event.path), event.ts, "stored")
    return event


def _facts(catalog: Catalog, path: str, logged: dict[str, Any] | None,
           later: Later) -> dict[str, Any] | None:
    """An artifact's facts, hashed and its content kept as the logging call asked. A big file
    to keep and not hashed yet is hashed from its copy (one read instead of two); if it changed
    since it was logged, its hash is looked up as for any big file (a pinned one survives)."""
    if logged and logged.get("keep") and logged.get("hash") is None and logged.get("seen"):
        facts = {name: value for name, value in logged.items() if name not in ("keep", "seen")}
        outcome = keep_content(catalog, path, facts, logged["seen"], later)
        if outcome.get("hash") is not None:
            return {**facts, **outcome}
        return {**(_hashed(path, logged) or {}), **outcome}
    return _kept(catalog, path, logged, _hashed(path, logged), later)


def _hashed(path: str, facts: dict[str, Any] | None) -> dict[str, Any] | None:
    """An artifact's facts, hashed here if the logging call left that for later: a file it
    did not look at (a folder, an old spool), or a big one it saw with stat key ``seen``."""
    from tracker import hashing

    if facts is None:
        return hashing.file_facts(path).fields()
    if facts.get("hash") is None and facts.get("seen"):
        return hashing.file_facts_as_seen(path, facts["seen"]).fields()
    return facts


def _kept(catalog: Catalog, path: str, logged: dict[str, Any] | None,
          facts: dict[str, Any] | None, later: Later) -> dict[str, Any] | None:
    """``facts`` with what became of a content the run chose (or declined) to keep when it
    logged the file (``keep`` in the ``logged`` facts: :mod:`tracker.keeping`): a status
    ``kept`` and, once stored, ``blob`` (the content's key)."""
    if facts is None or logged is None or "keep" not in logged:
        return facts
    from tracker import keeping

    facts = {name: value for name, value in facts.items() if name not in ("keep", "seen")}
    if not logged["keep"]:
        return {**facts, "kept": keeping.NOT_KEPT}
    return {**facts, **keep_content(catalog, path, facts, logged.get("seen"), later)}


def keep_content(catalog: Catalog, path: str, facts: dict[str, Any],
                 seen: list[int] | None, later: Later = None) -> dict[str, Any]:
    """Copy the file into the catalog's content store, verified against the hash recorded for
    it (or, for a big file not hashed yet, its stat key ``seen`` when it was logged, and then
    the copy's hash is the version's); ``kept`` says how it went: a file that changed since is
    never stored under this version. A big content may be left ``storing`` in ``later``."""
    from tracker import background_keeps, keeping, pending_keeps, shared_store
    from tracker.storage import contents

    if facts.get("hash") is None and not seen:  # a file that could not be read
        return {"kept": keeping.UNREADABLE}
    try:
        store = catalog.content_store
    except (ArgumentError, CatalogOwnershipError):  # TRACKER_STORE names no usable store
        # (boto3 missing, no bucket, a folder every user may write): said when one is read
        pending_keeps.settle(path, pending_keeps.identity(facts.get("hash"), seen), None)
        return {"kept": keeping.NOT_KEPT}
    size = facts.get("size") or (seen[2] if seen else 0)  # a stat key: dev, inode, size, mtime
    if later is None or len(later) >= background_keeps.MAX_PER_BATCH or \
            not background_keeps.defers(catalog, store, size):
        later = None
    try:
        owner = shared_store.owner(catalog) if store.shared else None
        kept = _keep(store, catalog.blob_dir, path, facts.get("hash"), seen, owner, later)
    except (contents.ContentChanged, FileNotFoundError):  # rewritten, moved or deleted since
        return {"kept": keeping.CHANGED}
    except OSError as exc:
        if contents.retryable(exc):
            raise  # the store is full or out of reach: the batch waits and is tried again
        return {"kept": keeping.UNREADABLE}
    if isinstance(kept, background_keeps.Storing):
        return {"kept": keeping.STORING, "blob": kept.token, "hash": kept.staged.fast_hash}
    return {"kept": keeping.KEPT, "blob": kept.key, "hash": kept.fast_hash}


def _keep(store: ContentStore, blob_dir: Path, path: str, expected_hash: str | None,
          seen: list[int] | None, owner: str | None, later: Later) -> Kept | Storing:
    """The version of ``path`` stored (and marked for ``owner`` in a shared store): copied
    now, or saved before it changed (see :mod:`tracker.pending_keeps`); or, given ``later``,
    copied now and added to it, to be named and stored once the batch is written. A
    retryable error leaves the version waiting."""
    from tracker import pending_keeps
    from tracker.storage import contents

    ident = pending_keeps.identity(expected_hash, seen)
    kept: Kept | Storing | None
    try:
        kept = _from_saved(store, path, ident, expected_hash, owner)
        if kept is None:
            try:
                kept = _copied(store, blob_dir, path, (expected_hash, seen, ident), owner,
                               later)
            except (contents.ContentChanged, FileNotFoundError):
                saved = _from_saved(store, path, ident, expected_hash, owner)  # as it changed
                if saved is None:
                    raise
                kept = saved
    except OSError as exc:
        if contents.retryable(exc):
            raise  # tried again later: the saved copy waits too
        pending_keeps.settle(path, ident, None)
        raise
    pending_keeps.settle(path, ident, kept if isinstance(kept, contents.Kept) else None)
    return kept


def _copied(store: ContentStore, blob_dir: Path, path: str,
            version: tuple[str | None, list[int] | None, Any], owner: str | None,
            later: Later) -> Kept | Storing:
    """``path`` copied now: stored, or (with ``later``) staged and added to it, once per
    ``version`` (its expected hash, stat key and identity) in a batch."""
    from tracker import background_keeps
    from tracker.storage import contents

    expected_hash, seen, ident = version
    staging = contents.staging_dir(blob_dir)
    seen_key = tuple(seen) if seen else None
    if later is None:
        return contents.keep_file(store, path, staging, expected_hash=expected_hash,
                                  seen=seen_key, owner=owner)
    for item in later:  # logged twice (captured, and by hand): one copy, one token
        if item.origin == (path, ident):
            return item
    storing = background_keeps.stage(path, staging, expected_hash, seen_key)
    storing.origin = (path, ident)
    later.append(storing)
    return storing


def _from_saved(store: ContentStore, path: str, ident: Any, expected_hash: str | None,
                owner: str | None) -> Kept | None:
    """This version as stored for an earlier event, or stored now from the copy saved before
    the file changed; None when there is neither."""
    from tracker import pending_keeps
    from tracker.storage import contents

    saved = pending_keeps.claim(path, ident)
    if saved is None or isinstance(saved, contents.Kept):
        return saved
    return contents.store_staged(store, saved, path, expected_hash=expected_hash, owner=owner)


def store_blob(catalog: Catalog, path: str) -> dict[str, Any]:
    """Store the file at ``path``, redacted, as a blob of the catalog; return its facts as an
    artifact event carries them (with ``blob``, the stored copy's name)."""
    from tracker.hashing import file_facts

    facts = file_facts(path)
    if facts.hash is None:
        return facts.fields()
    return store_notebook(catalog, Path(path).read_bytes(), facts.mtime)


def store_notebook(catalog: Catalog, raw: bytes, mtime: float | None) -> dict[str, Any]:
    """Store the notebook ``raw``, redacted, as a blob of the catalog; its facts as
    :func:`store_blob` gives them (``mtime``: the file's, if it is one)."""
    from tracker import redaction
    from tracker.hashing import hash_bytes

    # What is stored is the notebook with its secrets replaced, and the hash is of that.
    content = redaction.for_catalog(catalog).notebook(raw)
    digest = hash_bytes(content)
    key = digest.replace(":", "-")
    catalog.store.save_blob(key, content)  # the blob folder, or a PostgreSQL catalog's table
    return {"size": len(content), "mtime": mtime, "hash": digest, "blob": key}
