"""Hashing figures: content hashing speed on new data, and re-recording an unchanged big file.

The file is written just before it is hashed, so it is in the page cache: the figure is the
hasher's speed, not the disk's. MB here is 10^6 bytes (the 1 GB/s target is 1000 MB/s).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from benchmarks.framework import Context, Figure, Measure, Outcome, Target, group
from benchmarks.sides import require, tracker_job


def _size(ctx: Context) -> int:
    return 64 << 20 if ctx.quick else 1 << 30


def figures(ctx: Context) -> tuple[Figure, ...]:
    """Both hashing figures, titled with the file size of this mode."""
    size = "64 MiB" if ctx.quick else "1 GiB"
    return (
        Figure("hash.new", f"hash new data ({size} file)", "MB/s", Target(">=", 1000)),
        Figure("hash.unchanged", f"re-record an unchanged {size} file", "ms", Target("<=", 10)),
    )


@group("hashing", figures)
def measure_hashing(ctx: Context) -> dict[str, Outcome]:
    """Hash a fresh random file several times (new hasher each time), then re-record it."""
    require("tracker.hashing", "FileHasher", "file_facts")
    size = _size(ctx)
    path = Path(tempfile.mkdtemp(dir=ctx.workdir)) / "data.bin"
    job = {"op": "hash", "path": str(path), "size": size, "repeats": ctx.repeats,
           "budget_s": 30, "unchanged_repeats": 50}
    result = tracker_job(job).check()
    speeds = [size / 1e6 / seconds for seconds in result.samples]
    return {
        "hash.new": Outcome(Measure.of(speeds, note="xxh3-128, file in the page cache")),
        "hash.unchanged": Outcome(
            Measure.seconds(result.result["unchanged"], "ms", note="file_facts(), stat cache hit")
        ),
    }
