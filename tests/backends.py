"""The same runs on both back ends, for tests that read (issue #13): a test records through a
file catalog's public API, as users do, and reads through ``reads``, the file catalog itself or a
PostgreSQL catalog fed the very events the file catalog's writer committed.

The feed is a tee on :mod:`tracker.storage.writer`: each batch ``apply_all`` (or the group commit
``apply_together``) committed, less what it refused, is applied to PostgreSQL by
:func:`tracker.storage.pg_writer.apply`. What does not travel as events (tags set after the fact,
``update_run``, a crash found by recovery) is not fed: tests of such changes stay file-only,
pinned with ``@pytest.mark.parametrize("read_backend", FILE_ONLY)`` and a comment naming what is
missing on PostgreSQL, to be flipped to ``BOTH`` once it is ported.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd
import pytest

import tracker
from tracker import pg_catalog
from tracker.events import Spooled
from tracker.storage import pg_writer, writer
from tracker.storage.pg_store import PgStore

BOTH = ["file", "postgresql"]
#: a module whose write-side tests record on both back ends: each test's ``catalog`` is a file,
#: then a fresh PostgreSQL database (tests/conftest.py, ``write_backend``)
WRITES_ON_BOTH = pytest.mark.usefixtures("write_backend")
# A password in every mirror's URL (the test server trusts its socket, so libpq sends it
# unasked): whatever a read-side test shows can be checked for it.
SECRET = "s3cr3t-Mirror"
FILE_ONLY = ["file"]

# The reads of a PostgreSQL catalog: a mirror flushes its file catalog before each.
_READS = ("get_run", "runs", "count_runs", "keys", "metric_history", "artifacts", "lineage",
          "sql", "delete_run", "delete_runs", "restore_run", "restore_runs")


# Reads compared with the file catalog's at each call, and changes made on both.
_COMPARED = ("runs", "count_runs", "keys", "metric_history", "artifacts", "lineage")
_CHANGES = ("delete_run", "delete_runs", "restore_run", "restore_runs")


class MirrorCatalog(pg_catalog.PgCatalog):
    """A PostgreSQL catalog holding what ``source`` (a file catalog) recorded: each read first
    flushes ``source``, whose writer feeds this catalog (see :func:`mirror`)."""

    source: tracker.Catalog
    url: str  # with its password, as a user's setting may hold one


def _flushing(read: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(read)
    def flushed(self: MirrorCatalog, *args: Any, **kwargs: Any) -> Any:
        self.source.flush()
        return read(self, *args, **kwargs)

    return flushed


def _compared(read: Callable[..., Any]) -> Callable[..., Any]:
    """``read``, whose DataFrame must be the file catalog's for the same call: columns, dtypes
    and values (a live run's duration aside: each back end reads its own clock)."""
    @functools.wraps(read)
    def compared(self: MirrorCatalog, *args: Any, **kwargs: Any) -> Any:
        got = read(self, *args, **kwargs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the mirror's read has warned already
            expected = getattr(self.source, read.__name__)(*args, **kwargs)
        if isinstance(got, pd.DataFrame):
            _assert_same_runs(got, expected)
        else:
            assert got == expected
        return got

    return compared


def _assert_same_runs(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    """The same frame, but for a duration under 1 us apart: a duration is end - start, with the
    start held in microseconds or not. A live run's duration is not compared (each back end
    reads its own clock); a finished run's must be there on both sides."""
    if "duration" in got.columns and "ended_at" in got.columns:
        finished = got["ended_at"].notna() & expected["ended_at"].notna()
        apart = (got["duration"] - expected["duration"]).abs()[finished]
        assert (apart < 1e-6).all(), apart  # NaN on either side fails too
        got, expected = got.drop(columns="duration"), expected.drop(columns="duration")
    pd.testing.assert_frame_equal(got, expected)


def _mirrored(change: Callable[..., Any]) -> Callable[..., Any]:
    """``change`` made on both catalogs, so they keep holding the same runs."""
    @functools.wraps(change)
    def both(self: MirrorCatalog, *args: Any, **kwargs: Any) -> Any:
        done = change(self, *args, **kwargs)
        assert getattr(self.source, change.__name__)(*args, **kwargs) == done
        return done

    return both


for _name in _READS:
    _read = _flushing(getattr(pg_catalog.PgCatalog, _name))
    if _name in _CHANGES:
        _read = _mirrored(_read)
    elif _name in _COMPARED:
        _read = _compared(_read)
    setattr(MirrorCatalog, _name, _read)


def address(catalog: tracker.Catalog) -> str:
    """What ``--catalog`` takes to read ``catalog`` from the CLI (a file's path, a PostgreSQL
    URL holding :data:`SECRET`), once everything recorded through it is written."""
    if isinstance(catalog, MirrorCatalog):
        catalog.source.flush()
        return catalog.url
    catalog.flush()
    return str(catalog.path)


def on_server(request: pytest.FixtureRequest) -> bool:
    """Whether the test records into PostgreSQL now: marked :data:`WRITES_ON_BOTH` (or
    parametrised by ``write_backend``), in its PostgreSQL turn."""
    return "write_backend" in request.fixturenames and \
        request.getfixturevalue("write_backend") == "postgresql"


def settled(catalog: tracker.Catalog) -> tracker.Catalog:
    """``catalog`` once what this machine's dead processes left is in it (their spools sent,
    their runs crashed). A file catalog's reads see to that themselves; a PostgreSQL
    catalog's do not (a reader may be on any machine, and judges no process): there the next
    write on this machine, or ``sync``, does."""
    if isinstance(catalog, pg_catalog.PgCatalog):
        catalog.sync()
    return catalog


def recovered(catalog: tracker.Catalog) -> tracker.Catalog:
    """``catalog`` once what this machine's dead processes left is recovered now, however
    recently it last was: the file catalog's recovery, a PostgreSQL catalog's ``sync``."""
    if isinstance(catalog, pg_catalog.PgCatalog):
        catalog.sync()
        return catalog
    from tracker import delivery
    from tracker.recorder import local_to

    delivery.recover(catalog, local=local_to(catalog.spool_dir), force=True)
    return catalog


def mirror(source: tracker.Catalog, url: str, monkeypatch: pytest.MonkeyPatch) -> MirrorCatalog:
    """A PostgreSQL catalog at ``url`` fed, for the rest of the test, every event the file
    catalog writer commits (``source``'s and any other in this process)."""
    assert not source.path.exists(), "reads must come before any fixture that records"
    url = url.replace("postgresql://postgres@", f"postgresql://postgres:{SECRET}@", 1)
    assert SECRET in url
    store = PgStore(url, 10)

    def feed(applied: Sequence[Spooled]) -> None:
        if applied:
            with store.connect(write=True) as con:
                assert pg_writer.apply(con, applied) == []

    def apply_all(con: Any, batch: Sequence[Spooled], keep: writer.Keep, *more: Any,
                  **options: Any) -> list[Any]:
        rejects = original_all(con, batch, keep, *more, **options)
        refused = {(reject.run_id, reject.seq) for reject in rejects}
        feed([item for item in batch if (item.run_id, item.seq) not in refused])
        return rejects

    def apply_together(con: Any, batch: Sequence[Spooled], others: Sequence[Spooled],
                       *more: Any, **options: Any) -> Any:
        together = original_together(con, batch, others, *more, **options)
        if together is not None:
            startless, committed = together
            refused = {(reject.run_id, reject.seq) for reject in startless}
            feed([*(item for item in batch if (item.run_id, item.seq) not in refused),
                  *(item for item in others if item.seq <= committed.get(item.run_id, 0))])
        return together

    original_all, original_together = writer.apply_all, writer.apply_together
    monkeypatch.setattr(writer, "apply_all", apply_all)
    monkeypatch.setattr(writer, "apply_together", apply_together)
    catalog = MirrorCatalog(url)
    catalog.source, catalog.url = source, url
    return catalog
