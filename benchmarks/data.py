"""The synthetic runs both sides are populated with: the same n runs, from the same seed.

Each run has 20 params (``p0`` is one of x/y/z so a filter on it keeps a third; the others are
numbers and short strings) and 5 metrics ``m0``..``m4`` uniform in [0, 1). Statuses are mostly
completed, some failed, a few still running, as in a real catalog. Stdlib only (the MLflow venv
imports this too).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

N_PARAMS = 20
N_METRICS = 5
# The figures' queries, in each tool's own grammar; both select the same runs.
FILTER = "params.p0 = 'x' and metrics.m0 > 0.5"
ORDER_METRIC = "m0"
STATUSES: tuple[tuple[str, float], ...] = (("completed", 0.9), ("failed", 0.08),
                                           ("running", 0.02))
_START_EPOCH = 1_767_225_600.0  # 2026-01-01, so every run has a plausible past start time


@dataclass(frozen=True)
class SyntheticRun:
    """One run to write: name, status, start time (epoch seconds), duration, params, metrics."""

    name: str
    status: str
    started: float
    duration: float
    params: dict[str, Any]
    metrics: dict[str, float]


def synthetic_runs(n: int, *, seed: int = 0) -> Iterator[SyntheticRun]:
    """Yield ``n`` reproducible runs."""
    rng = random.Random(seed)
    names = [name for name, _ in STATUSES]
    weights = [weight for _, weight in STATUSES]
    for i in range(n):
        yield SyntheticRun(
            name=f"run-{i}",
            status=rng.choices(names, weights)[0],
            started=_START_EPOCH + i * 60.0,
            duration=rng.uniform(1.0, 600.0),
            params=_params(rng, i),
            metrics={f"m{k}": rng.random() for k in range(N_METRICS)},
        )


def _params(rng: random.Random, i: int) -> dict[str, Any]:
    params: dict[str, Any] = {"p0": rng.choice("xyz")}
    for k in range(1, N_PARAMS):
        if k % 3 == 0:
            params[f"p{k}"] = f"value-{rng.randrange(50)}"
        elif k % 3 == 1:
            params[f"p{k}"] = round(rng.uniform(1e-4, 1.0), 6)
        else:
            params[f"p{k}"] = rng.randrange(1, 1000) + i % 7
    return params
