"""Kept contents: keeping a new output against ``cp``, restoring it, and identical outputs of
many runs stored once (issue #14's targets).

Each round writes a new output, then times cp, cp + fdatasync, keep, keep until it is named,
keep until its bytes are on disk, and the copy + hashes + fdatasync alone, in an order rotated
each round, then cp of the kept copy and restore (order swapped each round). Every step starts
in the same state: its source read once just before (in the page cache: warm), its destination
removed (each keep stores into an empty store), the file system synced (nothing dirty left by
the step before). Keeping returns once the content is copied into the catalog's staging folder,
verified (xxh3, hashed as the kernel copies) and the run recorded; its name (BLAKE3) and its
move into the store follow on the flusher thread (tracker.background_keeps), its
``fdatasync`` after that, journaled until done (docs/design.md §8), as ``cp`` leaves its copy
in the page cache: ``keep`` is against plain cp, as the issue states it, ``keep_named`` (the
same keep, then waiting for its name) against cp too, ``keep_sync`` (then waiting for the
sync as well) against cp + fdatasync. A figure is the median
of per-round ratios (ours / cp of the same round) with its quartiles; the notes add the ratio
of the median CPU seconds (the process and its children: the flusher's thread, cp's process).
Where blocks can be shared, keeping clones the output: measured on an XFS image with reflinks
made for the purpose (root and mkfs.xfs), against a copy that shares nothing there.
"""

from __future__ import annotations

import contextlib
import shutil
import statistics
import subprocess
import tempfile
from collections.abc import Iterator

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
        Figure("contents.keep_named", f"keep a new {size} output until it is named and in "
               "the store (x the time of cp)", "x"),
        Figure("contents.keep_sync", f"keep a new {size} output until its bytes are on disk "
               "(x the time of cp + fdatasync)", "x"),
        Figure("contents.keep_copy", f"the copy of a new {size} output, its hashes and its "
               "fdatasync alone, without the run (x the time of cp + fdatasync)", "x"),
        Figure("contents.keep_reflink", f"keep a new {size} output where blocks can be shared "
               "(XFS with reflinks; x the time of cp --reflink=never)", "x"),
        Figure("contents.keep_reflink_beyond", "the same, beyond the run and the xxh3 of the "
               "output, which recording it costs kept or not (x the time of cp --reflink=never)",
               "x", Target("<=", 0.1)),
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
        got = tracker_job({"op": "keep", "folder": folder, "size": size, "repeats": ctx.repeats,
                           "copies": _COPIES}).check().result
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {
        **_clone_outcomes(ctx, size),
        "contents.keep": _against(got, "keep", "cp", "no reflink on ext4: kernel copy, xxh3 of "
                                  "the copy as it is written; named (BLAKE3) next, and synced, "
                                  "in the background"),
        "contents.keep_named": _against(got, "keep_named", "cp", "then BLAKE3 + xxh3 of the "
                                        "staged copy, moved into the store, recorded kept"),
        "contents.keep_sync": _against(got, "keep_synced", "cp_sync", "both on disk when done"),
        "contents.keep_copy": _against(got, "copy_hashed", "cp_sync",
                                       "copy_file_range + BLAKE3/xxh3 of the copy + fdatasync"),
        "contents.restore": _against(got, "restore", "cp_back", "copy_file_range, size "
                                     "checked; neither syncs"),
        "contents.dedup": Outcome(Measure.of([got["store_bytes"] / size],
                                             note="blake3-keyed, one copy per content")),
    }


def _against(got: dict[str, list[float]], ours: str, cp: str, note: str) -> Outcome:
    """Per-round ratios of step ``ours`` to step ``cp`` (wall clock), noted with cp's median
    seconds and the ratio of their median CPU seconds."""
    cpu, cp_cpu = statistics.median(got[f"{ours}_cpu"]), statistics.median(got[f"{cp}_cpu"])
    if cp_cpu > 0:  # os.times counts in clock ticks: a 64 MiB cp may show none
        note += f"; CPU {cpu / cp_cpu:.2f}x"
    return Outcome(Measure.of(ratios(got[ours], got[cp]), note=(
        f"{note}; {cp} median {statistics.median(got[cp]):.2f} s; {len(got[cp])} rounds, "
        "warm source, synced before each step")))


def _clone_outcomes(ctx: Context, size: int) -> dict[str, Outcome]:
    """Keeping on a loop-mounted XFS image with reflinks, made here (root and mkfs.xfs), against
    a real copy there, whole and beyond the output's xxh3 and the run (timed in the same
    round); both unavailable without them."""
    keys = ("contents.keep_reflink", "contents.keep_reflink_beyond")
    try:
        with _xfs_folder(ctx, max(3 * size, 300 << 20)) as folder:  # XFS's least: 300 MiB
            got = tracker_job({"op": "keep_clone", "folder": folder, "size": size,
                               "repeats": ctx.repeats}).check().result
    except subprocess.CalledProcessError as error:
        missing = Measure.unavailable(f"no XFS image with reflinks here (root and xfsprogs): "
                                      f"{error.stderr.strip() or error}")
        return dict.fromkeys(keys, Outcome(missing))
    except OSError as error:
        return dict.fromkeys(keys, Outcome(Measure.unavailable(
            f"no XFS image with reflinks here: {error}")))
    outcome = _against(got, "keep", "cp", f"the output cloned (FICLONE), then xxh3 of its "
                       f"{size >> 20} MiB (the version's hash) is what is left; named (BLAKE3) "
                       "in the background")
    named = statistics.median(ratios(got["keep_named"], got["cp"]))
    clones = sum(got["shared"])
    beyond = ratios([keep - xxh3 - run for keep, xxh3, run in zip(
        got["keep"], got["xxh3"], got["run"], strict=True)], got["cp"])
    return {
        keys[0]: Outcome(outcome.ours.noted(
            f"until named and in the store {named:.2f}x; {clones:.0f} of "
            f"{len(got['shared'])} kept copies shared every block with the output")),
        keys[1]: Outcome(Measure.of(beyond, note=(
            "per round, keep minus the xxh3 of the same output and a run without it, timed in "
            "that round (what logging it without keeping costs too), over cp --reflink=never; "
            f"xxh3 median {statistics.median(got['xxh3']):.3f} s, run "
            f"{statistics.median(got['run']) * 1000:.1f} ms"))),
    }


@contextlib.contextmanager
def _xfs_folder(ctx: Context, size: int) -> Iterator[str]:
    """A folder on a new XFS file system with reflinks: a sparse image of ``size`` bytes in the
    work folder, loop-mounted for the block's duration."""
    image, folder = ctx.workdir / "xfs.img", ctx.workdir / "xfs"
    folder.mkdir(exist_ok=True)
    with open(image, "wb") as sparse:
        sparse.truncate(size)
    try:
        subprocess.run(["mkfs.xfs", "-q", "-f", "-m", "reflink=1", str(image)], check=True,
                       capture_output=True, text=True)
        subprocess.run(["mount", "-o", "loop", str(image), str(folder)], check=True,
                       capture_output=True, text=True)
        try:
            yield str(folder)
        finally:
            subprocess.run(["umount", str(folder)], check=True)
    finally:
        image.unlink()


def ratios(ours: list[float], theirs: list[float]) -> list[float]:
    """Round by round, ours / theirs (the same round, the same file, the same cache state)."""
    return [mine / other for mine, other in zip(ours, theirs, strict=True)]
