"""Checks of what public functions are given: a wrong type or value is an ArgumentError that
names the argument and says what it accepts, raised before any catalog is opened.

Each check returns the value it accepted, so callers validate and use in one line.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import Any

from tracker import values
from tracker.errors import ArgumentError

MAX_FILTER = 20_000  # characters: ~1000 terms, which parse and run in a fraction of a second
MAX_REF = 512  # characters: longer refs match no run unasked (a key is ~30 plus its project)


def _kind(value: Any) -> str:
    return "None" if value is None else f"{type(value).__name__} {_shown(repr(value))}"


def _shown(text: str, width: int = 60) -> str:
    """``text`` cut to ``width`` characters, so a huge argument never floods a message."""
    return text if len(text) <= width else text[:width] + "…"


def text(value: Any, name: str, example: str) -> str | None:
    """``value`` if it is text or None; ``example`` shows what the text looks like."""
    if value is None or isinstance(value, str):
        return value
    raise ArgumentError(f"{name} must be text such as {example}, not {_kind(value)}")


def filter_text(value: Any, name: str,
                example: str = "\"params.lr > 0.01 and status = 'completed'\"") -> str | None:
    """Filter-language text worth parsing (None when blank); refused when not text, or too
    long to parse quickly."""
    checked = text(value, name, example)
    if checked is not None and len(checked) > MAX_FILTER:
        raise ArgumentError(f"{name} is {len(checked):,} characters long; the limit is "
                            f"{MAX_FILTER:,} (to pick many runs, filter on what they share)")
    return checked if checked and checked.strip() else None


def texts(value: Any, name: str, example: str) -> list[str] | None:
    """A list of texts from a list, tuple or set of them; one string is refused, since
    iterating it would give its characters."""
    if value is None:
        return None
    if isinstance(value, str | bytes) or not isinstance(value, list | tuple | set | frozenset):
        raise ArgumentError(f"{name} must be a list of text such as {example}, not {_kind(value)}")
    wrong = [item for item in value if not isinstance(item, str)]
    if wrong:
        raise ArgumentError(f"{name} must hold only text, not {_kind(wrong[0])}")
    return list(value)


def run_texts(*, name: Any = None, project: Any = None, labels: list[str] | None = None,
              notes: Any = None) -> None:
    """Refuse a run's name, project, labels or notes longer than a run records (what an
    export must be able to carry, :mod:`tracker.descriptor`)."""
    for field, given, limit in (("name", name, values.MAX_NAME),
                                ("project", project, values.MAX_NAME),
                                ("notes", notes, values.MAX_TEXT)):
        if isinstance(given, str) and len(given) > limit:
            raise ArgumentError(f"{field} is {len(given):,} characters long; the limit is "
                                f"{limit:,} (keep long text in a file and log it as an output)")
    if labels is None:
        return
    if len(labels) > values.MAX_LABELS:
        raise ArgumentError(f"labels holds {len(labels):,} labels; the limit is "
                            f"{values.MAX_LABELS:,} (use params or tags for the rest)")
    longest = max(labels, key=len, default="")
    if len(longest) > values.MAX_LABEL:
        raise ArgumentError(f"label {_shown(longest)!r} is {len(longest):,} characters long; "
                            f"the limit is {values.MAX_LABEL:,} (put long text in the notes)")


_MOST = 2**63 - 1  # the largest LIMIT or OFFSET the catalog's SQL takes


def count(value: Any, name: str, *, minimum: int = 0) -> int:
    """A whole number, ``minimum`` or more (a bool is refused: ``limit=True`` is a slip)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ArgumentError(f"{name} must be a whole number, {minimum} or more, "
                            f"not {_kind(value)}")
    if value < minimum:
        raise ArgumentError(f"{name} must be {minimum} or more, not {value}")
    return min(value, _MOST)  # more than any catalog holds means "all"


def seconds(value: Any, name: str) -> float:
    """A duration in seconds: a number, 0 or more (NaN refused); longer than the longest wait
    the platform allows (``inf``, ``1e10``) means that longest wait."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ArgumentError(f"{name} must be a number of seconds, 0 or more, not {_kind(value)}")
    return min(float(value), threading.TIMEOUT_MAX)


def choice(value: Any, name: str, choices: Mapping[str, str]) -> str | None:
    """``value`` if it is None or a key of ``choices`` (key: what it means)."""
    if value is None or (isinstance(value, str) and value in choices):
        return value
    listed = ", ".join(f"{key!r} ({meaning})" for key, meaning in choices.items())
    raise ArgumentError(f"{name} must be one of {listed}; not {_kind(value)}")


def ref(value: Any) -> str:
    """A run reference must be text; what it names is for the catalog to say."""
    if isinstance(value, str):
        return value
    raise ArgumentError("a run reference must be text (a run id, a unique prefix of 4+ "
                        "characters of an id or short id, or a tracker:// key), "
                        f"not {_kind(value)}")


def shown_ref(value: str) -> str:
    """A reference as error messages show it: cut when long (a key is ~50 characters)."""
    return _shown(value, 100)


def path(value: Any, name: str) -> str:
    """A file path as text: a str or os.PathLike, not empty."""
    try:
        raw = os.fspath(value)
    except TypeError:
        raw = None
    if not isinstance(raw, str):
        raise ArgumentError(f"{name} must be a file path (str or pathlib.Path), "
                            f"not {_kind(value)}")
    if not raw.strip():
        raise ArgumentError(f"{name} must name a file; it is empty")
    if "\x00" in raw:
        raise ArgumentError(f"{name} holds a NUL character, which no file name can")
    try:
        os.fsencode(raw)
    except UnicodeEncodeError as exc:  # a lone surrogate that no file name can hold
        raise ArgumentError(f"{name} is not a valid file name (character {exc.start})") from None
    return raw
