"""File-system primitives: private directories, atomic writes, per-key locks."""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import pytest

from jobstamps._fs import (
    FileLock,
    atomic_write,
    check_private_dir,
    ensure_private_dir,
    makedirs,
    open_private,
)
from jobstamps.errors import CacheDirectoryError, JobstampsError

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

HOLD_LOCK = """
import sys, time
from jobstamps._fs import FileLock
print("waiting", flush=True)
with FileLock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
print("released", flush=True)
"""


def is_locked(path: Path) -> bool:
    """Whether another open file description holds an exclusive lock on ``path``."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


@contextlib.contextmanager
def holder(path: Path, seconds: float) -> Iterator[subprocess.Popen[str]]:
    """Run a process that takes the lock on ``path`` for ``seconds``; yield once it has it."""
    with subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(path), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            assert process.stdout is not None
            assert process.stdout.readline() == "waiting\n"
            assert process.stdout.readline() == "locked\n"
            yield process
        finally:
            if process.poll() is None:
                process.kill()


# -- private directories -------------------------------------------------------------------


def test_a_missing_directory_is_not_there_and_not_created(tmp_path: Path) -> None:
    assert check_private_dir(str(tmp_path / "cache")) is False
    assert not (tmp_path / "cache").exists()


def test_a_private_directory_is_accepted(tmp_path: Path) -> None:
    (tmp_path / "cache").mkdir(mode=0o700)
    assert check_private_dir(str(tmp_path / "cache")) is True


def test_ensure_creates_nested_directories_private(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "cache"
    ensure_private_dir(str(target))
    assert target.is_dir()
    assert os.stat(target).st_mode & 0o777 == 0o700
    ensure_private_dir(str(target))  # already there: fine


@pytest.mark.parametrize("mode", [0o770, 0o702, 0o777, 0o1777])
def test_a_directory_others_can_write_is_refused(tmp_path: Path, mode: int) -> None:
    target = tmp_path / "cache"
    target.mkdir()
    target.chmod(mode)  # the check reads mode bits, so it holds for root too
    with pytest.raises(CacheDirectoryError) as caught:
        check_private_dir(str(target))
    advice = (
        "Choose a directory of your own, not one in a shared directory such as /tmp"
        if mode & 0o1000
        else f"Run 'chmod go-w {target}' or choose another directory"
    )
    assert str(caught.value) == (
        f"cache directory {target} is unusable (writable by other users). {advice}"
    )
    with pytest.raises(CacheDirectoryError):
        ensure_private_dir(str(target))


@pytest.mark.parametrize("mode", [0o750, 0o755, 0o700])
def test_a_directory_others_can_only_read_is_accepted(tmp_path: Path, mode: int) -> None:
    target = tmp_path / "cache"
    target.mkdir()
    target.chmod(mode)
    assert check_private_dir(str(target)) is True


@pytest.mark.skipif(os.name != "posix" or os.getuid() != 0, reason="needs root to chown")
def test_a_directory_of_another_user_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "cache"
    target.mkdir(mode=0o700)
    os.chown(target, 4321, 4321)
    with pytest.raises(CacheDirectoryError, match="belongs to another user"):
        check_private_dir(str(target))


@pytest.mark.skipif(os.name != "posix" or os.getuid() != 0, reason="needs root to chown a link")
def test_a_link_made_by_another_user_is_refused_even_to_a_private_directory(
    tmp_path: Path,
) -> None:
    target = tmp_path / "mine"
    target.mkdir(mode=0o700)
    link = tmp_path / "cache"
    link.symlink_to(target)
    assert check_private_dir(str(link)) is True  # our own link to our own directory
    os.lchown(link, 65534, 65534)
    with pytest.raises(CacheDirectoryError, match="a symbolic link made by another user"):
        check_private_dir(str(link))
    with pytest.raises(CacheDirectoryError):
        ensure_private_dir(str(link))
    assert list(target.iterdir()) == []


@pytest.mark.parametrize("mode", [0o777, 0o1777, 0o770])
def test_a_link_to_a_directory_others_can_write_is_refused(tmp_path: Path, mode: int) -> None:
    target = tmp_path / "shared"
    target.mkdir()
    target.chmod(mode)
    (tmp_path / "cache").symlink_to(target)
    with pytest.raises(CacheDirectoryError, match="writable by other users"):
        check_private_dir(str(tmp_path / "cache"))


@pytest.mark.skipif(os.name != "posix" or os.getuid() != 0, reason="needs root to chown")
def test_a_link_to_another_users_directory_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "theirs"
    target.mkdir(mode=0o700)
    os.chown(target, 65534, 65534)
    (tmp_path / "cache").symlink_to(target)
    with pytest.raises(CacheDirectoryError, match="belongs to another user"):
        check_private_dir(str(tmp_path / "cache"))


def test_a_link_loop_in_place_of_the_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "cache").symlink_to(tmp_path / "cache")
    with pytest.raises(CacheDirectoryError, match="symbolic links"):
        check_private_dir(str(tmp_path / "cache"))


def test_a_file_in_place_of_the_directory_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "cache"
    target.write_text("not a directory")
    with pytest.raises(CacheDirectoryError, match="exists and is not a directory"):
        check_private_dir(str(target))
    with pytest.raises(CacheDirectoryError, match="Remove it or choose another directory"):
        ensure_private_dir(str(target))
    assert target.read_text() == "not a directory"


def test_a_file_in_place_of_a_parent_is_refused(tmp_path: Path) -> None:
    (tmp_path / "parent").write_text("")
    target = tmp_path / "parent" / "cache"
    with pytest.raises(CacheDirectoryError, match="a parent is a file"):
        check_private_dir(str(target))
    with pytest.raises(CacheDirectoryError, match="a parent is a file") as caught:
        ensure_private_dir(str(target))
    assert isinstance(caught.value, JobstampsError)


def test_a_file_in_place_of_a_grandparent_is_refused(tmp_path: Path) -> None:
    (tmp_path / "parent").write_text("")
    target = tmp_path / "parent" / "deeper" / "cache"
    with pytest.raises(CacheDirectoryError, match="choose another directory"):
        ensure_private_dir(str(target))


# -- atomic writes -------------------------------------------------------------------------


def test_atomic_write_writes_every_chunk_privately(tmp_path: Path) -> None:
    target = tmp_path / "new" / "file"
    big = os.urandom(1 << 20)
    atomic_write(str(target), [b"head", big, b"", b"tail"])
    assert target.read_bytes() == b"head" + big + b"tail"
    assert os.stat(target).st_mode & 0o777 == 0o600
    assert os.listdir(target.parent) == ["file"]


def test_atomic_write_replaces_a_file_as_a_whole(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_bytes(b"old")
    inode = os.stat(target).st_ino
    atomic_write(str(target), [b"new contents"])
    assert target.read_bytes() == b"new contents"
    assert os.stat(target).st_ino != inode  # renamed into place, never rewritten in place


def test_a_failed_atomic_write_leaves_the_old_file_and_no_litter(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_bytes(b"old")

    def chunks() -> Iterator[bytes]:
        yield b"partial"
        message = "disk full"
        raise OSError(28, message)

    with pytest.raises(OSError, match="disk full"):
        atomic_write(str(target), chunks())
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["file"]


def test_an_interrupted_atomic_write_leaves_no_litter(tmp_path: Path) -> None:
    target = tmp_path / "file"

    def chunks() -> Iterator[bytes]:
        yield b"partial"
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(str(target), chunks())
    assert os.listdir(tmp_path) == []


def test_atomic_write_fails_when_a_file_blocks_the_directory(tmp_path: Path) -> None:
    (tmp_path / "dir").write_text("")
    with pytest.raises(OSError):  # noqa: PT011 - the errno varies: any OSError is right
        atomic_write(str(tmp_path / "dir" / "file"), [b"x"])
    assert (tmp_path / "dir").read_text() == ""


# -- locks ---------------------------------------------------------------------------------


def test_a_lock_excludes_other_processes_until_released(tmp_path: Path) -> None:
    path = tmp_path / "locks" / "key"
    with FileLock(str(path)) as lock:
        assert lock.path == str(path)
        assert is_locked(path)
    assert not is_locked(path)


def test_a_second_process_waits_for_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "key"
    lock = FileLock(str(path)).__enter__()
    with subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(path), "0"], stdout=subprocess.PIPE, text=True
    ) as waiter:
        try:
            assert waiter.stdout is not None
            assert waiter.stdout.readline() == "waiting\n"
            time.sleep(0.3)
            assert waiter.poll() is None, "the second process should be waiting"
        finally:
            lock.__exit__(None, None, None)
        out, _ = waiter.communicate(timeout=30)
    assert out == "locked\nreleased\n"
    assert waiter.returncode == 0


def test_a_lock_waits_for_another_process(tmp_path: Path) -> None:
    path = tmp_path / "key"
    with holder(path, 0.5) as process:
        started = time.monotonic()
        with FileLock(str(path)):
            waited = time.monotonic() - started
            assert process.stdout is not None
            assert process.stdout.readline() == "released\n"
        assert process.wait(timeout=30) == 0
    assert waited > 0.2


def test_a_killed_holder_releases_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "key"
    with holder(path, 60) as process:
        assert is_locked(path)
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL
    assert not is_locked(path)
    with FileLock(str(path)):
        assert is_locked(path)


def test_a_lock_can_be_taken_again(tmp_path: Path) -> None:
    lock = FileLock(str(tmp_path / "key"))
    for _ in range(3):
        with lock:
            assert is_locked(tmp_path / "key")
        assert not is_locked(tmp_path / "key")


# -- files opened inside the cache ---------------------------------------------------------


def test_open_private_replaces_a_planted_link_and_never_writes_its_target(tmp_path: Path) -> None:
    target = tmp_path / "victim"
    link = tmp_path / "stats"
    link.symlink_to(target)  # dangling: following it would create the target
    fd = open_private(str(link), os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, b"h")
    finally:
        os.close(fd)
    assert not target.exists()
    assert not link.is_symlink()
    assert link.read_bytes() == b"h"


def test_files_and_directories_made_in_the_cache_are_private_whatever_the_umask(
    tmp_path: Path,
) -> None:
    previous = os.umask(0)
    try:
        makedirs(str(tmp_path / "shard"))
        atomic_write(str(tmp_path / "shard" / "entry"), [b"x"])
        os.close(open_private(str(tmp_path / "shard" / "lock"), os.O_RDWR))
    finally:
        os.umask(previous)
    assert (tmp_path / "shard").stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "shard" / "entry").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "shard" / "lock").stat().st_mode & 0o777 == 0o600


def test_a_made_directory_of_another_version_is_made_private_and_a_link_refused(
    tmp_path: Path,
) -> None:
    loose = tmp_path / "loose"
    loose.mkdir()
    loose.chmod(0o777)
    makedirs(str(loose))
    assert loose.stat().st_mode & 0o777 == 0o700
    (tmp_path / "link").symlink_to(loose)
    with pytest.raises(CacheDirectoryError, match="a link, a file or another user's directory"):
        makedirs(str(tmp_path / "link"))
