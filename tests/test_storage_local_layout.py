"""The cache directory's layout: creating it, keeping it private, what is ours, clearing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from jobstamps.errors import CacheDirectoryError
from jobstamps.store import Store
from support import KEY, entry, set_mtime


def test_a_store_is_not_created_by_looking(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "cache"))
    assert store.exists() is False
    assert store.read(KEY) == (None, "no result is stored for this key")
    assert store.stats()["entries"] == 0
    assert not (tmp_path / "cache").exists()


def test_create_makes_a_private_tagged_directory(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "deep" / "cache"))
    store.create()
    assert store.exists() is True
    assert os.stat(store.root).st_mode & 0o777 == 0o700
    tag = Path(store.root, "CACHEDIR.TAG").read_bytes()
    assert tag.startswith(b"Signature: 8a477f597d28d172789f06886806bc55")
    store.create()  # twice is fine


def test_a_store_others_can_write_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    root.mkdir()
    root.chmod(0o777)
    store = Store(str(root))
    with pytest.raises(CacheDirectoryError):
        store.exists()
    with pytest.raises(CacheDirectoryError):
        store.create()
    assert not (root / "CACHEDIR.TAG").exists()


def test_stale_temporary_files_are_dropped_and_fresh_ones_kept(store: Store) -> None:
    store.write(KEY, entry())
    shard = os.path.dirname(store.entry_path(KEY))
    stale = os.path.join(shard, ".tmp-1-dead")
    fresh = os.path.join(shard, ".tmp-2-live")
    Path(stale).write_bytes(b"killed writer")
    Path(fresh).write_bytes(b"writer at work")
    set_mtime(stale, 7200)
    assert store.stats()["entries"] == 1
    assert not os.path.exists(stale)
    assert os.path.exists(fresh)
    assert store.read(KEY)[0] is not None


def test_clear_removes_results_and_keeps_settings_and_statistics(store: Store) -> None:
    store.write(KEY, entry())
    store.put_bytes(b"blob")
    store.note(hit=True)
    store.max_size = 12345
    store.clear()
    assert store.stats() == {"entries": 0, "blobs": 0, "bytes": 0, "hits": 1, "misses": 0}
    assert store.read(KEY)[0] is None
    assert store.max_size == 12345
    assert Path(store.root, "CACHEDIR.TAG").exists()
    store.write(KEY, entry())  # usable again at once
    assert store.read(KEY)[0] is not None


PRIVATE_RUN = """
import os, sys
os.umask(int(sys.argv[1], 8))
from jobstamps import cli, jobstamp
code = sys.argv[2]
for argv in (
    ["--", sys.executable, "-c", code],
    ["--output-files", "made", "--restore-outputs", "--", sys.executable, "-c", code, "made"],
):
    assert cli.main(argv) == 0
assert cli.main(["--max-size", "1Gi"]) == 0
jobstamp.run(len, "abc")
names = [f"f{n}.txt" for n in range(40)]  # a pack of per-file results
for name in names:
    open(name, "w").close()
assert cli.main(["--per-file", "--jobs", "1", "--", "true", "--", *names]) == 0
"""


#: Prints more than fits in an entry (a blob) and writes its last argument, if any.
BIG_OUTPUT = (
    "import sys; sys.stdout.write('x' * 200000); "
    "len(sys.argv) > 1 and open(sys.argv[1], 'w').write('made')"
)


def modes_under(top: Path) -> dict[str, int]:
    """Map every path under ``top`` (itself included) to its permission bits."""
    found = {str(top): top.stat().st_mode & 0o7777}
    for directory, dirs, files in os.walk(top):
        for name in [*dirs, *files]:
            path = os.path.join(directory, name)
            found[path] = os.lstat(path).st_mode & 0o7777
    return found


@pytest.mark.parametrize("umask", ["000", "002"])
def test_every_directory_and_file_of_the_cache_is_private_under_a_permissive_umask(
    tmp_path: Path, umask: str
) -> None:
    cache = tmp_path / "home" / ".cache" / "jobstamps"  # its parents are made too
    env = {**os.environ, "JOBSTAMPS_CACHE_DIR": str(cache)}
    done = subprocess.run(
        [sys.executable, "-c", PRIVATE_RUN, umask, BIG_OUTPUT],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    modes = modes_under(tmp_path / "home")
    kinds = {os.path.relpath(path, cache).split(os.sep)[:2][-1] for path in modes}
    assert {"e", "b", "l", "p", "secret", "stats", ".jobstamps-cache", "config"} <= kinds
    assert len(modes) > 20
    assert any(os.sep.join(("", "e", "packs", "")) in path for path in modes)
    for path, mode in modes.items():
        expected = 0o700 if os.path.isdir(path) else 0o600
        assert mode == expected, f"{path} is {mode:o} under umask {umask}"


def test_a_cache_made_under_a_permissive_umask_by_an_earlier_version_is_made_private(
    tmp_path: Path,
) -> None:
    root = tmp_path / "cache"
    shard = root / "v1" / "e" / "ab"
    shard.mkdir(parents=True)
    (shard / KEY).write_bytes(b"an old entry")
    (root / "v1" / "stats").write_bytes(b"hm")
    for directory in (root / "v1", root / "v1" / "e", shard):
        directory.chmod(0o777)
    (shard / KEY).chmod(0o666)
    root.chmod(0o700)
    store = Store(str(root))
    store.create()
    assert (root / "v1" / ".jobstamps-cache").exists()
    for path, mode in modes_under(root / "v1").items():
        assert mode == (0o700 if os.path.isdir(path) else 0o600), path
    assert store.stats()["hits"] == 1, "the statistics of the earlier version are kept"


def test_a_link_in_place_of_a_cache_directory_is_refused(store: Store, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    shutil.rmtree(os.path.join(store.root, "v1", "e"))
    os.symlink(elsewhere, os.path.join(store.root, "v1", "e"))
    with pytest.raises(OSError, match="a link, a file or another user's directory"):
        Store(store.root).create()
    assert list(elsewhere.iterdir()) == []


def test_the_tag_goes_only_into_a_directory_created_or_found_empty(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir(mode=0o700)
    (project / "setup.cfg").write_text("[metadata]\n")
    Store(str(project)).create()
    assert not (project / "CACHEDIR.TAG").exists()
    empty = tmp_path / "empty"
    empty.mkdir(mode=0o700)
    Store(str(empty)).create()
    assert (empty / "CACHEDIR.TAG").exists()


def test_a_v1_folder_jobstamps_did_not_make_is_neither_written_nor_cleared(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "v1").mkdir(parents=True)
    project.chmod(0o700)
    (project / "v1" / "notes.txt").write_text("mine")
    store = Store(str(project))
    with pytest.raises(OSError, match="holds files jobstamps did not make"):
        store.create()
    with pytest.raises(CacheDirectoryError, match="nothing was removed"):
        store.clear()
    assert sorted(os.listdir(project / "v1")) == ["notes.txt"]
    assert store.unwritable.endswith("v1: it holds files jobstamps did not make")


def test_clear_removes_only_the_layout_of_jobstamps(store: Store) -> None:
    store.write(KEY, entry())
    Path(store.root, "v1", "someone's file").write_text("kept")
    store.clear()
    assert sorted(os.listdir(Path(store.root, "v1"))) == [
        ".jobstamps-cache",
        "secret",
        "someone's file",
    ]


def test_clear_raises_when_something_cannot_be_removed(store: Store) -> None:
    store.write(KEY, entry())
    mount = Path(store.root, "v1", "e", "mnt")
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "tmpfs", mount], check=False).returncode:
        pytest.skip("cannot mount a tmpfs (needs root): no way to make removal fail")
    try:
        with pytest.raises(CacheDirectoryError, match="not everything could be removed"):
            store.clear()
    finally:
        subprocess.run(["umount", mount], check=True)


def test_clear_never_removes_through_a_link_in_place_of_v1(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "e").mkdir(parents=True)
    (elsewhere / "e" / "keep.txt").write_text("mine")
    root = tmp_path / "cache"
    root.mkdir(mode=0o700)
    (root / "v1").symlink_to(elsewhere)
    with pytest.raises(CacheDirectoryError, match="nothing was removed"):
        Store(str(root)).clear()
    assert (elsewhere / "e" / "keep.txt").read_text() == "mine"


def test_clear_refuses_a_directory_with_neither_its_layout_nor_its_tag(tmp_path: Path) -> None:
    folder = tmp_path / "folder"
    folder.mkdir(mode=0o700)
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(CacheDirectoryError, match="is not a jobstamps cache"):
        Store(str(folder)).clear()
    assert os.listdir(folder) == ["notes.txt"]
    Store(str(tmp_path / "missing")).clear()  # nothing there: nothing to refuse
    tagged = tmp_path / "tagged"
    Store(str(tagged)).create()
    shutil.rmtree(tagged / "v1")
    Store(str(tagged)).clear()  # made by jobstamps, its results already gone
