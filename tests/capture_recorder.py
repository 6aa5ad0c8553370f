"""A started FileCapture and what it reported: shared by the capture and scan tests."""

from __future__ import annotations

import os
import pathlib

from tracker.capture import FileCapture


class Recorder:
    """A started FileCapture over one folder, with the reported reads and writes."""

    def __init__(self, root: pathlib.Path, **options: object) -> None:
        self.root = root
        self.reads: list[str] = []
        self.writes: list[str] = []
        self.via: dict[str, str] = {}  # path -> how it was last seen
        options.setdefault("include", [f"{root}/**"])
        self.capture = FileCapture(on_read=self._read, on_write=self._write,
                                   **options)  # type: ignore[arg-type]

    def _read(self, path: str, via: str) -> None:
        self.reads.append(path)
        self.via[path] = via

    def _write(self, path: str, via: str) -> None:
        self.writes.append(path)
        self.via[path] = via

    def path(self, name: str) -> str:
        return os.path.realpath(self.root / name)

    def forget(self) -> None:
        """Start afresh after a test's setup: the capture and the recorded lists."""
        self.capture.reset_seen()
        self.reads.clear()
        self.writes.clear()
