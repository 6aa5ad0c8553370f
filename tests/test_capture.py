"""Tests for tracker.capture: file I/O capture through real libraries, filtering, and hashing."""

from __future__ import annotations

import os
import pathlib
import pickle
import sys
import threading
from collections.abc import Iterator

import pytest
from capture_recorder import Recorder

from tracker.capture import FileCapture, suppressed
from tracker.errors import TrackerWarning
from tracker.hashing import FileHasher


@pytest.fixture
def root(tmp_path: pathlib.Path) -> pathlib.Path:
    return pathlib.Path(os.path.realpath(tmp_path))


@pytest.fixture
def rec(root: pathlib.Path) -> Iterator[Recorder]:
    recorder = Recorder(root)
    recorder.capture.start()
    yield recorder
    recorder.capture.stop()


def _is_patched(function: object) -> bool:
    return hasattr(function, "__tracker_original__")


# --- Python-level opens ------------------------------------------------------------------------


def test_builtin_open_reports_reads_and_writes(rec: Recorder) -> None:
    with open(rec.root / "out.txt", "w") as f:
        f.write("x")
    (rec.root / "in.txt").write_text("y")
    with open(rec.root / "in.txt") as f:
        f.read()
    assert rec.writes == [rec.path("out.txt"), rec.path("in.txt")]
    assert rec.reads == []  # in.txt was written by the run itself
    assert rec.via[rec.path("out.txt")] == "open"


def test_report_records_a_path_seen_by_other_means(rec: Recorder) -> None:
    (rec.root / "moved.bin").write_bytes(b"m")
    rec.forget()
    rec.capture.report(str(rec.root / "moved.bin"), "write", via="rename")
    rec.capture.report(str(rec.root / "moved.bin"), "write", via="scan")  # already seen
    rec.capture.report("/usr/lib/os-release", "read", via="inferred")  # filtered as usual
    assert rec.writes == [rec.path("moved.bin")]
    assert rec.via == {rec.path("moved.bin"): "rename"}
    assert rec.reads == []


def test_file_present_before_the_run_is_an_input(root: pathlib.Path) -> None:
    (root / "data.csv").write_text("a\n1\n")
    rec = Recorder(root)
    rec.capture.start()
    try:
        (root / "data.csv").read_text()
    finally:
        rec.capture.stop()
    assert rec.reads == [rec.path("data.csv")]
    assert rec.writes == []


def test_written_then_read_back_is_not_an_input(rec: Recorder) -> None:
    target = rec.root / "model.bin"
    target.write_bytes(b"weights")
    assert target.read_bytes() == b"weights"
    assert rec.reads == []
    assert rec.writes == [rec.path("model.bin")]


def test_each_path_reported_once_until_reset_seen(root: pathlib.Path) -> None:
    (root / "a.txt").write_text("a")
    rec = Recorder(root)
    rec.capture.start()
    try:
        for _ in range(3):
            (root / "a.txt").read_text()
        rec.capture.reset_seen()
        (root / "a.txt").read_text()
    finally:
        rec.capture.stop()
    assert rec.reads == [rec.path("a.txt"), rec.path("a.txt")]


def test_os_open_flags_decide_the_role(root: pathlib.Path) -> None:
    (root / "old.txt").write_text("old")
    (root / "shared.txt").write_text("shared")
    rec = Recorder(root)
    rec.capture.start()
    try:
        os.close(os.open(root / "old.txt", os.O_RDONLY))
        os.close(os.open(root / "new.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC))
        os.close(os.open(os.fsencode(root / "shared.txt"), os.O_RDWR))
    finally:
        rec.capture.stop()
    assert rec.reads == [rec.path("old.txt"), rec.path("shared.txt")]
    assert rec.writes == [rec.path("new.txt"), rec.path("shared.txt")]


def test_plus_mode_reads_only_an_existing_untruncated_file(root: pathlib.Path) -> None:
    (root / "edit.txt").write_text("1")
    (root / "trunc.txt").write_text("2")
    rec = Recorder(root)
    rec.capture.start()
    try:
        with open(root / "edit.txt", "r+") as f:
            f.write("3")
        with open(root / "trunc.txt", "w+") as f:
            f.write("4")
        with open(root / "fresh.txt", "a+") as f:
            f.write("5")
    finally:
        rec.capture.stop()
    assert rec.reads == [rec.path("edit.txt")]
    assert rec.writes == [rec.path(n) for n in ("edit.txt", "trunc.txt", "fresh.txt")]


def test_failed_opens_are_not_reported(rec: Recorder) -> None:
    with pytest.raises(FileNotFoundError):
        open(rec.root / "missing.txt")
    with pytest.raises(FileNotFoundError):
        open(rec.root / "no_such_dir" / "out.txt", "w")
    assert rec.reads == [] and rec.writes == []


def test_relative_paths_and_symlinks_are_reported_absolute_and_real(
    rec: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    (rec.root / "sub").mkdir()
    (rec.root / "sub" / "real.txt").write_text("r")
    (rec.root / "link.txt").symlink_to(rec.root / "sub" / "real.txt")
    rec.forget()
    monkeypatch.chdir(rec.root)
    open("link.txt").close()
    os.chdir("sub")  # the cached working directory must follow chdir
    open("other.txt", "w").close()
    assert rec.reads == [rec.path("sub/real.txt")]
    assert rec.writes == [rec.path("sub/other.txt")]


def test_a_symlink_pointed_elsewhere_mid_session_reports_its_new_target(
    rec: Recorder,
) -> None:
    # data/latest -> v1, read; the run makes v2 and points latest at it; latest read again
    for version in ("v1", "v2"):
        (rec.root / version).mkdir()
        (rec.root / version / "table.csv").write_text(version)
    latest = rec.root / "latest"
    latest.symlink_to(rec.root / "v1")
    rec.forget()
    (latest / "table.csv").read_text()
    latest.unlink()
    latest.symlink_to(rec.root / "v2")
    (latest / "table.csv").read_text()
    assert rec.reads == [rec.path("v1/table.csv"), rec.path("v2/table.csv")]


def test_a_symlink_undone_by_dot_dot_is_followed_when_pointed_elsewhere(rec: Recorder) -> None:
    # a/link/../b/f.txt reads a/b/f.txt while link -> a/c, and x/b/f.txt once link -> x/y
    for folder in ("a/c", "a/b", "x/y", "x/b"):
        (rec.root / folder).mkdir(parents=True)
    (rec.root / "a/b/f.txt").write_text("a")
    (rec.root / "x/b/f.txt").write_text("x")
    link = rec.root / "a" / "link"
    link.symlink_to(rec.root / "a" / "c")
    rec.forget()
    opened = pathlib.Path(f"{rec.root}/a/link/../b/f.txt")
    assert opened.read_text() == "a"
    link.unlink()
    link.symlink_to(rec.root / "x" / "y")
    assert opened.read_text() == "x"
    assert rec.reads == [rec.path("a/b/f.txt"), rec.path("x/b/f.txt")]


def test_a_link_pointed_at_the_same_file_by_another_name_records_that_name(
        rec: Recorder) -> None:
    # the file a link led to renamed and the link pointed at its new name; then a hard link
    # (cp -al snapshots) reached by the link instead of the name it had
    (rec.root / "a.csv").write_text("a")
    current = rec.root / "current"
    current.symlink_to(rec.root / "a.csv")
    rec.forget()
    current.read_text()
    (rec.root / "a.csv").rename(rec.root / "b.csv")
    rec.capture.reset_seen()  # as if another process renamed it: b.csv is no output of ours
    current.unlink()
    current.symlink_to(rec.root / "b.csv")
    current.read_text()
    os.link(rec.root / "b.csv", rec.root / "c.csv")
    current.unlink()
    current.symlink_to(rec.root / "c.csv")
    current.read_text()
    assert rec.reads == [rec.path("a.csv"), rec.path("b.csv"), rec.path("c.csv")]


def test_a_path_through_a_link_is_resolved_once_while_the_link_stays(
        rec: Recorder, monkeypatch: pytest.MonkeyPatch) -> None:
    (rec.root / "v1").mkdir()
    (rec.root / "v1" / "t.csv").write_text("1")
    (rec.root / "latest").symlink_to(rec.root / "v1")
    resolved: list[str] = []
    realpath = os.path.realpath

    def counting(path: str, **kwargs: object) -> str:
        resolved.append(path)
        return realpath(path, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os.path, "realpath", counting)
    for _ in range(3):
        (rec.root / "latest" / "t.csv").read_text()
    assert resolved.count(str(rec.root / "latest" / "t.csv")) == 1  # then one stat per open


def test_pathlib_and_shutil(rec: Recorder) -> None:
    import shutil

    (rec.root / "src.txt").write_text("s")
    rec.forget()
    shutil.copyfile(rec.root / "src.txt", rec.root / "dst.txt")
    assert rec.reads == [rec.path("src.txt")]
    assert rec.writes == [rec.path("dst.txt")]


def test_opens_in_other_threads_are_captured(root: pathlib.Path) -> None:
    (root / "t.txt").write_text("t")
    rec = Recorder(root)
    rec.capture.start()
    try:
        thread = threading.Thread(target=(root / "t.txt").read_text)
        thread.start()
        thread.join()
    finally:
        rec.capture.stop()
    assert rec.reads == [rec.path("t.txt")]


def test_c_level_open_events_without_flags_use_the_mode(rec: Recorder) -> None:
    # C callers (_Py_fopen_obj) audit a fopen mode string with flags 0.
    (rec.root / "c_in.txt").write_text("c")
    rec.forget()
    sys.audit("open", str(rec.root / "c_in.txt"), "rb", 0)
    sys.audit("open", str(rec.root / "c_out.txt"), "wb", 0)
    sys.audit("open", 3, "rb", 0)  # an fd, not a path
    assert rec.reads == [rec.path("c_in.txt")]
    assert rec.writes == [rec.path("c_out.txt")]


# --- renames and processes ----------------------------------------------------------------------


def test_rename_reports_the_destination_written_and_the_source_read(rec: Recorder) -> None:
    (rec.root / "old.txt").write_text("o")
    rec.forget()
    os.rename(rec.root / "old.txt", rec.root / "new.txt")
    assert rec.writes == [rec.path("new.txt")]
    assert rec.reads == [str(rec.root / "old.txt")]
    assert rec.via == {rec.path("new.txt"): "rename", rec.path("old.txt"): "rename"}


def test_temp_file_replaced_into_place_is_reported_under_its_final_name_only(
        root: pathlib.Path) -> None:
    import tempfile

    moved: list[str] = []
    rec = Recorder(root, on_moved=moved.append)
    rec.capture.start()
    try:
        with tempfile.NamedTemporaryFile("w", dir=root, suffix=".tmp", delete=False) as tmp:
            tmp.write("final")
        os.replace(tmp.name, root / "final.txt")
        (root / "final.txt").rename(root / "renamed.txt")
    finally:
        rec.capture.stop()
    assert moved == [rec.path(pathlib.Path(tmp.name).name), rec.path("final.txt")]
    assert rec.reads == []
    # Reported as they happened; the run's owner drops what `on_moved` names.
    assert rec.writes == [rec.path(pathlib.Path(tmp.name).name), rec.path("final.txt"),
                          rec.path("renamed.txt")]


def test_shutil_move_of_a_file_and_of_a_folder(rec: Recorder) -> None:
    import shutil

    (rec.root / "in.txt").write_text("i")
    (rec.root / "folder").mkdir()
    (rec.root / "folder" / "part.txt").write_text("p")
    rec.forget()
    shutil.move(rec.root / "in.txt", rec.root / "folder" / "in.txt")
    shutil.move(rec.root / "folder", rec.root / "moved")
    assert rec.reads == [rec.path("in.txt"), rec.path("folder")]
    assert rec.writes == [rec.path("folder/in.txt"), rec.path("moved")]


def test_failing_rename_and_renames_out_of_scope_report_nothing(rec: Recorder) -> None:
    import tempfile

    with pytest.raises(FileNotFoundError):
        os.rename(rec.root / "missing.txt", rec.root / "never.txt")
    with tempfile.TemporaryDirectory(dir=rec.root.parent) as outside:
        (pathlib.Path(outside) / "t.txt").write_text("t")
        rec.forget()
        os.rename(pathlib.Path(outside) / "t.txt", pathlib.Path(outside) / "u.txt")
    assert rec.reads == [] and rec.writes == []


def test_process_events_reach_on_process(root: pathlib.Path) -> None:
    import subprocess

    events: list[str] = []
    rec = Recorder(root, on_process=lambda event, args: events.append(event))
    rec.capture.start()
    try:
        subprocess.run(["true"], check=True)
        os.system("true")
        with suppressed():  # tracker's own processes are not the notebook's
            subprocess.run(["true"], check=True)
    finally:
        rec.capture.stop()
    assert events == ["subprocess.Popen", "os.system"]


# --- libraries ----------------------------------------------------------------------------------


def test_pandas_csv_and_json(rec: Recorder) -> None:
    import pandas as pd

    df = pd.DataFrame({"a": [1, 2]})
    df.to_csv(rec.root / "t.csv", index=False)
    df.to_json(rec.root / "t.json")
    (rec.root / "given.csv").write_text("b\n3\n")
    rec.capture.reset_seen()
    assert pd.read_csv(rec.root / "given.csv")["b"].tolist() == [3]
    assert pd.read_json(rec.root / "t.json")["a"].tolist() == [1, 2]
    assert sorted(rec.reads) == [rec.path("given.csv"), rec.path("t.json")]


def test_numpy_save_and_load(rec: Recorder) -> None:
    import numpy as np

    np.save(rec.root / "arr.npy", np.arange(3))
    assert rec.writes == [rec.path("arr.npy")]
    rec.capture.reset_seen()
    assert np.load(rec.root / "arr.npy").tolist() == [0, 1, 2]
    assert rec.reads == [rec.path("arr.npy")]


def test_pickle_with_open_files(rec: Recorder) -> None:
    with open(rec.root / "obj.pkl", "wb") as f:
        pickle.dump({"k": 1}, f)
    rec.capture.reset_seen()
    with open(rec.root / "obj.pkl", "rb") as f:
        assert pickle.load(f) == {"k": 1}
    assert rec.reads == [rec.path("obj.pkl")]


def test_pyarrow_parquet_native_reads_and_writes(rec: Recorder) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rec.capture.patch_native()
    table = pa.table({"x": [1, 2, 3]})
    pq.write_table(table, str(rec.root / "t.parquet"))
    assert rec.writes == [rec.path("t.parquet")]
    rec.capture.reset_seen()
    assert pq.read_table(rec.root / "t.parquet").num_rows == 3
    assert pq.ParquetFile(str(rec.root / "t.parquet")).metadata.num_rows == 3
    assert rec.reads == [rec.path("t.parquet")]
    assert rec.via[rec.path("t.parquet")] == "pyarrow"


def test_pandas_parquet_and_feather(rec: Recorder) -> None:
    import pandas as pd

    rec.capture.patch_native()
    df = pd.DataFrame({"x": [1.0, 2.0]})
    df.to_parquet(rec.root / "d.parquet")
    df.to_feather(rec.root / "d.feather")
    assert rec.writes == [rec.path("d.parquet"), rec.path("d.feather")]
    rec.capture.reset_seen()
    assert pd.read_parquet(rec.root / "d.parquet").equals(df)
    assert pd.read_feather(str(rec.root / "d.feather")).equals(df)
    assert rec.reads == [rec.path("d.parquet"), rec.path("d.feather")]


def test_a_file_read_then_written_is_announced_while_it_still_holds_what_was_read(
        root: pathlib.Path) -> None:
    # The run's input must be hashed before the overwrite: the callback sees the old bytes.
    (root / "stores.tsv").write_text("id\tcity\n1\tParis \n")
    (root / "notes.md").write_text("# new")
    seen: dict[str, bytes] = {}
    rec = Recorder(root, before_overwrite=lambda path: seen.setdefault(
        path, pathlib.Path(path).read_bytes()))
    rec.capture.start()
    try:
        cleaned = (root / "stores.tsv").read_text().replace(" \n", "\n")
        (root / "stores.tsv").write_text(cleaned)
        (root / "notes.md").write_text("# never read, so not announced")
    finally:
        rec.capture.stop()
    assert seen == {rec.path("stores.tsv"): b"id\tcity\n1\tParis \n"}
    assert rec.reads == [rec.path("stores.tsv")]


def test_a_native_write_over_a_file_read_is_announced_before_it_writes(
        root: pathlib.Path) -> None:
    import pandas as pd

    pd.DataFrame({"x": [1.0]}).to_parquet(root / "d.parquet")
    before = (root / "d.parquet").read_bytes()
    seen: dict[str, bytes] = {}
    rec = Recorder(root, before_overwrite=lambda path: seen.setdefault(
        path, pathlib.Path(path).read_bytes()))
    rec.capture.start()
    try:
        frame = pd.read_parquet(root / "d.parquet")
        (frame * 2).to_parquet(root / "d.parquet")
    finally:
        rec.capture.stop()
    assert seen == {rec.path("d.parquet"): before}
    assert (root / "d.parquet").read_bytes() != before


def test_pyarrow_feather(rec: Recorder) -> None:
    import pyarrow as pa
    import pyarrow.feather as feather

    rec.capture.patch_native()
    feather.write_feather(pa.table({"y": [1]}), str(rec.root / "f.arrow"))
    rec.capture.reset_seen()
    assert feather.read_table(str(rec.root / "f.arrow")).num_rows == 1
    assert rec.reads == [rec.path("f.arrow")]


def test_partitioned_dataset_is_reported_as_its_directory(rec: Recorder) -> None:
    import pyarrow as pa
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    rec.capture.patch_native()
    table = pa.table({"part": ["a", "b"], "v": [1, 2]})
    pq.write_to_dataset(table, str(rec.root / "ds"), partition_cols=["part"])
    assert rec.writes == [rec.path("ds")]
    rec.capture.reset_seen()
    assert ds.dataset(str(rec.root / "ds"), partitioning="hive").count_rows() == 2
    assert rec.reads == [rec.path("ds")]


def test_native_buffers_and_urls_are_ignored(rec: Recorder) -> None:
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    rec.capture.patch_native()
    sink = io.BytesIO()
    pq.write_table(pa.table({"x": [1]}), sink)
    sink.seek(0)
    assert pq.read_table(sink).num_rows == 1
    assert rec.reads == [] and rec.writes == []


def test_refresh_patches_modules_imported_later(
    rec: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pyarrow.parquet as pq

    rec.capture.stop()
    monkeypatch.delitem(sys.modules, "pyarrow.parquet")
    rec.capture.start()
    assert not _is_patched(pq.write_table)  # not imported (as far as capture can tell)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", pq)
    rec.capture.refresh()
    assert _is_patched(pq.write_table)
    rec.capture.refresh()  # idempotent: no double wrapping
    assert not _is_patched(pq.write_table.__tracker_original__)


# --- filtering ----------------------------------------------------------------------------------


def test_site_packages_and_stdlib_are_never_reported(rec: Recorder) -> None:
    import json

    import pandas as pd

    open(pd.__file__).close()
    open(json.__file__).close()
    assert rec.reads == []


def test_temp_dir_is_excluded_unless_included(root: pathlib.Path) -> None:
    (root / "a.txt").write_text("a")
    rec = Recorder(root, include=())
    rec.capture.start()
    try:
        (root / "a.txt").read_text()
    finally:
        rec.capture.stop()
    assert rec.reads == []


def test_include_only_adds_paths_back(root: pathlib.Path) -> None:
    (root / "keep").mkdir()
    (root / "keep" / "k.txt").write_text("k")
    (root / "other.txt").write_text("o")
    rec = Recorder(root, include=[f"{root}/keep/**"])
    rec.capture.start()
    try:
        (root / "keep" / "k.txt").read_text()
        (root / "other.txt").read_text()  # still in the temp dir: excluded by default
    finally:
        rec.capture.stop()
    assert rec.reads == [rec.path("keep/k.txt")]


def test_exclude_glob_wins_over_include(root: pathlib.Path) -> None:
    (root / "a.log").write_text("l")
    (root / "a.csv").write_text("c")
    rec = Recorder(root, exclude=["*.log"])
    rec.capture.start()
    try:
        (root / "a.log").read_text()
        (root / "a.csv").read_text()
    finally:
        rec.capture.stop()
    assert rec.reads == [rec.path("a.csv")]


def test_relative_globs_are_anchored_at_the_working_directory(
    root: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (root / "raw").mkdir()
    (root / "raw" / "r.csv").write_text("r")
    (root / "s.csv").write_text("s")
    monkeypatch.chdir(root)
    rec = Recorder(root, exclude=["raw/**"])
    rec.capture.start()
    try:
        (root / "raw" / "r.csv").read_text()
        (root / "s.csv").read_text()
    finally:
        rec.capture.stop()
    assert rec.reads == [rec.path("s.csv")]


def test_excluded_dirs_and_add_excluded_dir(root: pathlib.Path) -> None:
    for name in ("catalog", "spool", "data"):
        (root / name).mkdir()
        (root / name / "f.txt").write_text(name)
    rec = Recorder(root, excluded_dirs=[str(root / "catalog")])
    rec.capture.add_excluded_dir(str(root / "spool"))
    rec.capture.start()
    try:
        for name in ("catalog", "spool", "data"):
            (root / name / "f.txt").read_text()
    finally:
        rec.capture.stop()
    assert rec.reads == [rec.path("data/f.txt")]


def test_pycache_and_checkpoints_are_never_reported(rec: Recorder) -> None:
    (rec.root / "__pycache__").mkdir()
    (rec.root / ".ipynb_checkpoints").mkdir()
    (rec.root / "__pycache__" / "m.txt").write_text("x")
    (rec.root / ".ipynb_checkpoints" / "nb-checkpoint.ipynb").write_text("{}")
    (rec.root / "m.pyc").write_bytes(b"")
    assert rec.writes == []


# --- lifecycle and failures --------------------------------------------------------------------


def test_stop_stops_reporting_and_unpatches(rec: Recorder) -> None:
    import pyarrow.parquet as pq

    rec.capture.patch_native()
    assert rec.capture.active and _is_patched(pq.read_table)
    rec.capture.stop()
    (rec.root / "after.txt").write_text("a")
    assert rec.writes == []
    assert not rec.capture.active
    assert not _is_patched(pq.read_table) and not _is_patched(pq.ParquetFile.__init__)


def test_failing_callback_warns_once_and_open_still_works(root: pathlib.Path) -> None:
    def explode(path: str, via: str) -> None:
        raise RuntimeError("callback bug")

    capture = FileCapture(on_read=explode, on_write=explode, include=[f"{root}/**"])
    capture.start()
    try:
        with pytest.warns(TrackerWarning, match="callback bug") as caught:
            with open(root / "a.txt", "w") as f:
                f.write("a")
            with open(root / "b.txt", "w") as f:
                f.write("b")
            assert (root / "a.txt").read_text() == "a"
    finally:
        capture.stop()
    assert len(caught) == 1
    assert caught[0].filename == __file__  # the warning points at the user's line
    assert not capture.active


def test_opens_inside_a_callback_do_not_recurse(root: pathlib.Path) -> None:
    seen: list[str] = []

    def log_and_read(path: str, via: str) -> None:
        seen.append(path)
        (root / "side.txt").write_text(path)  # would recurse without the guard

    capture = FileCapture(on_read=log_and_read, on_write=log_and_read, include=[f"{root}/**"])
    capture.start()
    try:
        (root / "a.txt").write_text("a")
    finally:
        capture.stop()
    assert seen == [str(root / "a.txt")]


def test_suppressed_hides_tracker_own_io(rec: Recorder) -> None:
    with suppressed():
        (rec.root / "spool.jsonl").write_text("{}")
    (rec.root / "user.txt").write_text("u")
    assert rec.writes == [rec.path("user.txt")]


def test_two_captures_report_independently(root: pathlib.Path) -> None:
    first, second = Recorder(root), Recorder(root, exclude=["*.csv"])
    first.capture.start()
    second.capture.start()
    try:
        (root / "a.csv").write_text("a")
        second.capture.stop()
        (root / "b.txt").write_text("b")
    finally:
        first.capture.stop()
    assert first.writes == [first.path("a.csv"), first.path("b.txt")]
    assert second.writes == []


def test_hashing_is_not_captured_as_a_read(root: pathlib.Path) -> None:
    (root / "in.txt").write_text("i")
    rec = Recorder(root)
    rec.capture.start()
    try:
        FileHasher().hash(str(root / "in.txt"))
    finally:
        rec.capture.stop()
    assert rec.reads == []


def test_tracker_own_source_is_never_an_input(rec: Recorder) -> None:
    # An editable install (or a checkout on sys.path) lives outside site-packages; a module
    # tracker imports lazily during a run must not be reported, whatever the include globs.
    import tracker

    source = pathlib.Path(tracker.__file__).with_name("libraries.py")
    rec.capture.stop()
    wide = Recorder(rec.root, include=[str(source.parent) + "/**"])
    wide.capture.start()
    try:
        source.read_bytes()
    finally:
        wide.capture.stop()
    assert wide.reads == []


def test_native_module_imported_during_capture_is_patched_at_once(root: pathlib.Path) -> None:
    import subprocess

    # A fresh interpreter: here pandas is already imported. In a notebook this is
    # `import pandas as pd; df.to_parquet(...)` in the cell right after capture started.
    script = f"""
import os
from tracker.capture import FileCapture
writes = []
capture = FileCapture(on_read=print, on_write=lambda path, via: writes.append((path, via)),
                      include=[{str(root)!r} + "/**"])
capture.start()
import pandas as pd
pd.DataFrame({{"x": [1]}}).to_parquet({str(root / "late.parquet")!r})
print(writes)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == repr([(str(root / "late.parquet"), "pandas")])


def test_the_audit_hook_ignores_events_once_interpreter_exit_cleared_its_module(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # An audit hook cannot be removed: at exit, after module globals are set to None, a
    # process still running (a Popen's finalizer, a watcher started at shutdown) raises audit
    # events that used to fail the hook with "argument of type 'NoneType' is not iterable".
    import tracker.capture as capture

    monkeypatch.setattr(capture, "_SIDE_EVENTS", None)
    monkeypatch.setattr(capture, "reporting", None)
    capture._audit_hook("subprocess.Popen", ("sleep", ["sleep", "1"], None, None))
    capture._audit_hook("sqlite3.connect", ("x.db",))
