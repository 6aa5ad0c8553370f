"""Auto-loading the extension: the marked block tracker adds to an IPython kernel profile.

``tracker enable`` appends a block between ``# >>> tracker >>>`` and ``# <<< tracker <<<`` to
``$IPYTHONDIR/profile_<name>/ipython_kernel_config.py``; ``tracker disable`` removes exactly
that block. The user's own lines are never touched, and both are idempotent.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from tracker.errors import ArgumentError, TrackerError

__all__ = ["config_path", "disable", "enable"]

START = "# >>> tracker >>>"
END = "# <<< tracker <<<"
# `extensions` is a LazyConfigValue until the file (or an earlier one) assigns a list: it
# supports append() but not `in`, so the duplicate check applies to real lists only.
BLOCK = f"""{START}
# Added by `tracker enable`: every kernel of this profile records a run.
# `tracker disable` removes this block.
_extensions = c.InteractiveShellApp.extensions
if not isinstance(_extensions, list) or "tracker" not in _extensions:
    _extensions.append("tracker")
del _extensions
{END}
"""
_PROFILE_NAME = re.compile(r"[\w.-]+")


def config_path(profile: str = "default") -> Path:
    """The kernel config file of an IPython profile: ``$IPYTHONDIR/profile_<name>/...``."""
    # fullmatch: "$" would let a trailing newline through into the folder name.
    if not isinstance(profile, str) or not _PROFILE_NAME.fullmatch(profile) or profile in (
            ".", ".."):
        raise ArgumentError(f"not a profile name: {profile!r:.60} (letters, digits, '.', '-', "
                            "'_')")
    ipython_dir = Path(os.environ.get("IPYTHONDIR") or "~/.ipython").expanduser()
    return ipython_dir / f"profile_{profile}" / "ipython_kernel_config.py"


def enable(profile: str = "default") -> tuple[Path, bool]:
    """Add the auto-load block to the profile (creating it if missing).

    Returns the config file and whether it changed (False: the block was already there).
    """
    path = config_path(profile)
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if _block_span(text, path) is not None:
        return path, False
    if text and not text.endswith("\n"):
        text += "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + BLOCK, encoding="utf-8")
    return path, True


def disable(profile: str = "default") -> tuple[Path, bool]:
    """Remove the auto-load block from the profile; returns the file and whether it changed."""
    path = config_path(profile)
    if not path.exists():
        return path, False
    text = path.read_text(encoding="utf-8")
    span = _block_span(text, path)
    if span is None:
        return path, False
    start, end = span
    path.write_text(text[:start] + text[end:], encoding="utf-8")
    return path, True


def _block_span(text: str, path: Path) -> tuple[int, int] | None:
    """Where the block starts and ends (after its last newline); None when absent."""
    start = _line_start(text, START)
    if start is None:
        return None
    end_marker = _line_start(text, END, since=start)
    if end_marker is None:
        raise TrackerError(f"{path} has a '{START}' line without its '{END}' line; "
                           "fix the file by hand")
    newline = text.find("\n", end_marker)
    return start, len(text) if newline == -1 else newline + 1


def _line_start(text: str, marker: str, *, since: int = 0) -> int | None:
    """The offset of the first line at or after ``since`` that is exactly ``marker``."""
    match = re.compile(rf"^{re.escape(marker)}[ \t]*$", re.MULTILINE).search(text, since)
    return match.start() if match else None
