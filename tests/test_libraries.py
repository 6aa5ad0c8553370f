"""Tests for tracker.libraries: the files native libraries read and write, each with its role
and the library it was seen through; the last test runs them all in a real kernel."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import duckdb
import h5py
import netCDF4
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.fs as pa_fs
import pyarrow.parquet as pq
import pytest
import xarray as xr

import tracker
from tracker import libraries
from tracker.capture import FileCapture
from tracker.libraries import roles_for_mode, sql_literals


class Seen:
    """A started FileCapture over one folder: what it reported, as (role, name, via)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.records: list[tuple[str, str, str]] = []
        self.capture = FileCapture(
            on_read=lambda path, via: self._add("read", path, via),
            on_write=lambda path, via: self._add("write", path, via),
            include=[f"{root}/**"])

    def _add(self, role: str, path: str, via: str) -> None:
        self.records.append((role, os.path.relpath(path, self.root), via))

    def take(self) -> list[tuple[str, str, str]]:
        """What was reported since the last take; the next records start afresh."""
        self.capture.settle()
        taken, self.records = self.records, []
        self.capture.reset_seen()
        return taken


@pytest.fixture
def seen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Seen]:
    root = Path(os.path.realpath(tmp_path))
    monkeypatch.chdir(root)
    recorder = Seen(root)
    recorder.capture.start()
    yield recorder
    recorder.capture.stop()


def test_roles_follow_the_mode() -> None:
    assert roles_for_mode("r", existed=True) == ("read",)
    assert roles_for_mode("rb", existed=True) == ("read",)
    assert roles_for_mode("w", existed=True) == ("write",)
    assert roles_for_mode("w-", existed=False) == ("write",)
    assert roles_for_mode("x", existed=False) == ("write",)
    assert roles_for_mode("r+", existed=True) == ("read", "write")
    assert roles_for_mode("a", existed=True) == ("read", "write")
    assert roles_for_mode("a", existed=False) == ("write",)


def test_duckdb_tokenizer_finds_quoted_names() -> None:
    query = ("COPY (SELECT * FROM read_csv('in''s.csv') JOIN \"b.parquet\" USING (k) "
             "WHERE k <> 'x') TO 'out.csv' (HEADER)")
    assert sql_literals(query) == ["in's.csv", "b.parquet", "x", "out.csv"]
    assert sql_literals(b"SELECT 'a'") == []


def test_polars_reads_writes_and_sinks(seen: Seen) -> None:
    frame = pl.DataFrame({"k": [1, 2], "v": [0.5, 1.5]})
    frame.write_csv("a.csv")
    frame.write_parquet("part-1.parquet")
    frame.write_parquet(Path("part-2.parquet"))
    assert seen.take() == [("write", "a.csv", "polars"), ("write", "part-1.parquet", "polars"),
                           ("write", "part-2.parquet", "polars")]
    assert pl.read_csv("a.csv").height == 2
    lazy = pl.scan_parquet("part-*.parquet").filter(pl.col("k") > 1)
    assert seen.take() == [("read", "a.csv", "polars")]  # a scan reads nothing yet
    assert lazy.collect().height == 2
    assert seen.take() == [("read", "part-1.parquet", "polars"),
                           ("read", "part-2.parquet", "polars")]
    pl.scan_csv("a.csv").with_columns(w=pl.col("v") * 2).sink_parquet("b.parquet")
    assert sorted(seen.take()) == [("read", "a.csv", "polars"), ("write", "b.parquet", "polars")]


def test_pyarrow_csv_streams_writers_and_metadata(seen: Seen) -> None:
    table = pa.table({"k": [1, 2]})
    pa_csv.write_csv(table, "t.csv")
    with pq.ParquetWriter("t.parquet", table.schema) as writer:
        writer.write_table(table)
    with pa.output_stream("t.bin") as stream:
        stream.write(b"abc")
    assert seen.take() == [("write", "t.csv", "pyarrow"), ("write", "t.parquet", "pyarrow"),
                           ("write", "t.bin", "pyarrow")]
    assert pa_csv.read_csv("t.csv").num_rows == 2
    assert pq.read_metadata("t.parquet").num_rows == 2
    assert pq.read_schema("t.parquet").names == ["k"]
    with pa.input_stream("t.bin") as stream:
        assert stream.read() == b"abc"
    with pa.memory_map("t.bin") as mapped:
        assert mapped.read(1) == b"a"
    assert seen.take() == [("read", "t.csv", "pyarrow"), ("read", "t.parquet", "pyarrow"),
                           ("read", "t.bin", "pyarrow")]
    with pa.memory_map("t.bin", "r+") as mapped:
        mapped.write(b"z")
    assert seen.take() == [("read", "t.bin", "pyarrow"), ("write", "t.bin", "pyarrow")]


def test_pyarrow_files_and_local_filesystem(seen: Seen) -> None:
    local = pa_fs.LocalFileSystem()
    with local.open_output_stream(str(seen.root / "s.bin")) as stream:
        stream.write(b"abc")
    with pa.OSFile("o.bin", "wb") as handle:
        handle.write(b"xyz")
    assert seen.take() == [("write", "s.bin", "pyarrow"), ("write", "o.bin", "pyarrow")]
    assert local.open_input_file(str(seen.root / "s.bin")).read() == b"abc"
    assert pa.OSFile("o.bin").read() == b"xyz"
    assert seen.take() == [("read", "s.bin", "pyarrow"), ("read", "o.bin", "pyarrow")]
    # What pyarrow makes from the original classes still passes their isinstance checks.
    assert isinstance(pa_fs.FileSystem.from_uri("/")[0], pa_fs.LocalFileSystem)
    assert isinstance(pa.lib.OSFile("o.bin"), pa.OSFile)


def test_wrapped_functions_and_classes_still_pickle(seen: Seen) -> None:
    """Pool.map(pq.read_table, paths) pickles the function by its name: it must find it."""
    import pickle

    import pyarrow.parquet as pq

    for wrapped in (pq.read_table, pl.read_csv, pa.OSFile, pa_fs.LocalFileSystem):
        assert hasattr(wrapped, "__tracker_original__")
        assert pickle.loads(pickle.dumps(wrapped)) is wrapped


def test_a_user_s_subclass_of_a_replaced_class_checks_instances_as_usual(seen: Seen) -> None:
    class MyFile(pa.OSFile):  # type: ignore[misc, valid-type]
        pass

    (seen.root / "a.bin").write_bytes(b"a")
    assert not isinstance(pa.OSFile("a.bin"), MyFile)
    assert not issubclass(pa.lib.OSFile, MyFile)
    assert isinstance(MyFile("a.bin"), MyFile) and isinstance(MyFile("a.bin"), pa.OSFile)


def test_a_thread_started_on_a_wrapped_function_runs_it(
        seen: Seen, monkeypatch: pytest.MonkeyPatch) -> None:
    """With no Python frame above the call, the wrapper's check of its caller found none and
    raised instead of calling the library."""
    import _thread
    import sys
    import time

    errors: list[BaseException | None] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda raised: errors.append(raised.exc_value))
    database = seen.root / "started.duckdb"
    _thread.start_new_thread(duckdb.connect, (str(database),))
    deadline = time.monotonic() + 30
    while not database.exists() and not errors and time.monotonic() < deadline:
        time.sleep(0.01)
    assert errors == [] and database.exists()
    seen.take()


def test_unpatched_once_capture_stops(seen: Seen) -> None:
    assert hasattr(pl.read_csv, "__tracker_original__")
    assert hasattr(pa.OSFile, "__tracker_original__")
    seen.capture.stop()
    assert not hasattr(pl.read_csv, "__tracker_original__")
    assert pa.OSFile is pa.lib.OSFile
    assert not hasattr(duckdb.DuckDBPyConnection.execute, "__tracker_original__")


def test_a_function_missing_from_a_library_version_is_skipped_for_good(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(pl, "read_avro")  # as in a polars without it
    recorder = Seen(tmp_path)
    recorder.capture.start()
    try:
        assert hasattr(pl.read_csv, "__tracker_original__")
        assert not libraries.stale()  # not patched again at every cell
    finally:
        recorder.capture.stop()


def test_hdf5_and_netcdf_roles_come_from_the_mode(seen: Seen) -> None:
    with h5py.File("a.h5", "w") as f:
        f["x"] = np.arange(3)
    assert seen.take() == [("write", "a.h5", "h5py")]
    with h5py.File("a.h5") as f:
        assert list(f["x"][:]) == [0, 1, 2]
    assert seen.take() == [("read", "a.h5", "h5py")]
    with h5py.File("a.h5", "a") as f:
        f["y"] = np.arange(2)
    assert seen.take() == [("read", "a.h5", "h5py"), ("write", "a.h5", "h5py")]
    dataset = netCDF4.Dataset("a.nc", "w")
    dataset.createDimension("x", 2)
    dataset.close()
    assert seen.take() == [("write", "a.nc", "netCDF4")]
    netCDF4.Dataset("a.nc").close()
    assert seen.take() == [("read", "a.nc", "netCDF4")]


def test_xarray_goes_through_netcdf4_and_h5py(seen: Seen) -> None:
    data = xr.Dataset({"v": ("x", [1.0, 2.0])})
    data.to_netcdf("b.nc")
    data.to_netcdf("c.nc", engine="h5netcdf")
    assert seen.take() == [("write", "b.nc", "netCDF4"), ("write", "c.nc", "h5py")]
    seen.take()
    xr.open_dataset("b.nc", engine="netcdf4").load().close()
    xr.open_dataset("c.nc", engine="h5netcdf").load().close()
    assert {("read", "b.nc", "netCDF4"), ("read", "c.nc", "h5py")} <= set(seen.take())


def test_sqlite_database_is_an_input_if_it_existed_and_an_output_if_it_changed(
        seen: Seen) -> None:
    with sqlite3.connect("new.db") as con:
        con.execute("CREATE TABLE t (a)")
    con.close()
    assert seen.take() == [("write", "new.db", "sqlite3")]
    con = sqlite3.connect("new.db")
    assert con.execute("SELECT count(*) FROM t").fetchone() == (0,)
    assert seen.take() == [("read", "new.db", "sqlite3")]  # read, not changed
    with con:
        con.execute("INSERT INTO t VALUES (1)")
    con.close()
    assert seen.take() == [("write", "new.db", "sqlite3")]
    sqlite3.connect(":memory:").close()
    assert seen.take() == []


def test_duckdb_files_reads_writes_and_paths_in_sql(seen: Seen) -> None:
    Path("in.csv").write_text("k,v\n1,a\n2,b\n")
    Path("more.csv").write_text("k,v\n3,c\n")
    seen.take()
    assert len(duckdb.read_csv("in.csv").fetchall()) == 2
    con = duckdb.connect("work.duckdb")
    con.execute("CREATE TABLE t AS SELECT * FROM read_csv(?)", ["more.csv"])
    con.sql("SELECT * FROM 'in.csv' WHERE v <> 'in.csv'").write_parquet("rel.parquet")
    con.execute("COPY t TO 'out.parquet' (FORMAT parquet)")
    assert con.sql("SELECT count(*) FROM read_csv('*.csv')").fetchall() == [(3,)]
    con.close()
    assert seen.take() == [
        ("read", "in.csv", "duckdb"), ("read", "more.csv", "duckdb"),
        ("write", "rel.parquet", "duckdb"), ("write", "out.parquet", "duckdb"),
        ("write", "work.duckdb", "duckdb")]
    with duckdb.connect("work.duckdb", read_only=True) as again:
        assert again.execute("SELECT count(*) FROM t").fetchone() == (1,)
    assert seen.take() == [("read", "work.duckdb", "duckdb")]


def test_tracker_own_duckdb_calls_are_never_recorded(seen: Seen) -> None:
    Path("input").write_text("a file named like a word in tracker's own SQL ('input')")
    catalog = tracker.Catalog(seen.root / "mine" / "catalog.duckdb")
    for folder in (catalog.folder, Path(tracker.__file__).parent):  # as %load_ext does
        seen.capture.add_excluded_dir(str(folder))
    seen.take()
    with catalog.start_run("inner") as run:
        run.log_metric("m", 1.0)
    assert list(catalog.runs()["name"]) == ["inner"]
    assert catalog.lineage(run.id).empty
    assert seen.take() == []


def test_a_library_not_imported_is_not_imported_to_be_wrapped(tmp_path: Path) -> None:
    wrapped = ("polars", "h5py", "netCDF4", "xarray", "h5netcdf", "duckdb")
    code = ("import sys\nfrom IPython.core.interactiveshell import InteractiveShell\n"
            "InteractiveShell.instance().run_line_magic('load_ext', 'tracker')\n"
            f"print([m for m in {wrapped[:-1]!r} if m in sys.modules])")
    env = {**os.environ, "TRACKER_CATALOG": str(tmp_path / "catalog.duckdb")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, env=env, cwd=tmp_path)
    assert done.stdout.strip().splitlines()[-1] == "[]"


NOTEBOOK_CELLS = (
    "%load_ext tracker",
    "import polars as pl\n"
    "pl.read_csv('raw.csv').write_parquet('clean.parquet')\n"
    "pl.scan_csv('part-*.csv').collect().write_ipc('parts.arrow')",
    "import pyarrow.csv as pa_csv\n"
    "pa_csv.write_csv(pa_csv.read_csv('raw.csv'), 'copy.csv')",
    "import h5py, numpy as np\n"
    "with h5py.File('grid.h5', 'w') as f:\n    f['x'] = np.arange(4)\n"
    "with h5py.File('given.h5') as f:\n    total = int(f['y'][:].sum())",
    "import xarray as xr\n"
    "xr.Dataset({'v': ('x', [1.0, 2.0])}).to_netcdf('field.nc')",
    "import sqlite3\n"
    "with sqlite3.connect('store.db') as con:\n"
    "    con.execute('INSERT INTO t VALUES (2)')\n"
    "con.close()",
    "import duckdb\n"
    "duckdb.sql(\"COPY (SELECT * FROM read_csv('raw.csv')) TO 'summary.parquet'\")",
)


@pytest.mark.slow
def test_each_library_in_a_real_kernel_records_its_files_with_role_and_via(
        tmp_path: Path) -> None:
    import nbformat
    from nbclient import NotebookClient
    from nbformat.v4 import new_code_cell, new_notebook

    folder = Path(os.path.realpath(tmp_path))
    Path(folder / "raw.csv").write_text("k,v\n1,a\n2,b\n")
    for n in (1, 2):
        Path(folder / f"part-{n}.csv").write_text(f"k\n{n}\n")
    with h5py.File(folder / "given.h5", "w") as f:
        f["y"] = np.arange(3)
    with sqlite3.connect(folder / "store.db") as con:
        con.execute("CREATE TABLE t (a)")
    con.close()
    catalog_path = folder / "catalog" / "catalog.duckdb"
    notebook = new_notebook(cells=[new_code_cell(source) for source in NOTEBOOK_CELLS],
                            metadata={"kernelspec": {"name": "python3", "language": "python",
                                                     "display_name": "Python 3"}})
    nbformat.write(notebook, folder / "libraries.ipynb")
    env = {**os.environ, "TRACKER_CATALOG": str(catalog_path)}
    for name in ("TRACKER_NOTEBOOK", "PYTEST_CURRENT_TEST", "JPY_SESSION_NAME"):
        env.pop(name, None)
    NotebookClient(nbformat.read(folder / "libraries.ipynb", as_version=4), timeout=120,
                   kernel_name="python3", resources={"metadata": {"path": str(folder)}}
                   ).execute(env=env)

    catalog = tracker.Catalog(catalog_path)
    run = catalog.get_run(catalog.runs()["id"].iloc[0])
    recorded = sorted((a["role"], os.path.relpath(a["uri"], folder), a["via"])
                      for a in run.inputs + run.outputs)
    assert recorded == [
        ("input", "given.h5", "h5py"), ("input", "part-1.csv", "polars"),
        ("input", "part-2.csv", "polars"), ("input", "raw.csv", "polars"),
        ("input", "store.db", "sqlite3"),
        ("output", "clean.parquet", "polars"), ("output", "copy.csv", "pyarrow"),
        ("output", "field.nc", "netCDF4"), ("output", "grid.h5", "h5py"),
        ("output", "parts.arrow", "polars"), ("output", "store.db", "sqlite3"),
        ("output", "summary.parquet", "duckdb")]
