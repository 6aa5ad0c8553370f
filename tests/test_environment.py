"""The software environment of a run: interpreter, packages, git state, and its content id."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from tracker.environment import capture_environment, environment_id


@pytest.fixture
def no_repo_above(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``tmp_path``, with git told not to look above it for a repository."""
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    return tmp_path


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    identity = ["-c", "user.name=Test", "-c", "user.email=test@example.com"]
    done = subprocess.run(["git", *identity, "-C", str(repo), *args], env=env, check=True,
                          capture_output=True, text=True)
    return done.stdout.strip()


@pytest.fixture
def repo(no_repo_above: Path) -> Path:
    """A git repository with one commit of a tracked file, on branch ``main``."""
    root = no_repo_above / "project"
    (root / "nbs").mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    (root / "nbs" / "analysis.py").write_text("x = 1\n", encoding="utf-8")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "first")
    return root


def test_interpreter_and_platform_are_recorded(no_repo_above: Path) -> None:
    env = capture_environment(notebook_dir=str(no_repo_above))
    assert env["python"] == platform.python_version()
    assert env["implementation"] == "CPython"
    assert env["executable"] == sys.executable
    assert env["platform"] == platform.platform()
    assert env["machine"] == platform.machine()
    assert env["host"] and env["user"]


def test_packages_are_the_installed_distributions() -> None:
    packages = capture_environment()["packages"]
    assert packages["duckdb"] == importlib.metadata.version("duckdb")
    assert packages["tracker"] == importlib.metadata.version("tracker")  # the editable install
    assert "pyyaml" in packages and "PyYAML" not in packages  # normalised names
    assert "argon2-cffi" in packages and "argon2_cffi" not in packages
    assert list(packages) == sorted(packages)
    expected = {
        dist.metadata["Name"].lower().replace("_", "-").replace(".", "-"): dist.version
        for dist in importlib.metadata.distributions()
    }
    assert packages == expected


def test_git_state_of_a_repository(repo: Path) -> None:
    state = capture_environment(notebook_dir=str(repo / "nbs"))["git"]
    assert state == {
        "commit": git(repo, "rev-parse", "HEAD"),
        "branch": "main",
        "dirty": False,
        "root": str(repo),
        "remote": None,
    }


def test_dirty_flips_when_a_tracked_file_changes(repo: Path) -> None:
    (repo / "untracked.txt").write_text("new", encoding="utf-8")
    assert capture_environment(notebook_dir=str(repo))["git"]["dirty"] is False
    (repo / "nbs" / "analysis.py").write_text("x = 2\n", encoding="utf-8")
    assert capture_environment(notebook_dir=str(repo))["git"]["dirty"] is True
    git(repo, "commit", "-q", "-am", "second")
    assert capture_environment(notebook_dir=str(repo))["git"]["dirty"] is False


def test_detached_head_has_no_branch(repo: Path) -> None:
    git(repo, "checkout", "-q", "--detach")
    state = capture_environment(notebook_dir=str(repo))["git"]
    assert state["branch"] is None
    assert state["commit"] == git(repo, "rev-parse", "HEAD")


def test_repository_without_commits(no_repo_above: Path) -> None:
    git(no_repo_above, "init", "-q", "-b", "trunk")
    state = capture_environment(notebook_dir=str(no_repo_above))["git"]
    assert (state["commit"], state["branch"], state["dirty"]) == (None, "trunk", False)


def test_remote_url_loses_its_credentials(repo: Path) -> None:
    git(repo, "remote", "add", "origin", "https://alice:s3cret@git.example.com/team/project.git")
    state = capture_environment(notebook_dir=str(repo))["git"]
    assert state["remote"] == "https://git.example.com/team/project.git"
    git(repo, "remote", "set-url", "origin", "git@github.com:team/project.git")
    assert capture_environment(notebook_dir=str(repo))["git"]["remote"] == (
        "git@github.com:team/project.git"
    )


def test_not_a_repository_gives_none(no_repo_above: Path) -> None:
    assert capture_environment(notebook_dir=str(no_repo_above))["git"] is None
    assert capture_environment(notebook_dir=str(no_repo_above / "missing"))["git"] is None


def test_no_git_binary_gives_none(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(repo / "nbs"))  # a PATH without git on it
    assert capture_environment(notebook_dir=str(repo))["git"] is None


def test_git_default_is_the_working_directory(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(repo / "nbs")
    assert capture_environment()["git"]["root"] == str(repo)


def test_environment_id_is_stable_and_follows_the_software(repo: Path) -> None:
    env = capture_environment(notebook_dir=str(repo))
    again = capture_environment(notebook_dir=str(repo))
    assert environment_id(env) == environment_id(again)
    assert len(environment_id(env)) == 32 and int(environment_id(env), 16) >= 0

    elsewhere = {**env, "host": "other-host", "user": "bob", "executable": "/opt/py/bin/python"}
    assert environment_id(elsewhere) == environment_id(env)

    upgraded = {**env, "packages": {**env["packages"], "duckdb": "9.9.9"}}
    assert environment_id(upgraded) != environment_id(env)
    assert environment_id({**env, "python": "3.12.0"}) != environment_id(env)
    assert environment_id({**env, "git": {**env["git"], "dirty": True}}) != environment_id(env)


def test_environment_id_ignores_key_order() -> None:
    first = {"python": "3.11.7", "packages": {"a": "1", "b": "2"}, "git": None}
    second = {"git": None, "packages": {"b": "2", "a": "1"}, "python": "3.11.7"}
    assert environment_id(first) == environment_id(second)
