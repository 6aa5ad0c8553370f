"""Drive a real JupyterLab from tests: start and stop the server, write notebooks, work the UI.

The server runs in fully isolated temp dirs (config, data, runtime, settings, IPython profile,
tracker catalog), so an e2e test never reads or writes the user's Jupyter setup or catalog. The
browser helpers use explicit waits on JupyterLab's own DOM state, never fixed sleeps.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

STARTUP_TIMEOUT_S = 90.0
# Opening a notebook took up to ~12 s on 2 cores at load average 14: a minute leaves room
# without letting a hang go unnoticed for long.
UI_TIMEOUT_MS = 60_000

# User settings that keep the UI quiet and deterministic: no news/update popups (which also
# make requests to the internet) and no autosave racing the test's own writes of the .ipynb.
_USER_SETTINGS = {
    "@jupyterlab/apputils-extension/notification": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
}

# Server configuration, written to the temp JUPYTER_CONFIG_DIR. The frontend's build check
# costs ~10 s of CPU on the first page load (there is nothing to build: we never install
# extensions from source), and the update check asks the internet.
_SERVER_CONFIG = {
    "ServerApp": {
        "tornado_settings": {"page_config_data": {"buildCheck": False, "buildAvailable": False}},
    },
    "LabApp": {
        "check_for_updates_class": "jupyterlab.handlers.announcements.NeverCheckForUpdate",
    },
}

# notebook_url resets the workspace, so the page holds one notebook panel.
_NOTEBOOK = ".jp-NotebookPanel"

# The execution indicator says "idle" while the panel is still attached to "No Kernel"; running
# cells then would pop up the "Select Kernel" dialog. So idle needs a named kernel too. In a
# narrow window (800 px) JupyterLab folds both into the notebook toolbar's overflow menu; the
# status bar's kernel item ("Python 3 (ipykernel) | Idle") tells the same and stays visible.
_KERNEL_IDLE_JS = """(panelSelector) => {
    const panel = document.querySelector(panelSelector);
    if (!panel) return false;
    const running = [...panel.querySelectorAll('.jp-InputArea-prompt')]
        .some((prompt) => prompt.textContent.includes('*'));
    const indicator = panel.querySelector('.jp-Notebook-ExecutionIndicator');
    const name = panel.querySelector('.jp-Toolbar-kernelName');
    let status, kernel;
    if (indicator && name) {
        status = indicator.dataset.status;
        kernel = name.innerText.trim();
    } else {
        const item = document.querySelector('.jp-StatusBar-TextItem[title^="Change kernel"]');
        [kernel, status] = (item?.textContent ?? '').split(' | ').map((part) => part.trim());
        status = status?.toLowerCase();
    }
    return status === 'idle' && Boolean(kernel) && kernel !== 'No Kernel' && !running;
}"""


@dataclass(frozen=True)
class Lab:
    """A running JupyterLab server: where to reach it and the folder it serves."""

    url: str
    token: str
    root: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes]

    def notebook_url(self, name: str) -> str:
        """The URL that opens notebook ``name`` (relative to ``root``) alone in the lab UI."""
        # `reset` drops the saved workspace, so notebooks of earlier tests do not reopen.
        return f"{self.url}/lab/tree/{urllib.parse.quote(name)}?reset&token={self.token}"

    def start_kernel(self, name: str) -> None:
        """Start the python3 kernel session of notebook ``name`` through the REST API."""
        body = {
            "path": name,
            "name": Path(name).name,
            "type": "notebook",
            "kernel": {"name": "python3"},
        }
        if not _request(f"{self.url}/api/sessions", token=self.token, method="POST", body=body):
            raise RuntimeError(f"JupyterLab could not start a kernel for {name}")


@contextlib.contextmanager
def running_lab(work: Path, *, env: Mapping[str, str] | None = None) -> Iterator[Lab]:
    """Start JupyterLab serving ``work / "root"``, yield it once it answers, then stop it.

    ``env`` is laid over the isolated defaults (e.g. ``TRACKER_CATALOG``, ``IPYTHONDIR``).
    """
    lab_env = _isolated_env(work) | dict(env or {})
    root = work / "root"
    root.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(16)
    log = work / "jupyterlab.log"
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            _lab_command(root, token=token),
            env=lab_env,
            cwd=root,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = ""
    try:
        url = _wait_until_ready(
            process, runtime=Path(lab_env["JUPYTER_RUNTIME_DIR"]), token=token, log=log
        )
        yield Lab(url=url, token=token, root=root, env=lab_env, process=process)
    finally:
        _stop(process, url=url, token=token)


def write_notebook(path: Path, sources: list[str]) -> Path:
    """Write a notebook of code cells at ``path`` with the python3 kernelspec (no kernel dialog)."""
    import nbformat

    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    nbformat.write(notebook, path)
    return path


def open_notebook(page: Page, lab: Lab, name: str) -> None:
    """Open notebook ``name`` in the lab UI and wait until its kernel is idle."""
    # Starting the kernel through the API overlaps its start with the page load, and the UI
    # then joins that session instead of choosing a kernel itself.
    lab.start_kernel(name)
    page.goto(lab.notebook_url(name))
    wait_for(page, f"{_NOTEBOOK} .jp-Notebook")
    wait_for_kernel_idle(page)


def wait_for_kernel_idle(page: Page, *, timeout_ms: int = UI_TIMEOUT_MS) -> None:
    """Wait until the open notebook has a kernel, it is idle, and no cell is queued or running."""
    page.wait_for_function(_KERNEL_IDLE_JS, arg=_NOTEBOOK, timeout=timeout_ms)


def run_all_cells(page: Page, *, timeout_ms: int = UI_TIMEOUT_MS) -> None:
    """Run every cell through the "Run" menu, then wait until the kernel is idle again."""
    choose_menu_item(page, "Run", "Run All Cells")
    # Each executed cell gets a number; waiting for all of them avoids mistaking the idle state
    # *before* the kernel picked up the request for the end of the run.
    page.wait_for_function(
        """(selector) => {
            const prompts = [...document.querySelectorAll(selector)];
            return prompts.length > 0 && prompts.every((p) => /\\[\\d+\\]/.test(p.textContent));
        }""",
        arg=f"{_NOTEBOOK} .jp-CodeCell .jp-InputArea-prompt",
        timeout=timeout_ms,
    )
    wait_for_kernel_idle(page, timeout_ms=timeout_ms)


def choose_menu_item(page: Page, menu: str, item: str) -> None:
    """Open top-level ``menu`` of the main menu bar and click ``item``, both by visible text."""
    page.locator("#jp-menu-panel .lm-MenuBar-itemLabel", has_text=_exactly(menu)).click()
    page.locator(".lm-Menu .lm-Menu-itemLabel", has_text=_exactly(item)).click()


def wait_for(page: Page, selector: str, *, timeout_ms: int = UI_TIMEOUT_MS) -> Locator:
    """Wait until the first element matching ``selector`` is visible and return its locator."""
    locator = page.locator(selector).first
    locator.wait_for(state="visible", timeout=timeout_ms)
    return locator


def output_texts(page: Page) -> list[str]:
    """The visible text of every output of the open notebook, in cell order."""
    return page.locator(f"{_NOTEBOOK} .jp-OutputArea-output").all_inner_texts()


def _exactly(text: str) -> re.Pattern[str]:
    return re.compile(rf"^\s*{re.escape(text)}\s*$")


def _isolated_env(work: Path) -> dict[str, str]:
    dirs = {
        "JUPYTER_CONFIG_DIR": work / "config",
        # sys.prefix/share/jupyter (ipywidgets' labextension, the python3 kernelspec) stays on
        # the data path: jupyter_core always searches the environment's own share/jupyter.
        "JUPYTER_DATA_DIR": work / "data",
        "JUPYTER_RUNTIME_DIR": work / "runtime",
        "JUPYTERLAB_SETTINGS_DIR": work / "settings",
        "JUPYTERLAB_WORKSPACES_DIR": work / "workspaces",
        "IPYTHONDIR": work / "ipython",
    }
    for directory in dirs.values():
        directory.mkdir(parents=True, exist_ok=True)
    _write_user_settings(dirs["JUPYTERLAB_SETTINGS_DIR"])
    (dirs["JUPYTER_CONFIG_DIR"] / "jupyter_server_config.json").write_text(
        json.dumps(_SERVER_CONFIG)
    )
    env = {name: str(directory) for name, directory in dirs.items()}
    env["TRACKER_CATALOG"] = str(work / "catalog" / "catalog.duckdb")
    # The kernel must run the test run's interpreter, where tracker is installed.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return {**os.environ, **env}


def _write_user_settings(settings_dir: Path) -> None:
    for plugin, values in _USER_SETTINGS.items():
        path = settings_dir / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


def _lab_command(root: Path, *, token: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--allow-root",
        "--ip=127.0.0.1",
        f"--port={_free_port()}",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
    ]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_ready(
    process: subprocess.Popen[bytes], *, runtime: Path, token: str, log: Path
) -> str:
    """Return the server's base URL once ``/api/status`` answers; raise with the log if not."""
    # The server may move to the next port if ours was taken meanwhile: its runtime file is the
    # truth about where it listens.
    info_file = runtime / f"jpserver-{process.pid}.json"
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with {process.returncode}:\n{_tail(log)}")
        url = _base_url(info_file) if info_file.exists() else ""
        if url and _request(f"{url}/api/status", token=token, method="GET", timeout_s=2):
            return url
        time.sleep(0.1)
    raise TimeoutError(f"JupyterLab did not answer within {STARTUP_TIMEOUT_S:.0f} s:\n{_tail(log)}")


def _base_url(info_file: Path) -> str:
    try:
        info = json.loads(info_file.read_text())
    except ValueError:  # caught while the server was still writing it
        return ""
    return f"http://127.0.0.1:{info['port']}{info['base_url'].rstrip('/')}"


def _request(
    url: str, *, token: str, method: str, body: object = None, timeout_s: float = 30
) -> bool:
    """Whether a request to the server succeeded (2xx); never raises."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"Authorization": f"token {token}", "Content-Type": "application/json"}
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.status < 300
    except (OSError, urllib.error.URLError):
        return False


def _stop(process: subprocess.Popen[bytes], *, url: str, token: str) -> None:
    """Shut the server and its kernels down: politely first, then by signal."""
    # Kernels run in sessions of their own, so killing the server's group would miss them.
    children = _descendants(process.pid)
    if url and process.poll() is None:
        _request(f"{url}/api/shutdown", token=token, method="POST", timeout_s=5)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _descendants(pid: int) -> list[int]:
    """PIDs of every live process below ``pid`` (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            # The command name (field 2) may contain spaces: the parent pid follows its ")".
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(stat.parent.name))
    found: list[int] = []
    pending = [pid]
    while pending:
        below = children.get(pending.pop(), [])
        found.extend(below)
        pending.extend(below)
    return found


def _tail(log: Path, *, lines: int = 40) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
