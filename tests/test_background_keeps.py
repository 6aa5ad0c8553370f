"""Big contents are recorded once copied and verified, and named (BLAKE3) after the run's batch."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

import tracker
from tracker import background_keeps, hashing
from tracker.storage import contents, hashed_copy, recovery


@pytest.fixture(autouse=True)
def _small_is_big(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(background_keeps, "MIN_SIZE", 1000)  # the tests' files count as big


@pytest.fixture
def blake3_held(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """BLAKE3 waits until the event is set (xxh3 does not): what is done before a content is
    named, and what waits for its name, can be told apart."""
    release = threading.Event()
    real: Callable[..., Any] = hashed_copy._hashers

    def held(strong: bool = True) -> Any:
        if strong:
            release.wait(30)
        return real(strong)

    monkeypatch.setattr(hashed_copy, "_hashers", held)
    yield release
    release.set()


def _staged(catalog: tracker.Catalog) -> list[str]:
    folder = catalog.blob_dir / ".staging"
    return sorted(entry.name for entry in folder.iterdir()) if folder.exists() else []


@pytest.mark.parametrize("hash_on_log", [True, False], ids=["hashed-when-logged",
                                                             "hashed-from-its-copy"])
def test_a_big_output_is_recorded_before_it_is_named(
        catalog: tracker.Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        blake3_held: threading.Event, hash_on_log: bool) -> None:
    if not hash_on_log:
        monkeypatch.setattr(hashing, "HASH_ON_LOG_MAX", 1000)  # known by its stat key
    data = os.urandom(50_000)
    output = tmp_path / "model.bin"
    output.write_bytes(data)
    with catalog.start_run("train") as run:
        run.log_output(output, keep=True)
    flushing = threading.Thread(target=catalog.flush)
    flushing.start()
    flushing.join(10)
    assert not flushing.is_alive(), "the run's batch waited for the content's name"
    other = tracker.Catalog(catalog.path)  # what any reader sees meanwhile
    row = other.artifacts(run.id).iloc[0]
    assert (row.kept, row.hash, row["size"]) == ("storing", hashing.hash_bytes(data), len(data))
    assert other.runs().loc[0, "status"] == "completed"

    blake3_held.set()
    kept = other.get_artifact(output)  # names it first: this process holds it, so it waits
    assert kept.kept == "kept" and kept.blob and kept.blob.startswith("blake3-")
    with kept.open() as stream:
        assert stream.read() == data
    assert other.artifacts(run.id).iloc[0].kept == "kept"
    assert _staged(catalog) == []


def test_identical_big_outputs_are_stored_once(catalog: tracker.Catalog, tmp_path: Path) -> None:
    data = os.urandom(30_000)
    for index in range(3):
        (tmp_path / f"copy{index}.bin").write_bytes(data)
        with catalog.start_run(f"run{index}") as run:
            run.log_output(tmp_path / f"copy{index}.bin", keep=True)
    catalog.flush()
    catalog.get_artifact(tmp_path / "copy0.bin")  # names whatever is still storing
    assert set(catalog.artifacts()["kept"]) == {"kept"}
    assert len(list(catalog.content_store.entries())) == 1


def test_a_batch_that_fails_after_its_commit_still_names_what_it_recorded(
        catalog: tracker.Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = os.urandom(40_000)
    output = tmp_path / "model.bin"
    output.write_bytes(data)
    real, failed = recovery.mark_crashed, []

    def fails_once(*args: Any, **kwargs: Any) -> Any:  # after the batch's commit
        if not failed:
            failed.append(True)
            raise OSError(errno.EIO, "lost after the commit")
        return real(*args, **kwargs)

    monkeypatch.setattr(recovery, "mark_crashed", fails_once)
    with catalog.start_run("train") as run:
        run.log_output(output, keep=True)
    with warnings.catch_warnings(), contextlib.suppress(tracker.CatalogError):
        warnings.simplefilter("ignore")  # the flusher's warning, if it met the failure first
        catalog.flush()
    catalog.flush()
    assert failed
    kept = catalog.get_artifact(output, run=run.id)
    assert kept.kept == "kept"
    with kept.open() as stream:
        assert stream.read() == data


def test_a_later_run_keeping_a_version_recorded_not_kept_keeps_it(
        catalog: tracker.Catalog, tmp_path: Path) -> None:
    data = os.urandom(40_000)
    output = tmp_path / "model.bin"
    output.write_bytes(data)
    with catalog.start_run("first") as first:
        first.log_output(output, keep=False)
    catalog.flush()
    assert catalog.artifacts(first.id).iloc[0].kept == "not kept"
    with catalog.start_run("second") as second:
        second.log_input(output, keep=True)
    catalog.flush()
    kept = catalog.get_artifact(output)
    assert (kept.version, kept.kept) == (1, "kept")
    with kept.open() as stream:
        assert stream.read() == data


def test_a_big_output_logged_twice_in_a_batch_is_copied_once(
        catalog: tracker.Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = os.urandom(40_000)
    output = tmp_path / "model.bin"
    output.write_bytes(data)
    staged: list[str] = []
    real = background_keeps.stage

    def counted(*args: Any) -> background_keeps.Storing:
        staged.append(args[0])
        return real(*args)

    monkeypatch.setattr(background_keeps, "stage", counted)
    with catalog.start_run("train") as run:
        run.log_output(output, keep=True)
        run.log_output(output, keep=True)  # as a capture and a call by hand both log it
    catalog.flush()
    assert len(staged) == 1
    kept = catalog.get_artifact(output, run=run.id)
    assert kept.kept == "kept"
    with kept.open() as stream:
        assert stream.read() == data


_KILLED_BEFORE_NAMING = """
    import os, sys, tracker
    from tracker import background_keeps
    background_keeps.MIN_SIZE = 1000
    background_keeps.Settler.settle = lambda self, *args, **kwargs: None
    catalog = tracker.Catalog(sys.argv[1])
    with catalog.start_run("train") as run:
        run.log_output(sys.argv[2], keep=True)
    catalog.flush()
    print(run.id)
    os._exit(0)  # as if killed: no exit handler runs
"""


def _killed_before_naming(catalog_path: Path, output: Path) -> str:
    """A process that kept ``output`` and died before naming it; its run's id."""
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(_KILLED_BEFORE_NAMING),
                           str(catalog_path), str(output)], capture_output=True, text=True,
                          check=True, timeout=120)
    return done.stdout.strip()


class Left(NamedTuple):
    """A content a process copied and verified, then died before naming."""

    catalog: tracker.Catalog
    output: Path
    data: bytes
    run_id: str


@pytest.fixture
def left_storing(tmp_path: Path) -> Left:
    data = os.urandom(40_000)
    output = tmp_path / "model.bin"
    output.write_bytes(data)
    run_id = _killed_before_naming(tmp_path / "catalog.duckdb", output)
    return Left(tracker.Catalog(tmp_path / "catalog.duckdb"), output, data, run_id)


def test_a_content_a_killed_process_left_storing_is_named_when_asked_for(
        left_storing: Left, tmp_path: Path) -> None:
    catalog, output, data, run_id = left_storing
    assert catalog.artifacts(run_id).iloc[0].kept == "storing"
    assert [name[:8] for name in _staged(catalog)] == ["storing-"]

    output.write_bytes(b"the next epoch")  # the staged copy is what comes back
    restored = catalog.get_artifact(output, run=run_id).restore(tmp_path / "back.bin")
    assert restored.read_bytes() == data
    assert catalog.artifacts(run_id).iloc[0].kept == "kept"
    assert _staged(catalog) == []


def test_a_content_a_killed_process_left_storing_is_named_by_the_next_writer(
        left_storing: Left) -> None:
    catalog, run_id = left_storing.catalog, left_storing.run_id
    with catalog.start_run("next"):
        pass
    catalog.flush()
    deadline = time.monotonic() + 30
    while catalog.artifacts(run_id).iloc[0].kept == "storing" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert catalog.artifacts(run_id).iloc[0].kept == "kept"
    assert _staged(catalog) == []


def test_a_content_another_process_still_stores_is_not_given_back_and_travels_not_kept(
        left_storing: Left, tmp_path: Path) -> None:
    catalog, output, data, run_id = left_storing
    staged = catalog.blob_dir / ".staging" / _staged(catalog)[0]
    with open(staged, "rb") as held:  # as the live process that copied it holds it
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        with pytest.raises(tracker.ArtifactNotFoundError, match="still being stored"):
            catalog.get_artifact(output).restore(tmp_path / "back.bin")
        descriptor = catalog.export_run(run_id, tmp_path / "run.yaml", contents=True)
    copy = tracker.Catalog(tmp_path / "copy" / "catalog.duckdb")
    copy.import_run(descriptor)
    row = copy.artifacts(run_id).iloc[0]
    assert (row.kept, row.hash) == ("not kept", hashing.hash_bytes(data))


def test_a_left_copy_whose_bytes_are_not_its_version_is_recorded_changed(
        left_storing: Left) -> None:
    catalog, output, _, run_id = left_storing
    staged = catalog.blob_dir / ".staging" / _staged(catalog)[0]
    staged.write_bytes(os.urandom(40_000))  # a power cut's garbage, of the same size
    with pytest.raises(tracker.ArtifactNotFoundError, match="not kept"):
        catalog.get_artifact(output).open()
    assert catalog.artifacts(run_id).iloc[0].kept == "changed"
    assert _staged(catalog) == [] and list(catalog.content_store.entries()) == []


def test_a_version_whose_left_copy_was_removed_by_hand_is_recorded_unreadable(
        left_storing: Left) -> None:
    catalog, output, _, run_id = left_storing
    (catalog.blob_dir / ".staging" / _staged(catalog)[0]).unlink()
    with pytest.raises(tracker.ArtifactNotFoundError, match="not kept"):
        catalog.get_artifact(output).open()
    assert catalog.artifacts(run_id).iloc[0].kept == "unreadable"  # no longer storing forever


def test_a_version_whose_staging_folder_was_removed_by_hand_is_recorded_unreadable(
        left_storing: Left) -> None:
    catalog, output, _, run_id = left_storing
    shutil.rmtree(catalog.blob_dir / ".staging")
    with pytest.raises(tracker.ArtifactNotFoundError, match="not kept"):
        catalog.get_artifact(output).open()
    assert catalog.artifacts(run_id).iloc[0].kept == "unreadable"


def test_a_left_copy_no_version_waits_for_is_removed(left_storing: Left) -> None:
    catalog = left_storing.catalog
    stray = catalog.blob_dir / ".staging" / (background_keeps.PREFIX + "0" * 32)
    stray.write_bytes(b"a copy whose batch never committed")
    catalog.get_artifact(left_storing.output)  # names what is left
    assert _staged(catalog) == []
    assert len(list(catalog.content_store.entries())) == 1


def test_a_copy_that_is_not_the_recorded_version_is_never_staged(tmp_path: Path) -> None:
    output = tmp_path / "model.bin"
    output.write_bytes(b"rewritten since it was hashed")
    staging = tmp_path / "staging"
    staging.mkdir()
    with pytest.raises(contents.ContentChanged):
        background_keeps.stage(str(output), staging, hashing.hash_bytes(b"as logged"), None)
    assert list(staging.iterdir()) == []
