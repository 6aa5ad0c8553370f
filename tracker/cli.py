"""The ``tracker`` command line: list, show, delete, restore, purge, move and query runs.

This module parses arguments, calls the library and formats what it returns (the text forms are
:mod:`tracker.terminal_text` and :mod:`tracker.run_text`); it holds no SQL and no logic of its own,
and the library never imports it. Errors become one line on stderr
(``tracker: error: ...``) and exit status 1; usage errors exit 2, as argparse does.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import json
import os
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from itertools import chain, zip_longest
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tracker import (
    __version__,
    _ids,
    admin_command,
    content_commands,
    diff_commands,
    lineage_command,
    models,
    profile,
    sync_command,
)
from tracker.command_options import add_format, fail, non_negative, open_catalog
from tracker.errors import ArgumentError, TrackerError, TrackerWarning
from tracker.run_text import run_text
from tracker.terminal_text import (
    HEADERS,
    WHOLE,
    duration_text,
    frame_table,
    local_time,
    plain,
    plural,
    write_frame,
)

if TYPE_CHECKING:
    import pandas as pd

    from tracker.catalog import Catalog

__all__ = ["build_parser", "main"]

_ERRORS = (TrackerError, ValueError, OSError)
_DEFAULT_COLUMNS = ("id", "name", "status", "started_at", "duration", "notebook_name")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``tracker`` command line; returns the exit status (0 ok, 1 error, 2 usage)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        with _warnings_as_lines():
            return args.handler(args)
    except SystemExit as exc:  # argparse's --help (0) and usage errors (2)
        return exc.code if isinstance(exc.code, int) else 0
    except BrokenPipeError:  # `tracker runs | head`: the reader left; not an error worth a line
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except _ERRORS as exc:
        lines = str(exc).strip().splitlines()
        return fail(lines[0] if lines else type(exc).__name__)
    except KeyboardInterrupt:
        return 130


@contextlib.contextmanager
def _warnings_as_lines() -> Iterator[None]:
    """tracker's warnings (a filter naming a key no run has...) as ``tracker: warning:`` lines
    on stderr, not Python's file:line form."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", TrackerWarning)
        try:
            yield
        finally:
            for warning in caught:
                if issubclass(warning.category, TrackerWarning):
                    print(f"tracker: warning: {warning.message}", file=sys.stderr)
                else:
                    warnings.showwarning(warning.message, warning.category, warning.filename,
                                         warning.lineno)


# -- the parser ---------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command (also read by the docs tests)."""
    # --catalog is accepted before or after the command; SUPPRESS keeps the subparser's
    # default from overwriting a value given before the command.
    shared = argparse.ArgumentParser(add_help=False)
    shared.add_argument("--catalog", metavar="PATH", default=argparse.SUPPRESS,
                        help="the catalog file (default: $TRACKER_CATALOG, else "
                             "~/.tracker/catalog.duckdb)")
    parser = argparse.ArgumentParser(
        prog="tracker", parents=[shared], formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Browse and manage the runs tracker recorded.",
        epilog="examples:\n  tracker runs --where \"status = 'failed'\"\n  tracker show 01m7zw\n"
               "  tracker enable\n\n'tracker COMMAND --help' describes each command.")
    parser.add_argument("--version", action="version", version=f"tracker {__version__}")
    commands = _Commands(parser.add_subparsers(title="commands", metavar="COMMAND",
                                               required=True), shared)
    _add_reading_commands(commands)
    _add_trash_commands(commands)
    _add_moving_commands(commands)
    content_commands.add_commands(commands)
    lineage_command.add_command(commands)
    diff_commands.add_commands(commands)
    admin_command.add_command(commands)
    sync_command.add_command(commands)
    return parser


class _Commands:
    """Adds sub-commands that share the global options, each with its help and examples."""

    def __init__(self, subparsers: Any, shared: argparse.ArgumentParser) -> None:
        self.subparsers = subparsers
        self.shared = shared

    def add(self, name: str, handler: Callable[[argparse.Namespace], int], help_text: str,
            *examples: str) -> argparse.ArgumentParser:
        """A sub-command parser whose epilog lists the examples; ``handler`` runs it."""
        sub = self.subparsers.add_parser(
            name, parents=[self.shared], help=help_text, description=help_text,
            epilog="examples:\n" + "\n".join(f"  {line}" for line in examples),
            formatter_class=argparse.RawDescriptionHelpFormatter)
        sub.set_defaults(handler=handler, parser=sub)
        return sub


def _add_reading_commands(commands: _Commands) -> None:
    runs = commands.add(
        "runs", _cmd_runs, "list runs as a table, CSV or JSON", "tracker runs",
        "tracker runs --where \"params.lr > 0.01 and status = 'completed'\" "
        "--order-by \"metrics.acc DESC\"", "tracker runs --deleted",
        "tracker runs --columns id,name,metrics.acc --limit 0 --format csv > runs.csv")
    runs.add_argument("--where", metavar="FILTER",
                      help="filter, e.g. \"params.lr > 0.01 and status = 'completed'\"")
    runs.add_argument("--limit", metavar="N", type=non_negative, default=20,
                      help="show at most N runs (default 20; 0 shows all)")
    runs.add_argument("--order-by", metavar="KEY", nargs="+", action="extend",
                      help="sort keys such as \"metrics.acc DESC\" (default: newest first)")
    trash = runs.add_mutually_exclusive_group()
    trash.add_argument("--all", action="store_true", help="include deleted runs")
    trash.add_argument("--deleted", action="store_true", help="only deleted runs (the trash)")
    runs.add_argument("--columns", metavar="A,B,...", type=_column_list,
                      help="columns to show, e.g. id,name,params.lr,metrics.acc")
    add_format(runs, "table", "csv", "json")
    show = commands.add("show", _cmd_show, "show everything recorded about one run",
                        "tracker show 01m7zwkkx6hq", "tracker show 01m7zwkkx6hq --format json")
    show.add_argument("ref", metavar="REF",
                      help="run id or short id (a unique prefix of 4+ characters of either), "
                           "or tracker:// key")
    show.add_argument("--all", action="store_true",
                      help="include deleted runs upstream and downstream of it")
    add_format(show, "text", "json")
    sql = commands.add("sql", _cmd_sql, "run a read-only SQL query on the catalog",
                       "tracker sql \"SELECT status, count(*) FROM runs GROUP BY status\"",
                       "tracker sql \"SELECT * FROM metrics\" --format csv")
    sql.add_argument("query", metavar="QUERY", help="a read-only SQL query over the catalog")
    add_format(sql, "table", "csv", "json")


def _add_trash_commands(commands: _Commands) -> None:
    rm = commands.add("rm", _cmd_rm, "move runs to the trash (undo with 'tracker restore')",
                      "tracker rm 01m7zwkkx6hq", "tracker rm --where \"status = 'failed'\" --yes")
    rm.add_argument("refs", metavar="REF", nargs="*", help="runs to delete")
    rm.add_argument("--where", metavar="FILTER", help="delete every run the filter matches")
    _add_yes(rm)
    restore = commands.add("restore", _cmd_restore, "bring deleted runs back from the trash",
                           "tracker restore 01m7zwkkx6hq 01m7zwmb3k2e")
    restore.add_argument("refs", metavar="REF", nargs="+", help="deleted runs to bring back")
    _add_status_command(commands)
    purge = commands.add("purge", _cmd_purge, "delete trashed runs for good",
                         "tracker purge --older-than 30d", "tracker purge --yes")
    purge.add_argument("--older-than", metavar="AGE", type=_age,
                       help="only runs deleted longer ago than AGE (30d, 12h, 90m; default: all)")
    purge.add_argument("--store", action="store_true",
                       help="also remove from a shared TRACKER_STORE the contents no catalog "
                            "marks, stored over 7 days ago")
    _add_yes(purge)


def _add_status_command(commands: _Commands) -> None:
    status = commands.add(
        "status", _cmd_status, "set a run's status by hand (kept in its history)",
        "tracker status 01m7zwkkx6hq completed", "tracker status 01m7zwkkx6hq running --force")
    status.add_argument("ref", metavar="REF", help="the run")
    status.add_argument("status", metavar="STATUS", choices=models.STATUSES,
                        help=f"one of {', '.join(models.STATUSES)}")
    status.add_argument("--force", action="store_true",
                        help="skip the rules (a finished run never runs again; a running run "
                             "whose process is alive is ended there)")


def _add_moving_commands(commands: _Commands) -> None:
    export = commands.add("export", _cmd_export, "write a run to a YAML or JSON file",
                          "tracker export 01m7zwkkx6hq run.yaml")
    export.add_argument("ref", metavar="REF", help="the run to export")
    export.add_argument("file", metavar="FILE", help="where to write it: .yaml, .yml or .json")
    export.add_argument("--contents", action="store_true",
                        help="also copy the run's kept contents into FILE.contents/")
    export.add_argument("--force", action="store_true",
                        help="replace FILE if it exists (never a catalog or a DuckDB file)")
    imported = commands.add("import", _cmd_import, "add a run written by 'tracker export'",
                            "tracker import run.yaml",
                            "tracker --catalog team.duckdb import run.json")
    imported.add_argument("file", metavar="FILE", help="a descriptor written by 'tracker export'")
    push = commands.add("push", _cmd_push, "copy runs to another catalog, such as a team's "
                        "(again: adds nothing, brings changed runs up to date)",
                        "tracker push --to postgresql://ann@db.example/runs",
                        "tracker push --to postgresql://ann@db.example/runs --where "
                        "\"project = 'nlp'\"")
    push.add_argument("--to", metavar="URL", required=True,
                      help="the target catalog: a postgresql:// URL or a catalog file")
    pull = commands.add("pull", _cmd_pull, "copy runs from another catalog into this one",
                        "tracker pull --from postgresql://ann@db.example/runs --where "
                        "\"params.lr > 0.01\"")
    pull.add_argument("--from", dest="source", metavar="URL", required=True,
                      help="the catalog to copy from: a postgresql:// URL or a catalog file")
    for command in (push, pull):
        command.add_argument("--where", metavar="FILTER",
                             help="only the runs this filter matches (trash included)")
    mlflow = commands.add("import-mlflow", _cmd_import_mlflow,
                          "add the runs of an MLflow store (again: adds only new runs)",
                          "tracker import-mlflow ./mlruns",
                          "tracker import-mlflow sqlite:///mlflow.db --mlflow-python "
                          "~/venvs/ml/bin/python")
    mlflow.add_argument("store", metavar="STORE", help="an mlruns folder, an MLflow SQLite file "
                        "(sqlite:///mlflow.db) or a tracking server URL")
    mlflow.add_argument("--mlflow-python", metavar="PATH", help="the python of an environment "
                        "with MLflow, which reads the store (default: tracker's own)")
    tag = commands.add("tag", _cmd_tag, "set or remove tags of a run (notes such as source=manual)",
                       "tracker tag 01m7zwkkx6hq source=manual stage=final",
                       "tracker tag 01m7zwkkx6hq --delete stage")
    tag.add_argument("ref", metavar="REF", help="run id, unique id prefix or tracker:// key")
    tag.add_argument("tags", metavar="KEY=VALUE", nargs="*", type=_tag_pair,
                     help="a tag to set; setting a key again replaces its value")
    tag.add_argument("--delete", metavar="KEY", nargs="+", action="extend", default=[],
                     help="tags to remove")
    for name, handler, help_text in (
            ("enable", _cmd_enable, "load tracker in every Jupyter kernel of an IPython profile"),
            ("disable", _cmd_disable, "stop loading tracker in an IPython profile's kernels")):
        sub = commands.add(name, handler, help_text, f"tracker {name}",
                           f"tracker {name} --profile research")
        sub.add_argument("--profile", metavar="NAME", default="default",
                         help="the IPython profile (default: default)")


def _add_yes(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")


def _column_list(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError("give at least one column name")
    return names


def _tag_pair(text: str) -> tuple[str, str]:
    key, equals, value = text.partition("=")
    if not equals or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE such as source=manual, not {text!r}")
    return key, value


def _age(text: str) -> str:
    from tracker.manage import parse_age

    try:
        parse_age(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


# -- runs -----------------------------------------------------------------------------------


def _cmd_runs(args: argparse.Namespace) -> int:
    catalog = open_catalog(args)
    frame = catalog.runs(args.where, order_by=args.order_by, limit=args.limit or None,
                         include_deleted=args.all, deleted_only=args.deleted)
    table = args.format == "table"
    columns = _chosen_columns(frame, args.columns, table=table)
    shown = frame.reindex(columns=columns)
    if not table:
        write_frame(shown, args.format)
        return 0
    formatters: dict[str, Callable[[Any], str]] = {"id": _ids.short_id,  # what to copy
                                                   "started_at": local_time,
                                                   "duration": duration_text}
    # The params and metrics that differ between the shown runs go, least telling first, when
    # they do not fit the terminal; the line below the table counts them.
    optional = _varying(frame) if args.columns is None else []
    dropped: list[str] = []
    if len(shown):
        text, dropped = frame_table(shown, formatters, droppable=optional)
        print(text)
    total = _total(catalog, args, shown=len(shown))
    more = f"; +{plural(len(dropped), 'more column')} (--columns)" if dropped else ""
    print(f"{len(shown)} of {plural(total, 'run')}{more}")
    sync_command.say_waiting(catalog)
    return 0


def _chosen_columns(frame: pd.DataFrame, requested: list[str] | None, *,
                    table: bool) -> list[str]:
    """The requested columns (checked), else every column (csv, json) or the readable default.

    The default leaves out columns empty on every shown run (no notebook: a script's runs), and
    adds the params and metrics that differ between the shown runs.
    """
    if requested is None and not table:
        return list(frame.columns)
    if requested is None:
        shown = [c for c in _DEFAULT_COLUMNS if frame[c].notna().any() or c in WHOLE]
        varying = set(_varying(frame))
        return [*shown, *(c for c in frame.columns if c in varying)]
    aliases = {header: column for column, header in HEADERS.items()}
    chosen = [aliases.get(name, name) for name in requested]
    for name in chosen:
        # A params/metrics key no run on this page has is an empty column, not an error.
        if name not in frame.columns and not name.startswith(("params.", "metrics.", "tags.")):
            known = ", ".join(c for c in frame.columns if "." not in c)
            raise ArgumentError(f"unknown column {name!r}; use params.<key>, metrics.<key>, "
                                f"tags.<key> or one of: {known}")
    return chosen


def _varying(frame: pd.DataFrame) -> list[str]:
    """The params/metrics columns whose values differ between the shown runs, most telling
    first: params (tags count as params: both describe the run) and metrics in turn, each in
    the frame's order."""
    params = [c for c in frame.columns if c.startswith(("params.", "tags.")) and
              _differs(frame[c])]
    metrics = [c for c in frame.columns if c.startswith("metrics.") and _differs(frame[c])]
    return [c for c in chain.from_iterable(zip_longest(params, metrics)) if c is not None]


def _differs(column: pd.Series) -> bool:
    """Values differ between runs; a lone run shows whatever it has."""
    if len(column) == 1:
        return bool(column.notna().iloc[0])
    return column.astype(str).nunique(dropna=False) > 1


def _total(catalog: Catalog, args: argparse.Namespace, *, shown: int) -> int:
    """How many runs the filter matches in all: counted only when the page is full."""
    if not args.limit or shown < args.limit:
        return shown

    def count(*, include_deleted: bool) -> int:
        frame = catalog.count_runs(args.where, by=None, include_deleted=include_deleted)
        return int(frame["count"].iloc[0])

    if args.deleted:
        return count(include_deleted=True) - count(include_deleted=False)
    return count(include_deleted=args.all)


# -- one run --------------------------------------------------------------------------------


def _cmd_show(args: argparse.Namespace) -> int:
    catalog = open_catalog(args)
    info = catalog.get_run(args.ref)
    if args.format == "json":
        print(json.dumps(plain(dataclasses.asdict(info)), indent=2, ensure_ascii=False))
        return 0
    lineage = catalog.lineage(info.id, include_deleted=args.all) if info.artifacts else None
    print("\n".join(run_text(info, lineage)))
    return 0


# -- changing runs -----------------------------------------------------------------------------


def _cmd_tag(args: argparse.Namespace) -> int:
    if not args.tags and not args.delete:
        args.parser.error("give KEY=VALUE tags to set or --delete KEY")
    catalog = open_catalog(args)
    given = dict(args.tags)
    if given:
        catalog.set_tags(given, run=args.ref)
    for key in args.delete:
        catalog.delete_tag(key, run=args.ref)
    info = catalog.get_run(args.ref)
    shown = ", ".join(f"{key}={value}" for key, value in info.tags.items()) or "none"
    print(f"tags of {info.id}: {shown}")
    return 0


def _cmd_rm(args: argparse.Namespace) -> int:
    if bool(args.refs) == bool(args.where):
        args.parser.error("give run ids or --where FILTER (one of them)")
    catalog = open_catalog(args)
    ids = args.refs or list(catalog.runs(args.where)["id"])
    if not ids:
        print("no runs match")
        return 0
    if not _confirmed(f"delete {plural(len(ids), 'run')}", yes=args.yes):
        return 1
    deleted = catalog.delete_runs(ids=ids)
    for run_id in deleted:
        print(f"deleted {run_id}")
    print(f"restore with: tracker restore {' '.join(deleted)}")
    return 0


def _cmd_restore(args: argparse.Namespace) -> int:
    catalog = open_catalog(args)
    runs = {info.id: info for info in map(catalog.get_run, args.refs)}  # unknown refs: exit 1
    for info in runs.values():
        if info.deleted_at is None:
            print(f"{info.id} is not in the trash; nothing to restore")
    trashed = [run_id for run_id, info in runs.items() if info.deleted_at is not None]
    for run_id in catalog.restore_runs(trashed) if trashed else ():
        print(f"restored {run_id}")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    catalog = open_catalog(args)
    before = catalog.get_run(args.ref).status
    info = catalog.set_status(args.ref, args.status, force=args.force)
    print(f"{info.id} is already {info.status}" if before == info.status
          else f"{info.id}: {before} -> {info.status}")
    return 0


def _cmd_purge(args: argparse.Namespace) -> int:
    catalog = open_catalog(args)
    where = None
    if args.older_than is not None:
        from tracker.manage import parse_age

        cutoff = dt.datetime.now(dt.timezone.utc) - dt.timedelta(
            seconds=parse_age(args.older_than))
        where = f"deleted_at <= '{cutoff.isoformat()}'"
    ids = list(catalog.runs(where, deleted_only=True)["id"])
    if not ids and not args.store:
        age = f" deleted more than {args.older_than} ago" if args.older_than else ""
        print(f"no runs in the trash{age}")
        return 0
    if not _confirmed(f"purge {plural(len(ids), 'run')} for good", yes=args.yes):
        return 1
    removed = catalog.purge(args.older_than, ids=ids, store=args.store)
    runs, blobs = plural(removed["runs"], "run"), plural(removed["blobs"], "stored file")
    shared = f", {plural(removed['shared'], 'content')} from the shared store" \
        if args.store else ""
    print(f"purged {runs}, {blobs}{shared}")
    return 0


def _confirmed(action: str, *, yes: bool) -> bool:
    """Ask on a terminal; without one, refuse unless --yes was given."""
    if yes:
        return True
    if not sys.stdin.isatty():
        fail(f"refusing to {action} without confirmation (stdin is not a terminal); "
             "pass --yes")
        return False
    print(f"{action[0].upper()}{action[1:]}? [y/N] ", end="", file=sys.stderr, flush=True)
    if sys.stdin.readline().strip().lower() in ("y", "yes"):
        return True
    print("Aborted.", file=sys.stderr)
    return False


# -- moving runs and the profile ---------------------------------------------------------------


def _cmd_export(args: argparse.Namespace) -> int:
    if Path(args.file).suffix.lower() not in (".yaml", ".yml", ".json"):
        args.parser.error(f"FILE must end in .yaml, .yml or .json, not {args.file!r}")
    path = open_catalog(args).export_run(args.ref, args.file, overwrite=args.force,
                                         contents=args.contents)
    print(f"exported {args.ref} to {path}")
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    run_id = open_catalog(args).import_run(args.file)
    print(f"imported {run_id}")
    return 0


def _cmd_push(args: argparse.Namespace) -> int:
    report = open_catalog(args).push(args.to, where=args.where)
    print(report)
    return 1 if report.skipped else 0


def _cmd_pull(args: argparse.Namespace) -> int:
    report = open_catalog(args).pull(args.source, where=args.where)
    print(report)
    return 1 if report.skipped else 0


def _cmd_import_mlflow(args: argparse.Namespace) -> int:
    print(open_catalog(args).import_mlflow(args.store, mlflow_python=args.mlflow_python))
    return 0


def _cmd_enable(args: argparse.Namespace) -> int:
    path, changed = profile.enable(args.profile)
    if changed:
        print(f"enabled: kernels of IPython profile {args.profile!r} load tracker ({path})")
    else:
        print(f"already enabled in {path}")
    return 0


def _cmd_disable(args: argparse.Namespace) -> int:
    path, changed = profile.disable(args.profile)
    print(f"disabled: removed tracker's block from {path}" if changed
          else f"not enabled in {path}; nothing changed")
    return 0


def _cmd_sql(args: argparse.Namespace) -> int:
    frame = open_catalog(args).sql(args.query)
    if args.format != "table":
        write_frame(frame, args.format)
        return 0
    if len(frame):  # the query's own column names: nothing renamed, nothing left out
        print(frame_table(frame, {}, short_headers=False)[0])
    print(plural(len(frame), "row"))
    return 0
