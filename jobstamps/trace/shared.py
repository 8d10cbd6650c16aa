"""A batch's traced set stored once for all its files (``--per-file --trace``).

What a batch read outside its own files is a dependency of every file in it: the set is
written once, as a blob, and each file's result names it (``traced_set``: its digest and
size) instead of holding a copy of its own. A run over many files checks each such set once.
"""

from __future__ import annotations

import marshal
import os

from jobstamps.fingerprint import blake2b

TYPE_CHECKING = False
if TYPE_CHECKING:
    from jobstamps.store import Store
    from jobstamps.trace.paths import Entry

__all__ = ["load", "put"]


def put(store: Store, entries: list[Entry]) -> tuple[str, int]:
    """Store a traced set as a blob; return its digest and size (raises ``OSError``)."""
    data = marshal.dumps(entries)
    return store.put_bytes(data), len(data)


def load(store: Store, digest: str) -> list[Entry] | None:
    """Read the traced set stored as ``digest``; ``None`` when it is missing or damaged."""
    chunks: list[bytes] = []
    try:
        fd = store.open_blob(digest)
        try:
            while chunk := os.read(fd, 1 << 20):
                chunks.append(chunk)
        finally:
            os.close(fd)
    except OSError:
        return None
    data = b"".join(chunks)
    if blake2b(data, digest_size=20).hexdigest() != digest:
        return None
    try:
        entries = marshal.loads(data)  # noqa: S302 - a blob of our own cache, digest checked
    except (EOFError, ValueError, TypeError):
        return None
    ok = isinstance(entries, list) and all(isinstance(e, list) and len(e) == 3 for e in entries)  # noqa: PLR2004
    return entries if ok else None
