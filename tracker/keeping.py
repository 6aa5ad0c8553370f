"""Which file contents a run keeps: the policy, decided when a file is logged.

By default a run keeps what it wrote, up to :data:`OUTPUT_MAX` per file and :data:`RUN_MAX` in
all, and what it read up to :data:`INPUT_MAX` per file (configs, small tables: what re-running
needs and what gets edited in place). A file the run both wrote and read is kept as an output.
Folders, URIs and files matching an exclude pattern are never kept. The policy comes from
``$TRACKER_KEEP`` (global), then ``metadata.tracker.keep`` (the notebook), and
``log_output(path, keep=True)`` forces one file in (``keep=False`` leaves it out).

The decision is a dict lookup and a few ``fnmatch`` calls on the logging call (a cell's end for
captured files): the copy itself happens later, in the flusher (:mod:`tracker.delivery`).
"""

from __future__ import annotations

import fnmatch
import functools
import json
import os
import re
import threading
from dataclasses import dataclass, replace
from typing import Any

__all__ = ["INPUT_MAX", "KEEP_VARIABLE", "OUTPUT_MAX", "RUN_MAX", "KeepPolicy", "Keeper",
           "policy_from"]

KEEP_VARIABLE = "TRACKER_KEEP"
#: Per output file: a model checkpoint or a result table fits, a dataset dump does not.
OUTPUT_MAX = 100 << 20
#: Per run, outputs and inputs together: ten of the largest outputs.
RUN_MAX = 1 << 30
#: Per input file: configs, small CSVs, label lists (which people edit in place).
INPUT_MAX = 1 << 20
#: Never worth keeping: editor and Python leftovers, checkpoints of the notebook itself.
EXCLUDE = ("*/.ipynb_checkpoints/*", "*/__pycache__/*", "*.pyc", "*.tmp", "*.swp", "*~")

# Statuses on an artifact version (artifacts.kept); None: recorded before contents were kept.
KEPT = "kept"
CHANGED = "changed"  # the file changed before it could be stored: nothing stored for it
UNREADABLE = "unreadable"
NOT_KEPT = "not kept"  # the policy left it out (too big, excluded, keeping off, a folder)
STORING = "storing"  # copied and verified; named and moved into the store next (blob: a token)


@dataclass(frozen=True)
class KeepPolicy:
    """What a run keeps; sizes in bytes."""

    enabled: bool = True
    output_max: int = OUTPUT_MAX
    input_max: int = INPUT_MAX
    run_max: int = RUN_MAX
    exclude: tuple[str, ...] = EXCLUDE

    def excludes(self, path: str) -> bool:
        """Whether an exclude pattern matches ``path`` (one regex: ~1 µs, not ~3 per pattern)."""
        return self._excluded.match(path) is not None

    @functools.cached_property
    def _excluded(self) -> re.Pattern[str]:
        return re.compile("|".join(fnmatch.translate(pattern) for pattern in self.exclude)
                          or "(?!)")


_SIZES = ("output_max", "input_max", "run_max")


def policy_from(chosen: dict[str, Any] | None, base: KeepPolicy | None = None) -> KeepPolicy:
    """``base`` (the global policy when None) with the checked fields of
    ``metadata.tracker.keep`` (see :func:`tracker.settings.tracker_settings`) on top."""
    policy = base if base is not None else global_policy()
    if not chosen:
        return policy
    extra = tuple(chosen.get("exclude", ()))
    fields = {name: chosen[name] for name in ("enabled", *_SIZES) if name in chosen}
    return replace(policy, **fields, exclude=policy.exclude + extra)


def global_policy() -> KeepPolicy:
    """``$TRACKER_KEEP``: ``off``, or the JSON object ``metadata.tracker.keep`` takes; a value
    that cannot be used keeps the defaults (the settings checks report why)."""
    text = os.environ.get(KEEP_VARIABLE, "").strip()
    if not text:
        return KeepPolicy()
    if text.lower() in ("0", "off", "false", "no"):
        return KeepPolicy(enabled=False)
    from tracker.settings import keep_field

    try:
        return policy_from(keep_field(json.loads(text)), KeepPolicy())
    except ValueError:
        return KeepPolicy()


class Keeper:
    """A run's policy and what it has chosen to keep so far (for :data:`RUN_MAX`)."""

    def __init__(self, policy: KeepPolicy) -> None:
        self.policy = policy
        self._chosen: dict[str, int] = {}  # path -> size chosen (a rewrite replaces it)
        self._total = 0
        self._lock = threading.Lock()

    def decide(self, role: str, path: str, size: int | None, forced: bool | None) -> bool:
        """Whether to keep the content of ``path`` (a regular file of ``size`` bytes)."""
        if forced is not None:
            return self._count(path, size or 0) if forced else False
        policy = self.policy
        if not policy.enabled or size is None or policy.excludes(path):
            return False
        limit = policy.output_max if role == "output" else policy.input_max
        if size > limit:
            return False
        with self._lock:
            grown = self._total - self._chosen.get(path, 0) + size
            if grown > policy.run_max:
                return False
        return self._count(path, size)

    def _count(self, path: str, size: int) -> bool:
        with self._lock:
            self._total += size - self._chosen.get(path, 0)
            self._chosen[path] = size
        return True
