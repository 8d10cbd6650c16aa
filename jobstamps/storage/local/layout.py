"""The cache directory's layout: making it, keeping it private, knowing it is ours, clearing it.

Also how its files are listed: finished files only, never through a link, with temporary
files left by killed writers removed once they are stale.
"""

from __future__ import annotations

import os
import stat
import time

from jobstamps._fs import TMP_PREFIX, atomic_write, makedirs
from jobstamps.errors import CacheDirectoryError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = [
    "KINDS",
    "MARKER",
    "PACKS",
    "STALE_TMP_SECONDS",
    "clear",
    "files",
    "files_in",
    "finished",
    "is_ours",
    "lay_out",
    "packs_dir",
    "unlink",
]

#: One directory each: entries, blobs, locks, pointers, listings, memos.
KINDS = ("e", "b", "l", "p", "t", "x")
#: Under ``e/``: shards are named by two hex digits, so it is never one.
PACKS = "packs"
MARKER = ".jobstamps-cache"
_MARKER_TEXT = b"This directory holds results stored by jobstamps; jobstamp --clear empties it.\n"
#: What ``v1`` may hold: a ``v1`` without the marker but with nothing else was made by an
#: earlier version, and is taken over; anything else there is not ours to write to or clear.
_LAYOUT = frozenset({*KINDS, "stats", "remote", "secret", MARKER})
_CACHEDIR_TAG = (
    b"Signature: 8a477f597d28d172789f06886806bc55\n"
    b"# This file is a cache directory tag created by jobstamps.\n"
    b"# For information about cache directory tags see https://bford.info/cachedir/\n"
)
STALE_TMP_SECONDS = 3600


def lay_out(root: str, data: str, made: bool) -> None:
    """Lay out the private directory ``root`` (``made`` now) and its ``data`` (``v1``) inside.

    ``CACHEDIR.TAG`` goes only into a directory created here or found empty: a project
    directory used as a cache must stay in the user's backups.
    """
    if made or not os.listdir(root):
        atomic_write(os.path.join(root, "CACHEDIR.TAG"), [_CACHEDIR_TAG])
    _claim(data)
    for kind in KINDS:
        makedirs(os.path.join(data, kind))


def _claim(data: str) -> None:
    """Make ``data`` ours: create it with its marker, or check that an existing one is ours."""
    marker = os.path.join(data, MARKER)
    if os.path.lexists(data) and not os.path.lexists(marker):
        makedirs(data)  # refuses a file or a link in its place
        if not is_ours(data):
            raise CacheDirectoryError(
                data,
                "it holds files jobstamps did not make",
                "Choose another directory for the cache",
            )
        _make_private(data)
    makedirs(data)
    if not os.path.lexists(marker):
        atomic_write(marker, [_MARKER_TEXT])


def is_ours(data: str) -> bool:
    """Whether ``data`` was made by jobstamps: marked, or holding nothing but our layout."""
    try:
        if os.path.lexists(os.path.join(data, MARKER)):
            return True
        names = os.listdir(data)
    except OSError:
        return False
    return all(name in _LAYOUT or name.startswith(TMP_PREFIX) for name in names)


def _make_private(top: str) -> None:
    """Make every directory and file under ``top`` private, as an earlier version may not.

    Links and other users' files are removed; another user's directory is refused.
    """
    for directory, dirs, names in os.walk(top):
        makedirs(directory)
        for name in [*dirs, *names]:
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


def packs_dir(data: str) -> str:
    """Return the directory of the packs (see :mod:`jobstamps.storage.local.packs`)."""
    return os.path.join(data, "e", PACKS)


def files(data: str, kind: str) -> Iterator[tuple[str, int, int]]:
    """Yield ``(path, size, mtime_ns)`` of finished files of one kind; drop stale temps.

    Packs are not entries' files: see :func:`files_in`.
    """
    for shard in finished(os.path.join(data, kind)):
        if kind != "e" or os.path.basename(shard) != PACKS:
            yield from files_in(shard)


def files_in(directory: str) -> Iterator[tuple[str, int, int]]:
    """Yield ``(path, size, mtime_ns)`` of the finished files in ``directory``."""
    for path in finished(directory):
        try:
            st = os.lstat(path)
        except OSError:
            continue
        yield path, st.st_size, st.st_mtime_ns


def finished(directory: str) -> list[str]:
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
            _drop_if_stale(path)
        else:
            paths.append(path)
    return paths


def _drop_if_stale(path: str) -> None:
    try:
        if os.lstat(path).st_mtime < time.time() - STALE_TMP_SECONDS:
            os.unlink(path)
    except OSError:
        pass


def unlink(path: str, size: int) -> int:
    """Remove ``path``; return ``size`` if it was removed, else 0 (the bytes it freed)."""
    try:
        os.unlink(path)
    except OSError:
        return 0
    return size


def clear(root: str, data: str) -> None:
    """Remove every entry, blob, lock and pointer under ``data``; keep statistics and settings.

    Only a ``data`` directory jobstamps made is touched. Raise :class:`CacheDirectoryError`
    for any other, and when something could not be removed.
    """
    not_ours = (
        f"{root} is not a jobstamps cache, so nothing was removed. Name the cache directory itself"
    )
    if not os.path.lexists(data):
        # Without its tag either, the directory is not one jobstamps made: "cleared" would
        # mislead (it is likely the parent or a folder of the cache).
        if os.path.isdir(root) and not os.path.isfile(os.path.join(root, "CACHEDIR.TAG")):
            raise CacheDirectoryError(not_ours)
        return
    if os.path.islink(data) or not os.path.isdir(data) or not is_ours(data):
        raise CacheDirectoryError(not_ours)
    import shutil

    left = []
    for kind in KINDS:
        path = os.path.join(data, kind)
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
            root,
            f"not everything could be removed ({left[0]})",
            "Check the permissions of the cache directory",
        )
