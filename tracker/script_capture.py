"""Automatic file capture for runs started with ``start_run`` outside a notebook (a script).

In a notebook the extension captures files for the session's run, cell by cell. A script has no
cells, so here the run is the unit: while a run is open, a file the process reads is an input at
once (hashed as for a notebook), and a file it writes is an output when the run ends, once the
file is complete. Files go to the innermost open run, as log calls do.

Capture starts with the first run and stops when no run of the recorder is open any more. It is
off when ``TRACKER_CAPTURE=0``, and when another capture already records for this process (the
notebook extension's, or a notebook run is open). Files other processes write are not looked
for (the notebook's scan works cell by cell). A failure is one
:class:`~tracker.errors.TrackerWarning` (the recorder's) and capture stops; the script runs on.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import TYPE_CHECKING

from tracker import capture

if TYPE_CHECKING:
    from tracker.recorder import Recorder
    from tracker.run import Run


class ScriptCapture:
    """One recorder's capture of files for its runs; see the module docstring."""

    def __init__(self, recorder: Recorder) -> None:
        self._recorder = recorder
        self._capture: capture.FileCapture | None = None
        self._written: dict[str, dict[str, str]] = {}  # run id -> {path: via}, in order

    def run_started(self) -> None:
        """A run started: capture for it, unless capture is off or another one records."""
        if os.environ.get("TRACKER_CAPTURE") == "0":
            return
        if self._capture is not None and self._capture.active:
            return
        if capture.reporting() or any(run.session for run in self._recorder.stack):
            return  # the notebook extension records files for its own run
        if self._capture is None:
            self._capture = self._new_capture()
        self._capture.reset_seen()
        self._capture.start()

    def _new_capture(self) -> capture.FileCapture:
        # The working folder and the script's own are in scope even under a temp folder.
        script = os.path.dirname(os.path.abspath(sys.argv[0])) if sys.argv and sys.argv[0] \
            else None
        near = dict.fromkeys(d for d in (os.getcwd(), script) if d)
        found = capture.FileCapture(
            on_read=self._on_read, on_write=self._on_write, on_moved=self._on_moved,
            before_overwrite=self._before_overwrite, include=[f"{d}/**" for d in near])
        found.add_excluded_dir(os.path.dirname(os.path.abspath(__file__)))
        found.add_excluded_dir(str(self._recorder.catalog.folder))
        return found

    def run_ending(self, run: Run) -> None:
        """Before ``run``'s end is queued: what it wrote becomes its outputs; capture stops
        when no other run is open."""
        found = self._capture
        if found is None:
            return
        with capture.suppressed():  # hashing the outputs is not the run reading them
            with contextlib.suppress(Exception):  # a database's stat failing
                found.settle()
            for path, via in self._written.pop(run.id, {}).items():
                run.log_output(path, via=via)
        if not any(other is not run and not other.session for other in self._recorder.stack):
            found.stop(keep_wrappers=True)

    # -- the capture's callbacks (in the thread that opened the file) --------------------

    def _current(self) -> Run | None:
        run = self._recorder.current
        return None if run is None or run.ended or run.session else run

    def _on_read(self, path: str, via: str) -> None:
        run = self._current()
        if run is not None:
            run.record_read(path, via=via)

    def _on_write(self, path: str, via: str) -> None:
        run = self._current()
        if run is not None:
            self._written.setdefault(run.id, {}).setdefault(path, via)

    def _on_moved(self, path: str) -> None:
        """A file a run wrote was renamed: only its new name is an output."""
        for written in self._written.values():
            written.pop(path, None)

    def _before_overwrite(self, path: str) -> None:
        run = self._current()
        if run is not None:
            run.before_overwrite(path)
