"""The IPython extension: ``%load_ext tracker`` makes the kernel session a recorded run.

Loading starts the session's run at once (named from the notebook), registers the ``%tracker``
magic (:mod:`tracker.magics`) and two hooks:
``pre_run_cell`` notes when a cell starts; ``post_run_cell`` records the cell (source, timing,
error), the values of the ``parameters`` / ``injected-parameters`` cells, the files the cell wrote,
and makes all of it durable in the spool before the next cell runs. Reads and writes are seen by
:mod:`tracker.capture`. Loading again keeps the same run: one kernel session is one run.

The run ends when the kernel receives its shutdown request (a shutdown or a restart), before
ipykernel stops the kernel's child processes: a client gives a kernel only a few seconds to exit
before it kills it, and then no exit hook runs. A process that exits without that request (an
IPython terminal, a script) ends the run at exit instead.

The notebook is looked for when the extension loads; in a kernel where that fails (an
auto-loaded kernel has run no cell yet, ``jupyter execute a.ipynb b.ipynb`` names two), the first
few cells' sources are tried too, and the no-notebook warning waits until they have been.

Nothing here may break the user's notebook: every hook body is guarded, and the first failure
becomes one :class:`~tracker.errors.TrackerWarning`.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tracker import api, cell_outputs, keeping, magics, models, notices, redaction, values
from tracker.catalog import Catalog
from tracker.errors import TrackerError
from tracker.recorder import Recorder
from tracker.run import Run
from tracker.settings import TrackerSettings
from tracker.storage import instances as _duckdb

if TYPE_CHECKING:
    from tracker.notebook import ExecutedCopy

_SESSION_ATTR = "_tracker_session"
_LOCATE_TRIES = 3  # cells whose source may still reveal the notebook after loading
_ENVIRONMENT_WAIT = 0.3  # seconds an ending run waits for its environment snapshot
# At a shutdown request: how long to let a running cell finish (the client interrupts it first),
# and to write the ended run to the catalog (it is in the spool already). jupyter_client sends
# SIGTERM 2.5 s after the request by default.
_SHUTDOWN_CELL_WAIT = 1.0
_SHUTDOWN_WRITE_WAIT = 1.0
_NAME_WAIT = 1.0  # seconds %tracker waits for the catalog to learn a run's number

class Session:
    """The extension's state in one kernel: the run, the notebook, the hooks and the capture."""

    def __init__(self, ip: Any) -> None:
        self.ip = ip
        self.run: Run | None = None
        self.catalog: Catalog | None = None
        self.recorder: Recorder | None = None  # the catalog's, which carries the run's events
        self.notebook: Any = None  # tracker.notebook.NotebookInfo
        self.located: Any = None
        self.capture: Any = None
        self.scan: Any = None  # tracker.scan.CellScan: files other processes wrote
        self.outputs: Any = None  # tracker.cell_outputs.OutputCapture, in an ipykernel kernel
        self.hooked = False
        self._cell_seq = 0
        self._cell_start: float | None = None
        self._cell_id: str | None = None
        self._idle = threading.Event()  # set while no cell runs (a shutdown waits for it)
        self._shutting_down = False  # the kernel was asked to shut down: no new run starts
        self._idle.set()
        self._written: list[tuple[str, str]] = []
        # Each output recorded in this run: how it was seen and its (mtime_ns, size) then.
        self._outputs: dict[str, tuple[str, tuple[int, int] | None]] = {}
        self._warned = notices.Once()  # topics: None (a failure), "notebook", "settings"
        self._locate_tries = 0
        self._named = False  # the run got its name from `%tracker new NAME`
        self._numbering: str | None = None  # the run whose number the catalog has yet to give
        self._environment: threading.Thread | None = None
        self._environment_of: str | None = None  # the run whose snapshot was recorded

    @property
    def cells_recorded(self) -> int:
        """How many cells of the current run have been recorded (``%tracker`` shows it)."""
        return self._cell_seq

    # -- guarded entry points -----------------------------------------------------------

    def guarded(self, what: str, action: Callable[[], Any]) -> Any:
        """Run ``action``; a failure is one warning per session, never an exception."""
        try:
            return action()
        except Exception as exc:
            self._warn_once(f"tracker: {what} failed ({type(exc).__name__}: {exc}); your code "
                            "is unaffected, but this run may be incomplete")
            return None

    def _warn_once(self, message: str) -> None:
        # Shared with the recorder's own single warning: its flusher thread often meets the
        # same trouble (an unusable catalog folder) first.
        if not self._warned.first():
            return
        if self.recorder is None:
            _warn(message)
            return
        with contextlib.suppress(Exception):  # under `-W error` the warning itself raises
            self.recorder.warn(message)

    # -- starting --------------------------------------------------------------------------

    def start(self, name: str | None = None) -> Run:
        """Find the notebook, choose the catalog and start the session's run."""
        from tracker import capture

        self._shutting_down = False  # a session started again (a test's shell lives on)
        first_cell = _current_cell(self.ip)
        if self.notebook is None:
            self._locate(first_cell=first_cell)
        settings = self._settings()
        self.catalog = _choose_catalog(settings.catalog, self.notebook)
        api.use_catalog(self.catalog)
        recorder = self.recorder = self.catalog.recorder_for_write()
        recorder.redactor = redaction.for_catalog(self.catalog, settings.redact)
        recorder.autostart = self._autostart
        self._named = bool(name)
        self._cell_seq = 0
        attrs = self._notebook_attrs(recorder.redactor)
        if not name:
            attrs.update(self._numbered())
        self.run = recorder.start_run(
            name or self._notebook_name() or "ipython-session", session=True,
            project=settings.project, labels=settings.labels, attrs=attrs)
        self._numbering = self.run.id if models.NUMBERED_NAME in attrs else None
        self.run.keeper = keeping.Keeper(keeping.policy_from(settings.keep))
        self._start_capture(settings, capture)
        if self.outputs is not None:  # the new run's outputs, from the cell starting it on
            self.outputs.reset()
            if first_cell is not None:
                self.outputs.executed(getattr(self.ip, "execution_count", None), None,
                                      first_cell)
        self._environment = threading.Thread(
            target=self._record_environment, args=(self.run,), name="tracker-environment",
            daemon=True)
        self._environment.start()
        if self.notebook is None:
            # A kernel may still reveal its notebook in the next cells; a terminal never will.
            self._locate_tries = _LOCATE_TRIES if _in_kernel(self.ip) else 0
            if not self._locate_tries:
                self._warn_no_notebook()
        return self.run

    def resume(self, by: str) -> Run:
        """Start this notebook's next run for ``by`` (a logging call after ``%tracker end``), as
        ``%tracker new`` would: cells are recorded again. One notice says so."""
        ended = self.run
        run = self.start()
        why = f" (run {ended.id} was ended)" if ended is not None else ""
        print(f"tracker: {by} started run {run.id} '{self.run_name()}', which records this "
              f"notebook's cells{why}; %tracker end ends it")
        return run

    def _autostart(self) -> Run | None:
        """The run a ``tracker.log_*`` call gets when none is open (see :meth:`resume`); at a
        shutdown, the run it ended (a cell still logging belongs there, not to a new run);
        None when the run could not start (then it is a script's run)."""
        if self._shutting_down or getattr(self.ip, "exit_now", False):
            return self.run
        return self.guarded("starting a new run", lambda: self.resume("a tracker.log_* call"))

    def _locate(self, *, first_cell: str | None) -> None:
        from tracker import capture, notebook

        with capture.suppressed():  # reading the .ipynb is not one of the run's inputs
            self.located = notebook.find_notebook(self.ip.user_ns, first_cell=first_cell)
            if self.located.path:
                self.notebook = notebook.read_notebook(self.located.path)
        if self.located.problem and self._warned.first("notebook"):
            _warn(f"tracker: {self.located.problem}")

    def _settings(self) -> TrackerSettings:
        """The notebook's ``metadata.tracker``; what is unusable in it is one warning per
        session, however many runs ``%tracker new`` starts."""
        settings = self.notebook.settings if self.notebook else TrackerSettings()
        if settings.problems and self._warned.first("settings"):
            _warn("tracker: this notebook's metadata is partly unusable: "
                  + "; ".join(settings.problems))
        return settings

    def _notebook_name(self) -> str | None:
        if self.notebook is None:
            return None
        return self.notebook.settings.name or self.notebook.name

    def _numbered(self) -> dict[str, bool]:
        """Ask the catalog to number a run named after its notebook's file ("train_cnn #12"),
        so the runs of one notebook tell apart; a name from metadata or %tracker is kept."""
        if self.notebook is None or self.notebook.settings.name:
            return {}
        return {models.NUMBERED_NAME: True}

    def run_name(self) -> str:
        """The session run's name as the catalog shows it. A number the catalog gives when it
        writes the run ("train_cnn #12") is read back, after writing the run now, and kept in
        ``run.name``; if the catalog is out of reach, the name says the number is to come."""
        run, catalog = self.run, self.catalog
        if run is None or catalog is None or self._numbering != run.id:
            return run.name if run is not None else ""
        with contextlib.suppress(TrackerError):
            catalog.flush(timeout=_NAME_WAIT)
            run.name = catalog.get_run(run.id).name
            self._numbering = None
            return run.name
        return f"{run.name} (its number is given when the catalog is written)"

    def _warn_no_notebook(self) -> None:
        if not self._warned.first("notebook"):
            return
        _warn("tracker: no notebook found for this kernel (a plain IPython session or a "
              "script?); recording the run without one. Set TRACKER_NOTEBOOK to name it.")

    def _notebook_attrs(self, redactor: redaction.Redactor) -> dict[str, Any]:
        from tracker import notebook

        info = self.notebook
        if info is None:
            return {}
        # Hashed as redacted: a hash of the clear code would let guesses of a secret be
        # checked against it by anyone who reads the stored (redacted) notebook.
        code_hash = notebook.code_hash(info.cells, redactor.source) if info.code_hash else None
        return {"notebook": info.path, "notebook_name": info.name,
                "notebook_title": info.title, "notebook_hash": code_hash}

    def _start_capture(self, settings: TrackerSettings, capture: Any) -> None:
        if not settings.capture_enabled or os.environ.get("TRACKER_CAPTURE") == "0":
            return
        if self.capture is None:
            from tracker import scan

            # The notebook's folder and the working folder are always in scope, even when they
            # sit under a temp dir (papermill and test runners put notebooks there).
            near = [os.getcwd()] + ([os.path.dirname(self.notebook.path)] if self.notebook else [])
            self.capture = capture.FileCapture(
                on_read=self._on_read, on_write=self._on_write,
                before_overwrite=self._before_overwrite,
                include=[*settings.capture_include, *(f"{d}/**" for d in near)],
                exclude=list(settings.capture_exclude), on_moved=self._written_moved,
                on_process=self._on_process)
            self.scan = scan.CellScan(self.capture, near)
            # tracker's own modules load lazily; their source is not the notebook's input.
            self.capture.add_excluded_dir(os.path.dirname(os.path.abspath(__file__)))
        assert self.catalog is not None
        self.capture.add_excluded_dir(str(self.catalog.folder))
        self.capture.reset_seen()
        self._outputs.clear()
        self.capture.start()

    def _written_moved(self, path: str) -> None:
        """A file this cell wrote was renamed: only its new name is an output."""
        self._written[:] = [(written, via) for written, via in self._written if written != path]

    def _on_process(self, event: str, args: tuple[Any, ...]) -> None:
        if self.scan is not None:
            self.scan.note_process(event, args)

    def _on_read(self, path: str, via: str) -> None:
        if self.run is not None and not self.run.ended:
            self.run.record_read(path, via=via)

    def _on_write(self, path: str, via: str) -> None:
        # Outputs are recorded when the cell ends, once the file is written.
        self._written.append((path, via))

    def _before_overwrite(self, path: str) -> None:
        if self.run is not None and not self.run.ended:
            self.run.before_overwrite(path)

    def _record_environment(self, run: Run, *, at_end: bool = False) -> None:
        from tracker import capture, environment

        folder = os.path.dirname(self.notebook.path) if self.notebook else os.getcwd()
        with capture.suppressed():  # package metadata files are not the notebook's inputs
            data = environment.capture_environment(notebook_dir=folder)
        # A kernel asked to shut down kills its child processes, git calls of a snapshot taken
        # meanwhile included: end() takes it again once that is over.
        if getattr(self.ip, "exit_now", False) and not at_end:
            return
        self._environment_of = run.id
        run.record("env", environment.environment_id(data), data)

    # -- the hooks -------------------------------------------------------------------------

    def pre_run_cell(self, info: Any) -> None:
        """Note the start of a cell; refresh native capture patches."""
        self._idle.clear()
        self._cell_start = time.time()
        self._cell_id = getattr(info, "cell_id", None)
        if self.capture is not None:
            self.capture.refresh()
            self.scan.begin(own_children=self._environment_running())
        if self.notebook is None and self._locate_tries > 0:
            self._locate_tries -= 1
            self._late_locate(getattr(info, "raw_cell", None))

    def _late_locate(self, source: str | None) -> None:
        """Try again with this cell's source; the run takes the notebook's name if found."""
        self._locate(first_cell=source)
        run, recorder = self.run, self.recorder
        if self.notebook is None or run is None or run.ended or recorder is None:
            if not self._locate_tries:
                self._warn_no_notebook()
            return
        settings = self._settings()
        attrs = self._notebook_attrs(recorder.redactor)
        if not self._named:
            attrs["name"] = run.name = self._notebook_name() or run.name
            attrs.update(self._numbered())
            self._numbering = run.id if models.NUMBERED_NAME in attrs else None
        if settings.project:
            attrs["project"] = run.project = settings.project
        if settings.labels is not None:
            attrs["labels"] = list(settings.labels)
        run.record("set", attrs)

    def post_run_cell(self, result: Any) -> None:
        """Record the cell, its parameters and its outputs; make it durable."""
        try:
            self._record_cell(result)
        finally:
            self._idle.set()

    def _record_cell(self, result: Any) -> None:
        run, recorder = self.run, self.recorder
        if run is None or run.ended or recorder is None:
            return
        info = result.info
        source = getattr(info, "raw_cell", "") or ""
        error = result.error_in_exec or result.error_before_exec
        self._cell_seq += 1
        run.record("cell", _cell_record(self._cell_seq, result.execution_count,
                                        self._cell_id or getattr(info, "cell_id", None), source,
                                        self._cell_start, error, recorder.redactor))
        self._cell_start = None
        if self.outputs is not None:
            self.outputs.executed(result.execution_count,
                                  self._cell_id or getattr(info, "cell_id", None), source)
        if result.success:
            self._record_parameters(run, source)
        if self.capture is not None:
            self.capture.settle()  # databases written during the cell become outputs
        if self.capture is not None and self.capture.active:
            # Guarded apart: a failing scan must not keep the cell's other outputs back.
            self.guarded("looking for files this cell's processes wrote", lambda: self.scan.finish(
                source, own_children=self._environment_running()))
        from tracker.capture import stat_signature

        for path, via in self._written:
            run.log_output(path, via=via)  # hashed now, before the next cell can change it
            self._outputs[path] = (via, stat_signature(path))
        self._written.clear()
        if self.capture is not None:
            self.capture.new_cell()
        run.exit_status = models.COMPLETED if result.success else models.FAILED
        run.exit_error = None if error is None else _cell_error(result.execution_count, error)
        recorder.spool()
        if self._ends_nbval_session(source):
            self.end()

    def _environment_running(self) -> bool:
        """Whether the environment snapshot (which runs git) may be running now."""
        return self._environment is not None and self._environment.is_alive()

    def _record_parameters(self, run: Run, source: str) -> None:
        from tracker import notebook

        info = self.notebook
        tags = notebook.cell_tags(info, cell_id=self._cell_id, source=source) if info else ()
        injected = "injected-parameters" in tags or notebook.is_injected_parameters(source)
        if not ("parameters" in tags or injected or self._edited_parameters(source)):
            return
        names = notebook.assigned_names(source)  # parsed only here: it costs most cells' hook
        namespace = self.ip.user_ns
        for name in names:
            if name in namespace:
                run.log_param(name, namespace[name])

    def _edited_parameters(self, source: str) -> bool:
        """Without a cell id, the parameters cell edited and re-run before the notebook was
        saved matches no saved cell: it is that cell if it assigns the same names."""
        from tracker import notebook

        info = self.notebook
        if self._cell_id or info is None or info.parameters_source is None:
            return False
        if any(cell.source.split() == source.split() for cell in info.cells):
            return False  # a saved cell, and not the tagged one
        names = notebook.assigned_names(source)
        return bool(names) and set(names) == set(notebook.assigned_names(info.parameters_source))

    def _ends_nbval_session(self, source: str) -> bool:
        """nbval kills the kernel after the notebook's last cell, so atexit never runs: the
        run ends when that cell has run, rather than being found crashed later."""
        located, notebook = self.located, self.notebook
        if located is None or located.mode != "nbval" or notebook is None:
            return False
        last = next((cell.source for cell in reversed(notebook.cells) if cell.source.strip()),
                    None)
        return last is not None and last.split() == source.split()

    # -- ending ----------------------------------------------------------------------------

    def end(self, status: str | None = None, *, error: str | None = None) -> None:
        """End the session's run, storing the saved notebook with it, then the notebook with
        the cells' outputs where the runner writes none."""
        run = self.run
        if run is None or run.ended:
            return
        if self._environment is not None:  # a short run must not end without its snapshot
            self._environment.join(_ENVIRONMENT_WAIT)
        if self._environment_of != run.id:
            self._record_environment(run, at_end=True)
        self.guarded("recording outputs written after their cell",
                     lambda: self._outputs_at_end(run))
        executed = self._store_notebook(run)
        run.end(status or run.exit_status, error=error)
        # Once the end is in the spool: a client's kill during a slow build (seconds for many
        # MiB) loses only this notebook, not the run's end.
        if executed is not None:
            self.guarded("keeping the cells' outputs", lambda: self._store_outputs(run, executed))

    def _outputs_at_end(self, run: Run) -> None:
        """Outputs that changed since their cell (a log file its handler keeps writing) are
        recorded again, so the run's last version of each is what it left behind."""
        from tracker.capture import stat_signature

        for path, (via, signature) in self._outputs.items():
            now = stat_signature(path)
            if now is not None and now != signature:
                run.log_output(path, via=via)
        self._outputs.clear()

    def at_shutdown(self) -> None:
        """The kernel was asked to shut down or restart: end the run and write it to the
        catalog now, while the kernel is sure to live on (see the module's docstring).

        A cell still running past the wait (the client interrupts it first) fails the run.
        """
        self._shutting_down = True
        run, recorder = self.run, self.recorder
        if run is None or run.ended or recorder is None:
            return
        if self._idle.wait(_SHUTDOWN_CELL_WAIT):
            self.end()
        else:
            self.end(models.FAILED, error="the kernel was shut down while a cell was running")
        # Durable in the spool already: what cannot be written now (a locked catalog, a kill
        # mid-write) is written by the exit handler or by the next process to open the catalog.
        with contextlib.suppress(Exception):
            recorder.flush(timeout=_SHUTDOWN_WRITE_WAIT)
        catalog, info = self.catalog, self.notebook
        if catalog is not None and info is not None:
            from tracker import notebook_watch

            self.guarded("watching for the executed notebook",
                         lambda: notebook_watch.follow(catalog, run.id, info))

    def at_exit(self) -> None:
        """Process exit without a shutdown request (a terminal, a script): end the run now, so
        that its end is on disk before the slower exit work (the recorder's handler runs next)
        can be cut short by a SIGTERM or SIGKILL."""
        with contextlib.suppress(Exception):  # nobody is left to warn; the spool keeps the rest
            self.end()

    def _store_notebook(self, run: Run) -> str | None:
        """Keep the notebook with the run (copied when the event is written): the executed one,
        outputs included, where the runner writes it as it runs (papermill), else as last saved.
        The notebook to store with the cells' outputs when the runner writes none, if any."""
        if self.notebook is None or not os.path.exists(self.notebook.path):
            return None
        path = self.notebook.path
        copy = _executed_copy(path)
        run.record("stored", "notebook", copy.path if copy and not copy.after_exit else path,
                   time.time())
        return path if copy is None and self.outputs is not None else None

    def _store_outputs(self, run: Run, path: str) -> None:
        """Store the notebook at ``path`` with the outputs the kernel published
        (:mod:`tracker.cell_outputs`) as the ended run's newest notebook, durable on return."""
        from tracker import capture, delivery

        if self.outputs.failure is not None:
            raise self.outputs.failure
        with capture.suppressed():  # reading the .ipynb is not one of the run's inputs
            raw = Path(path).read_bytes()
        built = self.outputs.notebook(raw)
        if built is None or self.catalog is None or self.recorder is None:
            return
        now = time.time()
        run.record("artifact", "notebook", path, delivery.store_notebook(self.catalog, built, now),
                   now, "stored")
        self.recorder.spool()


def _executed_copy(path: str) -> ExecutedCopy | None:
    """The runner's executed copy of the notebook at ``path``, if it writes one."""
    from tracker import capture, notebook

    with capture.suppressed(), contextlib.suppress(OSError):
        return notebook.executed_notebook(path)
    return None


def _warn(message: str) -> None:
    notices.warn(message, stacklevel=3)


def _in_kernel(ip: Any) -> bool:
    """Whether the shell serves a Jupyter kernel (ipykernel's shell has a ``kernel``)."""
    return getattr(ip, "kernel", None) is not None


def _cell_record(seq: int, count: int | None, cell_id: str | None, source: str,
                 started: float | None, error: BaseException | None,
                 redactor: redaction.Redactor) -> dict[str, Any]:
    from tracker.hashing import hash_bytes

    now = time.time()
    # Secrets go before anything is hashed: a hash of the clear source could be checked
    # against guesses of the secret by anyone who reads the redacted source beside it.
    source = redactor.source(source)
    return {
        "seq": seq, "execution_count": count, "cell_id": cell_id,
        "source_hash": hash_bytes(source.encode()),
        "source": _kept_source(source), "started_at": started or now,
        "duration": (now - started) if started else None, "success": error is None,
        "error_type": type(error).__name__ if error is not None else None,
        "error_message": _error_message(error, redactor),
    }


def _kept_source(source: str) -> str:
    """A cell's source as recorded: whole up to the catalog's text limit (a run holding a longer
    text could not be exported), else its start and a line saying how much was left out."""
    if len(source) <= values.MAX_TEXT:
        return source
    kept = source[:values.MAX_TEXT - 200]
    return f"{kept}\n# [tracker: {len(source) - len(kept):,} more characters of this cell were " \
        f"not recorded: a recorded text holds at most {values.MAX_TEXT:,}]"


def _cell_error(execution_count: int | None, error: BaseException) -> str:
    """A failed run's ``error``: the failing cell as ``tracker show`` lists it,
    ``[4] ZeroDivisionError: division by zero`` (the first line of the message, cut)."""
    first = (str(error).strip().splitlines() or [""])[0][:500]
    text = f"{type(error).__name__}: {first}" if first else type(error).__name__
    return f"[{execution_count}] {text}" if execution_count is not None else text


def _error_message(error: BaseException | None, redactor: redaction.Redactor) -> str | None:
    if error is None:
        return None
    # Scrubbed a little beyond the cut, so that a credential straddling it is still seen whole.
    return (redactor.text(str(error)[:12_000]) or "")[:10_000]


def _current_cell(ip: Any) -> str | None:
    """The source of the cell being executed (the one that ran ``%load_ext``), if any."""
    try:
        history = ip.history_manager.input_hist_raw
        return history[-1] if len(history) > 1 else None
    except Exception:
        return None


def _choose_catalog(configured: str | None, notebook: Any) -> Catalog:
    """``$TRACKER_CATALOG`` > ``metadata.tracker.catalog`` (relative to the notebook) > default.

    A notebook may come from anyone: a catalog it names that cannot be used (not a catalog,
    someone else's) is one warning, and the run goes to the default catalog instead.
    """
    if os.environ.get("TRACKER_CATALOG") or not configured:
        return api.default_catalog()
    path = Path(configured).expanduser()
    if not path.is_absolute() and notebook is not None:
        path = Path(notebook.path).parent / path
    try:
        catalog = Catalog(path)
        catalog.vet()
    except TrackerError as exc:
        _warn(f"tracker: metadata.tracker.catalog cannot be used ({exc}); recording in the "
              "default catalog instead")
        return api.default_catalog()
    return catalog


# -- loading and unloading ------------------------------------------------------------------


def session_of(ip: Any) -> Session | None:
    """The extension's session in this shell, if loaded once."""
    return getattr(ip, _SESSION_ATTR, None)


def load(ip: Any) -> None:
    """Start (or resume) the session's run and install the hooks and the magic."""
    session = session_of(ip)
    if session is None:
        _duckdb.start_in_background()  # the run's first write needs it; the user does not wait
        session = Session(ip)
        setattr(ip, _SESSION_ATTR, session)
        atexit.register(session.at_exit)  # registered after tracker.recorder's, so it runs first
        if _in_kernel(ip):
            _end_on_shutdown_request(session, ip.kernel)
            session.outputs = session.guarded("capturing cell outputs",
                                              lambda: cell_outputs.install(ip.kernel))
    if session.run is None or session.run.ended:
        session.guarded("starting the run", session.start)
    elif session.capture is not None:
        session.guarded("resuming file capture", session.capture.start)
    if not session.hooked:
        ip.events.register("pre_run_cell", _hook(session, "pre_run_cell"))
        ip.events.register("post_run_cell", _hook(session, "post_run_cell"))
        ip.register_magic_function(magics.magic(session), "line", "tracker")
        session.hooked = True


def unload(ip: Any) -> None:
    """Remove the hooks and stop capturing files; the run stays open until the kernel exits,
    so ``%reload_ext tracker`` keeps the same run (``%tracker end`` ends it now)."""
    session = session_of(ip)
    if session is None or not session.hooked:
        return
    for event in ("pre_run_cell", "post_run_cell"):
        ip.events.unregister(event, session.__dict__.pop(f"_hook_{event}"))
    if session.capture is not None:
        session.capture.stop()
    session._idle.set()  # the cell unloading it ends without a post_run_cell hook
    session.hooked = False


def _end_on_shutdown_request(session: Session, kernel: Any) -> None:
    """Have the kernel's shutdown request (``restart`` or not) end the session's run first.

    ipykernel calls ``do_shutdown`` from its control thread on the request, before it stops the
    kernel's child processes, which can take longer than the client waits (joblib's workers).
    Once per kernel: the extension keeps its session across reloads.
    """
    handler = getattr(kernel, "do_shutdown", None)
    if handler is None:  # not ipykernel's: its process ends the run at exit
        return

    def do_shutdown(restart: bool) -> Any:
        session.guarded("ending the run at shutdown", session.at_shutdown)
        return handler(restart)

    kernel.do_shutdown = do_shutdown


def _hook(session: Session, name: str) -> Callable[[Any], None]:
    method = getattr(session, name)

    def hook(arg: Any) -> None:
        session.guarded(f"the {name} hook", lambda: method(arg))

    session.__dict__[f"_hook_{name}"] = hook
    return hook
