"""The figure groups; importing this package registers every group, in report order."""

from __future__ import annotations

from benchmarks.figures import (  # noqa: F401 (imported to register)
    calls,
    concurrency,
    contents,
    hashing,
    kernel,
    lineage,
    mlflow_import,
    postgres,
    queries,
    reproduce,
    scan,
    startup,
    visibility,
    widgets,
)
