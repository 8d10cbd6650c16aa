"""The on-disk store: locations, entries that never lie, blobs, statistics, clearing, trimming."""

from __future__ import annotations

import marshal
import os
import pickle
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import support
from jobstamps._fs import TMP_PREFIX, atomic_write
from jobstamps.errors import CacheDirectoryError
from jobstamps.fingerprint import blake2b, digest_bytes
from jobstamps.storage.local import packs as packs_module
from jobstamps.storage.local.packs import PACK_MIN, PACKS_MAX
from jobstamps.store import Store, default_root

KEY = "ab" + "0" * 38
MAGIC = b"jobstamps-entry-2\n"
DAMAGED = "the stored entry is damaged or was not written by this cache"
OTHER = "cd" + "1" * 38
NOT_STORED = "no result is stored for this key"


@pytest.fixture
def store(tmp_path: Path) -> Store:
    created = Store(str(tmp_path / "cache"))
    created.create()
    return created


def entry(**fields: object) -> dict[str, object]:
    return {"deps": [], "outputs": [], "blobs": [], "payload": {"x": 1}, **fields}


def set_mtime(path: str, seconds_ago: float) -> None:
    when = time.time_ns() - int(seconds_ago * 1e9)
    os.utime(path, ns=(when, when))


# -- where the cache lives -----------------------------------------------------------------


def test_default_root_is_jobstamps_cache_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOBSTAMPS_CACHE_DIR", str(tmp_path / "explicit"))
    assert default_root() == str(tmp_path / "explicit")
    assert Store().root == str(tmp_path / "explicit")


def test_a_relative_jobstamps_cache_dir_is_made_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JOBSTAMPS_CACHE_DIR", "rel/cache")
    assert default_root() == str(tmp_path / "rel" / "cache")


def test_default_root_follows_xdg_cache_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JOBSTAMPS_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_root() == str(tmp_path / "xdg" / "jobstamps")


@pytest.mark.parametrize("xdg", [None, "", "relative/cache"])
def test_default_root_falls_back_to_the_home_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, xdg: str | None
) -> None:
    monkeypatch.delenv("JOBSTAMPS_CACHE_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    if xdg is None:
        monkeypatch.delenv("XDG_CACHE_HOME")
    else:
        monkeypatch.setenv("XDG_CACHE_HOME", xdg)
    assert default_root() == str(tmp_path / "home" / ".cache" / "jobstamps")


def test_the_default_is_never_the_shared_temporary_directory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("JOBSTAMPS_CACHE_DIR")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", "/home/someone")
    monkeypatch.setenv("TMPDIR", "/tmp")  # noqa: S108 - asserting we do not use it
    assert default_root() == "/home/someone/.cache/jobstamps"


def test_an_empty_jobstamps_cache_dir_means_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOBSTAMPS_CACHE_DIR", "")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_root() == str(tmp_path / "xdg" / "jobstamps")


# -- creating it ---------------------------------------------------------------------------


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


# -- entries -------------------------------------------------------------------------------


def test_an_entry_reads_back_as_written(store: Store) -> None:
    written = entry(payload={"pickle": b"\x00\xff" * 100, "text": "é"})
    store.write(KEY, written)
    read, why = store.read(KEY)
    assert why == ""
    assert read == {**written, "key": KEY}
    assert store.entry_path(KEY) == os.path.join(store.root, "v1", "e", "ab", KEY)
    assert os.stat(store.entry_path(KEY)).st_mode & 0o777 == 0o600


def test_rewriting_an_entry_replaces_it(store: Store) -> None:
    store.write(KEY, entry(payload=1))
    store.write(KEY, entry(payload=2))
    read, _ = store.read(KEY)
    assert read is not None
    assert read["payload"] == 2
    assert os.listdir(os.path.dirname(store.entry_path(KEY))) == [KEY]


def truncate(data: bytes) -> bytes:
    return data[: len(data) // 2]


def flip_last(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 1])


def flip_magic(data: bytes) -> bytes:
    return bytes([data[0] ^ 0x20]) + data[1:]


def flip_checksum(data: bytes) -> bytes:
    index = len(b"jobstamps-entry-1\n") + 3
    return data[:index] + bytes([data[index] ^ 1]) + data[index + 1 :]


@pytest.mark.parametrize(
    "damage",
    [
        truncate,
        flip_last,
        flip_magic,
        flip_checksum,
        lambda _: b"",
        lambda _: os.urandom(200),
        lambda data: data + b"trailing",
        lambda data: data[:-1],
    ],
    ids=[
        "truncated",
        "last-byte",
        "magic",
        "checksum",
        "empty",
        "garbage",
        "trailing",
        "short-by-one",
    ],
)
def test_a_damaged_entry_reads_as_a_miss(store: Store, damage: object) -> None:
    assert callable(damage)
    store.write(KEY, entry())
    path = Path(store.entry_path(KEY))
    path.write_bytes(damage(path.read_bytes()))
    assert store.read(KEY) == (None, DAMAGED)


def test_every_single_byte_flip_is_caught(store: Store) -> None:
    store.write(KEY, entry(payload={"pickle": b"result"}))
    path = Path(store.entry_path(KEY))
    data = path.read_bytes()
    for index in range(len(data)):
        path.write_bytes(data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :])
        read, why = store.read(KEY)
        assert read is None, f"flipping byte {index} went unnoticed"
        assert why


def test_an_authenticated_body_that_is_not_an_entry_is_damaged(store: Store) -> None:
    store.write(KEY, entry())
    path = Path(store.entry_path(KEY))
    body = b"\xff not marshal"
    path.write_bytes(MAGIC + _mac(store, body) + body)
    assert store.read(KEY) == (None, DAMAGED)
    body = marshal.dumps(["a list", "not a dict"])
    path.write_bytes(MAGIC + _mac(store, body) + body)
    assert store.read(KEY) == (None, "the stored entry belongs to another key")


def _mac(store: Store, body: bytes) -> bytes:
    secret = Path(store.root, "v1", "secret").read_bytes()
    return blake2b(body, digest_size=32, key=secret).digest()


def test_another_keys_entry_in_its_place_is_a_miss(store: Store) -> None:
    store.write(OTHER, entry())
    os.makedirs(os.path.dirname(store.entry_path(KEY)), exist_ok=True)
    os.replace(store.entry_path(OTHER), store.entry_path(KEY))
    assert store.read(KEY) == (None, "the stored entry belongs to another key")


def test_an_unreadable_entry_is_a_miss(store: Store) -> None:
    os.makedirs(store.entry_path(KEY))  # a directory where the entry should be
    read, why = store.read(KEY)
    assert read is None
    assert why.startswith("the stored entry cannot be read")


def test_a_file_in_place_of_the_entries_directory_is_a_miss_and_fails_writes(store: Store) -> None:
    os.rmdir(os.path.join(store.root, "v1", "e"))
    Path(store.root, "v1", "e").write_text("in the way")
    read, why = store.read(KEY)
    assert read is None
    assert why.startswith("the stored entry cannot be read")
    with pytest.raises(OSError):  # noqa: PT011 - ENOTDIR or EEXIST: any OSError
        store.write(KEY, entry())


def test_touch_marks_an_entry_used(store: Store) -> None:
    store.write(KEY, entry())
    set_mtime(store.entry_path(KEY), 3600)
    before = os.stat(store.entry_path(KEY)).st_mtime
    store.touch(KEY)
    assert os.stat(store.entry_path(KEY)).st_mtime > before + 3000
    store.touch(OTHER)  # nothing stored: nothing happens, no error
    assert not os.path.exists(store.entry_path(OTHER))


def test_a_lock_lives_inside_the_cache(store: Store) -> None:
    lock = store.lock(KEY)
    assert lock.path.startswith(os.path.join(store.root, "v1", "l"))
    assert lock.path.endswith(KEY)
    with lock:
        assert os.path.exists(lock.path)


# -- blobs ---------------------------------------------------------------------------------


def test_blobs_are_content_addressed_and_deduplicated(store: Store) -> None:
    digest = store.put_bytes(b"output bytes")
    assert digest == digest_bytes(b"output bytes")
    assert store.put_bytes(b"output bytes") == digest
    assert Path(store.blob_path(digest)).read_bytes() == b"output bytes"
    assert store.has_blob(digest, 12)
    assert not store.has_blob(digest, 13)
    assert not store.has_blob(digest_bytes(b"other"), 5)
    assert store.stats()["blobs"] == 1


def test_a_truncated_blob_is_replaced(store: Store) -> None:
    digest = store.put_bytes(b"output bytes")
    Path(store.blob_path(digest)).write_bytes(b"out")
    assert not store.has_blob(digest, 12)
    assert store.put_bytes(b"output bytes") == digest
    assert Path(store.blob_path(digest)).read_bytes() == b"output bytes"


def test_put_file_stores_a_copy(store: Store, tmp_path: Path) -> None:
    source = tmp_path / "made"
    source.write_bytes(b"\x00binary\xff")
    digest, size = store.put_file(str(source))
    assert size == 8
    source.write_bytes(b"changed later")
    assert Path(store.blob_path(digest)).read_bytes() == b"\x00binary\xff"


def test_a_streamed_blob_is_adopted(store: Store) -> None:
    tmp = store.temp_path()
    assert os.path.basename(tmp).startswith(".tmp-")
    Path(tmp).write_bytes(b"streamed")
    assert store.stats()["blobs"] == 0  # a temporary file is not a blob
    digest = digest_bytes(b"streamed")
    store.adopt_blob(tmp, digest)
    assert not os.path.exists(tmp)
    assert store.has_blob(digest, 8)


# -- statistics, clearing ------------------------------------------------------------------


def test_stats_count_entries_blobs_bytes_hits_and_misses(store: Store) -> None:
    assert store.stats() == {"entries": 0, "blobs": 0, "bytes": 0, "hits": 0, "misses": 0}
    store.write(KEY, entry())
    store.write(OTHER, entry())
    store.put_bytes(b"12345")
    for hit in (True, False, True, True):
        store.note(hit=hit)
    stats = store.stats()
    size = os.stat(store.entry_path(KEY)).st_size + os.stat(store.entry_path(OTHER)).st_size
    assert stats == {"entries": 2, "blobs": 1, "bytes": size + 5, "hits": 3, "misses": 1}


def test_note_never_fails(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    Store(str(tmp_path / "file" / "cache")).note(hit=True)  # cannot be made: not counted
    project = tmp_path / "project"
    (project / "v1").mkdir(parents=True)
    project.chmod(0o700)
    (project / "v1" / "notes.txt").write_text("mine")
    Store(str(project)).note(hit=False)  # not a cache jobstamps made: nothing written
    assert os.listdir(project) == ["v1"]
    assert os.listdir(project / "v1") == ["notes.txt"]


def test_a_lookup_before_the_cache_exists_is_counted(tmp_path: Path) -> None:
    Store(str(tmp_path / "cold")).note(hit=False)
    stats = Store(str(tmp_path / "cold")).stats()
    assert (stats["hits"], stats["misses"], stats["entries"]) == (0, 1, 0)


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


def test_max_size_is_persisted(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "cache"))
    assert store.max_size == 0
    store.max_size = 1 << 20
    assert Store(str(tmp_path / "cache")).max_size == 1 << 20
    Path(store.root, "config").write_text("max_size=lots\n")
    assert store.max_size == 0


# -- trimming ------------------------------------------------------------------------------


def key_named(n: int) -> str:
    return f"{n:02x}" + f"{n:038x}"


def test_trim_evicts_the_least_recently_used_entries(store: Store) -> None:
    keys = [key_named(n) for n in range(4)]
    for age, key in zip((400, 300, 200, 100), keys, strict=True):
        store.write(key, entry(payload={"pickle": b"x" * 1000}))
        set_mtime(store.entry_path(key), age)
    store.touch(keys[0])  # the oldest was just used: now the newest
    size = os.stat(store.entry_path(keys[0])).st_size
    freed = store.trim(2 * size)
    assert freed == 2 * size
    kept = {key for key in keys if store.read(key)[0] is not None}
    assert kept == {keys[0], keys[3]}
    assert store.stats()["bytes"] <= 2 * size


def test_trim_keeps_blobs_that_remaining_entries_use(store: Store) -> None:
    shared = store.put_bytes(b"s" * 500)
    only_old = store.put_bytes(b"o" * 500)
    orphan_old = store.put_bytes(b"x" * 500)
    orphan_new = store.put_bytes(b"n" * 500)
    store.write(KEY, entry(blobs=[[shared, 500], [only_old, 500]]))
    store.write(OTHER, entry(blobs=[[shared, 500]]))
    set_mtime(store.entry_path(KEY), 300)
    set_mtime(store.entry_path(OTHER), 100)
    for digest in (shared, only_old, orphan_old):
        set_mtime(store.blob_path(digest), 600)
    # Room for one entry and a blob: the older entry and the blob only it used must go.
    limit = os.stat(store.entry_path(OTHER)).st_size + 1000
    store.trim(limit)
    assert store.read(KEY)[0] is None
    assert store.read(OTHER)[0] is not None
    assert store.has_blob(shared, 500)
    assert not store.has_blob(only_old, 500)
    assert not store.has_blob(orphan_old, 500)
    assert store.has_blob(orphan_new, 500), "a fresh blob may belong to an entry being written"


def test_trim_counts_a_blob_used_twice_by_one_entry(store: Store) -> None:
    blob = store.put_bytes(b"b" * 100)
    store.write(KEY, entry(blobs=[[blob, 100], [blob, 100]]))
    store.write(OTHER, entry(blobs=[[blob, 100]]))
    set_mtime(store.entry_path(KEY), 200)
    store.trim(os.stat(store.entry_path(OTHER)).st_size + 100)
    assert store.read(KEY)[0] is None
    assert store.read(OTHER)[0] is not None
    assert store.has_blob(blob, 100)


def test_trim_without_a_limit_does_nothing(store: Store) -> None:
    store.write(KEY, entry())
    assert store.trim() == 0
    assert store.trim(0) == 0
    assert store.read(KEY)[0] is not None


def test_trim_uses_the_persisted_limit(store: Store) -> None:
    store.write(KEY, entry())
    store.write(OTHER, entry())
    set_mtime(store.entry_path(KEY), 100)
    store.max_size = os.stat(store.entry_path(OTHER)).st_size
    assert store.trim() > 0
    assert store.read(KEY)[0] is None
    assert store.read(OTHER)[0] is not None


def test_trim_under_the_limit_keeps_everything(store: Store) -> None:
    store.write(KEY, entry())
    store.write(OTHER, entry())
    assert store.trim(1 << 30) == 0
    assert store.stats()["entries"] == 2


def test_trim_removes_the_locks_of_evicted_and_long_unstored_jobs(store: Store) -> None:
    old, new = key_named(1), key_named(2)
    for age, key in ((300, old), (100, new)):
        store.write(key, entry(payload={"pickle": b"x" * 1000}))
        set_mtime(store.entry_path(key), age)
        with store.lock(key):
            pass
    never_stored, recent_unstored = key_named(3), key_named(4)
    for key in (never_stored, recent_unstored):
        with store.lock(key):
            pass
    set_mtime(store.lock(never_stored).path, 2 * 3600)
    store.trim(os.stat(store.entry_path(new)).st_size)
    assert not os.path.exists(store.lock(old).path)
    assert not os.path.exists(store.lock(never_stored).path)
    assert os.path.exists(store.lock(new).path)
    assert os.path.exists(store.lock(recent_unstored).path)


# -- privacy: permissions, authenticated entries, links ------------------------------------

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


def evil_pickle(marker: Path) -> bytes:
    """Return a pickle whose unpickling creates the file ``marker``."""

    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str, str]]:
            return open, (str(marker), "w")

    return pickle.dumps(Evil())


PLANTED_HIT = """
import sys
from jobstamps import jobstamp
def job(value):
    print("ran", flush=True)
    return value
print(repr(jobstamp.run(job, 1, jobstamps_cache_output_directory=sys.argv[1])))
"""


@pytest.mark.parametrize("magic", [b"jobstamps-entry-1\n", MAGIC])
def test_a_planted_entry_with_a_plain_checksum_is_never_unpickled(
    tmp_path: Path, magic: bytes
) -> None:
    cache = tmp_path / "cache"
    first = support.run_python(PLANTED_HIT, str(cache))
    assert first.stdout == "ran\n1\n"
    (path,) = support.cache_entries(cache)
    entry = marshal.loads(Path(path).read_bytes()[len(MAGIC) + 32 :])  # noqa: S302 - test data
    marker = tmp_path / "planted-code-ran"
    entry["payload"] = {"pickle": evil_pickle(marker)}
    body = marshal.dumps(entry)
    for checksum in (blake2b(body, digest_size=16), blake2b(body, digest_size=32)):
        Path(path).write_bytes(magic + checksum.digest() + body)
        again = support.run_python(PLANTED_HIT, str(cache))
        assert again.stdout == "ran\n1\n", "a planted entry must be a miss"
        assert not marker.exists(), "a planted entry was unpickled"


def test_an_entry_copied_from_another_cache_is_a_miss(tmp_path: Path) -> None:
    mine, theirs = Store(str(tmp_path / "mine")), Store(str(tmp_path / "theirs"))
    mine.write(KEY, entry())
    theirs.write(KEY, entry(payload={"x": "forged"}))
    shutil.copyfile(theirs.entry_path(KEY), mine.entry_path(KEY))
    assert Store(mine.root).read(KEY) == (None, DAMAGED)


def test_a_cache_without_its_secret_has_no_valid_entries(store: Store) -> None:
    store.write(KEY, entry())
    secret = Path(store.root, "v1", "secret")
    assert len(secret.read_bytes()) == 32
    assert secret.stat().st_mode & 0o777 == 0o600
    secret.unlink()
    assert Store(store.root).read(KEY) == (None, DAMAGED)
    fresh = Store(store.root)
    fresh.write(KEY, entry())  # rewritten under a new secret
    assert Store(store.root).read(KEY)[0] is not None
    assert secret.read_bytes() != b""


def test_a_secret_others_can_read_is_not_trusted_and_is_replaced(store: Store) -> None:
    store.write(KEY, entry())
    secret = Path(store.root, "v1", "secret")
    secret.chmod(0o644)
    assert Store(store.root).read(KEY) == (None, DAMAGED)
    Store(store.root).write(KEY, entry())
    assert secret.stat().st_mode & 0o777 == 0o600
    assert Store(store.root).read(KEY)[0] is not None


def test_the_secret_is_read_once_per_store(store: Store) -> None:
    store.write(KEY, entry())
    reader = Store(store.root)
    assert reader.read(KEY)[0] is not None
    Path(store.root, "v1", "secret").unlink()
    assert reader.read(KEY)[0] is not None  # no syscall for it on later hits


@pytest.mark.parametrize("name", ["v1/stats", "config", "v1/secret", "lock"])
def test_a_planted_link_in_the_cache_is_never_followed(
    store: Store, tmp_path: Path, name: str
) -> None:
    target = tmp_path / "victim.txt"
    if name != "lock":  # a lock's link dangles: opening it would create the target
        target.write_bytes(b"max_size=7\n" if name == "config" else b"precious")
    before = target.read_bytes() if target.exists() else None
    link = Path(store.lock(KEY).path if name == "lock" else os.path.join(store.root, name))
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target)
    used = Store(store.root)
    assert used.max_size == 0, "settings are not read through a link"
    used.write(KEY, entry())
    assert used.read(KEY)[0] is not None
    with used.lock(KEY):
        pass
    used.note(hit=True)
    used.flush_stats()
    used.max_size = 1 << 20
    assert used.stats()["entries"] == 1
    assert (target.read_bytes() if target.exists() else None) == before
    assert Store(store.root).read(KEY)[0] is not None


def test_a_link_in_place_of_a_cache_directory_is_refused(store: Store, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    shutil.rmtree(os.path.join(store.root, "v1", "e"))
    os.symlink(elsewhere, os.path.join(store.root, "v1", "e"))
    with pytest.raises(OSError, match="a link, a file or another user's directory"):
        Store(store.root).create()
    assert list(elsewhere.iterdir()) == []


# -- what is ours: the tag, clearing, statistics ---------------------------------------------


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


def test_zero_stats_forgets_hits_and_misses_only(store: Store) -> None:
    store.write(KEY, entry())
    store.note(hit=True)
    store.note(hit=False)
    store.zero_stats()
    stats = store.stats()
    assert (stats["hits"], stats["misses"], stats["entries"]) == (0, 0, 1)
    store.zero_stats()  # nothing to forget: fine


# -- blobs shared between entries ------------------------------------------------------------


def test_a_damaged_blob_of_the_right_size_is_replaced(store: Store, tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.write_bytes(b"output bytes")
    digest = store.put_bytes(b"output bytes")
    for put in (lambda: store.put_bytes(b"output bytes"), lambda: store.put_file(str(source))):
        Path(store.blob_path(digest)).write_bytes(b"OUTPUT BYTES")
        put()
        assert Path(store.blob_path(digest)).read_bytes() == b"output bytes"


def test_a_blob_replaced_by_a_link_is_never_read_through_it(store: Store, tmp_path: Path) -> None:
    digest = store.put_bytes(b"output bytes")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_bytes(b"output bytes")  # the right contents, outside the cache
    os.unlink(store.blob_path(digest))
    os.symlink(elsewhere, store.blob_path(digest))
    assert not store.has_blob(digest, len(b"output bytes"))
    assert not store.blob_intact(digest)
    with pytest.raises(OSError, match=r"Too many levels|not a regular"):
        store.open_blob(digest)


def test_releasing_a_blob_keeps_one_that_was_there_before(store: Store) -> None:
    digest = store.put_bytes(b"shared")
    set_mtime(store.blob_path(digest), 10)
    again = Store(store.root)
    tmp = again.temp_path()
    Path(tmp).write_bytes(b"shared")
    assert again.adopt_blob(tmp, digest) is False
    again.release_blob(digest)
    assert Path(store.blob_path(digest)).read_bytes() == b"shared"
    made = Store(store.root)
    tmp = made.temp_path()
    Path(tmp).write_bytes(b"new")
    assert made.adopt_blob(tmp, digest_bytes(b"new")) is True
    made.release_blob(digest_bytes(b"new"))
    assert not os.path.exists(made.blob_path(digest_bytes(b"new")))


def test_pointers_count_towards_the_size_and_are_trimmed(store: Store) -> None:
    store.write(KEY, entry())
    for index in range(50):
        name = digest_bytes(str(index).encode())
        atomic_write(store.pointer_path(name), [KEY.encode()])
        set_mtime(store.pointer_path(name), 100 + index)
    size = os.stat(store.entry_path(KEY)).st_size
    assert store.stats()["bytes"] == size + 50 * len(KEY)
    store.trim(size + 5 * len(KEY))
    assert store.stats()["bytes"] <= size + 5 * len(KEY)
    assert store.read(KEY)[0] is not None, "the newest result stays"
    store.trim(1)
    assert store.stats()["bytes"] == 0, "pointers to evicted results go with them"


def test_memos_count_towards_the_size_and_are_trimmed(store: Store) -> None:
    store.write(KEY, entry())
    for index in range(50):
        memo = store.memo_path(digest_bytes(f"memo {index}".encode()))
        atomic_write(memo, [b"d" * 40])
        set_mtime(memo, 1000 + index)  # older than the entry
    size = os.stat(store.entry_path(KEY)).st_size
    assert store.stats()["bytes"] == size + 50 * 40
    store.trim(size + 5 * 40)
    assert store.stats()["bytes"] == size + 5 * 40
    assert store.read(KEY)[0] is not None, "the newest result stays"


def test_a_config_file_jobstamps_did_not_write_is_never_overwritten(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir(mode=0o700)
    (project / "config").write_text("[core]\n\tbare = false\n")
    store = Store(str(project))
    assert store.max_size == 0
    with pytest.raises(CacheDirectoryError, match="a file named config"):
        store.max_size = 1 << 20
    assert (project / "config").read_text() == "[core]\n\tbare = false\n"


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


def test_listings_count_towards_the_size_go_with_their_entry_and_are_cleared(
    store: Store,
) -> None:
    keys = [key_named(n) for n in range(3)]
    for age, key in zip((300, 200, 100), keys, strict=True):
        store.write(key, entry())
        store.write_listing(key, b"l" * 1000)
        set_mtime(store.entry_path(key), age)
    orphan = key_named(9)
    store.write_listing(orphan, b"o" * 1000)
    set_mtime(store.listing_path(orphan), 100)  # its entry is gone, long since
    size = os.stat(store.entry_path(keys[0])).st_size
    assert store.stats()["bytes"] == 3 * size + 4000
    store.trim(2 * (size + 1000))
    assert not os.path.exists(store.listing_path(orphan))
    assert not os.path.exists(store.listing_path(keys[0])), "evicted with its entry"
    assert store.read(keys[0])[0] is None
    assert store.read_listing(keys[2]) == b"l" * 1000
    store.clear()
    assert store.read_listing(keys[2]) is None
    assert store.stats()["bytes"] == 0
    again = Store(store.root)
    again.create()  # the layout is made again for the next result
    again.write_listing(KEY, b"x")
    assert again.read_listing(KEY) == b"x"


def test_a_listing_is_never_read_through_a_link(store: Store, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.write_bytes(b"jobstamps-listing-1\0")
    store.write_listing(KEY, b"x")
    os.unlink(store.listing_path(KEY))
    os.symlink(outside, store.listing_path(KEY))
    assert store.read_listing(KEY) is None


# -- packs: many entries stored at once ----------------------------------------------------


def packing_store(root: str | Path) -> Store:
    """A store that keeps entries written together in packs, as the per-file mode's does."""
    made = Store(str(root))
    made.packs = True
    return made


def write_together(store: Store, keys: list[str], size: int = 0, **fields: object) -> None:
    """Write an entry for each key in one batch; ``size`` random bytes of payload each."""
    with store.batch():
        for key in keys:
            extra = {"payload": {"data": os.urandom(size)}} if size else {}
            store.write(key, entry(**fields, **extra))


def test_many_entries_stored_at_once_are_one_file_and_read_back(tmp_path: Path) -> None:
    keys = [key_named(n) for n in range(PACK_MIN)]
    write_together(packing_store(tmp_path / "cache"), keys)
    assert len(support.cache_packs(tmp_path / "cache")) == 1
    assert support.cache_entries(tmp_path / "cache") == []
    reader = packing_store(tmp_path / "cache")
    assert all(reader.read(key)[0] == {**entry(), "key": key} for key in keys)
    # Only front ends that look up many keys at once read packs.
    assert Store(str(tmp_path / "cache")).read(keys[0]) == (None, NOT_STORED)


def test_a_few_entries_stored_at_once_get_a_file_each(tmp_path: Path) -> None:
    keys = [key_named(n) for n in range(PACK_MIN - 1)]
    write_together(packing_store(tmp_path / "cache"), keys)
    assert support.cache_packs(tmp_path / "cache") == []
    assert len(support.cache_entries(tmp_path / "cache")) == PACK_MIN - 1
    assert all(Store(str(tmp_path / "cache")).read(key)[0] is not None for key in keys)


def test_a_store_that_keeps_no_packs_writes_a_batch_a_file_each(store: Store) -> None:
    write_together(store, [key_named(n) for n in range(PACK_MIN)])
    assert support.cache_packs(store.root) == []
    assert len(support.cache_entries(store.root)) == PACK_MIN


def test_entries_with_blobs_are_never_packed(tmp_path: Path) -> None:
    packing = packing_store(tmp_path / "cache")
    digest = packing.put_bytes(b"output")
    keys = [key_named(n) for n in range(PACK_MIN)]
    write_together(packing, keys, blobs=[[digest, 6]])
    assert support.cache_packs(tmp_path / "cache") == []
    assert len(support.cache_entries(tmp_path / "cache")) == PACK_MIN


def test_a_batch_left_by_an_error_stores_nothing(tmp_path: Path) -> None:
    packing = packing_store(tmp_path / "cache")
    keys = [key_named(n) for n in range(PACK_MIN)]

    def fail_halfway() -> None:
        with packing.batch():
            for key in keys:
                packing.write(key, entry())
            raise RuntimeError

    with pytest.raises(RuntimeError):
        fail_halfway()
    assert support.cache_packs(packing.root) == []
    assert all(packing.read(key)[0] is None for key in keys)


@pytest.mark.parametrize("damage", ["flipped", "truncated", "empty", "other_cache", "a_link"])
def test_a_damaged_or_foreign_pack_is_a_miss_for_its_entries(tmp_path: Path, damage: str) -> None:
    keys = [key_named(n) for n in range(PACK_MIN)]
    write_together(packing_store(tmp_path / "cache"), keys)
    (pack,) = support.cache_packs(tmp_path / "cache")
    data = Path(pack).read_bytes()
    if damage == "flipped":
        Path(pack).write_bytes(data[:-5] + bytes([data[-5] ^ 1]) + data[-4:])
    elif damage == "truncated":
        Path(pack).write_bytes(data[: len(data) // 2])
    elif damage == "empty":
        Path(pack).write_bytes(b"")
    elif damage == "other_cache":  # a pack of another cache (another secret) copied in
        write_together(packing_store(tmp_path / "other"), keys, payload={"x": 2})
        (foreign,) = support.cache_packs(tmp_path / "other")
        shutil.copyfile(foreign, pack)
    else:
        (tmp_path / "elsewhere").write_bytes(data)
        os.unlink(pack)
        os.symlink(tmp_path / "elsewhere", pack)
    reader = packing_store(tmp_path / "cache")
    assert all(reader.read(key) == (None, NOT_STORED) for key in keys)


def read_packed_in_a_fresh_process(cache: Path, keys: list[str]) -> tuple[int, int]:
    """Look ``keys`` up as the per-file mode does; return how many hit and the peak memory (KiB)."""
    code = (
        "import resource, sys\n"
        "from jobstamps.store import Store\n"
        "store = Store(sys.argv[1])\n"
        "store.packs = True\n"
        "found = sum(store.read(key)[0] is not None for key in sys.argv[2:])\n"
        "print(found, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    found, peak = support.run_python(code, str(cache), *keys).stdout.split()
    return int(found), int(peak)


@pytest.mark.parametrize("header", [b"", b"jobstamps-pack-1\n"])
def test_a_huge_damaged_pack_is_never_read_whole_and_is_removed(
    tmp_path: Path, header: bytes
) -> None:
    keys = [key_named(n) for n in range(PACK_MIN)]
    write_together(packing_store(tmp_path / "cache"), keys)
    damaged = tmp_path / "cache" / "v1" / "e" / "packs" / "0000000000000000-1-zeros"
    damaged.write_bytes(header)
    os.truncate(damaged, 1 << 30)  # sparse: 1 GiB of zeros costs no disk
    found, peak_kib = read_packed_in_a_fresh_process(tmp_path / "cache", keys)
    assert found == len(keys)  # the intact pack still answers
    assert peak_kib < 200 * 1024
    assert not damaged.exists()
    assert len(support.cache_packs(tmp_path / "cache")) == 1


def test_a_pack_that_does_not_verify_is_removed_when_first_read(tmp_path: Path) -> None:
    keys = [key_named(n) for n in range(PACK_MIN)]
    write_together(packing_store(tmp_path / "cache"), keys)
    (pack,) = support.cache_packs(tmp_path / "cache")
    data = Path(pack).read_bytes()
    Path(pack).write_bytes(data[:-5] + bytes([data[-5] ^ 1]) + data[-4:])
    assert packing_store(tmp_path / "cache").read(keys[0]) == (None, NOT_STORED)
    assert support.cache_packs(tmp_path / "cache") == []


def test_a_pack_of_another_version_is_left_alone_unread(tmp_path: Path) -> None:
    keys = [key_named(n) for n in range(PACK_MIN)]
    write_together(packing_store(tmp_path / "cache"), keys)
    (pack,) = support.cache_packs(tmp_path / "cache")
    data = Path(pack).read_bytes()
    Path(pack).write_bytes(b"jobstamps-pack-2\n" + data[len(b"jobstamps-pack-1\n") :])
    assert packing_store(tmp_path / "cache").read(keys[0]) == (None, NOT_STORED)
    assert support.cache_packs(tmp_path / "cache") == [pack]


def test_a_batch_larger_than_a_pack_may_be_is_split_into_several(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(packs_module, "PACK_MAX_BYTES", 3 * PACK_MIN * 1000)
    keys = [key_named(n) for n in range(4 * PACK_MIN)]
    write_together(packing_store(tmp_path / "cache"), keys, size=1000)
    packs = support.cache_packs(tmp_path / "cache")
    assert len(packs) > 1
    assert all(os.stat(pack).st_size <= packs_module.PACK_MAX_BYTES for pack in packs)
    reader = packing_store(tmp_path / "cache")
    assert all(reader.read(key)[0] is not None for key in keys)


def test_an_unfinished_pack_is_never_read(tmp_path: Path) -> None:
    keys = [key_named(n) for n in range(PACK_MIN)]
    write_together(packing_store(tmp_path / "cache"), keys)
    (pack,) = support.cache_packs(tmp_path / "cache")
    os.rename(pack, os.path.join(os.path.dirname(pack), TMP_PREFIX + "1234-killed"))
    assert all(packing_store(tmp_path / "cache").read(key)[0] is None for key in keys)


def test_a_pack_that_does_not_fit_on_the_disk_leaves_the_older_entries(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    packing = packing_store(cache)
    keys = [key_named(n) for n in range(PACK_MIN)]
    packing.write(keys[0], entry(payload={"old": 1}))
    packing.create()
    packs = cache / "v1" / "e" / "packs"
    with support.mounted(packs):  # 1 MB
        with pytest.raises(OSError, match="No space left on device"):
            write_together(packing, keys, size=1 << 16)  # 2 MB
        assert os.listdir(packs) == []
        assert packing.unwritable
        reader = packing_store(cache)
        assert reader.read(keys[0])[0] == {**entry(payload={"old": 1}), "key": keys[0]}
        assert all(reader.read(key)[0] is None for key in keys[1:])


def test_a_pack_replaces_older_single_entries_of_its_keys(tmp_path: Path) -> None:
    packing = packing_store(tmp_path / "cache")
    keys = [key_named(n) for n in range(PACK_MIN)]
    packing.write(keys[0], entry(payload={"old": 1}))
    write_together(packing, keys, payload={"new": 1})
    assert support.cache_entries(packing.root) == []
    assert packing_store(packing.root).read(keys[0])[0] == {
        **entry(payload={"new": 1}),
        "key": keys[0],
    }


def test_a_single_entry_written_later_comes_before_the_packed_one(tmp_path: Path) -> None:
    packing = packing_store(tmp_path / "cache")
    keys = [key_named(n) for n in range(PACK_MIN)]
    write_together(packing, keys, payload={"packed": 1})
    packing.write(keys[3], entry(payload={"later": 1}))
    reader = packing_store(packing.root)
    assert reader.read(keys[3])[0] == {**entry(payload={"later": 1}), "key": keys[3]}
    assert reader.read(keys[4])[0] == {**entry(payload={"packed": 1}), "key": keys[4]}


def test_the_newest_pack_wins_for_a_key_in_two(tmp_path: Path) -> None:
    packing = packing_store(tmp_path / "cache")
    keys = [key_named(n) for n in range(PACK_MIN)]
    write_together(packing, keys, payload={"first": 1})
    write_together(packing, keys, payload={"second": 1})
    assert len(support.cache_packs(packing.root)) == 2
    assert packing_store(packing.root).read(keys[0])[0] == {
        **entry(payload={"second": 1}),
        "key": keys[0],
    }


def test_too_many_packs_are_merged_into_one(tmp_path: Path) -> None:
    packing = packing_store(tmp_path / "cache")
    every = [key_named(n) for n in range(PACK_MIN * (PACKS_MAX + 1))]
    groups = [every[i : i + PACK_MIN] for i in range(0, len(every), PACK_MIN)]
    for number, group in enumerate(groups):
        write_together(packing, group, payload={"group": number})
        packing.write(group[0], entry(payload={"single": number}))  # newer: outside any pack
    (merged,) = support.cache_packs(packing.root)
    reader = packing_store(packing.root)
    for number, group in enumerate(groups):
        assert reader.read(group[0])[0] == {**entry(payload={"single": number}), "key": group[0]}
        assert reader.read(group[1])[0] == {**entry(payload={"group": number}), "key": group[1]}
    body = Path(merged).read_bytes()[len(b"jobstamps-pack-1\n") + 32 :]
    held = marshal.loads(body)  # noqa: S302 - the test's own file
    # Merged while the last pack was written: the entries shadowed by newer files are dropped.
    assert set(held) == set(every) - {group[0] for group in groups[:-1]}


def test_stats_count_the_entries_in_packs(tmp_path: Path) -> None:
    packing = packing_store(tmp_path / "cache")
    write_together(packing, [key_named(n) for n in range(PACK_MIN)])
    packing.write(KEY, entry())
    stats = Store(str(packing.root)).stats()
    (pack,) = support.cache_packs(packing.root)
    assert stats["entries"] == PACK_MIN + 1
    assert stats["bytes"] == os.stat(pack).st_size + os.stat(packing.entry_path(KEY)).st_size


def test_stats_count_a_result_in_two_packs_or_beside_its_own_file_once(tmp_path: Path) -> None:
    packing = packing_store(tmp_path / "cache")
    keys = [key_named(n) for n in range(PACK_MIN + 1)]
    write_together(packing, keys[:PACK_MIN])
    write_together(packing, keys[1:])  # all but the first again, and one more
    packing.write(keys[5], entry(payload={"later": 1}))
    assert len(support.cache_packs(packing.root)) == 2
    assert Store(str(packing.root)).stats()["entries"] == len(keys)


def test_trim_evicts_a_pack_whole_by_when_it_was_last_used(tmp_path: Path) -> None:
    packing = packing_store(tmp_path / "cache")
    old = [key_named(n) for n in range(PACK_MIN)]
    new = [key_named(n) for n in range(PACK_MIN, 2 * PACK_MIN)]
    write_together(packing, old)
    write_together(packing, new)
    first, second = support.cache_packs(packing.root)
    set_mtime(first, 300)
    set_mtime(second, 200)
    reader = packing_store(packing.root)
    assert reader.read(old[5])[0] is not None
    reader.touch(old[5])  # the older pack was just used: the other goes
    second_size = os.stat(second).st_size
    assert reader.trim(os.stat(first).st_size) == second_size
    assert support.cache_packs(packing.root) == [first]
    fresh = packing_store(packing.root)
    assert all(fresh.read(key)[0] is not None for key in old)
    assert all(fresh.read(key)[0] is None for key in new)


def test_a_size_limit_smaller_than_a_pack_keeps_its_newest_results(tmp_path: Path) -> None:
    packing = packing_store(tmp_path / "cache")
    keys = [key_named(n) for n in range(4 * PACK_MIN)]
    with packing.batch():
        for number, key in enumerate(keys):  # the later keys are the newer results
            packing.write(key, entry(created=number, payload={"data": b"x" * 100}))
    (pack,) = support.cache_packs(packing.root)
    set_mtime(pack, 500)
    mtime = os.stat(pack).st_mtime_ns
    limit = os.stat(pack).st_size // 3
    assert packing.trim(limit) > 0
    assert support.cache_packs(packing.root) == [pack]  # the same pack, made smaller
    assert os.stat(pack).st_size <= limit
    assert os.stat(pack).st_mtime_ns == mtime  # as recently used as before
    reader = packing_store(packing.root)
    kept = [key for key in keys if reader.read(key)[0] is not None]
    assert 0 < len(kept) < len(keys) // 3
    assert kept == keys[-len(kept) :]  # the newest
    assert packing.trim(1) > 0
    assert support.cache_packs(packing.root) == []


def test_clear_removes_the_packs(tmp_path: Path) -> None:
    packing = packing_store(tmp_path / "cache")
    keys = [key_named(n) for n in range(PACK_MIN)]
    write_together(packing, keys)
    assert packing.read(keys[0])[0] is not None
    packing.clear()
    assert support.cache_packs(packing.root) == []
    assert packing.read(keys[0])[0] is None


@pytest.mark.parametrize("where", ["packs", "shard"])
def test_a_link_in_place_of_a_cache_directory_never_leads_outside(
    tmp_path: Path, where: str
) -> None:
    # Merging packs and trimming unlink what they list: through a link, another directory's
    # files would go.
    packing = packing_store(tmp_path / "cache")
    packing.write(KEY, entry(payload={"x": "y" * 1000}))
    victim = tmp_path / "victim"
    victim.mkdir()
    for number in range(PACKS_MAX + 2):
        (victim / f"{number:02x}{'0' * 38}").write_bytes(b"precious")
    kept = sorted(os.listdir(victim))
    linked = os.path.join(packing.root, "v1", "e", "packs" if where == "packs" else "ff")
    os.symlink(victim, linked)
    if where == "packs":
        with pytest.raises(CacheDirectoryError, match="a link, a file"):
            write_together(packing, [key_named(n) for n in range(PACK_MIN)])
        assert "a link, a file" in packing.unwritable
    stats = Store(packing.root).stats()
    assert stats["entries"] == 1
    assert packing.trim(1) > 0
    assert sorted(os.listdir(victim)) == kept
    assert all((victim / name).read_bytes() == b"precious" for name in kept)
    assert os.path.islink(linked)
