"""Wrappers of the libraries that open files natively (in C, C++ or Rust), which never raise
Python's ``open`` audit event: pyarrow, pandas' Parquet/Feather, polars, h5py, netCDF4 (xarray
and h5netcdf go through them) and DuckDB. SQLite needs none: it raises ``sqlite3.connect``.

Each target in ``TARGETS`` names a function or ``Class.method`` and how its call is read:

- ``read`` / ``write``: the path argument is an input / an output (globs of a read expanded to
  the files they match);
- ``mode``: the role comes from the mode argument (``"r"`` reads, ``"w"``/``"x"`` write,
  ``"a"``/``"r+"`` read an existing file and write it);
- ``database``: a database file, an input if it existed, an output if it changes during a cell
  (``tracker.capture.watch``);
- ``sql``: DuckDB SQL: its string literals and parameters that name files (found by DuckDB's own
  tokenizer, then stat), an output if the statement changed the file, else an input;
- ``plan`` / ``sink``: a polars LazyFrame collected (or sunk to a path, an output): the files
  its optimised plan scans, globs expanded, are inputs;
- ``arm``: polars ``scan_*``: nothing is read yet; plans are walked only after one.

A module is wrapped when the user imports it (a meta-path finder watches for it), never
imported to be wrapped; the wrappers are removed once no capture is active. Calls made from
tracker's own modules (its catalog is a DuckDB file) are never reported.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import os
import sys
import threading
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["TARGETS", "Reporter", "Target", "patch", "stale", "unpatch"]

READ, WRITE = "read", "write"
_GLOB_CHARS = ("*", "?", "[")
# A statement with more literals than this is data (a long INSERT), not a list of files.
_MAX_SQL_CANDIDATES = 64


class Reporter(Protocol):
    """Where the wrappers report what they see: :mod:`tracker.capture`, which patches them in
    (passed to :func:`patch` rather than imported, so capture alone depends on this module)."""

    def reporting(self) -> bool: ...
    def suppressed(self) -> AbstractContextManager[None]: ...
    def seen(self, path: str, role: str, *, via: str) -> None: ...
    def watch(self, path: str, *, via: str, existed: bool) -> None: ...
    def before_write(self, path: str) -> None: ...
    def stat_signature(self, path: str) -> tuple[int, int] | None: ...


@dataclass(frozen=True)
class Target:
    """A function (or ``Class.method``) that opens files natively, and how its call is read.

    ``position`` counts ``self`` (or ``cls``) for methods; ``option`` is a second argument's
    position, keyword and default: the mode for ``kind="mode"``, the parameters for
    ``kind="sql"``. A class defined in C that cannot be patched (``subclass=True``) is replaced
    in its module by a subclass carrying the wrapped methods, which passes every isinstance
    check the class does.
    """

    module: str
    attr: str
    kind: str
    position: int = 0
    keyword: str = ""
    option: tuple[int, str, str] = (-1, "", "")
    subclass: bool = False

    @property
    def via(self) -> str:
        """How a record made by this target was seen: the library's top-level name."""
        return self.module.partition(".")[0]


def _each(module: str, attrs: str, kind: str, position: int, keyword: str) -> tuple[Target, ...]:
    return tuple(Target(module, attr, kind, position, keyword) for attr in attrs.split())


_POLARS_READS = ("read_csv read_parquet read_ipc read_ipc_stream read_json read_ndjson read_avro "
                 "read_excel read_ods read_delta read_lines read_parquet_schema "
                 "read_parquet_metadata read_ipc_schema")
_POLARS_WRITES = ("DataFrame.write_csv DataFrame.write_parquet DataFrame.write_ipc "
                  "DataFrame.write_ipc_stream DataFrame.write_json DataFrame.write_ndjson "
                  "DataFrame.write_avro")
_POLARS_SCANS = "scan_csv scan_parquet scan_ipc scan_ndjson scan_delta scan_lines"
_POLARS_SINKS = "LazyFrame.sink_csv LazyFrame.sink_parquet LazyFrame.sink_ipc LazyFrame.sink_ndjson"
_DUCKDB_READS = "read_csv read_parquet read_json from_parquet from_csv_auto"
_DUCKDB_WRITES = ("DuckDBPyRelation.write_csv DuckDBPyRelation.to_csv "
                  "DuckDBPyRelation.write_parquet DuckDBPyRelation.to_parquet")

# pandas 3 hands local Parquet paths to pyarrow (or a native ``pa.OSFile`` on write), so its
# own functions are wrapped too; the capture's seen-set drops the duplicates when both layers
# report a path (likewise DuckDB's module functions and its connection methods).
TARGETS: tuple[Target, ...] = (
    Target("pyarrow.parquet", "read_table", READ, 0, "source"),
    *_each("pyarrow.parquet", "read_metadata read_schema", READ, 0, "where"),
    Target("pyarrow.parquet", "ParquetFile.__init__", READ, 1, "source"),
    Target("pyarrow.parquet", "ParquetDataset.__init__", READ, 1, "path_or_paths"),
    Target("pyarrow.parquet", "write_table", WRITE, 1, "where"),
    Target("pyarrow.parquet", "write_to_dataset", WRITE, 1, "root_path"),
    Target("pyarrow.parquet", "ParquetWriter.__init__", WRITE, 1, "where"),
    *_each("pyarrow.feather", "read_table read_feather", READ, 0, "source"),
    Target("pyarrow.feather", "write_feather", WRITE, 1, "dest"),
    Target("pyarrow.dataset", "dataset", READ, 0, "source"),
    Target("pyarrow.dataset", "write_dataset", WRITE, 1, "base_dir"),
    *_each("pyarrow.csv", "read_csv open_csv", READ, 0, "input_file"),
    Target("pyarrow.csv", "write_csv", WRITE, 1, "output_file"),
    Target("pyarrow.json", "read_json", READ, 0, "input_file"),
    Target("pyarrow", "input_stream", READ, 0, "source"),
    Target("pyarrow", "output_stream", WRITE, 0, "source"),
    Target("pyarrow", "create_memory_map", WRITE, 0, "path"),
    Target("pyarrow", "memory_map", "mode", 0, "path", option=(1, "mode", "r")),
    Target("pyarrow", "OSFile.__new__", "mode", 1, "path", option=(2, "mode", "r"),
           subclass=True),
    *(Target("pyarrow.fs", f"LocalFileSystem.{name}", kind, 1, "path", subclass=True)
      for name, kind in (("open_input_file", READ), ("open_input_stream", READ),
                         ("open_output_stream", WRITE), ("open_append_stream", WRITE))),
    *_each("pandas", "read_parquet read_feather", READ, 0, "path"),
    *_each("pandas", "DataFrame.to_parquet DataFrame.to_feather", WRITE, 1, "path"),
    *_each("polars", _POLARS_READS, READ, 0, "source"),
    *_each("polars", _POLARS_WRITES, WRITE, 1, "file"),
    Target("polars", "DataFrame.write_excel", WRITE, 1, "workbook"),
    Target("polars", "DataFrame.write_delta", WRITE, 1, "target"),
    *_each("polars", _POLARS_SCANS, "arm", 0, "source"),
    Target("polars", "LazyFrame.collect", "plan"),
    *_each("polars", _POLARS_SINKS, "sink", 1, "path"),
    Target("h5py", "File.__init__", "mode", 1, "name", option=(2, "mode", "r")),
    Target("netCDF4", "Dataset.__init__", "mode", 1, "filename", option=(2, "mode", "r")),
    Target("duckdb", "connect", "database", 0, "database"),
    *_each("duckdb", _DUCKDB_READS, READ, 0, "path_or_buffer"),
    *_each("duckdb", " ".join(f"DuckDBPyConnection.{name}" for name in _DUCKDB_READS.split()),
           READ, 1, "path_or_buffer"),
    *_each("duckdb", _DUCKDB_WRITES, WRITE, 1, "file_name"),
    *(Target("duckdb", name, "sql", 0, "query", option=(1, "parameters", "")) for name in
      ("execute", "executemany")),
    *(Target("duckdb", name, "sql", 0, "query", option=(-1, "params", "")) for name in
      ("sql", "query")),
    *(Target("duckdb", f"DuckDBPyConnection.{name}", "sql", 1, "query",
             option=(2, "parameters", "")) for name in ("execute", "executemany")),
    *(Target("duckdb", f"DuckDBPyConnection.{name}", "sql", 1, "query",
             option=(-1, "params", "")) for name in ("sql", "query")),
)
MODULES = tuple(dict.fromkeys(target.module for target in TARGETS))


# --- what a call names ------------------------------------------------------------------------


def _argument(args: tuple[Any, ...], kwargs: dict[str, Any], position: int, keyword: str) -> Any:
    if 0 <= position < len(args):
        return args[position]
    return kwargs.get(keyword) if keyword else None


def local_paths(value: Any) -> list[str]:
    """Local paths named by a native I/O argument: path-likes, named file objects, lists."""
    if isinstance(value, (list, tuple)):
        return [path for item in value for path in local_paths(item)]
    if isinstance(value, (str, bytes, os.PathLike)):
        path = os.fsdecode(os.fspath(value))
    else:
        # Open file objects carry their path in `.name`; buffers have none (or an int fd).
        named = getattr(value, "name", None)
        if not isinstance(named, str):
            return []
        path = named
    if path.startswith("file://"):
        path = path[len("file://"):]
    if "://" in path or not path:
        return []
    return [os.path.expanduser(path)]


def _expanded(paths: Iterable[str]) -> list[str]:
    """Each path, or the files a glob in it matches when no such path exists."""
    found: list[str] = []
    for path in paths:
        if any(char in path for char in _GLOB_CHARS) and not os.path.exists(path):
            found += sorted(glob.glob(path, recursive=True))
        else:
            found.append(path)
    return found


def roles_for_mode(mode: str, existed: bool) -> tuple[str, ...]:
    """The roles a file opened with ``mode`` plays: ``"r"`` reads, ``"w"``, ``"w-"``, ``"x"``
    write, ``"a"`` and ``"r+"`` read what existed and write."""
    reads = "r" in mode or ("a" in mode and existed)
    writes = any(char in mode for char in "wax+")
    return (READ,) * reads + (WRITE,) * writes


# --- per kind: what to note before the call, what to report after it ---------------------------


def _report(paths: Iterable[str], role: str, via: str) -> None:
    for path in paths:
        _state.reporter.seen(path, role, via=via)


def _before_mode(target: Target, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    paths = local_paths(_argument(args, kwargs, target.position, target.keyword))
    mode = _argument(args, kwargs, target.option[0], target.option[1]) or target.option[2]
    noted = [(path, roles_for_mode(str(mode).lower(), os.path.exists(path))) for path in paths]
    for path, roles in noted:
        if WRITE in roles:
            _state.reporter.before_write(path)
    return noted


def _after_mode(target: Target, before: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    for path, roles in before:
        for role in roles:
            _state.reporter.seen(path, role, via=target.via)


def _before_database(target: Target, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    value = _argument(args, kwargs, target.position, target.keyword)
    paths = [path for path in local_paths(value) if path != ":memory:"]
    return [(path, _state.reporter.stat_signature(path)) for path in paths]


def _after_database(target: Target, before: Any, args: tuple[Any, ...],
                    kwargs: dict[str, Any]) -> None:
    for path, signature in before:
        _state.reporter.watch(path, via=target.via, existed=signature is not None)


def _before_sql(target: Target, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    query = _argument(args, kwargs, target.position, target.keyword)
    parameters = _argument(args, kwargs, target.option[0], target.option[1])
    candidates = [*sql_literals(query), *_strings(parameters)][:_MAX_SQL_CANDIDATES + 1]
    if len(candidates) > _MAX_SQL_CANDIDATES:
        return []
    return [(path, _state.reporter.stat_signature(path)) for path in _expanded(
        path for text in candidates for path in local_paths(text))]


def _after_sql(target: Target, before: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    for path, signature in before:
        now = _state.reporter.stat_signature(path)
        if now is None:
            continue
        if now != signature:
            _state.reporter.seen(path, WRITE, via=target.via)
        elif os.path.isfile(path):
            _state.reporter.seen(path, READ, via=target.via)


def sql_literals(query: Any) -> list[str]:
    """The quoted strings and identifiers of a SQL text, as DuckDB's own tokenizer finds them:
    ``read_csv('a.csv')``, ``FROM 'b.parquet'``, ``COPY t TO 'c.csv'``, ``ATTACH 'd.db'``."""
    if not isinstance(query, str):
        return []
    import duckdb  # only ever called from a wrapper of duckdb: it is imported

    literals = []
    for start, _ in duckdb.tokenize(query):
        quote = query[start]
        if quote in "'\"":
            literals.append(_quoted(query, start, quote))
    return literals


def _quoted(text: str, start: int, quote: str) -> str:
    """The text of the quoted token at ``start``; a doubled quote stands for one."""
    parts: list[str] = []
    index = start + 1
    while True:
        end = text.find(quote, index)
        if end < 0:
            return "".join(parts) + text[index:]
        parts.append(text[index:end])
        if text.startswith(quote, end + 1):
            parts.append(quote)
            index = end + 2
        else:
            return "".join(parts)


def _strings(parameters: Any) -> list[str]:
    """The text values among a statement's parameters (a list, a tuple or a dict)."""
    if isinstance(parameters, dict):
        parameters = list(parameters.values())
    if not isinstance(parameters, (list, tuple)):
        return []
    return [value for value in parameters if isinstance(value, str)]


# polars: a plan is walked at collect() only once the user has created a scan (walking costs
# ~50 us, and every eager DataFrame operation collects a plan of its own).
_armed = threading.Event()


def _after_arm(target: Target, before: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    _armed.set()


def _after_plan(target: Target, before: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    if _armed.is_set():
        _report(plan_sources(args[0]), READ, target.via)


def _after_sink(target: Target, before: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    _after_plan(target, before, args, kwargs)
    _after_write(target, before, args, kwargs)


def plan_sources(lazy: Any) -> list[str]:
    """The files a polars LazyFrame's optimised plan scans, its globs expanded by polars."""
    traverser = lazy._ldf.visit()  # the plan walker polars offers GPU engines
    sources: list[str] = []
    pending = [traverser.get_node()]
    while pending:
        traverser.set_node(pending.pop())
        paths = getattr(traverser.view_current_node(), "paths", None)
        if paths:
            sources += [path for path in paths if isinstance(path, str)]
        pending += traverser.get_inputs()
    return local_paths(sources)


def _after_read(target: Target, before: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    value = _argument(args, kwargs, target.position, target.keyword)
    _report(_expanded(local_paths(value)), READ, target.via)


def _before_write(target: Target, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Announce a write before it happens: a file the run read is hashed while it still
    holds what was read."""
    for path in local_paths(_argument(args, kwargs, target.position, target.keyword)):
        _state.reporter.before_write(path)


def _after_write(target: Target, before: Any, args: tuple[Any, ...],
                 kwargs: dict[str, Any]) -> None:
    value = _argument(args, kwargs, target.position, target.keyword)
    _report(local_paths(value), WRITE, target.via)


Before = Callable[[Target, tuple[Any, ...], dict[str, Any]], Any]
After = Callable[[Target, Any, tuple[Any, ...], dict[str, Any]], None]
_HANDLERS: dict[str, tuple[Before | None, After]] = {
    READ: (None, _after_read),
    WRITE: (_before_write, _after_write),
    "mode": (_before_mode, _after_mode),
    "database": (_before_database, _after_database),
    "sql": (_before_sql, _after_sql),
    "arm": (None, _after_arm),
    "plan": (None, _after_plan),
    "sink": (_before_write, _after_sink),
}


def _from_tracker() -> bool:
    """Whether the wrapped call comes from tracker's own code (two frames up: the wrapper's
    caller), whose DuckDB calls on its catalog are not the notebook's."""
    try:
        name = sys._getframe(2).f_globals.get("__name__", "")
    except ValueError:  # no such caller: a thread started on the library function itself
        return False
    return name == "tracker" or name.startswith("tracker.")


# Set in a thread while a wrapped call runs: the library the user called reports its files, not
# the one it calls in turn (pandas.to_parquet is seen as pandas, not as the pyarrow under it).
_inside = threading.local()


def _wrap(original: Callable[..., Any], target: Target) -> Callable[..., Any]:
    before, after = _HANDLERS[target.kind]

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not _state.reporter.reporting() or getattr(_inside, "call", False) or _from_tracker():
            return original(*args, **kwargs)
        noted = None
        if before is not None:
            with contextlib.suppress(Exception):  # noting must never fail the user's call
                noted = before(target, args, kwargs)
        _inside.call = True
        try:
            result = original(*args, **kwargs)
        finally:
            _inside.call = False
        # Reported after the call succeeds: a failed read or write touched no file.
        with contextlib.suppress(Exception), _state.reporter.suppressed():
            after(target, noted, args, kwargs)
        return result

    wrapper.__tracker_original__ = original  # type: ignore[attr-defined]
    # Named for where it is installed, not where the original was defined: pickle finds a
    # function by its module and name and refuses one that is not what it finds there
    # (Pool.map(pq.read_table, ...)); the other process gets that name's function, whichever.
    wrapper.__module__ = target.module
    wrapper.__qualname__ = target.attr
    return wrapper


# --- patching -------------------------------------------------------------------------------


class _Unpatched:
    """The reporter before the first :func:`patch`: nothing is reported."""

    def reporting(self) -> bool:
        return False

    def suppressed(self) -> AbstractContextManager[None]:
        return contextlib.nullcontext()

    def seen(self, path: str, role: str, *, via: str) -> None:
        pass

    def watch(self, path: str, *, via: str, existed: bool) -> None:
        pass

    def before_write(self, path: str) -> None:
        pass

    def stat_signature(self, path: str) -> tuple[int, int] | None:
        return None


class _State:
    """What is patched now: (owner, name) -> original, the module ids it was computed for,
    and where wrapped calls report."""

    def __init__(self) -> None:
        self.originals: dict[tuple[Any, str], Any] = {}
        self.key: tuple[int, ...] | None = None
        self.reporter: Reporter = _Unpatched()
        self.lock = threading.RLock()  # a patch can import, and an import can patch


_state = _State()


def _modules_key() -> tuple[int, ...]:
    return tuple(map(id, map(sys.modules.get, MODULES)))


def stale() -> bool:
    """Whether a wrapped module was imported (or reloaded) since the last :func:`patch`."""
    return _state.key != _modules_key()


def patch(reporter: Reporter) -> None:
    """Wrap the targets of the modules imported so far, reporting to ``reporter``, and watch
    for later imports."""
    with _state.lock:
        _state.reporter = reporter
        if _import_watcher not in sys.meta_path:
            sys.meta_path.insert(0, _import_watcher)
        key = _modules_key()
        replaced: dict[tuple[str, str], list[Target]] = {}
        for target in TARGETS:
            module = sys.modules.get(target.module)
            if module is None:
                continue
            if target.subclass:
                replaced.setdefault((target.module, target.attr.partition(".")[0]), []).append(
                    target)
            else:
                _patch_target(module, target)
        for (name, owner), targets in replaced.items():
            _patch_by_subclass(sys.modules[name], owner, targets)
        # A module caught half-imported is retried on the next refresh; a function missing
        # from a whole module (another version of the library) is not.
        halfway = any(getattr(getattr(sys.modules.get(name), "__spec__", None), "_initializing",
                              False) for name in MODULES)
        _state.key = None if halfway else key


def _patch_target(module: Any, target: Target) -> None:
    *owner_path, name = target.attr.split(".")
    owner = module
    for part in owner_path:
        owner = getattr(owner, part, None)
    # Only attributes the owner defines itself: restoring must not plant one on a subclass.
    current = vars(owner).get(name) if owner is not None else None
    if current is not None and not hasattr(current, "__tracker_original__"):
        setattr(owner, name, _wrap(current, target))
        _state.originals[(owner, name)] = current


class _Transparent(type):
    """The metaclass of a replacing subclass: ``isinstance(x, pa.OSFile)`` stays true for
    objects the library makes itself from the original class."""

    def __instancecheck__(cls, instance: Any) -> bool:
        if "__tracker_original__" not in vars(cls):  # a user's subclass of it: as usual
            return type.__instancecheck__(cls, instance)
        return isinstance(instance, cls.__bases__[0])

    def __subclasscheck__(cls, subclass: type) -> bool:
        if "__tracker_original__" not in vars(cls):
            return type.__subclasscheck__(cls, subclass)
        return issubclass(subclass, cls.__bases__[0])


def _patch_by_subclass(module: Any, owner: str, targets: list[Target]) -> None:
    current = vars(module).get(owner)
    if not isinstance(current, type) or hasattr(current, "__tracker_original__"):
        return
    # Named for where it is installed, as a wrapped function is (see _wrap): pickle finds it.
    namespace: dict[str, Any] = {"__module__": module.__name__, "__doc__": current.__doc__,
                                 "__qualname__": owner,
                                 "__tracker_original__": current}
    for target in targets:
        name = target.attr.partition(".")[2]
        wrapped = _wrap(getattr(current, name), target)
        namespace[name] = staticmethod(wrapped) if name == "__new__" else wrapped
    setattr(module, owner, _Transparent(owner, (current,), namespace))
    _state.originals[(module, owner)] = current


def unpatch() -> None:
    """Restore every wrapped function and stop watching imports."""
    with _state.lock:
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(_import_watcher)
        for (owner, name), original in _state.originals.items():
            # Someone may have wrapped our wrapper since; then leave theirs (ours is inert).
            if getattr(vars(owner).get(name), "__tracker_original__", None) is original:
                setattr(owner, name, original)
        _state.originals.clear()
        _state.key = None


class _ImportWatcher:
    """A meta-path finder that patches a wrapped module the moment its import finishes.

    Without it, ``import polars as pl; pl.read_csv(...)`` in one cell would run unpatched
    until the next refresh. It finds nothing itself: it asks the other finders, then wraps the
    found loader's ``exec_module`` for that one import.
    """

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name not in MODULES:
            return None
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            if finder is self or find is None:
                continue
            try:
                spec = find(name, path, target)
            except Exception:  # the import system asks that finder again and reports it
                return None
            if spec is not None:
                _patch_after_exec(spec.loader)
                return spec
        return None


def _patch_after_exec(loader: Any) -> None:
    exec_module = getattr(loader, "exec_module", None)
    if exec_module is None:
        return

    def exec_then_patch(module: Any) -> None:
        # The loader is this module's own instance: drop the shim so it is left as found.
        with contextlib.suppress(AttributeError):
            del loader.exec_module
        exec_module(module)
        if _state.reporter.reporting():
            with contextlib.suppress(Exception):
                patch(_state.reporter)

    with contextlib.suppress(AttributeError, TypeError):
        loader.exec_module = exec_then_patch


_import_watcher = _ImportWatcher()
