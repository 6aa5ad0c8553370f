"""Turning whatever a user logs into values the catalog stores faithfully.

A param is stored as JSON plus the name of its kind (``int``, ``float``, ``datetime``, ``path``,
...), so that it reads back as what was logged and numbers still compare as numbers. Nested dicts
become dotted keys (``{"optimizer": {"lr": 0.1}}`` -> ``optimizer.lr``). Objects with no faithful
JSON form are stored as their type and a bounded repr, with one warning. Text that is not valid
Unicode (lone surrogates, which no catalog can store) is kept backslash-escaped (``"\\ud800"``),
and an integer too long for decimal text is kept as hex text of kind ``bigint``. Nothing here
raises into user code: the callers turn a failure into a warning.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import enum
import json
import math
import os
import sys
from collections.abc import Iterator, Mapping
from typing import Any

REPR_LIMIT = 1000  # characters of repr kept for objects stored by description
# The longest texts a run records (characters), so that every recorded run can be exported
# and pushed: tracker.descriptor checks an imported run against the same limits.
MAX_NAME = 4096  # a run's name and project, a param or metric key
MAX_LABEL = 1000  # one label; a run has at most MAX_LABELS of them
MAX_LABELS = 1000
MAX_TEXT = 16 * 1024 * 1024  # notes, a tag's value, a param's text
ARRAY_LIMIT = 10_000  # elements of an array or sequence stored in full

_PLAIN = (str, int, bool, type(None))
INT64 = 2**63  # metric steps are BIGINT: -INT64 <= step < INT64
_max_digits = getattr(sys, "get_int_max_str_digits", lambda: 0)  # Python 3.11+ has a limit
ESCAPED_NOTE = ("text that is not valid Unicode (a lone surrogate), and a key's control "
                "characters, are stored backslash-escaped")
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


def json_text(value: Any) -> str:
    """``json.dumps(value)``, character for character; a plain value (text, a whole number, a
    finite float, a bool, None) without the encoder's set-up, ~5x faster: each logged param is
    written as JSON."""
    kind = type(value)
    if kind is float:
        return float.__repr__(value) if math.isfinite(value) else json.dumps(value)
    scalar = _JSON_SCALARS.get(kind)
    return scalar(value) if scalar is not None else json.dumps(value)


_JSON_SCALARS: dict[type[Any], Any] = {
    str: json.encoder.encode_basestring_ascii, int: int.__repr__,
    bool: lambda flag: "true" if flag else "false", type(None): lambda _: "null"}


def decode(value: Any, kind: str | None) -> Any:
    """The Python value of a stored param of ``kind``; a bigint whose text is not hex (from an
    imported descriptor, say) stays text, so that one bad value never makes a run unreadable."""
    if kind == "float" and isinstance(value, str):
        return NON_FINITE.get(value, value)
    if kind == "float" and isinstance(value, int):
        return float(value)
    if kind == "bigint" and isinstance(value, str):
        try:
            return int(value, 16)
        except ValueError:
            return value
    return value


def valid_text(text: str) -> bool:
    """Whether ``text`` can be stored as is (UTF-8 encodable: no lone surrogates)."""
    if text.isascii():  # the common case, and cheap
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def clean_text(text: str) -> str:
    """``text``, with lone surrogates backslash-escaped so that any catalog can store it."""
    if valid_text(text):
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def text(value: Any) -> str:
    """``str(value)`` made storable; an object whose ``str`` raises is named by its type."""
    try:
        raw = value if isinstance(value, str) else str(value)
    except Exception:
        return f"<unprintable {_type_name(value)}>"
    return clean_text(raw)


def cleaned(value: Any) -> Any:
    """``value`` (JSON-like: dicts, lists, text) with every text in it made storable."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {text(k): cleaned(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [cleaned(item) for item in value]
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
    """Keys are text; anything else is stored as its ``str``; an empty key is ``"_"``. Keys name
    columns, so characters that do not print (NUL, newlines, lone surrogates) are escaped."""
    name = text(key) or "_"
    if name.isprintable():
        return name
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in name)


def normalize_param(value: Any) -> tuple[Any, str, str | None]:
    """``(json_value, kind, note)``; ``note`` says why the value was not stored as is."""
    notes: list[str] = []
    try:
        json_value, kind = _normalize(value, depth=0, notes=notes)
        return json_value, kind, notes[0] if notes else None
    except Unfaithful as why:
        return _described(value), "object", str(why)
    except Exception as exc:  # a hostile __repr__/__iter__: describe, never raise
        return {"type": _type_name(value), "repr": "<unrepresentable>"}, "object", repr(exc)


def _normalize(value: Any, *, depth: int, notes: list[str]) -> tuple[Any, str]:
    if value is None:
        return None, "none"
    if isinstance(value, bool):
        return bool(value), "bool"
    if isinstance(value, enum.Enum):
        return _normalize(value.value, depth=depth, notes=notes)[0], "enum"
    if isinstance(value, int):
        return _integer(int(value), depth=depth)
    if isinstance(value, float):
        return encode_float(float(value)), "float"
    if isinstance(value, str):
        if len(value) > MAX_TEXT:
            raise Unfaithful(f"text of {len(value):,} characters is longer than the "
                             f"{MAX_TEXT:,} a param holds")
        if not valid_text(value):
            notes.append(ESCAPED_NOTE)
        return clean_text(str(value)), "str"
    if depth > 20:
        raise Unfaithful("nested more than 20 levels deep")
    converted = _convert_known(value, depth=depth, notes=notes)
    if converted is not None:
        return converted
    raise Unfaithful(f"{_type_name(value)} has no faithful JSON form")


def _integer(value: int, *, depth: int) -> tuple[Any, str]:
    """An int as JSON; one too long for decimal text (Python refuses to convert it) as hex."""
    limit = _max_digits()
    if not limit or value.bit_length() < limit * 3:  # 3 bits per digit: fewer than the limit
        return value, "int"
    try:
        str(value)
        return value, "int"
    except ValueError:
        if depth:
            raise Unfaithful("an integer too long for decimal text") from None
        return hex(value), "bigint"


def _convert_known(value: Any, *, depth: int, notes: list[str]) -> tuple[Any, str] | None:
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
        return clean_text(path if isinstance(path, str) else os.fsdecode(path)), "path"
    if isinstance(value, bytes | bytearray):
        return _bounded(repr(bytes(value))), "bytes"
    if isinstance(value, Mapping):
        return {key_text(k): _normalize(v, depth=depth + 1, notes=notes)[0]
                for k, v in value.items()}, "dict"
    if isinstance(value, tuple):
        return _sequence(value, depth=depth, notes=notes), "tuple"
    if isinstance(value, list):
        return _sequence(value, depth=depth, notes=notes), "list"
    if isinstance(value, set | frozenset):
        return _sequence(sorted(value, key=repr), depth=depth, notes=notes), "set"
    return _convert_library(value, depth=depth, notes=notes)


def _convert_library(value: Any, *, depth: int, notes: list[str]) -> tuple[Any, str] | None:
    """numpy and pandas values, recognised without importing either library."""
    module = type(value).__module__.split(".")[0]
    if module == "numpy":
        if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):
            item = value.item()
            if isinstance(item, _PLAIN + (float,)):
                return _normalize(item, depth=depth, notes=notes)
        if hasattr(value, "tolist") and getattr(value, "size", ARRAY_LIMIT + 1) <= ARRAY_LIMIT:
            return _sequence(value.tolist(), depth=depth, notes=notes), "ndarray"
        raise Unfaithful(f"array of shape {getattr(value, 'shape', '?')} is too large to store")
    if module == "pandas":
        if type(value).__name__ == "Timestamp":
            return value.isoformat(), "datetime"
        if type(value).__name__ == "Timedelta":
            return value.total_seconds(), "timedelta"
        if type(value).__name__ == "Series" and len(value) <= ARRAY_LIMIT:
            return _sequence(value.tolist(), depth=depth, notes=notes), "series"
        raise Unfaithful(f"{_type_name(value)} is stored by description")
    if module == "torch" and hasattr(value, "numel") and value.numel() == 1:
        return _normalize(value.item(), depth=depth, notes=notes)
    return None


def _sequence(items: Any, *, depth: int, notes: list[str]) -> list[Any]:
    if len(items) > ARRAY_LIMIT:
        raise Unfaithful(f"sequence of {len(items)} items is too long to store")
    return [_normalize(item, depth=depth + 1, notes=notes)[0] for item in items]


def _described(value: Any) -> dict[str, str]:
    try:
        shown = clean_text(repr(value))
    except Exception:
        shown = "<unrepresentable>"
    return {"type": _type_name(value), "repr": _bounded(shown)}


def _bounded(shown: str) -> str:
    if len(shown) <= REPR_LIMIT:
        return shown
    return shown[:REPR_LIMIT] + f"... ({len(shown)} chars)"


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
