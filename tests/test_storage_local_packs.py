"""Packs: many entries stored at once, read once, merged, checked, trimmed."""

from __future__ import annotations

import marshal
import os
import shutil
from pathlib import Path

import pytest

import support
from jobstamps._fs import TMP_PREFIX
from jobstamps.errors import CacheDirectoryError
from jobstamps.storage.local import packs as packs_module
from jobstamps.storage.local.packs import PACK_MIN, PACKS_MAX
from jobstamps.store import Store
from support import KEY, NOT_STORED, entry, key_named, packing_store, set_mtime, write_together


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


@pytest.mark.parametrize("header", [b"", b"jobstamps-pack-1\n"])
def test_a_huge_damaged_pack_is_never_read_whole_and_is_removed(
    tmp_path: Path, header: bytes
) -> None:
    keys = [key_named(n) for n in range(PACK_MIN)]
    write_together(packing_store(tmp_path / "cache"), keys)
    damaged = tmp_path / "cache" / "v1" / "e" / "packs" / "0000000000000000-1-zeros"
    damaged.write_bytes(header)
    os.truncate(damaged, 1 << 30)  # sparse: 1 GiB of zeros costs no disk
    found, peak_kib = support.read_in_a_fresh_process(tmp_path / "cache", keys, packs=True)
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
