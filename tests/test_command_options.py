"""The argument types and options every command shares, as argparse uses them."""

from __future__ import annotations

import argparse

import pytest

from tracker import command_options


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tracker", exit_on_error=False)
    parser.add_argument("--limit", type=command_options.non_negative)
    parser.add_argument("--version", type=command_options.positive)
    parser.add_argument("--tolerance", type=command_options.non_negative_number)
    command_options.add_format(parser, "table", "csv", "json")
    return parser


def test_arguments_parse_to_their_types_and_the_first_format_is_the_default() -> None:
    args = _parser().parse_args(["--limit", "0", "--version", "3", "--tolerance", "1e-6"])
    assert (args.limit, args.version, args.tolerance, args.format) == (0, 3, 1e-6, "table")


@pytest.mark.parametrize("argv", [["--limit", "-1"], ["--version", "0"], ["--tolerance", "-0.5"],
                                  ["--tolerance", "nan"], ["--tolerance", "ten"],
                                  ["--format", "yaml"]])
def test_out_of_range_values_are_usage_errors(argv: list[str]) -> None:
    with pytest.raises(argparse.ArgumentError):
        _parser().parse_args(argv)


def test_fail_says_what_went_wrong_on_one_line_of_stderr(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert command_options.fail("no such run: 01m7zw") == 1
    assert capsys.readouterr() == ("", "tracker: error: no such run: 01m7zw\n")
