"""The on-disk cache: entries by key, content-addressed blobs, statistics and size limits.

Layout under the root (one per user, mode 0700)::

    CACHEDIR.TAG          tells backup tools to skip the directory (only written into a
                          directory jobstamps created or found empty)
    config                persisted settings (``max_size=BYTES``)
    v1/.jobstamps-cache   marks ``v1`` as made by jobstamps: only such a directory is cleared
    v1/secret             32 random bytes keying the MAC of every entry
    v1/stats              one byte appended per lookup: ``h`` hit, ``m`` miss
    v1/e/ab/<key>         entries: header, MAC, then a marshal-encoded dict
    v1/e/packs/<name>     packs: many entries stored at once (header, MAC, a dict by key),
                          for front ends that look up many keys at once (see Store.packs)
    v1/b/cd/<digest>      blobs: captured output and stored output files, by content
    v1/l/ab/<key>         lock files, one per key
    v1/p/ab/<name>        pointers: the latest key of a command line, for explanations
    v1/t/ab/<key>         listings of an entry's directory dependencies, for explanations
    v1/x/ab/<name>        memos: an executable's content digest, by its path and stat
    v1/remote             remote cache counts, one line per invocation that used a remote

Every directory is 0700 and every file 0600, whatever the umask, and no link inside the cache
is followed. Every file is written to a temporary name and renamed into place, and every entry
is checked (magic, MAC, its own key) when read, so a killed writer, a full disk, a damaged
file or an entry planted by someone without the secret reads as a miss, never as a hit.
"""

from __future__ import annotations

import marshal
import os
import stat
import sys
import time

from jobstamps._fs import (
    NOFOLLOW,
    READ_FLAGS,
    TMP_PREFIX,
    FileLock,
    atomic_write,
    check_private_dir,
    ensure_private_dir,
    make_secret,
    makedirs,
    open_private,
    read_private,
    read_secret,
)
from jobstamps.errors import CacheDirectoryError
from jobstamps.fingerprint import blake2b, digest_fd

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

__all__ = ["Store", "default_root"]

_MAGIC = b"jobstamps-entry-2\n"
_PACK_MAGIC = b"jobstamps-pack-1\n"
_PACK_FAMILY = b"jobstamps-pack-"  # a pack of another version begins so too: left alone
_PACKS = "packs"  # under e/: shards are named by two hex digits, so it is never one
#: Fewer entries than this, stored at once, are written one file each.
PACK_MIN = 32
#: More packs than this are merged into one when the next is written.
PACKS_MAX = 8
#: No pack is written larger, and a larger one is never read: it is damaged and removed.
PACK_MAX_BYTES = 256 << 20
_MAC = 32
_MARKER = ".jobstamps-cache"
_MARKER_TEXT = b"This directory holds results stored by jobstamps; jobstamp --clear empties it.\n"
_KINDS = ("e", "b", "l", "p", "t", "x")
#: What ``v1`` may hold: a ``v1`` without the marker but with nothing else was made by an
#: earlier version, and is taken over; anything else there is not ours to write to or clear.
_LAYOUT = frozenset({*_KINDS, "stats", "remote", "secret", _MARKER})
_DAMAGED = "the stored entry is damaged or was not written by this cache"
_UTIME_FOLLOWS = os.utime not in os.supports_follow_symlinks
_CACHEDIR_TAG = (
    b"Signature: 8a477f597d28d172789f06886806bc55\n"
    b"# This file is a cache directory tag created by jobstamps.\n"
    b"# For information about cache directory tags see https://bford.info/cachedir/\n"
)
_STALE_TMP_SECONDS = 3600
_MEMORY_ENTRIES = 4096
_STATS_BATCH = 256
_BLOCK = 1 << 20
_TOUCH_EVERY_NS = 60 * 1_000_000_000


def default_root() -> str:
    """Return the cache directory: ``$JOBSTAMPS_CACHE_DIR``, else the per-user cache."""
    explicit = os.environ.get("JOBSTAMPS_CACHE_DIR")
    if explicit:
        return os.path.abspath(explicit)
    if sys.platform == "darwin":
        return os.path.expanduser("~/Library/Caches/jobstamps")
    if os.name == "nt":
        base = os.environ.get("LOCALAPPDATA") or os.path.expanduser("~/AppData/Local")
        return os.path.join(base, "jobstamps", "Cache")
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = xdg if xdg and os.path.isabs(xdg) else os.path.expanduser("~/.cache")
    return os.path.join(base, "jobstamps")


class Store:
    """One cache directory. Reading never creates anything; writing creates what it needs."""

    def __init__(self, root: str | None = None, keep_in_memory: bool = False) -> None:
        """Use the cache at ``root`` (default: :func:`default_root`).

        ``keep_in_memory`` suits a long-lived process (the Python API): entries read are kept,
        and used again while their file's stat is unchanged (they are written by rename, so a
        new entry is a new file), and hit counts are written now and then, not on every hit.
        """
        self.root = os.path.abspath(root) if root else default_root()
        self._data = os.path.join(self.root, "v1")
        self._memory: dict[str, tuple[tuple[int, int, int], dict[str, Any]]] | None = (
            {} if keep_in_memory else None
        )
        self._pending = [0, 0]  # hits, misses not yet written
        self._used: dict[str, int] = {}  # key -> mtime_ns of its entry when last read
        self._secret: bytes | None = None  # read once, on the first read or write
        self._ready = False  # create() has checked the layout
        self._created: dict[str, int] = {}  # digest -> mtime_ns of blobs this store made
        #: Whether entries may be kept in packs: set by front ends that look up many keys in
        #: one process, which read every pack once; others never read packs, so never pay.
        self.packs = False
        self._packed: dict[str, tuple[str, dict[str, Any]]] | None = None  # key -> (pack, entry)
        self._held: dict[str, dict[str, Any]] | None = None  # entries of an open batch()
        self._touched_packs: set[str] = set()
        #: Why writing to the cache failed last (empty: it never did), for a one-line warning.
        self.unwritable = ""
        self.advice = "Choose another directory for the cache, or free some space if it is full"

    # -- set-up ---------------------------------------------------------------------------

    def exists(self) -> bool:
        """Return whether the cache directory exists; raise if it is unusable or unsafe."""
        return check_private_dir(self.root)

    def create(self) -> None:
        """Create the cache directory (0700) and its layout, or check an existing one.

        ``CACHEDIR.TAG`` goes only into a directory created here or found empty: a project
        directory used as a cache must stay in the user's backups. Raise
        :class:`CacheDirectoryError` when the directory itself cannot be used, and a plain
        :class:`OSError` when only writing inside it fails (a full disk, a file in the way):
        then jobs run and are not stored.
        """
        if self._ready:
            return
        try:
            made = ensure_private_dir(self.root)
        except CacheDirectoryError as error:
            self._failed(error)
            raise
        try:
            tag = os.path.join(self.root, "CACHEDIR.TAG")
            if made or not os.listdir(self.root):
                atomic_write(tag, [_CACHEDIR_TAG])
            self._claim()
            for kind in _KINDS:
                makedirs(os.path.join(self._data, kind))
        except OSError as error:
            self._failed(error)
            raise OSError(error.errno, self.unwritable) from None
        self._ready = True

    def _claim(self) -> None:
        """Make ``v1`` ours: create it with its marker, or check that an existing one is ours."""
        marker = os.path.join(self._data, _MARKER)
        if os.path.lexists(self._data) and not os.path.lexists(marker):
            makedirs(self._data)  # refuses a file or a link in its place
            if not self._ours():
                raise CacheDirectoryError(
                    self._data,
                    "it holds files jobstamps did not make",
                    "Choose another directory for the cache",
                )
            self._make_private(self._data)
        makedirs(self._data)
        if not os.path.lexists(marker):
            atomic_write(marker, [_MARKER_TEXT])

    def _ours(self) -> bool:
        """Whether ``v1`` was made by jobstamps: marked, or holding nothing but our layout."""
        try:
            if os.path.lexists(os.path.join(self._data, _MARKER)):
                return True
            names = os.listdir(self._data)
        except OSError:
            return False
        return all(name in _LAYOUT or name.startswith(TMP_PREFIX) for name in names)

    @staticmethod
    def _make_private(top: str) -> None:
        """Make every directory and file under ``top`` private, as an earlier version may not.

        Links and other users' files are removed; another user's directory is refused.
        """
        for directory, dirs, files in os.walk(top):
            makedirs(directory)
            for name in [*dirs, *files]:
                path = os.path.join(directory, name)
                try:
                    st = os.lstat(path)
                    if stat.S_ISDIR(st.st_mode):
                        continue  # walked next, and checked by makedirs()
                    if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid():
                        os.unlink(path)
                    elif st.st_mode & 0o077:
                        os.chmod(path, 0o600)
                except FileNotFoundError:
                    continue  # a temporary file of a concurrent writer, renamed meanwhile

    # -- entries --------------------------------------------------------------------------

    def entry_path(self, key: str) -> str:
        """Where the entry for ``key`` lives (also the original API's "stamp file")."""
        return f"{self._data}{os.sep}e{os.sep}{key[:2]}{os.sep}{key}"

    def read(self, key: str) -> tuple[dict[str, Any] | None, str]:
        """Return ``(entry, "")``, or ``(None, why)`` when there is no valid entry for ``key``.

        The entry returned may be shared: copy before changing it.
        """
        path = self.entry_path(key)
        if self._memory is not None:
            known = self._remembered(key, path)
            if known is not None:
                return known, ""
        try:
            fd = os.open(path, READ_FLAGS)
        except FileNotFoundError:
            packed = self._from_packs(key) if self.packs else None
            return (packed, "") if packed else (None, "no result is stored for this key")
        except OSError as error:
            return None, f"the stored entry cannot be read ({error.strerror})"
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                return None, "the stored entry cannot be read (not a file)"
            self._used[key] = st.st_mtime_ns
            signature = (st.st_ino, st.st_size, st.st_mtime_ns)
            data = os.read(fd, st.st_size + 1)
        except OSError as error:
            return None, f"the stored entry cannot be read ({error.strerror})"
        finally:
            os.close(fd)
        entry, problem = self._parse(key, data)
        if entry is not None and self._memory is not None:
            if len(self._memory) >= _MEMORY_ENTRIES:
                self._memory.clear()
                self._used.clear()
            self._memory[key] = (signature, entry)
        return entry, problem

    def _remembered(self, key: str, path: str) -> dict[str, Any] | None:
        """Return the entry read before for ``key`` if its file is unchanged."""
        assert self._memory is not None  # noqa: S101 - only called when keeping entries
        known = self._memory.get(key)
        if known is None:
            return None
        try:
            st = os.stat(path)
        except OSError:
            return None
        if known[0] != (st.st_ino, st.st_size, st.st_mtime_ns):
            return None
        self._used[key] = st.st_mtime_ns
        return known[1]

    def _parse(self, key: str, data: bytes) -> tuple[dict[str, Any] | None, str]:
        body = self._authentic(_MAGIC, data)
        if body is None:
            return None, _DAMAGED
        try:
            entry = marshal.loads(body)  # noqa: S302 - authenticated by the MAC
        except (EOFError, ValueError, TypeError):
            return None, _DAMAGED
        if not isinstance(entry, dict) or entry.get("key") != key:
            return None, "the stored entry belongs to another key"
        return entry, ""

    def _authentic(self, magic: bytes, data: bytes) -> bytes | None:
        """Return the body of a file written by this cache (``magic``, MAC, body), else None."""
        secret = self._secret
        if secret is None:
            secret = self._secret = read_secret(self._secret_path)
            if secret is None:
                return None  # no secret yet: nothing stored can be genuine
        head = len(magic)
        body = data[head + _MAC :]
        if (
            not data.startswith(magic)
            or blake2b(body, digest_size=_MAC, key=secret).digest() != data[head : head + _MAC]
        ):
            return None
        return body

    @property
    def _secret_path(self) -> str:
        return os.path.join(self._data, "secret")

    def write(self, key: str, entry: dict[str, Any]) -> None:
        """Store ``entry`` for ``key`` atomically (the entry records its own key).

        Inside :meth:`batch`, an entry without blobs is held and written when the batch ends.
        """
        entry["key"] = key
        if self._held is not None and not entry.get("blobs"):
            self._held[key] = entry
            return
        body = marshal.dumps(entry)
        self._write_signed(self.entry_path(key), _MAGIC, body)

    def _write_signed(self, path: str, magic: bytes, body: bytes) -> None:
        """Write ``magic``, the MAC of ``body`` and ``body`` to ``path``, atomically."""
        try:
            self.create()
            if self._secret is None:
                self._secret = make_secret(self._secret_path)
            mac = blake2b(body, digest_size=_MAC, key=self._secret).digest()
            atomic_write(path, [magic, mac, body])
        except FileNotFoundError:
            if not self._ready:
                raise
            self._ready, self._secret = False, None  # removed while in use: make it again
            self._write_signed(path, magic, body)
        except OSError as error:
            self._failed(error)
            raise

    # -- packs ----------------------------------------------------------------------------

    def batch(self) -> _Batch:
        """Hold the entries written in a ``with`` block; write them together when it ends.

        With :attr:`packs` set and at least :data:`PACK_MIN` of them, they go into one pack
        file (a few file creations instead of thousands: a remote cache fills many results at
        once); otherwise each into a file of its own. Writing them may raise ``OSError``.
        """
        return _Batch(self)

    def write_many(self, entries: dict[str, dict[str, Any]]) -> None:
        """Store entries by key (each records its key): in a pack if many, else one by one."""
        if not self.packs or len(entries) < PACK_MIN:
            for key, entry in entries.items():
                self.write(key, entry)
            return
        try:
            self.create()
            # Refuses a link: merging unlinks what is there.
            makedirs(os.path.join(self._data, "e", _PACKS))
        except OSError as error:
            self._failed(error)
            raise
        written = self._write_packs(entries)
        # A single entry is read before the packs: an older one must not hide these.
        for key in entries:
            self._unlink(self.entry_path(key), 0)
        if self._packed is not None:
            for path, keys in written:
                for key in keys:
                    self._packed[key] = (path, entries[key])
        if len(self._pack_paths()) > PACKS_MAX:
            self._merge_packs()

    def _write_packs(self, entries: dict[str, dict[str, Any]]) -> list[tuple[str, list[str]]]:
        """Write ``entries`` as packs of at most :data:`PACK_MAX_BYTES`; return their keys by pack.

        Entries too many for one pack are split in halves; one too large alone gets a file.
        """
        body = marshal.dumps(entries)
        if len(body) > PACK_MAX_BYTES:
            items = list(entries.items())
            if len(items) == 1:
                self.write(*items[0])
                return []
            half = len(items) // 2
            return [
                *self._write_packs(dict(items[:half])),
                *self._write_packs(dict(items[half:])),
            ]
        name = f"{time.time_ns():016x}-{os.getpid()}-{os.urandom(4).hex()}"
        path = os.path.join(self._data, "e", _PACKS, name)
        self._write_signed(path, _PACK_MAGIC, body)
        return [(path, list(entries))]

    def _pack_paths(self) -> list[str]:
        """List the packs stored, oldest first (their names start with the time they were made)."""
        return sorted(self._finished(os.path.join(self._data, "e", _PACKS)))

    def _load_packs(self) -> dict[str, tuple[str, dict[str, Any]]]:
        """Read every pack once: ``key -> (pack, entry)``, the newest pack's entry winning."""
        packed: dict[str, tuple[str, dict[str, Any]]] = {}
        for path in self._pack_paths():
            entries = self._read_pack(path)
            if entries is None:
                continue  # damaged or not ours: its entries are misses; merging drops it
            for key, entry in entries.items():
                packed[key] = (path, entry)
        self._packed = packed
        return packed

    def _read_pack(self, path: str) -> dict[str, dict[str, Any]] | None:
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
            self._unlink(path, 0)  # a link, or a file we cannot read: not a pack of ours
            return None
        try:
            st = os.fstat(fd)
            head = os.read(fd, len(_PACK_MAGIC)) if stat.S_ISREG(st.st_mode) else b""
            if head != _PACK_MAGIC and _another_version(head):
                return None
            if head == _PACK_MAGIC and st.st_size <= PACK_MAX_BYTES:
                entries = self._pack_entries(head + _read_exactly(fd, st.st_size - len(head)))
        except OSError:
            return None  # an error reading says nothing about the pack
        finally:
            os.close(fd)
        if entries is None:
            self._unlink(path, 0)
        return entries

    def _pack_entries(self, data: bytes) -> dict[str, dict[str, Any]] | None:
        """Return the entries of a pack's bytes if they are intact and ours, else None."""
        body = self._authentic(_PACK_MAGIC, data)
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

    def _from_packs(self, key: str) -> dict[str, Any] | None:
        """Return the entry for ``key`` from the packs, read on the first call."""
        packed = self._packed if self._packed is not None else self._load_packs()
        found = packed.get(key)
        return found[1] if found is not None else None

    def _merge_packs(self) -> None:
        """Write every pack's entries without a file of their own into one; drop the others.

        Packs written meanwhile by other processes are not read, so not dropped.
        """
        paths = self._pack_paths()
        merged = {
            key: entry
            for path in paths
            for key, entry in (self._read_pack(path) or {}).items()
            if not os.path.lexists(self.entry_path(key))
        }
        held, self._held = self._held, None
        try:
            if len(merged) >= PACK_MIN:
                self._write_packs(merged)
            else:
                for key, entry in merged.items():
                    self.write(key, entry)
        finally:
            self._held = held
        for path in paths:
            self._unlink(path, 0)
        self._packed = None  # read again when next needed

    def _failed(self, error: OSError) -> None:
        """Remember why the cache could not be written, and what to do about it."""
        if isinstance(error, CacheDirectoryError):
            where = "" if error.path == self.root else f"{error.path}: "
            self.unwritable, self.advice = where + error.why, error.advice
        else:
            self.unwritable = error.strerror or str(error)

    def touch(self, key: str) -> None:
        """Mark ``key`` as recently used, for least-recently-used eviction.

        An entry read that was touched or written in the last minute is left alone: eviction
        does not need finer times, and a hit is cheaper without the write.
        """
        if self._used.get(key, 0) > time.time_ns() - _TOUCH_EVERY_NS:
            return
        try:
            os.utime(self.entry_path(key), follow_symlinks=_UTIME_FOLLOWS)
        except FileNotFoundError:
            found = self._packed.get(key) if self._packed is not None else None
            if found is not None and found[0] not in self._touched_packs:
                self._touched_packs.add(found[0])
                try:
                    os.utime(found[0], follow_symlinks=_UTIME_FOLLOWS)
                except OSError:
                    pass
        except OSError:
            pass

    def pointer_path(self, name: str) -> str:
        """Where a small pointer file (a command line's latest key) lives."""
        return os.path.join(self._data, "p", name[:2], name)

    def memo_path(self, name: str) -> str:
        """Where a small remembered fact (an executable's digest, by its stat) lives."""
        return os.path.join(self._data, "x", name[:2], name)

    def lock(self, key: str) -> FileLock:
        """Return a lock that lets one process at a time compute the result for ``key``."""
        return FileLock(os.path.join(self._data, "l", key[:2], key))

    def listing_path(self, key: str) -> str:
        """Where the listing of the directories the entry for ``key`` depends on lives."""
        return os.path.join(self._data, "t", key[:2], key)

    def write_listing(self, key: str, data: bytes) -> None:
        """Store the listing for ``key``; only explanations lose if that fails."""
        try:
            atomic_write(self.listing_path(key), [data])
        except OSError:
            pass

    def read_listing(self, key: str) -> bytes | None:
        """Return the listing stored for ``key``, or ``None`` (read only to explain a miss)."""
        return read_private(self.listing_path(key))

    # -- blobs ----------------------------------------------------------------------------

    def blob_path(self, digest: str) -> str:
        """Where the blob with ``digest`` lives."""
        return os.path.join(self._data, "b", digest[:2], digest)

    def has_blob(self, digest: str, size: int) -> bool:
        """Return whether a blob with ``digest`` and ``size`` is stored (contents unchecked)."""
        try:
            st = os.lstat(self.blob_path(digest))
        except OSError:
            return False
        return stat.S_ISREG(st.st_mode) and st.st_size == size

    def open_blob(self, digest: str) -> int:
        """Open a blob for reading, never through a link; raise ``OSError`` if it is not one."""
        fd = os.open(self.blob_path(digest), READ_FLAGS)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise OSError(f"blob {digest} is not a regular file")
        return fd

    def blob_intact(self, digest: str) -> bool:
        """Return whether the blob's contents still have its digest (reads it whole)."""
        try:
            fd = self.open_blob(digest)
        except OSError:
            return False
        try:
            return digest_fd(fd) == digest
        except OSError:
            return False
        finally:
            os.close(fd)

    def release_blob(self, digest: str) -> None:
        """Remove a blob made for an entry that was not stored, unless others use it.

        Blobs are shared by every entry with the same contents: one that was there before or
        was reused since (its mtime moved) stays.
        """
        made = self._created.pop(digest, None)
        try:
            if made is not None and os.lstat(self.blob_path(digest)).st_mtime_ns == made:
                os.unlink(self.blob_path(digest))
        except OSError:
            pass

    def put_file(self, path: str) -> tuple[str, int]:
        """Store a copy of the file at ``path``, streamed in blocks; return ``(digest, size)``."""
        hasher = blake2b(digest_size=20)
        size = 0
        tmp = self.temp_path()
        try:
            with open(path, "rb") as source:
                fd = open_private(tmp, os.O_WRONLY)
                try:
                    while block := source.read(_BLOCK):
                        hasher.update(block)
                        size += len(block)
                        view = memoryview(block)
                        while view:
                            view = view[os.write(fd, view) :]
                finally:
                    os.close(fd)
            digest = hasher.hexdigest()
            self.adopt_blob(tmp, digest)
        except OSError as error:
            self._failed(error)
            self._unlink(tmp, 0)
            raise
        return digest, size

    def put_bytes(self, data: bytes) -> str:
        """Store ``data`` as a blob; return its digest."""
        digest = blake2b(data, digest_size=20).hexdigest()
        if not self._reuse_blob(digest, len(data)):
            try:
                self.create()
                atomic_write(self.blob_path(digest), [data])
            except OSError as error:
                self._failed(error)
                raise
            self._note_created(digest)
        return digest

    def adopt_blob(self, tmp_path: str, digest: str) -> bool:
        """Move a finished temporary file (made by :meth:`temp_path`) into place as a blob.

        An intact blob with the same contents is kept instead (and marked used); a damaged
        one is replaced. Return whether a new blob was made.
        """
        try:
            if self._reuse_blob(digest, os.lstat(tmp_path).st_size):
                os.unlink(tmp_path)
                return False
            final = self.blob_path(digest)
            os.chmod(tmp_path, 0o600)
            try:
                os.replace(tmp_path, final)
            except FileNotFoundError:
                makedirs(os.path.dirname(final))
                os.replace(tmp_path, final)
        except OSError as error:
            self._failed(error)
            raise
        self._note_created(digest)
        return True

    def _reuse_blob(self, digest: str, size: int) -> bool:
        """Whether an intact blob with these contents is stored; if so, mark it used.

        The mark keeps :meth:`release_blob` and :meth:`trim` from taking it from the entry
        about to use it.
        """
        if not self.has_blob(digest, size) or not self.blob_intact(digest):
            return False
        try:
            os.utime(self.blob_path(digest), follow_symlinks=_UTIME_FOLLOWS)
        except OSError:
            return False
        return True

    def _note_created(self, digest: str) -> None:
        try:
            self._created[digest] = os.lstat(self.blob_path(digest)).st_mtime_ns
        except OSError:
            pass

    def temp_path(self) -> str:
        """Return a fresh temporary file name inside the cache, for data streamed to disk."""
        directory = os.path.join(self._data, "b")
        try:
            self.create()
        except OSError as error:
            self._failed(error)
            raise
        return os.path.join(directory, f"{TMP_PREFIX}{os.getpid()}-{os.urandom(4).hex()}")

    # -- statistics, size -----------------------------------------------------------------

    def note(self, hit: bool) -> None:
        """Count one lookup; never fails the caller.

        With ``keep_in_memory`` counts are written every so often and when Python exits.
        """
        pending = self._pending
        pending[0 if hit else 1] += 1
        if self._memory is not None:
            counted = pending[0] + pending[1]
            if counted == 1:
                import atexit

                atexit.register(self.flush_stats)
            if counted < _STATS_BATCH:
                return
        self.flush_stats()

    def flush_stats(self) -> None:
        """Write the lookups counted but not yet written."""
        hits, misses = self._pending
        if not hits and not misses:
            return
        self._pending = [0, 0]
        path = self._stats_path
        try:
            try:
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | NOFOLLOW)
            except FileNotFoundError:
                # Lookups come before anything is stored (a cold cache, results not stored):
                # they count all the same. create() refuses a directory jobstamps did not make.
                self.create()
                fd = open_private(path, os.O_WRONLY | os.O_APPEND)
            except OSError:
                fd = open_private(path, os.O_WRONLY | os.O_APPEND)  # replaces a link
        except OSError:
            return  # an unwritable cache: counts are not worth a failure
        try:
            os.write(fd, b"h" * hits + b"m" * misses)
        except OSError:
            pass
        finally:
            os.close(fd)

    @property
    def _stats_path(self) -> str:
        return os.path.join(self._data, "stats")

    def note_remote(self, counts: dict[str, int]) -> None:
        """Add one invocation's remote cache counts (``name: number``); never fails the caller.

        One line per invocation, appended in a single write, so concurrent writers never mix.
        """
        line = " ".join(f"{name}={int(value)}" for name, value in counts.items() if value)
        if not line:
            return
        try:
            self.create()
            fd = open_private(os.path.join(self._data, "remote"), os.O_WRONLY | os.O_APPEND)
        except OSError:
            return
        try:
            os.write(fd, f"{line}\n".encode("ascii"))
        except OSError:
            pass
        finally:
            os.close(fd)

    def remote_stats(self) -> dict[str, int]:
        """Return the remote cache counts added up over every invocation (see note_remote)."""
        totals: dict[str, int] = {}
        data = read_private(os.path.join(self._data, "remote")) or b""
        for word in data.decode("ascii", "replace").split():
            name, _, value = word.partition("=")
            if value.isdigit():
                totals[name] = totals.get(name, 0) + int(value)
        return totals

    def stats(self) -> dict[str, int]:
        """Return counts of entries, blobs, bytes (pointers, listings, memos too), hits, misses."""
        self.flush_stats()
        log = read_private(self._stats_path) or b""
        entries = list(self._files("e"))
        blobs = list(self._files("b"))
        explaining = [*self._files("p"), *self._files("t"), *self._files("x")]  # and memos
        packs = list(self._files_in(os.path.join(self._data, "e", _PACKS)))
        # A key in several packs, or with a file of its own too, is one result.
        packed = {key for path, _, _ in packs for key in self._read_pack(path) or ()}
        packed.difference_update(os.path.basename(path) for path, _, _ in entries)
        return {
            "entries": len(entries) + len(packed),
            "blobs": len(blobs),
            "bytes": sum(size for _, size, _ in (*entries, *packs, *blobs, *explaining)),
            "hits": log.count(b"h"),
            "misses": log.count(b"m"),
        }

    def zero_stats(self) -> None:
        """Forget the hit and miss counts."""
        self._pending = [0, 0]
        try:
            for path in (self._stats_path, os.path.join(self._data, "remote")):
                if os.path.lexists(path):
                    os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as error:
            raise CacheDirectoryError(
                self.root, f"its statistics cannot be reset: {error.strerror}"
            ) from None

    def _files(self, kind: str) -> Iterator[tuple[str, int, int]]:
        """Yield ``(path, size, mtime_ns)`` of finished files of one kind; drop stale temps.

        Packs are not entries' files: see :meth:`_files_in`.
        """
        for shard in self._finished(os.path.join(self._data, kind)):
            if kind != "e" or os.path.basename(shard) != _PACKS:
                yield from self._files_in(shard)

    def _files_in(self, directory: str) -> Iterator[tuple[str, int, int]]:
        for path in self._finished(directory):
            try:
                st = os.lstat(path)
            except OSError:
                continue
            yield path, st.st_size, st.st_mtime_ns

    def _finished(self, directory: str) -> list[str]:
        """List the paths in ``directory`` but temporary files, removing the stale ones.

        A link in the place of a directory stands for nothing: what it leads to is not ours.
        """
        try:
            if not stat.S_ISDIR(os.lstat(directory).st_mode):
                return []
            names = os.listdir(directory)
        except OSError:
            return []
        paths = []
        for name in names:
            path = os.path.join(directory, name)
            if name.startswith(TMP_PREFIX):
                self._drop_if_stale(path)
            else:
                paths.append(path)
        return paths

    @staticmethod
    def _drop_if_stale(path: str) -> None:
        try:
            if os.lstat(path).st_mtime < time.time() - _STALE_TMP_SECONDS:
                os.unlink(path)
        except OSError:
            pass

    def clear(self) -> None:
        """Remove every entry, blob, lock and pointer; keep the statistics and settings.

        Only a ``v1`` directory jobstamps made is touched. Raise :class:`CacheDirectoryError`
        for any other, and when something could not be removed.
        """
        self._memory = {} if self._memory is not None else None
        self._used.clear()
        self._packed = None
        if not os.path.lexists(self._data):
            # Without its tag either, the directory is not one jobstamps made: "cleared" would
            # mislead (it is likely the parent or a folder of the cache).
            if os.path.isdir(self.root) and not os.path.isfile(
                os.path.join(self.root, "CACHEDIR.TAG")
            ):
                raise CacheDirectoryError(self._not_ours)
            return
        if os.path.islink(self._data) or not os.path.isdir(self._data) or not self._ours():
            raise CacheDirectoryError(self._not_ours)
        import shutil

        left = []
        for kind in _KINDS:
            path = os.path.join(self._data, kind)
            try:
                if os.path.islink(path) or not os.path.isdir(path):
                    os.unlink(path)
                else:
                    shutil.rmtree(path)
            except FileNotFoundError:
                pass
            except OSError as error:
                left.append(f"{path}: {error.strerror or error}")
        if left:
            raise CacheDirectoryError(
                self.root,
                f"not everything could be removed ({left[0]})",
                "Check the permissions of the cache directory",
            )

    @property
    def _not_ours(self) -> str:
        return (
            f"{self.root} is not a jobstamps cache, so nothing was removed. "
            "Name the cache directory itself"
        )

    @property
    def max_size(self) -> int:
        """The persisted size limit in bytes; 0 means no limit."""
        settings = self._settings()
        try:
            return int(settings.get("max_size", 0)) if settings is not None else 0
        except ValueError:
            return 0

    @max_size.setter
    def max_size(self, size: int) -> None:
        if self._settings() is None:
            raise CacheDirectoryError(
                self.root,
                "it holds a file named config that jobstamps did not write",
                "Choose another directory for the cache",
            )
        self.create()
        atomic_write(os.path.join(self.root, "config"), [f"max_size={int(size)}\n".encode()])

    def _settings(self) -> dict[str, str] | None:
        """Return the persisted settings; ``None`` if ``config`` is not a file of settings."""
        data = read_private(os.path.join(self.root, "config"))
        settings = {}
        for line in (data or b"").decode("utf-8", "replace").splitlines():
            name, equals, value = line.partition("=")
            if not equals:
                return None
            settings[name.strip()] = value.strip()
        return settings

    def trim(self, limit: int | None = None) -> int:
        """Evict least recently used results until the cache fits ``limit``; return bytes freed.

        A blob goes with the last entry that refers to it; blobs no entry refers to go first
        (unless just written: their entry may be on its way). Pointers count and are evicted
        like entries, and go with the entry they point to. A listing goes with its entry. A
        pack goes whole, as one entry used when any of its entries last was. Memos count and
        are evicted like entries.
        """
        limit = self.max_size if limit is None else limit
        if limit <= 0:
            return 0
        blobs = {os.path.basename(path): (size, mtime) for path, size, mtime in self._files("b")}
        listings = {os.path.basename(path): (size, mtime) for path, size, mtime in self._files("t")}
        refcount: dict[str, int] = {}
        items: list[tuple[int, str, int, list[str]]] = []  # mtime, path, size, blobs used
        for path, size, mtime in self._files("e"):
            key = os.path.basename(path)
            entry, _ = self.read(key)
            refs = [digest for digest, _ in entry.get("blobs", ())] if entry else []
            for digest in refs:
                refcount[digest] = refcount.get(digest, 0) + 1
            items.append((mtime, path, size + listings.pop(key, (0, 0))[0], refs))
        pointers = list(self._files("p"))
        memos = list(self._files("x"))  # remembered digests: made again when needed
        items += [(mtime, path, size, []) for path, size, mtime in [*pointers, *memos]]
        packs = list(self._files_in(os.path.join(self._data, "e", _PACKS)))
        items += [(mtime, path, size, []) for path, size, mtime in packs]  # entries without blobs
        items.sort()
        unowned = [*blobs.values(), *listings.values()]  # listings left have no entry
        total = sum(item[2] for item in items) + sum(size for size, _ in unowned)
        recent = time.time_ns() - 60 * 1_000_000_000
        freed = self._drop_unowned(blobs, refcount, listings, recent)
        packs_ = {path for path, _, _ in packs}
        for mtime, path, size, refs in items:
            if total - freed <= limit:
                break
            if path in packs_:  # keeps its newest results that fit, rather than none
                freed += self._shrink_pack(path, size, mtime, limit - (total - freed - size))
                continue
            freed += self._unlink(path, size)
            self._unlink(self.lock(os.path.basename(path)).path, 0)
            self._unlink(self.listing_path(os.path.basename(path)), 0)  # counted with its entry
            for digest in refs:
                refcount[digest] -= 1
                if refcount[digest] == 0 and digest in blobs:
                    freed += self._unlink(self.blob_path(digest), blobs[digest][0])
        freed += self._drop_dangling_pointers(pointers)
        self._drop_stale_locks(recent - _STALE_TMP_SECONDS * 1_000_000_000)
        return freed

    def _shrink_pack(self, path: str, size: int, mtime: int, room: int) -> int:
        """Rewrite a pack with its newest entries that fit in ``room`` bytes; return bytes freed.

        It keeps its name and its time of last use. An unreadable pack, or one with no room
        left, is removed.
        """
        entries = self._read_pack(path) if room > 0 else None
        kept: dict[str, dict[str, Any]] = {}
        used = len(_PACK_MAGIC) + _MAC + 16  # the header, and the dict's own bytes
        newest = sorted((entries or {}).items(), key=lambda item: -item[1].get("created", 0))
        for key, entry in newest:
            used += len(marshal.dumps(key)) + len(marshal.dumps(entry))
            if used > room:
                break
            kept[key] = entry
        self._packed = None  # read again when next needed
        if not kept:
            return self._unlink(path, size)
        try:
            self._write_signed(path, _PACK_MAGIC, marshal.dumps(kept))
            os.utime(path, ns=(mtime, mtime), follow_symlinks=_UTIME_FOLLOWS)
            return size - os.lstat(path).st_size
        except OSError:
            return self._unlink(path, size)

    def _drop_unowned(
        self,
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
                freed += self._unlink(self.blob_path(digest), size)
        for key, (size, mtime) in listings.items():
            if mtime < before_ns:
                freed += self._unlink(self.listing_path(key), size)
        return freed

    def _drop_dangling_pointers(self, pointers: list[tuple[str, int, int]]) -> int:
        """Remove pointers to results that are gone: they explain nothing. Return bytes freed."""
        freed = 0
        for path, size, _ in pointers:
            target = read_private(path)
            key = target.decode("ascii", "replace").strip() if target is not None else ""
            if target is not None and not os.path.lexists(self.entry_path(key)):
                freed += self._unlink(path, size)
        return freed

    def _drop_stale_locks(self, before_ns: int) -> None:
        """Remove locks of jobs that were never stored and have not run for a long while."""
        for path, _, mtime in self._files("l"):
            if mtime < before_ns and not os.path.exists(self.entry_path(os.path.basename(path))):
                self._unlink(path, 0)

    @staticmethod
    def _unlink(path: str, size: int) -> int:
        try:
            os.unlink(path)
        except OSError:
            return 0
        return size


def _another_version(head: bytes) -> bool:
    """Whether a pack's first bytes name a version of the pack format other than ours."""
    version = head[len(_PACK_FAMILY) :].partition(b"\n")[0]
    return head.startswith(_PACK_FAMILY) and version.isdigit()


def _read_exactly(fd: int, size: int) -> bytes:
    """Read ``size`` bytes from ``fd`` (fewer if the file ends sooner), never more."""
    parts = []
    while size > 0 and (block := os.read(fd, min(size, _BLOCK))):
        parts.append(block)
        size -= len(block)
    return b"".join(parts)


class _Batch:
    """The ``with`` block of :meth:`Store.batch`."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def __enter__(self) -> None:
        self._outer = self._store._held is None  # noqa: SLF001 - the store's own helper
        if self._outer:
            self._store._held = {}  # noqa: SLF001

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        if not self._outer:
            return
        held, self._store._held = self._store._held, None  # noqa: SLF001
        if held and kind is None:
            self._store.write_many(held)
