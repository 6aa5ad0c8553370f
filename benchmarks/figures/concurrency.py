"""Several processes writing runs into one store at once: throughput, worst wait, lost runs;
and the same with readers looping over the runs table meanwhile: how long each read takes.

Each worker writes its runs one after another, each committed before the next (tracker:
``end_run`` then ``flush()``; MLflow: every call commits). Readers read the whole runs table back
to back (tracker: ``tracker.runs()``; MLflow: ``mlflow.search_runs()``) until the last writer is
done. Every process imports its library and reads or opens its store first, then all start at
once. A run is lost when its writer saw it succeed and it is not in the store afterwards;
``database is locked`` and other failures are errors.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.framework import Context, Figure, Measure, Outcome, Target, group
from benchmarks.sides import count_runs, on_both_sides, require, start

WRITERS = 8
READERS = 2
_NONE_LOST = Target("<=", 0)


def _runs_each(ctx: Context) -> int:
    return 4 if ctx.quick else 40


def _runs_each_read(ctx: Context) -> int:
    return 5 if ctx.quick else 250


def figures(ctx: Context) -> tuple[Figure, ...]:
    """Throughput, slowest wait, lost runs and errors of the concurrent write test."""
    title = f"{WRITERS} processes x {_runs_each(ctx)} runs"
    return (
        Figure("concurrent.runs_per_s", f"{title}: runs/s", "runs/s", Target(">=", 2, True),
               mlflow=True),
        Figure("concurrent.max_wait", f"{title}: slowest run", "s", Target(">=", 1, True),
               mlflow=True),
        Figure("concurrent.lost", f"{title}: runs lost", "count", _NONE_LOST, mlflow=True),
        Figure("concurrent.errors", f"{title}: failed writes", "count", mlflow=True),
    )


def reader_figures(ctx: Context) -> tuple[Figure, ...]:
    """The writers' figures with readers about, and the readers' time per read."""
    title = f"{WRITERS} x {_runs_each_read(ctx)} runs, {READERS} readers looping runs()"
    return (
        Figure("readers.runs_per_s", f"{title}: runs/s", "runs/s", mlflow=True),
        Figure("readers.max_wait", f"{title}: slowest run", "s", mlflow=True),
        Figure("readers.lost", f"{title}: runs lost", "count", _NONE_LOST, mlflow=True),
        Figure("readers.errors", f"{title}: failed writes and reads", "count", mlflow=True),
        Figure("readers.read", f"{title}: read, median", "ms", Target("<=", 100), mlflow=True),
        Figure("readers.read_p99", f"{title}: read, p99", "ms", Target("<=", 500), mlflow=True),
    )


@group("concurrency", figures)
def measure_concurrency(ctx: Context) -> dict[str, Outcome]:
    """Run the write test on each side and report the four figures."""
    require("tracker", "Catalog")
    return on_both_sides(ctx, lambda side, store: contest(
        ctx, side, store, runs_each=_runs_each(ctx), readers=0, prefix="concurrent"))


@group("readers", reader_figures)
def measure_readers(ctx: Context) -> dict[str, Outcome]:
    """Run the write test with readers on each side and report the six figures."""
    require("tracker", "Catalog", "runs", "use_catalog")
    return on_both_sides(ctx, lambda side, store: contest(
        ctx, side, store, runs_each=_runs_each_read(ctx), readers=READERS, prefix="readers"))


def contest(ctx: Context, side: str, store: dict[str, str], *, runs_each: int, readers: int,
            prefix: str) -> dict[str, Measure]:
    """:data:`WRITERS` writers of ``runs_each`` runs each and ``readers`` readers on ``side``'s
    ``store``, all started at once; the figures keyed ``prefix.runs_per_s``..."""
    folder = Path(tempfile.mkdtemp(dir=ctx.workdir))
    go, stop = str(folder / "go"), folder / "stop"
    writers = [start(side, {"op": "worker", "worker": i, "runs": runs_each, "go": go, **store})
               for i in range(WRITERS)]
    reading = [start(side, {"op": "reader", "go": go, "stop": str(stop), **store})
               for _ in range(readers)]
    for job in writers + reading:  # every process has imported its library and used its store
        job.expect("ready", timeout_s=300)
    Path(go).touch()
    started = time.time()
    reports = [job.wait(timeout_s=600).check().result for job in writers]
    stop.touch()
    reads = [job.wait(timeout_s=600).check() for job in reading]
    elapsed = max(report["finished_at"] for report in reports) - started
    figures = _write_figures(reports, count_runs(side, store), elapsed)
    figures["errors"] = _errors(_add([report["errors"] for report in reports]),
                                _add([read.result["errors"] for read in reads]))
    if reads:
        figures |= _read_figures([sample for read in reads for sample in read.samples])
    return {f"{prefix}.{key}": value for key, value in figures.items()}


def _write_figures(reports: list[dict[str, Any]], present: set[str],
                   elapsed: float) -> dict[str, Measure]:
    committed = [run for report in reports for run in report["committed"]]
    waits = [wait for report in reports for wait in report["waits"]]
    lost = [run for run in committed if run not in present]
    return {
        "runs_per_s": Measure.of([len(committed) / elapsed],
                                 note=f"{len(committed)} runs in {elapsed:.1f} s"),
        "max_wait": Measure.of([max(waits)], note=f"median {statistics.median(waits):.2f} s"),
        "lost": Measure.of([len(lost)], note=f"of {len(committed)} committed"),
    }


def _read_figures(samples: list[float]) -> dict[str, Measure]:
    """Median and p99 (nearest rank) of every reader's reads, given in seconds, in ms."""
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    note = f"{len(ordered)} reads, max {ordered[-1] * 1000:,.0f} ms"
    return {
        "read": Measure.seconds(ordered, "ms", note=note),
        "read_p99": Measure.seconds([p99], "ms", note=note),
    }


def _add(counts: list[dict[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for count in counts:
        for kind, number in count.items():
            total[kind] = total.get(kind, 0) + number
    return total


def _errors(writes: dict[str, int], reads: dict[str, int]) -> Measure:
    """Failed writes and reads, counted together; the note says which and why."""
    parts = [f"{n} x {kind}" for kind, n in sorted(writes.items())]
    parts += [f"{n} x {kind} (reads)" for kind, n in sorted(reads.items())]
    return Measure.of([sum(writes.values()) + sum(reads.values())],
                      note=", ".join(parts) or "none")
