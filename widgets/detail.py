"""RunDetail: everything recorded about one run, on one screen.

Sections: the run's facts; params with the history of values that changed (papermill's injected
values are the starting value, not a change); metrics with a small plot per series; the files it
read and wrote (paths open in JupyterLab when under the server root, "produced by" opens that
run), with buttons to the runs that produced its inputs or read its outputs; its lineage picture
(runs and file versions around it, a run node opens that run); the environment; the executed
cells with their errors; a button that shows the ``tracker reproduce`` command, and one that writes
the notebook stored with the run (the executed one, outputs included, where the runner wrote
one) into the working folder. Four catalog
reads (``get_run``, ``metric_history``, ``lineage``, ``lineage_graph``: bounded, docs/design.md
§10), whatever the catalog's size.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import ipywidgets as w

from tracker._ids import short_id
from tracker.errors import TrackerError
from tracker.models import STATUSES, RunInfo

from . import _html as h
from ._catalog import CatalogLike, current_run_id, resolve_catalog
from ._feedback import close_tree, styled
from ._lab import lab_url, server_root
from ._plot import sparkline
from .lineage import LineagePicture

MAX_CELLS = 200  # the latest cells; a week-long session can execute thousands
MAX_LINKS = 24
MAX_FILES = 100  # rows of the files grid (a widget per cell); the rest are counted
HASH_HEX = 12  # hex digits of a content hash shown; the whole hash is the tooltip
_SOURCE_PREVIEW = 80
_FILE_HEADERS = ("role", "path", "version", "size", "hash", "produced by", "seen via")
# papermill puts the values it injects in a cell of their own, after the notebook's defaults.
_INJECTED_CELL = "# Parameters"


class RunDetail(w.VBox):
    """One run in full: facts, params (with history), metrics (with plots), files, environment,
    cells.

    ``on_open(run_id)`` is called when a related run's button is clicked; by default the detail
    shows that run instead.
    """

    def __init__(self, run_id: str, *, catalog: CatalogLike = None,
                 on_open: Callable[[str], None] | None = None) -> None:
        self.catalog = resolve_catalog(catalog)
        self.on_open = on_open or self.load
        self.info: RunInfo | None = None
        self.links: dict[str, w.Button] = {}
        self.header = w.HTML()
        self.status = _status_control(self)
        self.params = w.HTML()
        self.metrics = w.HTML()
        self.files = w.VBox()
        self.related = w.HBox(layout=w.Layout(flex_flow="row wrap"))
        self.picture = LineagePicture(on_open=lambda run_id: self.on_open(run_id))
        # Always in the tree, hidden when there is nothing to draw, so closing the detail
        # closes the picture's comm too.
        self.lineage = w.VBox([w.HTML(h.join([h.section("Lineage"), h.muted(
            "inputs → runs → outputs; click a run to open it")])), self.picture])
        self.environment = w.HTML()
        self.cells = w.HTML()
        self.reproduce = _reproduce_control(self)
        self.notebook = _notebook_control(self)
        super().__init__([self.header, self.status, self.reproduce, self.notebook, self.params,
                          self.metrics,
                          self.files, self.related, self.lineage, self.environment, self.cells])
        styled(self)
        self.load(run_id)

    def load(self, run_id: str) -> None:
        """Show run ``run_id`` (an id, a unique prefix or a ``tracker://`` key)."""
        info = self.catalog.get_run(run_id)
        history = self.catalog.metric_history(info.id)
        lineage = self.catalog.lineage(info.id)
        self.info = info
        self.reproduce.children[1].value = ""  # the command shown was the previous run's
        self.notebook.children[1].value = ""
        self.header.value = _header(info, here=info.id == current_run_id(self.catalog))
        self.status.children[0].value = info.status
        self.params.value = _params(info)
        self.metrics.value = _metrics(info, history)
        self._show_files(info, lineage)
        self._link(lineage)
        self._draw_lineage(info)
        self.environment.value = _environment(info.environment)
        self.cells.value = _cells(info.cells)

    def _show_files(self, info: RunInfo, lineage: Any) -> None:
        """The files as a grid: HTML cells, and a button for a producer that is another run."""
        old = self.files.children
        names = {record["run_id"]: record["run_name"] for record in lineage.to_dict("records")}
        root = server_root()
        cells: list[w.Widget] = [w.HTML(h.tag("b", header)) for header in _FILE_HEADERS]
        for item in info.artifacts[:MAX_FILES]:
            cells += [w.HTML(h.esc(item["role"])), w.HTML(_path(item["uri"], root)),
                      w.HTML(f"v{item.get('version')}"), w.HTML(h.size(item.get("size"))),
                      w.HTML(short_hash(item.get("hash"))),
                      self._producer(item.get("producer_run_id"), info.id, names),
                      w.HTML(h.esc(item.get("via") or h.EMPTY))]
        more = len(info.artifacts) - MAX_FILES
        note = [w.HTML(h.muted(f"and {more:,} more files"))] if more > 0 else []
        grid = w.GridBox(cells, layout=w.Layout(
            grid_template_columns="auto minmax(12em, 2fr) auto auto auto auto auto",
            grid_gap="2px 10px", align_items="center"))
        grid.add_class("tracker-files")
        if info.artifacts:
            self.files.children = [w.HTML(h.section("Files")), grid, *note]
        else:
            self.files.children = [w.HTML(h.join([h.section("Files"), h.muted(
                "no inputs or outputs recorded")]))]
        for widget in old:
            close_tree(widget)

    def _producer(self, producer: str | None, own: str, names: Mapping[str, Any]) -> w.Widget:
        if not producer or producer == own:
            return w.HTML(h.esc("this run" if producer else h.EMPTY))
        name = names.get(producer) or producer
        button = w.Button(description=f"{name} ({short_id(producer)})",
                          tooltip=f"open run {producer}", layout=w.Layout(width="auto"))
        button.add_class("tracker-link")
        button.on_click(lambda _: self.on_open(producer))
        return button

    def _draw_lineage(self, info: RunInfo) -> None:
        """The lineage picture, for a run that read or wrote files (the trash left out, as in
        the related runs above)."""
        linked = any(item["role"] in ("input", "output") for item in info.artifacts)
        graph = self.catalog.lineage_graph(info.id) if linked else None
        self.picture.show(graph)
        if graph is None:
            self.lineage.add_class("tracker-hidden")
        else:
            self.lineage.remove_class("tracker-hidden")

    def _link(self, lineage: Any) -> None:
        for button in self.links.values():
            close_tree(button)
        self.links = {}
        buttons = [w.HTML(h.section("Related runs"))] if len(lineage) else []
        for record in lineage.to_dict("records")[:MAX_LINKS]:
            run_id = record["run_id"]
            if run_id in self.links:
                continue
            arrow, verb = ("⇠", "wrote") if record["direction"] == "upstream" else ("⇢", "read")
            name = record["run_name"] or run_id
            button = w.Button(description=f"{arrow} {name} ({short_id(run_id)})",
                              tooltip=f"{name} ({run_id}) {verb} {record['uri']}",
                              layout=w.Layout(width="auto"))  # whole names: cut, runs look alike
            button.add_class("tracker-link")
            button.on_click(lambda _, target=run_id: self.on_open(target))
            self.links[run_id] = button
            buttons.append(button)
        old = self.related.children
        self.related.children = buttons
        for widget in old:
            if widget not in buttons:
                widget.close()


def _status_control(detail: RunDetail) -> w.HBox:
    """Set the run's status by hand (:func:`tracker.set_status`, under its rules): a refusal,
    such as ending a run whose process is alive, is shown in place."""
    choice = w.Dropdown(options=STATUSES, layout=w.Layout(width="120px"))
    button = w.Button(description="set status", tooltip="mark the run with the chosen status "
                                                        "(kept in its history)")
    message = w.HTML()

    def apply(_: Any) -> None:
        if detail.info is None:
            return
        try:
            detail.catalog.set_status(detail.info.id, choice.value)
        except TrackerError as exc:
            message.value = h.message(str(exc), "error")
            return
        message.value = ""
        detail.load(detail.info.id)

    button.on_click(apply)
    return w.HBox([choice, button, message])


def _reproduce_control(detail: RunDetail) -> w.HBox:
    """A button that shows the command reproducing the run. Not run from here: the re-run
    would execute in this kernel's process, whose own run would record the scratch folder's
    files, and a kernel-long job has no place in a button callback (docs/design.md)."""
    button = w.Button(description="reproduce", tooltip="show the command that re-runs this "
                                                        "notebook and compares its outputs")
    command = w.HTML()

    def show(_: Any) -> None:
        if detail.info is not None:
            command.value = h.code(reproduce_command(str(detail.catalog.path), detail.info.id))

    button.on_click(show)
    return w.HBox([button, command])


def _notebook_control(detail: RunDetail) -> w.HBox:
    """A button that writes the notebook stored with the run into the working folder and links
    to it there: the executed one, outputs included, where the runner wrote one."""
    button = w.Button(description="notebook", tooltip="write the notebook stored with this run "
                                                     "(with its outputs where the runner saved "
                                                     "them) into the current folder")
    message = w.HTML()

    def write(_: Any) -> None:
        if detail.info is not None:
            message.value = _notebook_written(detail.catalog, detail.info)

    button.on_click(write)
    return w.HBox([button, message])


def _notebook_written(catalog: Any, info: RunInfo) -> str:
    """Where the run's notebook was written, as a link, or why it could not be."""
    try:
        written = notebook_copy(catalog, info)
    except TrackerError as exc:
        return h.message(str(exc), "error")
    return h.join(["written to ", _path(str(written), server_root())])


def notebook_copy(catalog: Any, info: RunInfo) -> Path:
    """Write the run's stored notebook to ``<notebook name>-<run id>.ipynb`` in the working
    folder, replacing an earlier copy (the newest stored notebook may have come since)."""
    from tracker.retrieval import run_notebook

    name = f"{info.notebook_name or info.name or 'run'}-{info.id}.ipynb".replace(os.sep, "_")
    return run_notebook(catalog, info.id).restore(Path.cwd() / name, overwrite=True)


def reproduce_command(catalog: str, run_id: str) -> str:
    """The shell command that reproduces ``run_id`` of the catalog at ``catalog``."""
    return f"tracker --catalog {shlex.quote(catalog)} reproduce {shlex.quote(run_id)}"


def _header(info: RunInfo, *, here: bool) -> str:
    title = h.join([h.tag("span", info.name or info.id, cls="tracker-title"), " ",
                    h.pill(info.status)])
    if here:
        title = h.join([title, " ", h.tag("span", "● this notebook's run", cls="tracker-here")])
    facts: dict[str, Any] = {
        "id": info.id, "project": info.project,
        "notebook": info.notebook or h.EMPTY, "started": h.iso(info.started_at),
        "ended": h.iso(info.ended_at), "duration": h.duration(info.duration),
        "user": f"{info.user or '?'}@{info.host or '?'} (pid {info.pid})",
    }
    if info.labels:
        facts["labels"] = h.chips(info.labels)
    if info.parent_id:
        facts["parent run"] = info.parent_id
    if info.notes:
        facts["notes"] = info.notes
    if info.error:
        facts["error"] = h.message(info.error, "error")
    if info.deleted:
        facts["deleted"] = h.message(f"in the trash since {h.iso(info.deleted_at)}", "warn")
    return h.join([h.tag("div", title), h.attributes_table(facts)])


def _params(info: RunInfo) -> str:
    if not info.params:
        return h.join([h.section("Params"), h.muted("no params recorded")])
    rows, changed = [], []
    injected_at = _injected_at(info.cells)
    for key in sorted(info.params):
        entries = _from_injection(info.param_history.get(key, []), injected_at)
        rows.append([key, h.value_text(info.params[key]), _history(entries)])
        changed.append(len(entries) > 1)
    return h.join([h.section("Params"), h.table(["param", "value", "earlier values"], rows,
                                                differing=changed)])


def _injected_at(cells: Sequence[Mapping[str, Any]]) -> Any:
    """When papermill's injected-parameters cell started, if the run had one."""
    for cell in cells:
        if str(cell.get("source") or "").startswith(_INJECTED_CELL):
            return cell.get("started_at")
    return None


def _from_injection(entries: Sequence[tuple[Any, Any]], injected_at: Any) -> list[tuple[Any, Any]]:
    """A param's history from the value papermill injected: the notebook's default, which the
    injection replaced before any work, is not a change the user made."""
    if injected_at is None:
        return list(entries)
    before = [entry for entry in entries if entry[0] < injected_at]
    if not before or len(before) == len(entries):
        return list(entries)
    return list(entries[len(before):])


def _history(entries: Sequence[tuple[Any, Any]]) -> str:
    """"0.1 (14:02) → 0.01 (14:05)" for a param whose value changed; blank otherwise."""
    if len(entries) < 2:
        return ""
    return " → ".join(f"{h.value_text(value)} ({h.iso(when)})" for when, value in entries)


def _metrics(info: RunInfo, history: Any) -> str:
    series = _series(history)
    keys = sorted(set(info.metrics) | set(series))
    if not keys:
        return h.join([h.section("Metrics"), h.muted("no metrics recorded")])
    rows = []
    for key in keys:
        values, steps = series.get(key, ([], []))
        plot = sparkline(values, steps=steps, title=key) if len(values) > 1 else ""
        rows.append([key, h.number(info.metrics.get(key, values[-1] if values else None)),
                     f"{len(values):,}", plot])
    return h.join([h.section("Metrics"), h.table(["metric", "latest", "values", "series"], rows)])


def _series(history: Any) -> dict[str, tuple[list[float], list[float]]]:
    """Per metric key: its values and their steps (the value's index where steps are missing)."""
    out: dict[str, tuple[list[float], list[float]]] = {}
    for key, group in history.groupby("key", sort=True):
        values = [float(v) for v in group["value"]]
        steps = group["step"]
        xs = ([float(s) for s in steps] if steps.notna().all()
              else [float(i) for i in range(len(values))])
        out[str(key)] = (values, xs)
    return out


def short_hash(digest: Any) -> h.Safe:
    """``xxh3_128 e8b4c2a91f03``: the algorithm apart, HASH_HEX hex digits, the whole as a
    tooltip (stored hashes read ``<algorithm>:<hex>``)."""
    if not digest:
        return h.Safe(h.EMPTY)
    algorithm, _, hexdigits = str(digest).rpartition(":")
    shown = h.join([h.muted(algorithm), " ", hexdigits[:HASH_HEX]]) if algorithm else \
        h.esc(hexdigits[:HASH_HEX])
    return h.tag("span", h.Safe(shown), title=digest)


def _path(uri: str, root: str | None) -> h.Safe:
    """The path, a link opening it in JupyterLab when it lies under the server root."""
    url = lab_url(uri, root)
    if url is None:
        return h.tag("span", uri, cls="tracker-path")
    return h.Safe(f'<a class="tracker-path" href="{h.esc(url)}" target="_blank" '
                  f'title="open in JupyterLab">{h.esc(uri)}</a>')


def _environment(env: Mapping[str, Any] | None) -> str:
    if not env:
        return h.join([h.section("Environment"), h.muted("no environment recorded")])
    facts: dict[str, Any] = {
        "python": f"{env.get('python', '?')} ({env.get('implementation', '?')})",
        "platform": f"{env.get('platform', '?')} {env.get('machine', '')}".strip(),
    }
    git = env.get("git")
    if git:
        dirty = " (uncommitted changes)" if git.get("dirty") else ""
        facts["git"] = f"{str(git.get('commit') or '')[:10]} on {git.get('branch') or '?'}{dirty}"
        if git.get("remote"):
            facts["remote"] = git["remote"]
    packages = env.get("packages") or {}
    listing = h.table(["package", "version"], sorted(packages.items()))
    facts["packages"] = h.details(f"{len(packages):,} installed", listing) if packages else "none"
    return h.join([h.section("Environment"), h.attributes_table(facts)])


def _cells(cells: Sequence[Mapping[str, Any]]) -> str:
    if not cells:
        return h.join([h.section("Executed cells"), h.muted("no cells recorded")])
    shown = list(cells)[-MAX_CELLS:]
    failed = sum(1 for cell in cells if cell.get("success") is False)
    summary = f"{len(cells):,} executed, {failed:,} failed"
    if len(shown) < len(cells):
        summary += f"; the last {len(shown)} shown"
    rows, errors = [], []
    for cell in shown:
        ok = cell.get("success") is not False
        source = str(cell.get("source") or "")
        first = source.strip().splitlines()[0][:_SOURCE_PREVIEW] if source.strip() else ""
        error = "" if ok else h.message(
            f"{cell.get('error_type') or 'Error'}: {cell.get('error_message') or ''}", "error")
        rows.append([f"[{cell.get('execution_count') or ' '}]",
                     h.message("ok", "ok") if ok else h.message("failed", "error"),
                     h.duration(cell.get("duration")), h.details(first, h.code(source)), error])
        errors.append(not ok)
    return h.join([h.section("Executed cells"), h.muted(summary),
                   h.table(["cell", "result", "took", "source", "error"], rows,
                           differing=errors)])
