"""The results: machine facts, the JSON record, the terminal table and the README's table."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import os
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks import mlflow_env
from benchmarks.framework import Measure, Row

HEADER = ("figure", "tracker", "MLflow", "ratio", "target", "met")


def machine_info() -> dict[str, Any]:
    """CPU, cores, memory and the versions that decide the numbers."""
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "duckdb": _version("duckdb"),
        "pandas": _version("pandas"),
        "tracker": _version("tracker"),
        "mlflow": mlflow_env.mlflow_version(),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


def to_json(rows: Sequence[Row], *, quick: bool, machine: dict[str, Any],
            duration_s: float, group_s: dict[str, float] | None = None) -> dict[str, Any]:
    """The whole run as a JSON-ready dict: figures keyed by their stable key, and the seconds
    each group took (``--only GROUP`` reruns one)."""
    return {
        "mode": "quick" if quick else "full",
        "duration_s": round(duration_s, 1),
        "group_s": group_s or {},
        "machine": machine,
        "figures": {row.figure.key: _row_json(row) for row in rows},
    }


def write(results: dict[str, Any], rows: Sequence[Row], folder: Path) -> tuple[Path, Path]:
    """Write ``latest.json`` and ``latest.md`` into ``folder``; return both paths."""
    folder.mkdir(parents=True, exist_ok=True)
    json_path, md_path = folder / "latest.json", folder / "latest.md"
    json_path.write_text(json.dumps(results, indent=2) + "\n")
    md_path.write_text(markdown(rows, results["machine"], mode=results["mode"]))
    return json_path, md_path


def text_table(rows: Sequence[Row]) -> str:
    """The table for the terminal: aligned columns, then the notes."""
    cells = [HEADER, *(_cells(row) for row in rows)]
    widths = [max(len(line[i]) for line in cells) for i in range(len(HEADER))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip()
             for line in cells]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join([*lines, "", *_notes(rows)]) + "\n"


def markdown(rows: Sequence[Row], machine: dict[str, Any], *, mode: str) -> str:
    """The markdown table for the README, with the machine it was measured on."""
    head = (f"Measured {machine['date']} ({mode} mode) on {machine['cpu']}, "
            f"{machine['cores']} cores, {machine['memory_gib']} GiB; Python {machine['python']}, "
            f"duckdb {machine['duckdb']}, MLflow {machine['mlflow'] or 'not installed'}. "
            "Medians, IQR in brackets; ratio = how many times better tracker is.")
    lines = [head, "", "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in _cells(row)) + " |"
              for row in rows]
    notes = _notes(rows)
    return "\n".join([*lines, *([""] if notes else []), *notes]) + "\n"


def _row_json(row: Row) -> dict[str, Any]:
    ratio = row.ratio()
    target = row.figure.target
    return {
        "title": row.figure.title,
        "unit": row.figure.unit,
        "target": target.text(row.figure.unit) if target else None,
        "target_met": row.target_met(),
        "tracker": _measure_json(row.ours),
        "mlflow": _measure_json(row.mlflow) if row.mlflow is not None else None,
        "ratio": round(ratio[0], 3) if ratio else None,
        "ratio_is_lower_bound": bool(ratio and ratio[1]),
    }


def _measure_json(measure: Measure) -> dict[str, Any]:
    stats = measure.stats
    if stats is None:
        return {"missing": measure.missing, "at_least": measure.at_least, "note": measure.note}
    return {
        "median": stats.median, "q1": stats.q1, "q3": stats.q3, "min": stats.low,
        "max": stats.high, "n": stats.n, "note": measure.note,
    }


def _cells(row: Row) -> tuple[str, ...]:
    unit = row.figure.unit
    target = row.figure.target
    met = row.target_met()
    return (
        row.figure.title,
        _value(row.ours, unit),
        _value(row.mlflow, unit) if row.mlflow is not None else "-",
        _ratio(row),
        target.text(unit) if target else "",
        "" if met is None else ("yes" if met else "NO"),
    )


def _value(measure: Measure, unit: str) -> str:
    stats = measure.stats
    if stats is None:
        return str(measure.missing)
    shown = f"{_num(stats.median)} {unit}" if unit != "count" else _num(stats.median)
    if stats.n > 1 and stats.q1 != stats.q3:
        shown += f" [{_num(stats.q1)}-{_num(stats.q3)}]"
    return shown


def _ratio(row: Row) -> str:
    ratio = row.ratio()
    if ratio is None:
        return ""
    value, lower_bound = ratio
    return f"{'> ' if lower_bound else ''}{_num(value)}x"


def _notes(rows: Sequence[Row]) -> list[str]:
    notes = []
    for row in rows:
        parts = [f"tracker: {row.ours.note}" if row.ours.note else ""]
        if row.mlflow is not None and row.mlflow.note:
            parts.append(f"MLflow: {row.mlflow.note}")
        text = "; ".join(part for part in parts if part)
        if text:
            notes.append(f"- {row.figure.title}: {text}")
    return notes


def _num(value: float) -> str:
    """Three significant digits at most, thousands separated, no exponent."""
    magnitude = abs(value)
    if magnitude >= 100 or value == int(value):
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / (1 << 20), 1)
    except OSError:
        pass
    return None


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None
