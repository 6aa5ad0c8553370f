"""``python -m benchmarks``: run the suite, print the table, write results/latest.{json,md}.

Options: ``--quick`` (small sizes, few repeats, under a minute; MLflow only if its venv already
exists), ``--only GROUP`` (repeatable), ``--no-mlflow``, ``--timeout S`` for MLflow queries,
``--out DIR`` (default benchmarks/results, or benchmarks/results/quick with --quick).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import benchmarks.figures  # noqa: F401 (importing it registers every group)
from benchmarks import mlflow_env, report
from benchmarks.framework import GROUPS, Context, Row, log, run_group

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the suite; exit 0 when it ran, whatever the numbers (the table says what they are)."""
    args = _parser().parse_args(argv)
    unknown = set(args.only or ()) - set(GROUPS)
    if unknown:
        print(f"unknown group(s): {', '.join(sorted(unknown))}; known: {', '.join(GROUPS)}",
              file=sys.stderr)
        return 2
    _compile_bytecode()
    started = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="tracker-bench-"))
    try:
        ctx = Context(quick=args.quick, workdir=workdir, mlflow_missing=_mlflow_missing(args),
                      timeout_s=args.timeout)
        rows, durations = _run(ctx, args.only or list(GROUPS))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    results = report.to_json(rows, quick=args.quick, machine=report.machine_info(),
                             duration_s=time.perf_counter() - started, group_s=durations)
    out = args.out or (RESULTS / "quick" if args.quick else RESULTS)
    json_path, md_path = report.write(results, rows, out)
    print(report.text_table(rows))
    log(f"wrote {json_path} and {md_path} in {results['duration_s']:.0f} s")
    return 0


def _compile_bytecode() -> None:
    """Write tracker's bytecode once, as installing a package does: with PYTHONDONTWRITEBYTECODE
    set (this machine sets it) every fresh process of the suite would compile ~40 modules from
    source, and the import, %load_ext and first-run figures would time that, not tracker."""
    import compileall

    root = Path(__file__).resolve().parent.parent
    for package in ("tracker", "widgets"):
        if (root / package).is_dir():
            compileall.compile_dir(str(root / package), quiet=1)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, few repeats")
    parser.add_argument("--only", action="append", metavar="GROUP",
                        help=f"run only this group (repeatable): {', '.join(GROUPS)}")
    parser.add_argument("--no-mlflow", action="store_true", help="measure tracker only")
    parser.add_argument("--timeout", type=float, default=120.0, metavar="S",
                        help="limit per MLflow query sample (default 120 s)")
    parser.add_argument("--out", type=Path, help="folder for latest.json and latest.md")
    return parser


def _mlflow_missing(args: argparse.Namespace) -> str | None:
    """Why MLflow is not measured in this run, or None when it is ready."""
    if args.no_mlflow:
        return "skipped (--no-mlflow)"
    return mlflow_env.ensure_venv(install=not args.quick)


def _run(ctx: Context, names: Sequence[str]) -> tuple[list[Row], dict[str, float]]:
    """Every row of the named groups, and the seconds each group took (to plan a rerun)."""
    if ctx.mlflow_missing:
        log(f"MLflow: {ctx.mlflow_missing}")
    rows: list[Row] = []
    durations: dict[str, float] = {}
    for name in names:
        started = time.perf_counter()
        rows += run_group(ctx, GROUPS[name])
        durations[name] = round(time.perf_counter() - started, 1)
    return rows, durations


if __name__ == "__main__":
    sys.exit(main())
