"""RunComparison: two or more runs side by side, differing params highlighted, metrics together.

One ``runs()`` query reads the runs' params and latest metrics as columns; one
``metric_history`` per run draws each shared metric as overlaid series.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import ipywidgets as w

from tracker import arguments
from tracker.errors import ArgumentError, RunNotFoundError

from . import _html as h
from ._catalog import CatalogLike, resolve_catalog
from ._columns import data_sources
from ._feedback import styled
from ._plot import line_plot
from .filters import ids_filter

MAX_RUNS = 12  # beyond this a side-by-side table stops being readable


class RunComparison(w.VBox):
    """Runs side by side: attributes, params (differences highlighted), metrics and their plots.

    ``on_open(run_id)`` runs when a run's button is clicked (e.g. to open its detail).
    """

    def __init__(self, ids: Sequence[str], *, catalog: CatalogLike = None,
                 on_open: Callable[[str], None] | None = None) -> None:
        ids = arguments.texts(ids, "ids", "['01m7zwkkx6hq', '01m7zwkm3b9r']") or []
        if not 2 <= len(ids) <= MAX_RUNS:
            raise ArgumentError(f"compare needs 2 to {MAX_RUNS} runs at a time, not {len(ids)}")
        self.catalog = resolve_catalog(catalog)
        frame = self.catalog.runs(ids_filter(ids), include_deleted=True, limit=len(ids))
        order = {run_id: index for index, run_id in enumerate(ids)}
        self.records = sorted(frame.to_dict("records"), key=lambda r: order.get(r["id"], 0))
        if len(self.records) < 2:
            found = {record["id"] for record in self.records}
            raise RunNotFoundError(next(run_id for run_id in ids if run_id not in found))
        self.ids = [record["id"] for record in self.records]
        sources = data_sources(list(frame.columns))
        self.params = w.HTML(_params_table(self.records, sources))
        self.metrics = w.HTML(_metrics_table(self.records, sources))
        self.plots = w.HTML(self._plots([s for s in sources if s.startswith("metrics.")]))
        self.open_buttons = [self._open_button(record, on_open) for record in self.records]
        title = w.HTML(h.section(f"Comparing {len(self.records)} runs"))
        super().__init__([title, w.HBox(self.open_buttons), self.params, self.metrics,
                          self.plots])
        styled(self)

    @staticmethod
    def _open_button(record: dict[str, Any], on_open: Callable[[str], None] | None) -> w.Button:
        name = record.get("name") or record["id"]
        button = w.Button(description=f"{name}", tooltip=f"open {name} ({record['id']})",
                          layout=w.Layout(width="auto", max_width="240px"))
        button.add_class("tracker-link")
        if on_open is not None:
            button.on_click(lambda _: on_open(record["id"]))
        return button

    def _plots(self, metric_sources: list[str]) -> str:
        histories = {record["id"]: self.catalog.metric_history(record["id"])
                     for record in self.records}
        names = {record["id"]: f"{record.get('name') or record['id']}" for record in self.records}
        plots = []
        for source in metric_sources:
            key = source.split(".", 1)[1]
            series: dict[str, Any] = {}
            for run_id, history in histories.items():
                rows = history[history["key"] == key]
                if len(rows) > 1:
                    steps = rows["step"]
                    xs = (list(steps.astype(float)) if steps.notna().all()
                          else [float(i) for i in range(len(rows))])
                    series[_unique(names[run_id], run_id, series)] = list(
                        zip(xs, rows["value"].astype(float)))
            if series:
                plots.append(h.join([h.tag("div", key, cls="tracker-muted"),
                                     line_plot(series, title=key)]))
        if not plots:
            return ""
        return h.join([h.section("Metric series"), *plots])


def _unique(name: str, run_id: str, taken: dict[str, Any]) -> str:
    return name if name not in taken else f"{name} ({run_id[:8]})"


def _header(records: Sequence[dict[str, Any]]) -> list[str]:
    return ["", *(record.get("name") or record["id"] for record in records)]


def _params_table(records: Sequence[dict[str, Any]], sources: Sequence[str]) -> str:
    rows: list[list[Any]] = [
        ["status", *(h.pill(r.get("status")) for r in records)],
        ["notebook", *(r.get("notebook_name") or h.EMPTY for r in records)],
        ["started", *(h.when(r.get("started_at")) for r in records)],
        ["duration", *(h.duration(r.get("duration")) for r in records)],
    ]
    differing = [False] * len(rows)
    params = [s for s in sources if s.startswith("params.")]
    for source in params:
        texts = [h.value_text(r.get(source)) for r in records]
        rows.append([source.split(".", 1)[1], *texts])
        differing.append(len(set(texts)) > 1)
    note = h.muted(f"{sum(differing)} of {len(params)} params differ (highlighted)")
    return h.join([h.section("Params"), note, h.table(_header(records), rows,
                                                      differing=differing)])


def _metrics_table(records: Sequence[dict[str, Any]], sources: Sequence[str]) -> str:
    metrics = [s for s in sources if s.startswith("metrics.")]
    if not metrics:
        return h.join([h.section("Metrics"), h.muted("no metrics recorded")])
    rows = [[s.split(".", 1)[1], *(h.number(r.get(s)) for r in records)] for s in metrics]
    return h.join([h.section("Metrics (latest)"), h.table(_header(records), rows)])
