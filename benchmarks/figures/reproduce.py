"""``tracker reproduce`` of the quickstart notebook against the notebook's own run (issue #14's
target: the report in under the notebook's own run time plus 2 s).

Both are timed as a user starts them, from a shell: the notebook's own run is
``jupyter execute quickstart.ipynb`` (nbclient, a fresh kernel, the extension loaded by the
notebook), and the reproduction is ``tracker reproduce RUN`` of the first such run, in a fresh
process that also pays for its imports. Each round times one of each, back to back; the
figure with the target is the reproduction minus the notebook's own run, per round.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.framework import Context, Figure, Measure, Outcome, Target, group
from benchmarks.sides import require

_NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def figures(ctx: Context) -> tuple[Figure, ...]:
    """The reproduction's time, beyond the notebook's own and in all."""
    return (
        Figure("reproduce.extra", "tracker reproduce of the quickstart notebook, beyond the "
               "notebook's own run time", "s", Target("<=", 2.0)),
        Figure("reproduce.total", "tracker reproduce of the quickstart notebook (report)", "s"),
        Figure("reproduce.own", "the quickstart notebook's own run (jupyter execute)", "s"),
    )


def _timed(command: list[str], folder: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=folder, env=env, capture_output=True, timeout=600, check=True)
    return time.perf_counter() - start


@group("reproduce", figures)
def measure_reproduce(ctx: Context) -> dict[str, Outcome]:
    """A copy of notebooks/ in a temporary folder, its own catalog; rounds of both commands."""
    require("tracker.reproduction", "reproduce")
    require("nbclient")
    root = Path(tempfile.mkdtemp(dir=ctx.workdir))
    try:
        folder = root / "notebooks"
        shutil.copytree(_NOTEBOOKS, folder,
                        ignore=shutil.ignore_patterns("outputs", ".*", "*-runs"))
        catalog = root / "catalog" / "catalog.duckdb"
        env = {**os.environ, "TRACKER_CATALOG": str(catalog),
               "IPYTHONDIR": str(root / "ipython")}
        env.pop("TRACKER_NOTEBOOK", None)
        execute = [sys.executable, "-m", "jupyter", "execute", "quickstart.ipynb"]
        own = [_timed(execute, folder, env)]
        import tracker

        run_id = str(tracker.Catalog(catalog).runs(limit=1)["id"].iloc[0])
        reproduce = [sys.executable, "-m", "tracker", "reproduce", run_id, "--workdir"]
        total: list[float] = []
        for round_ in range(2 if ctx.quick else 5):
            total.append(_timed([*reproduce, str(root / f"again-{round_}")], folder, env))
            own.append(_timed(execute, folder, env))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    extra = [ours - theirs for ours, theirs in zip(total, own[1:])]
    return {
        "reproduce.extra": Outcome(Measure.seconds(extra, "s", note="per round: reproduce "
                                                   "minus jupyter execute")),
        "reproduce.total": Outcome(Measure.seconds(total, "s", note="exit 0: identical")),
        "reproduce.own": Outcome(Measure.seconds(own, "s")),
    }
