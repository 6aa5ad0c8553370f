"""The ``tracker diff`` and ``tracker reproduce`` commands: arguments and output only.

The work is :mod:`tracker.diffing` and :mod:`tracker.reproduction`; :mod:`tracker.cli` adds
these commands to its parser with :func:`add_commands`.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from tracker.command_options import Commands, add_format, non_negative_number, open_catalog

__all__ = ["add_commands"]


def add_commands(commands: Commands) -> None:
    """Add ``diff`` and ``reproduce`` to the CLI (``commands.add(name, handler, help, *examples)``
    makes a sub-command parser)."""
    diff = commands.add("diff", _cmd_diff, "show what differs between two runs",
                        "tracker diff 01m7zwkkx6hq 01m7zwkm3b9r",
                        "tracker diff 01m7zwkkx6hq 01m7zwkm3b9r --format json")
    diff.add_argument("a", metavar="A", help="the first run")
    diff.add_argument("b", metavar="B", help="the second run")
    add_format(diff, "text", "json")
    again = commands.add(
        "reproduce", _cmd_reproduce, "run a notebook run again and check it comes out the same",
        "tracker reproduce 01m7zwkkx6hq", "tracker reproduce 01m7zwkkx6hq --tolerance 1e-6",
        "tracker reproduce 01m7zwkkx6hq --workdir ./again --format json",
        "tracker reproduce 01m7zwkkx6hq --ignore 'logs/*' --ignore 'metrics.*_seconds'")
    again.add_argument("ref", metavar="RUN", help="the run to reproduce")
    again.add_argument("--tolerance", metavar="T", type=non_negative_number, default=0.0,
                       help="largest difference allowed between a metric's values (default 0)")
    again.add_argument("--workdir", metavar="DIR",
                       help="an empty folder to run in (default: a new temporary folder)")
    again.add_argument("--timeout", metavar="SECONDS", type=non_negative_number,
                       help="stop a cell that runs longer (default: no limit)")
    again.add_argument("--ignore", metavar="PATTERN", action="append", default=[],
                       help="an output ('logs/*.log', '*.log') or metric ('metrics.*_seconds') "
                            "that may differ: shown, but not held against the run (repeatable)")
    add_format(again, "text", "json")


def _print(report: Any, form: str) -> None:
    if form == "json":
        print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False, default=str))
    else:
        print(report)


def _cmd_diff(args: argparse.Namespace) -> int:
    _print(open_catalog(args).diff(args.a, args.b), args.format)
    return 0


def _cmd_reproduce(args: argparse.Namespace) -> int:
    """Exit status 0 only when the reproduction matched (every output identical)."""
    from tracker.reexecution import skip_iri_grammars

    skip_iri_grammars()  # this process is tracker's own
    report = open_catalog(args).reproduce(args.ref, tolerance=args.tolerance,
                                          workdir=args.workdir, timeout=args.timeout,
                                          ignore=args.ignore)
    _print(report, args.format)
    return 0 if report.ok else 1
