"""The lineage graph of one run: the runs and file versions upstream and downstream of it.

Walks the catalog level by level from the focus run: upstream through the files a run read to
the runs that produced them, downstream through the files it wrote to the runs that read them,
``depth`` runs each way. Each level is one bound query per direction, never one per node. A hub
(a file read by 10,000 runs, a run that wrote 10,000 files) shows its FANOUT newest neighbours
and one "+N more" node; the whole graph stops growing at MAX_NODES, so the picture stays
readable and the walk stays fast whatever the catalog holds. Trashed runs are left out unless
asked for; the focus run is shown even from the trash, as naming it asks for it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from tracker import _ids, arguments

if TYPE_CHECKING:
    from tracker.catalog import Catalog
    from tracker.sql_dialects import Dialect

DEFAULT_DEPTH = 3  # runs each way: a producer's producer's producer is as far as people look
MAX_DEPTH = 20
FANOUT = 6  # neighbours of one node drawn before the rest become "+N more"
MAX_NODES = 120  # a picture of more nodes is not read, only scrolled


@dataclasses.dataclass(frozen=True)
class Node:
    """One node: a run (``run_id`` set), a file version, or a "+N more" stand-in."""

    key: str  # unique in the graph: "run:<id>", "file:<artifact id>", "more:<n>"
    kind: str  # "run", "file" (one version of a file or URI) or "more" (neighbours left out)
    label: str  # what the picture writes (cut to fit there; whole in ``detail``)
    detail: str  # the tooltip: whole names, ids, paths, hashes
    run_id: str | None = None
    uri: str | None = None  # a file version's path or URI, and its version number
    version: int | None = None
    status: str | None = None
    deleted: bool = False
    focus: bool = False


@dataclasses.dataclass(frozen=True)
class Edge:
    """``source`` -> ``target``: a file read by a run, or a run that wrote a file."""

    source: str
    target: str
    verb: str  # "read" or "wrote"


@dataclasses.dataclass(frozen=True)
class LineageGraph:
    """The runs and file versions around one run; ``.svg()`` draws it, ``.text()`` prints it.

    In a notebook the graph displays itself as its picture.
    """

    focus: str  # the focus run's id
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    depth: int
    truncated: bool  # MAX_NODES was reached: some of the graph is not shown

    def svg(self) -> str:
        """The picture as standalone SVG text, in fixed colours on a white background."""
        from tracker import lineage_drawing

        return lineage_drawing.svg(self)

    def text(self) -> str:
        """The graph as an indented tree: ``<-`` upstream of the focus, ``->`` downstream."""
        from tracker import lineage_drawing

        return lineage_drawing.text(self)

    def _repr_svg_(self) -> str:
        return self.svg()


# One bound query per level and direction: the files the given runs read (or wrote), the
# FANOUT first by path of each run, and how many each has in all.
_FILES = """
WITH links AS (SELECT DISTINCT run_id, artifact_id FROM run_artifacts
               WHERE role = $role AND run_id IN (SELECT unnest($runs::text[]))),
ranked AS (SELECT l.run_id, a.id, a.uri, a.version, a.hash, a.producer_run_id,
                  row_number() OVER (PARTITION BY l.run_id ORDER BY a.uri, a.version) AS n,
                  count(*) OVER (PARTITION BY l.run_id) AS total
           FROM links l JOIN artifacts a ON a.id = l.artifact_id)
SELECT run_id, id, uri, version, hash, producer_run_id, total FROM ranked
WHERE n <= $fanout ORDER BY run_id, n
"""
# The runs that read the given file versions (not their producer), the FANOUT newest of each.
_READERS = """
WITH links AS (SELECT DISTINCT ra.artifact_id, ra.run_id FROM run_artifacts ra
               JOIN artifacts a ON a.id = ra.artifact_id
               WHERE ra.role = 'input' AND ra.artifact_id IN (SELECT unnest($files::text[]))
                 AND ra.run_id IS DISTINCT FROM a.producer_run_id),
ranked AS (SELECT l.artifact_id, r.id,
                  row_number() OVER (PARTITION BY l.artifact_id
                                     ORDER BY r.started_at DESC, r.id) AS n,
                  count(*) OVER (PARTITION BY l.artifact_id) AS total
           FROM links l JOIN runs r ON r.id = l.run_id
           WHERE $deleted OR r.deleted_at IS NULL)
SELECT artifact_id, id, total FROM ranked WHERE n <= $fanout ORDER BY artifact_id, n
"""


class _FileRow(NamedTuple):
    """A row of _FILES: one file version a run read or wrote."""

    run_id: str
    file_id: str
    uri: str
    version: int
    digest: str | None
    producer: str | None
    total: int  # files of this run and role in all


class _ReaderRow(NamedTuple):
    """A row of _READERS: one run that read a file version."""

    file_id: str
    run_id: str
    total: int  # readers of this file version in all


_RUNS = """
SELECT id, name, status, deleted_at IS NOT NULL FROM runs
WHERE id IN (SELECT unnest($ids::text[]))
"""


def lineage_graph(catalog: Catalog, ref: str, *, depth: int = DEFAULT_DEPTH,
                  include_deleted: bool = False) -> LineageGraph:
    """See :meth:`tracker.Catalog.lineage_graph`."""
    from tracker import queries  # here: the command line imports this module to add its command
    from tracker.reading import read_connection

    depth = min(arguments.count(depth, "depth", minimum=1), MAX_DEPTH)
    include_deleted = bool(include_deleted)
    with read_connection(catalog) as (con, dialect):
        focus = queries.resolve(con, ref, dialect)
        walk = _Walk(con, focus, include_deleted, dialect)
        upstream, downstream = [focus], [focus]
        for _ in range(depth):
            upstream = walk.upstream(upstream)
            downstream = walk.downstream(downstream)
            if not upstream and not downstream:
                break
    return LineageGraph(focus, tuple(walk.nodes.values()), tuple(walk.edges), depth,
                        walk.truncated)


class _Walk:
    """The graph as it grows: nodes by key and edges, both in the order found."""

    def __init__(self, con: Any, focus: str, include_deleted: bool, dialect: Dialect) -> None:
        self.con = con
        self.sql = dialect.finish_named  # the statements' named values, as the back end spells
        self.focus = focus
        self.include_deleted = include_deleted
        self.nodes: dict[str, Node] = {}
        self.edges: dict[Edge, None] = {}  # an ordered set
        self.truncated = False
        self._more = 0
        self.add_runs([focus])

    def full(self) -> bool:
        """Whether the graph has MAX_NODES nodes; anything more is counted as left out."""
        return len(self.nodes) >= MAX_NODES

    def upstream(self, runs: Sequence[str]) -> list[str]:
        """Add the files ``runs`` read and the runs that produced them; the runs added."""
        rows = self._files(runs, "input")
        made = {(row.producer, row.file_id) for row in rows
                if row.producer and row.producer != row.run_id}
        added = self.add_runs(sorted({producer for producer, _ in made}))
        for producer, file_id in sorted(made):
            self.link(run_key(producer), file_node_key(file_id), "wrote")
        return added

    def downstream(self, runs: Sequence[str]) -> list[str]:
        """Add the files ``runs`` wrote and the runs that read them; the runs added."""
        rows = self._files(runs, "output")
        files = sorted({row.file_id for row in rows if file_node_key(row.file_id) in self.nodes})
        if not files:
            return []
        readers = [_ReaderRow(*row) for row in self.con.execute(
            self.sql(_READERS),
            {"files": files, "fanout": FANOUT, "deleted": self.include_deleted})
            .fetchall()]
        added = self.add_runs(dict.fromkeys(row.run_id for row in readers))  # newest first
        for row in readers:
            self.link(file_node_key(row.file_id), run_key(row.run_id), "read")
        for file_id, left_out in _left_out([(row.file_id, row.total) for row in readers]):
            self.more(file_node_key(file_id), left_out, "run", upstream=False)
        return added

    def _files(self, runs: Sequence[str], role: str) -> list[_FileRow]:
        """Add the file versions ``runs`` read (``role`` "input") or wrote ("output"), with
        their edges and "+N more files"; returns the rows read."""
        if not runs:
            return []
        rows = [_FileRow(*row) for row in self.con.execute(
            self.sql(_FILES), {"role": role, "runs": list(runs), "fanout": FANOUT}).fetchall()]
        upstream = role == "input"
        for row in rows:
            key = file_node_key(row.file_id)
            if key not in self.nodes:
                digest = f"\n{row.digest}" if row.digest else ""
                self.add(Node(key, "file", f"{_base_name(row.uri)} v{row.version}",
                              f"{row.uri}\nversion {row.version}{digest}", uri=row.uri,
                              version=row.version))
            if upstream:
                self.link(key, run_key(row.run_id), "read")
            else:
                self.link(run_key(row.run_id), key, "wrote")
        for run_id, left_out in _left_out([(row.run_id, row.total) for row in rows]):
            self.more(run_key(run_id), left_out, "file", upstream=upstream)
        return rows

    def more(self, anchor: str, left_out: int, noun: str, *, upstream: bool) -> None:
        """A "+N more" node beside ``anchor`` for ``left_out`` neighbours not drawn."""
        if left_out <= 0 or anchor not in self.nodes:
            return
        self._more += 1
        key = f"more:{self._more}"
        plural = noun if left_out == 1 else f"{noun}s"
        direction = "upstream" if upstream else "downstream"
        if self.add(Node(key, "more", f"+{left_out:,} more {plural}",
                         f"{left_out:,} more {plural} {direction} are not drawn")):
            if upstream:  # files the run read
                self.link(key, anchor, "read")
            else:  # files the run wrote, or runs that read the file
                self.link(anchor, key, "wrote" if noun == "file" else "read")

    def add_runs(self, run_ids: Iterable[str]) -> list[str]:
        """Add a node per run in ``run_ids`` not yet in the graph (trashed ones only if asked,
        or the focus); returns the runs added."""
        wanted = [run_id for run_id in run_ids if run_key(run_id) not in self.nodes]
        if not wanted:
            return []
        added = []
        found = self.con.execute(self.sql(_RUNS), {"ids": wanted}).fetchall()
        for run_id, name, status, deleted in found:
            focus = run_id == self.focus
            if deleted and not (focus or self.include_deleted):
                continue
            shown = name or _ids.short_id(run_id)
            trashed = " (in the trash)" if deleted else ""
            if self.add(Node(run_key(run_id), "run", shown,
                             f"{shown}\n{run_id}\n{status}{trashed}", run_id=run_id,
                             status=status, deleted=bool(deleted), focus=focus)):
                added.append(run_id)
        return sorted(added, key=wanted.index)

    def add(self, node: Node) -> bool:
        """Add ``node`` unless the graph is full (then note that some is left out)."""
        if self.full():
            self.truncated = True
            return False
        self.nodes[node.key] = node
        return True

    def link(self, source: str, target: str, verb: str) -> None:
        """Add the edge once, between nodes both in the graph."""
        edge = Edge(source, target, verb)
        if source in self.nodes and target in self.nodes:
            self.edges.setdefault(edge)


def run_key(run_id: str) -> str:
    """The node key of a run."""
    return f"run:{run_id}"


def file_node_key(artifact_id: str) -> str:
    """The node key of a file version (an ``artifacts`` row)."""
    return f"file:{artifact_id}"


def _left_out(drawn: Sequence[tuple[str, int]]) -> list[tuple[str, int]]:
    """Per anchor, in order: how many of its neighbours were not drawn, from the (anchor,
    total) of each neighbour that was."""
    counts: dict[str, list[int]] = {}
    for anchor, total in drawn:
        counts.setdefault(anchor, [0, total])[0] += 1
    return [(anchor, total - shown) for anchor, (shown, total) in counts.items()]


def _base_name(uri: str) -> str:
    """The last part of a path or URI: what tells files apart in a picture."""
    stripped = str(uri).rstrip("/\\")
    return stripped.replace("\\", "/").rsplit("/", 1)[-1] or str(uri)
