"""Docs as tests: every CLI command and every ``%tracker`` magic is in the README, with help."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from tracker.cli import build_parser, main

README = Path(__file__).resolve().parents[1] / "README.md"


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(actions[0].choices)


COMMANDS = sorted(_commands())


def _readme() -> str:
    assert README.exists(), f"{README} is missing"
    return README.read_text(encoding="utf-8")


def test_the_cli_has_the_documented_commands() -> None:
    assert {"runs", "show", "rm", "restore", "purge", "export", "import", "enable",
            "disable"} <= set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_is_in_the_readme(command: str) -> None:
    assert f"tracker {command}" in _readme()


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_and_an_example(command: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert _commands()[command].description
    assert main([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: tracker {command}")
    assert f"examples:\n  tracker {command}" in out


def test_every_magic_is_in_the_readme() -> None:
    from tracker.magics import SUBCOMMANDS

    readme = _readme()
    missing = [sub for sub in SUBCOMMANDS if f"%tracker {sub}" not in readme]
    assert SUBCOMMANDS
    assert missing == []
