"""File-system primitives the cache relies on: private directories, atomic writes, key locks."""

from __future__ import annotations

import os
import stat

from jobstamps.errors import CacheDirectoryError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from types import TracebackType

__all__ = ["FileLock", "atomic_write", "check_private_dir", "ensure_private_dir"]

TMP_PREFIX = ".tmp-"


def check_private_dir(path: str) -> bool:
    """Return whether ``path`` is a directory; raise if it exists but is unsafe to read from.

    Entries are unpickled, so a directory other users can write to would let them run code
    as the current user.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    except NotADirectoryError:
        raise CacheDirectoryError(
            f"cache directory {path} cannot be created: a parent is a file. "
            "Remove that file or choose another directory"
        ) from None
    if not stat.S_ISDIR(st.st_mode):
        raise CacheDirectoryError(
            f"cache directory {path} exists and is not a directory. "
            "Remove it or choose another directory"
        )
    if os.name == "posix":
        if st.st_mode & 0o022:
            raise CacheDirectoryError(
                f"cache directory {path} is writable by other users. "
                f"Run 'chmod go-w {path}' or choose another directory"
            )
        if st.st_uid != os.getuid():
            raise CacheDirectoryError(
                f"cache directory {path} belongs to another user. Choose another directory"
            )
    return True


def ensure_private_dir(path: str) -> None:
    """Create ``path`` (mode 0700) and its parents unless it exists; check it is safe to use."""
    if check_private_dir(path):
        return
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise CacheDirectoryError(
            f"cache directory {path} cannot be created: a file is in the way. "
            "Remove that file or choose another directory"
        ) from None
    except OSError as error:
        raise CacheDirectoryError(
            f"cache directory {path} cannot be created ({error.strerror}). Choose another directory"
        ) from None
    check_private_dir(path)


def makedirs(path: str) -> None:
    """Create a directory inside the cache, tolerating a concurrent creator."""
    os.makedirs(path, mode=0o700, exist_ok=True)


def atomic_write(path: str, chunks: Iterable[bytes], private: bool = True) -> None:
    """Write ``chunks`` to ``path`` so that readers see the old file or the whole new one.

    The data goes to a temporary file in the same directory, which is renamed over ``path``;
    on any error the temporary file is removed and the error propagates. A missing directory
    is created private (0700) inside the cache, with the usual mode elsewhere.
    """
    directory = os.path.dirname(path)
    if private:
        makedirs(directory)
    else:
        os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f"{TMP_PREFIX}{os.getpid()}-{os.urandom(4).hex()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
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
        makedirs(os.path.dirname(self.path))
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
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
