"""A run as terminal text, for ``tracker show``: its attributes, then a section each for params,
tags, metrics, inputs, outputs, environment and cells."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tracker.terminal_text import GAP, cell_text, duration_text, local_time, pairs, size_text

if TYPE_CHECKING:
    import pandas as pd

    from tracker.models import RunInfo


def run_text(info: RunInfo, lineage: pd.DataFrame | None) -> list[str]:
    """The lines ``tracker show`` prints; ``lineage`` (the run's, or None) names the runs
    each input came from and each output went to."""
    links = [] if lineage is None else lineage.to_dict("records")
    sections = [
        ("params", _param_lines(info)),
        ("tags", pairs(sorted(info.tags.items()))),
        ("metrics (latest)", pairs((key, cell_text(value))
                                    for key, value in sorted(info.metrics.items()))),
        ("inputs", _artifact_lines(info.inputs, links, direction="upstream")),
        ("outputs", _artifact_lines(info.outputs, links, direction="downstream")),
        ("environment", [_environment_text(info.environment)]),
        ("cells", _cell_lines(info.cells)),
    ]
    lines = pairs(_attributes(info), indent="")
    for title, body in sections:
        if body:
            lines += ["", title, *body]
    return lines


def _attributes(info: RunInfo) -> list[tuple[str, str]]:
    notebook = info.notebook or info.notebook_name
    if notebook and info.notebook_title:
        notebook = f"{notebook} ({info.notebook_title})"
    process = info.host and f"{info.host}, pid {info.pid}, user {info.user}"
    deleted = info.deleted_at and (f"{local_time(info.deleted_at, seconds=True)} "
                                   f"(restore with: tracker restore {info.id})")
    rows = [
        ("id", info.id), ("name", info.name), ("key", info.key), ("project", info.project),
        ("status", info.status), ("error", info.error),
        ("started", local_time(info.started_at, seconds=True)),
        ("ended", info.ended_at and local_time(info.ended_at, seconds=True)),
        ("duration", info.duration is not None and duration_text(info.duration)),
        ("notebook", notebook), ("process", process),
        ("labels", ", ".join(info.labels)), ("notes", info.notes),
        ("parent", info.parent_id), ("deleted", deleted),
    ]
    return [(name, str(value)) for name, value in rows if value]


def _param_lines(info: RunInfo) -> list[str]:
    rows = []
    for key, value in sorted(info.params.items()):
        text = cell_text(value)
        history = [cell_text(v) for _, v in info.param_history.get(key, [])]
        if len(set(history)) > 1:
            text += f"  (changed: {' -> '.join(history)})"
        rows.append((key, text))
    return pairs(rows)


def _artifact_lines(artifacts: list[dict[str, Any]], links: list[dict[str, Any]], *,
                    direction: str) -> list[str]:
    """One line per file: version, size, how it was seen, and the runs upstream or downstream
    of it."""
    lines = []
    for artifact in artifacts:
        version = f"v{artifact['version']}" + ("" if artifact.get("latest") else ", superseded")
        related = [f"{link['run_name']} ({link['run_id']})" for link in links
                   if link["direction"] == direction and link["uri"] == artifact["uri"]
                   and link["version"] == artifact["version"]]
        label = "from" if direction == "upstream" else "read by"
        via = artifact.get("via")
        parts = [artifact["uri"], version, size_text(artifact.get("size")),
                 f"via {via}" if via else ""]
        if related:
            parts.append(f"{label} {', '.join(related)}")
        lines.append(GAP + GAP.join(part for part in parts if part))
    return lines


def _environment_text(env: dict[str, Any] | None) -> str:
    if not env:
        return f"{GAP}not recorded"
    parts = [f"python {env.get('python', '?')}", str(env.get("platform", ""))]
    git = env.get("git")
    if git:
        branch = f" on {git['branch']}" if git.get("branch") else ""
        dirty = " (dirty)" if git.get("dirty") else ""
        parts.append(f"git {str(git.get('commit') or '?')[:10]}{branch}{dirty}")
    parts.append(f"{len(env.get('packages') or {})} packages")
    return GAP + "; ".join(part for part in parts if part)


def _cell_lines(cells: list[dict[str, Any]]) -> list[str]:
    if not cells:
        return []
    failed = [cell for cell in cells if cell.get("success") is False]
    lines = [f"{GAP}{len(cells)} executed, {len(failed)} failed"]
    for cell in failed:
        number = cell.get("execution_count") or cell.get("seq")
        message = (cell.get("error_message") or "").strip().splitlines()
        error = ": ".join(part for part in (cell.get("error_type"), message[:1] and message[0])
                          if part)
        lines.append(f"{GAP}[{number}] {error or 'failed'}")
    return lines
