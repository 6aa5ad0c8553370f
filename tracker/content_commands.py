"""The ``tracker get``, ``versions``, ``notebook`` and ``du`` commands: kept file contents on the
command line. Arguments and output only; the work is :mod:`tracker.retrieval`'s, and
:mod:`tracker.cli` adds these commands with :func:`add_commands`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from tracker.command_options import Commands, add_format, fail, open_catalog, positive
from tracker.terminal_text import frame_table, pairs, size_text, write_frame

__all__ = ["add_commands"]


def add_commands(commands: Commands) -> None:
    """Add ``get``, ``versions``, ``notebook`` and ``du`` to the command line."""
    get = commands.add("get", _cmd_get, "write the content a run read or wrote, as it was",
                       "tracker get 01m7zwkkx6hq results/model.pkl -o model-v3.pkl",
                       "tracker get 01m7zwkkx6hq data.csv --version 2")
    get.add_argument("ref", metavar="RUN", help="the run that read or wrote the file")
    get.add_argument("path", metavar="PATH", help="the file's path (or URI) as recorded")
    get.add_argument("-o", "--output", metavar="DEST",
                     help="where to write it (default: a file of the same name here)")
    get.add_argument("--version", metavar="N", type=positive,
                     help="that version of the file (one the run read or wrote)")
    get.add_argument("--force", action="store_true", help="replace DEST if it exists")
    versions = commands.add("versions", _cmd_versions, "list the recorded versions of a file",
                            "tracker versions results/model.pkl")
    versions.add_argument("path", metavar="PATH", help="the file's path (or URI)")
    add_format(versions, "table", "csv", "json")
    notebook = commands.add("notebook", _cmd_notebook, "write the notebook stored with a run",
                            "tracker notebook 01m7zwkkx6hq -o ran.ipynb")
    notebook.add_argument("ref", metavar="RUN", help="the run")
    notebook.add_argument("-o", "--output", metavar="DEST",
                          help="where to write it (default: the notebook's name here)")
    notebook.add_argument("--force", action="store_true", help="replace DEST if it exists")
    commands.add("du", _cmd_du, "show the disk space kept file contents use", "tracker du")


def _cmd_get(args: argparse.Namespace) -> int:
    from tracker import retrieval

    kept = retrieval.get_artifact(open_catalog(args), args.path, run=args.ref, version=args.version)
    written = _restore(kept, args.output, args.force)
    print(f"{written} (version {kept.version} of {kept.uri}, {size_text(kept.size)})")
    return 0


def _restore(kept: Any, output: str | None, force: bool) -> Path:
    dest = Path(output) if output else Path(Path(kept.uri).name)
    written: Path = kept.restore(dest, overwrite=force)
    return written


def _cmd_versions(args: argparse.Namespace) -> int:
    from tracker import retrieval

    frame = retrieval.versions(open_catalog(args), args.path)
    if args.format != "table":
        write_frame(frame, args.format)
        return 0
    if frame.empty:
        return fail(f"no recorded version of {args.path}")
    frame = frame.assign(runs=frame["runs"].map(lambda ids: " ".join(ids or ())))
    print(frame_table(frame, {"size": size_text})[0])
    return 0


def _cmd_notebook(args: argparse.Namespace) -> int:
    from tracker import retrieval

    kept = retrieval.run_notebook(open_catalog(args), args.ref)
    print(_restore(kept, args.output, args.force))
    return 0


def _cmd_du(args: argparse.Namespace) -> int:
    from tracker import retrieval

    usage = retrieval.disk_usage(open_catalog(args))
    print("\n".join(pairs([("store", usage["location"]),
                  ("contents", f"{usage['contents']:,} ({size_text(usage['bytes']) or '0 B'})"),
                  ("live runs", size_text(usage["live_bytes"]) or "0 B"),
                  ("trashed runs only", f"{size_text(usage['trashed_bytes']) or '0 B'} "
                                        "(tracker purge reclaims it)"),
                  ("unreferenced", size_text(usage["unreferenced_bytes"]) or "0 B")],
                 indent="")))
    return 0
