"""The software environment a run executed in: Python, platform, installed packages and git.

:func:`capture_environment` takes the snapshot (tens of milliseconds; the caller runs it off the
cell's critical path) and :func:`environment_id` names it by content, so that the many runs made
in one environment share a single stored copy.
"""

from __future__ import annotations

import json
import os
import platform
import re
import socket
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

__all__ = ["capture_environment", "environment_id"]

# What an environment *is*: the software, not where or by whom it ran. Host, user and the
# interpreter's path belong to the run, so one venv copied to many machines is one environment.
_IDENTITY_KEYS = ("python", "implementation", "platform", "machine", "packages", "git")

_METADATA_SUFFIXES = (".dist-info", ".egg-info")
_GIT_TIMEOUT = 1.0  # seconds per git call
# git status refreshes the index and would write it back, racing the user's own git commands.
_GIT_ENV = {"GIT_OPTIONAL_LOCKS": "0", "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}


def capture_environment(*, notebook_dir: str | None = None) -> dict[str, Any]:
    """Snapshot the interpreter, platform, installed packages and the git state of the code.

    ``git`` describes the repository holding ``notebook_dir`` (default: the working directory),
    as ``{"commit", "branch", "dirty", "root", "remote"}``, or is None outside a repository or
    without a ``git`` binary. Packages come from installed metadata, never a pip subprocess.
    """
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "host": socket.gethostname(),
        "user": _user(),
        "packages": _installed_packages(),
        "git": _git_state(notebook_dir or os.getcwd()),
    }


def environment_id(env: Mapping[str, Any]) -> str:
    """A stable content hash (xxh3-128, hex) of the environment's identity fields.

    Only python, implementation, platform, machine, packages and git count: the same software
    on another host or for another user gets the same id. A new commit or a
    dirty tree is a new environment.
    """
    import xxhash

    identity = {key: env.get(key) for key in _IDENTITY_KEYS}
    canonical = json.dumps(identity, sort_keys=True, separators=(",", ":"), default=str)
    return xxhash.xxh3_128_hexdigest(canonical.encode("utf-8"))


def _installed_packages() -> dict[str, str]:
    """``{normalised name: version}`` of every distribution on ``sys.path``, sorted by name.

    Names and versions are read from ``*.dist-info`` folder names, which wheels write as
    ``name-version``: parsing each METADATA file instead takes several times longer. Anything
    else (``.egg-info``, odd names) falls back to ``importlib.metadata``. When a package is
    installed twice, the copy first on ``sys.path`` wins, as it does for ``import``.
    """
    packages: dict[str, str] = {}
    for folder in sys.path:
        for name, version in _distributions_in(folder or "."):
            packages.setdefault(_normalise_name(name), version)
    return dict(sorted(packages.items()))


def _distributions_in(folder: str) -> list[tuple[str, str]]:
    try:
        with os.scandir(folder) as scan:
            entries = [entry.name for entry in scan if entry.name.endswith(_METADATA_SUFFIXES)]
    except OSError:
        return []
    found = []
    for entry in sorted(entries):
        pair = _from_folder_name(entry) or _from_metadata(os.path.join(folder, entry))
        if pair:
            found.append(pair)
    return found


def _from_folder_name(entry: str) -> tuple[str, str] | None:
    if not entry.endswith(".dist-info"):
        return None
    name, _, version = entry.removesuffix(".dist-info").partition("-")
    return (name, version) if name and version and "-" not in version else None


def _from_metadata(path: str) -> tuple[str, str] | None:
    from importlib.metadata import Distribution

    try:
        meta: Any = Distribution.at(path).metadata  # an email.Message: .get() exists
    except Exception:
        return None
    name, version = meta.get("Name") if meta else None, meta.get("Version") if meta else None
    return (name, version) if name and version else None


def _normalise_name(name: str) -> str:
    # PEP 503: case-insensitive, and runs of "-", "_" and "." are the same character.
    return re.sub(r"[-_.]+", "-", name).lower()


def _user() -> str | None:
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # no login name and no passwd entry, as in some containers
        return None


# --------------------------------------------------------------------------- git


def _git_state(folder: str) -> dict[str, Any] | None:
    """Commit, branch, dirtiness, root and remote of the repository holding ``folder``, or None.

    ``commit`` is None before the first commit, ``branch`` None on a detached HEAD, ``dirty``
    (tracked files changed, staged or not) None if git status timed out. Credentials in the
    remote URL are removed.
    """
    root = _git(folder, "rev-parse", "--show-toplevel")
    if not root:
        return None
    status = _git(root, "status", "--porcelain", "--untracked-files=no", allow_empty=True)
    return {
        "commit": _git(root, "rev-parse", "--verify", "--quiet", "HEAD"),
        "branch": _git(root, "symbolic-ref", "--short", "--quiet", "HEAD"),
        "dirty": None if status is None else bool(status),
        "root": root,
        "remote": _without_credentials(_git(root, "config", "--get", "remote.origin.url")),
    }


def _git(folder: str, *args: str, allow_empty: bool = False) -> str | None:
    """The stripped output of ``git -C folder args``; None on failure, timeout or no git."""
    try:
        done = subprocess.run(
            ["git", "-C", folder, *args],
            capture_output=True,
            text=True,
            timeout=_GIT_TIMEOUT,
            env={**os.environ, **_GIT_ENV},
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    output = done.stdout.strip()
    if done.returncode != 0:
        return None
    return output if output or allow_empty else None


def _without_credentials(url: str | None) -> str | None:
    # https://user:token@host/repo -> https://host/repo; scp-style git@host:repo is kept.
    if not url:
        return None
    return re.sub(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@]*@", r"\1", url)
