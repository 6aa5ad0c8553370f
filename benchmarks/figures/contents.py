"""Kept contents: keeping a new output against ``cp``, restoring it, and identical outputs of
many runs stored once (issue #14's targets).

The output is written just before each round, so it is in the page cache for both ``cp`` and
tracker; each round's kept copy is deleted before the next. Ratios are per round (keep / cp of
the same file in the same round), then the median.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile

from benchmarks.framework import Context, Figure, Measure, Outcome, Target, group
from benchmarks.sides import require, tracker_job

_COPIES = 10


def _size(ctx: Context) -> int:
    return 64 << 20 if ctx.quick else 1 << 30


def figures(ctx: Context) -> tuple[Figure, ...]:
    """The kept-contents figures, titled with the file size of this mode."""
    size = "64 MiB" if ctx.quick else "1 GiB"
    return (
        Figure("contents.keep", f"keep a new {size} output (x the time of cp)", "x",
               Target("<=", 1.2)),
        Figure("contents.keep_copy", f"the copy of a new {size} output and its hashes alone, "
               "without the run (x the time of cp)", "x"),
        Figure("contents.restore", f"restore a kept {size} file (x the time of cp)", "x",
               Target("<=", 1.0)),
        Figure("contents.dedup", f"store used by {_COPIES} runs writing the same {size}",
               "x file size", Target("<=", 1.0)),
    )


@group("contents", figures)
def measure_contents(ctx: Context) -> dict[str, Outcome]:
    """Keep, restore and deduplicate through the public API, in a fresh process."""
    require("tracker.retrieval", "get_artifact", "disk_usage")
    size = _size(ctx)
    folder = tempfile.mkdtemp(dir=ctx.workdir)
    try:
        result = tracker_job({"op": "keep", "folder": folder, "size": size,
                              "repeats": max(3, ctx.repeats // 2), "copies": _COPIES}).check()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    got = result.result
    restore = [ours / cp for ours, cp in zip(got["restore"], got["cp_back"])]
    copied = [ours / cp for ours, cp in zip(got["copy_hashed"], got["cp_alone"])]
    note = f"cp median {statistics.median(got['cp']):.2f} s"
    return {
        "contents.keep": Outcome(Measure.of(
            result.samples, note=note + "; no reflink on ext4: kernel copy, hashed from it")),
        "contents.keep_copy": Outcome(Measure.of(
            copied, note="copy_file_range + BLAKE3/xxh3 of the copy, vs its own cp")),
        "contents.restore": Outcome(Measure.of(restore, note="copy_file_range vs cp")),
        "contents.dedup": Outcome(Measure.of([got["store_bytes"] / size],
                                             note="blake3-keyed, one copy per content")),
    }
