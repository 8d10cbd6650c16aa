"""The store's front door: where the cache lives, entries that never lie, their privacy."""

from __future__ import annotations

import marshal
import os
import pickle
import shutil
from pathlib import Path

import pytest

import support
from jobstamps.fingerprint import blake2b
from jobstamps.store import Store, default_root
from support import KEY, OTHER, entry, set_mtime

MAGIC = b"jobstamps-entry-2\n"
DAMAGED = "the stored entry is damaged or was not written by this cache"


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


def test_a_huge_damaged_entry_is_never_read_whole(store: Store) -> None:
    store.write(OTHER, entry())
    path = Path(store.entry_path(KEY))
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(b"")
    os.truncate(path, 1 << 30)  # sparse: 1 GiB of zeros costs no disk
    found, peak_kib = support.read_in_a_fresh_process(store.root, [KEY, OTHER])
    assert found == 1
    assert peak_kib < 200 * 1024
    assert store.read(KEY) == (None, DAMAGED)


def test_a_large_entry_reads_back_whole(store: Store) -> None:
    large = entry(payload={"data": os.urandom(3 << 20)})
    store.write(KEY, large)
    assert store.read(KEY) == ({**large, "key": KEY}, "")


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


# -- privacy: authenticated entries, links -------------------------------------------------


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


def test_a_listing_is_never_read_through_a_link(store: Store, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.write_bytes(b"jobstamps-listing-1\0")
    store.write_listing(KEY, b"x")
    os.unlink(store.listing_path(KEY))
    os.symlink(outside, store.listing_path(KEY))
    assert store.read_listing(KEY) is None
