"""Running a wrapped command: live output, large output, stdin, exit statuses and signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from jobstamps import runner
from jobstamps.store import Store
from support import (
    JOBSTAMP,
    TIMEOUT,
    WAIT_FOR_FILE,
    cache_blobs,
    cache_entries,
    counting,
    jobstamp,
    read_until,
    runs,
    started,
)

if TYPE_CHECKING:
    from pathlib import Path

# Prints a line on each stream, waits for the file named by argv[1], then prints one more.
# It counts its runs in the file named by argv[2].
SLOW = (
    "import sys\n"
    "open(sys.argv[2], 'a').write('ran\\n')\n"
    "sys.stdout.write('first\\n'); sys.stdout.flush()\n"
    "sys.stderr.write('warning\\n'); sys.stderr.flush()\n"
    + WAIT_FOR_FILE
    + "sys.stdout.write('second\\n')\n"
)


def slow_command(tmp_path: Path, code: str = SLOW) -> list[str]:
    return [sys.executable, "-c", code, str(tmp_path / "release"), str(tmp_path / "counter")]


# -- output -----------------------------------------------------------------------------------


def test_output_streams_live_on_a_miss(tmp_path: Path) -> None:
    command = slow_command(tmp_path)
    with started("--", *command) as proc:
        assert proc.stdout is not None
        assert proc.stderr is not None
        assert read_until(proc.stdout.fileno(), b"\n") == b"first\n"
        assert read_until(proc.stderr.fileno(), b"\n") == b"warning\n"
        assert proc.poll() is None  # the command is still waiting for the release file
        (tmp_path / "release").touch()
        out, err = proc.communicate(timeout=TIMEOUT)
    assert (proc.returncode, out, err) == (0, b"second\n", b"")

    again = jobstamp("--", *command)
    assert (again.returncode, again.stdout, again.stderr) == (0, b"first\nsecond\n", b"warning\n")
    assert runs(tmp_path / "counter") == 1


def _measured(args: list[str], out: Path, err: Path) -> tuple[int, int]:
    """Run jobstamp with stdout and stderr to files; return its status and peak memory (KiB)."""
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.Popen(
            [*JOBSTAMP, *args], stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr
        )
    try:
        _, status, usage = os.wait4(proc.pid, 0)  # the usage of this child alone
    finally:
        if proc.poll() is None:  # not reaped: wait4 failed
            proc.kill()
            proc.wait(TIMEOUT)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_maxrss


def test_huge_output_is_streamed_through_a_blob_and_replayed_exactly(
    tmp_path: Path, isolated_cache: Path
) -> None:
    parts = []
    for index in range(20):
        parts.append(tmp_path / f"part{index}")
        parts[-1].write_bytes(os.urandom(1 << 20))
    expected = b"".join(part.read_bytes() for part in parts)
    command = counting(tmp_path / "counter", 'for part; do cat "$part"; printf . >&2; done')
    out, err = tmp_path / "out", tmp_path / "err"
    _, baseline = _measured(["--", "true"], out, err)

    for _ in range(2):  # a miss, then a hit
        status, peak = _measured(["--", *command, *map(str, parts)], out, err)
        assert (status, out.read_bytes() == expected, err.read_bytes()) == (0, True, b"." * 20)
        assert peak < baseline + 8 * 1024  # never held in memory: 20 MiB would show
    assert runs(tmp_path / "counter") == 1
    entries = cache_entries(isolated_cache)
    assert len(entries) == 2
    assert max(os.path.getsize(entry) for entry in entries) < 64 * 1024
    (blob,) = cache_blobs(isolated_cache)
    assert os.path.getsize(blob) == len(expected) + 20  # both streams, in the order they came


def test_output_is_inline_up_to_the_limit_and_spilled_beyond_it(
    tmp_path: Path, isolated_cache: Path
) -> None:
    for size in (runner.INLINE_LIMIT, runner.INLINE_LIMIT + 1):
        code = f"import os; os.write(1, b'x' * {size})"
        done = jobstamp("--", sys.executable, "-c", code)
        assert done.stdout == b"x" * size
    assert len(cache_entries(isolated_cache)) == 2
    assert [os.path.getsize(path) for path in cache_blobs(isolated_cache)] == [
        runner.INLINE_LIMIT + 1
    ]


# -- standard input -----------------------------------------------------------------------------


def test_stdin_option_feeds_the_command_exactly(tmp_path: Path) -> None:
    data = os.urandom(3 << 20)  # far more than a pipe holds
    command = counting(tmp_path / "counter", "cat")
    first = jobstamp("--stdin", "--", *command, data=data)
    assert (first.returncode, first.stdout == data, first.stderr) == (0, True, b"")
    second = jobstamp("--stdin", "--", *command, data=data)
    assert (second.returncode, second.stdout == data) == (0, True)
    assert runs(tmp_path / "counter") == 1


def test_stdin_option_with_a_command_that_does_not_read_it(tmp_path: Path) -> None:
    command = counting(tmp_path / "counter", "echo done")
    done = jobstamp("--stdin", "--", *command, data=b"y\n" * (1 << 20))
    assert (done.returncode, done.stdout, done.stderr) == (0, b"done\n", b"")


def test_without_stdin_option_stdin_is_inherited_and_never_read(tmp_path: Path) -> None:
    # A CI runner's stdin can be a pipe that never closes: jobstamp must not wait for it.
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, b"hello world")
        for _ in range(2):  # a miss, then a hit
            ignores = jobstamp("--", "echo", "ignored", stdin=read_end)
            assert (ignores.returncode, ignores.stdout) == (0, b"ignored\n")
        # The command itself gets the untouched stdin.
        reads = jobstamp("--", "head", "-c", "5", stdin=read_end)
        assert (reads.returncode, reads.stdout) == (0, b"hello")
        assert os.read(read_end, 100) == b" world"
    finally:
        os.close(read_end)
        os.close(write_end)


# -- exit statuses ------------------------------------------------------------------------------


def test_a_failing_result_is_stored_and_its_status_replayed(tmp_path: Path) -> None:
    command = counting(tmp_path / "counter", "echo problem; echo detail >&2; exit 3")
    for _ in range(2):
        done = jobstamp("--", *command)
        assert (done.returncode, done.stdout, done.stderr) == (3, b"problem\n", b"detail\n")
    assert runs(tmp_path / "counter") == 1


def test_no_store_failures_runs_a_failing_command_every_time(
    tmp_path: Path, isolated_cache: Path
) -> None:
    failing = counting(tmp_path / "counter", "echo bad; exit 1")
    for count in (1, 2):
        done = jobstamp("--no-store-failures", "--", *failing)
        assert (done.returncode, done.stdout) == (1, b"bad\n")
        assert runs(tmp_path / "counter") == count
    assert cache_entries(isolated_cache) == []

    passing = counting(tmp_path / "counter", "echo good")
    for _ in range(2):
        done = jobstamp("--no-store-failures", "--", *passing)
        assert (done.returncode, done.stdout) == (0, b"good\n")
    assert runs(tmp_path / "counter") == 3


def test_command_not_found_exits_127_naming_it(tmp_path: Path, isolated_cache: Path) -> None:
    for name in ("jobstamps-no-such-command", "./missing-tool", str(tmp_path / "gone" / "x")):
        done = jobstamp("--", name, "arg", cwd=tmp_path)
        assert done.returncode == 127
        assert done.stdout == b""
        assert done.stderr.startswith(b"jobstamp: command not found: " + name.encode())
        assert done.stderr.count(b"\n") == 1
    assert cache_entries(isolated_cache) == []


def test_a_file_that_is_not_executable_exits_126(tmp_path: Path, isolated_cache: Path) -> None:
    script = tmp_path / "tool.sh"
    script.write_text("#!/bin/sh\necho ran\n")
    script.chmod(0o644)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "tool").write_text("#!/bin/sh\necho ran\n")
    (bindir / "tool").chmod(0o644)
    path = f"{bindir}{os.pathsep}{os.environ['PATH']}"
    for command in ("./tool.sh", str(script), "tool"):
        for _ in range(2):
            done = jobstamp("--", command, cwd=tmp_path, env={"PATH": path})
            assert (done.returncode, done.stdout) == (126, b"")
            assert done.stderr.startswith(b"jobstamp: cannot run " + command.encode())
    assert cache_entries(isolated_cache) == []


def test_a_directory_named_as_the_command_exits_126(tmp_path: Path, isolated_cache: Path) -> None:
    (tmp_path / "tooldir").mkdir()
    done = jobstamp("--", "./tooldir", cwd=tmp_path)
    assert (done.returncode, done.stdout) == (126, b"")
    assert done.stderr == b"jobstamp: cannot run ./tooldir: it is a directory. Name a program\n"
    assert cache_entries(isolated_cache) == []


def test_a_file_the_system_cannot_execute_exits_126(tmp_path: Path, isolated_cache: Path) -> None:
    script = tmp_path / "garbage"
    script.write_bytes(b"\x7fELF\x00\x00garbage")
    script.chmod(0o755)
    done = jobstamp("--", "./garbage", cwd=tmp_path)
    assert (done.returncode, done.stdout) == (126, b"")
    assert done.stderr.startswith(b"jobstamp: cannot run ./garbage")
    assert b"Traceback" not in done.stderr
    assert cache_entries(isolated_cache) == []


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL, signal.SIGUSR1])
def test_a_command_killed_by_a_signal_exits_128_plus_n_and_is_not_stored(
    tmp_path: Path, isolated_cache: Path, signum: int
) -> None:
    command = counting(tmp_path / "counter", f"echo before; kill -{int(signum)} $$; echo after")
    for count in (1, 2):
        done = jobstamp("--", *command)
        assert (done.returncode, done.stdout) == (128 + signum, b"before\n")
        assert runs(tmp_path / "counter") == count
    assert cache_entries(isolated_cache) == []


@pytest.mark.parametrize(
    ("options", "script"),
    [
        pytest.param([], "head -c 100000 /dev/zero; kill $$", id="killed"),
        pytest.param(["--no-store-failures"], "head -c 100000 /dev/zero; exit 1", id="failed"),
        pytest.param(
            ["--dependencies", "dep"], "head -c 100000 /dev/zero; echo >> dep", id="dep-edited"
        ),
    ],
)
def test_a_result_that_is_not_stored_leaves_no_blob(
    tmp_path: Path, isolated_cache: Path, options: list[str], script: str
) -> None:
    (tmp_path / "dep").write_text("")
    done = jobstamp(*options, "--", *counting(tmp_path / "counter", script), cwd=tmp_path)
    assert done.stdout == bytes(100000)
    assert cache_entries(isolated_cache) == []
    assert cache_blobs(isolated_cache) == []


def test_a_reader_that_goes_away_during_a_run_stops_the_command(isolated_cache: Path) -> None:
    with started("--", "head", "-c", str(20 << 20), "/dev/zero") as proc:
        assert proc.stdout is not None
        assert proc.stdout.read(1) == b"\0"
        proc.stdout.close()  # as `jobstamp ... | head -c 1` does
        proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 128 + signal.SIGPIPE  # as `head -c ... | head -c 1` would
    assert (cache_entries(isolated_cache), cache_blobs(isolated_cache)) == ([], [])


# -- jobstamp itself interrupted ----------------------------------------------------------------


def _interrupted(
    tmp_path: Path, isolated_cache: Path, code: str, deliver: str, signum: int, expect: int
) -> None:
    """Start a slow command, signal jobstamp (``deliver``: "group" or "jobstamp") once the
    command has printed, and check that nothing was stored and the next call runs it again."""
    command = slow_command(tmp_path, code)
    with started("--", *command, start_new_session=True) as proc:
        assert proc.stdout is not None
        assert read_until(proc.stdout.fileno(), b"\n") == b"first\n"
        if deliver == "group":  # as ^C in a terminal: the whole foreground process group
            os.killpg(proc.pid, signum)
        else:
            os.kill(proc.pid, signum)
            (tmp_path / "release").touch()  # the command then ends on its own
        proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == expect
    assert cache_entries(isolated_cache) == []
    assert Store(str(isolated_cache)).stats()["entries"] == 0

    (tmp_path / "release").touch()
    again = jobstamp("--", *command)
    assert (again.returncode, again.stdout) == (0, b"first\nsecond\n")
    assert runs(tmp_path / "counter") == 2
    assert len(cache_entries(isolated_cache)) == 1


def test_ctrl_c_reaches_the_command_and_nothing_is_stored(
    tmp_path: Path, isolated_cache: Path
) -> None:
    _interrupted(tmp_path, isolated_cache, SLOW, "group", signal.SIGINT, 130)


def test_sigint_to_jobstamp_alone_stores_nothing(tmp_path: Path, isolated_cache: Path) -> None:
    _interrupted(tmp_path, isolated_cache, SLOW, "jobstamp", signal.SIGINT, 130)


def test_sigterm_to_jobstamp_is_passed_on_and_nothing_is_stored(
    tmp_path: Path, isolated_cache: Path
) -> None:
    _interrupted(tmp_path, isolated_cache, SLOW, "jobstamp", signal.SIGTERM, 143)


def test_sighup_to_jobstamp_is_passed_on_and_nothing_is_stored(
    tmp_path: Path, isolated_cache: Path
) -> None:
    _interrupted(tmp_path, isolated_cache, SLOW, "jobstamp", signal.SIGHUP, 129)


def test_sigterm_stores_nothing_even_if_the_command_exits_cleanly(
    tmp_path: Path, isolated_cache: Path
) -> None:
    graceful = "import signal, sys\nsignal.signal(signal.SIGTERM, lambda *_: sys.exit(0))\n" + SLOW
    _interrupted(tmp_path, isolated_cache, graceful, "jobstamp", signal.SIGTERM, 143)


# -- the runner in-process ----------------------------------------------------------------------


def test_run_records_merged_output_as_one_stream(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    argv = ["sh", "-c", "printf a; printf b >&2; printf c; exit 4"]
    outcome = runner.run(argv, "/bin/sh", str(tmp_path), None, True, None)
    assert (outcome.exit_code, outcome.why_not_stored) == (4, "")
    assert outcome.payload() == {"code": 4, "chunks": [(1, 3)], "data": b"abc"}
    assert capfd.readouterr() == ("abc", "")


def test_run_keeps_large_output_in_memory_without_a_store(
    tmp_path: Path, capfdbinary: pytest.CaptureFixture[bytes]
) -> None:
    size = runner.INLINE_LIMIT * 3
    argv = [sys.executable, "-c", f"import os; os.write(2, b'e' * {size})"]
    outcome = runner.run(argv, sys.executable, str(tmp_path), None, False, None)
    assert (outcome.blob, outcome.data, outcome.chunks) == (None, b"e" * size, [(2, size)])
    assert capfdbinary.readouterr() == (b"", b"e" * size)


def test_run_spills_to_a_blob_in_the_store(
    tmp_path: Path, capfdbinary: pytest.CaptureFixture[bytes]
) -> None:
    store = Store(str(tmp_path / "cache"))
    store.create()
    size = runner.INLINE_LIMIT * 3
    argv = [sys.executable, "-c", f"import os; os.write(1, b'o' * {size})"]
    outcome = runner.run(argv, sys.executable, str(tmp_path), None, False, store)
    assert capfdbinary.readouterr() == (b"o" * size, b"")
    assert outcome.blob is None  # until the caller decides to keep it
    ((digest, stored),) = outcome.keep()
    assert stored == size
    assert store.has_blob(digest, size)
    assert store.blob_intact(digest)
    assert outcome.payload() == {"code": 0, "chunks": [(1, size)], "blob": digest}


def test_run_discards_spilled_output_not_kept(
    tmp_path: Path, capfdbinary: pytest.CaptureFixture[bytes]
) -> None:
    store = Store(str(tmp_path / "cache"))
    store.create()
    argv = [sys.executable, "-c", f"import os; os.write(1, b'o' * {runner.INLINE_LIMIT * 2})"]
    outcome = runner.run(argv, sys.executable, str(tmp_path), None, False, store)
    outcome.discard()
    assert outcome.keep() == []
    assert store.stats()["bytes"] == 0
    assert sorted(name for _, _, names in os.walk(tmp_path / "cache") for name in names) == [
        ".jobstamps-cache",
        "CACHEDIR.TAG",
    ]
    assert len(capfdbinary.readouterr().out) == runner.INLINE_LIMIT * 2


def test_run_feeds_stdin_and_passes_through_the_signal_status(
    tmp_path: Path, capfdbinary: pytest.CaptureFixture[bytes]
) -> None:
    argv = ["sh", "-c", "cat; kill -9 $$"]
    outcome = runner.run(argv, "/bin/sh", str(tmp_path), b"in\x00put", False, None)
    assert outcome.exit_code == 137
    assert outcome.why_not_stored == "the command was killed by signal 9"
    assert capfdbinary.readouterr() == (b"in\x00put", b"")


@pytest.mark.parametrize(
    ("error", "status", "message"),
    [
        (FileNotFoundError(2, "No such file or directory"), 127, "command not found: tool"),
        (NotADirectoryError(20, "Not a directory"), 127, "command not found: tool"),
        (PermissionError(13, "Permission denied"), 126, "cannot run tool: Permission denied"),
        (OSError(8, "Exec format error"), 126, "cannot run tool: Exec format error"),
    ],
)
def test_report_start_failure(
    capsys: pytest.CaptureFixture[str], error: OSError, status: int, message: str
) -> None:
    assert runner.report_start_failure("tool", error) == status
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"jobstamp: {message}")
    assert err.count("\n") == 1


def test_the_command_runs_in_the_working_directory(tmp_path: Path) -> None:
    done = jobstamp("--", "pwd", cwd=tmp_path)
    assert done.stdout.decode().strip() == os.path.realpath(tmp_path)
