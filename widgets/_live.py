"""The views' background threads: the live ticker, and one-off loads behind a first render.

One ticker per table, alive only while the page shows running runs: it calls ``tick`` every
``interval`` seconds and ends when ``tick`` returns False, raises, or :meth:`stop` is called.
``tick`` only sets widget values; ipykernel sends those updates from any thread.

These threads read the catalog, in DuckDB and Arrow. At interpreter exit, before DuckDB's own
teardown (:mod:`tracker.teardown`), tickers are stopped and every thread is waited for: a daemon
thread cut off inside their C++ code aborts or hangs the process. Catalog reads they start then
are refused at once, so the wait is for what is already running.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable

from tracker import teardown

# A bound on the wait for what the threads do outside the catalog (setting widget values);
# their DuckDB and Arrow work is waited for whatever it takes.
_EXIT_WAIT = 5.0
_tickers: weakref.WeakSet[LiveTicker] = weakref.WeakSet()
_threads: weakref.WeakSet[threading.Thread] = weakref.WeakSet()


def start_thread(target: Callable[[], object], name: str) -> threading.Thread:
    """Start a daemon thread that interpreter exit waits for."""
    thread = threading.Thread(target=target, name=name, daemon=True)
    _threads.add(thread)
    thread.start()
    return thread


class LiveTicker:
    """Calls ``tick()`` every ``interval`` seconds on a daemon thread while it returns True."""

    def __init__(self, tick: Callable[[], bool], *, interval: float = 3.0) -> None:
        self.interval = interval
        self._tick = tick
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._guard = threading.Lock()

    @property
    def running(self) -> bool:
        """True while the thread is alive and not told to stop."""
        thread = self._thread
        return thread is not None and thread.is_alive() and not self._stop.is_set()

    def ensure_running(self) -> None:
        """Start the thread unless it already runs."""
        with self._guard:
            if self.running:
                return
            stop = self._stop = threading.Event()
            _tickers.add(self)
            self._thread = start_thread(lambda: self._loop(stop), "tracker-live-runs")

    def stop(self) -> None:
        """Ask the thread to end (after its current tick)."""
        self._stop.set()

    def _loop(self, stop: threading.Event) -> None:
        while not stop.wait(self.interval):
            try:
                keep_going = self._tick()
            except Exception:  # a background refresh must never surface in the user's cells
                keep_going = False
            if not keep_going:
                stop.set()


def _stop_all() -> None:
    for ticker in list(_tickers):
        ticker.stop()
    deadline = time.monotonic() + _EXIT_WAIT
    for thread in list(_threads):
        if thread is not threading.current_thread():
            thread.join(max(deadline - time.monotonic(), 0.0))


teardown.before_teardown(_stop_all)
