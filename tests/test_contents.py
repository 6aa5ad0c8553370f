"""Kept contents: what runs read and wrote is kept once per content, verified, and comes back."""

from __future__ import annotations

import errno
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

import tracker
from tracker import delivery, hashing, retrieval
from tracker.storage import contents, hashed_copy


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _store_keys(catalog: tracker.Catalog) -> list[str]:
    return sorted(entry.key for entry in catalog.content_store.entries())


def test_each_version_of_an_output_comes_back(catalog: tracker.Catalog, tmp_path: Path) -> None:
    table = tmp_path / "results.csv"
    with catalog.start_run("first") as first:
        first.log_output(_write(table, b"epoch,loss\n1,0.5\n"))
    catalog.flush()  # kept by the flusher, before the next run rewrites the file
    with catalog.start_run("second") as second:
        second.log_output(_write(table, b"epoch,loss\n1,0.4\n2,0.3\n"))
    old = retrieval.get_artifact(catalog, table, run=first.id)
    assert (old.version, old.kept) == (1, "kept")
    assert old.read_dataframe()["loss"].tolist() == [0.5]
    with old.open() as stream:
        assert stream.read() == b"epoch,loss\n1,0.5\n"
    assert retrieval.get_artifact(catalog, table).version == 2
    restored = old.restore(tmp_path / "back.csv")
    assert restored.read_bytes() == b"epoch,loss\n1,0.5\n"
    with pytest.raises(tracker.ArgumentError, match="overwrite=True"):
        old.restore(table)  # never over a file without being asked
    assert table.read_bytes() == b"epoch,loss\n1,0.4\n2,0.3\n"


def test_a_kept_content_missing_from_the_store_is_a_lookup_error(
        catalog: tracker.Catalog, tmp_path: Path) -> None:
    with catalog.start_run("writer") as run:
        run.log_output(_write(tmp_path / "table.csv", b"a\n1\n"))
    catalog.flush()
    for key in _store_keys(catalog):  # removed by hand, or never carried by an import
        catalog.content_store.delete(key)
    kept = catalog.get_artifact(tmp_path / "table.csv")
    with pytest.raises(tracker.ArtifactNotFoundError, match="missing from the store"):
        kept.open()
    with pytest.raises(tracker.ArtifactNotFoundError, match="missing from the store"):
        kept.restore(tmp_path / "back.csv")
    assert not (tmp_path / "back.csv").exists()
    assert not list(tmp_path.glob(".back.csv.*"))  # no partial copy left


def test_identical_contents_are_stored_once(catalog: tracker.Catalog, tmp_path: Path) -> None:
    data = os.urandom(100_000)
    for index in range(3):
        with catalog.start_run(f"run{index}") as run:
            run.log_output(_write(tmp_path / f"copy{index}.bin", data))
    catalog.flush()
    keys = _store_keys(catalog)
    assert len(keys) == 1 and keys[0].startswith("blake3-")
    usage = retrieval.disk_usage(catalog)
    assert (usage["contents"], usage["bytes"], usage["live_bytes"]) == (1, 100_000, 100_000)
    assert set(catalog.artifacts()["kept"]) == {"kept"}


def test_the_policy_keeps_small_inputs_and_outputs_up_to_a_size(
        catalog: tracker.Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACKER_KEEP", '{"output_max": "10KB", "exclude": ["*.log"]}')
    with catalog.start_run("policy") as run:
        run.log_input(_write(tmp_path / "config.yaml", b"lr: 0.1\n"))
        run.log_input(_write(tmp_path / "big-input.bin", os.urandom(2 << 20)))
        run.log_output(_write(tmp_path / "small.bin", os.urandom(1000)))
        run.log_output(_write(tmp_path / "large.bin", os.urandom(20_000)))
        run.log_output(_write(tmp_path / "forced.bin", os.urandom(20_000)), keep=True)
        run.log_output(_write(tmp_path / "refused.bin", os.urandom(10)), keep=False)
        run.log_output(_write(tmp_path / "train.log", b"step 1\n"))
    kept = {Path(row.uri).name: row.kept for row in catalog.artifacts(run.id).itertuples()}
    assert kept == {"config.yaml": "kept", "big-input.bin": "not kept", "small.bin": "kept",
                    "large.bin": "not kept", "forced.bin": "kept", "refused.bin": "not kept",
                    "train.log": "not kept"}
    with pytest.raises(tracker.ArtifactNotFoundError, match="keep=True"):
        retrieval.get_artifact(catalog, tmp_path / "large.bin").open()


def test_a_path_that_is_not_utf8_has_no_versions(catalog: tracker.Catalog,
                                                 tmp_path: Path) -> None:
    odd = tmp_path / os.fsdecode(b"\xff.csv")  # a name in another encoding
    with pytest.raises(tracker.ArtifactNotFoundError, match="no recorded"):
        retrieval.get_artifact(catalog, odd)
    assert retrieval.versions(catalog, odd).empty


def test_keeping_can_be_switched_off(catalog: tracker.Catalog, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACKER_KEEP", "off")
    with catalog.start_run("off") as run:
        run.log_output(_write(tmp_path / "small.bin", b"x"))
    assert list(catalog.artifacts(run.id)["kept"]) == ["not kept"]  # (a read flushes first)
    assert _store_keys(catalog) == []


def test_a_file_changed_before_it_was_stored_is_never_stored_under_its_version(
        catalog: tracker.Catalog, tmp_path: Path) -> None:
    model = tmp_path / "model.bin"
    with catalog.start_run("racy") as run:
        with open(model, "wb", buffering=0) as unseen:  # opened before the file was logged
            unseen.write(b"the bytes the run wrote")
            run.log_output(model)  # hashed now, copied later
            unseen.seek(0)
            unseen.write(b"other bytes, written before the copy")
    row = catalog.artifacts(run.id).iloc[0]
    assert row["kept"] == "changed"
    assert _store_keys(catalog) == []


def test_a_checkpoint_saved_again_before_its_copy_keeps_every_version(
        catalog: tracker.Catalog, tmp_path: Path) -> None:
    """Rewritten, replaced by a rename, removed: each logged version is saved as it goes."""
    checkpoint = tmp_path / "ckpt.bin"
    versions = [os.urandom(50_000) for _ in range(4)]
    with catalog.start_run("epochs") as run:
        run.log_output(_write(checkpoint, versions[0]))
        run.log_output(_write(checkpoint, versions[1]))  # a write-open: saved first
        _write(tmp_path / "ckpt.tmp", versions[2]).replace(checkpoint)  # renamed over it
        run.log_output(checkpoint)
        _write(tmp_path / "other.bin", versions[3])
        run.log_output(tmp_path / "other.bin")
        (tmp_path / "other.bin").unlink()  # removed before its copy
    rows = catalog.artifacts(run.id).sort_values(["uri", "version"])
    assert list(rows["kept"]) == ["kept"] * 4
    for version, data in enumerate(versions[:3], start=1):
        with retrieval.get_artifact(catalog, checkpoint, version=version).open() as stream:
            assert stream.read() == data
    with retrieval.get_artifact(catalog, tmp_path / "other.bin").open() as stream:
        assert stream.read() == versions[3]
    assert list((catalog.blob_dir / ".staging").iterdir()) == []  # no copy left behind


def test_a_big_checkpoint_rewritten_before_its_copy_is_kept_with_its_own_hash(
        catalog: tracker.Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hashing, "HASH_ON_LOG_MAX", 1000)  # known by its stat key until copied
    checkpoint, first = tmp_path / "model.bin", os.urandom(5000)
    with catalog.start_run("big") as run:
        run.log_output(_write(checkpoint, first), keep=True)
        checkpoint.write_bytes(b"the next epoch")
    row = catalog.artifacts(run.id).iloc[0]
    assert (row.kept, row.hash) == ("kept", hashing.hash_bytes(first))
    with retrieval.get_artifact(catalog, checkpoint).open() as stream:
        assert stream.read() == first


def test_a_copy_that_does_not_match_the_recorded_hash_is_refused(tmp_path: Path) -> None:
    store = contents.FolderStore(tmp_path / "store")
    store.folder.mkdir()
    source = _write(tmp_path / "data.bin", b"content")
    with pytest.raises(contents.ContentChanged):
        contents.keep_file(store, str(source), tmp_path, expected_hash="xxh3_128:" + "0" * 32)
    assert list(store.entries()) == [] and list(tmp_path.glob(".*.part")) == []
    kept = contents.keep_file(store, str(source), tmp_path, expected_hash=None)
    assert store.path(kept.key).read_bytes() == b"content"
    assert kept.key == contents.hash_contents(store.path(kept.key))[0]


def _assert_copied_and_hashed(folder: Path, size: int) -> None:
    """copy_hashed copies ``size`` random bytes exactly and returns the copy's hashes."""
    import blake3
    import xxhash

    from tracker.storage import hashed_copy

    data = os.urandom(size)
    source = _write(folder / "source.bin", data)
    with open(source, "rb") as src, open(folder / "copy.bin", "wb+") as out:
        hashes = hashed_copy.copy_hashed(src.fileno(), out.fileno())
    assert (folder / "copy.bin").read_bytes() == data
    assert hashes == (blake3.blake3(data).hexdigest(), xxhash.xxh3_128(data).hexdigest(),
                      len(data))


def test_a_copy_of_a_few_buffers_is_hashed_whole(tmp_path: Path) -> None:
    from tracker.storage import hashed_copy

    _assert_copied_and_hashed(tmp_path, 2 * hashed_copy.BUFFER + 12_345)


def test_a_copy_is_made_by_the_kernel_and_hashed_from_the_copy(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # No byte passes through a user-space write (cp's way, and a third of the CPU time when
    # loaded); the hashes are read from the copy, so they are of the bytes stored.
    from tracker.storage import hashed_copy

    def no_write(fd: int, data: bytes) -> int:
        raise OSError(errno.EPERM, "copied through a user-space write")

    monkeypatch.setattr(os, "write", no_write)
    _assert_copied_and_hashed(tmp_path, 2 * hashed_copy.CHUNK + 12_345)  # a short last chunk


def _shares_blocks(path: Path) -> bool:
    """Whether every extent of ``path`` is shared with another file (filefrag's FIEMAP flag)."""
    extents = [line for line in subprocess.run(
        ["filefrag", "-v", str(path)], capture_output=True, text=True, check=True
    ).stdout.splitlines() if line.lstrip()[:1].isdigit()]
    return bool(extents) and all("shared" in line for line in extents)


def test_a_content_kept_where_blocks_can_be_shared_is_a_clone_not_a_copy(
        reflink_disk: Path) -> None:
    # The "near zero where reflinks work": no byte is copied, the stored file shares
    # the output's blocks, and the output written again later leaves it as it was.
    catalog = tracker.Catalog(reflink_disk / "catalog.duckdb")
    data = os.urandom(3 * hashed_copy.CHUNK // 2)
    output = _write(reflink_disk / "model.bin", data)
    with catalog.start_run("train") as run:
        run.log_output(output, keep=True)
    catalog.flush()
    kept = catalog.get_artifact(output, run=run.id)
    stored = catalog.content_store.path(kept.blob or "")
    assert _shares_blocks(stored) and _shares_blocks(output)

    with open(output, "r+b") as rewritten:  # in place: the clone's blocks are copied on write
        rewritten.write(b"x" * 4096)
    assert stored.read_bytes() == data
    kept.restore(reflink_disk / "back.bin")
    assert (reflink_disk / "back.bin").read_bytes() == data
    assert _shares_blocks(reflink_disk / "back.bin")  # restored as a clone too


def test_a_copy_the_kernel_refuses_is_read_and_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tracker.storage import hashed_copy

    def across_devices(*args: int) -> int:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "copy_file_range", across_devices)
    _assert_copied_and_hashed(tmp_path, 3 * hashed_copy.BUFFER + 7)


def test_a_copy_the_writer_cannot_finish_raises_instead_of_hanging(tmp_path: Path) -> None:
    from tracker.storage import hashed_copy

    source = _write(tmp_path / "source.bin", os.urandom(6 * hashed_copy.BUFFER))
    with open(source, "rb") as src, open(source, "rb") as read_only:  # writes fail: EBADF
        with pytest.raises(OSError) as failed:
            hashed_copy.copy_hashed(src.fileno(), read_only.fileno())
    assert failed.value.errno == errno.EBADF


def test_a_copy_the_file_system_cuts_short_is_finished_by_reading(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Some FUSE and NFS mounts: copy_file_range copies part of a file, then returns 0.
    real = os.copy_file_range

    def stops_early(src: int, dst: int, count: int, offset_src: int, offset_dst: int) -> int:
        return 0 if offset_src else real(src, dst, min(count, 4), offset_src, offset_dst)

    monkeypatch.setattr(os, "copy_file_range", stops_early)
    store = contents.FolderStore(tmp_path / "store")
    source = _write(tmp_path / "data.bin", b"a content that did not change")
    kept = contents.keep_file(store, str(source), tmp_path, expected_hash=None)
    assert store.path(kept.key).read_bytes() == b"a content that did not change"


def test_a_failed_copy_into_a_store_on_another_device_leaves_nothing_behind(
        tmp_path: Path) -> None:
    if not os.path.isdir("/dev/shm") or os.stat("/dev/shm").st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("needs a second file system (/dev/shm) beside the temporary folder")
    shared = Path(tempfile.mkdtemp(dir="/dev/shm"))
    try:
        store = contents.FolderStore(shared, shared=True)
        source = _write(tmp_path / "data.bin", b"content")
        key = contents.hash_contents(source)[0]
        (shared / key / "in-the-way").mkdir(parents=True)  # the final rename fails
        with pytest.raises(OSError):
            contents.keep_file(store, str(source), tmp_path, expected_hash=None)
        assert sorted(path.name for path in shared.iterdir()) == [key]
        assert list(tmp_path.glob(".*.part")) == []
    finally:
        shutil.rmtree(shared)


def test_a_stored_content_cut_short_is_never_given_back(catalog: tracker.Catalog,
                                                       tmp_path: Path) -> None:
    # The catalog's own store (0700, contents 0400, verified when stored) is trusted, and its
    # size checked: a content cut short (by hand, a failed backup) is refused, nothing written.
    with catalog.start_run("writer") as run:
        run.log_output(_write(tmp_path / "model.bin", b"the trained weights"))
    catalog.flush()
    kept = catalog.get_artifact(tmp_path / "model.bin")
    stored = catalog.content_store.path(kept.blob)  # type: ignore[attr-defined]
    stored.chmod(0o600)
    stored.write_bytes(b"the trained")
    with pytest.raises(tracker.ArtifactNotFoundError, match="not that content any more"):
        kept.restore(tmp_path / "back.bin")
    assert not (tmp_path / "back.bin").exists()
    assert not list(tmp_path.glob(".back.bin.*"))  # no partial copy left


def _keep_in_a_team_folder(catalog: tracker.Catalog, tmp_path: Path,
                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A run of ``catalog`` keeps ``model.bin`` in the shared folder ``tmp_path/team-store``."""
    monkeypatch.setenv("TRACKER_STORE", str(tmp_path / "team-store"))
    with catalog.start_run("writer") as run:
        run.log_output(_write(tmp_path / "model.bin", b"the trained weights"))
    catalog.flush()


def test_a_content_altered_in_a_shared_folder_is_never_given_back(
        catalog: tracker.Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Others can write a team's folder: what is restored from it is hashed as it is copied
    # (as when it was kept), so bytes swapped for others of the same size are refused.
    _keep_in_a_team_folder(catalog, tmp_path, monkeypatch)
    kept = catalog.get_artifact(tmp_path / "model.bin")
    stored = tmp_path / "team-store" / str(kept.blob)
    stored.chmod(0o600)
    stored.write_bytes(b"the trained weighTs")
    with pytest.raises(tracker.ArtifactNotFoundError, match="not that content any more"):
        kept.restore(tmp_path / "back.bin")
    assert not (tmp_path / "back.bin").exists()
    assert not list(tmp_path.glob(".back.bin.*"))
    with pytest.raises(tracker.ArtifactNotFoundError, match="not that content any more"):
        kept.open()  # hashed before it is handed over, so not a byte of it is read


def test_a_shared_folder_content_opened_is_checked_and_can_still_seek(
        catalog: tracker.Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _keep_in_a_team_folder(catalog, tmp_path, monkeypatch)
    with catalog.get_artifact(tmp_path / "model.bin").open() as stream:
        assert stream.read(3) == b"the"
        stream.seek(-7, os.SEEK_END)
        assert stream.read() == b"weights"


def test_a_content_altered_in_a_bucket_is_never_given_back(
        bucket: str, catalog: tracker.Catalog, tmp_path: Path) -> None:
    with catalog.start_run("team") as run:
        run.log_output(_write(tmp_path / "scores.csv", b"score\n1\n2\n"))
    kept = retrieval.get_artifact(catalog, tmp_path / "scores.csv")
    store = catalog.content_store
    store._client.put_object(Bucket=store.bucket, Key=store._name(kept.blob),  # type: ignore[attr-defined]
                             Body=b"score\n1\n3\n")
    with pytest.raises(tracker.ArtifactNotFoundError, match="not that content any more"):
        kept.restore(tmp_path / "back.csv")
    assert not (tmp_path / "back.csv").exists()
    # A download cannot seek: it is hashed as it is read, and its end says what it was.
    with pytest.raises(tracker.ArtifactNotFoundError, match="not that content any more"):
        kept.read_dataframe()
    with kept.open() as stream, pytest.raises(tracker.TrackerError, match="restore the store"):
        assert stream.read(6) == b"score\n"  # what comes first is given, unchecked as yet
        stream.read()
    with pytest.raises(FileNotFoundError):  # the standard type, for code that reads files
        with kept.open() as stream:
            while stream.read(2):
                pass


def test_a_bucket_content_read_to_its_end_is_checked_and_given_whole(
        bucket: str, catalog: tracker.Catalog, tmp_path: Path) -> None:
    with catalog.start_run("team") as run:
        run.log_output(_write(tmp_path / "scores.csv", b"score\n1\n2\n"))
        run.log_output(_write(tmp_path / "big.bin", os.urandom(3 << 20)))
    kept = retrieval.get_artifact(catalog, tmp_path / "scores.csv")
    assert kept.read_dataframe()["score"].tolist() == [1, 2]
    with retrieval.get_artifact(catalog, tmp_path / "big.bin").open() as stream:
        assert not stream.seekable()
        assert stream.read() == (tmp_path / "big.bin").read_bytes()
        assert stream.read() == b""  # and again, at the end


def test_a_missing_version_says_how_to_list_them(catalog: tracker.Catalog,
                                                 tmp_path: Path) -> None:
    with catalog.start_run("one") as run:
        run.log_output(_write(tmp_path / "a.txt", b"a"))
    with pytest.raises(LookupError, match="tracker versions"):
        retrieval.get_artifact(catalog, tmp_path / "a.txt", version=7)
    assert retrieval.versions(catalog, tmp_path / "a.txt")["version"].tolist() == [1]


def test_pickles_are_never_loaded_as_dataframes(catalog: tracker.Catalog, tmp_path: Path) -> None:
    with catalog.start_run("pickle") as run:
        run.log_output(_write(tmp_path / "model.pkl", b"\x80\x04N."))
    with pytest.raises(tracker.ArgumentError, match="CSV, Parquet"):
        retrieval.get_artifact(catalog, tmp_path / "model.pkl").read_dataframe()


@pytest.fixture
def bucket(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An S3 bucket on a local moto server started for the test (never the internet)."""
    import socket
    import subprocess
    import sys
    import time

    boto3 = pytest.importorskip("boto3")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                               str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    for name, value in (("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test"),
                        ("AWS_DEFAULT_REGION", "us-east-1"), ("TRACKER_STORE_ENDPOINT", endpoint),
                        ("TRACKER_STORE", "s3://team-contents/tracker")):
        monkeypatch.setenv(name, value)
    try:
        client = boto3.client("s3", endpoint_url=endpoint)
        deadline = time.monotonic() + 30
        while True:
            try:
                client.create_bucket(Bucket="team-contents")
                break
            except Exception:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.2)
        yield "s3://team-contents/tracker"
    finally:
        server.terminate()
        server.wait(10)


def test_contents_can_live_in_a_bucket(bucket: str, catalog: tracker.Catalog,
                                       tmp_path: Path) -> None:
    with catalog.start_run("team") as run:
        run.log_output(_write(tmp_path / "scores.csv", b"score\n1\n2\n"))
    got = retrieval.get_artifact(catalog, tmp_path / "scores.csv")
    assert got.kept == "kept"
    assert got.read_dataframe()["score"].tolist() == [1, 2]
    assert got.restore(tmp_path / "back.csv").read_bytes() == b"score\n1\n2\n"
    assert [entry.key for entry in catalog.content_store.entries()] == [got.blob]
    assert retrieval.disk_usage(catalog)["location"] == bucket
    assert not any(catalog.blob_dir.glob("blake3-*"))  # nothing left beside the catalog


def test_a_big_output_is_hashed_from_its_kept_copy(catalog: tracker.Catalog, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from tracker import hashing

    monkeypatch.setattr(hashing, "HASH_ON_LOG_MAX", 1000)  # files past it are hashed later
    data = os.urandom(5000)
    with catalog.start_run("big") as run:
        run.log_output(_write(tmp_path / "big.bin", data), keep=True)
        with open(_write(tmp_path / "moved.bin", data[:3000]), "r+b", buffering=0) as unseen:
            run.log_output(tmp_path / "moved.bin", keep=True)
            unseen.truncate(0)  # through a descriptor: no open, rename or removal to see
            unseen.write(b"rewritten before the flusher came")
    rows = {Path(row.uri).name: row for row in catalog.artifacts(run.id).itertuples()}
    assert rows["big.bin"].kept == "kept"
    assert rows["big.bin"].hash == hashing.hash_bytes(data)
    with retrieval.get_artifact(catalog, tmp_path / "big.bin").open() as stream:
        assert stream.read() == data
    assert rows["moved.bin"].kept == "changed" and pd.isna(rows["moved.bin"].hash)


def test_a_kept_content_missing_from_a_bucket_is_a_lookup_error(
        bucket: str, catalog: tracker.Catalog, tmp_path: Path) -> None:
    with catalog.start_run("team") as run:
        run.log_output(_write(tmp_path / "scores.csv", b"score\n1\n"))
    kept = retrieval.get_artifact(catalog, tmp_path / "scores.csv")
    catalog.content_store.delete(kept.blob or "")  # cleaned from the bucket by hand
    with pytest.raises(tracker.ArtifactNotFoundError, match="missing from the store"):
        kept.open()
    with pytest.raises(tracker.ArtifactNotFoundError, match="missing from the store"):
        kept.restore(tmp_path / "back.csv")


@pytest.mark.parametrize("path", [123, "out\0.csv", ""])
def test_get_artifact_refuses_what_is_no_path(catalog: tracker.Catalog, path: object) -> None:
    with pytest.raises(tracker.ArgumentError, match="path_or_uri"):
        catalog.get_artifact(path)  # type: ignore[arg-type]


def _kept(catalog: tracker.Catalog, tmp_path: Path) -> retrieval.KeptFile:
    with catalog.start_run("writer") as run:
        run.log_output(_write(tmp_path / "table.csv", b"a\n1\n"))
    catalog.flush()
    return catalog.get_artifact(tmp_path / "table.csv")


@pytest.mark.parametrize("to", [5, "/tmp/x\0y"])
def test_restore_refuses_what_is_no_path(catalog: tracker.Catalog, tmp_path: Path,
                                         to: object) -> None:
    with pytest.raises(tracker.ArgumentError, match="^to "):
        _kept(catalog, tmp_path).restore(to)  # type: ignore[arg-type]


def test_restore_under_a_file_says_it_cannot_write_there(catalog: tracker.Catalog,
                                                         tmp_path: Path) -> None:
    kept = _kept(catalog, tmp_path)
    with pytest.raises(tracker.ArgumentError, match="cannot write"):
        kept.restore(tmp_path / "table.csv" / "back.csv")


def test_restore_never_touches_a_file_or_link_it_was_not_asked_to(
        catalog: tracker.Catalog, tmp_path: Path) -> None:
    kept = _kept(catalog, tmp_path)
    mine = _write(tmp_path / ".back.csv.restoring", b"my notes")  # the old staging name
    secret = _write(tmp_path / "secret", b"keep me")
    os.symlink(secret, tmp_path / ".other.csv.restoring")
    assert kept.restore(tmp_path / "back.csv").read_bytes() == b"a\n1\n"
    assert kept.restore(tmp_path / "other.csv").read_bytes() == b"a\n1\n"
    assert (mine.read_bytes(), secret.read_bytes()) == (b"my notes", b"keep me")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == [
        ".back.csv.restoring", ".other.csv.restoring"]  # nothing staged is left


@pytest.mark.parametrize("setting", ["ftp://x/y", "s3://"])
def test_a_store_setting_tracker_cannot_use_says_what_to_set(
        catalog: tracker.Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        setting: str) -> None:
    _kept(catalog, tmp_path)
    monkeypatch.setenv("TRACKER_STORE", setting)
    catalog = tracker.Catalog(catalog.path)  # a catalog opened with that setting
    kept = catalog.get_artifact(tmp_path / "table.csv")
    for use in (kept.open, kept.read_dataframe, lambda: kept.restore(tmp_path / "b.csv"),
                lambda: retrieval.disk_usage(catalog)):
        with pytest.raises(tracker.ArgumentError, match="TRACKER_STORE"):
            use()


def _bucket_out_of_reach(monkeypatch: pytest.MonkeyPatch) -> None:
    """Point TRACKER_STORE at a bucket whose endpoint is a port nothing listens on."""
    import socket

    pytest.importorskip("boto3")
    with socket.socket() as probe:  # a port nothing listens on: the network is down
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    for name, value in (("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test"),
                        ("AWS_DEFAULT_REGION", "us-east-1"), ("AWS_MAX_ATTEMPTS", "1"),
                        ("TRACKER_STORE_ENDPOINT", closed),
                        ("TRACKER_STORE", "s3://team-contents/tracker")):
        monkeypatch.setenv(name, value)


def test_a_bucket_out_of_reach_is_retried_later_never_judged_unreadable(
        catalog: tracker.Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _bucket_out_of_reach(monkeypatch)
    path = str(_write(tmp_path / "scores.csv", b"score\n1\n"))
    # An OSError out of preparing a batch leaves its events pending, to be written later
    # (not quarantined, not recorded as a content that could not be read).
    with pytest.raises(contents.StoreUnavailable, match="unavailable"):
        delivery.keep_content(catalog, path, hashing.file_facts(path).fields(), None)
    assert not list(contents.staging_dir(catalog.blob_dir).iterdir())  # no copy left behind


@pytest.mark.filterwarnings("ignore::tracker.TrackerWarning")  # the flusher's own retries
def test_flush_while_the_store_is_out_of_reach_raises_a_catalog_error_and_keeps_the_run(
        catalog: tracker.Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def out_of_reach(*args: object, **kwargs: object) -> None:
        raise contents.StoreUnavailable(errno.EAGAIN, "s3://team is unavailable")

    monkeypatch.setattr(delivery, "keep_content", out_of_reach)  # the bucket's network is down
    with catalog.start_run("offline") as run:
        run.log_output(_write(tmp_path / "scores.csv", b"score\n1\n"), keep=True)
    # A public function raises only TrackerError subclasses; what was logged waits.
    with pytest.raises(tracker.CatalogError, match="unavailable"):
        catalog.flush(timeout=10)
    monkeypatch.undo()  # the network is back
    catalog.flush()
    assert catalog.get_run(run.id).outputs[0]["kept"] == "kept"


@pytest.fixture(params=["folder", "bucket"])
def shared_setting(request: pytest.FixtureRequest, tmp_path: Path,
                   monkeypatch: pytest.MonkeyPatch) -> str:
    """A shared store: a team folder, or a bucket on the local moto server."""
    if request.param == "bucket":
        return str(request.getfixturevalue("bucket"))
    monkeypatch.setenv("TRACKER_STORE", str(tmp_path / "team-store"))
    return str(tmp_path / "team-store")


def test_a_shared_store_loses_only_what_no_catalog_marks(
        shared_setting: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tracker import shared_store

    first = tracker.Catalog(tmp_path / "a" / "catalog.duckdb")
    second = tracker.Catalog(tmp_path / "b" / "catalog.duckdb")
    common, mine, theirs = os.urandom(3000), os.urandom(3000), os.urandom(3000)
    with first.start_run("a") as gone:
        gone.log_output(_write(tmp_path / "a-only.bin", mine))
        gone.log_output(_write(tmp_path / "a-common.bin", common))
    with second.start_run("b") as stays:
        stays.log_output(_write(tmp_path / "b-only.bin", theirs))
        stays.log_output(_write(tmp_path / "b-common.bin", common))
    second.flush()
    store = first.content_store
    stray = contents.stage_copy(str(_write(tmp_path / "stray.bin", b"kept by an old tracker")),
                                contents.staging_dir(first.blob_dir))
    contents.store_staged(store, stray, "stray.bin", expected_hash=None)  # no catalog marks it
    assert len(list(store.entries())) == 4

    first.delete_run(gone.id)
    assert first.purge(store=True)["shared"] == 0  # within the grace period: all stay
    monkeypatch.setattr(shared_store, "SETTLE", 0)  # marks made by runs long committed
    monkeypatch.setattr(shared_store, "GRACE", -1)  # contents stored long ago
    assert first.purge()["shared"] == 0  # marks updated, nothing removed unless asked
    assert first.purge(store=True)["shared"] == 2  # a-only and the stray content
    left = {entry.key for entry in store.entries()}
    assert left == {second.get_artifact(tmp_path / name).blob
                    for name in ("b-only.bin", "b-common.bin")}
    for name, data in (("b-only.bin", theirs), ("b-common.bin", common)):
        with second.get_artifact(tmp_path / name).open() as stream:
            assert stream.read() == data


def test_a_content_reused_while_it_is_removed_goes_back(tmp_path: Path) -> None:
    store = contents.FolderStore(tmp_path / "team", shared=True)
    staged = contents.stage_copy(str(_write(tmp_path / "x.bin", b"x")), tmp_path)
    kept = contents.store_staged(store, staged, "x.bin", expected_hash=None)
    real_marks = store.marks

    def marked_meanwhile() -> dict[str, dict[str, float]]:
        store.mark("0" * 32, kept.key)  # another catalog reuses it as it is set aside
        return real_marks()

    store.marks = marked_meanwhile  # type: ignore[method-assign]
    assert not store.remove_unless_marked(kept.key)
    assert store.path(kept.key).read_bytes() == b"x"


def test_a_copy_into_a_fresh_file_never_truncates_it(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """On ext4 a truncation makes close() write the whole file back (auto_da_alloc): a 1 GiB
    restore spent 0.4 s there. A longer file in the way is still cut to the copy's size."""
    source = _write(tmp_path / "kept.bin", b"the kept bytes")
    truncations: list[object] = []
    real_open, real_ftruncate = os.open, os.ftruncate

    def watched_open(path: object, flags: int, *args: object) -> int:
        if flags & os.O_TRUNC:
            truncations.append(path)
        return real_open(path, flags, *args)  # type: ignore[arg-type]

    def watched_ftruncate(fd: int, length: int) -> None:
        truncations.append(fd)
        real_ftruncate(fd, length)

    monkeypatch.setattr(os, "open", watched_open)
    monkeypatch.setattr(os, "ftruncate", watched_ftruncate)
    fresh = tmp_path / "fresh.bin"
    fresh.touch()  # as restore's mkstemp leaves it
    contents.copy_file(source, fresh)
    assert fresh.read_bytes() == b"the kept bytes" and truncations == []
    longer = _write(tmp_path / "longer.bin", b"x" * 100)
    contents.copy_file(source, longer)
    assert longer.read_bytes() == b"the kept bytes" and len(truncations) == 1


@pytest.mark.slow
def test_a_checkpoint_saved_by_each_cell_of_a_real_kernel_keeps_every_version(
        tmp_path: Path) -> None:
    """Cells a few milliseconds apart each save the checkpoint again: the capture records one
    version per cell, and each version's bytes come back, not ``changed``."""
    import nbformat
    from nbclient import NotebookClient
    from nbformat.v4 import new_code_cell, new_notebook

    catalog_path = tmp_path / "catalog" / "catalog.duckdb"
    env = {**os.environ, "TRACKER_CATALOG": str(catalog_path)}
    for name in ("TRACKER_NOTEBOOK", "PYTEST_CURRENT_TEST", "JPY_SESSION_NAME"):
        env.pop(name, None)
    saves = [f"with open('ckpt.bin', 'wb') as out:\n    out.write(b'epoch {epoch} ' * 1000)"
             for epoch in range(3)]
    notebook = new_notebook(cells=[new_code_cell(source) for source in
                                   ["%load_ext tracker", *saves]],
                            metadata={"kernelspec": {"name": "python3", "language": "python",
                                                     "display_name": "Python 3"}})
    nbformat.write(notebook, tmp_path / "train.ipynb")
    NotebookClient(nbformat.read(tmp_path / "train.ipynb", as_version=4), timeout=120,
                   kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
                   ).execute(env=env)
    catalog = tracker.Catalog(catalog_path)
    checkpoint = tmp_path / "ckpt.bin"
    assert list(catalog.artifacts(role="output")["kept"]) == ["kept"] * 3
    for epoch in range(3):
        with catalog.get_artifact(checkpoint, version=epoch + 1).open() as stream:
            assert stream.read() == f"epoch {epoch} ".encode() * 1000


def test_purge_with_a_shared_store_out_of_reach_raises_a_catalog_error(
        catalog: tracker.Catalog, monkeypatch: pytest.MonkeyPatch) -> None:
    _bucket_out_of_reach(monkeypatch)
    with catalog.start_run("gone") as run:
        pass
    catalog.delete_run(run.id)
    with pytest.raises(tracker.CatalogError, match="could not be cleaned.*runs were purged"):
        catalog.purge(store=True)
    assert catalog.runs(deleted_only=True).empty


def test_a_kept_content_is_on_disk_before_its_name_is_in_a_shared_store(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The catalog commits ``kept`` durably next: in a shared folder (no journal there: see
    tests/test_storage_write_behind.py for the catalog's own) the bytes are synced before the
    rename that names them, and the folder after it, so a power cut cannot leave the name on
    no bytes."""
    steps: list[tuple[str, str]] = []
    real_fdatasync, real_fsync, real_replace = os.fdatasync, os.fsync, os.replace

    def fdatasync(fd: int) -> None:
        steps.append(("sync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fdatasync(fd)

    def fsync(fd: int) -> None:
        steps.append(("sync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(source: object, target: object) -> None:
        steps.append(("rename", str(target)))
        real_replace(source, target)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "fdatasync", fdatasync)
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    store = contents.FolderStore(tmp_path / "store", shared=True)
    staging = tmp_path / "staging"
    staging.mkdir()
    source = _write(tmp_path / "model.bin", b"weights")
    kept = contents.keep_file(store, str(source), staging, expected_hash=None)
    target = str(store.path(kept.key))
    assert [kind for kind, _ in steps] == ["sync", "rename", "sync"]
    assert steps[0][1].startswith(str(staging)) and steps[1:] == [
        ("rename", target), ("sync", str(tmp_path / "store"))]


def test_a_store_on_a_file_system_that_cannot_sync_still_keeps(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Some FUSE and network mounts refuse fsync (EINVAL): the content is kept as well as that
    file system can keep it, not recorded unreadable."""
    def cannot(fd: int) -> None:
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(os, "fdatasync", cannot)
    monkeypatch.setattr(os, "fsync", cannot)
    store = contents.FolderStore(tmp_path / "store")
    source = _write(tmp_path / "model.bin", b"weights")
    kept = contents.keep_file(store, str(source), tmp_path, expected_hash=None)
    assert store.path(kept.key).read_bytes() == b"weights"


TEAM, ANN, BOB, EVE = 61000, 61001, 61002, 61003  # a group and three users no one else uses


_AS_A_USER = """
import os, sys
from pathlib import Path
from tracker.storage import contents  # before the switch: that user may not read Python

uid, groups, folder, action, *args = sys.argv[1:]
os.setgroups([int(group) for group in groups.split(",") if group])
os.setgid(int(uid))
os.setuid(int(uid))  # from here on a process of that user
store = contents.FolderStore(Path(folder), shared=True)
try:
    if action == "keep":
        contents.keep_file(store, args[0], Path(args[1]), expected_hash=None, owner="a" * 32)
    else:
        store.restore(args[0], Path(args[1]))
        store.mark("a" * 32, args[0])  # the same catalog's id: one PostgreSQL catalog's users
        store.mark("b" * 32, args[0])
except PermissionError:
    sys.exit(13)
"""


def _as_user(uid: int, groups: list[int], *args: str) -> int:
    """Run :data:`_AS_A_USER` (``keep PATH STAGING`` or ``restore KEY TO``) on the team's
    store as the user ``uid`` (its own group, and ``groups``): its exit code, 0 if it went
    through, 13 if it was refused."""
    return subprocess.run(
        [sys.executable, "-c", _AS_A_USER, str(uid), ",".join(map(str, groups)), *args],
        timeout=120, check=False).returncode


@pytest.fixture
def team_folder() -> Iterator[Path]:
    """A folder every user may pass through (``tmp_path`` is root's alone), removed after."""
    folder = Path(tempfile.mkdtemp(prefix="tracker-team-"))
    folder.chmod(0o711)
    yield folder
    shutil.rmtree(folder)


def _private_folder(parent: Path, uid: int) -> Path:
    folder = parent / str(uid)
    folder.mkdir(mode=0o700)
    os.chown(folder, uid, uid)
    return folder


@pytest.mark.skipif(os.geteuid() != 0, reason="runs processes as other users: needs root")
def test_a_team_folder_shares_what_one_member_keeps_with_its_group_and_nobody_else(
        team_folder: Path) -> None:
    # the old code made the marks' folders 0700 and each content 0400 in its maker's group:
    # the team's other members could neither restore a content nor mark it
    store = team_folder / "store"
    store.mkdir()
    os.chown(store, 0, TEAM)
    store.chmod(0o2770)  # as its admin makes it the team's
    ann, bob, eve = (_private_folder(team_folder, uid) for uid in (ANN, BOB, EVE))
    model = ann / "model.bin"
    model.write_bytes(b"the team's weights")
    os.chown(model, ANN, ANN)
    key = contents.hash_contents(model)[0]
    assert _as_user(ANN, [TEAM], str(store), "keep", str(model), str(ann)) == 0

    content = os.stat(store / key)
    assert (content.st_uid, content.st_gid, stat.S_IMODE(content.st_mode)) == (ANN, TEAM, 0o440)
    for folder in (store / ".marks", store / ".marks" / ("a" * 32)):
        assert (os.stat(folder).st_gid, stat.S_IMODE(os.stat(folder).st_mode)) == (TEAM, 0o2770)
    assert stat.S_IMODE(os.stat(store / ".marks" / ("a" * 32) / key).st_mode) == 0o660

    assert _as_user(BOB, [TEAM], str(store), "restore", key, str(bob / "back.bin")) == 0
    assert (bob / "back.bin").read_bytes() == b"the team's weights"
    assert _as_user(EVE, [], str(store), "restore", key, str(eve / "back.bin")) == 13
    assert not (eve / "back.bin").exists()


def test_a_shared_folder_tracker_creates_stays_private(
        catalog: tracker.Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _keep_in_a_team_folder(catalog, tmp_path, monkeypatch)
    store = tmp_path / "team-store"
    [content] = [entry for entry in store.iterdir() if contents.is_key(entry.name)]
    assert stat.S_IMODE(store.stat().st_mode) == 0o700
    assert stat.S_IMODE(content.stat().st_mode) == 0o400
    assert {stat.S_IMODE(path.stat().st_mode) for path in (store / ".marks").rglob("*")} == \
        {0o700, 0o600}


def test_a_shared_folder_every_user_may_write_is_refused_unless_trusted(
        catalog: tracker.Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the old code used it: anyone could plant or remove kept contents and marks there
    store = tmp_path / "public"
    store.mkdir()
    store.chmod(0o1777)  # like /tmp: the sticky bit does not make it the team's
    monkeypatch.setenv("TRACKER_STORE", str(store))
    with catalog.start_run("writer") as run:
        run.log_output(_write(tmp_path / "model.bin", b"the trained weights"))
    catalog.flush()
    kept = catalog.get_artifact(tmp_path / "model.bin")
    assert kept.kept == "not kept" and not list(store.iterdir())
    with pytest.raises(tracker.CatalogOwnershipError, match="chmod 2770"):
        _ = tracker.Catalog(catalog.path).content_store
    monkeypatch.setenv("TRACKER_TRUSTED_CATALOGS", str(store))
    assert tracker.Catalog(catalog.path).content_store.location == str(store)
