"""Drawing a lineage graph: a left-to-right layered layout, written as SVG or as a text tree.

Layers by longest path (every edge points right: inputs, then the run, then its outputs), with
nodes that only feed others (raw inputs) pulled right next to the runs that read them; then a
few barycentre sweeps order each layer so edges cross less (docs/design.md §10). Every label
and tooltip is XML-escaped; ids go into attributes escaped too. The standalone SVG has fixed
colours on a white background (it is opened anywhere); the widget asks for ``themed=True``,
which takes JupyterLab's CSS variables so light and dark themes both read.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING
from xml.sax.saxutils import escape, quoteattr

from tracker._ids import short_id
from tracker.models import STATUSES

if TYPE_CHECKING:
    from tracker.lineage_walk import LineageGraph, Node

NODE_WIDTH = 168
NODE_HEIGHT = 34
COLUMN = 224  # left edge to left edge of two layers
ROW = 48  # top to top of two nodes in a layer
MARGIN = 12
LABEL_CHARS = 22  # what fits in NODE_WIDTH at 12px; the whole label is the tooltip
SWEEPS = 4

# Colours: (fixed, JupyterLab variable). Status colours match the browser's pills.
_PALETTE = {
    "text": ("#212121", "--jp-ui-font-color1"),
    "muted": ("#616161", "--jp-ui-font-color2"),
    "back": ("#ffffff", "--jp-layout-color0"),
    "run": ("#ffffff", "--jp-layout-color1"),
    "file": ("#eef2f7", "--jp-layout-color2"),
    "border": ("#9e9e9e", "--jp-border-color1"),
    "edge": ("#9e9e9e", "--jp-border-color1"),
    "focus": ("#1976d2", "--jp-brand-color1"),
    "running": ("#1976d2", "--jp-brand-color1"),
    "completed": ("#388e3c", "--jp-success-color1"),
    "failed": ("#d32f2f", "--jp-error-color1"),
    "crashed": ("#f57c00", "--jp-warn-color1"),
}
# (selectors, declarations); every selector is put under svg.tracker-lineage (_style).
_RULES = (
    (".tl-node text", "font: 12px sans-serif; fill: {text}"),
    (".tl-node .tl-sub", "font-size: 10px; fill: {muted}"),
    (".tl-run rect", "fill: {run}; stroke: {border}; stroke-width: 1"),
    (".tl-run", "cursor: pointer"),
    (".tl-run:hover rect, .tl-run:focus rect", "stroke: {focus}; stroke-width: 2"),
    (".tl-focus rect", "stroke: {focus}; stroke-width: 3"),
    (".tl-deleted text", "text-decoration: line-through"),
    (".tl-file rect", "fill: {file}; stroke: {border}; stroke-width: 1"),
    (".tl-more rect", "fill: none; stroke: {border}; stroke-dasharray: 4 3"),
    (".tl-more text", "fill: {muted}; font-style: italic"),
    (".tl-edge", "fill: none; stroke: {edge}; stroke-width: 1.2"),
    (".tl-arrow", "fill: {edge}"),
    *((f".tl-node rect.tl-{status}", f"fill: {{{status}}}; stroke: none")
      for status in (*STATUSES, "muted")),
)


@dataclasses.dataclass(frozen=True)
class Placed:
    """A node's place: its layer (column) and its row within the layer."""

    layer: int
    row: int


def layout(graph: LineageGraph) -> dict[str, Placed]:
    """Each node's layer and row: longest-path layers, barycentre-ordered rows."""
    layers = _layers([node.key for node in graph.nodes],
                     [(edge.source, edge.target) for edge in graph.edges])
    columns: dict[int, list[str]] = {}
    for key in layers:  # node order: the walk's, so the focus and near nodes come first
        columns.setdefault(layers[key], []).append(key)
    ordered = _order([columns[layer] for layer in sorted(columns)],
                     [(edge.source, edge.target) for edge in graph.edges])
    return {key: Placed(layer, row) for layer, keys in enumerate(ordered)
            for row, key in enumerate(keys)}


def _layers(keys: Sequence[str], edges: Sequence[tuple[str, str]]) -> dict[str, int]:
    """Longest-path layering; an edge that would close a cycle is ignored. Sources are then
    moved right to just before their nearest successor."""
    successors: dict[str, list[str]] = {key: [] for key in keys}
    for source, target in edges:
        successors[source].append(target)
    order = _topological(keys, successors)
    rank = {key: index for index, key in enumerate(order)}
    layer = dict.fromkeys(keys, 0)
    for key in order:
        for target in successors[key]:
            if rank[target] > rank[key]:
                layer[target] = max(layer[target], layer[key] + 1)
    has_input = {target for _, target in edges}
    for key in keys:
        after = [layer[t] for t in successors[key] if rank[t] > rank[key]]
        if key not in has_input and after:
            layer[key] = min(after) - 1
    lowest = min(layer.values(), default=0)
    return {key: layer[key] - lowest for key in keys}


def _topological(keys: Sequence[str], successors: Mapping[str, list[str]]) -> list[str]:
    """Depth-first topological order from the keys in order; a back edge is skipped."""
    done: set[str] = set()
    finished: list[str] = []
    for root in keys:
        if root in done:
            continue
        done.add(root)
        stack = [(root, iter(successors[root]))]
        while stack:
            key, pending = stack[-1]
            target = next(pending, None)
            if target is None:
                stack.pop()
                finished.append(key)
            elif target not in done:
                done.add(target)
                stack.append((target, iter(successors[target])))
    return finished[::-1]


def _order(columns: list[list[str]], edges: Sequence[tuple[str, str]]) -> list[list[str]]:
    """Rows within each layer: sweeps right then left, each node placed at the mean row of
    its neighbours in the layer just swept (a stable sort keeps ties in walk order)."""
    neighbours: dict[str, list[str]] = {}
    for source, target in edges:
        neighbours.setdefault(source, []).append(target)
        neighbours.setdefault(target, []).append(source)
    for sweep in range(SWEEPS):
        indexes = range(1, len(columns)) if sweep % 2 == 0 else range(len(columns) - 2, -1, -1)
        for index in indexes:
            fixed = columns[index - 1] if sweep % 2 == 0 else columns[index + 1]
            position = {key: row for row, key in enumerate(fixed)}
            weight = {key: _barycentre(key, neighbours, position, row)
                      for row, key in enumerate(columns[index])}
            columns[index] = sorted(columns[index], key=weight.__getitem__)
    return columns


def _barycentre(key: str, neighbours: Mapping[str, list[str]], position: Mapping[str, int],
                default: int) -> float:
    rows = [position[other] for other in neighbours.get(key, ()) if other in position]
    return sum(rows) / len(rows) if rows else float(default)


def svg(graph: LineageGraph, *, themed: bool = False) -> str:
    """The graph as SVG text; ``themed`` takes JupyterLab's colours (for the widget)."""
    placed = layout(graph)
    height_rows = max((p.row for p in placed.values()), default=0) + 1
    layers = max((p.layer for p in placed.values()), default=0) + 1
    counts: dict[int, int] = {}
    for p in placed.values():
        counts[p.layer] = counts.get(p.layer, 0) + 1
    width = 2 * MARGIN + (layers - 1) * COLUMN + NODE_WIDTH
    height = 2 * MARGIN + (height_rows - 1) * ROW + NODE_HEIGHT

    def corner(key: str) -> tuple[float, float]:
        at = placed[key]
        offset = (height_rows - counts[at.layer]) * ROW / 2  # each layer centred vertically
        return MARGIN + at.layer * COLUMN, MARGIN + offset + at.row * ROW

    colours = {name: (f"var({variable}, {fixed})" if themed else fixed)
               for name, (fixed, variable) in _PALETTE.items()}
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="tracker-lineage" '
             f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
             f'role="img" aria-label={quoteattr(f"lineage of run {graph.focus}")}>',
             f"<style>{_style(colours)}</style>",
             '<defs><marker id="tl-arrow" viewBox="0 0 8 8" refX="8" refY="4" markerWidth="7" '
             'markerHeight="7" orient="auto"><path class="tl-arrow" d="M0,0 L8,4 L0,8 z"/>'
             "</marker></defs>"]
    if not themed:
        parts.append(f'<rect width="{width}" height="{height}" fill="{colours["back"]}"/>')
    nodes = {node.key: node for node in graph.nodes}
    for edge in graph.edges:
        parts.append(_edge(corner(edge.source), corner(edge.target),
                           f"{nodes[edge.source].label} {edge.verb} {nodes[edge.target].label}"))
    parts += [_node(node, *corner(node.key)) for node in graph.nodes]
    if graph.truncated:
        parts.append(f'<text x="{MARGIN}" y="{height - 2}" font-size="10" '
                     f'fill="{colours["muted"]}">the picture stops at {len(graph.nodes)} '
                     "nodes; lower the depth to see less</text>")
    parts.append("</svg>")
    return "\n".join(parts)


def _style(colours: Mapping[str, str]) -> str:
    """The style sheet, every rule under ``svg.tracker-lineage``: the style of an SVG drawn
    inline applies to the whole page, so it must reach nothing else."""
    return " ".join(
        ", ".join(f"svg.tracker-lineage {part.strip()}" for part in selectors.split(",")) +
        f" {{ {declarations.format(**colours)} }}" for selectors, declarations in _RULES)


def _edge(start: tuple[float, float], end: tuple[float, float], title: str) -> str:
    """A curve from the right of one node to the left of the next, with an arrow head."""
    x1, y1 = start[0] + NODE_WIDTH, start[1] + NODE_HEIGHT / 2
    x2, y2 = end[0], end[1] + NODE_HEIGHT / 2
    bend = max((x2 - x1) / 2, 24)
    return (f'<path class="tl-edge" marker-end="url(#tl-arrow)" d="M{x1:.0f},{y1:.0f} '
            f'C{x1 + bend:.0f},{y1:.0f} {x2 - bend:.0f},{y2:.0f} {x2:.0f},{y2:.0f}">'
            f"<title>{escape(title)}</title></path>")


def _node(node: Node, x: float, y: float) -> str:
    """A run (square corners, a status stripe, its short id), a file version (round ends) or
    a "+N more" (dashed); run nodes carry ``data-run`` for the widget's clicks."""
    classes = ["tl-node", f"tl-{node.kind}"] + (["tl-focus"] if node.focus else []) + \
        (["tl-deleted"] if node.deleted else [])
    attributes = f'class="{" ".join(classes)}" transform="translate({x:.0f},{y:.0f})"'
    if node.run_id is not None:
        attributes += f' data-run={quoteattr(node.run_id)} tabindex="0" role="button"'
    radius = NODE_HEIGHT / 2 if node.kind == "file" else 3
    parts = [f"<g {attributes}><title>{escape(node.detail)}</title>",
             f'<rect width="{NODE_WIDTH}" height="{NODE_HEIGHT}" rx="{radius:.0f}"/>']
    if node.kind == "run":
        status = node.status if node.status in STATUSES else "muted"
        parts += [f'<rect class="tl-{status}" width="5" height="{NODE_HEIGHT}" rx="2"/>',
                  f'<text x="12" y="15">{escape(_cut(node.label))}</text>',
                  f'<text class="tl-sub" x="12" y="28">{escape(short_id(node.run_id or ""))}'
                  f"{' · this run' if node.focus else ''}</text>"]
    else:
        parts.append(f'<text x="14" y="{NODE_HEIGHT / 2 + 4:.0f}">{escape(_cut(node.label))}'
                     "</text>")
    parts.append("</g>")
    return "".join(parts)


def _cut(label: str) -> str:
    return label if len(label) <= LABEL_CHARS else label[:LABEL_CHARS - 1] + "…"


def text(graph: LineageGraph) -> str:
    """The focus run, then ``<-`` what it read and who wrote that, upstream, and ``->`` what
    it wrote and who read that, downstream; each node once (a second meeting says "see above")."""
    nodes = {node.key: node for node in graph.nodes}
    inputs: dict[str, list[str]] = {}
    outputs: dict[str, list[str]] = {}
    for edge in graph.edges:
        inputs.setdefault(edge.target, []).append(edge.source)
        outputs.setdefault(edge.source, []).append(edge.target)
    focus = f"run:{graph.focus}"
    lines = [_line(nodes[focus])]
    for arrow, links in (("<-", inputs), ("->", outputs)):
        shown = {focus}
        stack = [(key, 1) for key in reversed(links.get(focus, []))]
        while stack:
            key, level = stack.pop()
            again = key in shown
            lines.append(f"{'   ' * level}{arrow} {_line(nodes[key])}"
                         f"{'  (see above)' if again else ''}")
            if not again:
                shown.add(key)
                stack += [(other, level + 1) for other in reversed(links.get(key, []))]
    if graph.truncated:
        lines.append(f"(stopped at {len(graph.nodes)} nodes; lower --depth to see less)")
    return "\n".join(lines)


def _line(node: Node) -> str:
    if node.kind == "file":
        return f"{node.uri} v{node.version}"
    if node.kind == "more":
        return node.label
    trashed = ", in the trash" if node.deleted else ""
    return f"{node.label}  {node.run_id}  ({node.status}{trashed})"
