"""File-system primitives the cache relies on: private directories, atomic writes, key locks.

Everything made inside the cache is private (directories 0700, files 0600) whatever the umask,
and no link inside the cache is ever followed: files are opened with ``O_NOFOLLOW``, new ones
with ``O_EXCL`` too, and directories are checked with ``lstat``.
"""

from __future__ import annotations

import os
import stat

from jobstamps.errors import CacheDirectoryError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from types import TracebackType

__all__ = [
    "FileLock",
    "atomic_write",
    "check_private_dir",
    "ensure_private_dir",
    "make_secret",
    "makedirs",
    "open_private",
    "read_private",
    "read_secret",
]

TMP_PREFIX = ".tmp-"
NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
#: Opens a file of the cache for reading: never through a link, never blocking on a FIFO.
READ_FLAGS = os.O_RDONLY | NOFOLLOW | getattr(os, "O_NONBLOCK", 0)
_POSIX = os.name == "posix"


def _unusable(path: str, error: OSError) -> CacheDirectoryError:
    """Word an operating-system error met on the way to the cache directory ``path``."""
    if isinstance(error, (FileExistsError, NotADirectoryError)):
        return CacheDirectoryError(
            path, "a file is in the way", "Remove that file or choose another directory"
        )
    return CacheDirectoryError(path, error.strerror or str(error))


def _shared_sticky(path: str, st: os.stat_result) -> bool:
    """Whether ``path`` is, or lies directly in, a sticky directory such as ``/tmp``."""
    if st.st_mode & stat.S_ISVTX:
        return True
    try:
        return bool(os.stat(os.path.dirname(path) or ".").st_mode & stat.S_ISVTX)
    except OSError:
        return False


def check_private_dir(path: str) -> bool:
    """Return whether ``path`` is a directory; raise if it exists but is unsafe to read from.

    Entries are unpickled, so a directory other users can write to would let them run code as
    the current user. ``path`` may be a link only if the current user made it and its target
    passes the same checks: another user's link could point the cache anywhere.
    """
    try:
        st = os.lstat(path)
        link_owner = st.st_uid if stat.S_ISLNK(st.st_mode) else None
        if link_owner is not None:
            st = os.stat(path)
    except FileNotFoundError:
        return False
    except NotADirectoryError:
        raise CacheDirectoryError(
            path, "a parent is a file", "Remove that file or choose another directory"
        ) from None
    except OSError as error:
        raise _unusable(path, error) from None
    if _POSIX and link_owner is not None and link_owner != os.getuid():
        raise CacheDirectoryError(path, "a symbolic link made by another user")
    if not stat.S_ISDIR(st.st_mode):
        raise CacheDirectoryError(
            path, "it exists and is not a directory", "Remove it or choose another directory"
        )
    if _POSIX:
        if st.st_mode & 0o022:
            advice = (
                "Choose a directory of your own, not one in a shared directory such as /tmp"
                if _shared_sticky(path, st)
                else f"Run 'chmod go-w {path}' or choose another directory"
            )
            raise CacheDirectoryError(path, "writable by other users", advice)
        if st.st_uid != os.getuid():
            raise CacheDirectoryError(path, "it belongs to another user")
    return True


def ensure_private_dir(path: str) -> bool:
    """Create ``path`` (0700) and its missing parents unless it exists; check it is safe.

    Return whether ``path`` itself was created.
    """
    if check_private_dir(path):
        return False
    try:
        created = _mkdirs(path)
    except OSError as error:
        raise _unusable(path, error) from None
    check_private_dir(path)
    return created


def _mkdirs(path: str) -> bool:
    """Create ``path`` and its missing parents, each 0700 whatever the umask.

    Return whether ``path`` was created (``False``: it exists, made by a concurrent creator).
    """
    parent = os.path.dirname(path)
    if parent and parent != path and not os.path.lexists(parent):
        _mkdirs(parent)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        if os.path.isdir(path):
            return False
        raise
    os.chmod(path, 0o700)  # the umask may have taken bits away
    return True


def makedirs(path: str) -> None:
    """Make sure ``path``, a directory inside the cache, exists, is ours and is private.

    A missing directory is created 0700 (its parent must exist); an existing one of ours that
    others can use (made under a permissive umask by an earlier version) is made private; a
    link, a file or another user's directory in its place is refused.
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        # Only the last level: the levels above are made by Store.create() alone, which
        # checks that the cache is one jobstamps made.
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        else:
            os.chmod(path, 0o700)  # the umask may have taken bits away
            return
        st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or (_POSIX and st.st_uid != os.getuid()):
        raise CacheDirectoryError(
            path,
            "a link, a file or another user's directory is in the place of a directory",
            "Remove it",
        )
    if st.st_mode & 0o077:
        os.chmod(path, 0o700)


def _make_private(fd: int) -> None:
    """Make a file just created 0600, whatever the umask took away (POSIX only)."""
    if _POSIX:
        os.fchmod(fd, 0o600)


def open_private(path: str, flags: int) -> int:
    """Open ``path`` inside the cache for writing, creating it 0600 if missing.

    A link in its place is never followed: it is removed and a new file is made.
    """
    flags |= NOFOLLOW
    for _ in range(3):
        try:
            return os.open(path, flags)
        except FileNotFoundError:
            pass
        except OSError:
            if not os.path.islink(path):
                raise
            os.unlink(path)
        try:
            fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue  # a concurrent creator: open what it made
        _make_private(fd)
        return fd
    raise FileExistsError(path)


def read_private(path: str) -> bytes | None:
    """Return the contents of the regular file ``path``, or ``None`` if it is not one.

    A link is not followed, a FIFO does not block, and an unreadable file is ``None`` too.
    """
    try:
        fd = os.open(path, READ_FLAGS)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        parts = []
        while block := os.read(fd, 1 << 20):
            parts.append(block)
        return b"".join(parts)
    except OSError:
        return None
    finally:
        os.close(fd)


SECRET_SIZE = 32


def read_secret(path: str) -> bytes | None:
    """Return the cache's secret, or ``None`` unless it is a private file of ours.

    A secret others could read or write would let them forge entries.
    """
    try:
        fd = os.open(path, READ_FLAGS)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or (
            _POSIX and (st.st_uid != os.getuid() or st.st_mode & 0o077)
        ):
            return None
        data = os.read(fd, SECRET_SIZE + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    return data if len(data) == SECRET_SIZE else None


def make_secret(path: str) -> bytes:
    """Return the cache's secret, creating it (random, 0600) if there is no valid one.

    The new secret is written whole under a temporary name and then linked into place, so a
    concurrent reader never sees half of it and two creators agree on one.
    """
    tmp = os.path.join(os.path.dirname(path), f"{TMP_PREFIX}{os.getpid()}-{os.urandom(4).hex()}")
    secret = os.urandom(SECRET_SIZE)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW, 0o600)
    try:
        try:
            _make_private(fd)
            os.write(fd, secret)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            existing = read_secret(path)
            if existing is not None:
                return existing
            os.replace(tmp, path)  # a damaged or foreign file: entries it keyed are lost anyway
    finally:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
    return secret


def atomic_write(path: str, chunks: Iterable[bytes], private: bool = True) -> None:
    """Write ``chunks`` to ``path`` so that readers see the old file or the whole new one.

    The data goes to a temporary file in the same directory, which is renamed over ``path``;
    on any error the temporary file is removed and the error propagates. Inside the cache
    (``private``) the file is 0600 and a missing directory is created 0700; elsewhere the
    usual modes apply.
    """
    directory = os.path.dirname(path)
    tmp = os.path.join(directory, f"{TMP_PREFIX}{os.getpid()}-{os.urandom(4).hex()}")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW
    try:
        fd = os.open(tmp, flags, 0o600)
    except FileNotFoundError:
        if private:
            makedirs(directory)
        else:
            os.makedirs(directory, exist_ok=True)
        fd = os.open(tmp, flags, 0o600)
    try:
        try:
            if private:
                _make_private(fd)
            for chunk in chunks:
                view = memoryview(chunk)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


class FileLock:
    """An exclusive, blocking advisory lock on a file; released when the process dies."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd = -1

    def __enter__(self) -> FileLock:  # noqa: PYI034 - typing.Self would import typing
        try:
            import fcntl
        except ImportError:  # pragma: no cover - no advisory locks on this platform
            return self
        try:
            self._fd = open_private(self.path, os.O_RDWR)
        except FileNotFoundError:
            makedirs(os.path.dirname(self.path))
            self._fd = open_private(self.path, os.O_RDWR)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
