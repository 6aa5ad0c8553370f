"""The runs browser: ipywidgets views over the catalog (see RunTable).

``import tracker.widgets`` loads ipywidgets; ``import tracker`` does not. ``tracker.show()`` and
``%tracker runs`` display a :class:`RunTable`.
"""

from __future__ import annotations

from .charts import RunCharts
from .compare import RunComparison
from .detail import RunDetail
from .table import RunTable
from .trash import TrashView

__all__ = ["RunCharts", "RunComparison", "RunDetail", "RunTable", "TrashView"]
