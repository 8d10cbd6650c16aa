"""Fingerprints of files: a stat signature compared for equality, and a content digest.

A fingerprint is a plain tuple so that entries can be stored with :mod:`marshal`:
``(mtime_ns, ctime_ns, size, inode, device, digest, racy)``. ``digest`` is the content hash
(always in hash mode, and in mtime mode for racy files), ``racy`` marks a file modified so
recently when it was recorded that a later edit could leave its stat signature unchanged
(timestamps are coarse); a racy file is judged by its contents.

A directory stands for every file below it (version-control and bytecode-cache folders
aside): its signature sums up all their stat signatures, its digest all their contents.
"""

from __future__ import annotations

import os
import stat
import time

try:  # The builtin module imports in microseconds; hashlib loads OpenSSL.
    from _blake2 import blake2b
except ImportError:  # pragma: no cover - other Python implementations
    from hashlib import blake2b

__all__ = [
    "HASH",
    "MTIME",
    "Fingerprint",
    "blake2b",
    "check",
    "digest_bytes",
    "digest_file",
    "record",
]

MTIME = "mtime"
HASH = "hash"

#: How recent a modification must be, relative to when it was recorded, to be treated as racy.
RACY_WINDOW_NS = 2_000_000_000
_CHUNK = 1 << 20

Fingerprint = tuple[int, int, int, int, int, str, bool]


def digest_bytes(data: bytes) -> str:
    """Return the hex digest jobstamps uses for keys and blobs."""
    return blake2b(data, digest_size=20).hexdigest()


def digest_file(path: str) -> str:
    """Return the digest of a file's contents (of every file's name and contents, for a tree)."""
    if not os.path.isdir(path):
        return _digest_one(path)
    hasher = blake2b(digest_size=20)
    for relative, st in _tree(path):
        full = os.path.join(path, relative)
        # A link that is left as a link stands for the name it points to.
        linked = stat.S_ISLNK(st.st_mode)
        content = "link:" + os.readlink(full) if linked else _digest_one(full)
        hasher.update(relative.encode("utf-8", "surrogateescape") + b"\0" + content.encode())
    return hasher.hexdigest()


def _digest_one(path: str) -> str:
    hasher = blake2b(digest_size=20)
    fd = os.open(path, os.O_RDONLY)
    try:
        while chunk := os.read(fd, _CHUNK):
            hasher.update(chunk)
    finally:
        os.close(fd)
    return hasher.hexdigest()


#: Folders a directory dependency does not cover: tools rewrite them as a matter of course.
SKIPPED_FOLDERS = frozenset(
    {".git", ".hg", ".svn", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache"}
)


def _tree(path: str) -> list[tuple[str, os.stat_result]]:
    """List the files and symbolic links below ``path``, sorted by relative path.

    A link to a file stands for that file; other links (to folders, dangling) stand for the
    name they point to, so a tree is always finite.
    """
    found: list[tuple[str, os.stat_result]] = []
    pending = [""]
    while pending:
        relative = pending.pop()
        with os.scandir(os.path.join(path, relative)) as entries:
            for entry in entries:
                if entry.name in SKIPPED_FOLDERS:
                    continue
                name = os.path.join(relative, entry.name)
                if entry.is_dir(follow_symlinks=False):
                    pending.append(name)
                    continue
                found.append((name, _followed_if_file(entry)))
    found.sort(key=lambda item: item[0])
    return found


def _followed_if_file(entry: os.DirEntry[str]) -> os.stat_result:
    st = entry.stat(follow_symlinks=False)
    if stat.S_ISLNK(st.st_mode):
        try:
            target = entry.stat()
        except OSError:
            return st
        if stat.S_ISREG(target.st_mode):
            return target
    return st


def _signature(path: str) -> tuple[int, int, int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:  # missing, or unreachable (a link loop, a name too long): not there
        return None
    if not stat.S_ISDIR(st.st_mode):
        return (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino, st.st_dev)
    # A tree: the newest times (for racy checks), total size, file count, and a digest of
    # every file's name and stat signature.
    hasher = blake2b(digest_size=8)
    newest_m, newest_c, total = st.st_mtime_ns, st.st_ctime_ns, 0
    files = _tree(path)
    for relative, fst in files:
        newest_m, newest_c = max(newest_m, fst.st_mtime_ns), max(newest_c, fst.st_ctime_ns)
        total += fst.st_size
        stat_part = (fst.st_mtime_ns, fst.st_ctime_ns, fst.st_size, fst.st_ino, fst.st_dev)
        hasher.update(f"{relative}\0{stat_part}\n".encode("utf-8", "surrogateescape"))
    return (newest_m, newest_c, total, len(files), int.from_bytes(hasher.digest(), "big"))


def _is_racy(signature: tuple[int, int, int, int, int], now_ns: int) -> bool:
    return max(signature[0], signature[1]) > now_ns - RACY_WINDOW_NS


def record(path: str, method: str) -> Fingerprint | None:
    """Fingerprint ``path`` now; ``None`` when it does not exist.

    The stat comes before the read: a change between them shows in a later stat.
    """
    signature = _signature(path)
    if signature is None:
        return None
    racy = _is_racy(signature, time.time_ns())
    try:
        digest = digest_file(path) if method == HASH or racy else ""
    except OSError:  # gone or unreadable since the stat: as good as missing
        return None
    return (*signature, digest, racy)


def check(path: str, method: str, recorded: Fingerprint) -> tuple[str | None, Fingerprint | None]:
    """Compare ``path`` with its recorded fingerprint.

    Returns ``(why, refreshed)``: ``why`` is ``None`` when the file is unchanged, else what
    changed; ``refreshed`` is a newer fingerprint worth storing for the same contents (a touched
    file in hash mode, a racy file that has settled), else ``None``.
    """
    signature = _signature(path)
    if signature is None:
        return "it is missing", None
    same_stat = signature == tuple(recorded[:5])
    racy = recorded[6]
    if same_stat and not racy:
        return None, None
    if not same_stat and method != HASH:
        return _describe_stat_change(path, tuple(recorded[:5]), signature), None
    try:
        digest = digest_file(path)
    except OSError as error:
        return f"it cannot be read ({error.strerror})", None
    if digest != recorded[5]:
        return "its contents changed", None
    refreshed = (*signature, digest, _is_racy(signature, time.time_ns()))
    return None, (refreshed if refreshed != tuple(recorded) else None)


def _describe_stat_change(path: str, old: tuple[int, ...], new: tuple[int, ...]) -> str:
    if os.path.isdir(path):
        return "files below it were added, removed or modified"
    names = ("modification time", "change time", "size", "inode", "device")
    changed = [name for name, a, b in zip(names, old, new, strict=True) if a != b]
    return "its " + ", ".join(changed) + " changed"
