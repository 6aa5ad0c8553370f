"""Copying runs between catalogs: ``tracker push`` to a team catalog, ``tracker pull`` back.

Each run travels as a checked descriptor, exactly what an export then an import would carry
(:mod:`tracker.exchange`), with its id and its name (``train #12``) as they are. Copying is a
merge (:mod:`tracker.record_diff`): a run the target lacks is added, one it holds is brought up
to date (new history rows, cells, links, tags and tag removals set later than the target's;
the source's status, end, name and trash state), and one it holds as the source does is left
alone, so pushing twice adds nothing.
Runs in the trash are copied too, in the trash. The notebooks stored with the runs travel
with them (a server keeps them in its ``blobs`` table), and so do their kept contents, from
the source's content store into the target's, checked as an import checks them; a content the
target holds already is not copied again, and one a target cannot keep (a server without
``TRACKER_STORE``) is recorded ``not kept`` there, said in the report. Copying again once
the target has a store fills those versions in (``filled``), however unchanged their runs
are; nothing else recorded there is changed. The target is written
in transactions of at most a hundred runs; a failure leaves the runs already written, and
copying again finishes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tracker import carried_contents, exchange, pg_exchange, redaction
from tracker.errors import DescriptorError
from tracker.queries import flush_for_read
from tracker.sql_dialects import DUCKDB, POSTGRES
from tracker.storage.pg_store import PgStore

if TYPE_CHECKING:
    from tracker.catalog import Catalog

_CHUNK = 100  # runs read and written together


@dataclass
class Pushed:
    """What :meth:`tracker.Catalog.push` (or ``pull``) did: the runs copied, updated and left
    as they were, by id."""

    source: str
    target: str
    copied: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    #: runs the target refused, by id: why (they stay in the source; nothing was dropped)
    skipped: dict[str, str] = field(default_factory=dict)
    #: what did not travel, said once (kept contents a target cannot keep)
    notes: list[str] = field(default_factory=list)
    #: the versions recorded ``not kept`` in the target that now have their kept content
    filled: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"{self.source} -> {self.target}: copied {len(self.copied)}, updated "
                 f"{len(self.updated)}, already up to date {len(self.unchanged)}"
                 + (f", skipped {len(self.skipped)}" if self.skipped else "")
                 + (f", kept contents filled in {len(self.filled)}" if self.filled else "")]
        lines += [f"skipped {run_id}: {why}" for run_id, why in self.skipped.items()]
        return "\n".join([*lines, *(f"note: {note}" for note in self.notes)])


def copy_runs(source: Catalog, target: Catalog, where: str | None = None) -> Pushed:
    """Copy the runs of ``source`` that ``where`` matches (all, trash included, when None)
    into ``target``; see the module's docstring."""
    ids = list(source.runs(where, include_deleted=True)["id"])
    report = Pushed(_shown(source), _shown(target))
    behind: set[str] = set()
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start:start + _CHUNK]
        runs = _checked(_read(source, chunk), report)
        carried = carried_contents.copy_between(
            source, target, [row for data in runs for row in data["artifacts"]])
        added, updated, refused = _write(source, target, runs, carried)
        report.copied += added
        report.updated += updated
        report.skipped.update(refused)
        report.filled += _fill_kept(target, runs, carried)
        report.unchanged += [run_id for run_id in chunk
                             if run_id not in {*added, *updated, *report.skipped}]
        behind |= _left_behind([data for data in runs
                                if data["run"]["id"] in {*added, *updated}], carried)
    if behind:
        report.notes.append(f"{len(behind)} kept content(s) stayed behind (the target keeps "
                            "none, or the source's store lacks them: set TRACKER_STORE for a "
                            "PostgreSQL catalog); those versions are recorded 'not kept' there")
    return report


def _checked(records: list[dict[str, Any]], report: Pushed) -> list[dict[str, Any]]:
    """The records checked as an import checks them; one that fails (a text longer than
    tracker records now, written by an older tracker) is skipped, with why, not the push."""
    runs = []
    for data in records:
        try:
            runs.append(exchange.as_descriptor(data))
        except DescriptorError as exc:
            report.skipped[data["run"]["id"]] = str(exc)
    return runs


def _server(catalog: Catalog) -> PgStore | None:
    """The server of a PostgreSQL catalog, None for a file (a PgCatalog is known by its store:
    importing that class here would close a circle through Catalog.push)."""
    store: Any = catalog.store
    return store if isinstance(store, PgStore) else None


def _shown(catalog: Catalog) -> str:
    """The catalog as it may be printed: a server's URL without its password."""
    server = _server(catalog)
    return server.shown if server is not None else str(catalog.path)


def _read(catalog: Catalog, run_ids: Sequence[str]) -> list[dict[str, Any]]:
    """The records of these runs, each with the notebooks stored with it."""
    server = _server(catalog)
    if server is not None:
        records = pg_exchange.read_records(server, run_ids)
    else:
        from tracker.recorder import name_contents

        flush_for_read(catalog)
        name_contents(catalog)  # a big content still being stored: named, so that it travels
        with catalog.connect() as con:
            records = exchange.read_records(con, run_ids)
    return [{**data, "notebooks": exchange.stored_notebooks(catalog, data["artifacts"])}
            for data in records]


def _write(source: Catalog, target: Catalog, runs: list[dict[str, Any]], carried: set[str]
           ) -> tuple[list[str], list[str], dict[str, str]]:
    """Write checked runs into ``target``, whose store holds the kept contents ``carried``:
    the ids added, the ids updated, the runs refused (by id: why)."""
    if _server(target) is not None:
        # What a file catalog recorded is redacted already, under its key: redacting again
        # with it marks any secret the same way each time, so a push stays idempotent.
        redactor = pg_exchange.redactor() if _server(source) else \
            redaction.for_catalog(source)
        return pg_exchange.merge(target, runs, redactor, carried=carried)
    added = exchange.import_checked(target, runs, carried=carried)
    held = [data for data in runs if data["run"]["id"] not in set(added)]
    return added, exchange.update_checked(target, held, carried=carried), {}


def _fill_kept(target: Catalog, runs: list[dict[str, Any]], carried: set[str]) -> list[str]:
    """Give the versions ``target`` records ``not kept`` the contents now ``carried`` into its
    store (:data:`tracker.exchange.FILL_KEPT`); their ids."""
    values = exchange.kept_versions(runs, carried)
    if not values[0]:
        return []
    server = _server(target)
    dialect = POSTGRES if server is not None else DUCKDB
    with (server or target).connect(write=True) as con:
        return [row[0] for row in con.execute(dialect.finish(exchange.FILL_KEPT),
                                              values).fetchall()]


def _left_behind(runs: list[dict[str, Any]], carried: set[str]) -> set[str]:
    """The kept contents of the runs written that did not travel (the target keeps none, or
    the source's store had lost them): their versions are ``not kept`` there."""
    return {row["blob"] for data in runs for row in data["artifacts"]
            if row.get("kept") == "kept" and row.get("blob") not in carried}
