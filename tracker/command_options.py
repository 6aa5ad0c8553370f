"""What every command module of the ``tracker`` command line shares: the registry a command adds
itself to, the catalog a command opens, its error line, and the common options and argument
types. :mod:`tracker.cli` builds the parser from these; the library never imports this."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from tracker.catalog import Catalog

__all__ = ["Commands", "add_format", "fail", "non_negative", "non_negative_number",
           "open_catalog", "positive"]


class Commands(Protocol):
    """What :mod:`tracker.cli` offers to add a sub-command."""

    def add(self, name: str, handler: Callable[[argparse.Namespace], int], help_text: str,
            *examples: str) -> argparse.ArgumentParser: ...


def open_catalog(args: argparse.Namespace) -> Catalog:
    """The catalog ``--catalog`` names, else the default one."""
    from tracker.catalog import Catalog

    return Catalog(getattr(args, "catalog", None))


def fail(message: str) -> int:
    """Say what went wrong as one line on stderr; the exit status of a failed command."""
    print(f"tracker: error: {message}", file=sys.stderr)
    return 1


def add_format(sub: argparse.ArgumentParser, *choices: str) -> None:
    """``--format``, one of ``choices``; the first is the default."""
    sub.add_argument("--format", choices=choices, default=choices[0],
                     help=f"output format (default {choices[0]})")


def non_negative(text: str) -> int:
    """An argument type: a whole number, 0 or more."""
    return _at_least(int(text), 0)


def positive(text: str) -> int:
    """An argument type: a whole number, 1 or more."""
    return _at_least(int(text), 1)


def non_negative_number(text: str) -> float:
    """An argument type: a number (``1e-6``), 0 or more."""
    try:
        number = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, not {text!r}") from None
    if not number >= 0:  # NaN too
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {text}")
    return number


def _at_least(number: int, minimum: int) -> int:
    if number < minimum:
        raise argparse.ArgumentTypeError(f"must be {minimum} or more, not {number}")
    return number
