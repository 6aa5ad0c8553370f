"""What a key/value tag may be: a mutable annotation of a run (``source=manual``).

Params are a run's inputs and keep every value they had; a tag is a note about the run that
setting again replaces and :func:`delete_tag` removes, as MLflow's tags are. Tags may be set on
the active run (queued like a param: :class:`tracker.events.Tag`) or on any run by reference,
finished or not, which writes at once. They live in a table of their own, so tagging a run never
rewrites the ``runs`` row the process recording it may be updating. Labels stay what they were:
bare names in a list (``labels CONTAINS 'x'``), set when a run starts or by ``update_run``.
Writing by reference is :func:`tracker.manage.set_tags`; reading, :mod:`tracker.queries`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tracker import values
from tracker.errors import ArgumentError

if TYPE_CHECKING:
    from tracker.redaction import Redactor

MAX_KEY = 250  # MLflow's limit too: a key is a column name in tables
_VALUE_TYPES = (str, int, float, bool)
_EXAMPLE = "set_tag('source', 'manual')"


def checked(key: Any, value: Any, redactor: Redactor) -> tuple[str, str]:
    """The ``(key, value)`` to store: text, the value redacted as a param's would be.

    ArgumentError for a key that is not non-empty text of at most MAX_KEY characters, or a
    value that is not text, a number or a bool (numbers are stored as their text, as MLflow
    does)."""
    name = checked_key(key)
    if not isinstance(value, _VALUE_TYPES):  # None too: delete_tag removes a tag
        raise ArgumentError(f"tag {name!r}: the value must be text, a number or a bool, "
                            f"not {type(value).__name__}; e.g. {_EXAMPLE}")
    text = values.text(value)
    if len(text) > values.MAX_TEXT:
        raise ArgumentError(f"tag {name!r}: the value is {len(text):,} characters long; the "
                            f"limit is {values.MAX_TEXT:,} (log long text as an output file)")
    stored, _ = redactor.param(name, text, "str")
    return name, str(stored)


def checked_key(key: Any) -> str:
    """A tag key as stored; ArgumentError saying what a key must be."""
    if not isinstance(key, str) or not key or len(key) > MAX_KEY:
        shown = f"{len(key)} characters" if isinstance(key, str) and key else repr(key)[:60]
        raise ArgumentError(f"a tag key must be text of 1 to {MAX_KEY} characters, not "
                            f"{shown}; e.g. {_EXAMPLE}")
    return values.key_text(key)


def pairs(tags: Any) -> list[tuple[Any, Any]]:
    """The items of a mapping of tags; ArgumentError for anything else."""
    if not isinstance(tags, Mapping):
        raise ArgumentError(f"tags must be a mapping such as {{'source': 'manual'}}, not "
                            f"{type(tags).__name__}")
    return list(tags.items())
