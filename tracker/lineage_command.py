"""``tracker lineage RUN``: the runs and files around a run, as a text tree or an SVG file.

The command line's part of the lineage picture (:mod:`tracker.cli` adds it with
:func:`add_command`); the graph is :mod:`tracker.lineage_walk`'s, the drawing
:mod:`tracker.lineage_drawing`'s. Like ``tracker get`` and ``tracker export``, it never replaces
a file unless ``--force`` says so.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tracker.command_options import Commands, open_catalog
from tracker.errors import ArgumentError
from tracker.lineage_walk import DEFAULT_DEPTH, MAX_DEPTH


def add_command(commands: Commands) -> None:
    """Add ``tracker lineage`` to the command line."""
    sub = commands.add("lineage", run_command,
                       "show the runs and files upstream and downstream of a run",
                       "tracker lineage 01m7zwkkx6hq",
                       "tracker lineage 01m7zwkkx6hq --svg lineage.svg --depth 5")
    sub.add_argument("ref", metavar="RUN", help="run id, unique id prefix or tracker:// key")
    sub.add_argument("--depth", metavar="N", type=_depth, default=DEFAULT_DEPTH,
                     help=f"runs to follow each way (default {DEFAULT_DEPTH}, at most "
                          f"{MAX_DEPTH})")
    sub.add_argument("--svg", metavar="FILE", help="write the picture to FILE instead")
    sub.add_argument("--force", action="store_true", help="replace FILE if it exists")
    sub.add_argument("--all", action="store_true", help="include deleted runs")


def run_command(args: argparse.Namespace) -> int:
    """Print the tree, or write the SVG and print where."""
    graph = open_catalog(args).lineage_graph(
        args.ref, depth=args.depth, include_deleted=args.all)
    if args.svg is None:
        print(graph.text())
        return 0
    target = Path(args.svg)
    try:
        with target.open("w" if args.force else "x", encoding="utf-8") as out:
            out.write(graph.svg())
    except FileExistsError:
        raise ArgumentError(f"{target} exists; pass --force to replace it, or give another "
                            "file") from None
    print(f"{target} ({len(graph.nodes)} nodes)")
    return 0


def _depth(text: str) -> int:
    depth = int(text)
    if not 1 <= depth <= MAX_DEPTH:
        raise argparse.ArgumentTypeError(f"must be 1 to {MAX_DEPTH}, not {depth}")
    return depth
