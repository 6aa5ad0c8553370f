"""How much of a realistic notebook's file I/O automatic capture sees, measured on a corpus.

``tests/corpus/`` holds data-science notebooks (pandas ETL, scikit-learn with joblib workers,
PIL, polars, pyarrow, h5py/netCDF4/xarray, sqlite3 and DuckDB, shell commands, subprocesses,
renames, plain stdlib) whose only tracker call is ``%load_ext tracker``, the small seeded inputs
they read (``data/``) and, beside each notebook, ``<name>.expected.json``: every file it reads
and writes, as ``{"path", "role", "via"}`` (``via``: how the file is touched, the category the
figures are broken down by), plus ``"hash"`` for an input the notebook overwrites in place (the
content that was read) and ``"from"`` for an input another corpus notebook wrote (lineage).
``via`` is one of: ``open`` (Python's open: the README's list), ``wrapped`` (the native readers
already wrapped: pandas/pyarrow Parquet and Feather), ``polars``, ``pyarrow`` (everything else
of pyarrow), ``hdf5`` (h5py, netCDF4, xarray), ``database`` (sqlite3, DuckDB files and paths in
DuckDB), ``rename``, ``shell`` (``!`` commands), ``subprocess``, ``worker`` (joblib and
multiprocessing workers).

A manifest follows the README's rules: a file the notebook wrote and then read back is not an
input; a file renamed or moved in the cell that wrote it is an output under its final name only
(a temp file renamed into place, a draft); one a later cell moves (``moved_to``) was an output when
its cell ended and stays recorded under both names; a partitioned dataset is one output, its folder.
Anything recorded that the manifest does not list is a false positive.

The corpus is copied to a temporary folder and each notebook executed there by nbclient (what
``jupyter execute`` runs), two at a time where safe: a notebook runs after the ones it reads
from, and one that starts processes runs alone, so that a scan of the files changed during its
cells can only see its own. Then each target of issue #11 is its own test, and the capture-rate
test prints a per-notebook and per-category table of what was missed.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import pytest

import tracker
from tracker.hashing import hash_file
from tracker.models import RunInfo

CORPUS = Path(__file__).parent / "corpus"
CELL_TIMEOUT = 120
# Notebooks that start processes: their files are only seen by scanning for changes, which a
# notebook running alongside would disturb.
PROCESS_VIAS = {"shell", "subprocess", "worker"}
CAPTURE_TARGET = 0.95


@dataclass(frozen=True)
class Expected:
    """One line of a manifest: a file a notebook reads or writes."""

    path: str
    role: str
    via: str
    hash: str | None = None
    source: str | None = None  # the corpus notebook that wrote this input
    # An output a later cell moved away: recorded when its cell ended, under this name too
    # (tracker never takes a record back); its content is the destination's.
    moved_to: str | None = None


def manifests() -> dict[str, list[Expected]]:
    """Every corpus notebook's manifest, by notebook name."""
    found = {}
    for path in sorted(CORPUS.glob("*.expected.json")):
        files = json.loads(path.read_text(encoding="utf-8"))["files"]
        found[path.name.removesuffix(".expected.json")] = [
            Expected(entry["path"], entry["role"], entry["via"], entry.get("hash"),
                     entry.get("from"), entry.get("moved_to")) for entry in files]
    return found


MANIFESTS = manifests()


@dataclass
class Execution:
    """How the execution of one notebook ended."""

    returncode: int
    log: str
    seconds: float


@dataclass
class Outcome:
    """One notebook's recorded run compared with its manifest."""

    name: str
    run: RunInfo | None
    captured: list[Expected] = field(default_factory=list)
    missed: list[Expected] = field(default_factory=list)
    false_positives: list[str] = field(default_factory=list)
    wrong_hashes: list[str] = field(default_factory=list)
    lineage_found: int = 0
    lineage_missed: list[str] = field(default_factory=list)


@dataclass
class Corpus:
    """The executed corpus: its folder, each execution, each comparison, the files it changed."""

    folder: Path
    executions: dict[str, Execution]
    outcomes: dict[str, Outcome]
    changed_files: set[str]


# --------------------------------------------------------------------------- running it


def dependencies(name: str) -> set[str]:
    return {entry.source for entry in MANIFESTS[name] if entry.source}


def runs_alone(name: str) -> bool:
    return any(entry.via in PROCESS_VIAS for entry in MANIFESTS[name])


def execute(folder: Path, name: str, env: Mapping[str, str]) -> Execution:
    """One notebook executed by nbclient, as ``jupyter execute`` does (in the notebook's folder,
    the kernel shut down gracefully at the end), without a jupyter process of its own."""
    from nbclient import NotebookClient

    start = time.monotonic()
    notebook = nbformat.read(folder / f"{name}.ipynb", as_version=4)
    client = NotebookClient(notebook, timeout=CELL_TIMEOUT, kernel_name="python3",
                            resources={"metadata": {"path": str(folder)}})
    try:
        # A loop of this thread's own, closed at the end (nbclient's sync wrapper leaves it open).
        asyncio.run(client.async_execute(env=dict(env)))
    except Exception as exc:  # noqa: BLE001 - a failed notebook is reported by its own test
        return Execution(1, f"{type(exc).__name__}: {exc}"[-4000:], time.monotonic() - start)
    return Execution(0, "", time.monotonic() - start)


def next_ready(pending: list[str], done: Mapping[str, Execution],
               running: set[str]) -> str | None:
    """A pending notebook that may start now: two run at a time, a process notebook alone."""
    if len(running) >= 2 or any(runs_alone(name) for name in running):
        return None
    startable = [name for name in pending if dependencies(name) <= done.keys()]
    together = [name for name in startable if not runs_alone(name)]
    if together:
        return together[0]
    return startable[0] if startable and not running else None


def execute_corpus(folder: Path, env: Mapping[str, str]) -> dict[str, Execution]:
    """Every notebook executed once, each after the notebooks it reads from."""
    pending = list(MANIFESTS)
    done: dict[str, Execution] = {}
    running: dict[Future[Execution], str] = {}
    with ThreadPoolExecutor(max_workers=2) as pool:
        while pending or running:
            while name := next_ready(pending, done, set(running.values())):
                pending.remove(name)
                running[pool.submit(execute, folder, name, env)] = name
            assert running, f"notebooks waiting on unknown notebooks: {pending}"
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                done[running.pop(future)] = future.result()
    return done


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (relative path) with its content hash."""
    return {str(path.relative_to(folder)): hash_file(str(path))
            for path in folder.rglob("*") if path.is_file()}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    """The corpus executed once in a temporary folder, each run compared with its manifest."""
    root = tmp_path_factory.mktemp("corpus")
    folder = Path(os.path.realpath(root / "work"))
    shutil.copytree(CORPUS, folder, ignore=shutil.ignore_patterns("*.expected.json"))
    catalog_path = root / "catalog" / "catalog.duckdb"
    env = {**os.environ, "TRACKER_CATALOG": str(catalog_path),
           "IPYTHONDIR": str(root / "ipython")}
    for name in ("TRACKER_NOTEBOOK", "TRACKER_CAPTURE", "PYTEST_CURRENT_TEST",
                 "JPY_SESSION_NAME"):
        env.pop(name, None)
    # matplotlib's first import in a fresh home builds its font cache with a subprocess
    # (fc-list): a cell that starts a process has the folder scanned, and the notebook running
    # beside it would show up in that scan (README: a file another program changes meanwhile is
    # recorded too). Built here first, as any machine that ran matplotlib once has it.
    subprocess.run([sys.executable, "-c", "import matplotlib.font_manager"], env=env,
                   check=True, capture_output=True, timeout=300)
    before = snapshot(folder)
    executions = execute_corpus(folder, env)
    after = snapshot(folder)
    changed = {path for path, digest in after.items() if before.get(path) != digest}
    outcomes = compare(tracker.Catalog(catalog_path), folder, after)
    return Corpus(folder, executions, outcomes, changed)


# --------------------------------------------------------------------------- comparing


def compare(catalog: tracker.Catalog, folder: Path, final: Mapping[str, str]) -> dict[str, Outcome]:
    """Each notebook's run against its manifest (a notebook without exactly one run missed
    everything)."""
    runs: dict[str, list[RunInfo]] = defaultdict(list)
    for run_id in catalog.runs(include_deleted=True)["id"]:
        run = catalog.get_run(run_id)
        runs[run.notebook_name or ""].append(run)
    producers = {name: {run.id for run in found} for name, found in runs.items()}
    outcomes = {}
    for name, files in MANIFESTS.items():
        found = runs.get(name, [])
        if len(found) != 1:
            outcomes[name] = Outcome(name, None, missed=list(files))
            continue
        outcome = outcomes[name] = compare_files(name, found[0], folder, final)
        upstream = catalog.lineage(found[0].id).query("direction == 'upstream'")
        linked = set(zip(upstream["run_id"], upstream["uri"].map(os.path.realpath)))
        for entry in files:
            if entry.source is None:
                continue
            uri = str(folder / entry.path)
            if any((run_id, uri) in linked for run_id in producers.get(entry.source, ())):
                outcome.lineage_found += 1
            else:
                outcome.lineage_missed.append(f"{entry.path} <- {entry.source}")
    return outcomes


def compare_files(name: str, run: RunInfo, folder: Path, final: Mapping[str, str]) -> Outcome:
    """What the run recorded against the manifest. The right hash is the one the manifest gives
    (an input overwritten in place), else the file's content at the end (no corpus notebook
    rewrites another's file); a folder's is its listing's, as tracker hashes folders."""
    outcome = Outcome(name, run)
    # A file recorded twice (a log its handler kept writing after its cell) counts by its
    # last version: what the run left behind.
    recorded = {(os.path.realpath(a["uri"]), a["role"]): a["hash"]
                for a in sorted(run.artifacts, key=lambda a: a["version"])
                if a["role"] in ("input", "output")}
    expected = {(str(folder / entry.path), entry.role): entry for entry in MANIFESTS[name]}
    for key, entry in expected.items():
        if key not in recorded:
            outcome.missed.append(entry)
            continue
        outcome.captured.append(entry)
        content = entry.moved_to or entry.path
        right = entry.hash or final.get(content) or hash_file(str(folder / content))
        if recorded[key] != right:
            outcome.wrong_hashes.append(f"{entry.role} {entry.path}")
    outcome.false_positives = sorted(
        f"{role} {os.path.relpath(path, folder)}" for path, role in recorded.keys() - expected)
    return outcome


def table(corpus: Corpus) -> str:
    """Per notebook and per category: captured / expected, false positives, what was missed."""
    outcomes = corpus.outcomes
    lines = [f"{'notebook':<22}{'status':<11}{'seconds':>8}{'captured':>10}{'false+':>8}"
             f"{'hash!':>7}{'lineage':>9}  missed"]
    for outcome in outcomes.values():
        total = len(outcome.captured) + len(outcome.missed)
        lineage = outcome.lineage_found + len(outcome.lineage_missed)
        status = outcome.run.status if outcome.run is not None else "no run"
        missed = ", ".join(f"{e.role[:2]} {e.path} ({e.via})" for e in outcome.missed)
        seconds = corpus.executions[outcome.name].seconds
        lines.append(f"{outcome.name:<22}{status:<11}{seconds:>8.1f}"
                     f"{len(outcome.captured):>5}/{total:<4}"
                     f"{len(outcome.false_positives):>8}{len(outcome.wrong_hashes):>7}"
                     f"{outcome.lineage_found:>5}/{lineage:<3}  {missed}")
    for outcome in outcomes.values():
        for label, items in (("false positive", outcome.false_positives),
                             ("wrong hash", outcome.wrong_hashes),
                             ("lineage missed", outcome.lineage_missed)):
            lines += [f"  {outcome.name}: {label}: {item}" for item in items]
    seen = Counter(e.via for o in outcomes.values() for e in o.captured)
    every = Counter(e.via for o in outcomes.values() for e in [*o.captured, *o.missed])
    lines.append("by category: " + ", ".join(
        f"{via} {seen[via]}/{every[via]}" for via in sorted(every)))
    return "\n".join(lines)


def totals(outcomes: Mapping[str, Outcome]) -> tuple[int, int]:
    captured = sum(len(o.captured) for o in outcomes.values())
    return captured, captured + sum(len(o.missed) for o in outcomes.values())


# --------------------------------------------------------------------------- the manifests


def test_manifests_cover_over_100_reads_and_writes_of_every_notebook() -> None:
    notebooks = {path.stem for path in CORPUS.glob("*.ipynb")}
    assert set(MANIFESTS) == notebooks
    assert sum(len(files) for files in MANIFESTS.values()) > 100
    for name, files in MANIFESTS.items():
        keys = [(entry.path, entry.role) for entry in files]
        assert len(keys) == len(set(keys)), name
        assert {entry.role for entry in files} <= {"input", "output"}, name
        assert dependencies(name) <= MANIFESTS.keys() - {name}, name


def test_manifest_hashes_are_those_of_the_committed_inputs() -> None:
    overwritten = [entry for files in MANIFESTS.values() for entry in files if entry.hash]
    assert len(overwritten) >= 3
    for entry in overwritten:
        assert hash_file(str(CORPUS / entry.path)) == entry.hash, entry.path
        assert entry.role == "input" and entry.source is None, entry.path


@pytest.mark.slow
def test_manifests_list_every_file_the_corpus_writes(corpus: Corpus) -> None:
    outputs = {entry.path for files in MANIFESTS.values() for entry in files
               if entry.role == "output" and entry.moved_to is None}
    folders = tuple(f"{path}/" for path in outputs if (corpus.folder / path).is_dir())
    written = {path for path in corpus.changed_files if not path.startswith(folders)}
    written |= {folder.rstrip("/") for folder in folders}
    assert written == outputs


# --------------------------------------------------------------------------- the targets


@pytest.mark.slow
def test_every_corpus_notebook_runs_to_its_end(corpus: Corpus) -> None:
    failed = {name: execution.log[-1500:] for name, execution in corpus.executions.items()
              if execution.returncode != 0}
    assert not failed


@pytest.mark.slow
def test_no_corpus_run_ends_crashed(corpus: Corpus) -> None:
    statuses = {name: outcome.run.status if outcome.run is not None else "no single run"
                for name, outcome in corpus.outcomes.items()}
    assert statuses == dict.fromkeys(MANIFESTS, "completed")


@pytest.mark.slow
def test_at_least_95_percent_of_reads_and_writes_are_captured_with_their_role(
        corpus: Corpus, capsys: pytest.CaptureFixture[str]) -> None:
    captured, total = totals(corpus.outcomes)
    with capsys.disabled():
        print(f"\ncorpus capture: {captured}/{total} = {captured / total:.1%}\n"
              f"{table(corpus)}")
    assert captured / total >= CAPTURE_TARGET


@pytest.mark.slow
def test_nothing_outside_the_manifests_is_recorded(corpus: Corpus) -> None:
    false_positives = {name: outcome.false_positives
                       for name, outcome in corpus.outcomes.items() if outcome.false_positives}
    assert not false_positives


@pytest.mark.slow
def test_inputs_overwritten_in_place_keep_the_hash_of_what_was_read(corpus: Corpus) -> None:
    overwritten = {(name, entry.path): entry.hash for name, files in MANIFESTS.items()
                   for entry in files if entry.hash}
    recorded = {}
    for name, path in overwritten:
        run = corpus.outcomes[name].run
        inputs = [] if run is None else [a["hash"] for a in run.inputs
                                         if a["uri"] == str(corpus.folder / path)]
        recorded[(name, path)] = inputs[0] if inputs else None
    assert recorded == overwritten


@pytest.mark.slow
def test_recorded_hashes_are_the_content_read_or_written(corpus: Corpus) -> None:
    wrong = {name: outcome.wrong_hashes
             for name, outcome in corpus.outcomes.items() if outcome.wrong_hashes}
    assert not wrong


@pytest.mark.slow
def test_lineage_links_each_notebook_to_the_notebooks_it_read_from(corpus: Corpus) -> None:
    missed = {name: outcome.lineage_missed
              for name, outcome in corpus.outcomes.items() if outcome.lineage_missed}
    assert not missed
