"""Interpreter exit without an abort or a hang: background threads leave DuckDB and Arrow first.

When the interpreter finalises, a daemon thread still inside DuckDB's or Arrow's C++ code is cut
off: DuckDB swallows the unwinding and the process aborts ("FATAL: exception not rethrown"), or
Arrow's thread pool waits forever for it. And ``import duckdb`` registers exit handlers of its own
that interrupt the queries running then, which a widget would report as an internal error.

So one handler, registered right after ``import duckdb`` (``atexit`` runs the last registered
first, so it runs before DuckDB's), marks the process as exiting, runs the stoppers of the
modules that own background threads (widgets, the flusher), then waits until no operation is
inside DuckDB. From then on a thread other than the main one opens no catalog: its lock waits
end at once and its attaches are refused, so the wait is short and nothing starts after it.
A process that uses only a PostgreSQL catalog never imports duckdb: it registers the handler
at its first connection, with nothing to wait for, so its threads are stopped all the same.
"""

from __future__ import annotations

import atexit
import contextlib
import threading
from collections.abc import Callable

_stoppers: list[Callable[[], None]] = []
_exiting = threading.Event()
_arm_lock = threading.Lock()
_armed = False  # the handler is registered


def before_teardown(stop: Callable[[], None]) -> None:
    """Have ``stop`` run at exit, before DuckDB's teardown: it tells the caller's background
    threads to end and waits for them. A module-level function, so nothing is kept alive."""
    if stop not in _stoppers:
        _stoppers.append(stop)


def exiting() -> bool:
    """True in a background thread once the interpreter exits: it must not start DuckDB work.
    The main thread still writes what is left (``tracker.recorder``'s exit handler does)."""
    return _exiting.is_set() and threading.current_thread() is not threading.main_thread()


def begun() -> bool:
    """True in every thread once the interpreter exits: nothing is kept open for later."""
    return _exiting.is_set()


def arm(wait_idle: Callable[[], None]) -> None:
    """Register the exit handler, or move it after every handler registered so far: call it
    after ``import duckdb`` so that it runs before DuckDB's own. ``wait_idle`` returns once
    no operation is inside DuckDB (nor starting it)."""
    global _armed
    if _exiting.is_set():
        return  # the main thread writing at exit: the handler has run
    with _arm_lock:
        atexit.unregister(_at_exit)
        atexit.register(_at_exit, wait_idle)
        _armed = True


def arm_without_duckdb() -> None:
    """Register the exit handler unless it is: a process that uses only a PostgreSQL catalog
    never imports duckdb, and its background threads (widgets, the flusher) must be stopped
    at exit all the same, before they are cut off inside Arrow or a socket read (a hang)."""
    global _armed
    with _arm_lock:
        if not _armed and not _exiting.is_set():
            atexit.register(_at_exit, _no_wait)
            _armed = True


def _no_wait() -> None:
    """No DuckDB instance to wait for (see :func:`arm_without_duckdb`)."""


def _at_exit(wait_idle: Callable[[], None]) -> None:
    _exiting.set()
    for stop in list(_stoppers):
        with contextlib.suppress(Exception):  # at exit nobody is left to tell
            stop()
    wait_idle()
