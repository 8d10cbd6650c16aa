"""The original API, ``jobstamp.run`` and ``jobstamp.out_of_date``, on real files and processes."""

from __future__ import annotations

import functools
import os
import pickle
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from unittest import mock

import pytest

import support
from jobstamps import jobstamp
from jobstamps.errors import CacheDirectoryError, UnhashableArgumentError, UsageError
from jobstamps.store import Store

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

METHODS = [
    pytest.param(jobstamp.MTimeMethod, id="mtime"),
    pytest.param(jobstamp.HashMethod, id="hash"),
]
Method = type[jobstamp.MTimeMethod] | type[jobstamp.HashMethod]


def double(counter: str, value: int) -> int:
    """The job most tests run: counts its runs, returns twice its value."""
    support.bump(counter)
    return value * 2


def read_file(counter: str, path: str) -> str:
    support.bump(counter)
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def write_file(counter: str, path: str, text: str) -> str:
    support.bump(counter)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    return text


def keywords(counter: str, **kwargs: Any) -> dict[str, Any]:
    support.bump(counter)
    return kwargs


def echo(counter: str, x: Any, y: Any = None) -> Any:
    support.bump(counter)
    return [x, y]


def counted(counter: str, value: int) -> int:
    support.bump(counter)
    return value


def make_lambda(counter: str) -> Callable[[], int]:
    support.bump(counter)
    return lambda: 1


def make_generator(counter: str) -> Iterator[int]:
    support.bump(counter)
    return (n for n in range(3))


@pytest.fixture
def counter(tmp_path: Path) -> str:
    return str(tmp_path / "runs")


@pytest.fixture
def dep(tmp_path: Path) -> Path:
    path = tmp_path / "dependency.txt"
    path.write_text("contents\n")
    return path


def entries(root: str | os.PathLike[str] | None = None) -> int:
    return Store(os.fspath(root) if root else None).stats()["entries"]


# -- the original behaviours ---------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_a_job_runs_once_and_returns_its_result(counter: str, method: Method) -> None:
    assert jobstamp.run(double, counter, 21, jobstamps_method=method) == 42
    assert jobstamp.run(double, counter, 21, jobstamps_method=method) == 42
    assert support.runs(counter) == 1


@pytest.mark.parametrize("method", METHODS)
def test_other_arguments_run_again(counter: str, method: Method) -> None:
    assert jobstamp.run(double, counter, 1, jobstamps_method=method) == 2
    assert jobstamp.run(double, counter, 2, jobstamps_method=method) == 4
    assert jobstamp.run(double, counter, 1, jobstamps_method=method) == 2
    assert support.runs(counter) == 2


def test_the_result_is_a_copy_from_the_cache(counter: str) -> None:
    first = jobstamp.run(keywords, counter, a=[1, 2])
    first["a"].append(3)
    assert jobstamp.run(keywords, counter, a=[1, 2]) == {"a": [1, 2]}


def test_jobstamps_keywords_are_not_passed_to_the_function(counter: str, dep: Path) -> None:
    result = jobstamp.run(
        keywords,
        counter,
        jobstamps_dependencies=[str(dep)],
        jobstamps_output_files=[],
        jobstamps_cache_output_directory=None,
        jobstamps_method=jobstamp.HashMethod,
        jobstamps_restore_outputs=False,
        other="kept",
    )
    assert result == {"other": "kept"}


@pytest.mark.parametrize("method", METHODS)
def test_a_changed_dependency_runs_again(counter: str, dep: Path, method: Method) -> None:
    options = {"jobstamps_dependencies": [str(dep)], "jobstamps_method": method}
    assert jobstamp.run(read_file, counter, str(dep), **options) == "contents\n"
    assert jobstamp.out_of_date(read_file, counter, str(dep), **options) is None
    dep.write_text("changed\n")
    assert jobstamp.out_of_date(read_file, counter, str(dep), **options) == str(dep)
    assert jobstamp.run(read_file, counter, str(dep), **options) == "changed\n"
    assert jobstamp.run(read_file, counter, str(dep), **options) == "changed\n"
    assert support.runs(counter) == 2


@pytest.mark.parametrize("method", METHODS)
def test_a_deleted_dependency_runs_again(counter: str, dep: Path, method: Method) -> None:
    options = {"jobstamps_dependencies": [str(dep)], "jobstamps_method": method}
    jobstamp.run(double, counter, 1, **options)
    dep.unlink()
    assert jobstamp.out_of_date(double, counter, 1, **options) == str(dep)
    jobstamp.run(double, counter, 1, **options)
    assert support.runs(counter) == 2


@pytest.mark.parametrize("method", METHODS)
def test_a_missing_dependency_runs_every_time(counter: str, tmp_path: Path, method: Method) -> None:
    options = {"jobstamps_dependencies": [str(tmp_path / "absent")], "jobstamps_method": method}
    for _ in range(3):
        assert jobstamp.run(double, counter, 1, **options) == 2
        assert jobstamp.out_of_date(double, counter, 1, **options) is not None
    assert support.runs(counter) == 3


def test_out_of_date_names_a_dependency_that_never_existed(counter: str, tmp_path: Path) -> None:
    absent = str(tmp_path / "absent")
    jobstamp.run(double, counter, 1, jobstamps_dependencies=[absent])
    assert jobstamp.out_of_date(double, counter, 1, jobstamps_dependencies=[absent]) == absent


@pytest.mark.parametrize("method", METHODS)
def test_adding_or_removing_a_dependency_runs_again(
    counter: str, dep: Path, tmp_path: Path, method: Method
) -> None:
    extra = tmp_path / "extra.txt"
    extra.write_text("contents\n")
    one, two = [str(dep)], [str(dep), str(extra)]
    jobstamp.run(double, counter, 1, jobstamps_dependencies=one, jobstamps_method=method)
    jobstamp.run(double, counter, 1, jobstamps_dependencies=two, jobstamps_method=method)
    assert support.runs(counter) == 2
    jobstamp.run(double, counter, 1, jobstamps_dependencies=[], jobstamps_method=method)
    assert support.runs(counter) == 3
    jobstamp.run(double, counter, 1, jobstamps_dependencies=two[::-1], jobstamps_method=method)
    assert support.runs(counter) == 4
    for deps in (one, two, [], two[::-1]):
        jobstamp.run(double, counter, 1, jobstamps_dependencies=deps, jobstamps_method=method)
    assert support.runs(counter) == 4


def test_one_path_may_be_given_alone(counter: str, dep: Path) -> None:
    jobstamp.run(double, counter, 1, jobstamps_dependencies=str(dep))
    jobstamp.run(double, counter, 1, jobstamps_dependencies=dep)
    assert support.runs(counter) == 1
    dep.write_text("changed\n")
    assert jobstamp.out_of_date(double, counter, 1, jobstamps_dependencies=dep) == str(dep)


def test_relative_paths_resolve_against_the_working_directory(
    counter: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "dep.txt").write_text(name)
    monkeypatch.chdir(tmp_path / "a")
    assert jobstamp.run(read_file, counter, "dep.txt", jobstamps_dependencies=["dep.txt"]) == "a"
    monkeypatch.chdir(tmp_path / "b")
    assert jobstamp.run(read_file, counter, "dep.txt", jobstamps_dependencies=["dep.txt"]) == "b"
    (tmp_path / "b" / "dep.txt").write_text("B")
    assert jobstamp.out_of_date(
        read_file, counter, "dep.txt", jobstamps_dependencies=["dep.txt"]
    ) == str(tmp_path / "b" / "dep.txt")


@pytest.mark.parametrize("method", METHODS)
def test_output_file_out_of_date_when_output_file_doesnt_exist(
    counter: str, tmp_path: Path, method: Method
) -> None:
    # The original project's test: a job that does not make its declared output.
    out = str(tmp_path / "never-made")
    options = {"jobstamps_output_files": [out], "jobstamps_method": method}
    assert jobstamp.run(double, counter, 1, **options) == 2
    assert jobstamp.out_of_date(double, counter, 1, **options) == out
    jobstamp.run(double, counter, 1, **options)
    assert support.runs(counter) == 2  # never replayed while the output is missing


@pytest.mark.parametrize("method", METHODS)
def test_a_missing_output_runs_again(counter: str, tmp_path: Path, method: Method) -> None:
    out = tmp_path / "out.txt"
    options = {"jobstamps_output_files": [str(out)], "jobstamps_method": method}
    jobstamp.run(write_file, counter, str(out), "made", **options)
    assert jobstamp.out_of_date(write_file, counter, str(out), "made", **options) is None
    jobstamp.run(write_file, counter, str(out), "made", **options)
    assert support.runs(counter) == 1
    out.unlink()
    assert jobstamp.out_of_date(write_file, counter, str(out), "made", **options) == str(out)
    jobstamp.run(write_file, counter, str(out), "made", **options)
    assert support.runs(counter) == 2
    assert out.read_text() == "made"


def test_an_output_the_job_does_not_make_runs_again(counter: str, tmp_path: Path) -> None:
    # The original stored such a run and replayed it once the file turned up; a file made by
    # someone else is not what the job would have made, so it runs again.
    out = tmp_path / "out.txt"
    jobstamp.run(double, counter, 1, jobstamps_output_files=[str(out)])
    out.write_text("made by someone else")
    jobstamp.run(double, counter, 1, jobstamps_output_files=[str(out)])
    assert support.runs(counter) == 2


@pytest.mark.parametrize("method", METHODS)
def test_a_changed_output_runs_again(counter: str, tmp_path: Path, method: Method) -> None:
    out = tmp_path / "out.txt"
    options = {"jobstamps_output_files": [str(out)], "jobstamps_method": method}
    jobstamp.run(write_file, counter, str(out), "made", **options)
    out.write_text("MADE")
    assert jobstamp.out_of_date(write_file, counter, str(out), "made", **options) == str(out)
    jobstamp.run(write_file, counter, str(out), "made", **options)
    assert out.read_text() == "made"
    assert support.runs(counter) == 2


def test_a_restored_output_has_the_bytes_and_mode_the_job_made(tmp_path: Path) -> None:
    out = tmp_path / "tool.sh"
    counter = str(tmp_path / "runs")
    options = {"jobstamps_output_files": [str(out)], "jobstamps_restore_outputs": True}

    jobstamp.run(make_executable, counter, str(out), **options)
    made = out.read_bytes()
    out.unlink()
    assert jobstamp.out_of_date(make_executable, counter, str(out), **options) is None
    assert jobstamp.run(make_executable, counter, str(out), **options) == "made"
    assert support.runs(counter) == 1
    assert out.read_bytes() == made
    assert os.stat(out).st_mode & 0o7777 == 0o750
    assert jobstamp.out_of_date(make_executable, counter, str(out), **options) is None
    # Without asking for restores (a different job), a deleted output runs the job again.
    out.unlink()
    plain = {"jobstamps_output_files": [str(out)]}
    jobstamp.run(make_executable, counter, str(out), **plain)
    out.unlink()
    assert jobstamp.out_of_date(make_executable, counter, str(out), **plain) == str(out)


def make_executable(counter: str, path: str) -> str:
    support.bump(counter)
    with open(path, "wb") as handle:
        handle.write(b"#!/bin/sh\necho \xe2\x9c\x93\n" + bytes(range(256)))
    os.chmod(path, 0o750)  # noqa: S103 - an executable the job makes, as build tools do
    return "made"


# -- JOBSTAMPS_DISABLED, out_of_date, cache directories ------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_disabled_runs_every_time_and_stores_nothing(
    counter: str, method: Method, monkeypatch: pytest.MonkeyPatch, isolated_cache: Path
) -> None:
    monkeypatch.setenv("JOBSTAMPS_DISABLED", "1")
    assert jobstamp.out_of_date(double, counter, 1, jobstamps_method=method) == (
        "JOBSTAMPS_DISABLED"
    )
    assert jobstamp.run(double, counter, 1, jobstamps_method=method) == 2
    assert jobstamp.run(double, counter, 1, jobstamps_method=method) == 2
    assert support.runs(counter) == 2
    assert not isolated_cache.exists()
    monkeypatch.setenv("JOBSTAMPS_DISABLED", "0")
    jobstamp.run(double, counter, 1, jobstamps_method=method)
    jobstamp.run(double, counter, 1, jobstamps_method=method)
    assert support.runs(counter) == 3


def test_out_of_date_names_the_stamp_until_the_job_ran(counter: str, isolated_cache: Path) -> None:
    stamp = jobstamp.out_of_date(double, counter, 1)
    assert stamp is not None
    assert stamp.startswith(str(isolated_cache) + os.sep)
    assert not os.path.exists(stamp)
    assert not isolated_cache.exists(), "asking must not create the cache"
    assert support.runs(counter) == 0, "asking must not run the job"
    jobstamp.run(double, counter, 1)
    assert os.path.isfile(stamp)
    assert jobstamp.out_of_date(double, counter, 1) is None
    assert jobstamp.out_of_date(double, counter, 2) not in {None, stamp}


def test_the_cache_directory_is_created_nested(counter: str, tmp_path: Path) -> None:
    cache = tmp_path / "a" / "b" / "cache"
    jobstamp.run(double, counter, 1, jobstamps_cache_output_directory=str(cache))
    jobstamp.run(double, counter, 1, jobstamps_cache_output_directory=cache)
    assert cache.is_dir()
    assert os.stat(cache).st_mode & 0o777 == 0o700
    assert (cache / "CACHEDIR.TAG").is_file()
    assert entries(cache) == 1
    assert support.runs(counter) == 1


def test_cache_directories_are_separate(counter: str, tmp_path: Path) -> None:
    jobstamp.run(double, counter, 1, jobstamps_cache_output_directory=tmp_path / "one")
    jobstamp.run(double, counter, 1, jobstamps_cache_output_directory=tmp_path / "two")
    assert support.runs(counter) == 2


def test_a_relative_cache_directory_follows_the_working_directory(
    counter: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        monkeypatch.chdir(tmp_path / name)
        for _ in range(2):
            assert jobstamp.run(double, counter, 1, jobstamps_cache_output_directory="c") == 2
        assert entries(tmp_path / name / "c") == 1
    assert support.runs(counter) == 2


@pytest.mark.parametrize("where", ["itself", "parent"])
def test_a_file_in_place_of_the_cache_directory_is_a_clear_error(
    counter: str, tmp_path: Path, where: str
) -> None:
    blocker = tmp_path / "cache"
    blocker.write_text("Regular file")
    cache = blocker if where == "itself" else blocker / "nested"
    with pytest.raises(CacheDirectoryError, match=str(cache)):
        jobstamp.run(double, counter, 1, jobstamps_cache_output_directory=str(cache))
    with pytest.raises(CacheDirectoryError):
        jobstamp.out_of_date(double, counter, 1, jobstamps_cache_output_directory=str(cache))
    assert support.runs(counter) == 0
    assert blocker.read_text() == "Regular file"


def test_a_file_in_place_of_the_cache_directory_is_still_an_ioerror(
    counter: str, tmp_path: Path
) -> None:
    (tmp_path / "cache").write_text("Regular file")
    with pytest.raises(IOError):  # noqa: PT011 - the original's exception, by its name
        jobstamp.run(double, counter, 1, jobstamps_cache_output_directory=tmp_path / "cache")


@pytest.mark.parametrize("mode", [0o770, 0o777, 0o1777])
def test_a_cache_directory_others_can_write_is_refused(
    counter: str, tmp_path: Path, mode: int
) -> None:
    cache = tmp_path / "shared"
    cache.mkdir()
    cache.chmod(mode)
    with pytest.raises(CacheDirectoryError, match="writable by other users"):
        jobstamp.run(double, counter, 1, jobstamps_cache_output_directory=cache)
    assert support.runs(counter) == 0
    assert os.listdir(cache) == []


def test_jobstamps_cache_dir_moves_the_default(
    counter: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOBSTAMPS_CACHE_DIR", str(tmp_path / "moved"))
    jobstamp.run(double, counter, 1)
    assert entries(tmp_path / "moved") == 1
    stamp = jobstamp.out_of_date(double, counter, 2)
    assert stamp is not None
    assert stamp.startswith(str(tmp_path / "moved") + os.sep)


def test_the_default_cache_is_private_and_tagged(
    counter: str, isolated_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JOBSTAMPS_CACHE_DIR")
    xdg = Path(os.environ["XDG_CACHE_HOME"])
    assert not xdg.exists()
    jobstamp.run(double, counter, 1)
    default = xdg / "jobstamps"
    assert os.stat(default).st_mode & 0o777 == 0o700
    assert (
        (default / "CACHEDIR.TAG")
        .read_text()
        .startswith("Signature: 8a477f597d28d172789f06886806bc55")
    )
    assert entries(default) == 1
    assert not isolated_cache.exists()


def test_the_home_cache_is_used_without_xdg(
    counter: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JOBSTAMPS_CACHE_DIR")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    jobstamp.run(double, counter, 1)
    assert entries(tmp_path / "home" / ".cache" / "jobstamps") == 1


def test_an_unknown_method_is_refused(counter: str) -> None:
    with pytest.raises(UsageError, match="unknown jobstamps method 'sha1'"):
        jobstamp.run(double, counter, 1, jobstamps_method="sha1")
    assert support.runs(counter) == 0


def test_methods_may_be_given_as_instances_or_names(counter: str) -> None:
    jobstamp.run(double, counter, 1, jobstamps_method=jobstamp.HashMethod)
    jobstamp.run(double, counter, 1, jobstamps_method=jobstamp.HashMethod())
    jobstamp.run(double, counter, 1, jobstamps_method="hash")
    assert support.runs(counter) == 1


# -- the two methods -----------------------------------------------------------------------


def test_mtime_method_runs_again_for_a_restored_older_file(counter: str, dep: Path) -> None:
    # git checkout, cp -p and tar restore files with old times: "newer than the stamp" misses
    # those; a recorded fingerprint does not.
    options = {"jobstamps_dependencies": [str(dep)]}
    assert jobstamp.run(read_file, counter, str(dep), **options) == "contents\n"
    restored = dep.with_name("restored")
    restored.write_text("CONTENTS\n")  # same size
    os.replace(restored, dep)
    support.backdate(dep, 86400 * 365)
    assert jobstamp.out_of_date(read_file, counter, str(dep), **options) == str(dep)
    assert jobstamp.run(read_file, counter, str(dep), **options) == "CONTENTS\n"


def test_mtime_method_runs_again_for_a_touch(counter: str, dep: Path) -> None:
    options = {"jobstamps_dependencies": [str(dep)]}
    jobstamp.run(double, counter, 1, **options)
    support.backdate(dep, 10)
    jobstamp.run(double, counter, 1, **options)
    assert support.runs(counter) == 2


def test_hash_method_replays_after_a_touch(counter: str, dep: Path) -> None:
    options = {"jobstamps_dependencies": [str(dep)], "jobstamps_method": jobstamp.HashMethod}
    jobstamp.run(double, counter, 1, **options)
    support.backdate(dep, 10)
    assert jobstamp.out_of_date(double, counter, 1, **options) is None
    jobstamp.run(double, counter, 1, **options)
    assert support.runs(counter) == 1


def test_hash_method_replays_for_identical_contents_copied_over(counter: str, dep: Path) -> None:
    options = {"jobstamps_dependencies": [str(dep)], "jobstamps_method": jobstamp.HashMethod}
    jobstamp.run(double, counter, 1, **options)
    inode = os.stat(dep).st_ino
    copy = dep.with_name("copy")
    copy.write_bytes(dep.read_bytes())
    os.replace(copy, dep)
    assert os.stat(dep).st_ino != inode
    jobstamp.run(double, counter, 1, **options)
    assert support.runs(counter) == 1


def test_hash_method_runs_again_for_changed_contents(counter: str, dep: Path) -> None:
    options = {"jobstamps_dependencies": [str(dep)], "jobstamps_method": jobstamp.HashMethod}
    assert jobstamp.run(read_file, counter, str(dep), **options) == "contents\n"
    dep.write_text("CONTENTS\n")
    support.backdate(dep, 0)
    assert jobstamp.run(read_file, counter, str(dep), **options) == "CONTENTS\n"
    assert support.runs(counter) == 2


@pytest.mark.parametrize("value", ["1", "yes"])
def test_always_use_hashes_overrides_the_mtime_method(
    counter: str, dep: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("JOBSTAMPS_ALWAYS_USE_HASHES", value)
    options = {"jobstamps_dependencies": [str(dep)], "jobstamps_method": jobstamp.MTimeMethod}
    jobstamp.run(double, counter, 1, **options)
    support.backdate(dep, 10)
    jobstamp.run(double, counter, 1, **options)
    assert support.runs(counter) == 1
    dep.write_text("changed\n")
    jobstamp.run(double, counter, 1, **options)
    assert support.runs(counter) == 2


def test_always_use_hashes_off_by_zero(
    counter: str, dep: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOBSTAMPS_ALWAYS_USE_HASHES", "0")
    options = {"jobstamps_dependencies": [str(dep)]}
    jobstamp.run(double, counter, 1, **options)
    support.backdate(dep, 10)
    jobstamp.run(double, counter, 1, **options)
    assert support.runs(counter) == 2


# -- racy files and edits during the run ---------------------------------------------------


def test_a_dependency_written_just_before_the_run_is_hashed(counter: str, dep: Path) -> None:
    jobstamp.run(double, counter, 1, jobstamps_dependencies=[str(dep)])
    (found,) = stored_entries().values()
    recorded = found["deps"][0][1]
    assert recorded[7] is True, "a file this recent must be marked racy"
    assert recorded[6], "a racy file must be recorded with its digest"


def stored_entries() -> dict[str, dict[str, Any]]:
    """Return every valid entry of the default cache, by the path of its file."""
    store = Store()
    top = os.path.join(store.root, "v1", "e")
    found = {}
    for shard in os.listdir(top):
        for name in os.listdir(os.path.join(top, shard)):
            entry, _ = store.read(name)
            if entry is not None:
                found[os.path.join(top, shard, name)] = entry
    return found


def entry_holding(result: object) -> str:
    """Return the path of the entry that stores ``result``."""
    (path,) = (
        path
        for path, entry in stored_entries().items()
        if pickle.loads(entry["payload"]["pickle"]) == result  # noqa: S301 - our own test data
    )
    return path


@pytest.mark.parametrize("method", METHODS)
def test_a_same_size_edit_in_the_same_tick_runs_again(
    counter: str, dep: Path, method: Method
) -> None:
    options = {"jobstamps_dependencies": [str(dep)], "jobstamps_method": method}
    before = os.stat(dep)
    assert jobstamp.run(read_file, counter, str(dep), **options) == "contents\n"
    dep.write_text("CONTENTS\n")
    os.utime(dep, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (os.stat(dep).st_size, os.stat(dep).st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    assert jobstamp.run(read_file, counter, str(dep), **options) == "CONTENTS\n"


def edit_then_read(counter: str, path: str) -> str:
    support.bump(counter)
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    with open(path, "a", encoding="utf-8") as handle:
        handle.write("edited during the run\n")
    return text


@pytest.mark.parametrize("method", METHODS)
def test_a_dependency_the_job_edits_runs_again_next_time(
    counter: str, dep: Path, method: Method
) -> None:
    options = {"jobstamps_dependencies": [str(dep)], "jobstamps_method": method}
    assert jobstamp.run(edit_then_read, counter, str(dep), **options) == "contents\n"
    assert jobstamp.out_of_date(edit_then_read, counter, str(dep), **options) is not None
    assert jobstamp.run(edit_then_read, counter, str(dep), **options) == (
        "contents\nedited during the run\n"
    )
    assert support.runs(counter) == 2


def wait_for_file(counter: str, started: str, proceed: str) -> str:
    support.bump(counter)
    Path(started).touch()
    deadline = time.monotonic() + 30
    while not os.path.exists(proceed) and time.monotonic() < deadline:
        time.sleep(0.005)
    return "done"


def test_a_dependency_edited_while_the_job_runs_runs_again(
    counter: str, dep: Path, tmp_path: Path
) -> None:
    started, proceed = str(tmp_path / "started"), str(tmp_path / "proceed")

    def editor() -> None:
        deadline = time.monotonic() + 30
        while not os.path.exists(started) and time.monotonic() < deadline:
            time.sleep(0.005)
        dep.write_text("edited meanwhile\n")
        Path(proceed).touch()

    thread = threading.Thread(target=editor)
    thread.start()
    options = {"jobstamps_dependencies": [str(dep)]}
    assert jobstamp.run(wait_for_file, counter, started, proceed, **options) == "done"
    thread.join()
    assert jobstamp.out_of_date(wait_for_file, counter, started, proceed, **options) is not None
    jobstamp.run(wait_for_file, counter, started, proceed, **options)
    assert support.runs(counter) == 2
    jobstamp.run(wait_for_file, counter, started, proceed, **options)
    assert support.runs(counter) == 2


# -- keys ----------------------------------------------------------------------------------


def test_positional_and_keyword_calls_share_a_result(counter: str) -> None:
    assert jobstamp.run(echo, counter, 1) == [1, None]
    assert jobstamp.run(echo, counter, x=1) == [1, None]
    assert jobstamp.run(echo, counter=counter, x=1, y=None) == [1, None]
    assert support.runs(counter) == 1


def test_dict_and_set_order_do_not_matter(counter: str) -> None:
    forward = {"a": {1, 9, 17}, "b": [1]}
    backward: dict[str, Any] = {"b": [1]}
    members: set[int] = set()
    for n in (17, 9, 1):
        members.add(n)
    backward["a"] = members
    assert list(forward) != list(backward)
    assert list(forward["a"]) != list(backward["a"])
    jobstamp.run(echo, counter, forward)
    jobstamp.run(echo, counter, backward)
    assert support.runs(counter) == 1


def test_functions_with_one_name_in_two_modules_do_not_collide(
    counter: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = """
        def job(counter):
            with open(counter, "a") as handle:
                handle.write("ran\\n")
            return __name__
    """
    first = support.load_module(tmp_path / "api_first.py", source, monkeypatch)
    second = support.load_module(tmp_path / "api_second.py", source, monkeypatch)
    assert jobstamp.run(first.job, counter) == "api_first"
    assert jobstamp.run(second.job, counter) == "api_second"
    assert jobstamp.run(first.job, counter) == "api_first"
    assert support.runs(counter) == 2


API_SCRIPT = """
import sys
sys.path.insert(0, sys.argv[1])
import job_module
from jobstamps import jobstamp
print(jobstamp.run(job_module.job, sys.argv[2]))
"""


def test_editing_the_function_runs_it_again(counter: str, tmp_path: Path) -> None:
    module = tmp_path / "job_module.py"
    module.write_text(
        "def job(counter):\n"
        "    with open(counter, 'a') as handle:\n"
        "        handle.write('ran\\n')\n"
        "    return 'first version'\n"
    )
    for _ in range(2):
        done = support.run_python(API_SCRIPT, str(tmp_path), counter)
        assert done.stdout == "first version\n"
    assert support.runs(counter) == 1
    module.write_text(module.read_text().replace("first version", "second version"))
    done = support.run_python(API_SCRIPT, str(tmp_path), counter)
    assert done.stdout == "second version\n"
    assert support.runs(counter) == 2


def test_lambdas_work(counter: str) -> None:
    def run_twice(func: Callable[[str], int]) -> list[int]:
        return [jobstamp.run(func, counter), jobstamp.run(func, counter)]

    assert run_twice(lambda c: counted(c, 1)) == [1, 1]
    assert run_twice(lambda c: counted(c, 2)) == [2, 2]
    assert support.runs(counter) == 2
    assert jobstamp.run(lambda: None) is None


def test_functions_without_source_work(counter: str) -> None:
    func = eval("lambda bump, c: bump(c) or 'no source'")  # noqa: S307 - a function without source
    assert jobstamp.run(func, support.bump, counter) == "no source"
    assert jobstamp.run(func, support.bump, counter) == "no source"
    assert support.runs(counter) == 1


def test_functions_without_a_module_work(counter: str) -> None:
    namespace: dict[str, Any] = {"bump": support.bump}
    exec("def job(counter):\n    bump(counter)\n    return 'moduleless'\n", namespace)  # noqa: S102
    job = namespace["job"]
    assert job.__module__ is None
    assert jobstamp.run(job, counter) == "moduleless"
    assert jobstamp.run(job, counter) == "moduleless"
    assert support.runs(counter) == 1


class Scaler:
    """A callable object: its state is part of the job."""

    def __init__(self, factor: int) -> None:
        self.factor = factor

    def __call__(self, counter: str, value: int) -> int:
        support.bump(counter)
        return self.factor * value


def test_callable_objects_and_partials_work(counter: str) -> None:
    assert jobstamp.run(Scaler(2), counter, 5) == 10
    assert jobstamp.run(Scaler(2), counter, 5) == 10
    assert jobstamp.run(Scaler(3), counter, 5) == 15
    assert support.runs(counter) == 2
    assert jobstamp.run(functools.partial(double, counter), 5) == 10
    assert jobstamp.run(functools.partial(double, counter), value=5) == 10
    assert jobstamp.run(functools.partial(double, counter), 6) == 12
    assert support.runs(counter) == 4


class Account:
    """An object whose bound method is the job."""

    def __init__(self, balance: int) -> None:
        self.balance = balance

    def add(self, counter: str, amount: int = 0) -> int:
        support.bump(counter)
        return self.balance + amount


def test_bound_methods_run_as_jobs_do_not_keep_their_objects_alive(counter: str) -> None:
    import gc
    import weakref

    accounts = [Account(n) for n in range(50)]
    for account in accounts:
        assert jobstamp.run(account.add, counter, amount=1) == account.balance + 1
        assert jobstamp.run(account.add, counter, 1) == account.balance + 1
        assert jobstamp.out_of_date(account.add, counter, amount=1) is None
    assert support.runs(counter) == 50  # keyword and positional calls share a result
    alive = [weakref.ref(account) for account in accounts]
    del accounts, account
    gc.collect()
    assert [ref for ref in alive if ref() is not None] == []


def test_a_mock_with_a_name_runs() -> None:
    job = mock.Mock(__name__="job", return_value="expected")
    assert jobstamp.run(job, 1) == "expected"
    job.assert_called_once_with(1)


class MockJob(mock.Mock):
    """The original project's test double: a Mock with a ``__name__``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, __name__="job", **kwargs)
        self.return_value = None


def test_a_mock_job_runs_only_once() -> None:
    job = MockJob()
    jobstamp.run(job, 1)
    jobstamp.run(job, 1)
    job.assert_called_once_with(1)


def test_closures_over_different_values_do_not_share_results() -> None:
    def make(n: int) -> Callable[[], int]:
        return lambda: n

    assert jobstamp.run(make(1)) == 1
    assert jobstamp.run(make(2)) == 2


def test_unhashable_arguments_are_a_clear_error(counter: str) -> None:
    with pytest.raises(UnhashableArgumentError) as caught:
        jobstamp.run(echo, counter, threading.Lock())
    assert str(caught.value) == (
        f"cannot key argument 'x' of {__name__}:echo (type lock): "
        "cannot pickle '_thread.lock' object. "
        "Pass plain data (or an object that can be pickled) instead"
    )
    with pytest.raises(TypeError):  # as the original, which could not key it either
        jobstamp.out_of_date(echo, counter, threading.Lock())
    assert support.runs(counter) == 0


def test_a_dependency_that_cannot_be_stated_runs_the_job(counter: str, tmp_path: Path) -> None:
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    assert jobstamp.run(double, counter, 1, jobstamps_dependencies=[loop]) == 2
    assert jobstamp.run(double, counter, 1, jobstamps_dependencies=[loop]) == 2
    assert support.runs(counter) == 2


# -- results that cannot be stored ---------------------------------------------------------


@pytest.mark.parametrize("make", [make_lambda, make_generator], ids=["lambda", "generator"])
def test_a_result_that_cannot_be_pickled_is_returned_and_not_stored(
    counter: str,
    make: Callable[[str], Any],
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("JOBSTAMPS_DEBUG", "1")
    first = jobstamp.run(make, counter)
    assert callable(first) or list(first) == [0, 1, 2]
    second = jobstamp.run(make, counter)
    assert second is not first
    assert support.runs(counter) == 2
    assert entries() == 0
    out, err = capfd.readouterr()
    assert out == ""
    assert (
        f"jobstamps: not stored: the result of {__name__}:{make.__name__} cannot be pickled" in err
    )


def test_a_stored_result_that_cannot_be_unpickled_runs_again(counter: str) -> None:
    jobstamp.run(double, counter, 1)
    path = entry_holding(2)
    store = Store()
    found, _ = store.read(os.path.basename(path))
    assert found is not None
    found["payload"] = {"pickle": b"\x80\x04garbage"}
    store.write(os.path.basename(path), found)
    assert jobstamp.run(double, counter, 1) == 2
    assert support.runs(counter) == 2
    assert jobstamp.run(double, counter, 1) == 2
    assert support.runs(counter) == 2


def fail(counter: str, error: type[BaseException]) -> None:
    support.bump(counter)
    raise error


@pytest.mark.parametrize("error", [ValueError, KeyboardInterrupt])
def test_a_job_that_raises_stores_nothing_and_releases_its_lock(
    counter: str, error: type[BaseException]
) -> None:
    for _ in range(2):
        with pytest.raises(error):
            jobstamp.run(fail, counter, error)
    assert support.runs(counter) == 2
    assert entries() == 0
    assert jobstamp.out_of_date(fail, counter, error) is not None


def nothing(counter: str) -> None:
    support.bump(counter)


def test_a_none_result_is_stored_too(counter: str) -> None:
    assert jobstamp.run(nothing, counter) is None
    assert jobstamp.run(nothing, counter) is None
    assert support.runs(counter) == 1


# -- JOBSTAMPS_DEBUG -----------------------------------------------------------------------


def test_debug_explains_on_stderr_only(
    counter: str, dep: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("JOBSTAMPS_DEBUG", "1")
    options = {"jobstamps_dependencies": [str(dep)]}
    jobstamp.run(double, counter, 1, **options)
    jobstamp.run(double, counter, 1, **options)
    dep.write_text("changed\n")
    jobstamp.run(double, counter, 1, **options)
    out, err = capfd.readouterr()
    assert out == ""
    lines = err.splitlines()
    name = f"{__name__}:double"
    assert (
        lines[0] == f"jobstamps: running {name}: nothing is stored yet (the cache directory is new)"
    )
    assert lines[1] == f"jobstamps: stored the result of {name}"
    assert lines[2].startswith(f"jobstamps: replayed {name}: nothing changed since it ran at ")
    assert lines[3].startswith(f"jobstamps: running {name}: dependency {dep} changed: ")
    assert lines[4] == f"jobstamps: stored the result of {name}"
    assert len(lines) == 5


def test_debug_is_silent_when_off(
    counter: str, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("JOBSTAMPS_DEBUG", "0")
    jobstamp.run(double, counter, 1)
    jobstamp.run(double, counter, 1)
    assert capfd.readouterr() == ("", "")


# -- faults --------------------------------------------------------------------------------

SLEEPER_SCRIPT = """
import sys
sys.path.insert(0, sys.argv[1])
import sleeper
from jobstamps import jobstamp
jobstamp.run(sleeper.job, sys.argv[2], sys.argv[3], sys.argv[4])
"""

SLEEPER_MODULE = """
import os, time

def job(counter, started, hold):
    with open(counter, "a") as handle:
        handle.write("ran\\n")
    open(started, "w").close()
    deadline = time.monotonic() + 60
    while os.path.exists(hold) and time.monotonic() < deadline:
        time.sleep(0.01)
    return "finished"
"""


def wait_for(path: Path, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while not path.exists():
        assert process.poll() is None, "the job ended before it started"
        assert time.monotonic() < deadline, f"timed out waiting for {path}"
        time.sleep(0.01)


def test_a_job_killed_mid_run_leaves_no_entry(
    counter: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sleeper = support.load_module(tmp_path / "sleeper.py", SLEEPER_MODULE, monkeypatch)
    started, hold = tmp_path / "started", tmp_path / "hold"
    hold.touch()
    args = [str(tmp_path), counter, str(started), str(hold)]
    with subprocess.Popen([sys.executable, "-c", SLEEPER_SCRIPT, *args]) as process:
        try:
            wait_for(started, process)
            process.send_signal(signal.SIGKILL)
        finally:
            process.kill()
        assert process.wait(60) == -signal.SIGKILL
    assert entries() == 0
    hold.unlink()
    assert jobstamp.out_of_date(sleeper.job, *args[1:]) is not None
    assert jobstamp.run(sleeper.job, *args[1:]) == "finished"  # the dead one's lock is gone
    assert jobstamp.run(sleeper.job, *args[1:]) == "finished"
    assert support.runs(counter) == 2
    assert entries() == 1


def truncate(data: bytes) -> bytes:
    return data[: len(data) // 2]


def flip(data: bytes) -> bytes:
    return data[:-3] + bytes([data[-3] ^ 0x10]) + data[-2:]


def garbage(_: bytes) -> bytes:
    return b"\x80\x04 not an entry at all"


@pytest.mark.parametrize(
    "damage", [truncate, flip, garbage, None], ids=["truncated", "flipped", "garbage", "other-key"]
)
def test_a_damaged_entry_runs_again_and_is_rewritten(
    counter: str, damage: Callable[[bytes], bytes] | None
) -> None:
    jobstamp.run(double, counter, 1)
    jobstamp.run(double, counter, 2)
    target, spare = Path(entry_holding(2)), Path(entry_holding(4))
    target.write_bytes(damage(target.read_bytes()) if damage else spare.read_bytes())
    assert jobstamp.out_of_date(double, counter, 1) == str(target)
    assert jobstamp.run(double, counter, 1) == 2
    assert support.runs(counter) == 3
    assert jobstamp.out_of_date(double, counter, 1) is None
    assert entry_holding(2) == str(target)
    assert jobstamp.run(double, counter, 2) == 4
    assert support.runs(counter) == 3


@pytest.mark.parametrize("blocked", ["v1/e", "v1"])
def test_a_cache_that_cannot_be_written_still_returns_results(
    counter: str,
    isolated_cache: Path,
    blocked: str,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    # A file where the entries' directory should be fails writes as a full disk would.
    Store().create()
    shutil.rmtree(isolated_cache / blocked)
    (isolated_cache / blocked).write_text("in the way")
    monkeypatch.setenv("JOBSTAMPS_DEBUG", "1")
    assert jobstamp.run(double, counter, 1) == 2
    assert jobstamp.run(double, counter, 1) == 2
    assert support.runs(counter) == 2
    out, err = capfd.readouterr()
    assert out == ""
    assert "jobstamps: not stored: the cache could not be written" in err
    assert "Traceback" not in err


CONCURRENT_SCRIPT = """
import os, sys, time
sys.path.insert(0, sys.argv[1])
import concurrent_job
from jobstamps import jobstamp
open(sys.argv[3] + "." + sys.argv[4], "w").close()
deadline = time.monotonic() + 60
while not os.path.exists(sys.argv[3]) and time.monotonic() < deadline:
    time.sleep(0.002)
print(jobstamp.run(concurrent_job.job, sys.argv[2], 21))
"""

CONCURRENT_MODULE = """
import time

def job(counter, value):
    with open(counter, "a") as handle:
        handle.write("ran\\n")
    time.sleep(0.5)
    return value * 2
"""


def test_concurrent_identical_jobs_run_once(
    counter: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    support.load_module(tmp_path / "concurrent_job.py", CONCURRENT_MODULE, monkeypatch)
    go = tmp_path / "go"
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                CONCURRENT_SCRIPT,
                str(tmp_path),
                counter,
                str(go),
                str(n),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(8)
    ]
    try:
        deadline = time.monotonic() + 60
        while not all(Path(f"{go}.{n}").exists() for n in range(8)):
            assert time.monotonic() < deadline, "the processes did not start"
            time.sleep(0.01)
        go.touch()
        outputs = [process.communicate(timeout=60)[0] for process in processes]
    finally:
        for process in processes:
            process.kill()
            process.wait()
            if process.stdout:
                process.stdout.close()
    assert outputs == ["42\n"] * 8
    assert [process.returncode for process in processes] == [0] * 8
    assert support.runs(counter) == 1
    stats = Store().stats()
    assert stats["entries"] == 1
    assert (stats["hits"], stats["misses"]) == (7, 1)


def run_example(code: str) -> list[Any]:
    """Run example code of the docs; return the value of each of its expression statements."""
    import ast

    tree = ast.parse(code)
    values: list[Any] = []
    namespace: dict[str, Any] = {"_jobstamps_values": values}
    for statement in tree.body:
        if isinstance(statement, ast.Expr):  # kept, as an interactive prompt shows them
            append = ast.parse("_jobstamps_values.append(None)").body[0]
            assert isinstance(append, ast.Expr)
            assert isinstance(append.value, ast.Call)
            append.value.args = [statement.value]
            statement = append  # noqa: PLW2901 - the statement that records the value
        module = ast.fix_missing_locations(ast.Module(body=[statement], type_ignores=[]))
        exec(compile(module, "python-api.rst", "exec"), namespace)  # noqa: S102 - our own docs
    return values


def test_the_docs_api_examples_hit_right_after_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    decorated, original = support.docs_code_blocks("quickstart/python-api", "python")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.py").write_text("import os\n")
    (tmp_path / "setup.cfg").write_text("[flake8]\n")
    monkeypatch.chdir(tmp_path)
    assert run_example(original) == [None]  # out_of_date right after run: nothing to do
    ran, replayed, why, cached = run_example(decorated)
    assert ran is None
    assert replayed is None  # the example's lint returns nothing
    assert why is not None
    assert why.startswith(str(os.environ["JOBSTAMPS_CACHE_DIR"]))  # b.py never ran: the stamp
    assert cached is True


# -- repeated hits in one process ----------------------------------------------------------

#: How recent a change counts as racy in these tests, and how long they wait for files to age.
SHORT_RACY_WINDOW_NS = 100_000_000


@pytest.fixture
def settled(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[[list[Path]], list[int]]:
    """Shorten the racy window, and return a function that waits until files have settled.

    The function returns how many times the engine checked a job, as a one-item list that
    keeps counting, so that tests see repeated hits take the short way.
    """
    from jobstamps import fingerprint
    from jobstamps.engine import Engine

    monkeypatch.setattr(fingerprint, "RACY_WINDOW_NS", SHORT_RACY_WINDOW_NS)
    checks = [0]
    original = Engine.check

    def counted(self: Engine, job: Any) -> Any:
        checks[0] += 1
        return original(self, job)

    monkeypatch.setattr(Engine, "check", counted)

    def wait(paths: list[Path]) -> list[int]:
        newest = max(max(p.stat().st_mtime_ns, p.stat().st_ctime_ns) for p in paths)
        while time.time_ns() < newest + 2 * SHORT_RACY_WINDOW_NS:
            time.sleep(0.02)
        return checks

    return wait


def same_size_edit(path: Path) -> None:
    """Change the contents, keeping size and modification time."""
    before = path.stat()
    path.write_text(path.read_text().upper())
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def replace_by_rename(path: Path) -> None:
    """Rename another file over ``path``, with other contents, the same size and mtime."""
    before = path.stat()
    other = path.with_name("other")
    other.write_text(path.read_text().upper())
    os.utime(other, ns=(before.st_atime_ns, before.st_mtime_ns))
    other.replace(path)


def retarget_link(path: Path) -> None:
    """Point the link ``path`` at another file made at the same moment as its target."""
    path.unlink()
    path.symlink_to(path.with_name("twin"))


EDITS: dict[str, Callable[[Path], object]] = {
    "same-size-edit": same_size_edit,
    "chmod": lambda path: path.chmod(0o700),
    "rename-over": replace_by_rename,
    "delete": Path.unlink,
    "retarget-link": retarget_link,
}


@pytest.mark.parametrize("edit", list(EDITS))
@pytest.mark.parametrize("method", METHODS)
def test_an_edit_after_repeated_hits_runs_again_on_the_next_call(
    counter: str, tmp_path: Path, settled: Any, edit: str, method: Method
) -> None:
    target = tmp_path / "target.txt"
    twin = tmp_path / "twin"
    target.write_text("contents\n")
    twin.write_text("other contents\n")
    dep = tmp_path / "dependency.txt"
    if edit == "retarget-link":
        dep.symlink_to(target)
    else:
        dep.write_text("contents\n")
    checks = settled([target, twin, dep])
    options = {"jobstamps_dependencies": [str(dep)], "jobstamps_method": method}

    def call() -> str:
        return jobstamp.run(read_file, counter, str(dep), **options)

    assert [call() for _ in range(5)] == ["contents\n"] * 5
    assert support.runs(counter) == 1
    # The run checked twice (before and after taking the lock), the first hit once; later
    # hits only stated the files.
    assert checks[0] == 3
    EDITS[edit](dep)
    if edit == "delete":
        with pytest.raises(FileNotFoundError):
            call()
    else:
        assert call() == dep.read_text()
    assert support.runs(counter) == 2


def test_a_touch_after_repeated_hits_replays_in_hash_mode(
    counter: str, dep: Path, settled: Any
) -> None:
    checks = settled([dep])
    options = {"jobstamps_dependencies": [str(dep)], "jobstamps_method": jobstamp.HashMethod}
    for _ in range(3):
        assert jobstamp.run(read_file, counter, str(dep), **options) == "contents\n"
    dep.touch()
    assert jobstamp.run(read_file, counter, str(dep), **options) == "contents\n"
    assert support.runs(counter) == 1
    # Two checks for the run, one for the first hit, one after the touch: the engine hashed
    # the file again, as stating it could not tell.
    assert checks[0] == 4


def test_an_edit_below_a_directory_dependency_runs_again(
    counter: str, tmp_path: Path, settled: Any
) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    inside = tree / "inside.txt"
    inside.write_text("contents\n")
    settled([tree, inside])
    options = {"jobstamps_dependencies": [str(tree)]}
    for _ in range(3):
        assert jobstamp.run(read_file, counter, str(inside), **options) == "contents\n"
    same_size_edit(inside)  # the directory's own stat does not change
    assert jobstamp.run(read_file, counter, str(inside), **options) == "CONTENTS\n"
    assert support.runs(counter) == 2


def test_a_deleted_output_after_repeated_hits_runs_again(
    counter: str, tmp_path: Path, settled: Any
) -> None:
    output = tmp_path / "out.txt"
    options = {"jobstamps_output_files": [str(output)]}
    assert jobstamp.run(write_file, counter, str(output), "text", **options) == "text"
    checks = settled([output])
    for _ in range(4):
        assert jobstamp.run(write_file, counter, str(output), "text", **options) == "text"
    # Two checks for the run, one for the first hit (the output was recorded while racy, so
    # its fingerprint was refreshed), one for the next; the other hits only stated the files.
    assert checks[0] == 4
    output.unlink()
    assert jobstamp.run(write_file, counter, str(output), "text", **options) == "text"
    assert support.runs(counter) == 2


def test_a_cleared_cache_runs_again_after_repeated_hits(
    counter: str, dep: Path, settled: Any, isolated_cache: Path
) -> None:
    settled([dep])
    options = {"jobstamps_dependencies": [str(dep)]}
    for _ in range(3):
        assert jobstamp.run(read_file, counter, str(dep), **options) == "contents\n"
    Store(str(isolated_cache)).clear()
    assert jobstamp.run(read_file, counter, str(dep), **options) == "contents\n"
    assert support.runs(counter) == 2


def test_repeated_hits_are_counted_and_explained(
    counter: str, dep: Path, settled: Any, monkeypatch: pytest.MonkeyPatch, capfd: Any
) -> None:
    from jobstamps import calls

    settled([dep])
    options = {"jobstamps_dependencies": [str(dep)]}
    for _ in range(4):
        jobstamp.run(read_file, counter, str(dep), **options)
    monkeypatch.setenv("JOBSTAMPS_DEBUG", "1")
    jobstamp.run(read_file, counter, str(dep), **options)
    assert "jobstamps: replayed " in capfd.readouterr().err
    for cache in calls._caches.values():  # noqa: SLF001 - counts not yet written
        cache.store.flush_stats()
    assert Store().stats()["hits"] == 4
    assert support.runs(counter) == 1


def kind_of(counter: str, value: object) -> str:
    support.bump(counter)
    return type(value).__name__


def test_equal_plain_arguments_of_other_types_do_not_share_results(counter: str) -> None:
    values: list[object] = [1, True, 1, True, "x", b"x", 0, False, None]
    assert [jobstamp.run(kind_of, counter, value) for value in values] == [
        "int",
        "bool",
        "int",
        "bool",
        "str",
        "bytes",
        "int",
        "bool",
        "NoneType",
    ]
    assert support.runs(counter) == 7


def test_a_function_given_other_defaults_or_code_runs_again(counter: str) -> None:
    def scaled(counter: str, value: int, factor: int = 2) -> int:
        support.bump(counter)
        return value * factor

    assert jobstamp.run(scaled, counter, 3) == 6
    assert jobstamp.run(scaled, counter, 3) == 6
    scaled.__defaults__ = (3,)
    assert jobstamp.run(scaled, counter, 3) == 9

    def added(counter: str, value: int, factor: int = 2) -> int:
        support.bump(counter)
        return value + factor

    scaled.__code__ = added.__code__
    assert jobstamp.run(scaled, counter, 3) == 6
    assert jobstamp.run(scaled, counter, 3) == 6
    assert support.runs(counter) == 3


def test_paths_split_otherwise_between_dependencies_and_outputs_make_another_job(
    counter: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"  # "" names it: the counter is kept outside
    work.mkdir()
    (work / "out").write_text("made\n")
    monkeypatch.chdir(work)
    first = {"jobstamps_dependencies": [""], "jobstamps_output_files": ["out"]}
    second = {"jobstamps_dependencies": [], "jobstamps_output_files": ["", "out"]}
    assert jobstamp.run(double, counter, 1, **first) == 2
    assert jobstamp.run(double, counter, 1, **second) == 2
    assert support.runs(counter) == 2


def test_repeated_hits_see_an_edit_where_the_change_time_stays(
    counter: str, dep: Path, settled: Any
) -> None:
    """Where ``st_ctime`` is the creation time (Windows), only mtime and size show an edit."""
    from jobstamps import calls

    settled([dep])
    options = {"jobstamps_dependencies": [str(dep)]}
    for _ in range(3):
        assert jobstamp.run(read_file, counter, str(dep), **options) == "contents\n"
    before = dep.stat()
    dep.write_text("longer contents\n")
    after = dep.stat().st_ctime_ns

    def creation_time(value: Any) -> Any:
        if isinstance(value, (tuple, list)):
            return type(value)(map(creation_time, value))
        return after if value == before.st_ctime_ns else value

    for cache in calls._caches.values():  # noqa: SLF001 - as such a file system would state it
        for key, (stated, data) in cache.fresh.items():
            cache.fresh[key] = (creation_time(stated), data)
    assert jobstamp.run(read_file, counter, str(dep), **options) == "longer contents\n"
    assert support.runs(counter) == 2
