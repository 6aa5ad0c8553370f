"""File I/O capture: which files a run read and wrote (their content hashes: tracker.hashing).

Two capture sources feed one :class:`FileCapture`:

- an audit hook (``sys.addaudithook``, installed once per process) sees every Python-level
  ``open`` event: ``builtins.open``, ``io.open``, ``os.open``, pathlib, and every library that
  opens files through them (pandas CSV/JSON, numpy, pickle, PIL...);
- wrappers around the native readers and writers that open files in C++ and never raise the
  event (pyarrow Parquet/Feather/datasets and the pandas functions on top of them), listed in
  ``_NATIVE_TARGETS``, patched only while a capture is active.

Which paths are reported is decided, on the absolute path with symlinks resolved, in this order:

1. never: the tracker's own folders (``excluded_dirs``, :meth:`FileCapture.add_excluded_dir`),
   ``__pycache__`` folders, ``*.pyc`` files and ``.ipynb_checkpoints`` folders;
2. out: paths matching a user ``exclude`` glob;
3. in: paths matching a user ``include`` glob; this overrides step 4 only (it adds paths back,
   it does not restrict capture to them), so ``include=["/tmp/data/**"]`` captures files under
   the temp dir;
4. out: the default exclusions: the Python installation and every site-/dist-packages folder,
   system folders (/proc, /sys, /dev, /run, /etc, /usr/share, /usr/lib, /var/lib, /var/cache),
   temp dirs (``tempfile.gettempdir()``, /tmp, /var/tmp), Jupyter/IPython/matplotlib folders,
   caches and font caches;
5. in: everything else.

Globs use ``fnmatch`` on the absolute path (``*`` also matches ``/``, so ``**`` works as in
shells); a relative glob is anchored at the working directory when the capture is created.
"""

from __future__ import annotations

import contextlib
import fnmatch
import functools
import os
import re
import sys
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from tracker.errors import TrackerWarning

__all__ = ["FileCapture", "suppressed"]

_READ = "read"
_WRITE = "write"
_ACCESS = os.O_WRONLY | os.O_RDWR
_NOISE_PARTS = ("/__pycache__/", "/.ipynb_checkpoints/")
_NOISE_SUFFIXES = (".pyc", ".pyo")
_PACKAGE_PARTS = ("/site-packages/", "/dist-packages/")
_SYSTEM_DIRS = (
    "/proc", "/sys", "/dev", "/run", "/var/run", "/etc", "/usr/share", "/usr/lib", "/usr/lib64",
    "/usr/local/lib", "/usr/local/share", "/var/lib", "/var/cache", "/tmp", "/var/tmp",
)
_HOME_DIRS = (
    "~/.ipython", "~/.jupyter", "~/.local/share/jupyter", "~/.cache", "~/.config/matplotlib",
    "~/.matplotlib", "~/.fonts", "~/.local/share/fonts", "~/.fontconfig",
)
_DIR_ENV_VARS = (
    "IPYTHONDIR", "JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR",
    "MPLCONFIGDIR", "XDG_CACHE_HOME",
)
_DECISION_CACHE_LIMIT = 100_000

# One thread-local flag serves as the re-entrancy guard (callbacks that open files) and as the
# switch for tracker's own I/O (the hasher, spools): while it is set, this thread is not captured.
_guard = threading.local()
_active: tuple[FileCapture, ...] = ()
# os.getcwd() is a syscall costing more than the rest of a relative open's check; every chdir
# raises the "os.chdir" audit event, which drops this cached copy.
_cwd: str | None = None
_hook_installed = False
_install_lock = threading.Lock()


@contextlib.contextmanager
def suppressed() -> Iterator[None]:
    """Run a block whose file opens, in this thread, are never reported (tracker's own I/O)."""
    outer = getattr(_guard, "busy", False)
    _guard.busy = True
    try:
        yield
    finally:
        _guard.busy = outer


def _audit_hook(event: str, args: tuple[Any, ...]) -> None:
    global _cwd
    # Called for every audit event in the process: the common case must cost two comparisons.
    if event != "open":
        if event == "os.chdir":
            _cwd = None
        return
    if not _active:
        return
    if getattr(_guard, "busy", False):
        return
    _guard.busy = True
    try:
        path, mode, flags = args
        for capture in _active:
            capture._on_open(path, mode, flags)
    except Exception:  # raising here would fail the user's open()
        pass
    finally:
        _guard.busy = False


def _install_hook() -> None:
    global _hook_installed
    with _install_lock:
        if not _hook_installed:
            sys.addaudithook(_audit_hook)
            _hook_installed = True


class FileCapture:
    """Sees the files a process opens and reports them, filtered, as reads and writes.

    Each absolute, symlink-resolved path is reported at most once per role until
    :meth:`reset_seen` (a write: until :meth:`new_cell`); a file the run wrote is not reported
    when it is read back. A write-open of a path reported as read calls ``before_overwrite``
    first, while the file still holds the content that was read (the audit event comes before
    the open truncates it). Callbacks run
    in the thread that opened the file; one that raises stops the capture with a single
    :class:`~tracker.errors.TrackerWarning`. See the module docstring for the filter order.
    """

    def __init__(
        self,
        *,
        on_read: Callable[[str], None],
        on_write: Callable[[str], None],
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        excluded_dirs: Sequence[str] = (),
        before_overwrite: Callable[[str], None] | None = None,
    ) -> None:
        self._callbacks = {_READ: on_read, _WRITE: on_write}
        self._before_overwrite = before_overwrite
        self._filter = _PathFilter(include=include, exclude=exclude, excluded_dirs=excluded_dirs)
        self._seen: set[tuple[str, str]] = set()
        self._seen_writes: set[tuple[str, str]] = set()  # since new_cell()
        self._written: set[str] = set()
        self._lock = threading.Lock()
        self._failed = False

    @property
    def active(self) -> bool:
        """Whether the capture is currently reporting."""
        return self in _active

    def start(self) -> None:
        """Begin reporting; installs the process-wide audit hook on first use."""
        global _active
        _install_hook()
        self._failed = False
        with _install_lock:
            if self not in _active:
                _active = (*_active, self)
        self.patch_native()

    def stop(self) -> None:
        """Stop reporting; the native wrappers are removed once no capture is active."""
        global _active
        # Audit hooks cannot be removed: leaving `_active` empty makes the hook a no-op.
        with _install_lock:
            _active = tuple(capture for capture in _active if capture is not self)
        _unpatch_native()

    def patch_native(self) -> None:
        """Wrap the native readers/writers of the modules imported so far (idempotent)."""
        if self in _active:
            _patch_native()

    def refresh(self) -> None:
        """Patch native modules imported since the last call; O(1) when none was."""
        if self in _active and _native_state.key != _native_modules_key():
            _patch_native()

    def reset_seen(self) -> None:
        """Forget what was reported and written, e.g. when a new run begins."""
        with self._lock:
            self._seen.clear()
            self._seen_writes = set()
            self._written.clear()

    def new_cell(self) -> None:
        """Report a file written again from now on once more, so that each cell's outputs are
        recorded with the content that cell left (a model saved again later in the run)."""
        with self._lock:
            self._seen_writes = set()

    def add_excluded_dir(self, path: str) -> None:
        """Never report anything under ``path`` (e.g. the catalog's own folder)."""
        self._filter.add_excluded_dir(path)

    def _on_open(self, path: Any, mode: Any, flags: int) -> None:
        try:
            if isinstance(path, int):
                return
            path = os.fsdecode(os.fspath(path))
            if path.endswith(_NOISE_SUFFIXES):
                return
            real = self._filter.resolve(path)
            if real is None:
                return
            if not flags and isinstance(mode, str):
                flags = _flags_from_mode(mode)
            access = flags & _ACCESS
            # A read-write open reads old content only if it does not truncate first.
            if access != os.O_WRONLY and not (access and flags & os.O_TRUNC):
                self._offer(real, _READ, os.path.isfile)
            if access:
                self._overwriting(real)
                self._offer(real, _WRITE, _writable_file)
        except Exception as exc:
            self._fail(exc)

    def _on_native(self, path: str, role: str) -> None:
        try:
            real = self._filter.resolve(path)
            if real is not None:
                self._offer(real, role, _file_or_dir)
        except Exception as exc:
            self._fail(exc)

    def _on_native_write(self, path: str) -> None:
        """A native writer is about to write ``path``: the same warning as a write-open."""
        try:
            real = self._filter.resolve(path)
            if real is not None:
                self._overwriting(real)
        except Exception as exc:
            self._fail(exc)

    def _overwriting(self, real: str) -> None:
        if self._before_overwrite is not None and (real, _READ) in self._seen:
            self._before_overwrite(real)

    def _offer(self, real: str, role: str, eligible: Callable[[str], bool]) -> None:
        key = (real, role)
        seen = self._seen_writes if role == _WRITE else self._seen
        if key in seen or (role == _READ and real in self._written) or not eligible(real):
            return
        with self._lock:
            seen = self._seen_writes if role == _WRITE else self._seen
            if key in seen or (role == _READ and real in self._written):
                return
            seen.add(key)
            if role == _WRITE:
                self._written.add(real)
        self._callbacks[role](real)

    def _fail(self, exc: Exception) -> None:
        with self._lock:
            first, self._failed = not self._failed, True
        self.stop()
        if not first:
            return
        with contextlib.suppress(Exception):  # under `-W error` the warning itself raises
            warnings.warn(
                f"tracker stopped capturing files after an internal error: {exc!r}",
                TrackerWarning,
                stacklevel=_user_stacklevel(),
            )


def _flags_from_mode(mode: str) -> int:
    """os.open flags equivalent to a fopen-style mode (some C callers audit flags as 0)."""
    if "+" in mode:
        return os.O_RDWR | (os.O_TRUNC if "w" in mode else 0)
    if "w" in mode:
        return os.O_WRONLY | os.O_TRUNC
    return os.O_WRONLY if "a" in mode or "x" in mode else os.O_RDONLY


def _user_stacklevel() -> int:
    """The ``stacklevel`` that points a warning at the first frame outside this module."""
    level, frame = 1, sys._getframe(1)
    while frame is not None and frame.f_code.co_filename == __file__:
        level, frame = level + 1, frame.f_back  # type: ignore[assignment]
    return level


def _file_or_dir(real: str) -> bool:
    return os.path.isfile(real) or os.path.isdir(real)


def _writable_file(real: str) -> bool:
    """Whether a write open targets a regular file: an existing one, or a new one it can create.

    The audit event fires before the open, so a new file does not exist yet.
    """
    if os.path.exists(real):
        return os.path.isfile(real)
    return os.path.isdir(os.path.dirname(real))


class _PathFilter:
    """Maps a path as opened to its real absolute path, or None when it must not be reported."""

    def __init__(
        self, *, include: Sequence[str], exclude: Sequence[str], excluded_dirs: Sequence[str]
    ) -> None:
        self._never = _dir_prefixes(excluded_dirs)
        self._include = _compile_globs(include)
        self._exclude = _compile_globs(exclude)
        self._system = _default_prefixes()
        self._cache: dict[str, str | None] = {}

    def add_excluded_dir(self, path: str) -> None:
        self._never = self._never + _dir_prefixes([path])
        self._cache = {}

    def resolve(self, path: str) -> str | None:
        key = path if os.path.isabs(path) else os.path.join(_current_dir(), path)
        try:
            return self._cache[key]
        except KeyError:
            pass
        real = os.path.realpath(key)
        decision = real if self._allows(real) else None
        if len(self._cache) >= _DECISION_CACHE_LIMIT:
            self._cache = {}
        self._cache[key] = decision
        return decision

    def _allows(self, real: str) -> bool:
        slashed = real + "/"
        if slashed.startswith(self._never) or real.endswith(_NOISE_SUFFIXES):
            return False
        if any(part in slashed for part in _NOISE_PARTS):
            return False
        if self._exclude is not None and self._exclude.match(real):
            return False
        if self._include is not None and self._include.match(real):
            return True
        if slashed.startswith(self._system):
            return False
        return not any(part in slashed for part in _PACKAGE_PARTS)


def _current_dir() -> str:
    global _cwd
    if _cwd is None:
        _cwd = os.getcwd()
    return _cwd


def _dir_prefixes(paths: Sequence[str]) -> tuple[str, ...]:
    """Each folder as given and resolved, with a trailing slash, for ``str.startswith``."""
    prefixes: set[str] = set()
    for path in paths:
        absolute = os.path.abspath(os.path.expanduser(os.fspath(path)))
        for form in (absolute, os.path.realpath(absolute)):
            prefixes.add(form.rstrip("/") + "/")
    return tuple(sorted(prefixes))


@functools.cache
def _default_prefixes() -> tuple[str, ...]:
    import sysconfig
    import tempfile

    folders = [sys.prefix, sys.base_prefix, sys.exec_prefix, tempfile.gettempdir(), *_SYSTEM_DIRS]
    folders += [value for value in sysconfig.get_paths().values() if value]
    folders += [os.path.expanduser(folder) for folder in _HOME_DIRS]
    folders += [os.environ[name] for name in _DIR_ENV_VARS if os.environ.get(name)]
    # A prefix of "/" or the home folder would hide everything the user works on.
    unsafe = {"/", os.path.expanduser("~").rstrip("/") + "/"}
    return tuple(prefix for prefix in _dir_prefixes(folders) if prefix not in unsafe)


def _compile_globs(patterns: Sequence[str]) -> re.Pattern[str] | None:
    if not patterns:
        return None
    return re.compile("|".join(fnmatch.translate(_anchor_glob(p)) for p in patterns))


def _anchor_glob(pattern: str) -> str:
    """Make a glob absolute and resolve symlinks in its literal leading folder."""
    pattern = os.path.expanduser(os.fspath(pattern))
    if not pattern.startswith(("/", "*")):
        pattern = os.path.join(os.getcwd(), pattern)
    wild = min((i for i in map(pattern.find, "*?[") if i >= 0), default=len(pattern))
    head = pattern.rfind("/", 0, wild)
    if head <= 0:
        return pattern
    return os.path.realpath(pattern[:head]) + pattern[head:]


# --- native readers and writers ---------------------------------------------------------------


@dataclass(frozen=True)
class _NativeTarget:
    """A function (or ``Class.method``) that opens files natively, and where its path goes."""

    module: str
    attr: str
    role: str
    position: int
    keyword: str


# Methods count ``self`` in ``position``. pandas 3 hands local Parquet paths to pyarrow (or a
# native ``pa.OSFile`` on write), so its own functions are wrapped too; the seen-set drops the
# duplicates when both layers report a path.
_NATIVE_TARGETS = (
    _NativeTarget("pyarrow.parquet", "read_table", _READ, 0, "source"),
    _NativeTarget("pyarrow.parquet", "ParquetFile.__init__", _READ, 1, "source"),
    _NativeTarget("pyarrow.parquet", "ParquetDataset.__init__", _READ, 1, "path_or_paths"),
    _NativeTarget("pyarrow.parquet", "write_table", _WRITE, 1, "where"),
    _NativeTarget("pyarrow.parquet", "write_to_dataset", _WRITE, 1, "root_path"),
    _NativeTarget("pyarrow.feather", "read_table", _READ, 0, "source"),
    _NativeTarget("pyarrow.feather", "read_feather", _READ, 0, "source"),
    _NativeTarget("pyarrow.feather", "write_feather", _WRITE, 1, "dest"),
    _NativeTarget("pyarrow.dataset", "dataset", _READ, 0, "source"),
    _NativeTarget("pyarrow.dataset", "write_dataset", _WRITE, 1, "base_dir"),
    _NativeTarget("pandas", "read_parquet", _READ, 0, "path"),
    _NativeTarget("pandas", "read_feather", _READ, 0, "path"),
    _NativeTarget("pandas", "DataFrame.to_parquet", _WRITE, 1, "path"),
    _NativeTarget("pandas", "DataFrame.to_feather", _WRITE, 1, "path"),
)
_NATIVE_MODULES = tuple(dict.fromkeys(target.module for target in _NATIVE_TARGETS))


class _NativeState:
    """What is patched now: (owner, name) -> original, and the module ids it was computed for."""

    def __init__(self) -> None:
        self.originals: dict[tuple[Any, str], Any] = {}
        self.key: tuple[int, ...] | None = None
        self.lock = threading.RLock()  # a patch can import, and an import can patch


_native_state = _NativeState()


def _native_modules_key() -> tuple[int, ...]:
    return tuple(id(sys.modules.get(name)) for name in _NATIVE_MODULES)


def _patch_native() -> None:
    with _native_state.lock:
        if _import_watcher not in sys.meta_path:
            sys.meta_path.insert(0, _import_watcher)
        key = _native_modules_key()
        complete = True
        for target in _NATIVE_TARGETS:
            module = sys.modules.get(target.module)
            if module is not None:
                complete = _patch_target(module, target) and complete
        # A module caught half-imported is retried on the next refresh().
        _native_state.key = key if complete else None


def _patch_target(module: Any, target: _NativeTarget) -> bool:
    *owner_path, name = target.attr.split(".")
    owner = module
    for part in owner_path:
        owner = getattr(owner, part, None)
    # Only attributes the owner defines itself: restoring must not plant one on a subclass.
    current = vars(owner).get(name) if owner is not None else None
    if current is None:
        return False
    if not hasattr(current, "__tracker_original__"):
        setattr(owner, name, _wrap_native(current, target))
        _native_state.originals[(owner, name)] = current
    return True


def _unpatch_native() -> None:
    with _native_state.lock:
        if _active:
            return
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(_import_watcher)
        for (owner, name), original in _native_state.originals.items():
            # Someone may have wrapped our wrapper since; then leave theirs (ours is inert).
            if getattr(vars(owner).get(name), "__tracker_original__", None) is original:
                setattr(owner, name, original)
        _native_state.originals.clear()
        _native_state.key = None


class _ImportWatcher:
    """A meta-path finder that patches a native module the moment its import finishes.

    Without it, ``import pandas as pd; pd.read_parquet(...)`` in one cell would run unpatched
    until the next :meth:`FileCapture.refresh`. It finds nothing itself: it asks the other
    finders, then wraps the found loader's ``exec_module`` for that one import.
    """

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name not in _NATIVE_MODULES:
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
        if _active:
            with contextlib.suppress(Exception):
                _patch_native()

    with contextlib.suppress(AttributeError, TypeError):
        loader.exec_module = exec_then_patch


_import_watcher = _ImportWatcher()


def _wrap_native(original: Callable[..., Any], target: _NativeTarget) -> Callable[..., Any]:
    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if target.role == _WRITE and _active and not getattr(_guard, "busy", False):
            with contextlib.suppress(Exception):  # never in the way of the user's call
                _report_native(target, args, kwargs, before=True)
        result = original(*args, **kwargs)
        # Reported after the call succeeds: a failed read or write touched no file.
        if _active and not getattr(_guard, "busy", False):
            with contextlib.suppress(Exception):  # the user's call already succeeded
                _report_native(target, args, kwargs)
        return result

    wrapper.__tracker_original__ = original  # type: ignore[attr-defined]
    return wrapper


def _report_native(target: _NativeTarget, args: tuple[Any, ...], kwargs: dict[str, Any], *,
                   before: bool = False) -> None:
    """Report the paths a native call read or wrote; ``before`` a write, warn of it."""
    value = args[target.position] if len(args) > target.position else kwargs.get(target.keyword)
    with suppressed():
        for path in _native_paths(value):
            for capture in _active:
                if before:
                    capture._on_native_write(path)
                else:
                    capture._on_native(path, target.role)


def _native_paths(value: Any) -> list[str]:
    """Local paths named by a native I/O argument: path-likes, named file objects, lists."""
    if isinstance(value, (list, tuple)):
        return [path for item in value for path in _native_paths(item)]
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
