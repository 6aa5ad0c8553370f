"""Content hashes: known values, the stat-keyed cache, folders, and files that vanish."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import textwrap
import threading

import pytest
import xxhash

from tracker import hashing
from tracker.hashing import FileFacts, FileHasher, file_facts, hash_bytes, hash_file


def test_hash_file_of_known_content(tmp_path: pathlib.Path) -> None:
    (tmp_path / "hello.txt").write_bytes(b"hello world\n")
    assert hash_file(str(tmp_path / "hello.txt")) == "xxh3_128:" + xxhash.xxh3_128(
        b"hello world\n"
    ).hexdigest()
    (tmp_path / "empty").write_bytes(b"")
    assert hash_file(str(tmp_path / "empty")) == "xxh3_128:" + xxhash.xxh3_128(b"").hexdigest()


def test_hash_spans_several_read_chunks(tmp_path: pathlib.Path) -> None:
    data = os.urandom(1024) * (9 * 1024) + b"tail"  # 9 MiB + 4 bytes: two 8 MiB chunks
    (tmp_path / "big.bin").write_bytes(data)
    assert hash_file(str(tmp_path / "big.bin")) == "xxh3_128:" + xxhash.xxh3_128(data).hexdigest()


def test_file_facts_reports_size_and_mtime(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "f.txt"
    path.write_text("12345")
    os.utime(path, (1_700_000_000.5, 1_700_000_000.5))
    facts = file_facts(str(path))
    assert facts == FileFacts(str(path), 5, 1_700_000_000.5, hash_file(str(path)))


def test_cache_hit_does_not_reread(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "f.txt"
    path.write_text("aaaa")
    os.utime(path, (1_700_000_000, 1_700_000_000))  # written long ago: its key is settled
    hasher = FileHasher()
    first = hasher.hash(str(path))
    path.write_text("bbbb")  # same size; restore the mtime so the stat key is unchanged
    os.utime(path, (1_700_000_000, 1_700_000_000))
    assert hasher.hash(str(path)).hash == first.hash
    assert FileHasher().hash(str(path)).hash != first.hash


def test_a_file_written_just_now_is_read_again_even_under_the_same_stat_key(
        tmp_path: pathlib.Path) -> None:
    # A coarse file clock gives two writes within a tick the same mtime: what a cache keyed by
    # (size, mtime) cannot tell apart must not be cached.
    path = tmp_path / "f.txt"
    path.write_text("aaaa")
    hasher = FileHasher()
    first = hasher.hash(str(path))
    info = os.stat(path)
    path.write_text("bbbb")
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))
    assert hasher.hash(str(path)).hash == hash_file(str(path)) != first.hash


def test_changed_file_is_rehashed(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "f.txt"
    path.write_text("one")
    hasher = FileHasher()
    before = hasher.hash(str(path)).hash
    path.write_text("three")
    assert hasher.hash(str(path)).hash == hash_file(str(path)) != before


def test_directory_hash_covers_names_and_contents(tmp_path: pathlib.Path) -> None:
    def make(root: pathlib.Path, files: dict[str, str]) -> str:
        for name, text in files.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(text)
        return hash_file(str(root))

    base = make(tmp_path / "a", {"x.txt": "1", "sub/y.txt": "2"})
    assert make(tmp_path / "b", {"sub/y.txt": "2", "x.txt": "1"}) == base
    assert make(tmp_path / "c", {"x.txt": "1", "sub/z.txt": "2"}) != base
    assert make(tmp_path / "d", {"x.txt": "1", "sub/y.txt": "3"}) != base
    facts = FileHasher().hash(str(tmp_path / "a"))
    assert (facts.hash, facts.size) == (base, 2)


def test_vanished_file_has_no_hash(tmp_path: pathlib.Path) -> None:
    assert FileHasher().hash(str(tmp_path / "gone.txt")) == FileFacts(
        str(tmp_path / "gone.txt"), None, None, None
    )
    with pytest.raises(FileNotFoundError):
        hash_file(str(tmp_path / "gone.txt"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file_has_size_but_no_hash(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "secret.txt"
    path.write_text("s")
    path.chmod(0)
    facts = FileHasher().hash(str(path))
    assert (facts.size, facts.hash) == (1, None)


def test_hasher_is_thread_safe(tmp_path: pathlib.Path) -> None:
    paths = []
    for i in range(20):
        (tmp_path / f"{i}.bin").write_bytes(os.urandom(100_000))
        paths.append(str(tmp_path / f"{i}.bin"))
    hasher = FileHasher()
    results: list[list[str | None]] = []

    def work() -> None:
        results.append([hasher.hash(p).hash for p in paths])

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    expected = [hash_file(p) for p in paths]
    assert results == [expected] * 4




def test_fifo_and_device_are_not_read(tmp_path: pathlib.Path) -> None:
    # In a subprocess with a timeout: reading either would block for good, or never end.
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    script = textwrap.dedent(f"""
        from tracker.hashing import file_facts
        for path in ({str(fifo)!r}, "/dev/zero"):
            print(file_facts(path).hash)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=30, check=True)
    assert done.stdout.split() == ["None", "None"]


def test_folder_past_the_bounds_has_no_hash(tmp_path: pathlib.Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    for index in range(5):
        (tmp_path / f"{index}.txt").write_text("x")
    monkeypatch.setattr(hashing, "DIR_MAX_ENTRIES", 4)
    facts = FileHasher().hash(str(tmp_path))
    assert facts.hash is None and facts.size is None and facts.mtime is not None
    monkeypatch.setattr(hashing, "DIR_MAX_ENTRIES", 5)
    monkeypatch.setattr(hashing, "DIR_MAX_BYTES", 4)
    assert FileHasher().hash(str(tmp_path)).hash is None
    monkeypatch.setattr(hashing, "DIR_MAX_BYTES", 5)
    assert FileHasher().hash(str(tmp_path)).hash is not None


def test_a_small_file_is_hashed_when_logged_and_a_big_one_is_noted_for_later(
        tmp_path: pathlib.Path) -> None:
    small, big = tmp_path / "small.txt", tmp_path / "big.bin"
    small.write_bytes(b"12345")
    big.write_bytes(b"123456")
    hasher = FileHasher()
    assert hasher.on_log(str(small), limit=5) == hasher.hash(str(small))
    noted = hasher.on_log(str(big), limit=5)
    assert noted is not None and noted.hash is None and noted.size == 6
    assert noted.seen is not None
    assert hasher.as_seen(str(big), noted.seen).hash == hash_file(str(big))
    assert hasher.on_log(str(tmp_path), limit=5) is None  # a folder: hashed later, whole


def test_a_big_file_changed_since_it_was_logged_has_no_hash_unless_pinned_first(
        tmp_path: pathlib.Path) -> None:
    path = tmp_path / "model.bin"
    path.write_bytes(b"weights-1")
    hasher = FileHasher()
    noted = hasher.on_log(str(path), limit=0)
    assert noted is not None and noted.seen is not None
    pinned = FileHasher()
    pinned.pin(str(path), noted.seen)  # what a write-open of a file read does first
    path.write_bytes(b"weights-2, longer")
    assert hasher.as_seen(str(path), noted.seen).hash is None
    assert pinned.as_seen(str(path), noted.seen).hash == hash_bytes(b"weights-1")
