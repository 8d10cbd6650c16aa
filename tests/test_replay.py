"""Replaying a stored run: the same bytes, to the same streams, in the same order; or a re-run."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from jobstamps.engine import ReplayError
from jobstamps.replay import replay
from jobstamps.store import Store
from support import (
    TIMEOUT,
    cache_blobs,
    cache_entries,
    counting,
    counting_python,
    jobstamp,
    runs,
    started,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

BINARY = bytes(range(256)) * 3 + b"\xff\xfe\xc3\x28 \xed\xa0\x80 no newline\r"
ERROR_BINARY = b"\x00\x80\xbf stderr \xf0\x28\x8c\xbc"

# Alternates between stdout and stderr with writes of varying sizes, partial lines included.
INTERLEAVE = (
    "import os, sys\n"
    "for i in range(int(sys.argv[1])):\n"
    "    os.write(2 if i % 3 == 0 else 1, f'{i}:'.encode() + b'x' * (i * 37 % 300)"
    " + (b'\\n' if i % 2 else b''))\n"
)


def interleaved(count: int) -> tuple[bytes, bytes, bytes]:
    """Return what INTERLEAVE writes: ``(in order, stdout alone, stderr alone)``."""
    merged = out = err = b""
    for i in range(count):
        piece = f"{i}:".encode() + b"x" * (i * 37 % 300) + (b"\n" if i % 2 else b"")
        merged += piece
        if i % 3 == 0:
            err += piece
        else:
            out += piece
    return merged, out, err


def binary_command(tmp_path: Path) -> list[str]:
    code = (
        "import os, sys\n"
        f"os.write(1, {BINARY!r})\n"
        f"os.write(2, {ERROR_BINARY!r})\n"
        "os.write(1, b'tail without newline')\n"
        "sys.exit(5)\n"
    )
    return counting_python(tmp_path / "counter", code)


def test_binary_output_is_replayed_byte_for_byte(tmp_path: Path) -> None:
    command = binary_command(tmp_path)
    for _ in range(2):
        done = jobstamp("--", *command)
        assert done.returncode == 5
        assert done.stdout == BINARY + b"tail without newline"
        assert done.stderr == ERROR_BINARY
    assert runs(tmp_path / "counter") == 1


def test_output_without_a_trailing_newline_or_any_output(tmp_path: Path) -> None:
    for script, out in (("printf abc", b"abc"), ("true", b""), ("printf '\\n\\n'", b"\n\n")):
        command = counting(tmp_path / "counter", script)
        for _ in range(2):
            done = jobstamp("--", *command)
            assert (done.returncode, done.stdout, done.stderr) == (0, out, b"")
    assert runs(tmp_path / "counter") == 3


@pytest.mark.parametrize("count", [60, 2000])  # 2000 pieces are beyond the inline limit
def test_interleaving_into_one_pipe_is_replayed_in_order(
    tmp_path: Path, isolated_cache: Path, count: int
) -> None:
    command = counting_python(tmp_path / "counter", INTERLEAVE, str(count))
    expected, _, _ = interleaved(count)
    for _ in range(2):
        done = jobstamp("--", *command, merged=True)
        assert (done.returncode, done.stdout) == (0, expected)
    assert runs(tmp_path / "counter") == 1
    assert bool(cache_blobs(isolated_cache)) == (len(expected) > 64 * 1024)


@pytest.mark.parametrize("count", [60, 2000])
def test_separate_pipes_each_get_their_stream_exactly(tmp_path: Path, count: int) -> None:
    command = counting_python(tmp_path / "counter", INTERLEAVE, str(count))
    _, out, err = interleaved(count)
    for _ in range(2):
        done = jobstamp("--", *command)
        assert (done.returncode, done.stdout == out, done.stderr == err) == (0, True, True)
    assert runs(tmp_path / "counter") == 1


def test_interleaving_into_one_file_is_replayed_in_order(tmp_path: Path) -> None:
    command = counting_python(tmp_path / "counter", INTERLEAVE, "90")
    expected, _, _ = interleaved(90)
    for name in ("first.log", "second.log"):
        with (tmp_path / name).open("wb") as log:
            done = subprocess.run(
                [sys.executable, "-m", "jobstamps", "--", *command],
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=TIMEOUT,
                check=False,
            )
        assert done.returncode == 0
        assert (tmp_path / name).read_bytes() == expected
    assert runs(tmp_path / "counter") == 1


def test_a_reader_that_goes_away_during_a_replay_does_not_stop_the_other_stream(
    tmp_path: Path,
) -> None:
    code = (
        "import os\nos.write(1, b'o' * (1 << 20))\nos.write(2, b'done\\n')\nraise SystemExit(3)\n"
    )
    command = counting_python(tmp_path / "counter", code)
    assert jobstamp("--", *command).returncode == 3
    with started("--", *command) as proc:
        assert proc.stdout is not None
        assert proc.stdout.read(1) == b"o"
        proc.stdout.close()  # as `jobstamp ... | head -c 1` does
        _, err = proc.communicate(timeout=TIMEOUT)
    assert (proc.returncode, err) == (3, b"done\n")
    assert runs(tmp_path / "counter") == 1
    assert jobstamp("--", *command).stdout == b"o" * (1 << 20)


# -- a damaged cache reads as a miss ------------------------------------------------------------


def _truncate(path: str) -> None:
    with open(path, "r+b") as handle:
        handle.truncate(os.path.getsize(path) // 2)


def _garbage(path: str) -> None:
    with open(path, "wb") as handle:
        handle.write(os.urandom(300))


def _empty(path: str) -> None:
    open(path, "wb").close()


def _flip_last_byte(path: str) -> None:
    with open(path, "r+b") as handle:
        handle.seek(-1, os.SEEK_END)
        last = handle.read(1)
        handle.seek(-1, os.SEEK_END)
        handle.write(bytes([last[0] ^ 1]))


def _directory(path: str) -> None:
    os.unlink(path)
    os.mkdir(path)


@pytest.mark.parametrize("damage", [_truncate, _garbage, _empty, _flip_last_byte, _directory])
def test_a_damaged_entry_is_a_miss(
    tmp_path: Path, isolated_cache: Path, damage: Callable[[str], None]
) -> None:
    command = counting(tmp_path / "counter", "echo out; echo err >&2; exit 2")
    assert jobstamp("--", *command).returncode == 2
    (entry,) = cache_entries(isolated_cache)
    damage(entry)
    done = jobstamp("--explain", "--", *command)
    assert (done.returncode, done.stdout) == (2, b"out\n")
    assert b"err\n" in done.stderr
    assert b"Traceback" not in done.stderr
    assert runs(tmp_path / "counter") == 2
    if damage is not _directory:  # then the entry cannot be replaced and is run every time
        assert b"damaged" in done.stderr
        again = jobstamp("--", *command)
        assert (again.returncode, again.stdout, again.stderr) == (2, b"out\n", b"err\n")
        assert runs(tmp_path / "counter") == 2


def test_an_entry_of_another_key_is_not_replayed(tmp_path: Path, isolated_cache: Path) -> None:
    first = counting(tmp_path / "counter", "echo first")
    second = counting(tmp_path / "counter", "echo second")
    jobstamp("--", *first)
    (first_entry,) = cache_entries(isolated_cache)
    jobstamp("--", *second)
    (second_entry,) = set(cache_entries(isolated_cache)) - {first_entry}
    with open(first_entry, "rb") as source, open(second_entry, "wb") as target:
        target.write(source.read())
    done = jobstamp("--explain", "--", *second)
    assert done.stdout == b"second\n"
    assert b"another key" in done.stderr
    assert runs(tmp_path / "counter") == 3


def _delete(path: str) -> None:
    os.unlink(path)


@pytest.mark.parametrize("damage", [_delete, _truncate, _garbage])
def test_a_missing_or_damaged_blob_is_a_miss(
    tmp_path: Path, isolated_cache: Path, damage: Callable[[str], None]
) -> None:
    code = "import os; os.write(1, b'big' * 100000); os.write(2, b'end')"
    command = counting_python(tmp_path / "counter", code)
    jobstamp("--", *command)
    (blob,) = cache_blobs(isolated_cache)
    damage(blob)
    for count in (2, 2):  # run again, then a hit on the repaired entry
        done = jobstamp("--", *command)
        assert (done.returncode, done.stdout, done.stderr) == (0, b"big" * 100000, b"end")
        assert runs(tmp_path / "counter") == count


def test_a_blob_damaged_in_place_is_not_replayed(tmp_path: Path, isolated_cache: Path) -> None:
    code = "import os; os.write(1, b'big' * 100000)"
    command = counting_python(tmp_path / "counter", code)
    jobstamp("--", *command)
    (blob,) = cache_blobs(isolated_cache)
    _flip_last_byte(blob)
    done = jobstamp("--", *command)
    assert done.stdout == b"big" * 100000


def test_a_cache_layout_in_the_way_never_fails_the_command(
    tmp_path: Path, isolated_cache: Path
) -> None:
    isolated_cache.mkdir(mode=0o700)
    (isolated_cache / "v1").write_text("not a directory")
    command = counting(tmp_path / "counter", "echo out; exit 4")
    for count in (1, 2):
        done = jobstamp("--", *command)
        assert (done.returncode, done.stdout) == (4, b"out\n")
        assert done.stderr.startswith(b"jobstamp: cache ")
        assert done.stderr.count(b"\n") == 1, "one line says why nothing is stored"
        assert runs(tmp_path / "counter") == count


# -- replay() in-process ------------------------------------------------------------------------


def test_replay_writes_chunks_in_order(
    tmp_path: Path, capfdbinary: pytest.CaptureFixture[bytes]
) -> None:
    payload = {"code": 7, "chunks": [(1, 2), (2, 3), (1, 1)], "data": b"abCDEf"}
    assert replay(payload, Store(str(tmp_path))) == 7
    assert capfdbinary.readouterr() == (b"abf", b"CDE")


def test_replay_from_a_blob(tmp_path: Path, capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    store = Store(str(tmp_path))
    digest = store.put_bytes(b"out1err" + b"x" * (3 << 20))
    payload = {"code": 0, "chunks": [(1, 4), (2, 3), (1, 3 << 20)], "blob": digest}
    assert replay(payload, store) == 0
    assert capfdbinary.readouterr() == (b"out1" + b"x" * (3 << 20), b"err")


@pytest.mark.parametrize(
    "payload",
    [
        {"code": 0, "chunks": [(1, 5)], "data": b"four"},
        {"code": 0, "chunks": [(1, 3)], "data": b"four"},
        {"code": 0, "chunks": [(1, 5)], "blob": "0" * 40},
    ],
)
def test_replay_refuses_output_of_the_wrong_size_before_writing(
    tmp_path: Path, capfdbinary: pytest.CaptureFixture[bytes], payload: dict[str, object]
) -> None:
    store = Store(str(tmp_path))
    store.put_bytes(b"four")
    with pytest.raises(ReplayError):
        replay(payload, store)
    assert capfdbinary.readouterr() == (b"", b"")


def test_replay_refuses_a_blob_of_the_wrong_size(
    tmp_path: Path, capfdbinary: pytest.CaptureFixture[bytes]
) -> None:
    store = Store(str(tmp_path))
    digest = store.put_bytes(b"four")
    with pytest.raises(ReplayError, match="wrong size"):
        replay({"code": 0, "chunks": [(1, 2), (2, 3)], "blob": digest}, store)
    assert capfdbinary.readouterr() == (b"", b"")


# -- our own output cannot be written -----------------------------------------------------------

MILLION = "import os\nos.write(1, b'x' * 999_999 + b'\\n')\n"


@pytest.mark.parametrize(("status", "expected"), [(0, 1), (3, 3)])
def test_a_full_disk_on_stdout_is_reported_live_and_on_replay(
    tmp_path: Path, isolated_cache: Path, status: int, expected: int
) -> None:
    if not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full")
    counter = tmp_path / "counter"
    command = counting_python(counter, MILLION + f"raise SystemExit({status})")
    for count in (1, 1):  # the live run, then the replay
        with open("/dev/full", "wb") as full:
            done = jobstamp("--", *command, stdout=full)
        assert done.returncode == expected
        assert done.stderr == b"jobstamp: cannot write standard output (No space left on device)\n"
        assert runs(counter) == count
    # The recording was complete: it replays whole where the output can be written.
    done = jobstamp("--", *command)
    assert (done.returncode, len(done.stdout), runs(counter)) == (status, 1_000_000, 1)


SLOW_READER = (
    "import os, sys, time\n"
    "total = 0\n"
    "while block := os.read(0, 4096):\n"
    "    total += len(block)\n"
    "    time.sleep(0.0005)\n"
    "print(total)\n"
)


def test_a_non_blocking_stdout_gets_every_byte_live_and_on_replay(tmp_path: Path) -> None:
    counter = tmp_path / "counter"
    command = counting_python(counter, MILLION)
    for _ in range(2):  # the live run, then the replay
        read_end, write_end = os.pipe()
        os.set_blocking(write_end, False)
        with subprocess.Popen(
            [sys.executable, "-c", SLOW_READER], stdin=read_end, stdout=subprocess.PIPE
        ) as reader:
            os.close(read_end)
            done = jobstamp("--", *command, stdout=write_end)
            os.close(write_end)
            received, _ = reader.communicate(timeout=TIMEOUT)
        assert (done.returncode, done.stderr) == (0, b"")
        assert int(received) == 1_000_000
    assert runs(counter) == 1


def test_the_writer_reports_a_failed_stream_and_keeps_writing_the_other() -> None:
    from jobstamps.replay import Writer

    writer = Writer()
    read_end, write_end = os.pipe()
    full = os.open("/dev/full", os.O_WRONLY) if os.path.exists("/dev/full") else None
    if full is None:
        pytest.skip("needs /dev/full")
    try:
        writer.write(full, b"lost")
        writer.write(write_end, b"kept")
        writer.write(full, b"not tried again")
        assert os.read(read_end, 100) == b"kept"
        assert writer.failed == {full: "No space left on device"}
        assert writer.problem() == f"cannot write descriptor {full} (No space left on device)"
        assert writer.broken == set()
    finally:
        for fd in (read_end, write_end, full):
            os.close(fd)
