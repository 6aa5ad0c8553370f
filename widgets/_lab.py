"""Links that open a recorded file in JupyterLab, when the file is under the server's root.

A kernel started by Jupyter Server knows its notebook's path relative to the server root
(``__session__`` in the user namespace, or ``JPY_SESSION_NAME``) and runs in the notebook's
folder; the root is what remains of the notebook's absolute path once that relative path is
taken off. ``TRACKER_SERVER_ROOT`` names the root where neither is set.
"""

from __future__ import annotations

import os
import sys
import urllib.parse


def server_root() -> str | None:
    """The Jupyter server's root folder as this kernel sees it, or None outside a server."""
    chosen = os.environ.get("TRACKER_SERVER_ROOT")
    if chosen:
        return os.path.realpath(chosen)
    relative = _session_path()
    if not relative or os.path.isabs(relative):
        return None
    folder = os.path.realpath(os.getcwd())
    # The kernel runs in the notebook's folder: the root is that folder minus the notebook's.
    parts = [part for part in os.path.dirname(relative).split("/") if part]
    for part in reversed(parts):
        if os.path.basename(folder) != part:
            return None
        folder = os.path.dirname(folder)
    return folder


def _session_path() -> str | None:
    shell = sys.modules.get("IPython")
    get_ipython = getattr(shell, "get_ipython", None)
    ip = get_ipython() if callable(get_ipython) else None
    session = getattr(ip, "user_ns", {}).get("__session__") if ip is not None else None
    value = session if isinstance(session, str) else os.environ.get("JPY_SESSION_NAME")
    return value if value and value.endswith(".ipynb") else None


def lab_url(path: str, root: str | None) -> str | None:
    """``/lab/tree/<path relative to root>`` (URL-quoted) if ``path`` is a file under ``root``."""
    if root is None or "://" in path:
        return None
    try:
        relative = os.path.relpath(os.path.realpath(path), root)
    except ValueError:  # another drive on Windows
        return None
    if relative == os.curdir or relative.startswith(os.pardir):
        return None
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/")
    quoted = urllib.parse.quote(relative.replace(os.sep, "/"))
    return f"{prefix.rstrip('/')}/lab/tree/{quoted}"
