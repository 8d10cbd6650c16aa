"""Fingerprints of files: a stat signature compared for equality, and a content digest.

A fingerprint is a plain tuple so that entries can be stored with :mod:`marshal`:
``(mtime_ns, ctime_ns, size, inode, device, mode, digest, racy)``. ``mode`` is the file type
and permission bits, part of a file's identity in both methods. ``digest`` is the content
hash (always in hash mode, and in mtime mode for racy files), ``racy`` marks a file modified
so recently when it was recorded that a later edit could leave its stat signature unchanged
(timestamps are coarse); a racy file is judged by its contents. A fingerprint of any other
shape (made by an earlier version) never matches.

Only regular files are read. Anything else (a FIFO, a socket, a device) is never opened: its
type, permission bits and device number stand for its contents.

A directory stands for the entries below it (version-control and tool-cache folders aside),
not for its own times: each entry's name and kind, and for files their stat signature (in
mtime mode) or contents (in hash mode). Symbolic links to directories are followed, each
directory once: a link to a directory already covered (a loop back to an ancestor, or a
second way to the same directory) stands for the path where that directory was covered.
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
    "Listing",
    "blake2b",
    "changed_since",
    "check",
    "digest_bytes",
    "digest_fd",
    "digest_file",
    "listing",
    "record",
    "shown",
    "stat_signature",
    "tree_changes",
    "why_unrecorded",
]

MTIME = "mtime"
HASH = "hash"

#: How recent a modification must be, relative to when it was recorded, to be treated as racy.
RACY_WINDOW_NS = 2_000_000_000
_CHUNK = 1 << 20

Fingerprint = tuple[int, int, int, int, int, int, str, bool]
Signature = tuple[int, int, int, int, int, int]
#: A tree's entries: each one's path relative to the tree, and a digest of what is recorded of
#: it (see :func:`listing`).
Listing = list[tuple[str, str]]
_SIGNATURE = 6  # the stat part of a fingerprint; then the digest, then the racy flag
_SHAPE = _SIGNATURE + 2

#: Folders a directory dependency does not cover: tools rewrite them as a matter of course.
SKIPPED_FOLDERS = frozenset(
    {".git", ".hg", ".svn", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache"}
)


def digest_bytes(data: bytes) -> str:
    """Return the hex digest jobstamps uses for keys and blobs."""
    return blake2b(data, digest_size=20).hexdigest()


def digest_fd(fd: int) -> str:
    """Return the digest of what is left to read from the open file ``fd``, read in blocks."""
    hasher = blake2b(digest_size=20)
    while chunk := os.read(fd, _CHUNK):
        hasher.update(chunk)
    return hasher.hexdigest()


def digest_file(path: str) -> str:
    """Return the digest of a file's contents (of every entry's name and contents, for a tree).

    A file that is not a regular file or a directory is not opened: its type, permission bits
    and device number stand for its contents.
    """
    st = os.stat(path)
    if stat.S_ISDIR(st.st_mode):
        return _digest_tree(path)
    if not stat.S_ISREG(st.st_mode):
        return _special(st)
    return _digest_one(path)


def _special(st: os.stat_result) -> str:
    return f"special:{st.st_mode:o}:{st.st_rdev}"


def _digest_one(path: str) -> str:
    # Non-blocking, so that a FIFO put in place since the stat cannot make the open hang.
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return _special(st)
        return digest_fd(fd)
    finally:
        os.close(fd)


# -- trees -----------------------------------------------------------------------------------

_FILE, _OTHER, _DIR, _LINK, _AGAIN = "f", "o", "d", "l", "a"


def _tree(root: str) -> list[tuple[str, str, os.stat_result, str]]:
    """List the entries below ``root`` as ``(relative path, kind, stat, text)``, in walk order.

    Kinds: a regular file (a link to one stands for it), another non-directory file, a
    directory (walked, links to directories included), a link that leads nowhere (``text`` is
    its target), or a way to a directory walked already (``text`` is where it was walked; the
    root is ``.``). The walk visits names in sorted order, depth first, so it is deterministic,
    and walks each directory once, so it ends. Raises :class:`OSError` for what cannot be read.
    """
    top = os.stat(root)
    walked = {(top.st_dev, top.st_ino): "."}
    found: list[tuple[str, str, os.stat_result, str]] = []
    stack = [iter(_names(root, ""))]
    while stack:
        relative = next(stack[-1], None)
        if relative is None:
            stack.pop()
            continue
        full = os.path.join(root, relative)
        st = os.lstat(full)
        if stat.S_ISLNK(st.st_mode):
            try:
                st = os.stat(full)
            except OSError:  # dangling, a loop of links, or unreachable
                found.append((relative, _LINK, st, os.readlink(full)))
                continue
        if stat.S_ISDIR(st.st_mode):
            first = walked.setdefault((st.st_dev, st.st_ino), relative)
            if first != relative:
                found.append((relative, _AGAIN, st, first))
                continue
            found.append((relative, _DIR, st, ""))
            stack.append(iter(_names(root, relative)))
        else:
            found.append((relative, _FILE if stat.S_ISREG(st.st_mode) else _OTHER, st, ""))
    return found


def _names(root: str, relative: str) -> list[str]:
    names = sorted(os.listdir(os.path.join(root, relative) if relative else root))
    return [os.path.join(relative, name) for name in names if name not in SKIPPED_FOLDERS]


def _add_entry(
    hasher: blake2b, listed: Listing | None, relative: str, fields: tuple[object, ...]
) -> None:
    """Add an entry's ``fields`` to ``hasher`` and, with its own digest, to ``listed``.

    Each field is ended by a NUL, which no file name or link holds.
    """
    text = "".join(f"{field}\0" for field in fields).encode("utf-8", "surrogateescape")
    hasher.update(text)
    if listed is not None:
        listed.append((relative, blake2b(text, digest_size=8).hexdigest()))


def _digest_tree(path: str, listed: Listing | None = None) -> str:
    hasher = blake2b(digest_size=20)
    for relative, kind, st, text in _tree(path):
        if kind == _FILE:
            content = _digest_one(os.path.join(path, relative))
        elif kind == _OTHER:
            content = _special(st)
        else:
            content = text
        _add_entry(
            hasher, listed, relative, (relative, kind, st.st_mode if kind != _LINK else "", content)
        )
    return hasher.hexdigest()


def _tree_signature(path: str, st: os.stat_result, listed: Listing | None = None) -> Signature:
    """Sum up a tree by its entries, not by its directories' own times.

    The newest file times (for racy checks), the total size, the entry count, a digest of
    every entry's name, kind and stat signature, and the mode of the directory itself.
    """
    hasher = blake2b(digest_size=8)
    newest_m = newest_c = total = 0
    entries = _tree(path)
    for relative, kind, fst, text in entries:
        fields: tuple[object, ...]
        if kind in {_FILE, _OTHER}:
            newest_m, newest_c = max(newest_m, fst.st_mtime_ns), max(newest_c, fst.st_ctime_ns)
            total += fst.st_size
            fields = (relative, kind, *stat_signature(fst), fst.st_rdev)
        elif kind == _DIR:
            fields = (relative, kind, fst.st_mode)
        else:
            fields = (relative, kind, text)
        _add_entry(hasher, listed, relative, fields)
    digest = int.from_bytes(hasher.digest(), "big")
    return (newest_m, newest_c, total, len(entries), digest, st.st_mode)


def listing(path: str, method: str) -> Listing:
    """List the tree at ``path`` as :func:`record` does for ``method``; raise :class:`OSError`.

    Each entry's digest covers what the tree's fingerprint covers of it, so two listings name
    the entries that changed a fingerprint.
    """
    listed: Listing = []
    if method == HASH:
        _digest_tree(path, listed)
    else:
        _tree_signature(path, os.stat(path), listed)
    return listed


def tree_changes(path: str, method: str, recorded: Listing) -> str:
    """Name up to three entries below ``path`` that differ from its ``recorded`` listing.

    ``""`` when none does (or the tree cannot be read): the caller says what it knew before.
    """
    try:
        now = dict(listing(path, method))
    except OSError:
        return ""
    before = dict(recorded)
    changes = sorted(
        [(name, "was removed") for name in before if name not in now]
        + [(name, "was added") for name in now if name not in before]
        + [(name, "was modified") for name in now if before.get(name, now[name]) != now[name]]
    )
    if not changes:
        return ""
    try:
        here = os.getcwd() + os.sep
    except OSError:
        here = "\0"  # no working directory: every path is shown in full
    said = []
    for name, what in changes[:3]:
        said.append(f"{shown(os.path.join(path, name).removeprefix(here))} {what}")
    if len(changes) > 3:  # noqa: PLR2004 - as many as the line says
        said.append(f"and {len(changes) - 3} more")
    return "; ".join(said)


def shown(path: str) -> str:
    """Return ``path`` for a message, quoted if it holds a newline or undecodable bytes.

    A message is one line whatever the names in it.
    """
    return path if path.isprintable() else repr(path)


def stat_signature(st: os.stat_result) -> Signature:
    """Return the stat part of a file's fingerprint: times, size, inode, device and mode."""
    return (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino, st.st_dev, st.st_mode)


def _signature(path: str, listed: Listing | None = None) -> Signature:
    """Return the stat signature of ``path``; raise :class:`OSError` when it cannot be taken."""
    st = os.stat(path)
    if stat.S_ISDIR(st.st_mode):
        return _tree_signature(path, st, listed)
    return stat_signature(st)


def _is_racy(signature: Signature, now_ns: int) -> bool:
    return max(signature[0], signature[1]) > now_ns - RACY_WINDOW_NS


# -- recording and checking ------------------------------------------------------------------


def record(
    path: str, method: str, listings: dict[str, Listing] | None = None
) -> Fingerprint | None:
    """Fingerprint ``path`` now; ``None`` when it does not exist or cannot be read.

    The stat comes before the read: a change between them shows in a later stat. A tree's
    :func:`listing` goes into ``listings``, taken on the same walk.
    """
    listed: Listing | None = [] if listings is not None else None
    try:
        signature = _signature(path, None if method == HASH else listed)
        tree = stat.S_ISDIR(signature[-1])
        racy = _is_racy(signature, time.time_ns())
        if method == HASH and tree and listed is not None:
            digest = _digest_tree(path, listed)
        else:
            digest = digest_file(path) if method == HASH or racy else ""
    except OSError:  # missing, unreachable (a link loop, a name too long) or unreadable
        return None
    if listings is not None and listed is not None and tree:
        listings[path] = listed
    return (*signature, digest, racy)


def why_unrecorded(path: str, method: str) -> str:
    """Say why ``path`` has no fingerprint (see :func:`record`), or what it is now."""
    try:
        signature = _signature(path)
        if method == HASH or _is_racy(signature, time.time_ns()):
            digest_file(path)
    except OSError as error:
        return _unreadable(path, error)
    return "was missing or unreadable when the result was stored"


def _unreadable(path: str, error: OSError) -> str:
    import errno  # only when something went wrong: a hit does not pay for it

    if error.errno in {errno.ENOENT, errno.ENOTDIR} and error.filename in {path, None}:
        return "does not exist"
    where = "" if error.filename in {path, None} else f" ({error.filename})"
    return f"cannot be read{where}: {error.strerror or error}"


def check(path: str, method: str, recorded: Fingerprint) -> tuple[str | None, Fingerprint | None]:
    """Compare ``path`` with its recorded fingerprint.

    Returns ``(why, refreshed)``: ``why`` is ``None`` when the file is unchanged, else what
    changed; ``refreshed`` is a newer fingerprint worth storing for the same contents (a touched
    file in hash mode, a racy file that has settled), else ``None``.
    """
    if len(recorded) != _SHAPE:
        return "it was recorded by another version of jobstamps", None
    try:
        signature = _signature(path)
    except OSError as error:
        return _it(_unreadable(path, error)), None
    old: Signature = tuple(recorded[:_SIGNATURE])  # type: ignore[assignment]
    same_stat = signature == old
    if same_stat and not recorded[_SHAPE - 1]:
        return None, None
    if not same_stat and method != HASH:
        return _describe_stat_change(signature, old), None
    try:
        digest = digest_file(path)
    except OSError as error:
        return _it(_unreadable(path, error)), None
    if digest != recorded[_SIGNATURE]:
        return "its contents changed", None
    if signature[_SIGNATURE - 1] != old[_SIGNATURE - 1]:
        return "its mode (type or permissions) changed", None
    refreshed = (*signature, digest, _is_racy(signature, time.time_ns()))
    return None, (refreshed if refreshed != tuple(recorded) else None)


def changed_since(path: str, recorded: Fingerprint, contents: bool = True) -> str | None:
    """Say how ``path`` changed since ``recorded`` was taken; ``None`` if it did not.

    Stricter than :func:`check`: any change of the stat signature counts, in both methods,
    even if the contents are the same again (a file rewritten and restored while a job ran).
    ``contents=False`` compares the stat signature alone, for a caller that stores ``recorded``
    as it is: a racy fingerprint makes every later check read the contents anyway.
    """
    try:
        signature = _signature(path)
    except OSError as error:
        return _it(_unreadable(path, error))
    old: Signature = tuple(recorded[:_SIGNATURE])  # type: ignore[assignment]
    if signature != old:
        return _describe_stat_change(signature, old)
    if contents and recorded[_SHAPE - 1]:  # racy: an edit within one tick shows in contents
        try:
            if digest_file(path) != recorded[_SIGNATURE]:
                return "its contents changed"
        except OSError as error:
            return _it(_unreadable(path, error))
    return None


def _it(text: str) -> str:
    return "it is missing" if text == "does not exist" else f"it {text}"


def _describe_stat_change(new: tuple[int, ...], old: tuple[int, ...]) -> str:
    if stat.S_ISDIR(new[_SIGNATURE - 1]) and stat.S_ISDIR(old[_SIGNATURE - 1]):
        if new[: _SIGNATURE - 1] == old[: _SIGNATURE - 1]:
            return "its mode changed"
        return "entries below it were added, removed or modified"
    names = ("modification time", "change time", "size", "inode", "device", "mode")
    changed = [name for name, a, b in zip(names, old, new, strict=True) if a != b]
    return "its " + ", ".join(changed) + " changed"
