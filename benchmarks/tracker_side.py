"""tracker's half of every comparison, run in the project venv as a fresh process per job.

``python -m benchmarks.tracker_side '<json job>'`` runs one job (see :mod:`benchmarks.jobs`).
Jobs mirror :mod:`benchmarks.mlflow_side`; every catalog is a temporary file named in the job
(``~/.tracker`` is never touched).
"""

from __future__ import annotations

import os
import time
from typing import Any

from benchmarks import data
from benchmarks.jobs import emit, per_call_batch, read_loop, repeat, serve, wait_for_go, watch

_POPULATE_CHUNK = 5_000  # runs per write transaction when populating


def op_import(job: dict[str, Any]) -> dict[str, Any]:
    """Time ``import tracker`` in this fresh process."""
    started = time.perf_counter()
    import tracker  # noqa: F401

    emit({"sample": time.perf_counter() - started})
    return {}


def op_first_run(job: dict[str, Any]) -> dict[str, Any]:
    """Import, start and end one run in the catalog of $TRACKER_CATALOG (the runner times it)."""
    import tracker

    run = tracker.start_run()
    tracker.end_run()
    return {"run_id": run.id}


def op_one_run(job: dict[str, Any]) -> dict[str, Any]:
    """Time start + log_params(20) + log_metrics(5) + end of one run, after a warm-up run.

    Samples stop when ``end_run`` returns (the run is durable in the spool); ``flushed`` holds
    the times until ``flush()`` returns (the run is in the catalog).
    """
    import tracker

    catalog = tracker.Catalog(job["catalog"])
    runs = data.synthetic_runs(job["repeats"] + 1)
    flushed: list[float] = []

    def one() -> float:
        run = next(runs)
        started = time.perf_counter()
        catalog.start_run(run.name)
        catalog.log_params(run.params)
        catalog.log_metrics(run.metrics)
        catalog.end_run()
        ended = time.perf_counter() - started
        catalog.flush()
        flushed.append(time.perf_counter() - started)
        return ended

    one()
    flushed.clear()
    repeat(one, repeats=job["repeats"], budget_s=job["budget_s"])
    return {"flushed": flushed}


def op_log_calls(job: dict[str, Any]) -> dict[str, Any]:
    """Per-call seconds of ``tracker.log_param`` or ``tracker.log_metric``, in batches."""
    import tracker

    tracker.use_catalog(job["catalog"])
    log = tracker.log_param if job["kind"] == "param" else tracker.log_metric
    batch = per_call_batch(log, kind=job["kind"], size=job["batch"])

    with tracker.start_run("calls"):
        log("warmup", 1.0)
        repeat(batch, repeats=job["repeats"], budget_s=job["budget_s"])
    return {}


def op_metric_loop(job: dict[str, Any]) -> dict[str, Any]:
    """Seconds for ``calls`` log_metric calls in a loop; also loop + ``flush()`` to the catalog."""
    import tracker

    tracker.use_catalog(job["catalog"])
    flushed: list[float] = []

    def loop() -> float:
        with tracker.start_run(f"loop-{len(flushed)}"):
            started = time.perf_counter()
            for step in range(job["calls"]):
                tracker.log_metric("loss", 1.0 / (step + 1), step=step)
            looped = time.perf_counter() - started
            tracker.flush()
            flushed.append(time.perf_counter() - started)
        return looped

    repeat(loop, repeats=job["repeats"], budget_s=job["budget_s"])
    return {"flushed": flushed}


def op_populate(job: dict[str, Any]) -> dict[str, Any]:
    """Write ``n`` synthetic runs through tracker's own ingest path, in large transactions.

    The public API ends each run with a synchronous catalog write (~50 ms), which would take
    over an hour for 100k runs; ``delivery.write_events`` is the same code the flusher runs.
    """
    import tracker
    from tracker import delivery
    from tracker.recorder import local_to

    catalog = tracker.Catalog(job["catalog"])
    started = time.perf_counter()
    local = local_to(catalog.spool_dir)
    for batch in _event_batches(job["n"]):
        delivery.write_events(catalog, batch, local=local)
    return {"seconds": time.perf_counter() - started}


def op_pg_populate(job: dict[str, Any]) -> dict[str, Any]:
    """Write ``n`` synthetic runs into a PostgreSQL catalog with its writer
    (``tracker.storage.pg_writer.apply``, what a flush into the server runs), one transaction
    per batch; then ANALYZE, as autovacuum would soon after a load this size."""
    from tracker.storage import pg_writer
    from tracker.storage.pg_store import PgStore

    store = PgStore(job["catalog"], 60.0)
    started = time.perf_counter()
    for batch in _event_batches(job["n"]):
        with store.connect(write=True) as con:
            pg_writer.apply(con, batch)
    with store.connect(write=True) as con:
        con.execute("ANALYZE")
    return {"seconds": time.perf_counter() - started}


def _event_batches(n: int) -> Any:
    """The events of ``n`` synthetic runs, :data:`_POPULATE_CHUNK` runs per list."""
    from tracker import _ids, values

    batch: list[Any] = []
    for i, run in enumerate(data.synthetic_runs(n), start=1):
        batch += _run_events(_ids.new_run_id(), run, values.normalize_param)
        if i % _POPULATE_CHUNK == 0:
            yield batch
            batch = []
    if batch:
        yield batch


def _run_events(run_id: str, run: data.SyntheticRun, normalize: Any) -> list[Any]:
    """The events a recorder would spool for this run, numbered as a spool numbers them."""
    from tracker import events as shapes

    attrs = {"name": run.name, "project": "bench", "started_at": run.started, "host": "bench"}
    events: list[Any] = [shapes.Start(run_id, attrs)]
    for key, value in run.params.items():
        stored, kind, _ = normalize(value)
        events.append(shapes.Param(run_id, key, stored, kind, run.started))
    events += [shapes.Metric(run_id, k, v, None, run.started) for k, v in run.metrics.items()]
    if run.status != "running":
        events.append(shapes.End(run_id, run.status, run.started + run.duration, None))
    return [shapes.Spooled(run_id, seq, event) for seq, event in enumerate(events, start=1)]


def op_query(job: dict[str, Any]) -> dict[str, Any]:
    """Time runs-table queries (``kinds``: table, filter, top, count) on a populated catalog."""
    import tracker

    catalog = tracker.Catalog(job["catalog"])
    catalog.runs(limit=1)  # warm-up: imports duckdb and pandas, as MLflow's side does
    rows: dict[str, int] = {}
    for kind in job["kinds"]:

        def once(kind: str = kind) -> float:
            started = time.perf_counter()
            rows[kind] = _QUERIES[kind](catalog)
            return time.perf_counter() - started

        repeat(once, repeats=job["repeats"], budget_s=job["budget_s"], tag=kind)
    return {"rows": rows}


def _table(catalog: Any) -> int:
    return len(catalog.runs())


def _filter(catalog: Any) -> int:
    return len(catalog.runs(data.FILTER))


def _top(catalog: Any) -> int:
    return len(catalog.runs(order_by=f"metrics.{data.ORDER_METRIC} DESC", limit=100))


def _count(catalog: Any) -> int:
    return len(catalog.count_runs())


_QUERIES = {"table": _table, "filter": _filter, "top": _top, "count": _count}


def op_worker(job: dict[str, Any]) -> dict[str, Any]:
    """One of several processes writing runs at once; each run is flushed before the next."""
    import tracker

    catalog = tracker.Catalog(job["catalog"])
    catalog.runs(limit=1)  # a process that has used the catalog before: duckdb imported
    waits: list[float] = []
    errors: dict[str, int] = {}
    committed: list[str] = []
    wait_for_go(job["go"])
    for run in data.synthetic_runs(job["runs"], seed=job["worker"]):
        started = time.perf_counter()
        try:
            active = catalog.start_run(f"w{job['worker']}-{run.name}")
            catalog.log_params(dict(list(run.params.items())[:5]))
            catalog.log_metric("m0", run.metrics["m0"])
            catalog.end_run()
            catalog.flush()  # the run is in the catalog, not only in the spool
        except Exception as error:  # counted, as a user's notebook would see it
            errors[type(error).__name__] = errors.get(type(error).__name__, 0) + 1
            continue
        finally:
            waits.append(time.perf_counter() - started)
        committed.append(active.id)
    return {"waits": waits, "errors": errors, "committed": committed,
            "finished_at": time.time()}


def op_reader(job: dict[str, Any]) -> dict[str, Any]:
    """One of the processes looping over ``tracker.runs()`` while others write."""
    import tracker

    tracker.use_catalog(job["catalog"])
    return {"errors": read_loop(tracker.runs, go=job["go"], stop=job["stop"])}


def op_watch(job: dict[str, Any]) -> dict[str, Any]:
    """Long-lived process B: polls ``tracker.runs()``, says when each completed run shows."""
    import tracker

    tracker.use_catalog(job["catalog"])

    def finished() -> set[str]:
        frame = tracker.runs()
        return set(frame.loc[frame["status"] == "completed", "name"])

    watch(finished, stop=job["stop"], poll_s=job["poll_s"])
    return {}


def op_watch_recent(job: dict[str, Any]) -> dict[str, Any]:
    """Long-lived process B reading the 10 newest runs (a runs browser's first page)."""
    import tracker

    tracker.use_catalog(job["catalog"])

    def finished() -> set[str]:
        frame = tracker.runs(limit=10)
        return set(frame.loc[frame["status"] == "completed", "name"])

    watch(finished, stop=job["stop"], poll_s=job["poll_s"])
    return {}


def op_end_runs(job: dict[str, Any]) -> dict[str, Any]:
    """Long-lived process A: one warm-up run, then ``count`` runs ``pause_s`` apart; each
    name with the time of its end call."""
    import tracker

    tracker.use_catalog(job["catalog"])
    ended_at = {}
    for i in range(job["count"] + 1):
        name = f"live-{i}"
        tracker.start_run(name)
        tracker.log_param("lr", 0.1)
        tracker.log_metric("loss", 0.5)
        if i:  # the first run warms the process up: imports, the connection
            ended_at[name] = time.time()
        tracker.end_run()
        time.sleep(job["pause_s"])
    return {"ended_at": ended_at}


def op_end_run(job: dict[str, Any]) -> dict[str, Any]:
    """Process A: start, log and end one run, then exit; ``ended_at`` is the end call's time."""
    import tracker

    tracker.use_catalog(job["catalog"])
    tracker.start_run(job["name"])
    tracker.log_param("lr", 0.1)
    tracker.log_metric("loss", 0.5)
    ended_at = time.time()
    tracker.end_run()
    return {"ended_at": ended_at}


def op_script(job: dict[str, Any]) -> dict[str, Any]:
    """Issue #10's script: ``runs`` runs of one metric, then exit with status 0."""
    import tracker

    tracker.use_catalog(job["catalog"])
    ended_at = 0.0
    for i in range(job["runs"]):
        with tracker.start_run(f"w{job['worker']}-{i}"):
            tracker.log_metric("loss", 1 / (i + 1))
            ended_at = time.time()
    return {"ended_at": ended_at}


def op_widget(job: dict[str, Any]) -> dict[str, Any]:
    """Time one RunTable action (render, page, sort, filter) on a populated catalog.

    Python side only: the widget is built and its page loaded, no browser draws it.
    """
    import tracker
    from tracker.widgets import RunTable

    catalog = tracker.Catalog(job["catalog"])
    table = RunTable(catalog=catalog, page_size=25, live=False)  # warm-up: imports, caches
    flips = iter(range(10**9))

    def render() -> float:
        started = time.perf_counter()
        RunTable(catalog=catalog, page_size=25, live=False).close()
        return time.perf_counter() - started

    def action() -> float:
        flip = next(flips) % 2
        started = time.perf_counter()
        if job["action"] == "page":
            table.next_page()
        elif job["action"] == "sort":
            table.sort_by(f"metrics.{data.ORDER_METRIC}", descending=bool(flip))
        else:  # a different filter each time, so no call is a no-op
            table.set_filter(data.FILTER if flip else "metrics.m1 > 0.5")
        return time.perf_counter() - started

    measure = render if job["action"] == "render" else action
    repeat(measure, repeats=job["repeats"], budget_s=job["budget_s"])
    shown = {"total": table.total, "rows": len(table.rows), "error": table.error_text}
    table.close()
    return shown


def op_chart(job: dict[str, Any]) -> dict[str, Any]:
    """Time RunCharts on a populated catalog: its first render, a change of the scatter's x
    (a field already read: the scatter redrawn), or of the filter (one sampled query, both
    charts redrawn). Python side only, as op_widget."""
    import tracker
    from tracker.widgets import RunCharts

    catalog = tracker.Catalog(job["catalog"])
    charts = RunCharts(catalog=catalog)  # warm-up: imports, caches
    flips = iter(range(10**9))

    def render() -> float:
        started = time.perf_counter()
        RunCharts(catalog=catalog).close()
        return time.perf_counter() - started

    def action() -> float:
        flip = next(flips) % 2
        started = time.perf_counter()
        if job["action"] == "axis":
            charts.x.value = "params.p0" if flip else "params.p1"
        else:
            charts.set_filter(data.FILTER if flip else "metrics.m1 > 0.5")
        return time.perf_counter() - started

    repeat(render if job["action"] == "render" else action, repeats=job["repeats"],
           budget_s=job["budget_s"])
    shown = {"note": charts.note.value, "svg_bytes": len(charts.parallel.value)}
    charts.close()
    return shown


def op_widget_memory(job: dict[str, Any]) -> dict[str, Any]:
    """Bytes of Python memory a RunTable holds after rendering and paging 5 times."""
    import gc
    import tracemalloc

    import tracker
    from tracker.widgets import RunTable

    catalog = tracker.Catalog(job["catalog"])
    RunTable(catalog=catalog, page_size=25, live=False).close()  # imports and caches first
    for _ in range(job["repeats"]):
        gc.collect()
        tracemalloc.start()
        table = RunTable(catalog=catalog, page_size=25, live=False)
        for _ in range(5):
            table.next_page()
        gc.collect()
        held, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        table.close()
        emit({"sample": held / 1024})
    return {}


def op_lineage(job: dict[str, Any]) -> dict[str, Any]:
    """Time ``lineage_graph(ref).svg()`` for the run that wrote a hub file (``side`` "hub") or
    for one of its ``readers`` ("reader"); the catalog is populated on first use."""
    import tracker

    catalog = tracker.Catalog(job["catalog"])
    if not catalog.path.exists():
        _populate_hub(catalog, job["readers"])
    writer, reader = catalog.sql("SELECT min(id) AS w, max(id) AS r FROM runs").iloc[0]
    ref = writer if job["side"] == "hub" else reader
    nodes = len(catalog.lineage_graph(ref).nodes)  # warm-up: imports, caches

    def once() -> float:
        started = time.perf_counter()
        catalog.lineage_graph(ref).svg()
        return time.perf_counter() - started

    repeat(once, repeats=job["repeats"], budget_s=job["budget_s"])
    return {"nodes": nodes}


def _populate_hub(catalog: Any, readers: int) -> None:
    """One run that wrote hub.parquet, then ``readers`` runs that read it (ids in that order)."""
    from tracker import _ids, delivery
    from tracker import events as shapes
    from tracker.recorder import local_to

    facts = {"hash": "xxh3_128:" + "0" * 32, "size": 1 << 20}
    batch: list[Any] = []
    started = time.time() - readers - 10
    for index in range(readers + 1):
        run_id, at = _ids.new_run_id(), started + index
        role = "output" if index == 0 else "input"
        events: list[Any] = [
            shapes.Start(run_id, {"name": f"reader-{index}" if index else "publish",
                                  "project": "bench", "started_at": at, "host": "bench"}),
            shapes.Artifact(run_id, role, "/data/hub.parquet", facts, at, "call"),
            shapes.End(run_id, "completed", at + 1, None)]
        batch += [shapes.Spooled(run_id, seq, event) for seq, event in enumerate(events, 1)]
    delivery.write_events(catalog, batch, local=local_to(catalog.spool_dir))


def op_count_runs(job: dict[str, Any]) -> dict[str, Any]:
    """The ids of every run in the catalog (what survived a concurrent write test)."""
    import tracker

    return {"ids": tracker.Catalog(job["catalog"]).runs()["id"].tolist()}


def op_hash(job: dict[str, Any]) -> dict[str, Any]:
    """Hash a new file of ``size`` bytes (fresh hasher per sample), then re-record it unchanged."""
    from tracker.hashing import FileHasher, file_facts

    path = job["path"]
    _write_random(path, job["size"])

    def new_data() -> float:
        started = time.perf_counter()
        FileHasher().hash(path)
        return time.perf_counter() - started

    repeat(new_data, repeats=job["repeats"], budget_s=job["budget_s"])
    # An unchanged file is one written a while ago: one modified within the last 2 s is hashed
    # again on purpose (its mtime may not move on a rewrite: tracker.hashing._RACY_SECONDS).
    time.sleep(max(0.0, 2.5 - (time.time() - os.stat(path).st_mtime)))
    file_facts(path)  # recorded once; the next calls see an unchanged file
    unchanged = []
    for _ in range(job["unchanged_repeats"]):
        started = time.perf_counter()
        file_facts(path)
        unchanged.append(time.perf_counter() - started)
    os.unlink(path)
    return {"unchanged": unchanged}


def op_scan(job: dict[str, Any]) -> dict[str, Any]:
    """Walk a folder of ``files`` files, ``changed`` of them written after the cell "started"."""
    from tracker.scan import changed_files

    folder = job["folder"]
    for index in range(job["files"] - job["changed"]):
        _touch(os.path.join(folder, f"d{index % 100}", f"f{index}.csv"))
    time.sleep(0.05)  # past the clock slack: the files above are older than the cell
    since = time.time_ns()
    for index in range(job["changed"]):
        _touch(os.path.join(folder, f"d{index}", f"new{index}.csv"))

    def scan() -> float:
        started = time.perf_counter()
        found = changed_files([folder], since)
        elapsed = time.perf_counter() - started
        assert found.complete and len(found.paths) == job["changed"], found
        return elapsed

    repeat(scan, repeats=job["repeats"], budget_s=job["budget_s"])
    return {}


def op_keep(job: dict[str, Any]) -> dict[str, Any]:
    """Keep a new output of ``size`` bytes (log_output + end + flush) against ``cp`` of it, and
    restore it against ``cp`` of the stored copy, step by step in the same state (see
    :func:`_settled`); then ``copies`` runs write the same content to different paths, and the
    store's size is reported. Seconds and CPU seconds per step, one list entry per round."""
    import tracker
    from tracker import retrieval
    from tracker.recorder import name_contents

    folder, size = job["folder"], job["size"]
    catalog = tracker.Catalog(os.path.join(folder, "catalog.duckdb"))
    source = os.path.join(folder, "out.bin")
    rounds: dict[str, list[float]] = {}
    for index in range(job["repeats"]):
        _write_random(source, size)  # a new output each round
        for name, seconds in _keep_round(catalog, source, index).items():
            rounds.setdefault(name, []).append(seconds)
        emit({"sample": rounds["keep"][-1] / rounds["cp"][-1]})
    for index in range(job["copies"]):
        with catalog.start_run(f"same{index}") as run:
            run.log_output(source, keep=True)  # past the default per-file limit
        catalog.flush()
    name_contents(catalog)
    os.unlink(source)
    usage = retrieval.disk_usage(catalog)
    for entry in list(catalog.content_store.entries()):
        catalog.content_store.delete(entry.key)
    return {**rounds, "store_bytes": usage["bytes"]}


def _keep_round(catalog: Any, source: str, index: int) -> dict[str, float]:
    """One round: cp, cp + fdatasync, keep (returning once the content is copied, verified
    and the run recorded: its name and sync follow in the background), keep until it is
    named and stored, keep until its bytes are on disk, and the copy + hashes + fdatasync
    alone, in an order rotated each round, each keep into an empty store; then cp of a kept
    copy and restore, in the order of the round's parity. Each step starts settled
    (:func:`_settled`); the kept copy is deleted after."""
    import subprocess
    from pathlib import Path

    from tracker import retrieval
    from tracker.recorder import name_contents
    from tracker.storage import write_behind
    from tracker.storage.spools import sync_path

    copy = source + ".copy"
    runs: list[Any] = []

    def keep() -> None:  # the run starts here (<1 ms): open during cp, it might record more
        runs.append(catalog.start_run(f"keep{index}-{len(runs)}"))
        runs[-1].log_output(source, keep=True)
        runs[-1].end()
        catalog.flush()  # copied, verified and the run recorded; its name and sync follow

    def keep_named() -> None:
        keep()
        name_contents(catalog)  # BLAKE3, moved into the store, recorded kept

    def keep_synced() -> None:
        keep_named()
        write_behind.wait_synced()

    def cp() -> None:
        subprocess.run(["cp", source, copy], check=True)

    def cp_synced() -> None:  # what keeping promises: the bytes on disk when it returns
        cp()
        sync_path(Path(copy))

    def copy_synced() -> None:
        _copy_hashed(source, copy)
        sync_path(Path(copy))

    steps = [("cp", cp), ("cp_sync", cp_synced), ("keep", keep), ("keep_named", keep_named),
             ("keep_synced", keep_synced), ("copy_hashed", copy_synced)]
    turn = index % len(steps)
    took = _timed_steps(steps[turn:] + steps[:turn], source, copy, lambda: _emptied(catalog))
    keep_synced()  # untimed: the kept copy restored below
    kept = retrieval.get_artifact(catalog, source, run=runs[-1].id)
    blob = os.path.join(catalog.blob_dir, kept.blob or "")
    back = [("cp_back", lambda: subprocess.run(["cp", blob, copy], check=True)),
            ("restore", lambda: kept.restore(copy))]
    took |= _timed_steps(back[::-1] if index % 2 else back, blob, copy)
    catalog.content_store.delete(kept.blob)
    return took


def op_keep_clone(job: dict[str, Any]) -> dict[str, Any]:
    """Keep a new output of ``size`` bytes on a file system with reflinks (``folder``), against
    ``cp --reflink=never`` of it: the bytes a clone saves, and the hashes it does not. Seconds
    and CPU seconds per step, one list entry per round; ``shared``: whether each kept copy was a
    clone (FIEMAP's shared flag, through filefrag)."""
    import subprocess

    import tracker
    from tracker.recorder import name_contents
    from tracker.storage.hashed_copy import hash_fd

    folder, size = job["folder"], job["size"]
    catalog = tracker.Catalog(os.path.join(folder, "catalog.duckdb"))
    source, copy = os.path.join(folder, "out.bin"), os.path.join(folder, "out.copy")
    rounds: dict[str, list[float]] = {"shared": []}

    def keep() -> None:  # cloned, verified and recorded; named next, in the background
        with catalog.start_run("clone") as run:
            run.log_output(source, keep=True)
        catalog.flush()

    def keep_named() -> None:
        keep()
        name_contents(catalog)

    def xxh3() -> None:  # the version's hash, which recording the output costs, kept or not
        fd = os.open(source, os.O_RDONLY)
        try:
            hash_fd(fd, strong=False)
        finally:
            os.close(fd)

    def run() -> None:  # what a run costs without the output: its start, end and write
        with catalog.start_run("empty"):
            pass
        catalog.flush()

    steps = [("cp", lambda: subprocess.run(["cp", "--reflink=never", source, copy],
                                           check=True)), ("keep", keep),
             ("keep_named", keep_named), ("xxh3", xxh3), ("run", run)]
    for index in range(job["repeats"]):
        _write_random(source, size)
        turn = index % len(steps)
        for name, seconds in _timed_steps(steps[turn:] + steps[:turn], source, copy,
                                          lambda: _emptied(catalog)).items():
            rounds.setdefault(name, []).append(seconds)
        _emptied(catalog)
        keep_named()  # untimed, into an empty store: was the timed keep's copy a clone?
        kept = next(iter(catalog.content_store.entries())).key
        rounds["shared"].append(float(_shared(os.path.join(catalog.blob_dir, kept))))
        emit({"sample": rounds["keep"][-1] / rounds["cp"][-1]})
    _emptied(catalog)
    return rounds


def _emptied(catalog: Any) -> None:
    """Empty ``catalog``'s content store, once no earlier name or sync is on its way: each
    keep stores anew."""
    from tracker.recorder import name_contents
    from tracker.storage import write_behind

    name_contents(catalog)
    write_behind.wait_synced()
    for entry in list(catalog.content_store.entries()):
        catalog.content_store.delete(entry.key)


def _shared(path: str) -> bool:
    """Whether every extent of ``path`` is shared with another file (FIEMAP's shared flag,
    through filefrag; tests/test_contents.py has its own: benchmarks/ is not installed)."""
    import subprocess

    listing = subprocess.run(["filefrag", "-v", path], capture_output=True, text=True,
                             check=True).stdout.splitlines()
    extents = [line for line in listing if line.lstrip()[:1].isdigit()]
    return bool(extents) and all("shared" in line for line in extents)


def _copy_hashed(source: str, copy: str) -> None:
    """What keeping does to a file's bytes, without the run: the kernel's copy, hashed."""
    from tracker.storage.hashed_copy import copy_hashed

    src = os.open(source, os.O_RDONLY)
    try:
        out = os.open(copy, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            copy_hashed(src, out)
        finally:
            os.close(out)
    finally:
        os.close(src)


def _timed_steps(steps: list[tuple[str, Any]], source: str, copy: str,
                 reset: Any = None) -> dict[str, float]:
    """Seconds (``name``) and CPU seconds of this process and its children (``name_cpu``:
    the flusher's thread counts, cp's process too) of each step, each started settled (and
    after ``reset``, untimed, when given)."""
    took = {}
    for name, step in steps:
        if reset is not None:
            reset()
        _settled(source, copy)
        cpu, started = _cpu_seconds(), time.perf_counter()
        step()
        took[name] = time.perf_counter() - started
        took[f"{name}_cpu"] = _cpu_seconds() - cpu
    _settled(source, copy)
    return took


def _settled(source: str, copy: str) -> None:
    """The same state before every step: ``source`` read once (all in the page cache: warm),
    ``copy`` gone, and the file system synced (no step pays for the write-back of the
    gigabyte the step before it, or the round's new output, left dirty)."""
    import subprocess

    with open(source, "rb") as stream:
        while stream.read(16 << 20):
            pass
    if os.path.exists(copy):
        os.unlink(copy)
    subprocess.run(["sync", "-f", os.path.dirname(source)], check=True)


def _cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def _touch(path: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as out:
        out.write("x")


def _write_random(path: str, size: int) -> None:
    chunk = os.urandom(16 << 20)  # incompressible, so no filesystem shortcut applies
    with open(path, "wb") as out:
        for offset in range(0, size, len(chunk)):
            out.write(chunk[: min(len(chunk), size - offset)])


if __name__ == "__main__":
    serve({name[3:]: func for name, func in dict(globals()).items() if name.startswith("op_")})
