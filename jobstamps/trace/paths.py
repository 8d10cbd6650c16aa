"""The traced set stored with a result: what each path was when the command used it.

:func:`record` turns the paths a run used (:class:`jobstamps.trace.parse.Access`) into
entries that marshal stores; :func:`check` compares them with the file system on a hit and
names the first path that makes the command run again. Each entry is ``[path, kind, data]``:

``f``  a file read, run or looked at: its fingerprint (as a declared dependency's)
``k``  a directory or other non-file looked at or opened: its type (``K``: without
       following a link)
``l``  a symbolic link looked at as such: its target
``n``  a look-up that found nothing: it must still find nothing (``N``: without following a
       link at the end)
``a``  as ``n`` for many names in one directory (``path``), listed in ``data`` (``A``: as
       ``N``): a directory that is gone holds none of them, and one listing answers for all
``d``  a directory whose entries were read: its sorted names, less those the command itself
       created or removed and those ``--trace-ignore`` leaves out (``data`` is ``[names,
       those names, the globs]``)
"""

from __future__ import annotations

import os
import stat
import time

from jobstamps import fingerprint
from jobstamps.fingerprint import shown

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from jobstamps.trace.parse import Access

__all__ = ["CHANGED_MARGIN_NS", "DROPPED_NAMES", "check", "record"]

#: File times come from a coarse clock that lags the wall clock by up to a tick: a file
#: changed this long before the run started may still have been changed during it.
CHANGED_MARGIN_NS = 20_000_000

Entry = list[object]

#: Tools' own caches: a tool rewrites them as it runs (the sources they stand for are
#: recorded), so no path through them is recorded, nor their names in a listing.
DROPPED_NAMES = frozenset({"__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache"})


def _kind(mode: int) -> int:
    return stat.S_IFMT(mode)


def _names(path: str, volatile: list[str], globs: Sequence[str]) -> list[str]:
    skip = DROPPED_NAMES.union(volatile)
    names = [name for name in os.listdir(path) if name not in skip]
    if globs:  # an ignored name must not count when it comes or goes, as it does not when read
        from fnmatch import fnmatchcase

        names = [
            name
            for name in names
            if not any(
                fnmatchcase(os.path.join(path, name) if "/" in glob else name, glob)
                for glob in globs
            )
        ]
    return sorted(names)


def record(
    access: Access,
    method: str,
    started_ns: int,
    dropped: Callable[[str], bool],
    globs: Sequence[str] = (),
) -> tuple[list[Entry], str]:
    """Describe every path of ``access`` not ``dropped`` and not the command's own.

    ``globs`` are the ``--trace-ignore`` globs (a path glob absolute), which listings leave
    out too. Returns the entries and ``""``, or ``[]`` and why the result must not be stored:
    a file the command read, then changed, or one changed by someone else while the command
    ran.
    """
    for path in access.read_then_changed:
        if not dropped(path):
            return [], f"the command changed {shown(path)} after reading it"
    entries: list[Entry] = []
    done: set[str] = set()

    def wanted(path: str) -> bool:
        if path in done or dropped(path) or access.is_own(path):
            return False
        done.add(path)
        return True

    for path in filter(wanted, access.listed):
        volatile = access.volatile(path)
        try:
            entries.append([path, "d", [_names(path, volatile, globs), volatile, list(globs)]])
        except OSError:
            entries.append([path, "n", None])
    used = [(path, True) for path in access.read] + list(access.stated.items())
    for path, follow in used:
        if wanted(path):
            why = _record_used(
                path, method, started_ns, follow=follow, opened=path in access.read, entries=entries
            )
            if why:
                return [], why
    entries += _absent(access, wanted)
    return entries, ""


def _absent(access: Access, wanted: Callable[[str], bool]) -> list[Entry]:
    """Describe the look-ups that found nothing, grouped by directory."""
    entries: list[Entry] = []
    absent: dict[tuple[str, bool], list[str]] = {}
    for path, follow in access.absent.items():
        if wanted(path):
            parent, name = os.path.split(path)
            if name in {"", "..", "."}:
                entries.append([path, "n" if follow else "N", None])
            else:
                absent.setdefault((parent, follow), []).append(name)
    entries += [
        [parent, "a" if follow else "A", names] for (parent, follow), names in absent.items()
    ]
    return entries


def _record_used(
    path: str, method: str, started_ns: int, *, follow: bool, opened: bool, entries: list[Entry]
) -> str:
    """Add what ``path`` is now to ``entries``; say why not to store if it changed in the run.

    What the command read from a pipe, socket or device (``opened``) cannot be checked later.
    """
    try:
        st = os.stat(path) if follow else os.lstat(path)
    except OSError:
        entries.append([path, "n" if follow else "N", None])  # gone: runs next time
        return ""
    if stat.S_ISLNK(st.st_mode):
        try:
            entries.append([path, "l", os.readlink(path)])
        except OSError:
            entries.append([path, "K", _kind(st.st_mode)])
        return ""
    if opened and not stat.S_ISREG(st.st_mode) and not stat.S_ISDIR(st.st_mode):
        return f"the command read {shown(path)}, a pipe or device, which cannot be checked later"
    if not stat.S_ISREG(st.st_mode):
        entries.append([path, "k" if follow else "K", _kind(st.st_mode)])
        return ""
    since = started_ns - CHANGED_MARGIN_NS  # a future modification time is no change now
    if st.st_ctime_ns >= since or since <= st.st_mtime_ns <= time.time_ns():
        return f"{shown(path)} changed while the command ran"
    recorded = fingerprint.record(path, method)
    if recorded is None:
        entries.append([path, "n", None])
    else:
        entries.append([path, "f", recorded])
    return ""


def check(entries: list[Entry], method: str) -> tuple[str, str] | None:
    """Return ``(path, why)`` for the first entry that no longer holds, or ``None``."""
    for path, kind, data in entries:
        why = _check_one(str(path), str(kind), data, method)
        if why:
            return str(path), why
    return None


_FINGERPRINT = 8  # the shape of fingerprint.Fingerprint: stat signature, digest, racy flag

#: From this many names on, one listing of their directory answers for all of them.
_LISTED_FROM = 4


def _check_absent(parent: str, names: list[str], follow: bool) -> str:
    """Say which of ``names`` exists in ``parent`` now; ``""`` when none does."""
    try:
        st = os.stat(parent)
    except (FileNotFoundError, NotADirectoryError):
        return ""
    except OSError as error:
        where = shown(parent)
        return f"{where}, where the command looked for files, cannot be read ({error.strerror})"
    if not stat.S_ISDIR(st.st_mode):
        return ""
    candidates = names
    if len(names) >= _LISTED_FROM:
        try:
            present = set(os.listdir(parent))
        except OSError:
            pass
        else:
            candidates = [name for name in names if name in present]
    exists = os.path.exists if follow else os.path.lexists
    for name in candidates:
        path = os.path.join(parent, name)
        if exists(path):
            return f"{shown(path)} was created, where the command looked for it"
    return ""


def _check_file(path: str, data: object, method: str) -> str:
    recorded: fingerprint.Fingerprint = data  # type: ignore[assignment]
    try:  # the common case, written out: one stat, compared as a whole
        st = os.stat(path)
        now = (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino, st.st_dev, st.st_mode)
        if len(recorded) == _FINGERPRINT and not recorded[-1] and now == recorded[:6]:
            return ""
    except OSError:
        pass
    why, _ = fingerprint.check(path, method, recorded)
    return f"traced file {shown(path)} changed: {why}" if why else ""


def _check_missing(path: str, follow: bool) -> str:
    exists = os.path.exists(path) if follow else os.path.lexists(path)
    return f"{shown(path)} was created, where the command looked for it" if exists else ""


def _check_kind(path: str, data: object, follow: bool) -> str:
    try:
        st = os.stat(path) if follow else os.lstat(path)
    except OSError:
        return f"{shown(path)}, which the command used, no longer exists"
    return "" if _kind(st.st_mode) == data else f"{shown(path)} is another kind of file now"


def _check_link(path: str, data: object) -> str:
    try:
        target = os.readlink(path)
    except OSError:
        return f"{shown(path)} is no longer a symbolic link"
    return "" if target == data else f"symbolic link {shown(path)} leads elsewhere now"


def _check_listing(path: str, data: object) -> str:
    names: list[str] = data[0]  # type: ignore[index]
    volatile: list[str] = data[1]  # type: ignore[index]
    globs: list[str] = data[2]  # type: ignore[index]
    try:
        now = _names(path, volatile, globs)
    except OSError:
        return f"directory {shown(path)}, which the command listed, cannot be read"
    if now == names:
        return ""
    said = [f"{shown(name)} was added" for name in sorted(set(now) - set(names))[:3]]
    said += [f"{shown(name)} was removed" for name in sorted(set(names) - set(now))[:3]]
    return f"the listing of {shown(path)} changed: {'; '.join(said)}"


_CHECKS: dict[str, Callable[[str, object, str], str]] = {
    "f": _check_file,
    "a": lambda path, data, _: _check_absent(path, data, follow=True),  # type: ignore[arg-type]
    "A": lambda path, data, _: _check_absent(path, data, follow=False),  # type: ignore[arg-type]
    "n": lambda path, _, __: _check_missing(path, follow=True),
    "N": lambda path, _, __: _check_missing(path, follow=False),
    "k": lambda path, data, _: _check_kind(path, data, follow=True),
    "K": lambda path, data, _: _check_kind(path, data, follow=False),
    "l": lambda path, data, _: _check_link(path, data),
    "d": lambda path, data, _: _check_listing(path, data),
}


def _check_one(path: str, kind: str, data: object, method: str) -> str:
    checker = _CHECKS.get(kind)
    if checker is None:
        return f"{shown(path)} was recorded by another version of jobstamps"
    return checker(path, data, method)
