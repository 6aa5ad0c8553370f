"""``tracker reproduce``: run a recorded notebook run again and say whether it came out the same.

The stored notebook is re-executed in a scratch folder laid out like the original: the notebook
at its place relative to its inputs, each input copied there after its content is checked
against the recorded hash (a changed or missing input is replaced by its kept version when
there is one). Relative paths therefore read what the run read, and the user's own files are
never overwritten. The new run is recorded in the same catalog and tagged
``reproduces=<original id>``. Outputs are identical when their content hashes are equal;
metrics match within a tolerance (docs/design.md "Reproducing a run"). Outputs and metrics
that may differ by design (a log with times in it, a timing metric) are named by ``ignore``
patterns, the call's and the stored notebook's ``metadata.tracker.reproduce.ignore``: still
compared and shown, they do not decide the verdict.
"""

from __future__ import annotations

import fnmatch
import html
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tracker import arguments
from tracker.diffing import (
    EnvironmentDiff,
    FileDiff,
    MetricDiff,
    compare_hashes,
    environment_diff,
    file_key,
    metric_diffs,
)
from tracker.errors import ArgumentError, ArtifactNotFoundError

if TYPE_CHECKING:
    from tracker.catalog import Catalog
    from tracker.models import RunInfo

__all__ = ["InputCheck", "Reproduction", "placed", "reproduce"]

REPRODUCES = "reproduces"  # the tag that links a reproduction to the run it reproduces
METRIC_PREFIX = "metrics."  # an ignore pattern that starts so names metrics, others outputs
#: an output's comparison (tracker.diffing's statuses) as the report words it
_OUTPUT_STATUS = {"same": "identical", "changed": "CHANGED", "removed": "NOT WRITTEN",
                  "added": "NEW", "unknown": "NO HASH"}


@dataclass(frozen=True)
class InputCheck:
    """An input of the original run: ``same`` (copied), ``restored`` (changed or missing;
    its kept version copied instead), ``changed`` or ``missing`` (not kept: the reproduction
    reads what is there now, or nothing), ``unknown`` (recorded without a hash),
    ``unreadable``, ``not checked`` (a URI)."""

    path: str
    status: str
    detail: str = ""


@dataclass(frozen=True)
class Reproduction:
    """What ``tracker reproduce`` found; ``ok`` (exit status 0) when every output of the
    original is identical, no new one appeared, every metric is within ``tolerance`` and
    every cell ran; outputs and metrics that match an ``ignore`` pattern are left out of it."""

    original: str
    run: str | None
    workdir: str
    notebook: str
    tolerance: float
    parameters: dict[str, Any] = field(default_factory=dict)
    parameters_skipped: dict[str, str] = field(default_factory=dict)
    inputs: list[InputCheck] = field(default_factory=list)
    outputs: list[FileDiff] = field(default_factory=list)
    metrics: list[MetricDiff] = field(default_factory=list)
    environment: EnvironmentDiff = field(default_factory=EnvironmentDiff)
    seconds: float = 0.0
    error: str | None = None
    ignore: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """Every output identical, every metric within tolerance, no cell failed; what an
        ``ignore`` pattern names left out."""
        return self.error is None and self.run is not None and not self._differing()

    def ignored_output(self, path: str) -> bool:
        """Whether an output's path as the report shows it matches an ``ignore`` pattern
        (one not starting ``metrics.``: ``./metrics.json`` names a file). ``*`` matches across
        folders, as in ``keep.exclude``; a pattern without ``/`` also matches the file name,
        and ``logs/`` everything in that folder."""
        name = path.rpartition("/")[2]
        return any(fnmatch.fnmatchcase(path, pattern)
                   or ("/" not in pattern and fnmatch.fnmatchcase(name, pattern))
                   for pattern in map(_as_path, self.ignore) if pattern is not None)

    def ignored_metric(self, key: str) -> bool:
        """Whether ``metrics.KEY`` matches an ``ignore`` pattern starting ``metrics.``."""
        return any(fnmatch.fnmatchcase(f"{METRIC_PREFIX}{key}", pattern)
                   for pattern in self.ignore if pattern.startswith(METRIC_PREFIX))

    def _differing(self, *, ignored: bool = False) -> list[str]:
        """The outputs and ``metrics.KEY`` that differ: those that count, or with ``ignored``
        those that do not."""
        names = [f.path for f in self.outputs
                 if f.status != "same" and self.ignored_output(f.path) == ignored]
        return names + [f"{METRIC_PREFIX}{m.key}" for m in self.metrics
                        if not m.within(self.tolerance) and self.ignored_metric(m.key) == ignored]

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for ``--format json``); ``ignored`` says whether an output or metric
        matches an ``ignore`` pattern, whether or not it differs."""
        data = asdict(self)
        data["ok"] = self.ok
        data["ignore"] = list(self.ignore)
        data["outputs"] = [{**asdict(f), "ignored": self.ignored_output(f.path)}
                           for f in self.outputs]
        data["metrics"] = [{**asdict(m), "difference": m.difference,
                            "within_tolerance": m.within(self.tolerance),
                            "ignored": self.ignored_metric(m.key)} for m in self.metrics]
        data["environment"]["packages"] = {name: list(pair) for name, pair
                                           in self.environment.packages.items()}
        return data

    def rows(self) -> list[tuple[str, list[tuple[str, ...]]]]:
        """The report's sections as (title, rows of text): what text and HTML both show."""
        params: list[tuple[str, ...]] = [(k, repr(v)) for k, v in self.parameters.items()]
        params += [(k, f"not injected: {why}") for k, why in self.parameters_skipped.items()]
        inputs: list[tuple[str, ...]] = [(c.status, c.path, c.detail) for c in self.inputs]
        environment: list[tuple[str, ...]] = [(line,) for line in self.environment.lines()]
        outputs: list[tuple[str, ...]] = [
            (_word(_OUTPUT_STATUS.get(f.status, f.status),
                   f.status != "same" and self.ignored_output(f.path)), f.path)
            for f in self.outputs]
        metrics: list[tuple[str, ...]] = [
            (m.key, _number(m.a), _number(m.b), _number(m.difference),
             _word("ok", False) if m.within(self.tolerance) else
             _word("DIFFERS", self.ignored_metric(m.key))) for m in self.metrics]
        sections = [("parameters", params), ("inputs", inputs),
                    ("environment (original -> now)", environment), ("outputs", outputs),
                    (f"metrics (tolerance {self.tolerance:g})", metrics)]
        if self.ignore:
            sections.append(("may differ (ignore)", [(pattern,) for pattern in self.ignore]))
        return sections

    def verdict(self) -> str:
        """One line: reproduced, or what did not."""
        if self.error:
            return f"NOT REPRODUCED: {self.error}"
        if self.run is None:
            return "NOT REPRODUCED: the notebook recorded no run"
        bad = self._differing()
        if bad:
            return f"NOT REPRODUCED: {', '.join(bad)} differ"
        ignored = self._differing(ignored=True)
        return "reproduced: every output identical" if not ignored else \
            f"reproduced: every output identical but those ignored ({', '.join(ignored)})"

    def __str__(self) -> str:
        lines = [f"reproduction of {self.original}: run {self.run or '-'} "
                 f"({self.seconds:.1f} s) in {self.workdir}"]
        for title, rows in self.rows():
            lines.append(f"{title}:")
            lines += ["  " + "  ".join(row) for row in rows] or ["  none"]
        lines.append(self.verdict())
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        """The report as HTML for a notebook; every string escaped."""
        parts = [f"<div><b>{_esc(self.verdict())}</b></div>",
                 f"<div>run {_esc(self.run or '-')} in {_esc(self.workdir)}</div>"]
        for title, rows in self.rows():
            body = "".join("<tr>" + "".join(f"<td>{_esc(c)}</td>" for c in row) + "</tr>"
                           for row in rows) or "<tr><td>none</td></tr>"
            parts.append(f"<div><b>{_esc(title)}</b><table>{body}</table></div>")
        return '<div class="tracker-reproduction">' + "".join(parts) + "</div>"


def _word(word: str, ignored: bool) -> str:
    """A status word, lower case and marked when its difference is ignored."""
    return f"{word.lower()} (ignored)" if ignored else word


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def reproduce(catalog: Catalog, ref: str, *, tolerance: float = 0.0,
              workdir: str | os.PathLike[str] | None = None,
              timeout: float | None = None, ignore: Sequence[str] = ()) -> Reproduction:
    """See :func:`tracker.reproduce`."""
    import nbformat

    from tracker import reading, reexecution, retrieval

    tolerance = _non_negative(tolerance, "tolerance")
    timeout = None if timeout is None else _non_negative(timeout, "timeout")
    patterns = _patterns(ignore)
    original = catalog.get_run(ref)
    if not original.notebook:
        raise ArtifactNotFoundError(f"run {ref} did not run in a notebook: there is nothing to "
                                    "re-execute")
    with retrieval.run_notebook(catalog, original.id).open() as stream:
        try:
            notebook = nbformat.read(stream, as_version=4)
        except Exception as exc:  # nbformat raises JSON, validation and encoding errors alike
            raise ArtifactNotFoundError(f"the notebook stored with run {ref} cannot be read as "
                                        f"a notebook ({type(exc).__name__}): nothing to "
                                        "re-execute") from None
    scratch = _scratch(workdir, catalog.folder)
    root = _root(original)
    target = placed(scratch, root, original.notebook)
    if target is None:
        raise ArgumentError(f"run {ref}'s notebook path {original.notebook!r} cannot be laid "
                            "out in a scratch folder")
    target.parent.mkdir(parents=True, exist_ok=True)
    checks = [_checked_input(catalog, item, scratch, root)
              for item in _first_versions(original)]
    patterns += _notebook_ignores(notebook)
    values, skipped = reexecution.inject_parameters(notebook, original.params)
    ran = reexecution.execute(notebook, target, catalog=reading.setting(catalog),
                              timeout=timeout)
    new = _new_run(catalog, target)
    if new is not None:
        catalog.set_tag(REPRODUCES, original.id, run=new.id)
    return Reproduction(
        original.id, new.id if new else None, str(scratch), str(target), tolerance, values,
        skipped, checks, _compare_outputs(original, new, scratch, root),
        metric_diffs(original.metrics, new.metrics if new else {}),
        environment_diff(original.environment, new.environment if new else None),
        ran.seconds, ran.error, patterns)


def _patterns(ignore: Any) -> tuple[str, ...]:
    """The call's ``ignore``: a pattern, or a list of them, without blanks around them."""
    example = "['logs/*.log', 'metrics.*_seconds']"
    given = arguments.texts([ignore] if isinstance(ignore, str) else ignore, "ignore",
                            example) or []
    patterns = tuple(pattern.strip() for pattern in given)
    for pattern in patterns:
        if not _LEADING_DOTS.sub("", pattern):
            raise ArgumentError(f"an ignore pattern is empty; give patterns such as {example}")
        if not pattern.isprintable():
            raise ArgumentError(f"the ignore pattern {pattern!r:.60} holds a control "
                                f"character; give patterns such as {example}")
    return patterns


def _as_path(pattern: str) -> str | None:
    """An output pattern as the report shows paths (no leading ``./``; a folder ``logs/``
    standing for everything in it), or None for a metric's (``metrics.*``)."""
    if pattern.startswith(METRIC_PREFIX):
        return None
    pattern = _LEADING_DOTS.sub("", pattern)
    return f"{pattern}*" if pattern.endswith("/") else pattern


_LEADING_DOTS = re.compile(r"^(?:\./)+")


def _notebook_ignores(notebook: Any) -> tuple[str, ...]:
    """``metadata.tracker.reproduce.ignore`` of the stored notebook, as its author set it;
    what is unusable there is one warning, and no pattern."""
    from tracker import notices
    from tracker.settings import tracker_settings

    settings = tracker_settings(notebook.metadata.get("tracker"))
    for problem in settings.problems:
        if problem.startswith(("metadata.tracker.reproduce", "metadata.tracker must")):
            notices.warn(f"the stored notebook's {problem}")
    return settings.reproduce_ignore


def _non_negative(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ArgumentError(f"{name} must be a number >= 0, not {value!r}")
    return float(value)


def _scratch(workdir: str | os.PathLike[str] | None, catalog_folder: Path) -> Path:
    """An empty folder to run in: ``workdir`` (created; it must be empty) or a new temp one.
    Never inside the catalog's folder, where capture records nothing."""
    if workdir is None:
        return Path(tempfile.mkdtemp(prefix="tracker-reproduce-")).resolve()
    folder = Path(os.path.expanduser(arguments.path(workdir, "workdir"))).resolve()
    if folder.is_relative_to(catalog_folder.resolve()):
        raise ArgumentError(f"{folder} is inside the catalog's folder, where nothing is "
                            "recorded; choose a workdir elsewhere")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if any(folder.iterdir()):
            raise ArgumentError(f"{folder} is not empty; give an empty or new folder, or none "
                                "for a temporary one")
    except OSError as exc:
        raise ArgumentError(f"cannot use {folder} ({exc.strerror or exc}); choose another "
                            "workdir") from None
    return folder


def _local(uri: str) -> bool:
    return "://" not in uri and os.path.isabs(uri)


def _root(original: RunInfo) -> str:
    """The folder the scratch folder stands for: the deepest one holding the notebook and
    every local file the run read or wrote, so relative paths resolve alike in both."""
    assert original.notebook is not None
    paths = [os.path.dirname(original.notebook)]
    paths += [a["uri"] for a in original.artifacts
              if a["role"] in ("input", "output") and _local(a["uri"])]
    return os.path.commonpath([os.path.normpath(path) for path in paths])


def placed(scratch: Path, root: str, path: str) -> Path | None:
    """Where ``path`` (under ``root``) goes in the scratch folder; None for a path that would
    land outside it (a recorded path with ``..`` in it, from an edited import)."""
    inside = Path(os.path.normpath(scratch / os.path.relpath(os.path.normpath(path), root)))
    return inside if inside.is_relative_to(scratch) and inside != scratch else None


def _first_versions(original: RunInfo) -> list[dict[str, Any]]:
    """Each input once, at the first version the run read (what it started from)."""
    first: dict[str, dict[str, Any]] = {}
    for item in sorted(original.inputs, key=lambda a: a.get("version") or 0):
        first.setdefault(item["uri"], item)
    return list(first.values())


def _checked_input(catalog: Catalog, item: dict[str, Any], scratch: Path,
                   root: str) -> InputCheck:
    """:func:`_place_input`, with a file that cannot be read or copied reported, not raised."""
    try:
        return _place_input(catalog, item, scratch, root)
    except OSError as exc:
        return InputCheck(item["uri"], "unreadable", f"{exc.strerror or exc}: the reproduction "
                                                     "runs without it")


def _place_input(catalog: Catalog, item: dict[str, Any], scratch: Path, root: str) -> InputCheck:
    """Check one input against its recorded hash and put it (or its kept version) in place."""
    from tracker import hashing, retrieval

    uri = item["uri"]
    if not _local(uri):
        return InputCheck(uri, "not checked", "a URI: read where it is")
    dest = placed(scratch, root, uri)
    if dest is None:
        return InputCheck(uri, "not checked", "its path leads outside the scratch folder")
    dest.parent.mkdir(parents=True, exist_ok=True)
    now = hashing.file_facts(uri).hash if os.path.exists(uri) else None
    recorded = item.get("hash")
    if recorded and now == recorded:
        _copy(uri, dest)
        return InputCheck(uri, "same")
    try:
        retrieval.get_artifact(catalog, uri, version=item["version"]).restore(dest)
        why = "missing" if now is None else "changed since"
        return InputCheck(uri, "restored", f"{why}; its kept version {item['version']} is used")
    except ArtifactNotFoundError:
        pass
    if now is None:
        return InputCheck(uri, "missing", "not kept: the reproduction runs without it")
    _copy(uri, dest)
    if not recorded:
        return InputCheck(uri, "unknown", "recorded without a hash; the file as it is now")
    return InputCheck(uri, "changed", "changed since and not kept: the file as it is now")


def _copy(source: str, dest: Path) -> None:
    if os.path.isdir(source):
        shutil.copytree(source, dest, symlinks=True, dirs_exist_ok=True)
    else:
        shutil.copyfile(source, dest)


def _new_run(catalog: Catalog, notebook: Path) -> RunInfo | None:
    """The run the re-executed notebook recorded (the newest with its path), if any. Looked
    up directly, not with ``catalog.runs``: its DataFrame would cost the report a pandas import
    (1.7 s of a loaded `tracker reproduce`)."""
    from tracker.queries import records
    from tracker.reading import read_connection

    with read_connection(catalog) as (con, dialect):
        found = records(con, dialect.finish(
            "SELECT id FROM runs WHERE notebook = ? AND deleted_at IS NULL "
            "ORDER BY started_at DESC NULLS LAST, id DESC LIMIT 1"), [str(notebook)])
    return catalog.get_run(str(found[0]["id"])) if found else None


def _outputs(info: RunInfo) -> dict[str, str | None]:
    """``{uri: hash}``: each output's last version."""
    return {a["uri"]: a.get("hash") for a in sorted(info.outputs,
                                                    key=lambda a: a.get("version") or 0)}


def _compare_outputs(original: RunInfo, new: RunInfo | None, scratch: Path,
                     root: str) -> list[FileDiff]:
    """Each output of the original against the file at its place in the scratch folder, and
    any output only the reproduction wrote."""
    before = _outputs(original)
    after = _outputs(new) if new is not None else {}
    out: list[FileDiff] = []
    matched: set[str] = set()
    for uri, digest in before.items():
        there = str(placed(scratch, root, uri)) if _local(uri) else uri
        matched.add(there)
        out.append(FileDiff("output", file_key(uri, original.notebook),
                            compare_hashes(True, there in after, digest, after.get(there)),
                            digest, after.get(there)))
    extra: Sequence[str] = sorted(set(after) - matched)
    notebook = new.notebook if new is not None else None
    out += [FileDiff("output", file_key(uri, notebook), "added", None, after[uri])
            for uri in extra]
    return out
