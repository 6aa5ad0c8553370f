"""What differs between two recorded runs: params, the code executed, files, environment, metrics.

:func:`diff_runs` reads two :class:`~tracker.models.RunInfo` and returns a :class:`RunDiff`, a
plain value that prints as text, renders as escaped HTML in a notebook and converts to JSON.
The environment and metric comparisons are also what ``tracker reproduce`` reports
(:mod:`tracker.reproduction`), so both say "differs" the same way.
"""

from __future__ import annotations

import difflib
import html
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from tracker._ids import short_id

if TYPE_CHECKING:
    from tracker.catalog import Catalog
    from tracker.models import RunInfo

__all__ = ["EnvironmentDiff", "FileDiff", "MetricDiff", "RunDiff", "code_text", "diff_runs",
           "environment_diff", "file_key", "metric_diffs"]

ROLES = ("input", "output")


@dataclass(frozen=True)
class FileDiff:
    """One path either run read (``input``) or wrote (``output``), compared by content hash:
    ``same``, ``changed``, ``unknown`` (a hash is missing), ``added`` (only the second run) or
    ``removed`` (only the first)."""

    role: str
    path: str
    status: str
    hash_a: str | None = None
    hash_b: str | None = None


@dataclass(frozen=True)
class MetricDiff:
    """A metric's latest value in each run (None where a run has none) and ``b - a``."""

    key: str
    a: float | None
    b: float | None

    @property
    def difference(self) -> float | None:
        """``b - a``, or None when either is missing."""
        if self.a is None or self.b is None:
            return None
        return self.b - self.a

    def within(self, tolerance: float) -> bool:
        """Whether both runs have the metric and the values differ by at most ``tolerance``
        (NaN matches NaN: a run that reproduces a NaN reproduces)."""
        if self.a is None or self.b is None:
            return False
        if math.isnan(self.a) or math.isnan(self.b):
            return math.isnan(self.a) and math.isnan(self.b)
        return self.a == self.b or abs(self.b - self.a) <= tolerance


@dataclass(frozen=True)
class EnvironmentDiff:
    """Python, git commit and packages whose versions differ (None: not installed)."""

    python: tuple[str | None, str | None] | None = None
    git_commit: tuple[str | None, str | None] | None = None
    git_dirty: tuple[bool | None, bool | None] | None = None
    packages: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return any((self.python, self.git_commit, self.git_dirty, self.packages))

    def lines(self) -> list[str]:
        """One line per difference: ``numpy 1.26.4 -> 2.0.1``."""
        out = []
        for name, pair in (("python", self.python), ("git commit", self.git_commit),
                           ("git dirty", self.git_dirty)):
            if pair is not None:
                out.append(f"{name} {_text(pair[0])} -> {_text(pair[1])}")
        out += [f"{name} {_text(a)} -> {_text(b)}" for name, (a, b) in self.packages.items()]
        return out


@dataclass(frozen=True)
class RunDiff:
    """Two runs compared: ``a`` is the first (older, original), ``b`` the second."""

    a: str
    b: str
    a_label: str
    b_label: str
    params_added: dict[str, Any] = field(default_factory=dict)
    params_removed: dict[str, Any] = field(default_factory=dict)
    params_changed: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    code: str = ""
    files: list[FileDiff] = field(default_factory=list)
    environment: EnvironmentDiff = field(default_factory=EnvironmentDiff)
    metrics: list[MetricDiff] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for ``--format json``): every section, metric differences included."""
        data = asdict(self)
        data["environment"]["packages"] = {name: list(pair) for name, pair
                                           in self.environment.packages.items()}
        data["metrics"] = [{**asdict(m), "difference": m.difference} for m in self.metrics]
        return data

    def __str__(self) -> str:
        return "\n".join(_text_sections(self))

    def _repr_html_(self) -> str:
        """Every section as HTML for a notebook; each recorded string escaped."""
        parts = [f"<h4>{_esc(self.a_label)} &rarr; {_esc(self.b_label)}</h4>"]
        parts.append(_html_table("params", ("param", "first", "second"), _param_rows(self)))
        parts.append(_html_table("metrics (latest)", ("metric", "first", "second", "difference"),
                                 [(m.key, _text(m.a), _text(m.b), _text(m.difference))
                                  for m in self.metrics]))
        parts.append(_html_table("files", ("role", "path", "status"),
                                 [(f.role, f.path, f.status) for f in self.files]))
        parts.append(_html_table("environment", ("difference",),
                                 [(line,) for line in self.environment.lines()]))
        parts.append("<b>code</b>" + (f"<pre>{_esc(self.code)}</pre>" if self.code
                                      else "<div>the same cells ran</div>"))
        return '<div class="tracker-diff">' + "".join(parts) + "</div>"


def diff_runs(catalog: Catalog, a: str, b: str) -> RunDiff:
    """See :func:`tracker.diff`."""
    first, second = catalog.get_run(a), catalog.get_run(b)
    added, removed, changed = _param_changes(first.params, second.params)
    return RunDiff(
        first.id, second.id, _label(first), _label(second), added, removed, changed,
        code_diff(first, second), file_diffs(first, second),
        environment_diff(first.environment, second.environment),
        metric_diffs(first.metrics, second.metrics))


def _label(info: RunInfo) -> str:
    return f"{info.name} ({short_id(info.id)})"


def _param_changes(a: Mapping[str, Any], b: Mapping[str, Any]) -> tuple[
        dict[str, Any], dict[str, Any], dict[str, tuple[Any, Any]]]:
    added = {key: b[key] for key in sorted(b) if key not in a}
    removed = {key: a[key] for key in sorted(a) if key not in b}
    changed = {key: (a[key], b[key]) for key in sorted(a)
               if key in b and not _same_value(a[key], b[key])}
    return added, removed, changed


def _same_value(x: Any, y: Any) -> bool:
    # 1 == True and 1 == 1.0 in Python; a param that changed type did change
    return type(x) is type(y) and (x == y or (x != x and y != y))


def code_text(cells: Sequence[Mapping[str, Any]]) -> list[str]:
    """The executed cells in execution order as lines, each cell under a ``# In[n]`` marker."""
    lines: list[str] = []
    for cell in cells:
        lines.append(f"# In[{cell.get('execution_count') or ' '}]\n")
        source = str(cell.get("source") or "")
        lines += [line if line.endswith("\n") else line + "\n"
                  for line in source.splitlines(keepends=True)]
    return lines


def code_diff(a: RunInfo, b: RunInfo) -> str:
    """A unified diff of the two runs' executed cells ('' when the same code ran)."""
    return "".join(difflib.unified_diff(code_text(a.cells), code_text(b.cells),
                                        fromfile=_label(a), tofile=_label(b)))


def file_key(uri: str, notebook: str | None) -> str:
    """How a file is matched between runs: its path relative to the run's notebook folder
    when it lies under it (runs of one notebook copied elsewhere still match), else as
    recorded."""
    if notebook and "://" not in uri and os.path.isabs(uri):
        folder = os.path.dirname(notebook)
        if os.path.commonpath([folder, uri]) == folder:
            return os.path.relpath(uri, folder)
    return uri


def _files(info: RunInfo, role: str) -> dict[str, str | None]:
    """``{key: hash}`` of the run's files of ``role``, the last version seen of each."""
    return {file_key(a["uri"], info.notebook): a.get("hash")
            for a in sorted(info.artifacts, key=lambda a: a.get("version") or 0)
            if a["role"] == role}


def file_diffs(a: RunInfo, b: RunInfo) -> list[FileDiff]:
    """The two runs' inputs and outputs, matched by :func:`file_key`, compared by hash."""
    out = []
    for role in ROLES:
        first, second = _files(a, role), _files(b, role)
        for key in sorted(set(first) | set(second)):
            out.append(FileDiff(role, key, compare_hashes(key in first, key in second,
                                                          first.get(key), second.get(key)),
                                first.get(key), second.get(key)))
    return out


def compare_hashes(in_a: bool, in_b: bool, hash_a: str | None, hash_b: str | None) -> str:
    """``added``, ``removed``, ``unknown`` (a hash missing), ``same`` or ``changed``."""
    if not in_a:
        return "added"
    if not in_b:
        return "removed"
    if not hash_a or not hash_b:
        return "unknown"
    return "same" if hash_a == hash_b else "changed"


def environment_diff(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> EnvironmentDiff:
    """What differs between two recorded environments (``capture_environment``'s shape)."""
    a, b = a or {}, b or {}
    git_a, git_b = a.get("git") or {}, b.get("git") or {}
    packages_a, packages_b = a.get("packages") or {}, b.get("packages") or {}
    packages = {name: (packages_a.get(name), packages_b.get(name))
                for name in sorted(set(packages_a) | set(packages_b))
                if packages_a.get(name) != packages_b.get(name)}
    return EnvironmentDiff(_pair(a.get("python"), b.get("python")),
                           _pair(git_a.get("commit"), git_b.get("commit")),
                           _pair(git_a.get("dirty"), git_b.get("dirty")), packages)


def _pair(x: Any, y: Any) -> tuple[Any, Any] | None:
    return None if x == y else (x, y)


def metric_diffs(a: Mapping[str, float], b: Mapping[str, float]) -> list[MetricDiff]:
    """Every metric either run has, with both latest values."""
    return [MetricDiff(key, _number(a.get(key)), _number(b.get(key)))
            for key in sorted(set(a) | set(b))]


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _esc(value: Any) -> str:
    return html.escape(_text(value), quote=True)


def _param_rows(diff: RunDiff) -> list[tuple[str, str, str]]:
    return ([(key, "-", _text(value)) for key, value in diff.params_added.items()]
            + [(key, _text(value), "-") for key, value in diff.params_removed.items()]
            + [(key, _text(x), _text(y)) for key, (x, y) in diff.params_changed.items()])


def _html_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    if not rows:
        return f"<div><b>{_esc(title)}</b>: no differences</div>"
    head = "".join(f"<th>{_esc(name)}</th>" for name in headers)
    body = "".join("<tr>" + "".join(f"<td>{_esc(cell)}</td>" for cell in row) + "</tr>"
                   for row in rows)
    return (f"<div><b>{_esc(title)}</b><table><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table></div>")


def _text_sections(diff: RunDiff) -> list[str]:
    out = [f"--- {diff.a_label}", f"+++ {diff.b_label}", "", "params:"]
    out += [f"  {key}: {first} -> {second}" for key, first, second in _param_rows(diff)] \
        or ["  no differences"]
    out += ["metrics (latest):"]
    out += [f"  {m.key}: {_text(m.a)} -> {_text(m.b)}"
            + (f" ({m.difference:+.6g})" if m.difference else "") for m in diff.metrics] \
        or ["  none"]
    out += ["files:"]
    out += [f"  {f.role:<6} {f.status:<7} {f.path}" for f in diff.files] or ["  none"]
    out += ["environment:"]
    out += [f"  {line}" for line in diff.environment.lines()] or ["  no differences"]
    out += ["code:"]
    out += [f"  {line}" for line in diff.code.splitlines()] or ["  the same cells ran"]
    return out
