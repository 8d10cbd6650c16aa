"""Blobs: captured output and stored output files, by the digest of their contents.

A blob is shared by every entry with the same contents. One is written whole under a
temporary name and renamed into place; an intact one already there is kept (and marked
used) instead, a damaged one replaced.
"""

from __future__ import annotations

import os
import stat

from jobstamps._fs import READ_FLAGS, TMP_PREFIX, atomic_write, makedirs, open_private
from jobstamps.fingerprint import blake2b, digest_fd
from jobstamps.storage.local.layout import unlink

TYPE_CHECKING = False
if TYPE_CHECKING:
    from jobstamps.store import Store

__all__ = ["BlobFiles"]

_BLOCK = 1 << 20
_UTIME_FOLLOWS = os.utime not in os.supports_follow_symlinks


class BlobFiles:
    """The blobs of one store, and those it made in this process (until their entry is stored)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._created: dict[str, int] = {}  # digest -> mtime_ns of blobs made here

    def has(self, digest: str, size: int) -> bool:
        """Return whether a blob with ``digest`` and ``size`` is stored (contents unchecked)."""
        try:
            st = os.lstat(self._store.blob_path(digest))
        except OSError:
            return False
        return stat.S_ISREG(st.st_mode) and st.st_size == size

    def open(self, digest: str) -> int:
        """Open a blob for reading, never through a link; raise ``OSError`` if it is not one."""
        fd = os.open(self._store.blob_path(digest), READ_FLAGS)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise OSError(f"blob {digest} is not a regular file")
        return fd

    def intact(self, digest: str) -> bool:
        """Return whether the blob's contents still have its digest (reads it whole)."""
        try:
            fd = self.open(digest)
        except OSError:
            return False
        try:
            return digest_fd(fd) == digest
        except OSError:
            return False
        finally:
            os.close(fd)

    def release(self, digest: str) -> None:
        """Remove a blob made for an entry that was not stored, unless others use it.

        Blobs are shared by every entry with the same contents: one that was there before or
        was reused since (its mtime moved) stays.
        """
        made = self._created.pop(digest, None)
        path = self._store.blob_path(digest)
        try:
            if made is not None and os.lstat(path).st_mtime_ns == made:
                os.unlink(path)
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
            self.adopt(tmp, digest)
        except OSError as error:
            self._store.failed(error)
            unlink(tmp, 0)
            raise
        return digest, size

    def put_bytes(self, data: bytes) -> str:
        """Store ``data`` as a blob; return its digest."""
        digest = blake2b(data, digest_size=20).hexdigest()
        if not self._reuse(digest, len(data)):
            try:
                self._store.create()
                atomic_write(self._store.blob_path(digest), [data])
            except OSError as error:
                self._store.failed(error)
                raise
            self._note_created(digest)
        return digest

    def adopt(self, tmp_path: str, digest: str) -> bool:
        """Move a finished temporary file (made by :meth:`temp_path`) into place as a blob.

        An intact blob with the same contents is kept instead (and marked used); a damaged
        one is replaced. Return whether a new blob was made.
        """
        try:
            if self._reuse(digest, os.lstat(tmp_path).st_size):
                os.unlink(tmp_path)
                return False
            final = self._store.blob_path(digest)
            os.chmod(tmp_path, 0o600)
            try:
                os.replace(tmp_path, final)
            except FileNotFoundError:
                makedirs(os.path.dirname(final))
                os.replace(tmp_path, final)
        except OSError as error:
            self._store.failed(error)
            raise
        self._note_created(digest)
        return True

    def _reuse(self, digest: str, size: int) -> bool:
        """Whether an intact blob with these contents is stored; if so, mark it used.

        The mark keeps :meth:`release` and trimming from taking it from the entry about to
        use it.
        """
        if not self.has(digest, size) or not self.intact(digest):
            return False
        try:
            os.utime(self._store.blob_path(digest), follow_symlinks=_UTIME_FOLLOWS)
        except OSError:
            return False
        return True

    def _note_created(self, digest: str) -> None:
        try:
            self._created[digest] = os.lstat(self._store.blob_path(digest)).st_mtime_ns
        except OSError:
            pass

    def temp_path(self) -> str:
        """Return a fresh temporary file name inside the cache, for data streamed to disk."""
        directory = os.path.join(self._store.data, "b")
        try:
            self._store.create()
        except OSError as error:
            self._store.failed(error)
            raise
        return os.path.join(directory, f"{TMP_PREFIX}{os.getpid()}-{os.urandom(4).hex()}")
