"""Packs: many entries stored in one file at once, for front ends that look up many keys.

A pack is signed like an entry (header, MAC, then a marshal-encoded dict by key) and named by
the time it was made, so the newest wins for a key in two. A single entry file is read
before the packs, so writing a pack removes older single files of its keys. Too many packs
are merged into one; a pack that does not verify is removed the first time it is read.
"""

from __future__ import annotations

import marshal
import os
import stat
import time

from jobstamps._fs import READ_FLAGS, makedirs
from jobstamps.storage.local.layout import finished, packs_dir, unlink

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from jobstamps.store import Store

__all__ = ["PACKS_MAX", "PACK_MAX_BYTES", "PACK_MIN", "Batch", "PackFiles"]

MAGIC = b"jobstamps-pack-1\n"
_FAMILY = b"jobstamps-pack-"  # a pack of another version begins so too: left alone
#: Fewer entries than this, stored at once, are written one file each.
PACK_MIN = 32
#: More packs than this are merged into one when the next is written.
PACKS_MAX = 8
#: No pack is written larger, and a larger one is never read: it is damaged and removed.
PACK_MAX_BYTES = 256 << 20
_BLOCK = 1 << 20
_UTIME_FOLLOWS = os.utime not in os.supports_follow_symlinks


class PackFiles:
    """The packs of one store, read once (on the first lookup that needs them) and kept."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._packed: dict[str, tuple[str, dict[str, Any]]] | None = None  # key -> (pack, entry)
        self._held: dict[str, dict[str, Any]] | None = None  # entries of an open batch()
        self._touched: set[str] = set()

    def batch(self) -> Batch:
        """Hold the entries written in a ``with`` block; write them together when it ends."""
        return Batch(self)

    def hold(self, key: str, entry: dict[str, Any]) -> bool:
        """Keep ``entry`` for the batch in progress, if any and it needs no blobs."""
        if self._held is None or entry.get("blobs"):
            return False
        self._held[key] = entry
        return True

    def write_many(self, entries: dict[str, dict[str, Any]]) -> None:
        """Store entries by key (each records its key): in a pack if many, else one by one."""
        store = self._store
        if not store.packs or len(entries) < PACK_MIN:
            for key, entry in entries.items():
                store.write(key, entry)
            return
        try:
            store.create()
            makedirs(packs_dir(store.data))  # refuses a link: merging unlinks what is there
        except OSError as error:
            store.failed(error)
            raise
        written = self._write_packs(entries)
        # A single entry is read before the packs: an older one must not hide these.
        for key in entries:
            unlink(store.entry_path(key), 0)
        if self._packed is not None:
            for path, keys in written:
                for key in keys:
                    self._packed[key] = (path, entries[key])
        if len(self.paths()) > PACKS_MAX:
            self._merge()

    def _write_packs(self, entries: dict[str, dict[str, Any]]) -> list[tuple[str, list[str]]]:
        """Write ``entries`` as packs of at most :data:`PACK_MAX_BYTES`; return their keys by pack.

        Entries too many for one pack are split in halves; one too large alone gets a file.
        """
        body = marshal.dumps(entries)
        if len(body) > PACK_MAX_BYTES:
            items = list(entries.items())
            if len(items) == 1:
                self._store.write(*items[0])
                return []
            half = len(items) // 2
            return [
                *self._write_packs(dict(items[:half])),
                *self._write_packs(dict(items[half:])),
            ]
        name = f"{time.time_ns():016x}-{os.getpid()}-{os.urandom(4).hex()}"
        path = os.path.join(packs_dir(self._store.data), name)
        self._store.write_signed(path, MAGIC, body)
        return [(path, list(entries))]

    def paths(self) -> list[str]:
        """List the packs stored, oldest first (their names start with the time they were made)."""
        return sorted(finished(packs_dir(self._store.data)))

    def get(self, key: str) -> dict[str, Any] | None:
        """Return the entry for ``key`` from the packs, read on the first call."""
        packed = self._packed if self._packed is not None else self._load()
        found = packed.get(key)
        return found[1] if found is not None else None

    def _load(self) -> dict[str, tuple[str, dict[str, Any]]]:
        """Read every pack once: ``key -> (pack, entry)``, the newest pack's entry winning."""
        packed: dict[str, tuple[str, dict[str, Any]]] = {}
        for path in self.paths():
            entries = self.read(path)
            if entries is None:
                continue  # damaged, not ours or another version's: its entries are misses
            for key, entry in entries.items():
                packed[key] = (path, entry)
        self._packed = packed
        return packed

    def read(self, path: str) -> dict[str, dict[str, Any]] | None:
        """Return the entries of the pack at ``path`` if it is intact and ours, else None.

        Its header and size are checked before it is read, and it is read within its size:
        a damaged pack costs one small read, once, for it is removed then (a pack of another
        version is left to that version).
        """
        entries = None
        try:
            fd = os.open(path, READ_FLAGS)
        except FileNotFoundError:
            return None  # merged or trimmed meanwhile
        except OSError:
            unlink(path, 0)  # a link, or a file we cannot read: not a pack of ours
            return None
        try:
            st = os.fstat(fd)
            head = os.read(fd, len(MAGIC)) if stat.S_ISREG(st.st_mode) else b""
            if head != MAGIC and _another_version(head):
                return None
            if head == MAGIC and st.st_size <= PACK_MAX_BYTES:
                entries = self._entries(head + _read_exactly(fd, st.st_size - len(head)))
        except OSError:
            return None  # an error reading says nothing about the pack
        finally:
            os.close(fd)
        if entries is None:
            unlink(path, 0)
        return entries

    def _entries(self, data: bytes) -> dict[str, dict[str, Any]] | None:
        """Return the entries of a pack's bytes if they are intact and ours, else None."""
        body = self._store.authentic(MAGIC, data)
        if body is None:
            return None
        try:
            entries = marshal.loads(body)  # noqa: S302 - authenticated by the MAC
        except (EOFError, ValueError, TypeError):
            return None
        if not isinstance(entries, dict) or not all(
            isinstance(entry, dict) and entry.get("key") == key for key, entry in entries.items()
        ):
            return None
        return entries

    def _merge(self) -> None:
        """Write every pack's entries without a file of their own into one; drop the others.

        Packs written meanwhile by other processes are not read, so not dropped.
        """
        store = self._store
        paths = self.paths()
        merged = {
            key: entry
            for path in paths
            for key, entry in (self.read(path) or {}).items()
            if not os.path.lexists(store.entry_path(key))
        }
        held, self._held = self._held, None
        try:
            if len(merged) >= PACK_MIN:
                self._write_packs(merged)
            else:
                for key, entry in merged.items():
                    store.write(key, entry)
        finally:
            self._held = held
        for path in paths:
            unlink(path, 0)
        self._packed = None  # read again when next needed

    def shrink(self, path: str, size: int, mtime: int, room: int) -> int:
        """Rewrite a pack with its newest entries that fit in ``room`` bytes; return bytes freed.

        It keeps its name and its time of last use. An unreadable pack, or one with no room
        left, is removed.
        """
        entries = self.read(path) if room > 0 else None
        kept: dict[str, dict[str, Any]] = {}
        used = len(MAGIC) + self._store.mac_size + 16  # the header, and the dict's own bytes
        newest = sorted((entries or {}).items(), key=lambda item: -item[1].get("created", 0))
        for key, entry in newest:
            used += len(marshal.dumps(key)) + len(marshal.dumps(entry))
            if used > room:
                break
            kept[key] = entry
        self._packed = None  # read again when next needed
        if not kept:
            return unlink(path, size)
        try:
            self._store.write_signed(path, MAGIC, marshal.dumps(kept))
            os.utime(path, ns=(mtime, mtime), follow_symlinks=_UTIME_FOLLOWS)
            return size - os.lstat(path).st_size
        except OSError:
            return unlink(path, size)

    def touch(self, key: str) -> None:
        """Mark the pack that answered for ``key`` as used (once per pack and process)."""
        found = self._packed.get(key) if self._packed is not None else None
        if found is not None and found[0] not in self._touched:
            self._touched.add(found[0])
            try:
                os.utime(found[0], follow_symlinks=_UTIME_FOLLOWS)
            except OSError:
                pass

    def forget(self) -> None:
        """Drop what was read: the packs are read again when next needed."""
        self._packed = None


class Batch:
    """The ``with`` block of :meth:`PackFiles.batch`."""

    def __init__(self, packs: PackFiles) -> None:
        self._packs = packs

    def __enter__(self) -> None:
        self._outer = self._packs._held is None  # noqa: SLF001 - the packs' own helper
        if self._outer:
            self._packs._held = {}  # noqa: SLF001

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        if not self._outer:
            return
        held, self._packs._held = self._packs._held, None  # noqa: SLF001
        if held and kind is None:
            self._packs.write_many(held)


def _another_version(head: bytes) -> bool:
    """Whether a pack's first bytes name a version of the pack format other than ours."""
    version = head[len(_FAMILY) :].partition(b"\n")[0]
    return head.startswith(_FAMILY) and version.isdigit()


def _read_exactly(fd: int, size: int) -> bytes:
    """Read ``size`` bytes from ``fd`` (fewer if the file ends sooner), never more."""
    parts = []
    while size > 0 and (block := os.read(fd, min(size, _BLOCK))):
        parts.append(block)
        size -= len(block)
    return b"".join(parts)
