"""The on-disk cache: entries by key, content-addressed blobs, statistics and size limits.

Layout under the root (one per user, mode 0700)::

    CACHEDIR.TAG          tells backup tools to skip the directory
    config                persisted settings (``max_size=BYTES``)
    v1/stats              one byte appended per lookup: ``h`` hit, ``m`` miss
    v1/e/ab/<key>         entries: header, checksum, then a marshal-encoded dict
    v1/b/cd/<digest>      blobs: captured output and stored output files, by content
    v1/l/ab/<key>         lock files, one per key

Every file is written to a temporary name and renamed into place, and every entry is checked
(magic, checksum, its own key) when read, so a killed writer, a full disk or a damaged file
reads as a miss, never as a hit.
"""

from __future__ import annotations

import marshal
import os
import sys

from jobstamps._fs import TMP_PREFIX, FileLock, atomic_write, check_private_dir, ensure_private_dir
from jobstamps.fingerprint import blake2b

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

__all__ = ["Store", "default_root"]

_MAGIC = b"jobstamps-entry-1\n"
_SUM = 16
_CACHEDIR_TAG = (
    b"Signature: 8a477f597d28d172789f06886806bc55\n"
    b"# This file is a cache directory tag created by jobstamps.\n"
    b"# For information about cache directory tags see https://bford.info/cachedir/\n"
)
_STALE_TMP_SECONDS = 3600
_MEMORY_ENTRIES = 4096
_STATS_BATCH = 256
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


def _checksum(body: bytes) -> bytes:
    return blake2b(body, digest_size=_SUM).digest()


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

    # -- set-up ---------------------------------------------------------------------------

    def exists(self) -> bool:
        """Return whether the cache directory exists; raise if it is unusable or unsafe."""
        return check_private_dir(self.root)

    def create(self) -> None:
        """Create the cache directory (0700) with its ``CACHEDIR.TAG``, if missing."""
        ensure_private_dir(self.root)
        tag = os.path.join(self.root, "CACHEDIR.TAG")
        if not os.path.exists(tag):
            atomic_write(tag, [_CACHEDIR_TAG])

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
            known = self._memory.get(key)
            if known is not None:
                try:
                    st = os.stat(path)
                except OSError:
                    st = None
                if st is not None and known[0] == (st.st_ino, st.st_size, st.st_mtime_ns):
                    self._used[key] = st.st_mtime_ns
                    return known[1], ""
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return None, "no result is stored for this key"
        except OSError as error:
            return None, f"the stored entry cannot be read ({error.strerror})"
        try:
            st = os.fstat(fd)
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

    @staticmethod
    def _parse(key: str, data: bytes) -> tuple[dict[str, Any] | None, str]:
        head = len(_MAGIC)
        if (
            not data.startswith(_MAGIC)
            or _checksum(data[head + _SUM :]) != data[head : head + _SUM]
        ):
            return None, "the stored entry is damaged"
        try:
            entry = marshal.loads(data[head + _SUM :])  # noqa: S302 - our own file, checksummed
        except (EOFError, ValueError, TypeError):
            return None, "the stored entry is damaged"
        if not isinstance(entry, dict) or entry.get("key") != key:
            return None, "the stored entry belongs to another key"
        return entry, ""

    def write(self, key: str, entry: dict[str, Any]) -> None:
        """Store ``entry`` for ``key`` atomically (the entry records its own key)."""
        entry["key"] = key
        body = marshal.dumps(entry)
        atomic_write(self.entry_path(key), [_MAGIC, _checksum(body), body])

    def touch(self, key: str) -> None:
        """Mark ``key`` as recently used, for least-recently-used eviction.

        An entry read that was touched or written in the last minute is left alone: eviction
        does not need finer times, and a hit is cheaper without the write.
        """
        import time

        if self._used.get(key, 0) > time.time_ns() - _TOUCH_EVERY_NS:
            return
        try:
            os.utime(self.entry_path(key))
        except OSError:
            pass

    def pointer_path(self, name: str) -> str:
        """Where a small pointer file (a command line's latest key) lives."""
        return os.path.join(self._data, "p", name[:2], name)

    def lock(self, key: str) -> FileLock:
        """Return a lock that lets one process at a time compute the result for ``key``."""
        return FileLock(os.path.join(self._data, "l", key[:2], key))

    # -- blobs ----------------------------------------------------------------------------

    def blob_path(self, digest: str) -> str:
        """Where the blob with ``digest`` lives."""
        return os.path.join(self._data, "b", digest[:2], digest)

    def has_blob(self, digest: str, size: int) -> bool:
        """Return whether a complete blob with ``digest`` and ``size`` is stored."""
        try:
            return os.stat(self.blob_path(digest)).st_size == size
        except OSError:
            return False

    def blob_intact(self, digest: str) -> bool:
        """Return whether the blob's contents still have its digest (reads it whole)."""
        from jobstamps.fingerprint import digest_file

        try:
            return digest_file(self.blob_path(digest)) == digest
        except OSError:
            return False

    def drop_blob(self, digest: str) -> None:
        """Remove a blob, if it is there."""
        try:
            os.unlink(self.blob_path(digest))
        except OSError:
            pass

    def put_file(self, path: str) -> tuple[str, int]:
        """Store a copy of the file at ``path``; return its ``(digest, size)``."""
        with open(path, "rb") as handle:
            data = handle.read()
        return self.put_bytes(data), len(data)

    def put_bytes(self, data: bytes) -> str:
        """Store ``data`` as a blob; return its digest."""
        digest = blake2b(data, digest_size=20).hexdigest()
        if not self.has_blob(digest, len(data)):
            atomic_write(self.blob_path(digest), [data])
        return digest

    def adopt_blob(self, tmp_path: str, digest: str) -> None:
        """Move a finished temporary file (made by :meth:`temp_path`) into place as a blob."""
        final = self.blob_path(digest)
        os.makedirs(os.path.dirname(final), mode=0o700, exist_ok=True)
        os.replace(tmp_path, final)

    def temp_path(self) -> str:
        """Return a fresh temporary file name inside the cache, for data streamed to disk."""
        directory = os.path.join(self._data, "b")
        os.makedirs(directory, mode=0o700, exist_ok=True)
        return os.path.join(directory, f"{TMP_PREFIX}{os.getpid()}-{os.urandom(4).hex()}")

    # -- statistics, size -----------------------------------------------------------------

    def note(self, hit: bool) -> None:
        """Count one lookup; never fails the caller.

        With ``keep_in_memory`` counts are written every so often and when Python exits.
        """
        self._pending[0 if hit else 1] += 1
        if self._memory is not None:
            if sum(self._pending) == 1:
                import atexit

                atexit.register(self.flush_stats)
            if sum(self._pending) < _STATS_BATCH:
                return
        self.flush_stats()

    def flush_stats(self) -> None:
        """Write the lookups counted but not yet written."""
        hits, misses = self._pending
        if not hits and not misses:
            return
        self._pending = [0, 0]
        try:
            fd = os.open(
                os.path.join(self._data, "stats"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600
            )
        except OSError:
            return
        try:
            os.write(fd, b"h" * hits + b"m" * misses)
        except OSError:
            pass
        finally:
            os.close(fd)

    def stats(self) -> dict[str, int]:
        """Return counts of entries, blobs, bytes, hits and misses."""
        self.flush_stats()
        try:
            with open(os.path.join(self._data, "stats"), "rb") as handle:
                log = handle.read()
        except OSError:
            log = b""
        entries = list(self._files("e"))
        blobs = list(self._files("b"))
        return {
            "entries": len(entries),
            "blobs": len(blobs),
            "bytes": sum(size for _, size, _ in entries) + sum(size for _, size, _ in blobs),
            "hits": log.count(b"h"),
            "misses": log.count(b"m"),
        }

    def zero_stats(self) -> None:
        """Set the hit and miss counts to zero."""
        self._pending = [0, 0]
        try:
            os.unlink(os.path.join(self._data, "stats"))
        except FileNotFoundError:
            pass

    def _files(self, kind: str) -> Iterator[tuple[str, int, int]]:
        """Yield ``(path, size, mtime_ns)`` of finished files of one kind; drop stale temps."""
        for shard in self._finished(os.path.join(self._data, kind)):
            for path in self._finished(shard):
                try:
                    st = os.stat(path)
                except OSError:
                    continue
                yield path, st.st_size, st.st_mtime_ns

    def _finished(self, directory: str) -> list[str]:
        """List the paths in ``directory`` but temporary files, removing the stale ones."""
        try:
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
        import time

        try:
            if os.stat(path).st_mtime < time.time() - _STALE_TMP_SECONDS:
                os.unlink(path)
        except OSError:
            pass

    def clear(self) -> None:
        """Remove every entry, blob, lock and the statistics; keep settings."""
        import shutil

        self._pending = [0, 0]
        if self._memory is not None:
            self._memory.clear()

        shutil.rmtree(self._data, ignore_errors=True)

    @property
    def max_size(self) -> int:
        """The persisted size limit in bytes; 0 means no limit."""
        try:
            with open(os.path.join(self.root, "config"), encoding="utf-8") as handle:
                for line in handle:
                    name, _, value = line.partition("=")
                    if name.strip() == "max_size":
                        return int(value)
        except (OSError, ValueError):
            pass
        return 0

    @max_size.setter
    def max_size(self, size: int) -> None:
        self.create()
        atomic_write(os.path.join(self.root, "config"), [f"max_size={int(size)}\n".encode()])

    def trim(self, limit: int | None = None) -> int:
        """Evict least recently used entries until the cache fits ``limit``; return bytes freed.

        A blob goes with the last entry that refers to it; blobs no entry refers to go first
        (unless just written: their entry may be on its way).
        """
        import time

        limit = self.max_size if limit is None else limit
        if limit <= 0:
            return 0
        blobs = {os.path.basename(path): (size, mtime) for path, size, mtime in self._files("b")}
        entries = []
        refcount: dict[str, int] = {}
        for path, size, mtime in self._files("e"):
            entry, _ = self.read(os.path.basename(path))
            refs = [digest for digest, _ in entry.get("blobs", ())] if entry else []
            for digest in refs:
                refcount[digest] = refcount.get(digest, 0) + 1
            entries.append((mtime, path, size, refs))
        entries.sort()
        total = sum(item[2] for item in entries) + sum(size for size, _ in blobs.values())
        freed = 0
        recent = time.time_ns() - 60 * 1_000_000_000
        for digest, (size, mtime) in blobs.items():
            if digest not in refcount and mtime < recent:
                freed += self._unlink(self.blob_path(digest), size)
        for _, path, size, refs in entries:
            if total - freed <= limit:
                break
            freed += self._unlink(path, size)
            self._unlink(self.lock(os.path.basename(path)).path, 0)
            for digest in refs:
                refcount[digest] -= 1
                if refcount[digest] == 0 and digest in blobs:
                    freed += self._unlink(self.blob_path(digest), blobs[digest][0])
        self._drop_stale_locks(recent - _STALE_TMP_SECONDS * 1_000_000_000)
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
