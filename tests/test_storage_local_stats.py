"""Statistics: hit and miss counts that never fail a lookup, and what the cache holds."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from jobstamps.store import Store
from support import KEY, OTHER, entry

if TYPE_CHECKING:
    from pathlib import Path


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


def test_zero_stats_forgets_hits_and_misses_only(store: Store) -> None:
    store.write(KEY, entry())
    store.note(hit=True)
    store.note(hit=False)
    store.zero_stats()
    stats = store.stats()
    assert (stats["hits"], stats["misses"], stats["entries"]) == (0, 0, 1)
    store.zero_stats()  # nothing to forget: fine
