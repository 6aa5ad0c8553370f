"""The after-subprocess scan: how long finding the files a cell's processes changed takes.

A cell that started a process (``!cp``, ``subprocess.run``, pool workers) is followed by a walk
of the notebook's folder comparing each file's ctime with the cell's start (tracker.scan). The
folder holds 10,000 files in 100 sub-folders, 10 of them changed; it was just written, so its
entries are in the kernel's caches, as a notebook's working folder usually is.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from benchmarks.framework import Context, Figure, Outcome, group
from benchmarks.sides import measure, require, tracker_job

FILES = 10_000


def figures(ctx: Context) -> tuple[Figure, ...]:
    """The one scan figure."""
    return (Figure("scan.after_process", f"scan a folder of {FILES:,} files after a cell that "
                   "started a process", "ms"),)


@group("scan", figures)
def measure_scan(ctx: Context) -> dict[str, Outcome]:
    """Walk a fresh folder of FILES files several times."""
    require("tracker.scan", "changed_files")
    folder = Path(tempfile.mkdtemp(dir=ctx.workdir))
    job = {"op": "scan", "folder": str(folder), "files": FILES, "changed": 10,
           "repeats": ctx.repeats * 3, "budget_s": 30}
    result = tracker_job(job).check()
    return {"scan.after_process": Outcome(measure(result, "ms", note="os.scandir + lstat, warm"))}
