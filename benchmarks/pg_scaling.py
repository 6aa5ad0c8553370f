"""How a PostgreSQL catalog holds at a million runs: ``python -m benchmarks.pg_scaling``.

Starts a throwaway cluster (:mod:`benchmarks.pg_server`), loads ``--load`` synthetic runs with
tracker's PostgreSQL writer (:mod:`benchmarks.tracker_side`'s ``pg_populate``), then copies the
``runs`` rows in SQL, fresh ids, until there are ``--runs`` (the history tables ``params`` and
``metrics`` keep the loaded runs only: the reads below never scan them, and their size per run
is printed to extrapolate). Then it times the read figures' queries through the public API
(medians of ``--repeats``), prints table and index sizes, and the plans of the filter and
top-100 queries (``EXPLAIN (ANALYZE, BUFFERS)`` of the SQL they sent). ``--url`` uses a catalog
already loaded instead. docs/scaling.md holds a run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from benchmarks import data
from benchmarks.pg_server import Cluster
from benchmarks.sides import tracker_job

_DATABASE = "scaling"
_EXPLAINED = ("filter", "top")


def main(argv: Sequence[str] | None = None) -> int:
    """Load, grow, time, explain; print everything on stdout."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pg_scaling", description=__doc__)
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--load", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--url", help="a catalog holding --load runs already (no new server)")
    parser.add_argument("--reads", default="filter,top,count,page,table",
                        help="the reads to time, comma-separated (default: all)")
    args = parser.parse_args(argv)
    if args.url:
        _measure(args.url, args)
        return 0
    cluster = Cluster({"max_connections": "200"})
    try:
        cluster.admin(f"CREATE DATABASE {_DATABASE}")
        url = cluster.url(_DATABASE)
        started = time.perf_counter()
        tracker_job({"op": "pg_populate", "n": args.load, "catalog": url}).check()
        _say(f"loaded {args.load:,} runs with pg_writer in {time.perf_counter() - started:.0f} s")
        _measure(url, args)
    finally:
        cluster.close()
    return 0


def _measure(url: str, args: argparse.Namespace) -> None:
    _grow(url, args.load, args.runs)
    _time_reads(url, args.reads.split(","), args.repeats)
    _sizes(url)
    _explain(url)


def _say(line: str) -> None:
    print(line, flush=True)


def _grow(url: str, loaded: int, wanted: int) -> None:
    """Copy the loaded runs' rows (ids suffixed ``~k``, started later) up to ``wanted``."""
    import psycopg

    from tracker.storage import pg_schema

    with psycopg.connect(url) as con:
        row = con.execute("SELECT count(*) FROM tracker.runs").fetchone()
    if row is not None and row[0] >= wanted:
        return  # grown by an earlier run of this script
    copies = -(-wanted // loaded)  # the loaded runs count as the first copy
    names = [name for name, _ in pg_schema.columns("runs")]
    changed = {"id": "r.id || '~' || k", "name": "r.name || '~' || k",
               "started_at": "r.started_at + k * interval '100 days'"}
    select = ", ".join(changed.get(name, f"r.{name}") for name in names)
    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as con:
        con.execute("SET search_path TO tracker")
        con.execute(f"INSERT INTO runs ({', '.join(names)}) SELECT {select} FROM runs r, "
                    "generate_series(1, %s) k ORDER BY k, r.id LIMIT %s",
                    [copies - 1, wanted - loaded])
        # the whole database: the triggers filled latest_values too, and a filter's plan
        # needs its statistics as much as the runs table's
        con.execute("VACUUM ANALYZE")
        total = con.execute("SELECT count(*) FROM runs").fetchone()
    _say(f"grew to {total[0] if total else 0:,} runs in {time.perf_counter() - started:.0f} s")


def _reads(url: str) -> dict[str, Callable[[], Any]]:
    import tracker

    catalog = tracker.Catalog(url)
    return {
        "filter": lambda: catalog.runs(data.FILTER),
        "top": lambda: catalog.runs(order_by=f"metrics.{data.ORDER_METRIC} DESC", limit=100),
        "count": lambda: catalog.count_runs(),
        "page": lambda: catalog.runs(limit=25),
        "table": lambda: catalog.runs(),
    }


def _time_reads(url: str, names: list[str], repeats: int) -> None:
    """Median seconds of each read named (the whole table: once, it is the slowest)."""
    reads = _reads(url)
    for name in names:
        read = reads[name]
        read()  # warm: imports, the server's cache
        samples, rows = [], 0
        for _ in range(1 if name == "table" else repeats):
            started = time.perf_counter()
            rows = len(read())
            samples.append(time.perf_counter() - started)
        _say(f"{name}: {statistics.median(samples) * 1000:,.0f} ms median of {len(samples)} "
             f"({rows:,} rows)")


def _sizes(url: str) -> None:
    import psycopg

    with psycopg.connect(url) as con:
        found = con.execute(
            "SELECT c.relname, c.relkind, c.reltuples::bigint, pg_total_relation_size(c.oid) "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'tracker' AND c.relkind IN ('r', 'i') "
            "ORDER BY pg_total_relation_size(c.oid) DESC LIMIT 14").fetchall()
    for name, kind, rows, size in found:
        _say(f"{'table' if kind == 'r' else 'index'} {name}: {size / 2**20:,.0f} MiB, "
             f"~{rows:,} rows")


def _explain(url: str) -> None:
    """The plans of the filter and top-100 reads: each read's SQL, as pg_queries sent it,
    run again under EXPLAIN (ANALYZE, BUFFERS) with the same values."""
    import psycopg

    from tracker import pg_queries

    sent: list[tuple[str, Any]] = []
    answer = pg_queries.ArrowConnection.sql

    def recording(self: Any, sql: str, params: Any = None) -> Any:
        sent.append((sql, params))
        return answer(self, sql, params)

    pg_queries.ArrowConnection.sql = recording  # type: ignore[method-assign]
    try:
        reads = _reads(url)
        for name in _EXPLAINED:
            sent.clear()
            reads[name]()
            sql, params = sent[0]
            with psycopg.connect(url) as con:
                con.execute("SET search_path TO tracker")
                plan = con.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}",  # type: ignore[arg-type]
                                   params if isinstance(params, dict)
                                   else list(params or ())).fetchall()
            _say(f"--- plan of {name} ---\n" + "\n".join(row[0] for row in plan))
    finally:
        pg_queries.ArrowConnection.sql = answer  # type: ignore[method-assign]


if __name__ == "__main__":
    sys.exit(main())
