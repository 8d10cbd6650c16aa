"""The size limit: persisted, and the cache trimmed to it least recently used first."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from jobstamps._fs import atomic_write
from jobstamps.errors import CacheDirectoryError
from jobstamps.fingerprint import digest_bytes
from jobstamps.store import Store
from support import KEY, OTHER, entry, key_named, set_mtime


def test_max_size_is_persisted(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "cache"))
    assert store.max_size == 0
    store.max_size = 1 << 20
    assert Store(str(tmp_path / "cache")).max_size == 1 << 20
    Path(store.root, "config").write_text("max_size=lots\n")
    assert store.max_size == 0


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
