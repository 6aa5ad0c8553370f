"""Turning whatever a user logs into values the catalog stores faithfully.

A param is stored as JSON plus the name of its kind (``int``, ``float``, ``datetime``, ``path``,
...), so that it reads back as what was logged and numbers still compare as numbers. Nested dicts
become dotted keys (``{"optimizer": {"lr": 0.1}}`` -> ``optimizer.lr``). Objects with no faithful
JSON form are stored as their type and a bounded repr, with one warning. Nothing here raises into
user code: the callers turn a failure into a warning.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import enum
import math
import os
from collections.abc import Iterator, Mapping
from typing import Any

REPR_LIMIT = 1000  # characters of repr kept for objects stored by description
ARRAY_LIMIT = 10_000  # elements of an array or sequence stored in full

_PLAIN = (str, int, bool, type(None))
NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


class Unfaithful(Exception):
    """Raised inside this module when a value is stored by description; carries the note."""


def encode_float(value: float) -> float | str:
    """JSON has no NaN or infinities: they are stored as the strings JavaScript uses."""
    if math.isfinite(value):
        return value
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def decode(value: Any, kind: str | None) -> Any:
    """The Python value of a stored param of ``kind``."""
    if kind == "float" and isinstance(value, str):
        return NON_FINITE.get(value, value)
    if kind == "float" and isinstance(value, int):
        return float(value)
    return value


def flatten_params(params: Mapping[Any, Any], *, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Yield ``(dotted_key, value)`` for every leaf of possibly nested ``params``."""
    for key, value in params.items():
        full = f"{prefix}{key_text(key)}"
        if isinstance(value, Mapping) and value:
            yield from flatten_params(value, prefix=full + ".")
        else:
            yield full, value


def key_text(key: Any) -> str:
    """Keys are text; anything else is stored as its ``str``; an empty key is ``"_"``."""
    text = key if isinstance(key, str) else str(key)
    return text or "_"


def normalize_param(value: Any) -> tuple[Any, str, str | None]:
    """``(json_value, kind, note)``; ``note`` says why the value was stored by description."""
    try:
        json_value, kind = _normalize(value, depth=0)
        return json_value, kind, None
    except Unfaithful as why:
        return _described(value), "object", str(why)
    except Exception as exc:  # a hostile __repr__/__iter__: describe, never raise
        return {"type": _type_name(value), "repr": "<unrepresentable>"}, "object", repr(exc)


def _normalize(value: Any, *, depth: int) -> tuple[Any, str]:
    if type(value) in _PLAIN:
        return value, type(value).__name__ if value is not None else "none"
    if isinstance(value, bool):
        return bool(value), "bool"
    if isinstance(value, enum.Enum):
        return _normalize(value.value, depth=depth)[0], "enum"
    if isinstance(value, int):
        return int(value), "int"
    if isinstance(value, float):
        return encode_float(float(value)), "float"
    if isinstance(value, str):
        return str(value), "str"
    if depth > 20:
        raise Unfaithful("nested more than 20 levels deep")
    converted = _convert_known(value, depth=depth)
    if converted is not None:
        return converted
    raise Unfaithful(f"{_type_name(value)} has no faithful JSON form")


def _convert_known(value: Any, *, depth: int) -> tuple[Any, str] | None:
    if isinstance(value, _dt.datetime):
        return value.isoformat(), "datetime"
    if isinstance(value, _dt.date):
        return value.isoformat(), "date"
    if isinstance(value, _dt.time):
        return value.isoformat(), "time"
    if isinstance(value, _dt.timedelta):
        return value.total_seconds(), "timedelta"
    if isinstance(value, decimal.Decimal):
        return str(value), "decimal"
    if isinstance(value, os.PathLike):
        path = os.fspath(value)
        return (path if isinstance(path, str) else os.fsdecode(path)), "path"
    if isinstance(value, bytes | bytearray):
        return _bounded(repr(bytes(value))), "bytes"
    if isinstance(value, Mapping):
        return {key_text(k): _normalize(v, depth=depth + 1)[0] for k, v in value.items()}, "dict"
    if isinstance(value, tuple):
        return _sequence(value, depth=depth), "tuple"
    if isinstance(value, list):
        return _sequence(value, depth=depth), "list"
    if isinstance(value, set | frozenset):
        return _sequence(sorted(value, key=repr), depth=depth), "set"
    return _convert_library(value, depth=depth)


def _convert_library(value: Any, *, depth: int) -> tuple[Any, str] | None:
    """numpy and pandas values, recognised without importing either library."""
    module = type(value).__module__.split(".")[0]
    if module == "numpy":
        if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):
            item = value.item()
            if isinstance(item, _PLAIN + (float,)):
                return _normalize(item, depth=depth)
        if hasattr(value, "tolist") and getattr(value, "size", ARRAY_LIMIT + 1) <= ARRAY_LIMIT:
            return _sequence(value.tolist(), depth=depth), "ndarray"
        raise Unfaithful(f"array of shape {getattr(value, 'shape', '?')} is too large to store")
    if module == "pandas":
        if type(value).__name__ == "Timestamp":
            return value.isoformat(), "datetime"
        if type(value).__name__ == "Timedelta":
            return value.total_seconds(), "timedelta"
        if type(value).__name__ == "Series" and len(value) <= ARRAY_LIMIT:
            return _sequence(value.tolist(), depth=depth), "series"
        raise Unfaithful(f"{_type_name(value)} is stored by description")
    if module == "torch" and hasattr(value, "numel") and value.numel() == 1:
        return _normalize(value.item(), depth=depth)
    return None


def _sequence(items: Any, *, depth: int) -> list[Any]:
    if len(items) > ARRAY_LIMIT:
        raise Unfaithful(f"sequence of {len(items)} items is too long to store")
    return [_normalize(item, depth=depth + 1)[0] for item in items]


def _described(value: Any) -> dict[str, str]:
    try:
        text = repr(value)
    except Exception:
        text = "<unrepresentable>"
    return {"type": _type_name(value), "repr": _bounded(text)}


def _bounded(text: str) -> str:
    return text if len(text) <= REPR_LIMIT else text[:REPR_LIMIT] + f"... ({len(text)} chars)"


def _type_name(value: Any) -> str:
    kind = type(value)
    return f"{kind.__module__}.{kind.__qualname__}"


def normalize_metric(value: Any) -> float:
    """A metric as a float; raises ``TypeError``/``ValueError`` for non-numbers."""
    if type(value) is float:
        return value
    if isinstance(value, bool | int | float | decimal.Decimal):
        return float(value)
    item = getattr(value, "item", None)  # numpy/torch scalars and 1-element arrays
    if callable(item):
        return float(item())
    if isinstance(value, str):
        return float(value)
    raise TypeError(f"metric values are numbers; got {_type_name(value)}")
