"""The lineage graph walked from a real catalog: chains, fan-outs, the trash and the bounds."""

from __future__ import annotations

from pathlib import Path

import pytest

import tracker
from tracker import lineage_walk
from tracker.lineage_walk import LineageGraph


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture
def chain(catalog: tracker.Catalog, tmp_path: Path) -> dict[str, str]:
    """raw.csv -> prepare -> clean.csv -> train -> model.pkl -> evaluate: name -> run id."""
    raw = _write(tmp_path / "raw.csv", "a\n1\n")
    with catalog.start_run("prepare") as prepare:
        prepare.log_input(raw)
        prepare.log_output(_write(tmp_path / "clean.csv", "a\n1\n2\n"))
    with catalog.start_run("train") as train:
        train.log_input(tmp_path / "clean.csv")
        train.log_output(_write(tmp_path / "model.pkl", "weights"))
    with catalog.start_run("evaluate") as evaluate:
        evaluate.log_input(tmp_path / "model.pkl")
    return {"prepare": prepare.id, "train": train.id, "evaluate": evaluate.id}


def _names(graph: LineageGraph) -> list[str]:
    return sorted(node.label for node in graph.nodes)


def _edges(graph: LineageGraph) -> set[tuple[str, str, str]]:
    labels = {node.key: node.label for node in graph.nodes}
    return {(labels[e.source], e.verb, labels[e.target]) for e in graph.edges}


def test_the_graph_of_a_chain_has_runs_files_and_read_wrote_edges(
        catalog: tracker.Catalog, chain: dict[str, str]) -> None:
    graph = catalog.lineage_graph(chain["train"])

    assert graph.focus == chain["train"] and not graph.truncated
    assert _names(graph) == ["clean.csv v1", "evaluate", "model.pkl v1", "prepare",
                             "raw.csv v1", "train"]
    assert _edges(graph) == {("raw.csv v1", "read", "prepare"),
                             ("prepare", "wrote", "clean.csv v1"),
                             ("clean.csv v1", "read", "train"),
                             ("train", "wrote", "model.pkl v1"),
                             ("model.pkl v1", "read", "evaluate")}
    runs = {node.label: node for node in graph.nodes if node.kind == "run"}
    assert [name for name, node in runs.items() if node.focus] == ["train"]
    assert runs["prepare"].run_id == chain["prepare"] and runs["prepare"].status == "completed"
    files = [node for node in graph.nodes if node.kind == "file"]
    assert all(node.run_id is None and node.uri and node.version == 1 for node in files)


def test_depth_counts_runs_each_way(catalog: tracker.Catalog, chain: dict[str, str]) -> None:
    near = catalog.lineage_graph(chain["evaluate"], depth=1)
    assert _names(near) == ["evaluate", "model.pkl v1", "train"]
    two = _names(catalog.lineage_graph(chain["evaluate"], depth=2))
    assert "prepare" in two and "raw.csv v1" not in two  # the last run's inputs: one more
    assert "raw.csv v1" in _names(catalog.lineage_graph(chain["evaluate"], depth=3))
    with pytest.raises(tracker.ArgumentError, match="depth must be 1 or more"):
        catalog.lineage_graph(chain["evaluate"], depth=0)


def test_a_hub_file_shows_a_few_readers_and_counts_the_rest(
        catalog: tracker.Catalog, tmp_path: Path) -> None:
    hub = tmp_path / "hub.parquet"
    with catalog.start_run("publish") as publish:
        publish.log_output(_write(hub, "shared"))
    readers = []
    for index in range(lineage_walk.FANOUT + 9):
        with catalog.start_run(f"reader-{index}") as reader:
            reader.log_input(hub)
        readers.append(reader.id)

    graph = catalog.lineage_graph(publish.id)

    drawn = [node for node in graph.nodes if node.kind == "run" and not node.focus]
    assert len(drawn) == lineage_walk.FANOUT
    assert {node.run_id for node in drawn} == set(readers[-lineage_walk.FANOUT:])  # the newest
    more = [node for node in graph.nodes if node.kind == "more"]
    assert [node.label for node in more] == ["+9 more runs"]
    assert ("hub.parquet v1", "read", "+9 more runs") in _edges(graph)
    # From one reader upstream, the hub is one file and its producer one run: no fan-out.
    assert _names(catalog.lineage_graph(readers[0])) == ["hub.parquet v1", "publish",
                                                        "reader-0"]


def test_a_run_with_many_files_shows_a_few_and_counts_the_rest(
        catalog: tracker.Catalog, tmp_path: Path) -> None:
    with catalog.start_run("shards") as run:
        for index in range(lineage_walk.FANOUT + 1):
            run.log_output(_write(tmp_path / f"shard-{index:02d}.bin", str(index)))
    graph = catalog.lineage_graph(run.id)
    assert sum(node.kind == "file" for node in graph.nodes) == lineage_walk.FANOUT
    assert ("shards", "wrote", "+1 more file") in _edges(graph)


def test_trashed_runs_are_hidden_unless_asked_but_a_trashed_focus_shows(
        catalog: tracker.Catalog, chain: dict[str, str]) -> None:
    catalog.delete_run(chain["evaluate"])
    catalog.delete_run(chain["prepare"])

    graph = catalog.lineage_graph(chain["train"])
    assert _names(graph) == ["clean.csv v1", "model.pkl v1", "train"]
    everything = catalog.lineage_graph(chain["train"], include_deleted=True)
    assert {"prepare", "evaluate", "raw.csv v1"} <= set(_names(everything))
    assert all(node.deleted == (node.label in ("prepare", "evaluate"))
               for node in everything.nodes)
    trashed = catalog.lineage_graph(chain["evaluate"])
    assert [node.label for node in trashed.nodes if node.focus] == ["evaluate"]
    assert "train" in _names(trashed)


def test_the_graph_stops_growing_at_max_nodes(catalog: tracker.Catalog, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    previous = _write(tmp_path / "step-0.txt", "0")
    ids = []
    for index in range(1, 8):
        with catalog.start_run(f"step-{index}") as run:
            run.log_input(previous)
            previous = _write(tmp_path / f"step-{index}.txt", str(index))
            run.log_output(previous)
        ids.append(run.id)
    assert not catalog.lineage_graph(ids[0], depth=20).truncated
    monkeypatch.setattr(lineage_walk, "MAX_NODES", 5)

    graph = catalog.lineage_graph(ids[0], depth=20)

    assert graph.truncated and len(graph.nodes) == 5
    keys = {node.key for node in graph.nodes}
    assert all(edge.source in keys and edge.target in keys for edge in graph.edges)


def test_a_run_that_reads_what_it_wrote_is_not_its_own_neighbour(
        catalog: tracker.Catalog, tmp_path: Path) -> None:
    cache = _write(tmp_path / "cache.json", "{}")
    with catalog.start_run("loop") as run:
        run.log_output(cache)
        run.log_input(cache)
    graph = catalog.lineage_graph(run.id)
    assert sum(node.kind == "run" for node in graph.nodes) == 1


def test_the_module_function_reads_the_default_catalog(chain: dict[str, str],
                                                       catalog: tracker.Catalog) -> None:
    tracker.use_catalog(catalog)
    graph = tracker.lineage_graph(chain["train"][-8:], depth=1)
    assert graph.focus == chain["train"]
    assert _names(graph) == ["clean.csv v1", "evaluate", "model.pkl v1", "prepare", "train"]
    assert graph._repr_svg_() == graph.svg()
    with pytest.raises(tracker.RunNotFoundError):
        tracker.lineage_graph("zzzzzzzz")
