"""Warnings tracker gives its user: each topic once, and never an exception in their code.

Tracking trouble tends to repeat (every cell, every log call, the spooler and the writer
meeting the same full disk): :class:`Once` lets each topic through one time. :func:`warn`
gives a :class:`~tracker.errors.TrackerWarning` that cannot raise, as a warning does under
``-W error``, for the code paths that must never break the user's notebook or script.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Hashable

from tracker.errors import TrackerWarning


class Once:
    """The topics warned about so far; safe to share between threads."""

    def __init__(self) -> None:
        self._said: set[Hashable] = set()
        self._lock = threading.Lock()

    def first(self, topic: Hashable = None) -> bool:
        """True the first time ``topic`` comes up (the default: a single topic), then False."""
        with self._lock:
            if topic in self._said:
                return False
            self._said.add(topic)
            return True


def warn(message: str, *, stacklevel: int = 2) -> None:
    """A TrackerWarning for the caller's caller (``stacklevel`` as for ``warnings.warn``,
    counted from the caller) that never raises."""
    with contextlib.suppress(Exception):  # under `-W error` the warning itself raises
        warnings.warn(message, TrackerWarning, stacklevel=stacklevel + 1)
