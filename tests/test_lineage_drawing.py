"""The lineage picture: a layout whose edges all point right, well-formed escaped SVG, a text
tree; on graphs made by hand and on a real catalog with hostile names."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import tracker
from tracker import lineage_drawing
from tracker.lineage_walk import Edge, LineageGraph, Node

SVG = "{http://www.w3.org/2000/svg}"
SCRIPT = "<script>alert(1)</script>"
IMG = '<img src=x onerror="alert(2)">'


def _graph(edges: list[tuple[str, str]], *, focus: str = "f") -> LineageGraph:
    keys = list(dict.fromkeys([focus, *(key for edge in edges for key in edge)]))
    nodes = tuple(Node(f"run:{key}" if key.startswith(("f", "r")) else f"file:{key}",
                       "run" if key.startswith(("f", "r")) else "file", key, key,
                       run_id=key if key.startswith(("f", "r")) else None,
                       status="completed", focus=key == focus) for key in keys)
    by_label = {node.label: node.key for node in nodes}
    return LineageGraph(focus, nodes, tuple(Edge(by_label[a], by_label[b], "read")
                                            for a, b in edges), 3, False)


def test_layers_point_every_edge_right_and_pull_raw_inputs_next_to_their_reader() -> None:
    # r1 wrote a and b; r2 read a, wrote c; f read b and c and raw; f wrote out.
    graph = _graph([("r1", "a"), ("r1", "b"), ("a", "r2"), ("r2", "c"), ("b", "f"), ("c", "f"),
                    ("raw", "f"), ("f", "out")])
    placed = lineage_drawing.layout(graph)
    layer = {key.split(":")[1]: at.layer for key, at in placed.items()}
    assert all(layer[a] < layer[b] for a, b in [("r1", "a"), ("a", "r2"), ("r2", "c"),
                                                  ("c", "f"), ("b", "f"), ("f", "out")])
    assert layer["raw"] == layer["f"] - 1  # not at the far left with r1
    rows = {(at.layer, at.row) for at in placed.values()}
    assert len(rows) == len(placed)  # no two nodes on one spot


def test_a_cycle_is_drawn_without_looping() -> None:
    graph = _graph([("f", "x"), ("x", "r"), ("r", "y"), ("y", "f")])
    placed = lineage_drawing.layout(graph)
    assert len(placed) == 4
    ET.fromstring(graph.svg())


def test_barycentre_ordering_uncrosses_two_parallel_chains() -> None:
    # In the walk's order, b1 is above b2 and r1 above r2, but r1 wrote b2 and r2 wrote b1.
    graph = _graph([("b1", "f"), ("b2", "f"), ("r1", "b2"), ("r2", "b1")])
    placed = lineage_drawing.layout(graph)
    row = {key.split(":")[1]: at.row for key, at in placed.items()}
    assert (row["r1"] < row["r2"]) == (row["b2"] < row["b1"])


@pytest.fixture
def hostile(catalog: tracker.Catalog, tmp_path: Path) -> tuple[str, str, Path]:
    """A run named with markup that wrote a file named with markup, read by a second run."""
    path = tmp_path / f"{IMG} & co.csv"
    path.write_text("1")
    with catalog.start_run(SCRIPT) as writer:
        writer.log_output(path)
    with catalog.start_run("reader ]]> & \"quoted\"") as reader:
        reader.log_input(path)
    return writer.id, reader.id, path


def test_the_svg_is_well_formed_escaped_and_carries_run_ids(
        catalog: tracker.Catalog, hostile: tuple[str, str, Path]) -> None:
    writer, reader, path = hostile
    graph = catalog.lineage_graph(reader)
    text = graph.svg()

    root = ET.fromstring(text)  # well-formed XML, whatever the names
    assert "<script" not in text and "<img" not in text
    groups = {g.get("data-run"): g for g in root.iter(f"{SVG}g") if g.get("data-run")}
    assert set(groups) == {writer, reader}
    assert "tl-focus" in groups[reader].get("class", "")
    assert "tl-focus" not in groups[writer].get("class", "")
    titles = [t.text or "" for t in root.iter(f"{SVG}title")]
    assert any(title.startswith(SCRIPT) for title in titles)  # whole, unescaped once parsed
    assert any(title.startswith(str(path)) for title in titles)
    file_groups = [g for g in root.iter(f"{SVG}g") if "tl-file" in g.get("class", "")]
    assert len(file_groups) == 1 and file_groups[0].get("data-run") is None
    assert len(list(root.iter(f"{SVG}path"))) >= 2  # two edges (and the arrow head)


def test_a_run_id_with_quotes_stays_inside_its_attribute() -> None:
    """A PostgreSQL catalog takes any run id a writer inserts; one closing the attribute it is
    drawn in would have added an event handler to the widget's picture."""
    focus = 'f" onmouseover="alert(1)'
    root = ET.fromstring(lineage_drawing.svg(_graph([("r1", focus)], focus=focus)))
    assert root.get("aria-label") == f"lineage of run {focus}"
    assert not [name for element in root.iter() for name in element.attrib
                if name.lower().startswith("on")]


def test_standalone_colours_are_fixed_and_the_widget_s_follow_the_theme(
        catalog: tracker.Catalog, hostile: tuple[str, str, Path]) -> None:
    graph = catalog.lineage_graph(hostile[1])
    standalone = graph.svg()
    themed = lineage_drawing.svg(graph, themed=True)
    assert "var(" not in standalone and 'fill="#ffffff"' in standalone  # a white background
    assert "var(--jp-ui-font-color1" in themed and 'fill="#ffffff"' not in themed
    style = ET.fromstring(themed).find(f"{SVG}style")
    assert style is not None and style.text
    rules = [rule.strip() for rule in style.text.split("}") if rule.strip()]
    assert all(part.strip().startswith("svg.tracker-lineage ")
               for rule in rules for part in rule.split("{")[0].split(","))


def test_long_labels_are_cut_in_the_picture_and_whole_in_the_tooltip(
        catalog: tracker.Catalog) -> None:
    name = "a-very-long-run-name-that-goes-on-and-on"
    with catalog.start_run(name) as run:
        pass
    root = ET.fromstring(catalog.lineage_graph(run.id).svg())
    texts = [t.text or "" for t in root.iter(f"{SVG}text")]
    assert name not in texts and any(t.endswith("…") and name.startswith(t[:-1]) for t in texts)
    assert any((t.text or "").startswith(name) for t in root.iter(f"{SVG}title"))


def test_the_text_tree_shows_upstream_and_downstream(
        catalog: tracker.Catalog, hostile: tuple[str, str, Path]) -> None:
    writer, reader, path = hostile
    lines = catalog.lineage_graph(writer).text().splitlines()
    assert lines == [f"{SCRIPT}  {writer}  (completed)",
                     f"   -> {path} v1",
                     f"      -> reader ]]> & \"quoted\"  {reader}  (completed)"]
