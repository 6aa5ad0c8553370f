"""The run descriptor's schema, and reading one safely: what export_run writes, import_run takes.

A descriptor is a file anyone may have written, so nothing in it is trusted. It must be a regular
file of at most :data:`MAX_BYTES` of UTF-8; YAML may not use aliases (tracker never writes any, and
expanding them is how a small file becomes gigabytes) and has at most :data:`MAX_YAML_NODES`
nodes. Then every section, key, type, length, count and range is checked against :data:`SECTIONS`
before anything reaches SQL, and values come back ready to bind: timestamps as aware datetimes,
JSON columns as JSON text, non-finite metric values as floats.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
import stat
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from tracker import _ids, models, values
from tracker.errors import DescriptorError, first_line
from tracker.redaction import REDACTED

FORMAT = "tracker-run"
#: 2: `notebooks` and `tags` sections; 3: a tag without a value (its removal). A file is written
#: at the lowest version that holds it, so an older tracker reads every file it can.
FORMAT_VERSION = 3
MAX_BYTES = 64 * 1024 * 1024
MAX_YAML_NODES = 1_000_000  # ~1 s to count and ~3 s to load with libyaml; about 0.5 GB at most
ROLES = ("input", "output", "notebook")
#: The largest stored notebook a descriptor carries (bigger ones are referred to by hash only)
MAX_NOTEBOOK_BYTES = 16 * 1024 * 1024
# The kinds a param is stored with: tracker.values.normalize_param's, and the redacted marker's.
PARAM_KINDS = ("none", "bool", "enum", "int", "bigint", "float", "str", "datetime", "date",
               "time", "timedelta", "decimal", "path", "bytes", "dict", "tuple", "list", "set",
               "ndarray", "series", "object", REDACTED)

_SHORT = values.MAX_NAME  # names, keys, hosts, hashes...
_LONG = values.MAX_TEXT  # notes, errors, cell sources, JSON values
_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
_BLOB = re.compile(r"[a-z0-9_]{1,32}-[0-9a-f]{1,128}")  # a stored file's name: no path in it

Check = Callable[[Any, str], Any]  # (value, field name) -> the value to store, or raise


class Field(NamedTuple):
    check: Check
    required: bool = False


class Section(NamedTuple):
    fields: dict[str, Field]
    max_rows: int  # 1 for the run itself, which is one mapping rather than a list


def _error(field: str, expected: str, value: Any) -> DescriptorError:
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return DescriptorError(f"{field} must be {expected}, not {shown}", field=field)


def _text(limit: int = _SHORT, *, pattern: re.Pattern[str] | None = None,
          choices: tuple[str, ...] = ()) -> Check:
    def check(value: Any, field: str) -> str:
        if not isinstance(value, str):
            raise _error(field, "text", value)
        if len(value) > limit:
            raise DescriptorError(f"{field} is {len(value)} characters long; at most {limit} "
                                  "are allowed", field=field)
        if choices and value not in choices:
            raise _error(field, f"one of {', '.join(choices)}", value)
        if pattern is not None and not pattern.fullmatch(value):
            raise _error(field, f"text matching {pattern.pattern}", value)
        _utf8(value, field)
        return value
    return check


def _utf8(text: str, field: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise DescriptorError(f"{field} holds a lone surrogate at position {exc.start}, which "
                              "no text can store", field=field) from None


def _run_id(value: Any, field: str) -> str:
    text = _text(64)(value, field)
    if not _ids.is_run_id(text):
        raise _error(field, "a run id (16 characters of 0-9 and a-z without i, l, o, u)", value)
    return text


def _integer(low: int, high: int) -> Check:
    def check(value: Any, field: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise _error(field, f"an integer from {low} to {high}", value)
        return value
    return check


def _number(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or \
            not math.isfinite(value):
        raise _error(field, "a finite number", value)
    return float(value)


def _metric_value(value: Any, field: str) -> float:
    """Any float: NaN and infinities are written as the text JSON lacks them for."""
    if isinstance(value, str) and value in values.NON_FINITE:
        return values.NON_FINITE[value]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _error(field, f"a number or one of {', '.join(values.NON_FINITE)}", value)
    return float(value)


def _boolean(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise _error(field, "true or false", value)
    return value


def _timestamp(value: Any, field: str) -> dt.datetime:
    """An ISO 8601 time (a YAML timestamp too); without a zone it is UTC, as YAML's are."""
    if isinstance(value, str) and len(value) <= 64:
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            pass
    if not isinstance(value, dt.datetime):
        raise _error(field, "an ISO 8601 time such as 2024-05-01T12:00:00+00:00", value)
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def _json(*, mapping: bool) -> Check:
    """JSON text (or, for a mapping, the mapping itself), returned as JSON text. A mapping
    (a run's params or metrics, all of them) is as long as the file lets it be."""
    def check(value: Any, field: str) -> str:
        try:
            if mapping and isinstance(value, Mapping):
                value = json.dumps(value, ensure_ascii=False)  # YAML dates, bytes: TypeError
            text = _text(MAX_BYTES if mapping else _LONG)(value, field)
            parsed = json.loads(text)
            _utf8(json.dumps(parsed, ensure_ascii=False), field)  # "\ud800" escapes too
        except DescriptorError:
            raise
        except (TypeError, ValueError, RecursionError):
            raise _error(field, "JSON text", value) from None
        if mapping and not isinstance(parsed, dict):
            raise _error(field, "a JSON object", value)
        return text
    return check


def _labels(value: Any, field: str) -> list[str]:
    if not isinstance(value, list) or len(value) > values.MAX_LABELS:
        raise _error(field, f"a list of at most {values.MAX_LABELS} labels", value)
    return [_text(values.MAX_LABEL)(label, f"{field}[{i}]") for i, label in enumerate(value)]


def _fields(*required: tuple[str, Check], **optional: Check) -> dict[str, Field]:
    return {**{name: Field(check, True) for name, check in required},
            **{name: Field(check) for name, check in optional.items()}}


# Each section's keys are the catalog columns tracker exports (see tracker.storage.schema); the
# run's id comes from the run, never from a row.
SECTIONS: dict[str, Section] = {
    "run": Section(_fields(
        ("id", _run_id), ("status", _text(choices=models.STATUSES)),
        ("started_at", _timestamp),
        name=_text(), project=_text(), notebook=_text(), notebook_name=_text(),
        notebook_title=_text(), notebook_hash=_text(), ended_at=_timestamp, duration=_number,
        host=_text(), pid=_integer(*_INT32), process_start=_number, username=_text(),
        heartbeat_at=_timestamp, labels=_labels, notes=_text(_LONG), parent_id=_run_id,
        deleted_at=_timestamp, environment_id=_text(pattern=_ID), error=_text(_LONG),
        params=_json(mapping=True), metrics=_json(mapping=True)), max_rows=1),
    "params": Section(_fields(
        ("key", _text()), ("kind", _text(choices=PARAM_KINDS)), ("logged_at", _timestamp),
        value=_json(mapping=False)), max_rows=1_000_000),
    "metrics": Section(_fields(
        ("key", _text()), ("logged_at", _timestamp),
        value=_metric_value, step=_integer(*_INT64)), max_rows=5_000_000),
    "artifacts": Section(_fields(
        ("id", _run_id), ("key", _text()), ("version", _integer(1, _INT32[1])),
        ("uri", _text()), ("created_at", _timestamp), ("role", _text(choices=ROLES)),
        ("linked_at", _timestamp),
        size=_integer(0, _INT64[1]), mtime=_timestamp, hash=_text(200),
        producer_run_id=_run_id, blob=_text(200, pattern=_BLOB),
        via=_text(choices=tuple(models.VIAS)),
        kept=_text(choices=("kept", "changed", "unreadable", "not kept"))), max_rows=100_000),
    "cells": Section(_fields(
        ("seq", _integer(0, _INT32[1])),
        execution_count=_integer(*_INT32), cell_id=_text(), source_hash=_text(200),
        source=_text(_LONG), started_at=_timestamp, duration=_number, success=_boolean,
        error_type=_text(), error_message=_text(_LONG)), max_rows=1_000_000),
    # No value: the tag was removed at set_at, which an older value set elsewhere must not undo.
    "tags": Section(_fields(
        ("key", _text(250)), ("set_at", _timestamp), value=_text(_LONG)),
        max_rows=100_000),
    "environment": Section(_fields(
        ("id", _text(pattern=_ID)), ("data", _json(mapping=True)),
        ("created_at", _timestamp)), max_rows=1),
    # The notebooks stored with the run, by the blob name its `notebook` artifacts give: the
    # .ipynb text, checked on import against that name's hash (tracker.exchange).
    "notebooks": Section(_fields(
        ("blob", _text(200, pattern=_BLOB)), ("content", _text(MAX_NOTEBOOK_BYTES))),
        max_rows=100),
}


def version_for(tags: list[dict[str, Any]]) -> int:
    """The version a descriptor with these tag rows is written at: 3 only when one is a
    removal (no value), which older trackers would refuse."""
    return 3 if any(row.get("value") is None for row in tags) else 2


# -- reading ----------------------------------------------------------------------------------


def load(path: Path) -> dict[str, Any]:
    """The validated descriptor in ``path``; DescriptorError says what is wrong and where."""
    try:
        return validate(parse(read_text(path), yaml=path.suffix.lower() in (".yaml", ".yml")))
    except DescriptorError as exc:
        where = f"{path}:" if exc.field else str(path)  # "a.yaml: run.id ..." / "a.yaml is ..."
        raise DescriptorError(f"{where} {exc}", field=exc.field) from None


def read_text(path: Path) -> str:
    """The file's text, refusing before it is read anything but a regular file of at most
    MAX_BYTES of UTF-8 (a FIFO would block the reader forever, /dev/zero never end)."""
    try:
        # O_NONBLOCK: opening a FIFO with no writer returns at once, then fstat refuses it.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise DescriptorError(f"cannot read the file ({exc.strerror}); give the path of a "
                              "descriptor written by export_run") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise DescriptorError("is not a regular file; give the path of a descriptor "
                              "written by export_run")
    with os.fdopen(fd, "rb") as file:
        data = file.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise DescriptorError(f"is larger than {MAX_BYTES // 2**20} MiB, the most a descriptor "
                              "may be")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DescriptorError(f"is not UTF-8 text (byte {exc.start}); descriptors are written "
                              "in UTF-8") from None


def parse(text: str, *, yaml: bool) -> Any:
    """The document in ``text``: JSON, or YAML without aliases and with a bounded node count."""
    try:
        if not yaml:
            return json.loads(text)
        return _load_yaml(text)
    except DescriptorError:
        raise
    except (ValueError, RecursionError, _yaml_error()) as exc:
        reason = first_line(str(exc), type(exc).__name__)
        raise DescriptorError(f"is not a tracker run descriptor ({reason})") from None


def _yaml_error() -> type[Exception]:
    import yaml

    return yaml.YAMLError


def _load_yaml(text: str) -> Any:
    """YAML through libyaml when PyYAML has it (~10x faster than the pure-Python parser), after
    a pass over its events that refuses aliases and counts nodes before anything is built."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    nodes = 0
    for event in yaml.parse(text, Loader=loader):
        if isinstance(event, yaml.AliasEvent):
            raise DescriptorError("uses a YAML alias (*name); descriptors have none, and "
                                  "tracker refuses them so a small file cannot expand into "
                                  "gigabytes")
        if isinstance(event, yaml.NodeEvent):
            nodes += 1
            if nodes > MAX_YAML_NODES:
                raise DescriptorError(f"has more than {MAX_YAML_NODES} YAML nodes; export "
                                      "large runs as .json")
    return yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader, aliases refused above


# -- validating -------------------------------------------------------------------------------


def validate(data: Any) -> dict[str, Any]:
    """The descriptor with every section checked and its values ready to bind."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise DescriptorError(f"format is not {FORMAT!r}: this is not a tracker run descriptor",
                              field="format")
    version = data.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise _error("version", "a positive integer", version)
    if version > FORMAT_VERSION:
        raise DescriptorError(f"version {version} was written by a newer tracker (this one "
                              f"reads version {FORMAT_VERSION}); upgrade tracker",
                              field="version")
    for key in data:
        if key not in ("format", "version", *SECTIONS):
            name = str(key)[:60]
            raise DescriptorError(f"{name} is not a section of a descriptor (those are "
                                  f"{', '.join(SECTIONS)})", field=name)
    checked: dict[str, Any] = {"run": _row(SECTIONS["run"], data.get("run"), "run")}
    for name, section in SECTIONS.items():
        if name != "run":
            checked[name] = _rows(section, data.get(name, []), name)
    return checked


def _rows(section: Section, rows: Any, name: str) -> list[dict[str, Any]]:
    if not isinstance(rows, list):
        raise _error(name, "a list", rows)
    if len(rows) > section.max_rows:
        raise DescriptorError(f"{name} has {len(rows)} rows; at most {section.max_rows} are "
                              "allowed", field=name)
    return [_row(section, row, f"{name}[{i}]") for i, row in enumerate(rows)]


def _row(section: Section, row: Any, name: str) -> dict[str, Any]:
    if not isinstance(row, dict):
        raise _error(name, "a mapping", row)
    for key in row:
        if key not in section.fields:
            raise DescriptorError(f"{name} has an unknown key {str(key)[:60]!r}",
                                  field=f"{name}.{str(key)[:60]}")
    checked = {}
    for key, spec in section.fields.items():
        value, field = row.get(key), f"{name}.{key}"
        if value is None and spec.required:
            raise DescriptorError(f"{field} is required", field=field)
        checked[key] = None if value is None else spec.check(value, field)
    return checked
