"""RunComparison: two or more runs side by side in one table, differences and best values marked.

One ``runs()`` query reads the runs' params and latest metrics as columns; one
``metric_history`` per run draws each shared metric as overlaid series. Attributes, params and
metrics share one table (one header, so every value sits under its run), each run headed by its
name and a short id that tells it apart from the others. For two runs, ``tracker.diff`` adds
their code (a unified diff of the executed cells) and environment differences.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import ipywidgets as w

from tracker import arguments
from tracker._ids import short_id
from tracker.diffing import RunDiff
from tracker.errors import ArgumentError, RunNotFoundError

from . import _html as h
from ._catalog import CatalogLike, resolve_catalog
from ._columns import data_sources
from ._feedback import styled
from ._plot import line_plot
from .filters import ids_filter

MAX_RUNS = 12  # beyond this a side-by-side table stops being readable
DIRECTIONS = {"min": "lower is better", "max": "higher is better"}
# Metric names whose best value is the lowest, or the highest; matched on words of the key.
_LOWER = re.compile(r"(^|[^a-z])(loss|err|error|errors|mse|mae|rmse|mape|nll|perplexity|ppl|wer|"
                    r"cer|latency|time|duration|seconds|cost|regret|distance|fid)([^a-z]|$)")
_HIGHER = re.compile(r"(^|[^a-z])(acc|accuracy|auc|roc|f1|precision|recall|score|r2|iou|map|"
                     r"bleu|rouge|dice|reward|return|ndcg|mrr|top1|top5|hit|hits|sharpe)"
                     r"([^a-z]|$)")


def direction(key: str, chosen: Mapping[str, str] | None = None) -> str | None:
    """Whether a metric's best value is its ``"min"`` or its ``"max"``: as ``chosen`` says,
    else from its name (loss, error, mse... lower; acc, auc, f1... higher), else None."""
    if chosen and key in chosen:
        return chosen[key]
    words = key.lower()
    if _LOWER.search(words):
        return "min"
    if _HIGHER.search(words):
        return "max"
    return None


class RunComparison(w.VBox):
    """Runs side by side: attributes, params (differences highlighted) and metrics (the best
    marked) in one table, and the metrics' series on shared axes.

    ``on_open(run_id)`` runs when a run's button is clicked (e.g. to open its detail).
    ``directions`` sets whether a metric's best value is its ``"min"`` or ``"max"`` where the
    name does not tell (``{"dice_loss_weighted": "min"}``).
    """

    def __init__(self, ids: Sequence[str], *, catalog: CatalogLike = None,
                 on_open: Callable[[str], None] | None = None,
                 directions: Mapping[str, str] | None = None) -> None:
        ids = arguments.texts(ids, "ids", "['01m7zwkkx6hq', '01m7zwkm3b9r']") or []
        if not 2 <= len(ids) <= MAX_RUNS:
            raise ArgumentError(f"compare needs 2 to {MAX_RUNS} runs at a time, not {len(ids)}")
        self.directions = _checked_directions(directions)
        self.catalog = resolve_catalog(catalog)
        frame = self.catalog.runs(ids_filter(ids), include_deleted=True, limit=len(ids))
        order = {run_id: index for index, run_id in enumerate(ids)}
        self.records = sorted(frame.to_dict("records"), key=lambda r: order.get(r["id"], 0))
        if len(self.records) < 2:
            found = {record["id"] for record in self.records}
            raise RunNotFoundError(next(run_id for run_id in ids if run_id not in found))
        self.ids = [record["id"] for record in self.records]
        # The short id (as listings show it) tells apart runs of one notebook.
        self.labels = [f"{record.get('name') or run_id} ({short_id(run_id)})"
                       for record, run_id in zip(self.records, self.ids)]
        self.sources = data_sources(list(frame.columns))
        self.differences_only = w.Checkbox(value=False, description="differences only",
                                           indent=False, layout=w.Layout(width="auto"))
        self.differences_only.observe(lambda _: self._render_table(), "value")
        self.table = w.HTML()
        self._render_table()
        self.plots = w.HTML(self._plots([s for s in self.sources if s.startswith("metrics.")]))
        # code and environment: what tracker.diff says, for a pair of runs only
        self.differences = w.HTML(code_and_environment(self.catalog.diff(*self.ids))
                                  if len(self.ids) == 2 else "")
        self.open_buttons = [self._open_button(label, run_id, on_open)
                             for label, run_id in zip(self.labels, self.ids)]
        title = w.HTML(h.section(f"Comparing {len(self.records)} runs"))
        buttons = w.HBox(self.open_buttons, layout=w.Layout(flex_flow="row wrap"))
        super().__init__([title, buttons, self.differences_only, self.table, self.differences,
                          self.plots])
        styled(self)

    @staticmethod
    def _open_button(label: str, run_id: str,
                     on_open: Callable[[str], None] | None) -> w.Button:
        # No max width: a label cut to "..." is what made runs look alike.
        button = w.Button(description=f"open {label}", tooltip=f"open {label} ({run_id})",
                          layout=w.Layout(width="auto"))
        button.add_class("tracker-link")
        if on_open is not None:
            button.on_click(lambda _: on_open(run_id))
        return button

    def _render_table(self) -> None:
        self.table.value = comparison_table(self.records, self.labels, self.sources,
                                            directions=self.directions,
                                            differences_only=self.differences_only.value)

    def _plots(self, metric_sources: list[str]) -> str:
        histories = [self.catalog.metric_history(run_id) for run_id in self.ids]
        plots = []
        for source in metric_sources:
            key = source.split(".", 1)[1]
            series: dict[str, Any] = {}
            for label, history in zip(self.labels, histories):
                rows = history[history["key"] == key]
                if len(rows) > 1:
                    steps = rows["step"]
                    xs = (list(steps.astype(float)) if steps.notna().all()
                          else [float(i) for i in range(len(rows))])
                    series[label] = list(zip(xs, rows["value"].astype(float)))
            if series:
                plots.append(h.join([h.tag("div", key, cls="tracker-muted"),
                                     line_plot(series, title=key)]))
        if not plots:
            return ""
        return h.join([h.section("Metric series"), *plots])


def _checked_directions(directions: Mapping[str, str] | None) -> dict[str, str]:
    if directions is None:
        return {}
    if not isinstance(directions, Mapping):
        raise ArgumentError("directions must be a dict such as {'loss': 'min', 'acc': 'max'}")
    for key, value in directions.items():
        arguments.choice(value, f"directions[{key!r}]", DIRECTIONS)
    return dict(directions)


def comparison_table(records: Sequence[Mapping[str, Any]], labels: Sequence[str],
                     sources: Sequence[str], *, directions: Mapping[str, str] | None = None,
                     differences_only: bool = False) -> h.Safe:
    """One table: a column per run headed by ``labels``; attribute, params and metrics rows.

    Rows whose values differ are highlighted (``differences_only`` leaves the others out); the
    best value of each metric whose direction is known is bold and starred.
    """
    attributes: list[tuple[str, list[Any]]] = [
        ("status", [h.pill(r.get("status")) for r in records]),
        ("notebook", [r.get("notebook_name") or h.EMPTY for r in records]),
        ("started", [h.when(r.get("started_at")) for r in records]),
        ("duration", [h.duration(r.get("duration")) for r in records]),
    ]
    params = [(s.split(".", 1)[1], [h.value_text(r.get(s)) for r in records])
              for s in sources if s.startswith("params.")]
    metrics = [s for s in sources if s.startswith("metrics.")]
    head = "".join(f"<th>{h.esc(label)}</th>" for label in ["", *labels])
    body = _group("", attributes, differences_only)
    differing = sum(len(set(texts)) > 1 for _, texts in params)
    body += _group(f"params: {differing} of {len(params)} differ", params, differences_only)
    body += _group("metrics (latest)", [], False)
    for source in metrics:
        key = source.split(".", 1)[1]
        body += _metric_row(key, [r.get(source) for r in records],
                            direction(key, directions), differences_only)
    return h.Safe(f'<table class="tracker-table tracker-compare"><thead><tr>{head}</tr></thead>'
                  f"<tbody>{body}</tbody></table>")


def _group(title: str, rows: Sequence[tuple[str, Sequence[Any]]], differences_only: bool) -> str:
    """A group heading row, then one row per (name, cells); differing rows highlighted."""
    out = [f'<tr><th class="tracker-group" colspan="99">{h.esc(title)}</th></tr>'] if title else []
    for name, cells in rows:
        differs = len({str(cell) for cell in cells}) > 1
        if differences_only and not differs:
            continue
        cls = ' class="tracker-differs"' if differs else ""
        out.append(f"<tr><td{cls}>{h.esc(name)}</td>"
                   + "".join(f"<td{cls}>{h.esc(cell)}</td>" for cell in cells) + "</tr>")
    return "".join(out)


def _metric_row(key: str, values: Sequence[Any], best_is: str | None,
                differences_only: bool) -> str:
    texts = [h.number(value) for value in values]
    if differences_only and len(set(texts)) < 2:
        return ""
    numbers = [float(v) for v in values if not h.is_missing(v) and not isinstance(v, bool)]
    best = (min(numbers) if best_is == "min" else max(numbers)) if numbers and best_is else None
    note = DIRECTIONS.get(best_is or "", "")
    cells = []
    for value, text in zip(values, texts):
        if best is not None and not h.is_missing(value) and float(value) == best:
            cells.append(f'<td class="tracker-best tracker-num" title="best ({note})">'
                         f"{h.esc(text)} ★</td>")
        else:
            cells.append(f'<td class="tracker-num">{h.esc(text)}</td>')
    title = f' title="{h.esc(note)}"' if note else ""
    return f"<tr><td{title}>{h.esc(key)}</td>{''.join(cells)}</tr>"


def code_and_environment(diff: RunDiff) -> h.Safe:
    """The "code" (a unified diff of the executed cells) and "environment" (Python, git
    commit, packages whose versions differ) sections of two runs' comparison."""
    code = h.code(diff.code) if diff.code else h.muted("the same cells ran")
    changes = diff.environment.lines()
    environment = h.table(["difference"], [[line] for line in changes]) if changes \
        else h.muted("the same environment")
    return h.join([h.section("Code"), code, h.section("Environment"), environment])
