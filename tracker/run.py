"""The active run: what a logging call does in the calling thread.

A logging call appends one tuple to an in-memory queue: microseconds, no I/O (except that
``log_input``/``log_output`` hash a file up to :data:`tracker.hashing.HASH_ON_LOG_MAX` first, so
the record is of the content as logged). The run's :class:`tracker.recorder.Recorder` carries the
queue to the spool and the catalog.
"""

from __future__ import annotations

import itertools
import math
import os
import time
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tracker import (
    _ids,
    arguments,
    events,
    keeping,
    models,
    notices,
    values,
)
from tracker import tags as tagging
from tracker.errors import ArgumentError, TrackerWarning

if TYPE_CHECKING:
    from tracker import hashing
    from tracker.catalog import Catalog
    from tracker.recorder import Recorder

MAX_PARAM_LEAVES = 100  # a nested dict param becomes at most this many dotted keys
_PLAIN_PARAM = {str: "str", int: "int", bool: "bool", type(None): "none"}
_INT64 = values.INT64


class Run:
    """A run being recorded by this process. Use it directly or as a context manager::

        with tracker.start_run(name="sweep-1", params={"lr": 0.1}) as run:
            run.log_metric("loss", 0.3, step=1)
    """

    def __init__(self, recorder: Recorder, run_id: str, name: str, project: str,
                 parent_id: str | None) -> None:
        self.id = run_id
        self.name = name
        self.project = project
        self.parent_id = parent_id
        self._recorder = recorder
        self._push = recorder.queue.append
        self._redact = recorder.redactor.param  # secrets become markers before they are queued
        self._params: dict[str, tuple[Any, str]] = {}  # key -> (value as stored, its kind)
        self._metrics: dict[str, float] = {}
        self.ended = False
        #: set by whoever owns the run's ending (the notebook extension) for the exit handler
        self.exit_status = models.COMPLETED
        #: the error that made exit_status failed (the failing cell), stored as the run's error
        self.exit_error: str | None = None
        self.session = False  # True for the run the notebook extension owns
        self._warned = notices.Once()  # the topics of the warnings given (one each)
        self._unhashed: dict[str, hashing.StatKey] = {}  # inputs whose hash was put off
        self._keeper: keeping.Keeper | None = None

    def __repr__(self) -> str:
        state = "ended" if self.ended else "running"
        return f"<Run {self.id} {self.name!r} {state}>"

    @property
    def key(self) -> str:
        """``tracker://<project>/runs/<id>``."""
        return _ids.run_key(self.project, self.id)

    @property
    def catalog(self) -> Catalog:
        """The catalog this run is recorded in."""
        return self._recorder.catalog

    @property
    def params(self) -> dict[str, Any]:
        """The run's params as logged so far (flat, dotted keys)."""
        return {k: values.decode(v, kind) for k, (v, kind) in self._params.items()}

    @property
    def metrics(self) -> dict[str, float]:
        """The latest value of each metric logged so far."""
        return dict(self._metrics)

    # -- logging (the hot path) ---------------------------------------------------------

    def log_param(self, key: str, value: Any) -> None:
        """Set a param; the same value again is a no-op, a new value is kept with history."""
        kind = _PLAIN_PARAM.get(type(value))
        if kind is None and type(value) is float and math.isfinite(value):
            kind = "float"
        # Keys that do not print, non-ASCII text and very large ints take the slow path.
        if kind is not None and type(key) is str and key.isascii() and key.isprintable() and key \
                and len(key) <= values.MAX_NAME and (
                kind != "str" or value.isascii() and len(value) <= values.MAX_TEXT) and (
                kind != "int" or -_INT64 <= value < _INT64):
            self._set_param(key, *self._redact(key, value, kind))
            return
        self._log_param_slow(key, value)

    def _set_param(self, key: str, value: Any, kind: str) -> None:
        logged = self._params.get(key)
        if logged is not None and logged[1] == kind and logged[0] == value:
            return
        self._params[key] = (value, kind)
        self._push(events.Param(self.id, key, value, kind, time.time()))

    def _log_param_slow(self, key: Any, value: Any) -> None:
        try:
            leaves = self._leaves(key, value)
            for flat_key, leaf in leaves:
                if self._too_long(flat_key, "param"):
                    continue
                stored, kind, note = values.normalize_param(leaf)
                if note:
                    self._warn_once(flat_key, f"param {flat_key!r} was not stored as is: {note}")
                self._set_param(flat_key, *self._redact(flat_key, stored, kind))
        except Exception as exc:  # never into user code
            name = values.key_text(key)
            self._warn_once(name, f"param {name!r} was not recorded: {exc!r}")

    def _leaves(self, key: Any, value: Any) -> list[tuple[str, Any]]:
        """The dotted keys a param becomes; a dict of more than ``MAX_PARAM_LEAVES`` leaves stays
        one param (each key is a column of the runs table: thousands would slow every read)."""
        if not isinstance(value, Mapping):
            return [(self._key(key, "param"), value)]
        leaves = list(itertools.islice(values.flatten_params({key: value}), MAX_PARAM_LEAVES + 1))
        if len(leaves) <= MAX_PARAM_LEAVES:
            return leaves
        name = self._key(key, "param")
        self._warn_once(name, f"param {name!r} has more than {MAX_PARAM_LEAVES} entries: stored "
                        "as one value, not one param per entry")
        return [(name, value)]

    def _key(self, key: Any, what: str) -> str:
        """A key as storable text, with one warning when it had to be escaped or described."""
        text = values.key_text(key)
        if not isinstance(key, str) and text.startswith("<unprintable "):
            self._warn_once(text, f"a {what} key's str() failed; recorded as {text!r}",
                            stacklevel=5)
        elif isinstance(key, str) and text != key and key:
            self._warn_once(text, f"{what} key {text!r}: {values.ESCAPED_NOTE}", stacklevel=5)
        return text

    def _too_long(self, key: str, what: str) -> bool:
        """Whether ``key`` is longer than a run records (one warning: not recorded)."""
        if len(key) <= values.MAX_NAME:
            return False
        self._warn_once(key, f"{what} {key[:60]!r}... was not recorded: its key is "
                        f"{len(key):,} characters long; the limit is {values.MAX_NAME:,}")
        return True

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Set several params; nested dicts become dotted keys."""
        for key, value in self._items("params", params):
            self.log_param(key, value)

    def _items(self, what: str, mapping: Mapping[str, Any]) -> list[tuple[Any, Any]]:
        """The pairs of a mapping the user passed; anything else is one warning and none."""
        try:
            return list(mapping.items())
        except Exception as exc:
            self._warn_once(what, f"{what} were not recorded: {exc!r}")
            return []

    def log_metric(self, key: str, value: float, step: int | None = None) -> None:
        """Record a metric value (at ``step``); the latest is what queries see."""
        if type(value) is not float or type(key) is not str or not key.isascii() or (
                not key or not key.isprintable() or len(key) > values.MAX_NAME) or (
                step is not None and (type(step) is not int or not -_INT64 <= step < _INT64)):
            self._log_metric_slow(key, value, step)
            return
        self._metrics[key] = value
        self._push(events.Metric(self.id, key, value, step, time.time()))

    def _log_metric_slow(self, key: Any, value: Any, step: Any) -> None:
        name = self._key(key, "metric")
        if self._too_long(name, "metric"):
            return
        try:
            number = values.normalize_metric(value)
        except Exception as exc:
            self._warn_once(f"metric:{name}", f"metric {name!r} was not recorded: {exc}")
            return
        if step is not None:
            try:
                step = int(step)
            except Exception:
                self._warn_once(f"step:{name}", f"metric {name!r}: step {step!r} is not an "
                                "integer; recorded without a step")
                step = None
        if step is not None and not -_INT64 <= step < _INT64:
            self._warn_once(f"step:{name}", f"metric {name!r}: step {step} is outside the "
                            "64-bit range steps are stored in; recorded without a step")
            step = None
        self._metrics[name] = number
        self._push(events.Metric(self.id, name, number, step, time.time()))

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Record several metrics at one step."""
        for key, value in self._items("metrics", metrics):
            self.log_metric(key, value, step)

    def set_tag(self, key: str, value: Any) -> None:
        """Set a tag (text; a number is stored as its text): a note about the run that setting
        again replaces, unlike a param (:mod:`tracker.tags`). Secrets are redacted as in params."""
        name, text = tagging.checked(key, value, self._recorder.redactor)
        self._push(events.Tag(self.id, name, text, time.time()))

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set several tags."""
        for key, value in tagging.pairs(tags):
            self.set_tag(key, value)

    def delete_tag(self, key: str) -> None:
        """Remove a tag (nothing happens if the run has none of that key)."""
        self._push(events.Tag(self.id, tagging.checked_key(key), None, time.time()))

    def log_input(self, path: str | os.PathLike[str], *, keep: bool | None = None,
                  via: str = "call") -> None:
        """Record a file (or URI) this run read, with its content as of this call. ``via``
        says how it was seen (:data:`tracker.models.VIAS`): automatic capture passes its own.
        ``keep=True`` keeps a copy of its content whatever the policy, ``False`` never
        (:mod:`tracker.keeping`; None: the policy decides)."""
        from tracker import hashing  # with capture, ~10 ms that `import tracker` need not pay

        self._log_artifact("input", path, via, hashing.HASH_ON_LOG_MAX, keep)

    def log_output(self, path: str | os.PathLike[str], *, keep: bool | None = None,
                   via: str = "call") -> None:
        """Record a file (or URI) this run wrote, with its content as of this call; ``keep``
        and ``via`` as for :meth:`log_input`."""
        from tracker import hashing

        self._log_artifact("output", path, via, hashing.HASH_ON_LOG_MAX, keep)

    @property
    def keeper(self) -> keeping.Keeper:
        """Which file contents this run keeps (the notebook extension sets the notebook's
        policy); ``$TRACKER_KEEP`` or the defaults until then."""
        if self._keeper is None:
            self._keeper = keeping.Keeper(keeping.global_policy())
        return self._keeper

    @keeper.setter
    def keeper(self, keeper: keeping.Keeper) -> None:
        self._keeper = keeper

    def record_read(self, path: str, *, via: str) -> None:
        """Record a file the extension saw opened for reading: hashed now only if small
        (:data:`tracker.hashing.HASH_ON_READ_MAX`), so that reading stays fast."""
        from tracker import hashing

        self._log_artifact("input", path, via, hashing.HASH_ON_READ_MAX)

    def before_overwrite(self, path: str) -> None:
        """A file this run read is about to be written: hash it now if that was put off, so
        the input keeps the content that was read."""
        seen = self._unhashed.pop(path, None)
        if seen is not None:
            from tracker import hashing

            hashing.pin_file(path, seen)

    def _log_artifact(self, role: str, path: str | os.PathLike[str], via: str,
                      hash_limit: int, keep: bool | None = None) -> None:
        arguments.choice(via, "via", models.VIAS)
        if keep is not None and not isinstance(keep, bool):
            raise ArgumentError(f"keep must be True, False or None, not {type(keep).__name__}")
        facts = None
        try:
            uri = os.fspath(path)
            if "://" not in uri:
                uri = os.path.realpath(uri)
                # Hashed now: the file may change before the events are written. A big file
                # (or a folder) gets its hash later, and none if it changed meanwhile.
                from tracker import hashing

                facts = hashing.file_facts_on_log(uri, hash_limit)
        except Exception as exc:
            self._warn_once(f"artifact:{path!r}", f"{role} {path!r} was not recorded: {exc!r}")
            return
        if facts is not None and facts.seen is not None and role == "input":
            self._unhashed[uri] = facts.seen
        # `https://user:password@...` and keys in a URI never reach the spool.
        uri = self._recorder.redactor.text(uri) or uri
        fields = None if facts is None else facts.fields()
        if fields is not None:  # a regular file: the policy decides on its content now
            fields["keep"] = self.keeper.decide(role, uri, facts.size if facts else None,
                                                keep) and self._stores_contents(asked=keep)
            if fields["keep"]:  # saved if it changes before the flusher copies it
                from tracker import pending_keeps

                pending_keeps.expect(uri, fields, self.catalog.blob_dir)
        self._push(events.Artifact(self.id, role, uri, fields, time.time(), via))

    def _stores_contents(self, *, asked: bool | None) -> bool:
        """Whether the catalog keeps contents. On one that cannot (a PostgreSQL catalog with no
        shared store) files are recorded ``not kept``, as its settings chose, and a content
        ``asked`` for (``keep=True``) is said not kept once per run."""
        if self.catalog.stores_contents:
            return True
        if asked:
            self._warn_once("keep:store", f"file contents are not kept in {self.catalog.path}: "
                            "set TRACKER_STORE to a folder every machine sees, or to "
                            "s3://bucket/prefix, to keep them (the files are still "
                            "recorded)", stacklevel=5)
        return False

    def record(self, kind: str, *payload: Any) -> None:
        """Queue an event of another kind (``cell``, ``env``, ``set``, ``stored``: the fields of
        its :mod:`tracker.events` shape after the run id): for the notebook extension."""
        if kind != "stored":  # a stored file's path must stay the path that opens it
            payload = tuple(values.cleaned(item) for item in payload)
        self._push(events.make(kind, self.id, *payload))

    def _warn_once(self, topic: str, message: str, *, stacklevel: int = 4) -> None:
        if self._warned.first(topic):
            warnings.warn(message, TrackerWarning, stacklevel=stacklevel)

    # -- ending --------------------------------------------------------------------------

    def end(self, status: str = models.COMPLETED, *, error: str | None = None) -> None:
        """End the run; it is on disk when this returns, in the catalog a moment later."""
        if status not in models.FINAL_STATUSES:
            raise ArgumentError(f"status must be one of {', '.join(models.FINAL_STATUSES)}, "
                                f"not {status!r:.60}")
        if self.ended:
            return
        self._recorder.ending(self)
        self.queue_end(status, error)
        self._recorder.finished(self)

    def queue_end(self, status: str, error: str | None = None) -> None:
        """Mark the run ended and queue its end event (the recorder's exit handler calls this
        rather than end(), which would wake the flusher again)."""
        if error is None and status == models.FAILED:
            error = self.exit_error
        self.ended = True
        self._push(events.End(self.id, status, time.time(), self._recorder.redactor.text(error)))

    def __enter__(self) -> Run:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: Any) -> None:
        if self.session:  # the notebook's run outlives any `with` block inside it
            return
        if exc is None:
            self.end(models.COMPLETED)
        else:
            self.end(models.FAILED, error=f"{type(exc).__name__}: {exc}")
