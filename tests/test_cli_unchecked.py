"""A command with nothing declared replays until its key changes, but never silently."""

from __future__ import annotations

import os
import pty
from typing import TYPE_CHECKING

from support import counting, jobstamp, read_until, runs, started

if TYPE_CHECKING:
    from pathlib import Path

UNCHECKED = "no file is checked for this result (no --dependencies, no --trace)"


def test_explain_says_no_file_is_checked_on_a_run_and_a_replay(tmp_path: Path) -> None:
    counter = tmp_path / "count"
    command = counting(counter, "echo out")
    for _ in range(2):
        done = jobstamp("--explain", "--", *command, cwd=tmp_path)
        assert done.stdout == b"out\n"
        said = done.stderr.decode().splitlines()
        assert any(UNCHECKED in line and "Add --trace" in line for line in said), said
    assert runs(counter) == 1  # the meaning stays: it replays


def test_declared_or_traced_results_say_nothing_of_it(tmp_path: Path) -> None:
    (tmp_path / "dep").write_text("")
    done = jobstamp("--explain", "--dependencies", "dep", "--", "echo", "x", cwd=tmp_path)
    assert UNCHECKED not in done.stderr.decode()


def test_captured_output_gets_no_hint(tmp_path: Path) -> None:
    for _ in range(2):
        done = jobstamp("--", "echo", "out", cwd=tmp_path)
        assert (done.stdout, done.stderr) == (b"out\n", b"")


def hinted(cwd: Path, *command: str) -> str:
    """Run jobstamp with stderr on a terminal; return what reached the terminal."""
    master, slave = pty.openpty()
    try:
        with started("--", *command, cwd=cwd, stderr=slave) as proc:
            os.close(slave)
            slave = -1
            said = read_until(master, None).decode()
            assert proc.wait() == 0
            assert proc.stdout is not None
            assert proc.stdout.read() == b"out\n"
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)
    return said


def test_a_stored_run_hints_once_on_a_terminal(tmp_path: Path) -> None:
    first = hinted(tmp_path, "echo", "out")
    assert first.count("\n") == 1
    assert first.startswith("jobstamp: hint: " + UNCHECKED)
    assert "add --trace" in first
    assert hinted(tmp_path, "echo", "out") == ""  # a replay: stored already, said already
