"""Reading a notebook cell's source as Python, magics and all."""

from __future__ import annotations

import ast

from tracker import cell_code


def test_magics_and_shell_lines_read_as_pass_in_place() -> None:
    source = "%matplotlib inline\nif True:\n    !ls -l\n    x = 1\r\ny = 'z'\n"
    tree = cell_code.parsed(source)
    assert tree is not None
    assigned = [node for node in ast.walk(tree) if isinstance(node, ast.Assign)]
    # positions are those of the cell as written: a redaction can cut the literal out of it
    assert sorted((node.lineno, node.col_offset) for node in assigned) == [(4, 4), (5, 0)]
    assert cell_code.without_magics(source) == "pass\nif True:\n    pass\n    x = 1\r\ny = 'z'\n"


def test_a_cell_that_parses_is_read_as_it_is() -> None:
    # a line starting with % inside a string, or continuing an expression, is Python
    source = 'sql = """\n%s rows\n"""\nmsg = ("n: %d"\n       % n)\nok = (a\n      != b)\n'
    tree = cell_code.parsed(source)
    assert tree is not None
    assert ast.literal_eval(tree.body[0].value) == "\n%s rows\n"  # type: ignore[attr-defined]


def test_only_lines_that_start_a_statement_are_magics() -> None:
    source = ('x = ("%d"\n     % 1)\n!ls\ns = """\n!not a shell line\n"""\n%who\n'
              'y = 1 + \\\n    2\n%%time\n')
    assert cell_code.without_magics(source) == (
        'x = ("%d"\n     % 1)\npass\ns = """\n!not a shell line\n"""\npass\n'
        'y = 1 + \\\n    2\npass\n')
    assert cell_code.parsed(source) is not None


def test_a_magic_continued_with_a_backslash_is_blank_to_its_end() -> None:
    source = ('!pip install \\\n    requests \\\n    numpy\n'
              'if x:\n    %time y = \\\n    1\n    z = 2\n')
    assert cell_code.without_magics(source) == "pass\n\n\nif x:\n    pass\n\n    z = 2\n"
    assert cell_code.parsed(source) is not None


def test_a_cell_that_is_not_python_parses_to_none() -> None:
    assert cell_code.parsed("x = (") is None
    assert cell_code.parsed("a\x00b") is None
    assert cell_code.parsed("-" * 200_000 + "1") is None  # MemoryError in the parser


def test_lines_split_as_ast_counts_them() -> None:
    # a form feed is no line end for ast, though str.splitlines splits there
    assert cell_code.lines("a\x0cb\r\nc\rd") == ["a\x0cb\r\n", "c\r", "d"]
