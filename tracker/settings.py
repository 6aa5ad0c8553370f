"""The settings a notebook gives its runs in ``metadata.tracker``, checked before use.

People edit notebook metadata by hand (JupyterLab's metadata editor takes any JSON), so every
field may be of the wrong type, empty, huge or junk: each is checked on its own, and one that
cannot be used keeps its default and is reported in ``problems``, never raised, so the run is
still recorded.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["TrackerSettings", "keep_field", "tracker_settings"]

_MAX_NAME = 200  # characters of a project, name or label: shown in tables, part of run keys
_MAX_LABELS = 100
_MAX_PATH = 4096  # characters of a catalog path or a capture pattern
_MAX_PATTERNS = 1000
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


@dataclass(frozen=True)
class TrackerSettings:
    """``metadata.tracker``, checked field by field: a field that is unusable keeps its default
    and is explained in ``problems``, which the extension turns into one warning."""

    project: str | None = None
    name: str | None = None
    labels: tuple[str, ...] | None = None
    catalog: str | None = None
    capture_enabled: bool = True
    capture_include: tuple[str, ...] = ()
    capture_exclude: tuple[str, ...] = ()
    redact: bool | dict[str, Any] | None = None  # see tracker.redaction.rules_from
    keep: dict[str, Any] | None = None  # see tracker.keeping.policy_from
    #: outputs and metrics ``tracker reproduce`` compares but does not hold against the run
    reproduce_ignore: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()


class _Unusable(Exception):
    """Why a field of ``metadata.tracker`` cannot be used."""


def _json_type(value: Any) -> str:
    kinds = {bool: "true/false", dict: "an object", list: "a list", str: "text"}
    kind = kinds.get(type(value), "a number" if isinstance(value, int | float) else "null")
    shown = json.dumps(value, default=repr)
    return f"{kind} ({shown if len(shown) <= 40 else shown[:40] + '…'})"


def _text_field(value: Any, *, limit: int = _MAX_NAME) -> str:
    if not isinstance(value, str):
        raise _Unusable(f"must be text, not {_json_type(value)}")
    if not value.strip():
        raise _Unusable("is empty")
    if len(value) > limit:
        raise _Unusable(f"is {len(value):,} characters long (at most {limit:,})")
    if _UNPRINTABLE.search(value):
        raise _Unusable("holds control characters")
    return value.strip()


def _texts_field(value: Any, *, limit: int, most: int) -> tuple[str, ...]:
    """A list of texts; one text is a list of one."""
    if isinstance(value, str):
        return (_text_field(value, limit=limit),)
    if not isinstance(value, list):
        raise _Unusable(f"must be a list of text, not {_json_type(value)}")
    if len(value) > most:
        raise _Unusable(f"has {len(value):,} entries (at most {most:,})")
    return tuple(_entry(index, item, limit) for index, item in enumerate(value))


def _entry(index: int, value: Any, limit: int) -> str:
    try:
        return _text_field(value, limit=limit)
    except _Unusable as why:
        raise _Unusable(f"entry {index} {why}") from None


def _labels_field(value: Any) -> tuple[str, ...]:
    return _texts_field(value, limit=_MAX_NAME, most=_MAX_LABELS)


def _patterns_field(value: Any) -> tuple[str, ...]:
    return _texts_field(value, limit=_MAX_PATH, most=_MAX_PATTERNS)


def _catalog_field(value: Any) -> str:
    path = _text_field(value, limit=_MAX_PATH)
    if _URL.match(path):
        from tracker.storage.pg_url import redacted  # a password in it is never shown

        raise _Unusable(f"{redacted(path)[:60]!r} is a server: team catalogs on a server are "
                        "not supported yet")
    # A notebook someone else wrote must not make tracker create a file just anywhere
    # (``~/.ipython/profile_default/startup/00-x.py`` would run at every start).
    if not path.lower().endswith(".duckdb"):
        raise _Unusable(f"{path[:60]!r} is not a catalog file name; it must end in .duckdb")
    return path


def _flag_field(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Unusable(f"must be true or false, not {_json_type(value)}")
    return value


def _redact_field(value: Any) -> bool | dict[str, Any]:
    """``true``/``false``, or ``{"enabled": bool, "keys": [regex...], "values": [regex...]}``."""
    if isinstance(value, bool):
        return value
    if not isinstance(value, dict):
        raise _Unusable(f"must be true, false or an object, not {_json_type(value)}")
    chosen: dict[str, Any] = {}
    if value.get("enabled") is not None:
        chosen["enabled"] = _flag_field(value["enabled"])
    for name in ("keys", "values"):
        if value.get(name) is not None:
            chosen[name] = list(_patterns_field(value[name]))
    return chosen


_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?\s*", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def _size_field(value: Any) -> int:
    """Bytes: a whole number, or text such as ``"100MB"`` or ``"1 GiB"`` (powers of 1024)."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise _Unusable(f"must be a size such as 100000000 or \"100MB\", not {_json_type(value)}")
    if isinstance(value, int):
        size = value
    else:
        found = _SIZE.fullmatch(value)
        if found is None:
            raise _Unusable(f"{value[:40]!r} is not a size such as \"100MB\" or \"1GiB\"")
        size = int(float(found[1]) * _UNITS[(found[2] or "")[:1].lower()])
    if size < 0:
        raise _Unusable("must not be negative")
    return size


_KEEP_FIELDS: dict[str, Callable[[Any], Any]] = {
    "enabled": _flag_field, "output_max": _size_field, "input_max": _size_field,
    "run_max": _size_field, "exclude": _patterns_field}


def _keep_field(value: Any) -> dict[str, Any]:
    """``true``/``false``, or ``{"enabled", "output_max", "input_max", "run_max", "exclude"}``:
    which file contents runs keep (:mod:`tracker.keeping`)."""
    if isinstance(value, bool):
        return {"enabled": value}
    if not isinstance(value, dict):
        raise _Unusable(f"must be true, false or an object, not {_json_type(value)}")
    unknown = sorted(set(value) - set(_KEEP_FIELDS))
    if unknown:
        raise _Unusable(f"has unknown fields {', '.join(map(repr, unknown[:5]))} (known: "
                        f"{', '.join(_KEEP_FIELDS)})")
    chosen: dict[str, Any] = {}
    for name, check in _KEEP_FIELDS.items():
        if value.get(name) is not None:
            try:
                chosen[name] = check(value[name])
            except _Unusable as why:
                raise _Unusable(f"field {name!r} {why}") from None
    return chosen


def keep_field(value: Any) -> dict[str, Any]:
    """The keep policy fields of ``value`` (as in ``metadata.tracker.keep``), checked;
    ValueError saying why for anything unusable (``$TRACKER_KEEP`` uses this)."""
    try:
        return _keep_field(value)
    except _Unusable as why:
        raise ValueError(str(why)) from None


# (setting, where it is in metadata.tracker, its check, what is used instead when unusable)
_FIELDS: tuple[tuple[str, tuple[str, ...], Callable[[Any], Any], str], ...] = (
    ("project", ("project",), _text_field, "the default project"),
    ("name", ("name",), _text_field, "the notebook's file name"),
    ("labels", ("labels",), _labels_field, "no labels"),
    ("catalog", ("catalog",), _catalog_field, "the default catalog"),
    ("capture_enabled", ("capture", "enabled"), _flag_field, "capture on"),
    ("capture_include", ("capture", "include"), _patterns_field, "no extra patterns"),
    ("capture_exclude", ("capture", "exclude"), _patterns_field, "no extra patterns"),
    ("redact", ("redact",), _redact_field, "the default redaction rules"),
    ("keep", ("keep",), _keep_field, "the default keep policy"),
    ("reproduce_ignore", ("reproduce", "ignore"), _patterns_field, "no patterns"),
)


def tracker_settings(metadata: Any) -> TrackerSettings:
    """Check ``metadata.tracker`` (any JSON value: people edit it by hand) and keep what is
    usable; never raises."""
    if metadata is None:
        return TrackerSettings()
    if not isinstance(metadata, dict):
        return TrackerSettings(problems=(
            f"metadata.tracker must be an object, not {_json_type(metadata)}; it is ignored",))
    problems = []
    for group in ("capture", "reproduce"):
        value = metadata.get(group)
        if value is not None and not isinstance(value, dict):
            problems.append(f"metadata.tracker.{group} must be an object, not "
                            f"{_json_type(value)}; using the defaults")
    chosen: dict[str, Any] = {}
    for setting, path, check, instead in _FIELDS:
        value = _object(metadata.get(path[0]) if len(path) > 1 else metadata).get(path[-1])
        if value is None:  # missing, or null: the default, as documented
            continue
        try:
            chosen[setting] = check(value)
        except _Unusable as why:
            problems.append(f"metadata.tracker.{'.'.join(path)} {why}; using {instead}")
    return TrackerSettings(**chosen, problems=tuple(problems))


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
