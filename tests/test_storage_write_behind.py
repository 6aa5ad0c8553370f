"""The catalog's own content folder syncs kept contents behind the keep: a journal names each
until it is on disk, and the next process settles what a crashed one left (by boot)."""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import sys
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

import tracker
from tracker.storage import contents, write_behind

# Keeps each file named on its command line in a run of the catalog, with its contents' syncs
# held back (as if the disk were slow), says "kept", and sleeps until it is killed.
_KEEPER = """
import sys, time
import tracker
from tracker.storage import write_behind

real = write_behind.sync_path
write_behind.sync_path = lambda path: time.sleep(3600) if path.name.startswith("blake3-") \\
    else real(path)
catalog = tracker.Catalog(sys.argv[1])
with catalog.start_run("writer") as run:
    for path in sys.argv[2:]:
        run.log_output(path, keep=True)
catalog.flush()
print("kept", flush=True)
time.sleep(3600)
"""


@pytest.fixture
def keeper(tmp_path: Path) -> Iterator[tuple[tracker.Catalog, list[Path], subprocess.Popen[str]]]:
    """A live process that kept two outputs in a catalog and has not synced them yet."""
    outputs = [tmp_path / "whole.bin", tmp_path / "cut.bin"]
    for path in outputs:
        path.write_bytes(os.urandom(300_000))
    catalog_path = tmp_path / "catalog.duckdb"
    with subprocess.Popen([sys.executable, "-c", _KEEPER, str(catalog_path),
                           *map(str, outputs)], stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None and process.stdout.readline() == "kept\n"
            yield tracker.Catalog(catalog_path), outputs, process
        finally:
            process.kill()


def _journals(folder: Path) -> list[Path]:
    return sorted((folder / write_behind.JOURNALS).glob("*"))


def _killed(process: subprocess.Popen[str]) -> None:
    os.kill(process.pid, signal.SIGKILL)
    process.wait()


def _keep_weights(tmp_path: Path) -> tuple[contents.FolderStore, contents.Kept]:
    """A store under ``tmp_path`` with b"weights" kept in it (from model.bin)."""
    folder = contents.FolderStore(tmp_path / "store")
    source = tmp_path / "model.bin"
    source.write_bytes(b"weights")
    return folder, contents.keep_file(folder, str(source), tmp_path, expected_hash=None)


def _synced(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The paths write_behind syncs from now on, in order."""
    seen: list[Path] = []
    real = write_behind.sync_path

    def sync_path(path: Path) -> None:
        seen.append(path)
        real(path)

    monkeypatch.setattr(write_behind, "sync_path", sync_path)
    return seen


def test_a_kept_content_is_journaled_until_the_thread_syncs_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    held = threading.Event()
    real = write_behind.sync_path

    def slow_sync(path: Path) -> None:  # a content waits for the test, as for a slow disk
        if path.name.startswith(contents.KEY_PREFIX):
            held.wait(30)
        real(path)

    monkeypatch.setattr(write_behind, "sync_path", slow_sync)
    store, kept = _keep_weights(tmp_path)
    assert store.path(kept.key).read_bytes() == b"weights"  # in place before it is synced
    [journal] = _journals(store.folder)
    assert journal.read_text().split() == [kept.key]
    assert journal.stat().st_mode & 0o777 == 0o600
    assert not write_behind.wait_synced(0.2)
    held.set()
    assert write_behind.wait_synced(30)
    assert _journals(store.folder) == []


def test_a_content_deleted_before_its_sync_leaves_no_journal(tmp_path: Path) -> None:
    store, kept = _keep_weights(tmp_path)
    store.delete(kept.key)  # within the hold, before the thread syncs it
    assert write_behind.wait_synced(30)
    assert _journals(store.folder) == []


def test_a_content_kept_again_while_its_first_sync_runs_is_synced_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Deleted and kept again (the same bytes: the same name) while the thread synced the first
    # copy: the old code took the name out of the pending set and the journal with the first
    # sync, so the second copy was never synced.
    syncing, go_on = threading.Event(), threading.Event()
    synced: list[Path] = []
    real = write_behind.sync_path

    def slow_sync(path: Path) -> None:
        if path.name.startswith(contents.KEY_PREFIX) and not go_on.is_set():
            syncing.set()
            go_on.wait(30)
        synced.append(path)
        real(path)

    monkeypatch.setattr(write_behind, "sync_path", slow_sync)
    store, kept = _keep_weights(tmp_path)
    write_behind.wait_synced(0)  # now, not in a second
    assert syncing.wait(30)
    store.delete(kept.key)
    _, again = _keep_weights(tmp_path)
    assert again.key == kept.key
    go_on.set()
    assert write_behind.wait_synced(30)
    assert synced.count(store.path(kept.key)) == 2
    assert _journals(store.folder) == []


def test_a_fault_in_the_sync_thread_leaves_nobody_waiting(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The old thread died on it, and wait_synced() without a timeout waited forever.
    real = write_behind.sync_path

    def broken(path: Path) -> None:
        if path.name.startswith(contents.KEY_PREFIX):
            raise RuntimeError("a bug")
        real(path)

    monkeypatch.setattr(write_behind, "sync_path", broken)
    monkeypatch.setattr(write_behind, "_warned", False)
    store, kept = _keep_weights(tmp_path)
    with pytest.warns(tracker.TrackerWarning, match="the next tracker process syncs them"):
        assert write_behind.wait_synced(30)
    [journal] = _journals(store.folder)
    assert journal.read_text().split() == [kept.key]  # for the next process to sync

    again = tmp_path / "again.bin"
    again.write_bytes(b"more weights")
    more = contents.keep_file(store, str(again), tmp_path, expected_hash=None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert write_behind.wait_synced(30)
    assert caught == []  # one warning per process, not one per content given up
    assert sorted(journal.read_text().split()) == sorted([kept.key, more.key])

    monkeypatch.setattr(write_behind, "sync_path", real)  # the thread still works
    source = tmp_path / "other.bin"
    source.write_bytes(b"other weights")
    other = contents.keep_file(store, str(source), tmp_path, expected_hash=None)
    assert write_behind.wait_synced(30)
    assert sorted(journal.read_text().split()) == sorted([kept.key, more.key])
    assert store.path(other.key).exists()


def test_a_normal_exit_syncs_what_it_kept_first(tmp_path: Path) -> None:
    source = tmp_path / "model.bin"
    source.write_bytes(b"weights")
    script = ("import sys, time\nfrom pathlib import Path\n"
              "from tracker.storage import contents, write_behind\n"
              "real = write_behind.sync_path\n"
              "write_behind.sync_path = lambda path: (time.sleep(0.5), real(path))\n"
              "contents.keep_file(contents.FolderStore(Path(sys.argv[1])), sys.argv[2], "
              "Path(sys.argv[3]), expected_hash=None)\n")
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "store"), str(source),
                    str(tmp_path)], check=True, timeout=120)
    assert _journals(tmp_path / "store") == []
    assert len(list((tmp_path / "store").glob("blake3-*"))) == 1


def test_a_content_kept_while_the_interpreter_exits_is_synced_before_its_rename(
        tmp_path: Path) -> None:
    # A run ended at exit keeps its outputs then: no thread may start, and an exit handler
    # registered then never runs, so the old code left the content unsynced and journaled.
    source = tmp_path / "model.bin"
    source.write_bytes(b"weights")
    script = ("import atexit, sys\nfrom pathlib import Path\n"
              "from tracker.storage import contents\n"
              "atexit.register(lambda: contents.keep_file(contents.FolderStore(Path(sys.argv[1])),"
              " sys.argv[2], Path(sys.argv[3]), expected_hash=None))\n")
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "store"), str(source),
                    str(tmp_path)], check=True, timeout=120)
    assert _journals(tmp_path / "store") == []
    [kept] = (tmp_path / "store").glob("blake3-*")
    assert kept.read_bytes() == b"weights"


def test_a_content_whose_sync_fails_is_removed_not_trusted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = write_behind.sync_path

    def failing(path: Path) -> None:  # the disk lost its delayed blocks
        if path.name.startswith(contents.KEY_PREFIX):
            raise OSError(errno.EIO, "Input/output error")
        real(path)

    monkeypatch.setattr(write_behind, "sync_path", failing)
    store, kept = _keep_weights(tmp_path)
    assert write_behind.wait_synced(30)
    assert not store.path(kept.key).exists() and _journals(store.folder) == []


def test_a_shared_folder_syncs_before_the_rename_and_journals_nothing(tmp_path: Path) -> None:
    store = contents.FolderStore(tmp_path / "team", shared=True)
    source = tmp_path / "model.bin"
    source.write_bytes(b"weights")
    contents.keep_file(store, str(source), tmp_path, expected_hash=None)
    assert not (store.folder / write_behind.JOURNALS).exists()


def test_a_live_process_journal_is_left_alone(
        keeper: tuple[tracker.Catalog, list[Path], subprocess.Popen[str]]) -> None:
    catalog, outputs, _ = keeper
    [journal] = _journals(catalog.blob_dir)
    kept = catalog.get_artifact(outputs[0])
    assert kept.kept == "kept" and kept.blob in journal.read_text().split()
    # Beside it, a journal of a process of this boot that is gone, naming the other output.
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    dead = journal.with_name(f"{write_behind.boot_id()}~{socket.gethostname()}~{gone}~1")
    dead.write_text(catalog.get_artifact(outputs[1]).blob + "\n")
    with kept.open() as stream:  # recovery ran: it settled the dead journal, not the live one
        assert stream.read() == outputs[0].read_bytes()
    assert _journals(catalog.blob_dir) == [journal]


def test_a_killed_process_journal_is_synced_by_the_next_one_of_the_same_boot(
        keeper: tuple[tracker.Catalog, list[Path], subprocess.Popen[str]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    catalog, outputs, process = keeper
    _killed(process)  # right after keeping: its thread never synced
    keys = _journals(catalog.blob_dir)[0].read_text().split()
    synced = _synced(monkeypatch)
    for path in outputs:
        with catalog.get_artifact(path).open() as stream:
            assert stream.read() == path.read_bytes()
    assert _journals(catalog.blob_dir) == []
    assert {path.name for path in synced} >= set(keys)


def test_after_a_reboot_a_content_cut_short_is_missing_and_kept_again(
        keeper: tuple[tracker.Catalog, list[Path], subprocess.Popen[str]],
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    catalog, (whole, cut), process = keeper
    _killed(process)
    cut_key = catalog.get_artifact(cut).blob
    assert cut_key is not None
    stored = catalog.blob_dir / cut_key
    stored.chmod(0o600)
    os.truncate(stored, 1000)  # what a power cut left of it: its write-back never finished
    monkeypatch.setattr(write_behind, "boot_id", lambda: "another-boot")
    assert catalog.get_artifact(whole).restore(tmp_path / "w").read_bytes() == whole.read_bytes()
    with pytest.raises(tracker.ArtifactNotFoundError, match="missing from the store"):
        catalog.get_artifact(cut).restore(tmp_path / "c")
    assert not stored.exists() and _journals(catalog.blob_dir) == []
    assert not list(catalog.blob_dir.glob(".*damaged"))
    # the old code trusted the stored file of that name: the same bytes kept again stayed cut
    with catalog.start_run("again") as run:
        run.log_output(cut, keep=True)
    catalog.flush()
    again = catalog.get_artifact(cut, run=run.id)
    assert again.blob == cut_key
    assert again.restore(tmp_path / "c").read_bytes() == cut.read_bytes()
    assert write_behind.wait_synced(30)
