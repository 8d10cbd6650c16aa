"""The ``jobstamp`` command line end to end: options, keys, explanations, faults, concurrency."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from jobstamps import cli
from jobstamps.errors import UsageError
from jobstamps.store import Store
from support import (
    JOBSTAMP,
    TIMEOUT,
    WAIT_FOR_FILE,
    cache_blobs,
    cache_entries,
    cache_packs,
    changed_env,
    counting,
    counting_python,
    jobstamp,
    python_for_user,
    read_until,
    runs,
    started,
    wait_until,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping


def lines(data: bytes) -> list[str]:
    return data.decode("utf-8", "replace").splitlines()


# -- parsing and usage errors -------------------------------------------------------------------


def test_parse_reads_every_kind_of_option() -> None:
    options = cli.parse(
        [
            "--dependencies",
            "a",
            "b",
            "--output-files=o",
            "--output-files=-p",
            "--env",
            "X",
            "--env=Y",
            "--stamp-directory=s",
            "--use-hashes",
            "--stdin",
            "--",
            "cmd",
            "--dependencies",
            "--",
        ]
    )
    assert options.dependencies == ["a", "b"]
    assert options.output_files == ["o", "-p"]
    assert options.env == ["X", "Y"]
    assert options.stamp_directory == "s"
    assert (options.use_hashes, options.stdin, options.force) == (True, True, False)
    assert options.command == ["cmd", "--dependencies", "--"]


def test_a_file_whose_name_starts_with_a_dash_can_be_a_dependency(tmp_path: Path) -> None:
    options = cli.parse(["--dependencies=-x", "--dependencies", "./-y", "z", "--", "true"])
    assert options.dependencies == ["-x", "./-y", "z"]
    (tmp_path / "-x").write_text("1")
    command = counting(tmp_path / "counter", "echo ran")
    for count, edit in ((1, False), (1, False), (2, True)):
        if edit:
            (tmp_path / "-x").write_text("22")
        done = jobstamp("--dependencies=-x", "--", *command, cwd=tmp_path)
        assert (done.returncode, done.stderr, runs(tmp_path / "counter")) == (0, b"", count)


def test_messages_naming_a_file_with_a_newline_stay_one_line(tmp_path: Path) -> None:
    (tmp_path / "new\nline").write_text("1")
    jobstamp("--dependencies", "new\nline", "--", "true", cwd=tmp_path)
    (tmp_path / "new\nline").write_text("22")
    said = [
        jobstamp("--explain", "--dependencies", "new\nline", "--", "true", cwd=tmp_path).stderr,
        jobstamp("--", "./no\nsuch", cwd=tmp_path).stderr,
        jobstamp("--explain", "--per-file", "--", "true", "--", "new\nline", cwd=tmp_path).stderr,
    ]
    assert b"new\\nline changed" in said[0]
    for text in said:
        assert text
        assert all(line.startswith("jobstamp: ") for line in lines(text)), text


def test_a_dash_for_piped_standard_input_runs_uncached_unless_stdin_is_given(
    tmp_path: Path,
) -> None:
    for data in (b"one\n", b"two\n"):
        done = jobstamp("--", "cat", "-", cwd=tmp_path, data=data)
        assert done.stdout == data
        assert jobstamp("--stdin", "--", "cat", "-", cwd=tmp_path, data=data).stdout == data
    stored = jobstamp("--explain", "--", "cat", "-", cwd=tmp_path, stdin=subprocess.DEVNULL)
    assert b"stored the result" in stored.stderr


def test_the_short_options_of_ccache() -> None:
    options = cli.parse(["-s", "-C", "-z", "-M", "5G"])
    assert (options.show_stats, options.clear, options.zero_stats) == (True, True, True)
    assert options.max_size == "5G"
    assert cli.parse(["-M5Gi"]).max_size == "5Gi"
    clustered = cli.parse(["-sz"])
    assert (clustered.show_stats, clustered.clear, clustered.zero_stats) == (True, False, True)
    clustered = cli.parse(["-szM5G"])
    assert (clustered.show_stats, clustered.zero_stats, clustered.max_size) == (True, True, "5G")
    with pytest.raises(UsageError, match="unknown option"):
        cli.parse(["-sq"])


def test_a_forgotten_separator_names_where_the_command_starts(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.py").write_text("")
    args = ["--dependencies", "src/a.py", "flake8", "--max-line-length=100", "src/a.py"]
    done = jobstamp(*args, cwd=tmp_path)
    assert_usage_error(done.returncode, done.stdout, done.stderr, "unknown option")
    message = lines(done.stderr)[0]
    assert "--max-line-length" in message
    assert "the command seems to start at 'flake8'" in message
    assert "put the command after '--'" in message
    done = jobstamp(*args[:3], cwd=tmp_path)
    assert_usage_error(
        done.returncode, done.stdout, done.stderr, "(the command seems to start at 'flake8')"
    )


USAGE_ERRORS = [
    pytest.param([], "no command given", id="nothing"),
    pytest.param(["true"], "'true' is not an option", id="no-separator"),
    pytest.param(["--explain", "echo", "hi"], "'echo' is not an option", id="no-separator-flag"),
    pytest.param(["--dependencies", "a", "true"], "no command given", id="no-separator-paths"),
    pytest.param(["--"], "no command after '--'", id="nothing-after-separator"),
    pytest.param(["--force", "--"], "no command after '--'", id="flag-nothing-after"),
    pytest.param(["--bogus", "--", "true"], "unknown option --bogus", id="unknown"),
    pytest.param(["--dep", "a", "--", "true"], "unknown option --dep", id="abbreviation"),
    pytest.param(["-x", "--", "true"], "unknown option -x", id="unknown-short"),
    pytest.param(["--env"], "--env needs a value", id="missing-value-end"),
    pytest.param(["--env", "--", "true"], "--env needs a value", id="missing-value"),
    pytest.param(["--stamp-directory"], "--stamp-directory needs a value", id="missing-dir"),
    pytest.param(["--max-size"], "--max-size needs a value", id="missing-size"),
    pytest.param(["--max-size", "garbage"], "'garbage' is not a size", id="size-garbage"),
    pytest.param(["--max-size", "12Q"], "'12Q' is not a size", id="size-unit"),
    pytest.param(["--max-size=-5"], "'-5' is not a size", id="size-negative"),
    pytest.param(["--use-hashes=yes", "--", "true"], "--use-hashes takes no value", id="flag-val"),
    pytest.param(["--clear", "--", "true"], "take no command", id="clear-with-command"),
    pytest.param(["--show-stats", "--", "true"], "take no command", id="stats-with-command"),
    pytest.param(["--max-size", "1G", "--", "true"], "take no command", id="size-with-command"),
    pytest.param(["--version", "--", "true"], "take no command", id="version-with-command"),
    pytest.param(["--dependencies", "--", "true"], "lists no file", id="empty-dependencies"),
    pytest.param(["--output-files", "--", "true"], "lists no file", id="empty-outputs"),
    pytest.param(["--dependencies", "", "--", "true"], "empty file name", id="empty-name"),
    pytest.param(["--dependencies=", "--", "true"], "empty file name", id="empty-name-equals"),
    pytest.param(["--dependencies", "a", "-x", "--", "t"], "unknown option -x", id="unknown-after"),
    pytest.param(["-M", "--", "true"], "--max-size needs a value", id="short-missing-value"),
    pytest.param(["-q"], "unknown option -q", id="unknown-short-alone"),
    pytest.param(["--env", "A=1", "--", "t"], "--env takes the name of a variable", id="env-value"),
    pytest.param(["--env=", "--", "t"], "--env takes the name of a variable", id="env-empty"),
]


def assert_usage_error(status: int, out: bytes, err: bytes, message: str) -> None:
    assert status == 2
    assert out == b""
    assert b"Traceback" not in err
    assert len(lines(err)) == 2, err
    first, usage = lines(err)
    assert first.startswith("jobstamp: ")
    assert message in first
    assert usage.startswith("usage: jobstamp ")


# One of each kind through a real process; every one of them in-process below.
KINDS = ["nothing", "no-separator", "nothing-after-separator", "unknown", "missing-value"]
KINDS += ["size-garbage", "flag-val", "clear-with-command", "empty-dependencies", "empty-name"]


@pytest.mark.parametrize(("args", "message"), [case for case in USAGE_ERRORS if case.id in KINDS])
def test_usage_errors(args: list[str], message: str, tmp_path: Path) -> None:
    done = jobstamp(*args, cwd=tmp_path)
    assert_usage_error(done.returncode, done.stdout, done.stderr, message)


@pytest.mark.parametrize(("args", "message"), USAGE_ERRORS)
def test_usage_errors_in_process(
    args: list[str], message: str, capfdbinary: pytest.CaptureFixture[bytes]
) -> None:
    status = cli.main(args)
    out, err = capfdbinary.readouterr()
    assert_usage_error(status, out, err, message)


def test_a_stamp_directory_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    for directory in ("file", "file/sub"):
        counter = tmp_path / "counter"
        for args in (["--", *counting(counter, "echo hi")], ["--show-stats"], ["--clear"]):
            done = jobstamp("--stamp-directory", directory, *args, cwd=tmp_path)
            # Running is refused as a usage error; management fails in one line.
            assert (done.returncode, done.stdout) == (1 if args[0] != "--" else 2, b"")
            assert b"Traceback" not in done.stderr
            assert lines(done.stderr)[0].startswith("jobstamp: cache directory ")
            assert "file" in lines(done.stderr)[0]
        assert runs(counter) == 0
    assert (tmp_path / "file").read_text() == ""


def test_an_unusable_stamp_directory_is_one_line_without_usage(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    done = jobstamp("--stamp-directory", "file", "--", "true", cwd=tmp_path)
    assert (done.returncode, done.stdout) == (2, b"")
    message = (
        f"jobstamp: cache directory {tmp_path / 'file'} is unusable (it exists and is not a "
        "directory). Remove it or choose another directory"
    )
    assert lines(done.stderr) == [message]


@pytest.mark.parametrize("mode", [0o775, 0o1777])
def test_a_stamp_directory_others_can_write_is_refused(tmp_path: Path, mode: int) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(mode)
    counter = tmp_path / "counter"
    for args in (["--", *counting(counter, "echo hi")], ["--show-stats"], ["--clear"]):
        done = jobstamp("--stamp-directory", shared, *args)
        assert (done.returncode, done.stdout) == (1 if args[0] != "--" else 2, b"")
        assert b"Traceback" not in done.stderr
        (message,) = lines(done.stderr)
        assert message.startswith(
            f"jobstamp: cache directory {shared} is unusable (writable by other users). "
        )
        if mode & 0o1000:  # sticky: shared on purpose, like /tmp; chmod would break that
            assert "chmod" not in message
            assert "Choose a directory of your own" in message
        else:
            assert f"chmod go-w {shared}" in message
    assert runs(counter) == 0
    done = jobstamp("--", *counting(counter, "echo hi"), env={"JOBSTAMPS_CACHE_DIR": str(shared)})
    assert (done.returncode, done.stdout, runs(counter)) == (0, b"hi\n", 1)
    assert list(shared.iterdir()) == []


def test_the_stamp_directory_option_and_the_default_locations(
    tmp_path: Path, isolated_cache: Path
) -> None:
    counter = tmp_path / "counter"
    command = counting(counter, "echo hi")
    jobstamp("--stamp-directory", "stamps", "--", *command, cwd=tmp_path)
    assert len(cache_entries(tmp_path / "stamps")) == 1
    assert (tmp_path / "stamps").stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "stamps" / "CACHEDIR.TAG").read_bytes().startswith(b"Signature: 8a477f")
    assert not isolated_cache.exists()

    jobstamp("--", *command)
    assert len(cache_entries(isolated_cache)) == 1
    xdg = tmp_path / "xdg"
    jobstamp("--", *command, env={"JOBSTAMPS_CACHE_DIR": None, "XDG_CACHE_HOME": str(xdg)})
    assert len(cache_entries(xdg / "jobstamps")) == 1
    assert runs(counter) == 3


# -- what the key holds -------------------------------------------------------------------------


def test_stdin_is_keyed(tmp_path: Path) -> None:
    counter = tmp_path / "counter"
    command = counting(counter, "cat")
    expected_runs = 0
    for data, new in ((b"a\n", True), (b"a\n", False), (b"b\n", True), (b"", True)):
        expected_runs += new
        done = jobstamp("--stdin", "--", *command, data=data)
        assert done.stdout == data
        assert runs(counter) == expected_runs
    # Without --stdin the same command line is another job, and stdin is not fed.
    done = jobstamp("--", *command, data=b"a\n")
    assert done.stdout == b"a\n"
    assert runs(counter) == expected_runs + 1


def test_declared_environment_variables_are_keyed(tmp_path: Path) -> None:
    counter = tmp_path / "counter"
    command = counting(counter, 'echo "[${FLAG-unset}]"')
    steps: list[tuple[str | None, bytes, int]] = [
        ("1", b"[1]\n", 1),
        ("1", b"[1]\n", 1),
        ("2", b"[2]\n", 2),
        ("", b"[]\n", 3),
        (None, b"[unset]\n", 4),
        (None, b"[unset]\n", 4),
        ("", b"[]\n", 4),
    ]
    for value, out, count in steps:
        done = jobstamp("--env", "FLAG", "--", *command, env={"FLAG": value, "OTHER": value})
        assert (done.stdout, runs(counter)) == (out, count)
    # An undeclared variable is not part of the key.
    done = jobstamp("--env=FLAG", "--", *command, env={"FLAG": "1", "OTHER": "changed"})
    assert (done.stdout, runs(counter)) == (b"[1]\n", 4)


def test_the_working_directory_is_keyed(tmp_path: Path) -> None:
    counter = tmp_path / "counter"
    command = counting(counter, "pwd")
    for name, count in (("a", 1), ("b", 2), ("a", 2), ("b", 2)):
        (tmp_path / name).mkdir(exist_ok=True)
        done = jobstamp("--", *command, cwd=tmp_path / name)
        assert done.stdout.decode().strip() == os.path.realpath(tmp_path / name)
        assert runs(counter) == count


def test_the_executable_is_keyed(tmp_path: Path) -> None:
    counter = tmp_path / "counter"
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    path = f"{first}{os.pathsep}{second}{os.pathsep}{os.environ['PATH']}"

    def install(directory: Path, body: str, mtime_ns: int) -> None:
        new = directory / "tool.new"
        new.write_text(f'#!/bin/sh\necho ran >> "{counter}"\n{body}\n')
        new.chmod(0o755)
        os.utime(new, ns=(mtime_ns, mtime_ns))
        os.replace(new, directory / "tool")  # as an upgrade does

    def tool() -> bytes:
        done = jobstamp("--", "tool", "arg", env={"PATH": path})
        assert done.returncode == 0
        return done.stdout

    install(first, "echo v1", 1_000_000_000_000_000_000)
    assert (tool(), tool(), runs(counter)) == (b"v1\n", b"v1\n", 1)
    install(first, "echo v2.0", 1_000_000_000_000_000_000)  # another size
    assert (tool(), tool(), runs(counter)) == (b"v2.0\n", b"v2.0\n", 2)
    install(first, "echo v3.0", 1_000_000_001_000_000_000)  # same size, another mtime
    assert (tool(), tool(), runs(counter)) == (b"v3.0\n", b"v3.0\n", 3)
    (first / "tool").unlink()
    install(second, "echo v3.0", 1_000_000_001_000_000_000)  # the same file elsewhere on PATH
    assert (tool(), tool(), runs(counter)) == (b"v3.0\n", b"v3.0\n", 4)


def test_relative_paths_are_resolved_against_the_working_directory(tmp_path: Path) -> None:
    counter = tmp_path / "counter"
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "dep.txt").write_text(name)
        (tmp_path / name / "tool.sh").write_text(f'#!/bin/sh\necho ran >> "{counter}"\ncat "$1"\n')
        (tmp_path / name / "tool.sh").chmod(0o755)

    def call(where: str, dep: str) -> bytes:
        done = jobstamp("--dependencies", dep, "--", "./tool.sh", "dep.txt", cwd=tmp_path / where)
        assert done.returncode == 0
        return done.stdout

    assert (call("a", "dep.txt"), call("b", "dep.txt"), runs(counter)) == (b"a", b"b", 2)
    # The same file, however it is named, is the same job.
    for spelling in ("dep.txt", "./dep.txt", str(tmp_path / "a" / "dep.txt"), "../a/dep.txt"):
        assert call("a", spelling) == b"a"
    assert runs(counter) == 2
    # Changing b's dependency re-runs b only.
    (tmp_path / "b" / "dep.txt").write_text("B, changed")
    assert (call("a", "dep.txt"), call("b", "dep.txt"), runs(counter)) == (b"a", b"B, changed", 3)


def run_in_terminal(
    *args: str, size: tuple[int, int] | None = None, only: int | None = None
) -> tuple[int, bytes, bytes]:
    """Run jobstamp with stdout and stderr (``only`` one of them: 1 or 2; the other is piped)
    on a new pseudo-terminal of ``size`` (rows, columns); return its status, what reached the
    terminal, and what reached the pipe."""
    master, slave = pty.openpty()
    if size is not None:
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", *size, 0, 0))
    try:
        proc = subprocess.Popen(
            [*JOBSTAMP, *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if only == 2 else slave,
            stderr=subprocess.PIPE if only == 1 else slave,
        )
    finally:
        os.close(slave)
    piped = proc.stdout or proc.stderr
    try:
        output = read_until(master, None)
        # A command with nothing declared gets a hint once, on a terminal (test_cli_unchecked).
        output = re.sub(rb"jobstamp: hint: [^\n]*\n", b"", output)
        return proc.wait(TIMEOUT), output, piped.read() if piped is not None else b""
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait(TIMEOUT)
        if piped is not None:
            piped.close()


TTY_PROBE = "if [ -t 1 ]; then echo terminal; else echo pipe; fi; echo err >&2"


def test_terminal_and_pipe_results_are_kept_apart(tmp_path: Path) -> None:
    counter = tmp_path / "counter"
    for first in ("pipe", "terminal"):
        command = counting(counter, TTY_PROBE + f" # {first} first")
        before = runs(counter)
        calls = (
            ["pipe", "terminal", "terminal", "pipe"] if first == "pipe" else ["terminal", "pipe"]
        )
        outputs: dict[str, bytes] = {}
        for where in calls:
            if where == "pipe":
                done = jobstamp("--", *command, merged=True)
                status, output = done.returncode, done.stdout
            else:
                status, output, _ = run_in_terminal("--", *command)
            assert status == 0
            outputs.setdefault(where, output)
            assert output == outputs[where]  # a hit replays what was recorded for this place
        assert runs(counter) == before + 2  # once into a pipe, once into a terminal
        assert outputs == {"pipe": b"pipe\nerr\n", "terminal": b"terminal\r\nerr\r\n"}


def test_a_command_sees_a_terminal_of_the_same_size_when_jobstamp_has_one(
    tmp_path: Path,
) -> None:
    command = counting(tmp_path / "counter", TTY_PROBE + "; stty size <&1")
    for _ in range(2):  # live, then replayed
        status, output, _ = run_in_terminal("--", *command, size=(37, 123))
        assert (status, output) == (0, b"terminal\r\nerr\r\n37 123\r\n")
    assert runs(tmp_path / "counter") == 1


@pytest.mark.parametrize(
    ("only", "expected"),
    [(1, (b"out:terminal\r\n", b"err:pipe\n")), (2, (b"err:terminal\r\n", b"out:pipe\n"))],
)
def test_a_terminal_on_one_stream(tmp_path: Path, only: int, expected: tuple[bytes, bytes]) -> None:
    probe = (
        "[ -t 1 ] && echo out:terminal || echo out:pipe; "
        "[ -t 2 ] && echo err:terminal >&2 || echo err:pipe >&2"
    )
    command = counting(tmp_path / "counter", probe)
    for _ in range(2):
        status, output, piped = run_in_terminal("--", *command, only=only)
        assert (status, output, piped) == (0, *expected)
    assert runs(tmp_path / "counter") == 1


def test_all_output_written_to_a_terminal_is_recorded(tmp_path: Path) -> None:
    code = "import sys\nsys.stdout.write(''.join(f'line {i}\\n' for i in range(30000)))\n"
    command = counting_python(tmp_path / "counter", code)
    expected = "".join(f"line {i}\r\n" for i in range(30000)).encode()
    for _ in range(2):
        status, output, _ = run_in_terminal("--", *command)
        assert (status, len(output), output == expected) == (0, len(expected), True)
    assert runs(tmp_path / "counter") == 1


# -- explanations -------------------------------------------------------------------------------

WHEN = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"


def test_explain_says_why_on_stderr_only(tmp_path: Path) -> None:
    counter = tmp_path / "counter"
    dep, out = tmp_path / "dep.txt", tmp_path / "out.txt"
    dep.write_text("1")
    command = counting(counter, f'cat "{dep}"; echo made > "{out}"; echo warn >&2')
    args = ["--explain", "--dependencies", str(dep), "--output-files", str(out), "--", *command]

    def explained() -> list[str]:
        done = jobstamp(*args)
        assert done.returncode == 0
        assert done.stdout == dep.read_bytes()  # explanations never go to stdout
        assert b"warn\n" in done.stderr
        return [line for line in lines(done.stderr) if line != "warn"]

    ran = explained()
    assert re.fullmatch(r"jobstamp: running sh -c .*: nothing is stored yet .*", ran[0])
    assert ran[1].startswith("jobstamp: stored the result of sh -c ")
    replayed = explained()
    assert len(replayed) == 1
    assert re.fullmatch(
        rf"jobstamp: replayed sh -c .*: nothing changed since it ran at {WHEN}", replayed[0]
    )
    dep.write_text("22")
    assert re.fullmatch(
        rf"jobstamp: running .*: dependency {re.escape(str(dep))} changed: .*", explained()[0]
    )
    out.unlink()
    assert re.fullmatch(
        rf"jobstamp: running .*: output {re.escape(str(out))} is missing", explained()[0]
    )
    with out.open("a") as handle:
        handle.write("edited")
    assert re.fullmatch(
        rf"jobstamp: running .*: output {re.escape(str(out))} changed since .*", explained()[0]
    )
    assert runs(counter) == 4

    other = jobstamp("--explain", "--", *counting(counter, "exit 1"))
    assert other.stdout == b""
    assert "no result is stored for this key" in lines(other.stderr)[0]
    forced = jobstamp(
        "--explain", "--force", "--no-store-failures", "--", *counting(counter, "exit 1")
    )
    assert [line.split(": ", 2)[-1] for line in lines(forced.stderr)][:2] == [
        "a re-run was forced",
        "it failed (exit status 1) and --no-store-failures is set",
    ]


def test_jobstamps_debug_turns_explanations_on(tmp_path: Path) -> None:
    command = counting(tmp_path / "counter", "echo out")
    for value, explains in (("1", True), ("0", False), ("", False), ("yes", True)):
        done = jobstamp("--", *command, env={"JOBSTAMPS_DEBUG": value})
        assert done.stdout == b"out\n"
        assert done.stderr.startswith(b"jobstamp: ") == explains
    assert runs(tmp_path / "counter") == 1
    assert jobstamp("--", *command).stderr == b""


def test_jobstamps_disabled_runs_without_the_cache(tmp_path: Path, isolated_cache: Path) -> None:
    command = counting(tmp_path / "counter", "echo out; echo err >&2; exit 6")
    for count in (1, 2):
        done = jobstamp("--", *command, env={"JOBSTAMPS_DISABLED": "1"})
        assert (done.returncode, done.stdout, done.stderr) == (6, b"out\n", b"err\n")
        assert runs(tmp_path / "counter") == count
    assert not isolated_cache.exists()
    for _ in range(2):
        assert jobstamp("--", *command, env={"JOBSTAMPS_DISABLED": "0"}).returncode == 6
    assert runs(tmp_path / "counter") == 3


# -- dependencies and outputs -------------------------------------------------------------------


def test_a_missing_output_runs_again(tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    command = counting(tmp_path / "counter", f'wc -l < "$0" > "{out}"; echo done')
    for expected_runs in (1, 1):
        jobstamp("--output-files", out, "--", *command)
        assert runs(tmp_path / "counter") == expected_runs
    out.unlink()
    done = jobstamp("--output-files", out, "--", *command)
    assert (done.stdout, out.read_text().strip(), runs(tmp_path / "counter")) == (b"done\n", "2", 2)


def test_an_output_the_command_does_not_make_is_never_replayed(
    tmp_path: Path, isolated_cache: Path
) -> None:
    command = counting(tmp_path / "counter", "echo done")
    for count in (1, 2):
        done = jobstamp("--explain", "--output-files", tmp_path / "never", "--", *command)
        assert done.stdout == b"done\n"
        assert runs(tmp_path / "counter") == count
    assert "was not created; it runs again next time" in lines(done.stderr)[-2]
    assert "is missing; the stored run did not create it" in lines(done.stderr)[0]
    assert len(cache_entries(isolated_cache)) == 1  # stored, to name the output that is missing


def test_a_missing_dependency_never_hits(tmp_path: Path) -> None:
    command = counting(tmp_path / "counter", "echo done")
    for count in (1, 2, 3):
        done = jobstamp("--explain", "--dependencies", tmp_path / "absent", "--", *command)
        assert (done.returncode, done.stdout, runs(tmp_path / "counter")) == (0, b"done\n", count)
        assert b"jobstamp: replayed" not in done.stderr


def test_a_missing_dependency_is_named_on_every_run(tmp_path: Path) -> None:
    command = counting(tmp_path / "counter", "echo done")
    warning = (
        "jobstamp: dependency setup.cfg does not exist, so the result will not be replayed. "
        "Create it or drop it from --dependencies"
    )
    for count in (1, 2):
        done = jobstamp("--dependencies", "setup.cfg", "--", *command, cwd=tmp_path)
        assert (done.returncode, done.stdout, runs(tmp_path / "counter")) == (0, b"done\n", count)
        assert lines(done.stderr) == [warning]
    explained = jobstamp("--explain", "--dependencies", "setup.cfg", "--", *command, cwd=tmp_path)
    assert f"dependency {tmp_path / 'setup.cfg'} does not exist" in lines(explained.stderr)[0]
    assert warning in lines(explained.stderr)
    (tmp_path / "setup.cfg").write_text("")
    for count, said in ((4, [b""]), (4, [b""])):
        done = jobstamp("--dependencies", "setup.cfg", "--", *command, cwd=tmp_path)
        assert ([done.stderr], runs(tmp_path / "counter")) == (said, count)


GONE = (
    "the working directory cannot be found (No such file or directory), so the cache is not "
    "used. Run jobstamp from a directory that exists"
)


def test_a_deleted_working_directory_runs_the_command_without_the_cache(
    tmp_path: Path, isolated_cache: Path
) -> None:
    gone = tmp_path / "gone"
    gone.mkdir()
    counter = tmp_path / "counter"
    run = [*JOBSTAMP, "--", *counting(counter, "echo out; exit 3")]
    script = f"import os; os.rmdir({str(gone)!r}); os.execv({sys.executable!r}, {run!r})"
    for count in (1, 2):
        gone.mkdir(exist_ok=True)
        done = subprocess.run(
            [sys.executable, "-c", script],
            cwd=gone,
            capture_output=True,
            timeout=TIMEOUT,
            check=False,
        )
        assert (done.returncode, done.stdout, runs(counter)) == (3, b"out\n", count)
        assert b"Traceback" not in done.stderr
        assert b"internal error" not in done.stderr
        ours = [line for line in lines(done.stderr) if line.startswith("jobstamp: ")]
        assert ours == [f"jobstamp: {GONE}"]
    assert cache_entries(isolated_cache) == []


def test_restore_outputs_brings_back_deleted_outputs(tmp_path: Path) -> None:
    out = tmp_path / "gen" / "out.bin"
    out.parent.mkdir()
    content = bytes(range(256)) * 300
    code = (
        "import os, sys\n"
        "open(sys.argv[1], 'wb').write(bytes(range(256)) * 300)\n"
        "os.chmod(sys.argv[1], 0o750)\n"
    )
    command = counting(tmp_path / "counter", f'"{sys.executable}" -c "$1" "$2"; echo made')
    command += [code, str(out)]
    args = ["--output-files", str(out), "--restore-outputs", "--"]
    jobstamp(*args, *command)
    out.unlink()
    done = jobstamp("--explain", *args, *command)
    assert done.stdout == b"made\n"
    assert f"restored output {out}" in done.stderr.decode()
    assert out.read_bytes() == content
    assert out.stat().st_mode & 0o777 == 0o750
    assert runs(tmp_path / "counter") == 1
    # A restored output counts as unchanged; an edited one re-runs the command.
    jobstamp(*args, *command)
    assert runs(tmp_path / "counter") == 1
    out.write_bytes(b"edited")
    jobstamp(*args, *command)
    assert (out.read_bytes(), runs(tmp_path / "counter")) == (content, 2)
    # Without --restore-outputs a deleted output means a re-run.
    out.unlink()
    jobstamp("--output-files", out, "--", *command)
    assert (out.read_bytes(), runs(tmp_path / "counter")) == (content, 3)


def test_touch_reruns_by_stat_but_not_with_hashes(tmp_path: Path) -> None:
    dep = tmp_path / "dep.txt"
    dep.write_text("one")
    counter = tmp_path / "counter"
    command = counting(counter, f'cat "{dep}"')

    def call(*options: str, env: Mapping[str, str | None] | None = None) -> bytes:
        return jobstamp(*options, "--dependencies", dep, "--", *command, env=env).stdout

    def touch() -> None:
        stat = dep.stat()
        os.utime(dep, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))

    assert (call(), call(), runs(counter)) == (b"one", b"one", 1)
    touch()
    assert (call(), runs(counter)) == (b"one", 2)

    assert (call("--use-hashes"), call("--use-hashes"), runs(counter)) == (b"one", b"one", 3)
    touch()
    assert (call("--use-hashes"), runs(counter)) == (b"one", 3)
    dep.write_text("two")
    assert (call("--use-hashes"), call("--use-hashes"), runs(counter)) == (b"two", b"two", 4)
    # JOBSTAMPS_ALWAYS_USE_HASHES means --use-hashes: the same job.
    touch()
    always = {"JOBSTAMPS_ALWAYS_USE_HASHES": "1"}
    assert (call(env=always), call(env=always), runs(counter)) == (b"two", b"two", 4)
    dep.write_text("three")
    assert (call(env=always), call("--use-hashes"), runs(counter)) == (b"three", b"three", 5)


def test_an_edit_that_keeps_size_and_mtime_runs_again(tmp_path: Path) -> None:
    dep = tmp_path / "dep.txt"
    dep.write_text("AAAA")
    counter = tmp_path / "counter"
    command = counting(counter, f'cat "{dep}"')
    assert jobstamp("--dependencies", dep, "--", *command).stdout == b"AAAA"
    mtime = dep.stat().st_mtime_ns
    dep.write_text("BBBB")
    os.utime(dep, ns=(mtime, mtime))
    assert jobstamp("--dependencies", dep, "--", *command).stdout == b"BBBB"
    assert runs(counter) == 2


def test_force_runs_and_stores_the_new_result(tmp_path: Path) -> None:
    counter = tmp_path / "counter"
    command = counting(counter, 'wc -l < "$0"')

    def call(*options: str) -> int:
        return int(jobstamp(*options, "--", *command).stdout)

    assert (call(), call(), call("--force"), call(), call("--force"), call()) == (1, 1, 2, 2, 3, 3)
    assert runs(counter) == 3


# -- edits while the command runs ---------------------------------------------------------------


def test_a_command_that_edits_its_own_dependency_runs_every_time(tmp_path: Path) -> None:
    dep = tmp_path / "dep.txt"
    dep.write_text("start\n")
    command = counting(tmp_path / "counter", f'echo more >> "{dep}"; echo done')
    for options in ([], ["--use-hashes"]):
        before = runs(tmp_path / "counter")
        for count in (1, 2, 3):
            done = jobstamp("--explain", *options, "--dependencies", dep, "--", *command)
            assert done.stdout == b"done\n"
            assert runs(tmp_path / "counter") == before + count
            assert f"not stored: dependency {dep} changed while the job ran" in done.stderr.decode()


def test_a_dependency_edited_during_the_run_is_not_stored(tmp_path: Path) -> None:
    dep = tmp_path / "dep.txt"
    dep.write_text("old")
    code = (
        "import sys\n"
        "print(open(sys.argv[2]).read(), flush=True)\n" + WAIT_FOR_FILE + "print('end')\n"
    )
    command = [sys.executable, "-c", code, str(tmp_path / "release"), str(dep)]
    with started("--dependencies", dep, "--", *command) as proc:
        assert proc.stdout is not None
        assert read_until(proc.stdout.fileno(), b"\n") == b"old\n"
        dep.write_text("new")  # the run read the old contents
        (tmp_path / "release").touch()
        out, _ = proc.communicate(timeout=TIMEOUT)
    assert (proc.returncode, out) == (0, b"end\n")
    done = jobstamp("--dependencies", dep, "--", *command)
    assert done.stdout == b"new\nend\n"


# -- concurrency and faults ---------------------------------------------------------------------


def _waiting_for_lock(pids: set[int]) -> int:
    """Count processes among ``pids`` blocked on a file lock (Linux's /proc/locks)."""
    with open("/proc/locks", encoding="ascii") as handle:
        blocked = [line.split() for line in handle if " -> FLOCK " in line]
    return sum(int(fields[5]) in pids for fields in blocked)


def test_identical_concurrent_calls_run_the_command_once(
    tmp_path: Path, isolated_cache: Path
) -> None:
    counter = tmp_path / "counter"
    release = tmp_path / "release"
    script = (
        f'echo out1; echo err1 >&2; while [ ! -e "{release}" ]; do sleep 0.01; done; '
        "printf 'out2'; exit 3"
    )
    command = counting(counter, script)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.extend(  # one by one, so that those started are cleaned up if one fails
            subprocess.Popen(
                [*JOBSTAMP, "--", *command],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for _ in range(8)
        )
        wait_until(lambda: runs(counter) == 1, "the first run to start")
        if os.path.exists("/proc/locks"):  # let the other seven reach the lock first
            pids = {proc.pid for proc in procs}
            wait_until(lambda: _waiting_for_lock(pids) == 7, "seven calls waiting on the lock")
        release.touch()
        results = [(proc.communicate(timeout=TIMEOUT), proc.returncode) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert results == [((b"out1\nout2", b"err1\n"), 3)] * 8
    assert runs(counter) == 1
    (entry,) = cache_entries(isolated_cache)
    stored, problem = Store(str(isolated_cache)).read(os.path.basename(entry))
    assert stored is not None, problem
    assert Store(str(isolated_cache)).stats()["misses"] == 1


def test_a_killed_jobstamp_leaves_no_entry_and_a_valid_cache(
    tmp_path: Path, isolated_cache: Path
) -> None:
    counter = tmp_path / "counter"
    release = tmp_path / "release"
    code = (
        "import os, sys\n"
        "open(sys.argv[2], 'a').write('ran\\n')\n"
        "os.write(1, b'x' * 100000 + b'\\n')\n" + WAIT_FOR_FILE + "os.write(1, b'end\\n')\n"
    )
    command = [sys.executable, "-c", code, str(release), str(counter)]
    with started("--", *command) as proc:
        assert proc.stdout is not None
        assert len(read_until(proc.stdout.fileno(), b"\n")) == 100001
        proc.send_signal(signal.SIGKILL)
        proc.wait(TIMEOUT)
    release.touch()  # the orphaned command ends
    assert cache_entries(isolated_cache) == []
    assert cache_blobs(isolated_cache) == []
    assert Store(str(isolated_cache)).stats()["entries"] == 0

    for count in (2, 2):
        done = jobstamp("--", *command)
        assert (done.returncode, done.stdout) == (0, b"x" * 100000 + b"\nend\n")
        assert runs(counter) == count
    assert len(cache_entries(isolated_cache)) == 1


# -- our own faults never fail the build --------------------------------------------------------


def test_an_internal_error_before_running_still_runs_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfdbinary: pytest.CaptureFixture[bytes]
) -> None:
    from jobstamps import key

    def broken(fields: object) -> str:
        raise RuntimeError("boom")

    monkeypatch.setattr(key, "command_key", broken)
    status = cli.main(["--", *counting(tmp_path / "counter", "echo out; exit 5")])
    out, err = capfdbinary.readouterr()
    assert (status, out, runs(tmp_path / "counter")) == (5, b"out\n", 1)
    (message,) = lines(err)
    assert message.startswith("jobstamp: internal error: RuntimeError('boom'); running the")
    assert "report" in message


def test_an_internal_error_after_running_keeps_the_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfdbinary: pytest.CaptureFixture[bytes]
) -> None:
    from jobstamps.engine import Engine

    def broken(*args: object) -> str:
        raise RuntimeError("boom")

    monkeypatch.setattr(Engine, "commit", broken)
    status = cli.main(["--", *counting(tmp_path / "counter", "echo out; exit 5")])
    out, err = capfdbinary.readouterr()
    assert (status, out, runs(tmp_path / "counter")) == (5, b"out\n", 1)  # run once, not twice
    (message,) = lines(err)
    assert message.startswith("jobstamp: internal error after the command ran: RuntimeError")


# -- what a dependency, an output and the executable stand for ---------------------------------


def test_a_dependency_through_a_link_and_dot_dot_is_the_file_the_command_reads(
    tmp_path: Path,
) -> None:
    (tmp_path / "real" / "inner").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "real" / "inner")
    (tmp_path / "real" / "cfg.txt").write_text("one\n")
    (tmp_path / "cfg.txt").write_text("a decoy the kernel never reads\n")
    counter = tmp_path / "counter"
    call = ("--dependencies", "link/../cfg.txt", "--", *counting(counter, "cat link/../cfg.txt"))
    assert jobstamp(*call, cwd=tmp_path).stdout == b"one\n"
    assert jobstamp(*call, cwd=tmp_path).stdout == b"one\n"
    (tmp_path / "real" / "cfg.txt").write_text("two, edited\n")
    assert jobstamp(*call, cwd=tmp_path).stdout == b"two, edited\n"
    assert runs(counter) == 2


@pytest.mark.parametrize("method", [[], ["--use-hashes"]])
def test_a_tool_that_makes_its_cache_folder_in_a_directory_dependency_is_stored(
    tmp_path: Path, method: list[str]
) -> None:
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    (project / "src" / "a.py").write_text("x = 1\n")
    counter = tmp_path / "counter"
    script = "mkdir -p .ruff_cache/0.1 && echo data > .ruff_cache/0.1/x && echo linted"
    call = (*method, "--explain", "--dependencies", ".", "--", *counting(counter, script))
    first = jobstamp(*call, cwd=project)
    assert "stored the result" in first.stderr.decode()
    (project / "src" / "__pycache__").mkdir()  # what importing the sources does
    (project / "src" / "__pycache__" / "a.cpython.pyc").write_bytes(b"\0")
    second = jobstamp(*call, cwd=project)
    assert (second.stdout, runs(counter)) == (b"linted\n", 1)
    assert "replayed" in second.stderr.decode()
    (project / "src" / "new-folder").mkdir()  # an empty folder counts
    jobstamp(*call, cwd=project)
    assert runs(counter) == 2


@pytest.mark.parametrize("method", [[], ["--use-hashes"]])
def test_a_directory_dependency_follows_a_link_to_a_directory(
    tmp_path: Path, method: list[str]
) -> None:
    (tmp_path / "tree").mkdir()
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "rules.cfg").write_text("strict\n")
    (tmp_path / "tree" / "vendor").symlink_to("../shared")
    (tmp_path / "tree" / "loop").symlink_to(".")  # must not make the walk endless
    counter = tmp_path / "counter"
    call = (*method, "--dependencies", "tree", "--", *counting(counter, "cat tree/vendor/*"))
    assert jobstamp(*call, cwd=tmp_path).stdout == b"strict\n"
    assert jobstamp(*call, cwd=tmp_path).stdout == b"strict\n"
    (tmp_path / "shared" / "rules.cfg").write_text("lenient\n")
    assert jobstamp(*call, cwd=tmp_path, timeout=30).stdout == b"lenient\n"
    assert runs(counter) == 2


def test_an_executable_bit_change_reruns_with_hashes(tmp_path: Path) -> None:
    script = tmp_path / "script.sh"
    script.write_text("echo hi\n")
    counter = tmp_path / "counter"
    check = counting(counter, f'test -x "{script}" && echo executable || echo "not executable"')
    call = ("--use-hashes", "--dependencies", str(script), "--", *check)
    assert jobstamp(*call).stdout == b"not executable\n"
    script.chmod(0o755)
    assert jobstamp(*call).stdout == b"executable\n"
    assert runs(counter) == 2


def test_a_dependency_rewritten_and_put_back_during_the_run_is_not_stored(
    tmp_path: Path,
) -> None:
    dep = tmp_path / "dep.txt"
    dep.write_text("X\n")
    code = (
        "import os, sys\n"
        "path = sys.argv[1]\n"
        "st = os.stat(path)\n"
        "open(path, 'w').write('Y\\n')\n"
        "print(open(path).read(), end='')\n"
        "open(path, 'w').write('X\\n')\n"
        "os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))\n"
    )
    counter = tmp_path / "counter"
    for count in (1, 2):
        done = jobstamp(
            "--explain",
            "--use-hashes",
            "--dependencies",
            dep,
            "--",
            *counting_python(counter, code, str(dep)),
        )
        assert (done.stdout, runs(counter)) == (b"Y\n", count)
        assert f"not stored: dependency {dep} changed while the job ran" in done.stderr.decode()


def make_script(path: Path, text: str) -> Path:
    path.write_text(f"#!/bin/sh\necho {text}\n")
    path.chmod(0o755)
    return path


def test_another_tool_copied_with_the_same_size_and_time_reruns(tmp_path: Path) -> None:
    tool = make_script(tmp_path / "tool", "AAA")
    other = make_script(tmp_path / "other", "BBB")
    st = tool.stat()
    os.utime(other, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert jobstamp("--", "./tool", cwd=tmp_path).stdout == b"AAA\n"
    subprocess.run(["cp", "-p", str(other), str(tool)], check=True)
    assert (tool.stat().st_size, tool.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    assert jobstamp("--", "./tool", cwd=tmp_path).stdout == b"BBB\n"


def test_a_distribution_installed_beside_a_console_script_reruns(tmp_path: Path) -> None:
    import venv

    venv.EnvBuilder(with_pip=False, symlinks=True).create(tmp_path / "env")
    tool = tmp_path / "env" / "bin" / "lint"
    tool.write_text(f"#!{tmp_path / 'env' / 'bin' / 'python'}\nprint('checked')\n")
    tool.chmod(0o755)
    assert jobstamp("--explain", "--", tool).stdout == b"checked\n"
    assert b"replayed" in jobstamp("--explain", "--", tool).stderr
    (site,) = (tmp_path / "env" / "lib").glob("python*/site-packages")
    (site / "pyflakes-3.2.0.dist-info").mkdir()
    done = jobstamp("--explain", "--", tool)
    assert b"replayed" not in done.stderr
    assert "pyflakes-3.2.0.dist-info" in done.stderr.decode()
    assert b"replayed" in jobstamp("--explain", "--", tool).stderr
    # Reinstalled at the same version (a patched plugin): its .dist-info is made anew.
    (site / "pyflakes-3.2.0.dist-info").rmdir()
    time.sleep(0.05)
    (site / "pyflakes-3.2.0.dist-info").mkdir()
    done = jobstamp("--explain", "--", tool)
    assert b"replayed" not in done.stderr
    assert f"{site.parent.name}/site-packages modified " in done.stderr.decode()


@pytest.mark.parametrize("method", [[], ["--use-hashes"]])
@pytest.mark.parametrize("where", ["as-the-dependency", "in-a-directory-dependency"])
def test_a_fifo_dependency_is_never_opened(tmp_path: Path, method: list[str], where: str) -> None:
    # Just made, so racy, so read in mtime mode too: opening the FIFO would block forever,
    # which the timeout turns into a failure.
    (tmp_path / "tree").mkdir()
    os.mkfifo(tmp_path / "tree" / "fifo")
    dep = tmp_path / "tree" / "fifo" if where == "as-the-dependency" else tmp_path / "tree"
    counter = tmp_path / "counter"
    for _ in range(2):
        done = jobstamp(
            *method, "--dependencies", dep, "--", *counting(counter, "echo ok"), timeout=30
        )
        assert (done.returncode, done.stdout) == (0, b"ok\n")
    # A FIFO named as a dependency reads differently each time: it is never keyed on.
    assert runs(counter) == (2 if where == "as-the-dependency" else 1)


def test_an_unreadable_folder_in_a_directory_dependency_runs_the_command(tmp_path: Path) -> None:
    # Root reads everything: the test drops to user 65534 (nobody), as another user would be.
    import tempfile
    from pathlib import Path

    python = python_for_user(65534)
    work = Path(tempfile.mkdtemp(prefix="jobstamps-nobody-"))
    try:
        (work / "tree" / "locked").mkdir(parents=True)
        (work / "tree" / "locked" / "secret").write_text("")
        (work / "tree" / "a.txt").write_text("")
        (work / "unreadable.txt").write_text("")
        for path in (work, *work.rglob("*")):
            os.chown(path, 65534, 65534)
        (work / "tree" / "locked").chmod(0o000)
        (work / "unreadable.txt").chmod(0o000)
        prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", python]
        env = {**os.environ, "JOBSTAMPS_CACHE_DIR": str(work / "cache"), "HOME": str(work)}
        command = [*prefix, "-m", "jobstamps", "--explain", "--use-hashes", "--dependencies"]
        for dependency, why in (
            ("tree", "cannot be read (" + str(work / "tree" / "locked") + "): Permission denied"),
            ("unreadable.txt", "cannot be read: Permission denied"),
        ):
            for _ in range(2):
                done = subprocess.run(
                    [*command, dependency, "--", "echo", "ran"],
                    cwd=work,
                    env=env,
                    capture_output=True,
                    timeout=TIMEOUT,
                    check=False,
                )
                assert (done.returncode, done.stdout) == (0, b"ran\n"), done.stderr
                assert b"Traceback" not in done.stderr
                assert b"internal error" not in done.stderr
            assert why in done.stderr.decode(), done.stderr
            assert "does not exist" not in done.stderr.decode()
    finally:
        subprocess.run(["rm", "-rf", str(work)], check=False)


# -- a cache that cannot be used never fails the command ----------------------------------------

#: Prints on both streams and fails, so that a test sees all three come through unchanged.
NOISY = "echo out; echo err >&2; exit 3"


def assert_ran_uncached(done: subprocess.CompletedProcess[bytes], counter: Path, count: int) -> str:
    """Check that the command ran and came through unchanged beside one line; return it."""
    assert (done.returncode, done.stdout, runs(counter)) == (3, b"out\n", count)
    err = lines(done.stderr)
    assert "err" in err
    said = [line for line in err if line != "err"]
    assert len(said) == 1, err
    assert said[0].startswith("jobstamp: cache ")
    assert "Traceback" not in said[0]
    return said[0]


def _file_in_the_way(tmp_path: Path) -> Path:
    (tmp_path / "file").write_text("")
    return tmp_path / "file" / "cache"


def _name_too_long(tmp_path: Path) -> Path:
    return tmp_path / ("x" * 300) / "cache"


def _symlink_loop(tmp_path: Path) -> Path:
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    return tmp_path / "loop"


def _group_writable(tmp_path: Path) -> Path:
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache").chmod(0o770)
    return tmp_path / "cache"


def _another_users(tmp_path: Path) -> Path:
    if os.getuid() != 0:
        pytest.skip("needs root to give a directory to another user")
    (tmp_path / "cache").mkdir(mode=0o700)
    os.chown(tmp_path / "cache", 65534, 65534)
    return tmp_path / "cache"


def _mounted(tmp_path: Path, *options: str) -> Path:
    mount = tmp_path / "mnt"
    mount.mkdir()
    if subprocess.run(["mount", *options, mount], check=False).returncode:
        pytest.skip("cannot mount (needs root)")
    return mount


def _read_only_disk(tmp_path: Path) -> Path:
    mount = _mounted(tmp_path, "-t", "tmpfs", "-o", "size=1M,mode=0700", "tmpfs")
    subprocess.run(["mount", "-o", "remount,ro", mount], check=True)
    return mount / "cache"


def _full_disk(tmp_path: Path) -> Path:
    mount = _mounted(tmp_path, "-t", "tmpfs", "-o", "size=64k,nr_inodes=16,mode=0700", "tmpfs")
    index = 0
    while True:  # fill every inode, then the blocks
        try:
            (mount / str(index)).write_bytes(b"x" * 4096)
        except OSError:
            break
        index += 1
    return mount / "cache"


@pytest.mark.parametrize(
    "unusable",
    [
        _file_in_the_way,
        _name_too_long,
        _symlink_loop,
        _group_writable,
        _another_users,
        _read_only_disk,
        _full_disk,
    ],
    ids=lambda make: make.__name__.strip("_"),
)
def test_an_unusable_default_cache_runs_the_command_with_one_line(
    tmp_path: Path, unusable: Callable[[Path], Path]
) -> None:
    cache = unusable(tmp_path)
    counter = tmp_path / "counter"
    try:
        for count in (1, 2):
            done = jobstamp(
                "--", *counting(counter, NOISY), env={"JOBSTAMPS_CACHE_DIR": str(cache)}
            )
            message = assert_ran_uncached(done, counter, count)
            assert message.startswith(f"jobstamp: cache {cache} ")
            assert "JOBSTAMPS_CACHE_DIR" in message
    finally:
        if (tmp_path / "mnt").is_mount():
            subprocess.run(["umount", tmp_path / "mnt"], check=True)


def test_a_full_disk_under_an_existing_cache_is_one_line(
    tmp_path: Path, isolated_cache: Path
) -> None:
    counter = tmp_path / "counter"
    jobstamp("--", "true")  # the cache exists
    mount = isolated_cache / "v1" / "e"
    for shard in list(mount.iterdir()):
        shutil.rmtree(shard)
    if subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4k", "tmpfs", mount], check=False
    ).returncode:
        pytest.skip("cannot mount (needs root)")
    try:
        (mount / "filler").write_bytes(b"x" * 4096)
        done = jobstamp("--", *counting(counter, NOISY))
        message = assert_ran_uncached(done, counter, 1)
        assert "cannot be written (No space left on device); the result was not stored" in message
    finally:
        subprocess.run(["umount", mount], check=True)


def test_a_cache_that_cannot_be_created_under_a_read_only_or_missing_home_is_one_line(
    tmp_path: Path,
) -> None:
    python = python_for_user(65534)
    shared = tempfile.mkdtemp()  # where the other user can write the job's counter
    os.chmod(shared, 0o777)  # noqa: S103 - another user writes there
    counter = Path(shared, "counter")
    for home in ("/nonexistent/home", "/root"):  # missing (EACCES on /), another's (EACCES)
        done = subprocess.run(
            [
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                python,
                "-m",
                "jobstamps",
                "--",
                *counting(counter, NOISY),
            ],
            env=changed_env({"HOME": home, "JOBSTAMPS_CACHE_DIR": None, "XDG_CACHE_HOME": None}),
            cwd=shared,
            capture_output=True,
            timeout=TIMEOUT,
            check=False,
        )
        try:
            message = assert_ran_uncached(done, counter, 1 if home.startswith("/non") else 2)
        finally:
            if home == "/root":
                shutil.rmtree(shared)
        assert "Permission denied" in message


def test_an_unusable_stamp_directory_is_an_error_before_the_command_runs(tmp_path: Path) -> None:
    counter = tmp_path / "counter"
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    done = jobstamp("--stamp-directory", "loop", "--", *counting(counter, NOISY), cwd=tmp_path)
    assert (done.returncode, done.stdout, runs(counter)) == (2, b"", 0)
    (message,) = lines(done.stderr)
    assert message.startswith(f"jobstamp: cache directory {tmp_path / 'loop'} is unusable (")


@pytest.mark.skipif(os.name != "posix" or os.getuid() != 0, reason="needs root to chown a link")
def test_a_stamp_directory_linked_by_another_user_is_refused(tmp_path: Path) -> None:
    documents = tmp_path / "documents"
    documents.mkdir(mode=0o700)
    (documents / "letter.txt").write_text("private")
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "jobstamps").symlink_to(documents)
    os.lchown(shared / "jobstamps", 65534, 65534)
    counter = tmp_path / "counter"
    done = jobstamp("--stamp-directory", shared / "jobstamps", "--", *counting(counter, NOISY))
    assert (done.returncode, runs(counter)) == (2, 0)
    message = (
        f"jobstamp: cache directory {shared / 'jobstamps'} is unusable (a symbolic link made by "
        "another user). Choose another directory"
    )
    assert lines(done.stderr) == [message]
    assert os.listdir(documents) == ["letter.txt"]


def test_a_project_directory_as_the_cache_keeps_its_own_v1_and_gets_no_tag(
    tmp_path: Path,
) -> None:
    project = tmp_path / "project"
    (project / "v1").mkdir(parents=True)
    project.chmod(0o700)
    (project / "v1" / "notes.txt").write_text("mine")
    counter = tmp_path / "counter"
    done = jobstamp("--stamp-directory", ".", "--clear", cwd=project)
    assert done.returncode != 0
    (message,) = lines(done.stderr)
    assert "nothing was removed" in message
    for count in (1, 2):
        done = jobstamp("--stamp-directory", ".", "--", *counting(counter, NOISY), cwd=project)
        assert "did not make" in assert_ran_uncached(done, counter, count)
    assert sorted(os.listdir(project)) == ["v1"]
    assert os.listdir(project / "v1") == ["notes.txt"]
    shutil.rmtree(project / "v1")
    (project / "setup.cfg").write_text("")
    for _ in range(2):
        done = jobstamp("--stamp-directory", ".", "--", *counting(counter, "echo out"), cwd=project)
        assert (done.returncode, done.stdout, done.stderr) == (0, b"out\n", b"")
    assert runs(counter) == 3, "stored in the project directory, and replayed"
    assert sorted(os.listdir(project)) == ["setup.cfg", "v1"], "no CACHEDIR.TAG in a project"


# -- blobs shared between results, output files streamed ---------------------------------------


def test_a_run_that_is_not_stored_keeps_the_blob_of_another_result(tmp_path: Path) -> None:
    big = "import sys; sys.stdout.write('same' * 50000)"
    first = tmp_path / "first"
    done = jobstamp("--", *counting_python(first, big))
    assert len(done.stdout) == 200000
    (blob,) = cache_blobs(os.environ["JOBSTAMPS_CACHE_DIR"])
    dep = tmp_path / "dep"
    dep.write_text("0")
    changes_dep = f"{big}; open({str(dep)!r}, 'a').write('1')"
    done = jobstamp("--dependencies", dep, "--", *counting_python(tmp_path / "second", changes_dep))
    assert len(done.stdout) == 200000
    assert runs(tmp_path / "second") == 1
    assert cache_blobs(os.environ["JOBSTAMPS_CACHE_DIR"]) == [blob]
    done = jobstamp("--", *counting_python(first, big))
    assert (len(done.stdout), runs(first)) == (200000, 1), "the first result still replays"


PEAK_MEMORY = """
import os, resource, sys
from jobstamps import cli
def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
before = peak()
make = [sys.executable, "-c", "open('big', 'wb').truncate(int(%s))" % sys.argv[1]]
args = ["--output-files", "big", "--restore-outputs", "--"]
assert cli.main([*args, *make]) == 0
os.unlink("big")
assert cli.main([*args, *make]) == 0  # restored, not made again
assert os.path.getsize("big") == int(sys.argv[1])
print(peak() - before)
"""


def test_restoring_outputs_streams_them_through_bounded_memory(tmp_path: Path) -> None:
    size = 200 << 20
    done = subprocess.run(
        [sys.executable, "-c", PEAK_MEMORY, str(size)],
        cwd=tmp_path,
        capture_output=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) < 32 << 20, f"{int(done.stdout) >> 20} MiB more at the peak"
    (blob,) = cache_blobs(os.environ["JOBSTAMPS_CACHE_DIR"])
    assert os.path.getsize(blob) == size


def test_a_small_size_limit_holds_with_many_command_lines(
    tmp_path: Path, isolated_cache: Path
) -> None:
    assert jobstamp("--max-size", "2K").returncode == 0
    for index in range(40):
        done = jobstamp("--", "echo", str(index), cwd=tmp_path)
        assert done.stdout == f"{index}\n".encode()
    stats = Store(str(isolated_cache)).stats()
    pointers = [name for _, _, names in os.walk(isolated_cache / "v1" / "p") for name in names]
    assert stats["bytes"] <= 2048
    assert 0 < len(pointers) < 40


def test_links_planted_in_the_cache_are_never_followed_and_never_fail_the_command(
    tmp_path: Path, isolated_cache: Path
) -> None:
    counter = tmp_path / "counter"
    command = counting(counter, "echo out")
    jobstamp("--", *command)
    (entry,) = cache_entries(isolated_cache)
    key = os.path.basename(entry)
    os.unlink(entry)  # a miss next time, which takes the lock
    lock = isolated_cache / "v1" / "l" / key[:2] / key
    lock.unlink()
    victims = {name: tmp_path / f"victim-{name}" for name in ("stats", "config", "lock")}
    victims["config"].write_text("max_size=10\n")
    victims["stats"].write_text("precious")
    (isolated_cache / "v1" / "stats").unlink()
    (isolated_cache / "v1" / "stats").symlink_to(victims["stats"])
    (isolated_cache / "config").symlink_to(victims["config"])
    lock.symlink_to(victims["lock"])  # dangling: following it would create the file
    for count in (2, 2):  # runs and is stored, then replays
        done = jobstamp("--", *command)
        assert (done.returncode, done.stdout, done.stderr) == (0, b"out\n", b"")
        assert runs(counter) == count
    assert victims["config"].read_text() == "max_size=10\n"
    assert victims["stats"].read_text() == "precious"
    assert not victims["lock"].exists()


# -- descriptors: bash's <(...) and other pipes named as files ------------------------------

#: A linter stand-in: prints the files it is given, and finds a problem in each.
_LINT = ["sh", "-c", 'cat "$@"; exit 3', "lint"]
_FRONT_ENDS = {
    "plain": [*JOBSTAMP, "--", *_LINT],
    "per_file": [*JOBSTAMP, "--per-file", "--", *_LINT, "--"],
    "pre_commit": [sys.executable, "-m", "jobstamps.precommit", "--", *_LINT, "--"],
}


@pytest.mark.parametrize("disabled", [False, True], ids=["cached", "disabled"])
@pytest.mark.parametrize("front_end", list(_FRONT_ENDS))
def test_a_process_substitution_reaches_the_command_and_is_never_replayed(
    isolated_cache: Path, front_end: str, disabled: bool
) -> None:
    env = {"JOBSTAMPS_DISABLED": "1" if disabled else None}
    for text in ("first round", "second round", "second round"):
        script = f"{shlex.join(_FRONT_ENDS[front_end])} <(echo {shlex.quote(text)})"
        done = subprocess.run(
            ["bash", "-c", script],
            env=changed_env(env),
            capture_output=True,
            timeout=TIMEOUT,
            check=False,
        )
        assert (done.stdout, done.stderr, done.returncode) == (f"{text}\n".encode(), b"", 3)
    assert cache_entries(isolated_cache) == []
    assert cache_packs(isolated_cache) == []


@pytest.mark.parametrize("front_end", ["plain", "per_file"])
def test_a_fifo_given_as_a_dependency_runs_uncached(tmp_path: Path, front_end: str) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    file = tmp_path / "checked.txt"
    file.write_text("checked\n")
    counter = tmp_path / "count"
    lint = counting(counter, "true")
    command: list[str | os.PathLike[str]] = ["--dependencies", fifo, "--", *lint]
    if front_end == "per_file":
        command = ["--per-file", *command, "--"]
    for _ in range(2):
        assert jobstamp(*command, file).returncode == 0
    assert runs(counter) == 2


def test_descriptors_of_jobstamp_s_own_never_reach_the_command(tmp_path: Path) -> None:
    listing = jobstamp("--", "sh", "-c", 'ls "/proc/$$/fd"').stdout.split()
    assert sorted(listing) == [b"0", b"1", b"2"]
    checked = tmp_path / "checked.txt"
    checked.write_text("checked\n")
    per_file = jobstamp("--per-file", "--", "sh", "-c", 'ls "/proc/$$/fd"', "lint", "--", checked)
    assert sorted(per_file.stdout.split()) == [b"0", b"1", b"2"]


@pytest.mark.parametrize("per_file", [False, True], ids=["plain", "per_file"])
def test_explain_names_the_pipe_that_keeps_a_command_uncached(per_file: bool) -> None:
    front = [*JOBSTAMP, "--per-file", "--explain", "--", "cat", "--"]
    if not per_file:
        front = [*JOBSTAMP, "--explain", "--", "cat"]
    script = f"{shlex.join(front)} <(echo piped)"
    done = subprocess.run(["bash", "-c", script], capture_output=True, timeout=TIMEOUT, check=False)
    assert (done.stdout, done.returncode) == (b"piped\n", 0)
    assert b"/dev/fd/" in done.stderr
    assert b"is a pipe or a device" in done.stderr
