"""``tracker sync``, and the line ``tracker runs`` adds about runs not yet sent: a PostgreSQL
catalog's runs recorded on this machine while the server could not be reached wait in a local
spool (:mod:`tracker.storage.pg_recovery`) until a write, or this command, sends them."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from tracker.command_options import Commands, open_catalog
from tracker.terminal_text import plural

if TYPE_CHECKING:
    from tracker.catalog import Catalog


def add_command(commands: Commands) -> None:
    """Add ``tracker sync`` to the command line."""
    commands.add("sync", run_command,
                 "send the runs this machine recorded while the team catalog was out of reach",
                 "tracker sync", "tracker --catalog postgresql://me@db.example/team sync")


def run_command(args: argparse.Namespace) -> int:
    """Send what waits, then say what still does (a running notebook's last events)."""
    from tracker.pg_catalog import PgCatalog

    catalog = open_catalog(args)
    if not isinstance(catalog, PgCatalog):
        print(f"nothing to sync: {catalog.path} is a catalog file, written directly")
        return 0
    left = catalog.sync()
    print(f"synced with {catalog.store.shown}; "
          f"{plural(left, 'run')} of this machine still waiting (running processes send "
          "their own)" if left else f"synced with {catalog.store.shown}: nothing waiting")
    return 0


def say_waiting(catalog: Catalog) -> None:
    """On stderr, how many of this machine's runs a PostgreSQL catalog has not received yet
    (nothing for a catalog file, or when none wait)."""
    from tracker.pg_catalog import PgCatalog
    from tracker.storage import pg_recovery

    if not isinstance(catalog, PgCatalog):
        return
    left = pg_recovery.waiting(catalog.store)
    if left:
        print(f"{plural(left, 'run')} recorded on this machine not yet sent to "
              f"{catalog.store.shown} (tracker sync)", file=sys.stderr)
