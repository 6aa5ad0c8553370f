"""A background ticker that keeps running runs fresh without blocking the kernel.

One daemon thread per table, alive only while the page shows running runs: it calls ``tick``
every ``interval`` seconds and ends when ``tick`` returns False, raises, or :meth:`stop` is
called. ``tick`` only sets widget values; ipykernel sends those updates from any thread.
"""

from __future__ import annotations

import atexit
import threading
import weakref
from collections.abc import Callable

# A tick may be inside DuckDB's C++ code; a daemon thread cut off there when the interpreter
# finalises aborts the whole process. At exit every ticker is stopped and waited for.
_EXIT_WAIT = 5.0
_tickers: weakref.WeakSet[LiveTicker] = weakref.WeakSet()


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
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._loop, args=(self._stop,),
                                            name="tracker-live-runs", daemon=True)
            self._thread.start()
            _tickers.add(self)

    def stop(self, *, wait: float = 0.0) -> None:
        """Ask the thread to end (after its current tick); ``wait`` seconds for it to finish."""
        self._stop.set()
        thread = self._thread
        if wait and thread is not None and thread is not threading.current_thread():
            thread.join(wait)

    def _loop(self, stop: threading.Event) -> None:
        while not stop.wait(self.interval):
            try:
                keep_going = self._tick()
            except Exception:  # a background refresh must never surface in the user's cells
                keep_going = False
            if not keep_going:
                stop.set()


@atexit.register
def _stop_all() -> None:
    for ticker in list(_tickers):
        ticker.stop(wait=_EXIT_WAIT)
