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

:class:`Store` is the front door. What a cache hit needs is here (where things are, reading
and checking an entry, counting the lookup), so that a hit imports this one module; the rest
is in :mod:`jobstamps.storage.local`, one job a module, imported when first needed.
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
    FileLock,
    atomic_write,
    check_private_dir,
    ensure_private_dir,
    make_secret,
    open_private,
    read_private,
    read_secret,
)
from jobstamps.errors import CacheDirectoryError
from jobstamps.fingerprint import blake2b

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from jobstamps.storage.local.blobs import BlobFiles
    from jobstamps.storage.local.memos import Memos
    from jobstamps.storage.local.packs import Batch, PackFiles

__all__ = ["Store", "default_root"]

_MAGIC = b"jobstamps-entry-2\n"
_MAC = 32
_DAMAGED = "the stored entry is damaged or was not written by this cache"
_UTIME_FOLLOWS = os.utime not in os.supports_follow_symlinks
_MEMORY_ENTRIES = 4096
_STATS_BATCH = 256
_TOUCH_EVERY_NS = 60 * 1_000_000_000
#: Entry files larger than this are read only once their header is seen to be an entry's.
_ENTRY_LARGE = 1 << 20
#: No entry is this large: a larger file in an entry's place is damaged, and never read.
_ENTRY_MAX = 256 << 20


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


def _read_entry(fd: int, size: int) -> bytes:
    """Read an entry file of ``size`` bytes; of a large one that is not an entry, only its start.

    A damaged file (a disk's zeros, a file put in the wrong place) must not cost its size in
    memory on every lookup of its key.
    """
    if size <= _ENTRY_LARGE:
        return os.read(fd, size + 1)
    head = os.read(fd, len(_MAGIC))
    if head != _MAGIC or size > _ENTRY_MAX:
        return head  # not an entry: read as damaged
    return head + os.read(fd, size + 1 - len(head))


class Store:
    """One cache directory. Reading never creates anything; writing creates what it needs."""

    #: The size of the MAC after the header of every signed file.
    mac_size = _MAC

    def __init__(self, root: str | None = None, keep_in_memory: bool = False) -> None:
        """Use the cache at ``root`` (default: :func:`default_root`).

        ``keep_in_memory`` suits a long-lived process (the Python API): entries read are kept,
        and used again while their file's stat is unchanged (they are written by rename, so a
        new entry is a new file), and hit counts are written now and then, not on every hit.
        """
        self.root = os.path.abspath(root) if root else default_root()
        #: The directory of this version's layout (``v1``) inside the root.
        self.data = os.path.join(self.root, "v1")
        self._memory: dict[str, tuple[tuple[int, int, int], dict[str, Any]]] | None = (
            {} if keep_in_memory else None
        )
        self._pending = [0, 0]  # hits, misses not yet written
        self._used: dict[str, int] = {}  # key -> mtime_ns of its entry when last read
        self._secret: bytes | None = None  # read once, on the first read or write
        self._ready = False  # create() has checked the layout
        #: Whether entries may be kept in packs: set by front ends that look up many keys in
        #: one process, which read every pack once; others never read packs, so never pay.
        self.packs = False
        self._pack_files: PackFiles | None = None
        self._blob_files: BlobFiles | None = None
        #: Why writing to the cache failed last (empty: it never did), for a one-line warning.
        self.unwritable = ""
        self.advice = "Choose another directory for the cache, or free some space if it is full"

    # -- set-up ---------------------------------------------------------------------------

    def exists(self) -> bool:
        """Return whether the cache directory exists; raise if it is unusable or unsafe."""
        return check_private_dir(self.root)

    def create(self) -> None:
        """Create the cache directory (0700) and its layout, or check an existing one.

        Raise :class:`CacheDirectoryError` when the directory itself cannot be used, and a
        plain :class:`OSError` when only writing inside it fails (a full disk, a file in the
        way): then jobs run and are not stored.
        """
        if self._ready:
            return
        from jobstamps.storage.local import layout

        try:
            made = ensure_private_dir(self.root)
        except CacheDirectoryError as error:
            self.failed(error)
            raise
        try:
            layout.lay_out(self.root, self.data, made)
        except OSError as error:
            self.failed(error)
            raise OSError(error.errno, self.unwritable) from None
        self._ready = True

    def failed(self, error: OSError) -> None:
        """Remember why the cache could not be written, and what to do about it."""
        if isinstance(error, CacheDirectoryError):
            where = "" if error.path == self.root else f"{error.path}: "
            self.unwritable, self.advice = where + error.why, error.advice
        else:
            self.unwritable = error.strerror or str(error)

    # -- entries --------------------------------------------------------------------------

    def entry_path(self, key: str) -> str:
        """Where the entry for ``key`` lives (also the original API's "stamp file")."""
        return f"{self.data}{os.sep}e{os.sep}{key[:2]}{os.sep}{key}"

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
            packed = self.pack_files.get(key) if self.packs else None
            return (packed, "") if packed else (None, "no result is stored for this key")
        except OSError as error:
            return None, f"the stored entry cannot be read ({error.strerror})"
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                return None, "the stored entry cannot be read (not a file)"
            self._used[key] = st.st_mtime_ns
            signature = (st.st_ino, st.st_size, st.st_mtime_ns)
            data = _read_entry(fd, st.st_size)
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
        body = self.authentic(_MAGIC, data)
        if body is None:
            return None, _DAMAGED
        try:
            entry = marshal.loads(body)  # noqa: S302 - authenticated by the MAC
        except (EOFError, ValueError, TypeError):
            return None, _DAMAGED
        if not isinstance(entry, dict) or entry.get("key") != key:
            return None, "the stored entry belongs to another key"
        return entry, ""

    def authentic(self, magic: bytes, data: bytes) -> bytes | None:
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
        return os.path.join(self.data, "secret")

    def write(self, key: str, entry: dict[str, Any]) -> None:
        """Store ``entry`` for ``key`` atomically (the entry records its own key).

        Inside :meth:`batch`, an entry without blobs is held and written when the batch ends.
        """
        entry["key"] = key
        if self._pack_files is not None and self._pack_files.hold(key, entry):
            return
        body = marshal.dumps(entry)
        self.write_signed(self.entry_path(key), _MAGIC, body)

    def write_signed(self, path: str, magic: bytes, body: bytes) -> None:
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
            self.write_signed(path, magic, body)
        except OSError as error:
            self.failed(error)
            raise

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
            if self._pack_files is not None:
                self._pack_files.touch(key)
        except OSError:
            pass

    # -- packs (jobstamps.storage.local.packs) ----------------------------------------------

    @property
    def pack_files(self) -> PackFiles:
        """The packs of this store (see :attr:`packs`), read when first needed."""
        if self._pack_files is None:
            from jobstamps.storage.local.packs import PackFiles

            self._pack_files = PackFiles(self)
        return self._pack_files

    def batch(self) -> Batch:
        """Hold the entries written in a ``with`` block; write them together when it ends.

        With :attr:`packs` set and at least ``PACK_MIN`` of them, they go into one pack file
        (a few file creations instead of thousands: a remote cache fills many results at
        once); otherwise each into a file of its own. Writing them may raise ``OSError``.
        """
        return self.pack_files.batch()

    def write_many(self, entries: dict[str, dict[str, Any]]) -> None:
        """Store entries by key (each records its key): in a pack if many, else one by one."""
        self.pack_files.write_many(entries)

    # -- small files beside the entries ---------------------------------------------------

    def pointer_path(self, name: str) -> str:
        """Where a small pointer file (a command line's latest key) lives."""
        return os.path.join(self.data, "p", name[:2], name)

    def memo_path(self, name: str) -> str:
        """Where a small remembered fact (an executable's digest, by its stat) lives."""
        return os.path.join(self.data, "x", name[:2], name)

    @property
    def memos(self) -> Memos:
        """The small remembered facts of this store, to hand to code that keeps none itself."""
        from jobstamps.storage.local.memos import Memos

        return Memos(self)

    def lock(self, key: str) -> FileLock:
        """Return a lock that lets one process at a time compute the result for ``key``."""
        return FileLock(os.path.join(self.data, "l", key[:2], key))

    def listing_path(self, key: str) -> str:
        """Where the listing of the directories the entry for ``key`` depends on lives."""
        return os.path.join(self.data, "t", key[:2], key)

    def write_listing(self, key: str, data: bytes) -> None:
        """Store the listing for ``key``; only explanations lose if that fails."""
        try:
            atomic_write(self.listing_path(key), [data])
        except OSError:
            pass

    def read_listing(self, key: str) -> bytes | None:
        """Return the listing stored for ``key``, or ``None`` (read only to explain a miss)."""
        return read_private(self.listing_path(key))

    # -- blobs (jobstamps.storage.local.blobs) ----------------------------------------------

    @property
    def blob_files(self) -> BlobFiles:
        """The blobs of this store."""
        if self._blob_files is None:
            from jobstamps.storage.local.blobs import BlobFiles

            self._blob_files = BlobFiles(self)
        return self._blob_files

    def blob_path(self, digest: str) -> str:
        """Where the blob with ``digest`` lives."""
        return os.path.join(self.data, "b", digest[:2], digest)

    def has_blob(self, digest: str, size: int) -> bool:
        """Return whether a blob with ``digest`` and ``size`` is stored (contents unchecked)."""
        return self.blob_files.has(digest, size)

    def open_blob(self, digest: str) -> int:
        """Open a blob for reading, never through a link; raise ``OSError`` if it is not one."""
        return self.blob_files.open(digest)

    def blob_intact(self, digest: str) -> bool:
        """Return whether the blob's contents still have its digest (reads it whole)."""
        return self.blob_files.intact(digest)

    def release_blob(self, digest: str) -> None:
        """Remove a blob made for an entry that was not stored, unless others use it."""
        self.blob_files.release(digest)

    def put_file(self, path: str) -> tuple[str, int]:
        """Store a copy of the file at ``path``, streamed in blocks; return ``(digest, size)``."""
        return self.blob_files.put_file(path)

    def put_bytes(self, data: bytes) -> str:
        """Store ``data`` as a blob; return its digest."""
        return self.blob_files.put_bytes(data)

    def adopt_blob(self, tmp_path: str, digest: str) -> bool:
        """Move a finished temporary file (made by :meth:`temp_path`) into place as a blob.

        Return whether a new blob was made (an intact one with the same contents is kept).
        """
        return self.blob_files.adopt(tmp_path, digest)

    def temp_path(self) -> str:
        """Return a fresh temporary file name inside the cache, for data streamed to disk."""
        return self.blob_files.temp_path()

    # -- statistics (jobstamps.storage.local.stats) -----------------------------------------

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
        path = self.stats_path
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
    def stats_path(self) -> str:
        """The file of hit and miss counts: one byte appended per lookup."""
        return os.path.join(self.data, "stats")

    def note_remote(self, counts: dict[str, int]) -> None:
        """Add one invocation's remote cache counts (``name: number``); never fails the caller."""
        from jobstamps.storage.local import stats

        stats.note_remote(self, counts)

    def remote_stats(self) -> dict[str, int]:
        """Return the remote cache counts added up over every invocation (see note_remote)."""
        from jobstamps.storage.local import stats

        return stats.remote_stats(self)

    def stats(self) -> dict[str, int]:
        """Return counts of entries, blobs, bytes (pointers, listings, memos too), hits, misses."""
        from jobstamps.storage.local import stats

        return stats.summary(self)

    def zero_stats(self) -> None:
        """Forget the hit and miss counts."""
        from jobstamps.storage.local import stats

        self._pending = [0, 0]
        stats.zero(self)

    # -- clearing, size (jobstamps.storage.local.layout, .limits) ---------------------------

    def clear(self) -> None:
        """Remove every entry, blob, lock and pointer; keep the statistics and settings.

        Only a ``v1`` directory jobstamps made is touched. Raise :class:`CacheDirectoryError`
        for any other, and when something could not be removed.
        """
        from jobstamps.storage.local import layout

        self._memory = {} if self._memory is not None else None
        self._used.clear()
        if self._pack_files is not None:
            self._pack_files.forget()
        layout.clear(self.root, self.data)

    @property
    def max_size(self) -> int:
        """The persisted size limit in bytes; 0 means no limit."""
        from jobstamps.storage.local import limits

        return limits.max_size(self.root)

    @max_size.setter
    def max_size(self, size: int) -> None:
        from jobstamps.storage.local import limits

        limits.set_max_size(self, size)

    def trim(self, limit: int | None = None) -> int:
        """Evict least recently used results until the cache fits ``limit``; return bytes freed.

        ``limit`` defaults to :attr:`max_size`; see :func:`jobstamps.storage.local.limits.trim`.
        """
        from jobstamps.storage.local import limits

        return limits.trim(self, self.max_size if limit is None else limit)
