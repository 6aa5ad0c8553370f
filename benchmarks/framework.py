"""The benchmark framework: figures, measurements, the registry of figure groups and the runner.

A *figure* is one row of the results table (``import tracker``, ``filter at 100k runs``...). A
*group* is a function that measures several related figures at once (they share a populated
catalog, a kernel, a file) and registers itself with :func:`group`. A group whose dependency is
missing raises :class:`NotAvailable`; its figures are then reported as "not available: <reason>",
never as a made-up number.
"""

from __future__ import annotations

import statistics
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

# Units whose numbers are durations or rates; a ratio between two counts says nothing.
_TIME_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6}
_RATE_UNITS = {"MB/s", "runs/s"}


class NotAvailable(Exception):
    """A figure cannot be measured here (its dependency has not landed or is not installed)."""


@dataclass(frozen=True)
class Target:
    """The goal an issue set for a figure, e.g. ``Target("<=", 150)`` in the figure's unit, or
    with ``versus_mlflow`` a goal for the ratio column (``Target(">=", 2, True)``: at least twice
    as good as MLflow in the same run)."""

    op: str
    value: float
    versus_mlflow: bool = False

    def met(self, value: float) -> bool:
        """Whether ``value`` (the median, or the ratio for a goal versus MLflow) reaches it."""
        return value <= self.value if self.op == "<=" else value >= self.value

    def text(self, unit: str) -> str:
        """The target as the table shows it, e.g. ``<= 150 ms`` or ``>= 2x MLflow``."""
        if self.versus_mlflow:
            return f"{self.op} {_number(self.value)}x MLflow"
        return f"{self.op} {_number(self.value)} {unit}".rstrip()


@dataclass(frozen=True)
class Figure:
    """One row of the results: what is measured, in which unit, and the target if any."""

    key: str
    title: str
    unit: str
    target: Target | None = None
    mlflow: bool = False

    @property
    def higher_is_better(self) -> bool:
        """Rates (MB/s, runs/s) are better high; times and counts are better low."""
        return self.unit in _RATE_UNITS

    @property
    def comparable(self) -> bool:
        """Whether a ratio between two values of this figure means something."""
        return self.unit in _TIME_UNITS or self.unit in _RATE_UNITS


@dataclass(frozen=True)
class Stats:
    """Median and spread of a list of samples."""

    median: float
    q1: float
    q3: float
    low: float
    high: float
    n: int

    @classmethod
    def of(cls, samples: Sequence[float]) -> Stats:
        """Summarise ``samples`` (at least one)."""
        ordered = sorted(samples)
        if len(ordered) == 1:
            only = ordered[0]
            return cls(only, only, only, only, only, 1)
        q1, median, q3 = statistics.quantiles(ordered, n=4, method="inclusive")
        return cls(median, q1, q3, ordered[0], ordered[-1], len(ordered))


@dataclass(frozen=True)
class Measure:
    """One side's value for a figure: samples, or the reason there are none.

    ``at_least`` holds the bound of a timed-out measurement ("> 120 s"), so a ratio against it
    can still be quoted as a lower bound.
    """

    samples: tuple[float, ...] = ()
    missing: str | None = None
    at_least: float | None = None
    note: str = ""

    @classmethod
    def of(cls, samples: Sequence[float], *, note: str = "") -> Measure:
        """A measurement from samples already in the figure's unit."""
        if not samples:
            return cls(missing="no samples", note=note)
        return cls(samples=tuple(float(s) for s in samples), note=note)

    @classmethod
    def seconds(cls, samples: Sequence[float], unit: str, *, note: str = "") -> Measure:
        """A measurement from samples in seconds, converted to ``unit`` (s, ms or us)."""
        scale = _TIME_UNITS[unit]
        return cls.of([s / scale for s in samples], note=note)

    @classmethod
    def unavailable(cls, reason: str) -> Measure:
        """No number: the dependency is missing or the measurement failed."""
        return cls(missing=f"not available: {reason}")

    @classmethod
    def timed_out(cls, limit_s: float, unit: str) -> Measure:
        """No number within ``limit_s`` seconds: reported as "> limit"."""
        return cls(missing=f"> {_number(limit_s)} s", at_least=limit_s / _TIME_UNITS[unit])

    def noted(self, note: str) -> Measure:
        """The same measurement with ``note`` added to its note."""
        return replace(self, note="; ".join(filter(None, [self.note, note])))

    @property
    def stats(self) -> Stats | None:
        """Median and spread, or None when there are no samples."""
        return Stats.of(self.samples) if self.samples else None


@dataclass(frozen=True)
class Outcome:
    """What a group measured for one figure: ours and MLflow's (None: MLflow has no such op)."""

    ours: Measure
    mlflow: Measure | None = None


@dataclass(frozen=True)
class Row:
    """A figure with both sides' values, as reported."""

    figure: Figure
    ours: Measure
    mlflow: Measure | None

    def ratio(self) -> tuple[float, bool] | None:
        """How many times better we are than MLflow, and whether that is only a lower bound."""
        ours, theirs = self.ours.stats, self.mlflow.stats if self.mlflow else None
        if not self.figure.comparable or ours is None or ours.median <= 0:
            return None
        if theirs is not None:
            return self._better(ours.median, theirs.median), False
        if self.mlflow is not None and self.mlflow.at_least is not None:
            return self._better(ours.median, self.mlflow.at_least), True
        return None

    def target_met(self) -> bool | None:
        """Whether our median reaches the target (None without target or number)."""
        stats, target = self.ours.stats, self.figure.target
        if target is None or stats is None:
            return None
        if target.versus_mlflow:
            ratio = self.ratio()
            return None if ratio is None else target.met(ratio[0])
        return target.met(stats.median)

    def _better(self, ours: float, theirs: float) -> float:
        if self.figure.higher_is_better:
            return ours / theirs if theirs > 0 else float("inf")
        return theirs / ours


@dataclass
class Context:
    """What every group gets: the mode, sizes, limits, a scratch folder and a fixture cache."""

    quick: bool
    workdir: Path
    mlflow_missing: str | None
    timeout_s: float = 120.0
    cache: dict[str, Any] = field(default_factory=dict)

    @property
    def sizes(self) -> tuple[int, ...]:
        """Catalog sizes (number of runs) for the query figures."""
        return (100, 1_000) if self.quick else (1_000, 10_000, 100_000)

    @property
    def repeats(self) -> int:
        """How many samples a figure takes when time allows."""
        return 3 if self.quick else 7

    def fixture(self, key: str, make: Callable[[], Any]) -> Any:
        """Build a shared fixture (a populated catalog...) once per suite run."""
        if key not in self.cache:
            self.cache[key] = make()
        return self.cache[key]

    def mlflow_measure(self, measure: Callable[[], Measure]) -> Measure:
        """Run ``measure`` for MLflow, or say "not available" when its venv is missing."""
        if self.mlflow_missing is not None:
            return Measure.unavailable(self.mlflow_missing)
        return measure()


Measurer = Callable[[Context], dict[str, Outcome]]
FigureList = Callable[[Context], Sequence[Figure]]


@dataclass(frozen=True)
class Group:
    """A registered function that measures a set of figures together."""

    name: str
    figures: FigureList
    measure: Measurer


GROUPS: dict[str, Group] = {}


def group(name: str, figures: FigureList) -> Callable[[Measurer], Measurer]:
    """Register the decorated function as the group ``name`` measuring ``figures(ctx)``."""

    def register(measure: Measurer) -> Measurer:
        GROUPS[name] = Group(name, figures, measure)
        return measure

    return register


def figure_keys(ctx: Context) -> list[str]:
    """Every figure key the registered groups report in this context's mode."""
    return [figure.key for entry in GROUPS.values() for figure in entry.figures(ctx)]


def log(message: str) -> None:
    """Progress on stderr, so stdout stays the results table."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run_group(ctx: Context, entry: Group) -> list[Row]:
    """Measure one group; a missing dependency or a crash becomes "not available" rows."""
    figures = list(entry.figures(ctx))
    started = time.perf_counter()
    log(f"{entry.name}: {len(figures)} figures")
    try:
        outcomes = entry.measure(ctx)
    except NotAvailable as reason:
        outcomes = _all_missing(figures, str(reason))
    except Exception as error:  # a broken benchmark must not hide the other figures
        traceback.print_exc(file=sys.stderr)
        outcomes = _all_missing(figures, f"benchmark failed: {type(error).__name__}: {error}")
    log(f"{entry.name}: done in {time.perf_counter() - started:.1f} s")
    return [_row(figure, outcomes.get(figure.key)) for figure in figures]


def _all_missing(figures: Sequence[Figure], reason: str) -> dict[str, Outcome]:
    missing = Measure.unavailable(reason)
    return {f.key: Outcome(missing, missing if f.mlflow else None) for f in figures}


def _row(figure: Figure, outcome: Outcome | None) -> Row:
    if outcome is None:
        outcome = _all_missing([figure], "not measured")[figure.key]
    mlflow = outcome.mlflow if figure.mlflow else None
    if figure.mlflow and mlflow is None:
        mlflow = Measure.unavailable("not measured")
    return Row(figure, outcome.ours, mlflow)


def _number(value: float) -> str:
    """A number with three significant digits, without a useless ``.0``."""
    if value == int(value) and abs(value) < 1e6:
        return str(int(value))
    return f"{value:.3g}"
