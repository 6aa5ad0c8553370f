"""``tracker admin``: who sees what on a PostgreSQL catalog, from the command line.

The command line's part of :mod:`tracker.pg_admin` (:mod:`tracker.cli` adds it with
:func:`add_command`): ``init``, ``grant``, ``revoke``, ``grants`` and ``sql``, each a thin call.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from tracker.command_options import Commands

_EXAMPLES = ("tracker admin init postgresql://owner@db.example/runs",
             "tracker admin grant ann --project churn --catalog postgresql://owner@db/runs",
             "tracker admin grant analysts --project churn --read-only",
             "tracker admin revoke ann --project churn", "tracker admin grants",
             "tracker admin sql --grant ann --project churn > catalog.sql")


def add_command(commands: Commands) -> None:
    """Add ``tracker admin`` and its sub-commands to the command line."""
    admin = commands.add("admin", _missing,
                         "set up a PostgreSQL catalog and who sees which project's runs "
                         "(run as the database owner)", *_EXAMPLES)
    subs = admin.add_subparsers(title="admin commands", metavar="ACTION", required=True)
    init = _sub(subs, "init", _init, "create the catalog's tables and row-level security "
                                     "(or add them to an older catalog)")
    init.add_argument("url", metavar="URL", nargs="?",
                      help="the catalog (default: --catalog, else $TRACKER_CATALOG)")
    for name, handler, text in (("grant", _grant, "let ROLE read and write one project's runs"),
                                ("revoke", _revoke, "take back ROLE's access to a project")):
        sub = _sub(subs, name, handler, text)
        sub.add_argument("role", metavar="ROLE", help="a PostgreSQL role (a user or a group)")
        sub.add_argument("--project", required=True, metavar="P",
                         help="the project ('default' holds runs recorded with none)")
        if name == "grant":
            sub.add_argument("--read-only", action="store_true",
                             help="read the runs, but not record, change or delete them")
    _sub(subs, "grants", _grants, "list every role's projects")
    script = _sub(subs, "sql", _script, "print the SQL script that creates a catalog with "
                                        "row-level security, for a DBA to run in psql")
    script.add_argument("--grant", metavar="ROLE", action="append", default=[],
                        help="also grant ROLE the --project (repeatable)")
    script.add_argument("--project", metavar="P", help="the project of --grant")
    script.add_argument("--read-only", action="store_true", help="the --grant reads only")


def _sub(subs: Any, name: str, handler: Any, text: str) -> argparse.ArgumentParser:
    sub: argparse.ArgumentParser = subs.add_parser(name, help=text, description=text)
    sub.add_argument("--catalog", metavar="URL", default=argparse.SUPPRESS,
                     help="the catalog (default: $TRACKER_CATALOG)")
    sub.set_defaults(handler=handler)
    return sub


def _url(args: argparse.Namespace) -> str | None:
    return getattr(args, "url", None) or getattr(args, "catalog", None) or \
        os.environ.get("TRACKER_CATALOG")


def _missing(args: argparse.Namespace) -> int:  # argparse requires an ACTION first
    return 2


def _init(args: argparse.Namespace) -> int:
    from tracker import pg_admin

    print(f"catalog {pg_admin.init(_url(args)).shown} is ready, with row-level security; "
          "grant projects with: tracker admin grant ROLE --project P")
    return 0


def _grant(args: argparse.Namespace) -> int:
    from tracker import pg_admin

    given = pg_admin.grant(_url(args), args.role, args.project, read_only=args.read_only)
    print(f"{given.role} may now {_access(given.can_write)} the runs of project "
          f"{given.project!r}")
    return 0


def _revoke(args: argparse.Namespace) -> int:
    from tracker import pg_admin

    taken = pg_admin.revoke(_url(args), args.role, args.project)
    print(f"{taken.role} may no longer see the runs of project {taken.project!r}")
    return 0


def _grants(args: argparse.Namespace) -> int:
    from tracker import pg_admin

    for given in pg_admin.grants(_url(args)):
        print(f"{given.role}  {given.project}  {_access(given.can_write)}")
    return 0


def _script(args: argparse.Namespace) -> int:
    from tracker import pg_admin
    from tracker.errors import ArgumentError

    if args.grant and not args.project:
        raise ArgumentError("--grant needs --project P: the project to grant")
    print(pg_admin.script([pg_admin.Grant(role, args.project, not args.read_only)
                           for role in args.grant]), end="")
    return 0


def _access(can_write: bool) -> str:
    return "read, write" if can_write else "read"
