"""The PostgreSQL back end (issue #13), side by side with MLflow on the SAME server.

Two groups, each on a throwaway cluster of its own (:mod:`benchmarks.pg_server`, server
defaults: fsync and synchronous commits on, as a team's server runs), so each can be rerun
alone: ``postgres`` (8 writers x 250 runs with 2 readers looping ``runs()``, then one run's way
from process A to process B) and ``postgres_100k`` (filter, top 100, whole table and the runs
widget's first render at 100,000 runs: most of its time loads MLflow's 100k runs). A database
per side and purpose. Writers and readers use each tool's public API (tracker:
``Catalog("postgresql://...")``; MLflow: a ``postgresql+psycopg2://`` tracking URI). The read
figures' runs are loaded in bulk: tracker's with its own PostgreSQL writer
(``tracker.storage.pg_writer.apply``, 5,000 runs a transaction), MLflow's rows with psycopg2
after MLflow created its schema (MLflow has no bulk path).
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from benchmarks import mlflow_env
from benchmarks.figures import concurrency, queries, visibility
from benchmarks.framework import Context, Figure, Measure, NotAvailable, Outcome, Target, group, log
from benchmarks.sides import measure, mlflow_job, require, tracker_job

# (kind of benchmarks.figures.queries, title, target at 100k runs in ms)
_QUERIES = (("filter", "filter: params.p0 = 'x' and metrics.m0 > 0.5", 300),
            ("top", "top 100 by metrics.m0", 300),
            ("table", "whole runs table as a DataFrame", 2000))
_TARGET_AT = 100_000


def _runs_each(ctx: Context) -> int:
    return 2 if ctx.quick else 250


def _size(ctx: Context) -> int:
    return 200 if ctx.quick else _TARGET_AT


def write_figures(ctx: Context) -> list[Figure]:
    """Writers with readers, and a run's way to a reader."""
    writing = (f"PostgreSQL: {concurrency.WRITERS} processes x {_runs_each(ctx)} runs, "
               f"{concurrency.READERS} readers looping runs()")
    return [
        Figure("pg.write.runs_per_s", f"{writing}: runs/s", "runs/s", Target(">=", 3, True),
               mlflow=True),
        Figure("pg.write.lost", f"{writing}: runs lost", "count", Target("<=", 0), mlflow=True),
        Figure("pg.write.errors", f"{writing}: failed writes and reads", "count", mlflow=True),
        Figure("pg.write.read", f"{writing}: read, median", "ms", Target("<=", 150),
               mlflow=True),
        Figure("pg.write.read_p99", f"{writing}: read, p99", "ms", mlflow=True),
        Figure("pg.visible.one", "PostgreSQL: end in long-lived process A -> visible in "
               "long-lived process B", "ms", Target("<=", 20), mlflow=True),
        Figure("pg.visible.script", "PostgreSQL: end in a fresh script A -> visible in "
               "long-lived process B", "ms", mlflow=True),
    ]


def read_figures(ctx: Context) -> list[Figure]:
    """The read figures at 100k runs (their targets hold at that size only)."""
    n = _size(ctx)
    at = (lambda ms: Target("<=", ms)) if n == _TARGET_AT else (lambda ms: None)
    return [
        *(Figure(f"pg.query.{kind}", f"PostgreSQL, {n:,} runs: {title}", "ms", at(ms),
                 mlflow=True) for kind, title, ms in _QUERIES),
        Figure("pg.widget.render", f"PostgreSQL, {n:,} runs: runs widget first render", "ms",
               at(500)),
    ]


@group("postgres", write_figures)
def measure_postgres(ctx: Context) -> dict[str, Outcome]:
    """Start a cluster, measure the writers with readers and the visibility; stop it."""
    require("tracker", "Catalog")
    with _server(ctx) as server:
        return _writes(ctx, server)


@group("postgres_100k", read_figures)
def measure_postgres_100k(ctx: Context) -> dict[str, Outcome]:
    """Start a cluster, load each side's runs, measure the reads; stop it."""
    require("tracker", "Catalog")
    require("tracker.storage.pg_writer", "apply")
    with _server(ctx) as server:
        return _reads(ctx, server)


@contextmanager
def _server(ctx: Context) -> Iterator[_Server]:
    """A running cluster's databases for both sides, or NotAvailable saying what is
    missing; the cluster stops afterwards."""
    from benchmarks import pg_server

    try:
        import psycopg  # noqa: F401 (the cluster's admin() and tracker's catalogs need it)

        cluster = pg_server.Cluster({"max_connections": "200"})
    except (ImportError, pg_server.PostgresUnavailable) as error:
        raise NotAvailable(f"no PostgreSQL server: {error}") from None
    try:
        yield _Server(ctx, cluster)
    finally:
        cluster.close()


class _Server:
    """The cluster's databases as each side's store (a fresh database per store)."""

    def __init__(self, ctx: Context, cluster: Any) -> None:
        self._ctx = ctx
        self._cluster = cluster
        self.mlflow_missing = ctx.mlflow_missing or (
            None if mlflow_env.has_driver() else "the MLflow venv has no psycopg2 (run the "
            "full suite once to add it)")

    def _database(self) -> str:
        name = f"b_{uuid.uuid4().hex[:12]}"
        self._cluster.admin(f"CREATE DATABASE {name}")
        return name

    def tracker_store(self) -> dict[str, str]:
        """A new tracker catalog in a database of its own."""
        return {"catalog": self._cluster.url(self._database())}

    def mlflow_store(self) -> dict[str, str]:
        """A new MLflow tracking database, its artifacts in a temporary folder."""
        folder = tempfile.mkdtemp(dir=self._ctx.workdir)
        # SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3: name the driver MLflow ships
        return {"uri": self._cluster.url(self._database(), scheme="postgresql+psycopg2"),
                "folder": folder}

    def on_mlflow(self, keys: list[str],
                  measure_it: Callable[[dict[str, str]], dict[str, Measure]]
                  ) -> dict[str, Measure]:
        """MLflow's figures on a new store, or each key "not available" saying why."""
        if self.mlflow_missing is not None:
            return dict.fromkeys(keys, Measure.unavailable(self.mlflow_missing))
        return measure_it(self.mlflow_store())


def _reads(ctx: Context, server: _Server) -> dict[str, Outcome]:
    """The query figures and the widget's first render on ``_size(ctx)`` runs per side."""
    n = _size(ctx)
    job = {"op": "query", "n": n, "repeats": ctx.repeats, "budget_s": 5 if ctx.quick else 20}
    ours = server.tracker_store()
    _populated(tracker_job({"op": "pg_populate", "n": n, **ours}), "tracker", n)
    our_kinds, our_rows = queries.run_kinds(tracker_job, {**job, **ours}, timeout_s=None)
    render = {"op": "widget", "action": "render", "repeats": ctx.repeats, "budget_s": 20, **ours}
    kinds = [f"pg.query.{kind}" for kind, _, _ in _QUERIES]

    def mlflow_reads(store: dict[str, str]) -> dict[str, Measure]:
        _populated(mlflow_job({"op": "populate", "n": n, **store}), "MLflow", n)
        theirs, _ = queries.run_kinds(mlflow_job, {**job, **store}, timeout_s=ctx.timeout_s)
        return {f"pg.query.{kind}": theirs[kind] for kind, _, _ in _QUERIES}

    theirs = server.on_mlflow(kinds, mlflow_reads)
    outcomes = {f"pg.query.{kind}": Outcome(our_kinds[kind].noted(f"{our_rows.get(kind)} rows"),
                                            theirs[f"pg.query.{kind}"])
                for kind, _, _ in _QUERIES}
    outcomes["pg.widget.render"] = Outcome(measure(tracker_job(render), "ms"))
    return outcomes


def _populated(result: Any, side: str, n: int) -> None:
    seconds = result.check().result["seconds"]
    log(f"postgres: loaded {n:,} runs into {side}'s database in {seconds:.1f} s")


def _writes(ctx: Context, server: _Server) -> dict[str, Outcome]:
    """Writers with readers, then one run's way from A to B, on each side."""
    keys = [f"pg.write.{key}" for key in ("runs_per_s", "lost", "errors", "read", "read_p99")]
    keys += ["pg.visible.one", "pg.visible.script"]

    def side_figures(side: str, store: dict[str, str]) -> dict[str, Measure]:
        figures = concurrency.contest(ctx, side, store, runs_each=_runs_each(ctx),
                                      readers=concurrency.READERS, prefix="pg.write")
        seen = visibility.visibility(ctx, side, store, scripts=False)
        return {**figures, "pg.visible.one": visibility.live_visibility(ctx, side, store),
                "pg.visible.script": seen["visible.one"]}

    ours = server.tracker_store()
    # one run recorded through the public API first, as the other groups' stores hold
    tracker_job({"op": "first_run"}, env={"TRACKER_CATALOG": ours["catalog"]}).check()
    ours_measured = side_figures("tracker_side", ours)

    def mlflow_writes(store: dict[str, str]) -> dict[str, Measure]:
        mlflow_job({"op": "first_run", **store}).check()
        return side_figures("mlflow_side", store)

    if ctx.quick:  # 10 MLflow processes starting at once take minutes on 2 busy cores
        theirs = dict.fromkeys(keys, Measure(missing="not measured in --quick"))
    else:
        theirs = server.on_mlflow(keys, mlflow_writes)
    return {key: Outcome(ours_measured[key], theirs.get(key)) for key in keys}
