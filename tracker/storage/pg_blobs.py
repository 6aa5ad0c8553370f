"""The files stored with a PostgreSQL catalog's runs (a run's notebook, as saved), in its
``blobs`` table by content key: the counterpart of the file catalog's blob folder.

A blob is stored before the batch that references it commits (as in the folder), so storing
one again refreshes ``stored_at``, and :data:`UNREFERENCED` spares what was stored or reused
within :data:`GRACE`: a write on its way never loses its blob to a purge.
"""

from __future__ import annotations

from typing import Any

#: Seconds a stored blob is spared by a purge although no run references it yet.
GRACE = 3600
#: Removes the blobs no artifact names and no write stored within GRACE; binds GRACE.
UNREFERENCED = ("DELETE FROM blobs b WHERE b.stored_at < now() - make_interval(secs => %s) "
                "AND NOT EXISTS (SELECT 1 FROM artifacts a WHERE a.blob = b.key)")


def store(con: Any, key: str, data: bytes) -> None:
    """Store ``data`` as ``key`` (a content key: equal keys hold equal bytes), or mark the one
    stored as used now."""
    import psycopg

    # Not ON CONFLICT: its row must pass the role's read policy, and a blob another project's
    # run holds is hidden from this role (tracker.storage.pg_access). A plain INSERT in a
    # savepoint is checked only by the insert policy; the UPDATE skips a hidden blob.
    try:
        with con.transaction():
            con.execute("INSERT INTO blobs (key, data) VALUES (%s, %s)", [key, data])
        return
    except psycopg.errors.UniqueViolation:
        pass
    con.execute("UPDATE blobs SET stored_at = now() WHERE key = %s", [key])


def read(con: Any, key: str) -> bytes | None:
    """The bytes stored as ``key``; None if there are none."""
    row = con.execute("SELECT data FROM blobs WHERE key = %s", [key]).fetchone()
    return None if row is None else bytes(row[0])


def remove_unreferenced(con: Any) -> int:
    """Remove the blobs no run references (past the grace); how many."""
    return int(con.execute(UNREFERENCED, [GRACE]).rowcount)
