"""Cache management and information options: stats, clear, size limit, version, help, paths."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from jobstamps import admin, cli, options
from jobstamps._version import __version__
from jobstamps.errors import UsageError
from jobstamps.store import Store
from support import (
    JOBSTAMP,
    backdate,
    cache_blobs,
    cache_entries,
    counting,
    installed_env,
    jobstamp,
    mounted,
    run_python,
    runs,
)

if TYPE_CHECKING:
    from pathlib import Path


def stats(*options: str) -> dict[str, str]:
    """Run ``jobstamp --show-stats`` and return its rows by name."""
    done = jobstamp(*options, "--show-stats")
    assert (done.returncode, done.stderr) == (0, b"")
    return {line[:17].rstrip(): line[17:] for line in done.stdout.decode().splitlines()}


# -- information ----------------------------------------------------------------------------------


def test_version(capfd: pytest.CaptureFixture[str]) -> None:
    done = jobstamp("--version")
    assert (done.returncode, done.stdout, done.stderr) == (
        0,
        f"jobstamp {__version__}\n".encode(),
        b"",
    )
    assert cli.main(["--version"]) == 0
    assert capfd.readouterr() == (f"jobstamp {__version__}\n", "")


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_lists_every_option_and_examples(flag: str) -> None:
    done = jobstamp(flag)
    assert (done.returncode, done.stderr) == (0, b"")
    text = done.stdout.decode()
    assert text.startswith("usage: jobstamp [OPTION...] -- COMMAND [ARG...]\n")
    for option in options.TABLE:  # the one table the parser and help share
        assert re.search(rf"\n  (-\w, )?{option}\b", text), option
    for short, option in options.ALIASES.items():
        assert f"\n  {short}, {option}" in text
    examples = text[text.index("\nexamples:\n") :]
    assert "jobstamp --dependencies " in examples
    assert "jobstamp --stdin -- " in examples
    assert " -- " in examples.splitlines()[2]


def test_help_wins_over_other_actions(
    capfd: pytest.CaptureFixture[str], isolated_cache: Path
) -> None:
    assert cli.main(["--clear", "--help"]) == 0
    assert capfd.readouterr().out.startswith("usage: jobstamp")
    assert not isolated_cache.exists()


def test_make_include_prints_an_existing_file() -> None:
    done = jobstamp("--make-include")
    assert (done.returncode, done.stderr) == (0, b"")
    path = done.stdout.decode().rstrip("\n")
    assert os.path.isabs(path)
    assert os.path.basename(path) == "jobstamps.mk"
    assert os.path.isfile(path)


def test_cmake_dir_prints_a_directory_or_says_what_is_missing() -> None:
    done = jobstamp("--cmake-dir")
    assert b"Traceback" not in done.stderr
    if done.returncode == 0:
        path = done.stdout.decode().rstrip("\n")
        assert os.path.isfile(os.path.join(path, "JobstampsConfig.cmake"))
    else:
        assert done.returncode == 1
        (message,) = done.stderr.decode().splitlines()
        assert message.startswith("jobstamp: ")


@pytest.mark.slow
def test_installed_command_prints_existing_integration_paths(installed: Path) -> None:
    import subprocess

    env = installed_env(installed)
    for option, name in (("--cmake-dir", "JobstampsConfig.cmake"), ("--make-include", "")):
        done = subprocess.run(
            [installed / "jobstamp", option], env=env, capture_output=True, timeout=60, check=False
        )
        assert (done.returncode, done.stderr) == (0, b""), done.stderr
        path = done.stdout.decode().rstrip("\n")
        assert os.path.exists(os.path.join(path, name) if name else path), path
        assert path.startswith(str(installed.parent))


@pytest.mark.slow
def test_installed_command_runs_and_replays(installed: Path, tmp_path: Path) -> None:
    import subprocess

    command = [
        str(installed / "jobstamp"),
        "--explain",
        "--",
        *counting(tmp_path / "counter", "printf out; printf err >&2; exit 4"),
    ]
    for word in ("stored", "replayed"):
        done = subprocess.run(
            command, env=installed_env(installed), capture_output=True, timeout=60, check=False
        )
        assert (done.returncode, done.stdout) == (4, b"out")
        assert b"err" in done.stderr
        assert f"jobstamp: {word} " in done.stderr.decode()
    assert runs(tmp_path / "counter") == 1


# -- statistics and clearing ----------------------------------------------------------------------


def test_show_stats_of_a_cache_that_does_not_exist(isolated_cache: Path) -> None:
    rows = stats()
    assert rows["cache directory"] == str(isolated_cache)
    assert (rows["results"], rows["hits"], rows["misses"], rows["hit rate"]) == ("0", "0", "0", "-")
    assert rows["size"] == "0 B (no limit)"
    assert not isolated_cache.exists()


def test_show_stats_counts_hits_and_misses(tmp_path: Path) -> None:
    first = counting(tmp_path / "counter", "echo one")
    second = counting(tmp_path / "counter", "echo two")
    for command in (first, first, first, second, second):
        jobstamp("--", *command)
    rows = stats()
    assert (rows["results"], rows["hits"], rows["misses"], rows["hit rate"]) == (
        "2",
        "3",
        "2",
        "60%",
    )
    assert runs(tmp_path / "counter") == 2
    # Failures to start and uncached runs are not lookups.
    jobstamp("--", "jobstamps-no-such-command")
    jobstamp("--", *first, env={"JOBSTAMPS_DISABLED": "1"})
    assert (stats()["hits"], stats()["misses"]) == ("3", "2")


def test_a_cold_run_counts_its_miss_whether_or_not_it_is_stored(
    tmp_path: Path, isolated_cache: Path
) -> None:
    jobstamp("--no-store-failures", "--", "false")
    assert (stats()["results"], stats()["misses"]) == ("0", "1")
    shutil.rmtree(isolated_cache)
    jobstamp("--", *counting(tmp_path / "counter", "echo one"))
    rows = stats()
    assert (rows["results"], rows["hits"], rows["misses"]) == ("1", "0", "1")
    code = (
        "from jobstamps import jobstamp\n"
        "jobstamp.run(lambda: lambda: None)  # a result that cannot be pickled: not stored\n"
        "jobstamp.run(len, 'abc')\n"
        "jobstamp.run(len, 'abc')\n"
    )
    shutil.rmtree(isolated_cache)
    run_python(code)
    rows = stats()
    assert (rows["results"], rows["hits"], rows["misses"]) == ("1", "1", "2")


def test_stats_of_another_stamp_directory(tmp_path: Path) -> None:
    jobstamp("--stamp-directory", tmp_path / "other", "--", "true")
    rows = stats("--stamp-directory", str(tmp_path / "other"))
    assert (rows["cache directory"], rows["results"], rows["misses"]) == (
        str(tmp_path / "other"),
        "1",
        "1",
    )
    assert stats()["results"] == "0"


def test_clear_removes_results_and_keeps_the_size_limit(
    tmp_path: Path, isolated_cache: Path
) -> None:
    command = counting(tmp_path / "counter", "printf '%*s' 100000 x")
    jobstamp("--max-size", "5G")
    jobstamp("--", *command)
    assert (len(cache_entries(isolated_cache)), len(cache_blobs(isolated_cache))) == (1, 1)
    done = jobstamp("--clear")
    assert (done.returncode, done.stdout, done.stderr) == (
        0,
        f"Cleared {isolated_cache}\n".encode(),
        b"",
    )
    assert (cache_entries(isolated_cache), cache_blobs(isolated_cache)) == ([], [])
    rows = stats()
    assert rows["results"] == "0"
    assert rows["size"] == "0 B (limit 5.0 GB)"
    assert len(jobstamp("--", *command).stdout) == 100000
    assert runs(tmp_path / "counter") == 2
    assert jobstamp("--clear", "--clear").returncode == 0


def test_clear_of_a_cache_that_does_not_exist(isolated_cache: Path) -> None:
    done = jobstamp("--clear", "--show-stats")
    assert (done.returncode, done.stderr) == (0, b"")
    assert (
        done.stdout.decode().splitlines()[0] == f"Nothing to clear: {isolated_cache} does not exist"
    )
    assert not isolated_cache.exists()


# -- the size limit -------------------------------------------------------------------------------


def test_max_size_is_persisted(isolated_cache: Path) -> None:
    done = jobstamp("--max-size", "500M")
    assert (done.returncode, done.stdout, done.stderr) == (
        0,
        b"Set the size limit to 500.0 MB (500000000 bytes)\n",
        b"",
    )
    assert stats()["size"] == "0 B (limit 500.0 MB)"
    assert (isolated_cache / "config").read_text() == "max_size=500000000\n"
    assert jobstamp("--max-size", "0").stdout == b"Set the size limit to none\n"
    assert stats()["size"] == "0 B (no limit)"


def test_max_size_evicts_least_recently_used_results(tmp_path: Path, isolated_cache: Path) -> None:
    counter = tmp_path / "counter"
    small = counting(counter, "printf '%*s' 20000 a")  # stored inside its entry
    large = counting(counter, "printf '%*s' 100000 b")  # stored in a blob
    newest = counting(counter, "printf '%*s' 40000 c")
    limit = 150_000
    jobstamp("--max-size", "150k")

    def entry_of(command: list[str]) -> str:
        before = set(cache_entries(isolated_cache))
        jobstamp("--", *command)
        (made,) = set(cache_entries(isolated_cache)) - before
        return made

    small_entry = entry_of(small)
    large_entry = entry_of(large)
    backdate(small_entry, 300)  # made first: without the hit below it would go first
    backdate(large_entry, 200)
    assert len(jobstamp("--", *small).stdout) == 20000  # a hit refreshes its recency
    assert runs(counter) == 2
    assert Store(str(isolated_cache)).stats()["bytes"] < limit
    entry_of(newest)  # storing it goes over the limit
    assert large_entry not in cache_entries(isolated_cache)
    assert cache_blobs(isolated_cache) == []  # the blob went with its entry
    assert Store(str(isolated_cache)).stats()["bytes"] <= limit
    shown, _, limit_shown = stats()["size"].partition(" (limit ")
    assert admin.parse_size(shown) <= limit
    assert limit_shown == "150.0 kB)"

    for command, size, count in ((small, 20000, 3), (newest, 40000, 3), (large, 100000, 4)):
        assert len(jobstamp("--", *command).stdout) == size
        assert runs(counter) == count


def test_lowering_max_size_evicts_at_once(tmp_path: Path, isolated_cache: Path) -> None:
    counter = tmp_path / "counter"
    for index in range(4):
        jobstamp("--", *counting(counter, f"printf '%*s' 30000 {index}"))
        backdate(max(cache_entries(isolated_cache), key=os.path.getmtime), 1000 - index)
    done = jobstamp("--max-size", "70K", "--show-stats")
    assert done.returncode == 0
    first, *rows = done.stdout.decode().splitlines()
    assert first.startswith("Set the size limit to 70.0 kB (70000 bytes); evicted ")
    assert "results          2" in rows
    assert Store(str(isolated_cache)).stats()["bytes"] <= 70_000
    # The two used most recently stay.
    for index, count in ((3, 4), (2, 4), (0, 5)):
        jobstamp("--", *counting(counter, f"printf '%*s' 30000 {index}"))
        assert runs(counter) == count


# -- sizes ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("0", 0),
        ("1", 1 << 30),  # as in ccache: a bare number is GiB
        ("1.5", 3 << 29),
        ("500M", 500_000_000),
        ("500MB", 500_000_000),
        ("500Mi", 500 << 20),
        ("5G", 5_000_000_000),
        ("1.5GiB", 3 << 29),
        ("2 kB", 2000),
        ("2KiB", 2048),
        ("1T", 10**12),
        ("1Ti", 1 << 40),
        (" 7k ", 7000),
    ],
)
def test_parse_size(text: str, size: int) -> None:
    assert admin.parse_size(text) == size


@pytest.mark.parametrize(
    "text", ["", "M", "garbage", "-1", "1e3", "5X", "5 GB extra", "1,5G", "5g", "5B", "5iB"]
)
def test_parse_size_refuses(text: str) -> None:
    with pytest.raises(UsageError, match="is not a size"):
        admin.parse_size(text)


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0 B"),
        (999, "999 B"),
        (1000, "1.0 kB"),
        (1536, "1.5 kB"),
        (5 << 30, "5.4 GB"),
        (3 * 10**12, "3.0 TB"),
        (3 * 10**15, "3000.0 TB"),
    ],
)
def test_format_size(size: int, text: str) -> None:
    assert admin.format_size(size) == text


def test_run_in_process(capfd: pytest.CaptureFixture[str], isolated_cache: Path) -> None:
    options = cli.parse(["--max-size", "1M", "--show-stats"])
    assert admin.run(options, lambda: "help\n") == 0
    out, err = capfd.readouterr()
    assert out.splitlines()[0] == "Set the size limit to 1.0 MB (1000000 bytes)"
    assert f"cache directory  {isolated_cache}" in out
    assert err == ""
    assert sys.modules["jobstamps.admin"] is admin


@pytest.mark.parametrize("text", ["0.0000000001", "0.0001k"])
def test_parse_size_refuses_less_than_a_byte(text: str) -> None:
    with pytest.raises(UsageError, match="less than a byte"):
        admin.parse_size(text)


# -- management of a cache that cannot be used ----------------------------------------------------

MANAGEMENT = [["--show-stats"], ["--clear"], ["--max-size", "1G"], ["--zero-stats"], ["-s", "-C"]]


def unusable_caches(tmp_path: Path) -> dict[str, Path]:
    """Cache directories that cannot be used, each in its own way."""
    (tmp_path / "file").write_text("keep")
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o775)
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    return {
        "group-writable": shared,
        "a file in the way": tmp_path / "file" / "sub",
        "a file": tmp_path / "file",
        "name too long": tmp_path / ("x" * 300),
        "symlink loop": tmp_path / "loop" / "sub",
    }


@pytest.mark.parametrize("args", MANAGEMENT, ids=" ".join)
def test_management_of_an_unusable_cache_fails_in_one_line(args: list[str], tmp_path: Path) -> None:
    for why, cache in unusable_caches(tmp_path).items():
        for where in (["--stamp-directory", str(cache)], []):
            done = jobstamp(*where, *args, env={"JOBSTAMPS_CACHE_DIR": str(cache)})
            assert (done.returncode, done.stdout) == (1, b""), (why, done.stderr)
            (message,) = lines(done.stderr)
            assert message.startswith("jobstamp: "), why
            assert str(cache)[:100] in message or why == "symlink loop", message
    assert (tmp_path / "file").read_text() == "keep"
    assert list((tmp_path / "shared").iterdir()) == []


def lines(data: bytes) -> list[str]:
    return data.decode("utf-8", "replace").splitlines()


def test_clear_refuses_a_directory_that_is_not_a_jobstamps_cache(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "v1").mkdir(parents=True)
    (project / "v1" / "notes.txt").write_text("mine")
    (project / "README").write_text("mine")
    project.chmod(0o700)
    for directory in (project, project / "v1"):
        done = jobstamp("--stamp-directory", directory, "--clear")
        assert (done.returncode, done.stdout) == (1, b"")
        (message,) = lines(done.stderr)
        assert message == (
            f"jobstamp: {directory} is not a jobstamps cache, so nothing was removed. "
            "Name the cache directory itself"
        )
    assert (project / "v1" / "notes.txt").read_text() == "mine"
    assert (project / "README").read_text() == "mine"


def test_zero_stats_sets_hits_and_misses_to_zero_and_keeps_results(tmp_path: Path) -> None:
    command = counting(tmp_path / "counter", "echo one")
    for _ in range(3):
        jobstamp("--", *command)
    assert (stats()["hits"], stats()["misses"]) == ("2", "1")
    for flag in ("--zero-stats", "-z"):
        done = jobstamp(flag)
        assert (done.returncode, done.stderr) == (0, b"")
        assert done.stdout.decode().startswith("Statistics zeroed in ")
        rows = stats()
        assert (rows["results"], rows["hits"], rows["misses"]) == ("1", "0", "0")
    jobstamp("--", *command)
    assert (stats()["hits"], runs(tmp_path / "counter")) == ("1", 1)


def test_sz_shows_the_statistics_then_zeroes_them_as_in_ccache(tmp_path: Path) -> None:
    command = counting(tmp_path / "counter", "echo one")
    for _ in range(3):
        jobstamp("--", *command)
    done = jobstamp("-sz")
    assert (done.returncode, done.stderr) == (0, b"")
    shown = done.stdout.decode()
    assert "hits             2" in shown
    assert "misses           1" in shown
    assert shown.index("hits") < shown.index("Statistics zeroed in ")
    assert (stats()["hits"], stats()["misses"]) == ("0", "0")


def test_clear_keeps_the_statistics(tmp_path: Path) -> None:
    command = counting(tmp_path / "counter", "echo one")
    for _ in range(2):
        jobstamp("--", *command)
    assert jobstamp("--clear").returncode == 0
    rows = stats()
    assert (rows["results"], rows["hits"], rows["misses"]) == ("0", "1", "1")


def test_a_bare_max_size_is_gibibytes_as_in_ccache(tmp_path: Path, isolated_cache: Path) -> None:
    done = jobstamp("-M", "10")
    assert done.stdout == f"Set the size limit to 10.7 GB ({10 << 30} bytes)\n".encode()
    command = counting(tmp_path / "counter", "echo one")
    for _ in range(2):
        assert jobstamp("--", *command).stdout == b"one\n"
    assert runs(tmp_path / "counter") == 1
    assert len(cache_entries(isolated_cache)) == 1


def test_clear_that_cannot_remove_the_results_fails_in_one_line(
    tmp_path: Path, isolated_cache: Path
) -> None:
    jobstamp("--", *counting(tmp_path / "counter", "echo one"))
    entries = isolated_cache / "v1" / "e"
    (shard,) = entries.iterdir()
    with mounted(shard):  # a mount point cannot be removed, even by root
        done = jobstamp("--clear")
        assert (done.returncode, done.stdout) == (1, b"")
        (message,) = lines(done.stderr)
        assert message.startswith("jobstamp: ")
        assert "Cleared" not in message


def test_max_size_on_a_read_only_cache_fails_in_one_line(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with mounted(cache, "ro"):
        done = jobstamp("--stamp-directory", cache, "--max-size", "1G")
        assert (done.returncode, done.stdout) == (1, b"")
        (message,) = lines(done.stderr)
        assert message.startswith(f"jobstamp: cache directory {cache} cannot be used: Read-only")
        assert jobstamp("--stamp-directory", cache, "--show-stats").returncode == 0


def test_management_from_a_deleted_working_directory_fails_in_one_line(tmp_path: Path) -> None:
    gone = tmp_path / "gone"
    gone.mkdir()
    run = [*JOBSTAMP, "--stamp-directory", "relative", "--show-stats"]
    script = f"import os; os.rmdir({str(gone)!r}); os.execv({sys.executable!r}, {run!r})"
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=gone, capture_output=True, timeout=60, check=False
    )
    assert (done.returncode, done.stdout) == (1, b"")
    (message,) = lines(done.stderr)
    assert message == (
        "jobstamp: the working directory cannot be found (No such file or directory), so "
        "neither can the cache directory. Run jobstamp from a directory that exists"
    )
