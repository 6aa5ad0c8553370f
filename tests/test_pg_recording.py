"""Recording runs into a PostgreSQL catalog (tracker/storage/pg_recovery.py, wired through the
recorder and tracker/delivery.py), against the real server of tests/pg_server.py: runs reach the
server for every other process, a server that goes away mid-run or a connection cut mid-flush
costs nothing and duplicates nothing, dead processes' spools are sent and their runs crashed,
and a password in the URL names no file and shows in no message."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_integration import execute, kernel, write_notebook

import tracker
import tracker.cli
from tracker import cli
from tracker.errors import CatalogError, TrackerWarning
from tracker.storage import pg_recovery


def _elsewhere(url: str, code: str, *, env: dict[str, str] | None = None,
               host: str | None = None) -> Any:
    """Run ``code`` (which prints one JSON value last) in another Python process with the
    catalog ``catalog`` open, on this machine or, with ``host``, on a "machine" of that name (a
    UTS namespace: the process's hostname differs, as on another computer); its value."""
    script = f"import json, tracker\ncatalog = tracker.Catalog({url!r})\n" + \
        textwrap.dedent(code)
    argv = [sys.executable, "-c", script]
    if host is not None:
        argv = ["unshare", "--uts", "sh", "-c", f'hostname {host} && exec "$@"', "-", *argv]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _metric_rows(catalog: tracker.Catalog, run_id: str) -> list[tuple[Any, ...]]:
    frame = catalog.sql("SELECT key, value, step FROM metrics WHERE run_id = $1 "
                        "ORDER BY step", [run_id])
    return [tuple(row) for row in frame.itertuples(index=False)]


def _running(url: str, name: str, key: str, value: float) -> tuple[tracker.Catalog, Any]:
    """A catalog with a run started and one value of a metric (step 0) on the server."""
    catalog = tracker.Catalog(url)
    run = catalog.start_run(name)
    catalog.log_metric(key, value, step=0)
    catalog.flush()
    return catalog, run


class _Outage:
    """Takes the test cluster's server away and brings it back."""

    def __init__(self, cluster: Any) -> None:
        self.cluster = cluster

    def stop(self) -> None:
        # The test cluster commits asynchronously (synchronous_commit = off) and stops with
        # -m immediate: a checkpoint first, or the last commits, acknowledged, are lost.
        self.cluster.admin("CHECKPOINT")
        self.cluster.stop()

    def start(self) -> None:
        self.cluster.start()


@pytest.fixture
def stopped(pg_cluster: Any) -> Iterator[_Outage]:
    """The cluster, to stop and start within a test; running again after it whatever happens."""
    yield _Outage(pg_cluster)
    try:
        pg_cluster.start()
    except Exception:
        pass  # already running


def test_a_run_reaches_the_server_for_every_other_process(pg_url: str) -> None:
    catalog = tracker.Catalog(pg_url)
    run = catalog.start_run("train", params={"lr": 0.1, "layers": 3}, labels=["gpu"])
    catalog.log_metric("loss", 0.5, step=1)
    catalog.set_tag("stage", "dev")
    catalog.flush()
    seen = _elsewhere(pg_url, f"""
        info = catalog.get_run({run.id!r})
        print(json.dumps([info.status, info.params, info.metrics, info.tags, info.host]))""")
    assert seen[:4] == ["running", {"lr": 0.1, "layers": 3}, {"loss": 0.5}, {"stage": "dev"}]
    assert seen[4] == os.uname().nodename
    assert catalog.current_run() is run

    catalog.log_metric("loss", 0.25, step=2)
    catalog.end_run()
    # end() hands the write to the flusher at once: no flush called, another process sees it
    deadline = time.monotonic() + 10
    while True:
        status = _elsewhere(pg_url, f"print(json.dumps(catalog.get_run({run.id!r}).status))")
        if status == "completed" or time.monotonic() > deadline:
            break
    assert status == "completed"
    assert _metric_rows(catalog, run.id) == [("loss", 0.5, 1), ("loss", 0.25, 2)]
    assert catalog.runs()["labels"].tolist() == [["gpu"]]


def test_the_spool_is_a_private_folder_named_without_the_password(
        pg_cluster: Any, tmp_path: Path) -> None:
    import pg_server

    database = pg_cluster.fresh_database()
    url = pg_cluster.url(database, pg_server.PASSWORD_ROLE, pg_server.ROLE_PASSWORD)
    pg_cluster.admin(f"GRANT ALL ON DATABASE {database} TO {pg_server.PASSWORD_ROLE}")
    pg_cluster.admin(f"ALTER DATABASE {database} OWNER TO {pg_server.PASSWORD_ROLE}")
    catalog = tracker.Catalog(url)
    with catalog.start_run("secretive") as run:
        run.log_metric("m", 1.0)
    catalog.flush()
    assert catalog.runs()["name"].tolist() == ["secretive"]
    spool = catalog.spool_dir
    assert spool.is_relative_to(tmp_path / "data")  # $XDG_DATA_HOME, never the cwd
    assert (spool.parent.stat().st_mode & 0o777) == 0o700
    # the same URL with another password is the same catalog: the same folder
    other = url.replace("pa%3Ass", "other")
    assert other != url and tracker.Catalog(other).spool_dir == spool
    written = [str(p) for p in (tmp_path / "data").rglob("*")]
    contents = "".join(p.read_text(errors="replace") for p in (tmp_path / "data").rglob("*")
                       if p.is_file())
    for secret in (pg_server.ROLE_PASSWORD, "pa%3Ass%40w"):
        assert secret not in "".join(written) and secret not in contents
    # a wrong password: the error names the catalog with its password hidden
    with pytest.raises(CatalogError) as refused:
        tracker.Catalog(other).runs()
    assert "other" not in str(refused.value) and "***" in str(refused.value)


def test_a_server_stopped_mid_run_loses_nothing_and_warns_once(
        pg_url: str, stopped: Any) -> None:
    catalog, run = _running(pg_url, "through the outage", "loss", 1.0)
    stopped.stop()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in range(1, 31):  # cells keep running while the server is away
            catalog.log_metric("loss", 1.0 / (step + 1), step=step)
            time.sleep(0.05)
        with pytest.raises(CatalogError, match="cannot connect"):
            catalog.flush(timeout=2)
        run.end()
        assert catalog.current_run() is None
    ours = [w for w in caught if issubclass(w.category, TrackerWarning)]
    assert len(ours) == 1, [str(w.message) for w in ours]
    assert "retries in the background" in str(ours[0].message)
    assert pg_recovery.waiting(catalog._pg) == 1  # in the local spool meanwhile

    stopped.start()
    catalog.flush()
    assert _metric_rows(catalog, run.id) == [("loss", 1.0 / (s + 1), s) for s in range(31)]
    assert catalog.get_run(run.id).status == "completed"
    assert pg_recovery.waiting(catalog._pg) == 0


def test_a_notebook_that_starts_offline_warns_once_and_sends_everything_later(
        ip: Any, pg_url: str, stopped: _Outage, monkeypatch: pytest.MonkeyPatch) -> None:
    from tracker import api

    secret_url = pg_url.replace("postgresql://postgres@", "postgresql://postgres:hunter2@")
    monkeypatch.setenv("TRACKER_CATALOG", secret_url)
    api.use_catalog(None)  # the default catalog, as a kernel started with this setting has it
    tracker.Catalog(pg_url).runs()  # the tables exist; then the server goes away
    stopped.stop()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ip.run_cell("%load_ext tracker")
        for step in range(5):  # five cells, each logging, while the server is away
            ip.run_cell(f"import tracker\ntracker.log_metric('m', {step}.0, step={step})")
            time.sleep(0.3)
    said = [str(w.message) for w in caught if issubclass(w.category, TrackerWarning)
            and "no notebook found" not in str(w.message)]
    assert len(said) == 1 and "retries in the background" in said[0], said
    assert "hunter2" not in said[0] and "postgres:***@" in said[0]
    stopped.start()
    run = api.current_run()
    assert run is not None
    tracker.flush()
    assert _metric_rows(tracker.Catalog(pg_url), run.id) == [("m", float(s), s) for s in range(5)]
    assert len(tracker.Catalog(pg_url).get_run(run.id).cells) == 6


def test_a_connection_cut_during_a_flush_is_retried_without_duplicates(
        pg_url: str, pg_cluster: Any) -> None:
    import psycopg

    catalog, run = _running(pg_url, "cut", "acc", 0.1)
    with psycopg.connect(pg_url) as admin:
        # hold the run's row, so the next flush waits inside its transaction
        admin.execute("SELECT 1 FROM tracker.runs WHERE id = %s FOR UPDATE", [run.id])
        for step in range(1, 6):
            catalog.log_metric("acc", 0.1 * (step + 1), step=step)
        failures: list[BaseException] = []
        flushing = threading.Thread(target=lambda: _catching(catalog.flush, failures))
        flushing.start()
        with psycopg.connect(pg_url, autocommit=True) as killer:
            waiting = _wait_for_waiting_writer(killer)
            killed = killer.execute("SELECT pg_terminate_backend(%s)", [waiting]).fetchone()
        assert killed == (True,)
        admin.rollback()
        flushing.join(30)
    assert len(failures) == 1 and isinstance(failures[0], CatalogError)
    catalog.flush()  # the batch the cut flush held is sent again: applied once
    catalog.end_run()
    catalog.flush()
    assert _metric_rows(catalog, run.id) == [
        ("acc", pytest.approx(0.1 * (s + 1)), s) for s in range(6)]


def test_a_write_the_server_refuses_is_a_catalog_error_and_waits_in_the_spool(
        pg_url: str, pg_cluster: Any) -> None:
    catalog, run = _running(pg_url, "refused", "m", 1.0)
    database = pg_url.split("@/")[1].split("?")[0]
    pg_cluster.admin("ALTER TABLE tracker.metrics RENAME TO metrics_away", database)
    with warnings.catch_warnings(record=True):  # the flusher may meet it first: one warning
        warnings.simplefilter("always")
        catalog.log_metric("m", 2.0, step=1)
        with pytest.raises(CatalogError, match="refused what was recorded.*tracker sync"):
            catalog.flush()
    assert pg_recovery.waiting(catalog._pg) == 1
    pg_cluster.admin("ALTER TABLE tracker.metrics_away RENAME TO metrics", database)
    catalog.end_run()
    catalog.flush()
    assert _metric_rows(catalog, run.id) == [("m", 1.0, 0), ("m", 2.0, 1)]


def _catching(call: Any, failures: list[BaseException]) -> None:
    try:
        call()
    except BaseException as exc:
        failures.append(exc)


def _wait_for_waiting_writer(con: Any) -> int:
    """The backend pid of tracker's writer once it waits for a row lock."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        row = con.execute("SELECT pid FROM pg_stat_activity WHERE application_name = 'tracker' "
                          "AND wait_event_type = 'Lock'").fetchone()
        if row is not None:
            return int(row[0])
        time.sleep(0.05)
    raise AssertionError("the flush never waited for the locked row")


def _dead_spool(catalog: tracker.Catalog, lines: list[list[Any]]) -> Path:
    """A spool left by a process that is gone (a real one, exited), holding ``lines``."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    from tracker._process import process_start

    catalog.ensure_folder()
    catalog.spool_dir.mkdir(mode=0o700, exist_ok=True)
    spool = catalog.spool_dir / f"{os.uname().nodename}-{gone.pid}-x.jsonl"
    owner = {"owner": {"host": os.uname().nodename, "pid": gone.pid,
                       "process_start": process_start(os.getpid())}}
    spool.write_text("".join(json.dumps(line) + "\n" for line in [owner, *lines]))
    return spool


def test_a_dead_process_spool_is_sent_by_the_next_write(pg_url: str) -> None:
    catalog = tracker.Catalog(pg_url)
    now = time.time()
    spool = _dead_spool(catalog, [
        [1, "start", "01orphan00000", {"name": "orphan", "started_at": now, "pid": 1}],
        [2, "metric", "01orphan00000", "m", 3.0, 0, now],
        [1, "metric", "01nostart0000", "m", 1.0, 0, now],  # its start never reached a spool
    ])
    assert pg_recovery.waiting(catalog._pg) == 2
    with pytest.warns(TrackerWarning, match="1 event.* could not store were kept in"):
        with catalog.start_run("next") as run:
            run.log_metric("m", 1.0)
        catalog.flush()
    orphan = catalog.get_run("01orphan00000")
    assert (orphan.status, orphan.metrics) == ("crashed", {"m": 3.0})
    assert not spool.exists()
    kept = (catalog.spool_dir / "quarantine").glob("*.jsonl")
    quarantined = [json.loads(line) for path in kept for line in path.read_text().splitlines()]
    assert [(q["run_id"], q["seq"]) for q in quarantined] == [("01nostart0000", 1)]
    assert pg_recovery.waiting(catalog._pg) == 0


def test_tracker_runs_counts_what_waits_and_tracker_sync_sends_it(
        pg_url: str, stopped: Any, capsys: pytest.CaptureFixture[str]) -> None:
    stopped.stop()
    # a script records while the server is away, and exits: its run waits in the spool
    _elsewhere(pg_url, """
        import warnings
        warnings.simplefilter("ignore")
        with catalog.start_run("offline", params={"p": 1}) as run:
            run.log_metric("m", 2.0)
        print(json.dumps(run.id))""")
    stopped.start()
    assert cli.main(["--catalog", pg_url, "runs"]) == 0
    assert "1 run recorded on this machine not yet sent" in capsys.readouterr().err
    assert cli.main(["--catalog", pg_url, "sync"]) == 0
    assert "nothing waiting" in capsys.readouterr().out
    assert cli.main(["--catalog", pg_url, "runs"]) == 0
    shown = capsys.readouterr()
    assert "offline" in shown.out and "not yet sent" not in shown.err
    info = tracker.Catalog(pg_url).runs()
    assert (info["status"].tolist(), info["metrics.m"].tolist()) == (["completed"], [2.0])


@pytest.mark.slow
def test_two_machines_record_into_one_catalog_and_judge_only_their_own(
        pg_url: str, tmp_path: Path) -> None:
    if subprocess.run(["unshare", "--uts", "true"], capture_output=True).returncode != 0:
        pytest.skip("unshare --uts needs root: two hostnames cannot be simulated here")
    record = """
        import os
        run = catalog.start_run(os.uname().nodename)
        run.log_metric("m", 1.0)
        catalog.flush()
        print(json.dumps(run.id))
        os.kill(os.getpid(), 9)  # dies without ending its run"""
    machines = {host: {"XDG_DATA_HOME": str(tmp_path / host)} for host in ("box-a", "box-b")}
    doomed = {}
    for host, env in machines.items():
        argv = [sys.executable, "-c",
                f"import json, tracker\ncatalog = tracker.Catalog({pg_url!r})\n"
                + textwrap.dedent(record)]
        done = subprocess.run(["unshare", "--uts", "sh", "-c", f'hostname {host} && exec "$@"',
                               "-", *argv], capture_output=True, text=True, timeout=120,
                              env={**os.environ, **env})
        assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
        doomed[host] = json.loads(done.stdout.strip().splitlines()[-1])
    sync = "print(json.dumps(catalog.sync()))"
    # box-b cannot tell whether box-a's process lives: it leaves box-a's run alone
    assert _elsewhere(pg_url, sync, env=machines["box-b"], host="box-b") == 0
    hosts = _elsewhere(pg_url, "print(json.dumps(catalog.sql("
                       "'SELECT host, status FROM runs ORDER BY host').values.tolist()))")
    assert hosts == [["box-a", "running"], ["box-b", "crashed"]]
    assert _elsewhere(pg_url, sync, env=machines["box-a"], host="box-a") == 0
    statuses = tracker.Catalog(pg_url).runs(order_by="name")
    assert statuses["status"].tolist() == ["crashed", "crashed"]
    assert statuses["id"].tolist() == [doomed["box-a"], doomed["box-b"]]


@pytest.mark.slow
def test_a_notebook_kernel_records_its_run_and_a_killed_one_ends_crashed(
        pg_url: str, tmp_path: Path) -> None:
    import nbformat
    from nbclient import NotebookClient

    env = {**os.environ, "TRACKER_CATALOG": pg_url}
    for name in ("TRACKER_NOTEBOOK", "PYTEST_CURRENT_TEST", "JPY_SESSION_NAME"):
        env.pop(name, None)
    (tmp_path / "input.csv").write_text("a\n1\n2\n")
    notebook = write_notebook(
        tmp_path / "team.ipynb", "%load_ext tracker",
        ("parameters", "alpha = 0.5"),
        "import tracker\nrows = open('input.csv').read().splitlines()\n"
        "tracker.log_metric('rows', float(len(rows)))",
        "open('out.txt', 'w').write('done')", title="Team run")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        executed = NotebookClient(nbformat.read(notebook, as_version=4), timeout=120,
                                  kernel_name="python3",
                                  resources={"metadata": {"path": str(tmp_path)}})
        executed.execute(env={**env, "TRACKER_NOTEBOOK": str(notebook)})
    streams = [o.get("text", "") for c in executed.nb.cells for o in c.get("outputs", [])]
    assert not any("TrackerWarning" in text for text in streams), streams
    catalog = tracker.Catalog(pg_url)
    (run_id,) = catalog.runs()["id"]
    run = catalog.get_run(run_id)
    assert (run.name, run.status, run.notebook_title) == ("team #1", "completed", "Team run")
    assert run.params == {"alpha": 0.5} and run.metrics == {"rows": 3.0}
    assert [a["uri"] for a in run.inputs] == [str(tmp_path / "input.csv")]
    assert [a["uri"] for a in run.outputs] == [str(tmp_path / "out.txt")]
    assert len(run.cells) == 4
    # the notebook is stored with the run, in the server's blobs table: any machine gets it back
    assert tracker.cli.main(["--catalog", pg_url, "notebook", run_id, "-o",
                             str(tmp_path / "back.ipynb")]) == 0
    back = (tmp_path / "back.ipynb").read_text()
    assert "# Team run" in back and "open('input.csv')" in back
    # nbclient saved nothing: the notebook given back holds the outputs the kernel published
    assert nbformat.reads(back, as_version=4).cells[-1].outputs[0]["data"] == {"text/plain": "4"}

    doomed = write_notebook(tmp_path / "doomed.ipynb", "x = 1")
    with kernel(tmp_path, {**env, "TRACKER_NOTEBOOK": str(doomed)}) as (manager, client):
        execute(client, "%load_ext tracker")
        execute(client, "import tracker\ntracker.log_metric('progress', 0.5)")
        killed_id = execute(client, "print(tracker.current_run().id)").strip()
        client.execute("import time\ntime.sleep(60)")
        time.sleep(0.5)
        os.kill(manager.provisioner.pid, signal.SIGKILL)  # type: ignore[attr-defined]
        deadline = time.monotonic() + 30
        while manager.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
    assert catalog.sync() == 0  # as the next write on this machine would
    killed = catalog.get_run(killed_id)
    assert (killed.status, killed.metrics) == ("crashed", {"progress": 0.5})
    assert killed.ended_at is not None
