"""Attribution of output lines to files, over real linters' output and a few built cases."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobstamps import attribution

DATA = Path(__file__).parent / "data" / "attribution"
SAMPLES = sorted(path.stem for path in DATA.glob("*.txt"))


def sample(name: str) -> tuple[list[str], list[tuple[int, bytes]], list[str]]:
    """Read a captured sample: the files passed, the output's lines, and each line's file."""
    head, *rows = (DATA / f"{name}.txt").read_bytes().splitlines(True)
    files = head.decode().split(":", 1)[1].split()
    expected = [row.partition(b"|")[0].strip().decode() for row in rows]
    return files, [(1, row.partition(b"|")[2]) for row in rows], expected


def attributed(lines: list[tuple[int, bytes]], files: list[str], cwd: str = "/w") -> list[str]:
    owners = attribution.owners(lines, attribution.path_forms(files, cwd))
    return ["-" if owner is None else files[owner] for owner in owners]


def test_every_tool_of_the_family_has_a_sample() -> None:
    family = {"flake8", "ruff-full", "ruff-concise", "ruff-grouped", "pylint", "isort", "black"}
    family |= {"yamllint-standard", "shellcheck-tty", "cppcheck", "codespell", "eslint-stylish"}
    assert family <= set(SAMPLES)


@pytest.mark.parametrize("name", SAMPLES)
def test_real_linter_output_is_divided_as_annotated(name: str) -> None:
    files, lines, expected = sample(name)
    assert attributed(lines, files) == expected


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        # A message that does not start with the path: the path is a word of it.
        ([b"lint-warning: c.py: line too long\n"], ["c.py"]),
        ([b"would reformat b.py\n", b"\n", b"Oh no!\n"], ["b.py", "-", "-"]),
        # pylint's header goes with the module it introduces, not the one before.
        (
            [b"************* Module a\n", b"a.py:1:0: C1\n", b"*** Module b\n", b"b.py:1:0: C2\n"],
            ["a.py", "a.py", "b.py", "b.py"],
        ),
        # A preamble (a tool's deprecation warning) is no file's header.
        ([b"warning: a setting is deprecated\n", b"a.py:1:1: E1\n"], ["-", "a.py"]),
        # A line between two files that neither opens a paragraph nor names the module
        # continues the file before it.
        ([b"a.py:1:1: E1\n", b"import os\n", b"^\n", b"b.py:1:1: E2\n"], ["a.py"] * 3 + ["b.py"]),
        # eslint's stylish format: the name alone, indented messages, a summary.
        (
            [b"/w/a.py\n", b"  1:1  bad\n", b"\n", b"/w/c.py\n", b"  2:1  bad\n", b"\n", b"2\n"],
            ["a.py", "a.py", "a.py", "c.py", "c.py", "-", "-"],
        ),
        # A word that is only part of a path, or a path inside quotes, names nothing.
        ([b"Found 2 errors in a.py.bak\n", b'  File "a.py", line 1\n'], ["-", "-"]),
        # Nor does a file's name in another file's code, above its caret or in a code frame.
        (
            [b"In a.py line 2:\n", b"cat b.py\n", b"    ^-- SC2002\n", b"  2 | cat c.py\n"],
            ["a.py"] * 4,
        ),
    ],
)
def test_lines_that_name_a_file_elsewhere_than_at_the_start(
    lines: list[bytes], expected: list[str]
) -> None:
    assert attributed([(1, line) for line in lines], ["a.py", "b.py", "c.py"]) == expected


def test_summaries_and_preambles_on_another_stream_are_no_files() -> None:
    lines = [
        (2, b"2 warnings generated.\n"),
        (1, b"/src/a.c:3:5: warning: unused [x]\n"),
        (1, b"int y = z;\n"),
        (1, b"    ^\n"),
        (1, b"inc/h.h:1:1: note: declared here\n"),
        (1, b"./b.c:1:1: error: bad\n"),
        (1, b"\n"),
        (1, b"Found 2 errors.\n"),
        (1, b"  indented after the summary\n"),
    ]
    assert attributed(lines, ["a.c", "b.c"], "/src") == ["-"] + ["a.c"] * 4 + ["b.c", "-", "-", "-"]


def test_attribution_sees_through_terminal_colours() -> None:
    lines = [
        (1, b"\x1b[1ma.py\x1b[0m\x1b[36m:\x1b[0m1\x1b[36m:\x1b[0m8: F401 unused\n"),
        (1, b"\x1b[1;31mb.py\x1b[m:2:1: E1 bad\n"),
        (1, b"\x1b[1mFound 2 errors.\x1b[0m\n"),
    ]
    assert attributed(lines, ["a.py", "b.py"]) == ["a.py", "b.py", "-"]


def test_attribution_prefers_the_longest_matching_path() -> None:
    lines = [(1, b"x:1.py:3:4: m\n"), (1, b"x:3:4: n\n")]
    assert attributed(lines, ["x", "x:1.py"]) == ["x:1.py", "x"]


def test_lines_are_cut_per_stream_across_chunks() -> None:
    data = b"a.py:1: one" + b"err\n" + b" two\nrest"
    lines = attribution.split_lines([(1, 11), (2, 4), (1, 10)], data)
    assert lines == [(2, b"err\n"), (1, b"a.py:1: one two\n"), (1, b"rest")]


def test_two_runs_that_differ_only_in_file_names_read_the_same() -> None:
    forms = attribution.path_forms(["a.py", "b.py", "c.py"], "/w")
    one = attribution.anonymous([(1, b"ruff failed for a.py\n")], forms)
    assert one == attribution.anonymous([(1, b"ruff failed for /w/c.py\n")], forms)
    assert one != attribution.anonymous([(1, b"ruff failed twice\n")], forms)


def test_a_file_named_like_a_common_word_is_not_named_by_prose() -> None:
    lines = [
        (1, b"In test line 2:\n"),
        (1, b"all\n"),
        (1, b"b:1:1: E1 bad\n"),
        (1, b"Checked all files: 1 errors.\n"),
    ]
    assert attributed(lines, ["all", "b", "test"]) == ["test", "all", "b", "-"]


def test_a_name_with_a_space_is_not_taken_for_the_file_named_by_its_last_word() -> None:
    lines = [(1, b"F401 unused\n"), (1, b" --> my a.py:1:8\n"), (1, b"would reformat my a.py\n")]
    assert attributed(lines, ["a.py", "my a.py"]) == ["my a.py"] * 3


def test_a_line_naming_several_files_without_a_location_is_no_files() -> None:
    lines = [(1, b"Checked a.py, b.py: 1 problems\n"), (1, b"lint-warning: c.py: line too long\n")]
    assert attributed(lines, ["a.py", "b.py", "c.py"]) == ["-", "c.py"]
