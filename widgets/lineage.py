"""LineagePicture: a run's lineage graph drawn in the run detail, where a run node opens that run.

The kernel draws the picture (:func:`tracker.lineage_drawing.svg`, themed with JupyterLab's
colours, every label escaped); ``lineage.js`` beside this file shows it and sends back the run a
click or Enter chose, as the runs grid sends its opens. No JavaScript build.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import anywidget
import traitlets as t

from tracker import lineage_drawing
from tracker.lineage_walk import LineageGraph

_HERE = Path(__file__).parent


class LineagePicture(anywidget.AnyWidget):
    """The picture of one lineage graph; ``on_open(run_id)`` runs when a run node is clicked
    (not the focus: it is the run already shown)."""

    _esm = _HERE / "lineage.js"
    svg = t.Unicode("").tag(sync=True)

    def __init__(self, on_open: Callable[[str], None] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.on_open = on_open
        self.graph: LineageGraph | None = None
        self.on_msg(lambda _, content, __: self.handle_event(content))

    def show(self, graph: LineageGraph | None) -> None:
        """Draw ``graph``; None clears the picture."""
        self.graph = graph
        self.svg = "" if graph is None else lineage_drawing.svg(graph, themed=True)

    def handle_event(self, content: Any) -> None:
        """What the browser sends: ``{"event": "open", "id": RUN_ID}`` for a run node of the
        graph shown. Anything else, or a run not in the picture, is ignored."""
        if not isinstance(content, dict) or content.get("event") != "open":
            return
        run_id = content.get("id")
        graph = self.graph
        if graph is None or not isinstance(run_id, str) or run_id == graph.focus:
            return
        if self.on_open is not None and any(node.run_id == run_id for node in graph.nodes):
            self.on_open(run_id)
