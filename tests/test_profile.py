"""The auto-load block ``tracker enable`` writes into an IPython kernel profile."""

from __future__ import annotations

from pathlib import Path

import pytest
from IPython.core.shellapp import InteractiveShellApp
from traitlets.config.loader import PyFileConfigLoader

from tracker import profile
from tracker.errors import ArgumentError, TrackerError


@pytest.fixture
def ipython_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "ipython"
    monkeypatch.setenv("IPYTHONDIR", str(folder))
    return folder


def _extensions(config_file: Path) -> list[str]:
    """The extensions a kernel started with this config file would load."""
    config = PyFileConfigLoader(config_file.name, path=str(config_file.parent)).load_config()
    return list(InteractiveShellApp(config=config).extensions)


def test_config_path_follows_ipythondir(ipython_dir: Path) -> None:
    assert profile.config_path() == ipython_dir / "profile_default" / "ipython_kernel_config.py"
    assert profile.config_path("gpu").parent.name == "profile_gpu"


def test_config_path_defaults_to_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("IPYTHONDIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert profile.config_path() == tmp_path / ".ipython" / "profile_default" / \
        "ipython_kernel_config.py"


@pytest.mark.parametrize("name", ["", "../x", "a/b", "..", "gpu\n", "gpu\n/../x", None, 5])
def test_config_path_rejects_names_that_escape_the_folder(ipython_dir: Path, name: str) -> None:
    with pytest.raises(ArgumentError, match="not a profile name"):
        profile.config_path(name)


def test_enable_creates_a_missing_profile_that_loads_tracker(ipython_dir: Path) -> None:
    path, changed = profile.enable()
    assert changed
    assert path == ipython_dir / "profile_default" / "ipython_kernel_config.py"
    assert path.read_text() == profile.BLOCK
    assert _extensions(path) == ["tracker"]


def test_enable_keeps_the_users_lines_and_extensions(ipython_dir: Path) -> None:
    path = profile.config_path()
    path.parent.mkdir(parents=True)
    mine = "c = get_config()\nc.InteractiveShellApp.extensions = ['autoreload']"  # no newline
    path.write_text(mine)
    profile.enable()
    text = path.read_text()
    assert text.startswith(mine + "\n")
    assert text.endswith(profile.END + "\n")
    assert _extensions(path) == ["autoreload", "tracker"]


def test_enable_adds_nothing_when_the_user_already_loads_tracker(ipython_dir: Path) -> None:
    path = profile.config_path()
    path.parent.mkdir(parents=True)
    path.write_text("c.InteractiveShellApp.extensions = ['tracker']\n")
    profile.enable()
    assert _extensions(path) == ["tracker"]


def test_enable_is_idempotent(ipython_dir: Path) -> None:
    path, _ = profile.enable()
    first = path.read_text()
    assert profile.enable() == (path, False)
    assert path.read_text() == first
    assert first.count(profile.START) == 1


def test_disable_removes_exactly_the_block(ipython_dir: Path) -> None:
    path = profile.config_path("lab")
    path.parent.mkdir(parents=True)
    before = "c = get_config()\n# >>> tracker >>> is just text here\n"
    after = "c.InteractiveShell.colors = 'nocolor'\n"
    path.write_text(before)
    profile.enable("lab")
    path.write_text(path.read_text() + after)  # the user kept editing below the block
    assert profile.disable("lab") == (path, True)
    assert path.read_text() == before + after
    assert profile.disable("lab") == (path, False)
    assert path.read_text() == before + after


def test_disable_without_a_profile_creates_nothing(ipython_dir: Path) -> None:
    path, changed = profile.disable()
    assert not changed
    assert not path.exists()
    assert not ipython_dir.exists()


def test_a_block_without_its_end_marker_is_left_alone(ipython_dir: Path) -> None:
    path = profile.config_path()
    path.parent.mkdir(parents=True)
    broken = f"x = 1\n{profile.START}\nc.InteractiveShellApp.extensions.append('tracker')\n"
    path.write_text(broken)
    with pytest.raises(TrackerError, match="by hand"):
        profile.disable()
    with pytest.raises(TrackerError, match="by hand"):
        profile.enable()
    assert path.read_text() == broken
