"""The size limit: its persisted setting, and trimming the cache to it.

Eviction is least recently used first: an entry's time of last use is its file's mtime
(touched on a hit), a pack's that of the last of its entries used.
"""

from __future__ import annotations

import os
import time

from jobstamps._fs import atomic_write, read_private
from jobstamps.errors import CacheDirectoryError
from jobstamps.storage.local.layout import STALE_TMP_SECONDS, files, files_in, packs_dir, unlink

TYPE_CHECKING = False
if TYPE_CHECKING:
    from jobstamps.store import Store

__all__ = ["max_size", "set_max_size", "trim"]


def max_size(root: str) -> int:
    """Return the size limit in bytes persisted in the cache directory ``root`` (0: none)."""
    settings = _settings(root)
    try:
        return int(settings.get("max_size", 0)) if settings is not None else 0
    except ValueError:
        return 0


def set_max_size(store: Store, size: int) -> None:
    """Persist ``size`` as the limit of ``store``."""
    if _settings(store.root) is None:
        raise CacheDirectoryError(
            store.root,
            "it holds a file named config that jobstamps did not write",
            "Choose another directory for the cache",
        )
    store.create()
    atomic_write(os.path.join(store.root, "config"), [f"max_size={int(size)}\n".encode()])


def _settings(root: str) -> dict[str, str] | None:
    """Return the persisted settings; ``None`` if ``config`` is not a file of settings."""
    data = read_private(os.path.join(root, "config"))
    settings = {}
    for line in (data or b"").decode("utf-8", "replace").splitlines():
        name, equals, value = line.partition("=")
        if not equals:
            return None
        settings[name.strip()] = value.strip()
    return settings


def trim(store: Store, limit: int) -> int:
    """Evict least recently used results until ``store`` fits ``limit``; return bytes freed.

    A blob goes with the last entry that refers to it; blobs no entry refers to go first
    (unless just written: their entry may be on its way). Pointers count and are evicted
    like entries, and go with the entry they point to. A listing goes with its entry. A
    pack goes whole, as one entry used when any of its entries last was. Memos count and
    are evicted like entries.
    """
    if limit <= 0:
        return 0
    data = store.data
    blobs = {os.path.basename(path): (size, mtime) for path, size, mtime in files(data, "b")}
    listings = {os.path.basename(path): (size, mtime) for path, size, mtime in files(data, "t")}
    refcount: dict[str, int] = {}
    items: list[tuple[int, str, int, list[str]]] = []  # mtime, path, size, blobs used
    for path, size, mtime in files(data, "e"):
        key = os.path.basename(path)
        entry, _ = store.read(key)
        refs = [digest for digest, _ in entry.get("blobs", ())] if entry else []
        for digest in refs:
            refcount[digest] = refcount.get(digest, 0) + 1
        items.append((mtime, path, size + listings.pop(key, (0, 0))[0], refs))
    pointers = list(files(data, "p"))
    memos = list(files(data, "x"))  # remembered digests: made again when needed
    items += [(mtime, path, size, []) for path, size, mtime in [*pointers, *memos]]
    packs = list(files_in(packs_dir(data)))
    items += [(mtime, path, size, []) for path, size, mtime in packs]  # entries without blobs
    items.sort()
    unowned = [*blobs.values(), *listings.values()]  # listings left have no entry
    total = sum(item[2] for item in items) + sum(size for size, _ in unowned)
    recent = time.time_ns() - 60 * 1_000_000_000
    freed = _drop_unowned(store, blobs, refcount, listings, recent)
    packs_ = {path for path, _, _ in packs}
    for mtime, path, size, refs in items:
        if total - freed <= limit:
            break
        if path in packs_:  # keeps its newest results that fit, rather than none
            room = limit - (total - freed - size)
            freed += store.pack_files.shrink(path, size, mtime, room)
            continue
        freed += unlink(path, size)
        unlink(store.lock(os.path.basename(path)).path, 0)
        unlink(store.listing_path(os.path.basename(path)), 0)  # counted with its entry
        for digest in refs:
            refcount[digest] -= 1
            if refcount[digest] == 0 and digest in blobs:
                freed += unlink(store.blob_path(digest), blobs[digest][0])
    freed += _drop_dangling_pointers(store, pointers)
    _drop_stale_locks(store, recent - STALE_TMP_SECONDS * 1_000_000_000)
    return freed


def _drop_unowned(
    store: Store,
    blobs: dict[str, tuple[int, int]],
    refcount: dict[str, int],
    listings: dict[str, tuple[int, int]],
    before_ns: int,
) -> int:
    """Remove blobs no entry uses and listings of no entry; return bytes freed.

    What was written since ``before_ns`` stays: its entry may be on its way.
    """
    freed = 0
    for digest, (size, mtime) in blobs.items():
        if digest not in refcount and mtime < before_ns:
            freed += unlink(store.blob_path(digest), size)
    for key, (size, mtime) in listings.items():
        if mtime < before_ns:
            freed += unlink(store.listing_path(key), size)
    return freed


def _drop_dangling_pointers(store: Store, pointers: list[tuple[str, int, int]]) -> int:
    """Remove pointers to results that are gone: they explain nothing. Return bytes freed."""
    freed = 0
    for path, size, _ in pointers:
        target = read_private(path)
        key = target.decode("ascii", "replace").strip() if target is not None else ""
        if target is not None and not os.path.lexists(store.entry_path(key)):
            freed += unlink(path, size)
    return freed


def _drop_stale_locks(store: Store, before_ns: int) -> None:
    """Remove locks of jobs that were never stored and have not run for a long while."""
    for path, _, mtime in files(store.data, "l"):
        if mtime < before_ns and not os.path.exists(store.entry_path(os.path.basename(path))):
            unlink(path, 0)
