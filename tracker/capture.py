"""File I/O capture: which files a run read and wrote (their content hashes: tracker.hashing).

Two capture sources feed one :class:`FileCapture`:

- an audit hook (``sys.addaudithook``, installed once per process) sees every Python-level
  ``open`` event: ``builtins.open``, ``io.open``, ``os.open``, pathlib, and every library that
  opens files through them (pandas CSV/JSON, numpy, pickle, PIL...);
- wrappers around the native readers and writers that open files in C, C++ or Rust and never
  raise the event (pyarrow, polars, h5py, netCDF4, DuckDB: :mod:`tracker.libraries`), patched
  only while a capture is active; they report through :func:`seen` and :func:`watch`;
- the ``sqlite3.connect`` audit event: a database file is watched (:func:`watch`).

The same hook sees renames (``os.rename``, ``os.replace``, ``shutil.move``: the destination is
written with the source's content, a temp file this run wrote is reported under its final name
only) and process starts (:data:`PROCESS_EVENTS`, handed to ``on_process``: tracker.scan looks
for what those processes wrote).

Which paths are reported is decided, on the absolute path with symlinks resolved, in this order:

1. never: the tracker package itself and its own folders (``excluded_dirs``,
   :meth:`FileCapture.add_excluded_dir`),
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
import stat
import sys
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from tracker.errors import TrackerWarning

__all__ = ["CHANGE_EVENTS", "FileCapture", "reporting", "seen", "stat_signature", "suppressed",
           "watch", "watch_changes"]

_READ = "read"
_WRITE = "write"
_ACCESS = os.O_WRONLY | os.O_RDWR
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
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
# Audit events that start another process: its files are found by tracker.scan after the cell.
PROCESS_EVENTS = frozenset({
    "subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork",
    "os.forkpty",
})
_SIDE_EVENTS = PROCESS_EVENTS | {"os.rename"}  # os.replace and shutil.move raise "os.rename"

# One thread-local flag serves as the re-entrancy guard (callbacks that open files) and as the
# switch for tracker's own I/O (the hasher, spools): while it is set, this thread is not captured.
_guard = threading.local()
_active: tuple[FileCapture, ...] = ()
# os.getcwd() is a syscall costing more than the rest of a relative open's check; every chdir
# raises the "os.chdir" audit event, which drops this cached copy.
_cwd: str | None = None
_hook_installed = False
_install_lock = threading.Lock()
# Told of every event that may change a file, capture or not: see watch_changes().
_before_change: Callable[[str, tuple[Any, ...]], None] | None = None
CHANGE_EVENTS = frozenset({"open", "os.rename", "os.remove", "os.truncate"})


@contextlib.contextmanager
def suppressed() -> Iterator[None]:
    """Run a block whose file opens, in this thread, are never reported (tracker's own I/O)."""
    outer = getattr(_guard, "busy", False)
    _guard.busy = True
    try:
        yield
    finally:
        _guard.busy = outer


def reporting() -> bool:
    """Whether a file this thread touches now would be reported (a capture is active, and this
    is not tracker's own I/O): wrappers check it before doing any work."""
    return bool(_active) and not getattr(_guard, "busy", False)


def seen(path: str, role: str, *, via: str) -> None:
    """Report to every active capture a file seen by other means than ``open``."""
    with suppressed():
        for capture in _active:
            capture.report(path, role, via=via)


def before_write(path: str) -> None:
    """A native writer is about to write ``path``: like a write-open, a file the run read is
    announced first (``before_overwrite``), while it still holds what was read."""
    _announce_change("open", (path, "wb", 0))
    with suppressed():
        for capture in _active:
            capture._on_native_write(path)


def watch(path: str, *, via: str, existed: bool) -> None:
    """A database file opened natively: an input now if it ``existed``, an output at the end of
    any cell during which it (or its write-ahead log) changed (:meth:`FileCapture.settle`)."""
    with suppressed():
        for capture in _active:
            capture.watch(path, via=via, existed=existed)


def _audit_hook(event: str, args: tuple[Any, ...]) -> None:
    global _cwd
    # Called for every audit event in the process: the common case must cost three comparisons.
    if _before_change is not None and event in CHANGE_EVENTS:
        _announce_change(event, args)
    if event != "open":
        if _SIDE_EVENTS is None:
            return  # interpreter exit cleared this module's globals; the hook stays installed
        if event == "os.chdir":
            _cwd = None
        elif event == "sqlite3.connect" and reporting():
            _on_sqlite(args[0])
        elif event in _SIDE_EVENTS and _active:
            _on_side_event(event, args)
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


def _on_side_event(event: str, args: tuple[Any, ...]) -> None:
    """A rename or a process start, in a thread that is not tracker's own."""
    if getattr(_guard, "busy", False):
        return
    _guard.busy = True
    try:
        for capture in _active:
            if event == "os.rename":
                capture._on_rename(*args)
            else:
                capture._on_process(event, args)
    except Exception:  # raising here would fail the user's rename or process
        pass
    finally:
        _guard.busy = False


def watch_changes(callback: Callable[[str, tuple[Any, ...]], None] | None) -> None:
    """Have ``callback(event, args)`` called before each :data:`CHANGE_EVENTS` audit event of
    this process, in any thread but tracker's own, whether or not a capture is active (None:
    no more). :mod:`tracker.pending_keeps` saves a content waiting to be kept this way."""
    global _before_change
    _install_hook()
    _before_change = callback


def _announce_change(event: str, args: tuple[Any, ...]) -> None:
    callback = _before_change
    if callback is None or getattr(_guard, "busy", False):
        return
    _guard.busy = True
    try:
        callback(event, args)
    except Exception:  # raising here would fail the user's open, rename or removal
        pass
    finally:
        _guard.busy = False


def _on_sqlite(database: Any) -> None:
    with contextlib.suppress(Exception):  # raising here would fail the user's connect()
        path = os.fsdecode(os.fspath(database))
        if path.startswith("file:"):  # an SQLite URI: file:data.db?mode=ro
            path = path[len("file:"):].partition("?")[0]
        if path and path != ":memory:":
            watch(path, via="sqlite3", existed=os.path.exists(path))


def _install_hook() -> None:
    global _hook_installed
    with _install_lock:
        if not _hook_installed:
            sys.addaudithook(_audit_hook)
            _hook_installed = True


class FileCapture:
    """Sees the files a process opens and reports them, filtered, as reads and writes.

    Each absolute, symlink-resolved path is reported at most once per role until
    :meth:`reset_seen` (a write: until :meth:`new_cell`), to ``on_read(path, via)`` or
    ``on_write(path, via)`` where ``via`` says how it was seen (``tracker.models.VIAS``); a file
    the run wrote is not reported when it is read back. A write-open of a path reported as read
    calls ``before_overwrite`` first, while the file still holds the content that was read (the
    audit event comes before the open truncates it). Callbacks run
    in the thread that opened the file; one that raises stops the capture with a single
    :class:`~tracker.errors.TrackerWarning`. See the module docstring for the filter order.
    """

    def __init__(
        self,
        *,
        on_read: Callable[[str, str], None],
        on_write: Callable[[str, str], None],
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        excluded_dirs: Sequence[str] = (),
        on_moved: Callable[[str], None] | None = None,
        on_process: Callable[[str, tuple[Any, ...]], None] | None = None,
        before_overwrite: Callable[[str], None] | None = None,
    ) -> None:
        self._callbacks = {_READ: on_read, _WRITE: on_write}
        self._on_moved = on_moved
        self._on_process_start = on_process
        self._before_overwrite = before_overwrite
        self._filter = _PathFilter(include=include, exclude=exclude, excluded_dirs=excluded_dirs)
        self._seen: set[tuple[str, str]] = set()
        self._seen_writes: set[tuple[str, str]] = set()  # since new_cell()
        self._written: set[str] = set()
        self._watched: dict[str, tuple[str, Any]] = {}  # database -> (via, signature)
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
        self.refresh()  # wrappers kept by stop(keep_wrappers=True) are not made again

    def stop(self, *, keep_wrappers: bool = False) -> None:
        """Stop reporting; the native wrappers are removed once no capture is active, unless
        ``keep_wrappers`` (they pass calls straight through meanwhile): a script's next run
        then starts without wrapping every library again (~0.7 ms)."""
        global _active
        # Audit hooks cannot be removed: leaving `_active` empty makes the hook a no-op.
        with _install_lock:
            _active = tuple(capture for capture in _active if capture is not self)
            if not _active and not keep_wrappers:
                from tracker import libraries

                libraries.unpatch()

    def patch_native(self) -> None:
        """Wrap the native readers/writers of the modules imported so far (idempotent)."""
        if self in _active:
            from tracker import libraries  # its table of targets costs ~10 ms to import

            libraries.patch(_REPORTER)

    def refresh(self) -> None:
        """Patch native modules imported since the last call; O(1) when none was."""
        if self not in _active:
            return
        from tracker import libraries

        if libraries.stale():
            libraries.patch(_REPORTER)

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

    def watch(self, path: str, *, via: str, existed: bool) -> None:
        """See :func:`watch`."""
        try:
            real = self._filter.resolve(path)
            if real is None:
                return
            if existed:
                self._offer(real, _READ, os.path.isfile, via)
            with self._lock:
                if real not in self._watched:
                    self._watched[real] = (via, _database_signature(real) if existed else None)
        except Exception as exc:
            self._fail(exc)

    def settle(self) -> None:
        """At the end of a cell: report as outputs the watched databases that changed since
        they were opened or last settled (a stat or three each; nothing when none is)."""
        with self._lock:
            watched = list(self._watched.items())
        for real, (via, before) in watched:
            now = _database_signature(real)
            if now != before:
                with self._lock:
                    self._watched[real] = (via, now)
                with suppressed():
                    self.report(real, _WRITE, via=via)

    def report(self, path: str, role: str, *, via: str) -> None:
        """Report a file or folder seen by other means than ``open`` (a wrapped library, a
        rename, a scan): ``role`` is ``"read"`` or ``"write"``; the same filters apply."""
        try:
            real = self._filter.resolve(path)
            if real is not None:
                self._offer(real, role, _file_or_dir, via)
        except Exception as exc:
            self._fail(exc)

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
                self._offer(real, _READ, os.path.isfile, "open")
            if access:
                self._overwriting(real)
                self._offer(real, _WRITE, _writable_file, "open")
        except Exception as exc:
            self._fail(exc)

    def _on_rename(self, src: Any, dst: Any, src_dir_fd: int = -1, dst_dir_fd: int = -1) -> None:
        """Before ``os.rename``/``os.replace``: the destination is written with the source's
        content. A source this run wrote (a temp file renamed into place) is forgotten, so only
        the final name is reported; any other source is read (its content moves on)."""
        try:
            if src_dir_fd != -1 or dst_dir_fd != -1 or isinstance(src, int):
                return
            src_path, dst_path = os.fsdecode(os.fspath(src)), os.fsdecode(os.fspath(dst))
            if not _file_or_dir(src_path):
                return  # the rename is about to fail
            source, dest = self._filter.resolve(src_path), self._filter.resolve(dst_path)
            if dest is not None:
                self._overwriting(dest)  # an input about to be replaced keeps what was read
                self._offer(dest, _WRITE, lambda _: True, "rename")  # it may not exist yet
            if source is None:
                return
            if source not in self._written:
                self._offer(source, _READ, _file_or_dir, "rename")
                self._overwriting(source)  # its content leaves this name: hash it now
            elif dest is not None:
                self._forget_written(source)
        except Exception as exc:
            self._fail(exc)

    def _forget_written(self, real: str) -> None:
        with self._lock:
            self._written.discard(real)
            self._seen_writes.discard((real, _WRITE))
        if self._on_moved is not None:
            self._on_moved(real)

    def _on_process(self, event: str, args: tuple[Any, ...]) -> None:
        if self._on_process_start is None:
            return
        try:
            self._on_process_start(event, args)
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

    def _offer(self, real: str, role: str, eligible: Callable[[str], bool], via: str) -> None:
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
        self._callbacks[role](real, via)

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


def stat_signature(path: str) -> tuple[int, int] | None:
    """A file's (mtime_ns, size), which any write changes; None when it does not exist."""
    try:
        found = os.stat(path)
    except OSError:
        return None
    return found.st_mtime_ns, found.st_size


def _database_signature(real: str) -> tuple[tuple[int, int] | None, ...]:
    """What changes when a database is written: the file, or its write-ahead log (DuckDB's
    ``.wal``, SQLite's ``-wal``) while a connection stays open."""
    return tuple(stat_signature(path) for path in (real, real + ".wal", real + "-wal"))


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
        # tracker's own source: an editable install lives outside site-packages, and a
        # module imported lazily during a run would otherwise be reported as an input.
        self._never = _dir_prefixes([*excluded_dirs, _PACKAGE_DIR])
        self._include = _compile_globs(include)
        self._exclude = _compile_globs(exclude)
        self._system = _default_prefixes()
        # Decisions by path as opened. A path that passes no symlink (nor "..") keeps its
        # decision; one that does is checked at each use against the file it led to, since a
        # link may be pointed elsewhere at any time ("latest" -> a new version).
        self._cache: dict[str, str | None] = {}
        self._linked: dict[str, tuple[str | None, str, tuple[int, int, int]]] = {}

    def add_excluded_dir(self, path: str) -> None:
        self._never = self._never + _dir_prefixes([path])
        self._cache = {}
        self._linked = {}

    def resolve(self, path: str) -> str | None:
        key = path if os.path.isabs(path) else os.path.join(_current_dir(), path)
        try:
            return self._cache[key]
        except KeyError:
            pass
        linked = self._linked.get(key)
        if linked is not None and _identity(key) == linked[2] == _identity(linked[1]):
            return linked[0]  # two stats, not a realpath
        real = os.path.realpath(key)
        decision = real if self._allows(real) else None
        if len(self._cache) + len(self._linked) >= _DECISION_CACHE_LIMIT:
            self._cache, self._linked = {}, {}
        if real == os.path.normpath(key) and "/.." not in key:
            self._cache[key] = decision
        elif (identity := _identity(key)) is not None:  # not there yet: resolved again
            self._linked[key] = (decision, real, identity)
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


def _identity(path: str) -> tuple[int, int, int] | None:
    """The file ``path`` leads to now, as (device, inode, change time); None if there is none,
    or if it has other names (hard links: ``latest`` may now reach it by another one)."""
    try:
        found = os.stat(path)
    except (OSError, ValueError):
        return None
    if found.st_nlink > 1 and not stat.S_ISDIR(found.st_mode):
        return None
    return found.st_dev, found.st_ino, found.st_ctime_ns


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


class _Reporter:
    """This module's reporting functions, handed to the library wrappers
    (:class:`tracker.libraries.Reporter`)."""

    reporting = staticmethod(reporting)
    suppressed = staticmethod(suppressed)
    seen = staticmethod(seen)
    watch = staticmethod(watch)
    before_write = staticmethod(before_write)
    stat_signature = staticmethod(stat_signature)


_REPORTER = _Reporter()
