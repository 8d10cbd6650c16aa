"""Statistics: hit and miss counts, remote cache counts, and what the cache holds.

Lookups are counted by :meth:`jobstamps.store.Store.note` (a cache hit must not import this
module): one byte appended to ``v1/stats`` per lookup. Remote counts are one line per
invocation in ``v1/remote``, appended in a single write, so concurrent writers never mix.
"""

from __future__ import annotations

import os

from jobstamps._fs import open_private, read_private
from jobstamps.errors import CacheDirectoryError
from jobstamps.storage.local.layout import files, files_in, packs_dir

TYPE_CHECKING = False
if TYPE_CHECKING:
    from jobstamps.store import Store

__all__ = ["note_remote", "remote_stats", "summary", "zero"]


def note_remote(store: Store, counts: dict[str, int]) -> None:
    """Add one invocation's remote cache counts (``name: number``); never fails the caller."""
    line = " ".join(f"{name}={int(value)}" for name, value in counts.items() if value)
    if not line:
        return
    try:
        store.create()
        fd = open_private(os.path.join(store.data, "remote"), os.O_WRONLY | os.O_APPEND)
    except OSError:
        return
    try:
        os.write(fd, f"{line}\n".encode("ascii"))
    except OSError:
        pass
    finally:
        os.close(fd)


def remote_stats(store: Store) -> dict[str, int]:
    """Return the remote cache counts added up over every invocation (see note_remote)."""
    totals: dict[str, int] = {}
    data = read_private(os.path.join(store.data, "remote")) or b""
    for word in data.decode("ascii", "replace").split():
        name, _, value = word.partition("=")
        if value.isdigit():
            totals[name] = totals.get(name, 0) + int(value)
    return totals


def summary(store: Store) -> dict[str, int]:
    """Return counts of entries, blobs, bytes (pointers, listings, memos too), hits, misses."""
    store.flush_stats()
    log = read_private(store.stats_path) or b""
    entries = list(files(store.data, "e"))
    blobs = list(files(store.data, "b"))
    explaining = [*files(store.data, "p"), *files(store.data, "t"), *files(store.data, "x")]
    packs = list(files_in(packs_dir(store.data)))
    # A key in several packs, or with a file of its own too, is one result.
    packed = {key for path, _, _ in packs for key in store.pack_files.read(path) or ()}
    packed.difference_update(os.path.basename(path) for path, _, _ in entries)
    return {
        "entries": len(entries) + len(packed),
        "blobs": len(blobs),
        "bytes": sum(size for _, size, _ in (*entries, *packs, *blobs, *explaining)),
        "hits": log.count(b"h"),
        "misses": log.count(b"m"),
    }


def zero(store: Store) -> None:
    """Forget the hit and miss counts, and the remote counts."""
    try:
        for path in (store.stats_path, os.path.join(store.data, "remote")):
            if os.path.lexists(path):
                os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as error:
        raise CacheDirectoryError(
            store.root, f"its statistics cannot be reset: {error.strerror}"
        ) from None
