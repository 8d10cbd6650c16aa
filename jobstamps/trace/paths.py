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
``d``  a directory whose entries were read: its sorted names, less those the command itself
       created or removed (``data`` is ``[names, those names]``)
"""

from __future__ import annotations

import os
import stat

from jobstamps import fingerprint

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from jobstamps.trace.parse import Access

__all__ = ["CHANGED_MARGIN_NS", "check", "record"]

#: File times come from a coarse clock that lags the wall clock by up to a tick: a file
#: changed this long before the run started may still have been changed during it.
CHANGED_MARGIN_NS = 20_000_000

Entry = list[object]


def _kind(mode: int) -> int:
    return stat.S_IFMT(mode)


def _names(path: str, volatile: list[str]) -> list[str]:
    skip = set(volatile)
    from jobstamps.trace.parse import DROPPED_NAMES

    return sorted(name for name in os.listdir(path) if name not in skip | DROPPED_NAMES)


def record(
    access: Access, method: str, started_ns: int, dropped: Callable[[str], bool]
) -> tuple[list[Entry], str]:
    """Describe every path of ``access`` not ``dropped`` and not the command's own.

    Returns the entries and ``""``, or ``[]`` and why the result must not be stored: a file
    the command read, then changed, or one changed by someone else while the command ran.
    """
    for path in access.read_then_changed:
        if not dropped(path):
            return [], f"the command changed {path} after reading it"
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
            entries.append([path, "d", [_names(path, volatile), volatile]])
        except OSError:
            entries.append([path, "n", None])
    used = [(path, True) for path in access.read] + list(access.stated.items())
    for path, follow in used:
        if wanted(path):
            why = _record_used(path, method, started_ns, follow=follow, entries=entries)
            if why:
                return [], why
    entries += [
        [path, "n" if follow else "N", None]
        for path, follow in access.absent.items()
        if wanted(path)
    ]
    return entries, ""


def _record_used(
    path: str, method: str, started_ns: int, *, follow: bool, entries: list[Entry]
) -> str:
    """Add what ``path`` is now to ``entries``; say why not to store if it changed in the run."""
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
    if not stat.S_ISREG(st.st_mode):
        entries.append([path, "k" if follow else "K", _kind(st.st_mode)])
        return ""
    if max(st.st_mtime_ns, st.st_ctime_ns) >= started_ns - CHANGED_MARGIN_NS:
        return f"{path} changed while the command ran"
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


def _check_one(path: str, kind: str, data: object, method: str) -> str:
    if kind == "f":
        why, _ = fingerprint.check(path, method, data)  # type: ignore[arg-type]
        return f"traced file {path} changed: {why}" if why else ""
    if kind in {"n", "N"}:
        exists = os.path.exists(path) if kind == "n" else os.path.lexists(path)
        return f"{path} was created, where the command looked for it" if exists else ""
    try:
        st = os.stat(path) if kind == "k" else os.lstat(path)
    except OSError:
        return f"{path}, which the command used, no longer exists"
    if kind in {"k", "K"}:
        return "" if _kind(st.st_mode) == data else f"{path} is another kind of file now"
    if kind == "l":
        try:
            target = os.readlink(path)
        except OSError:
            return f"{path} is no longer a symbolic link"
        return "" if target == data else f"symbolic link {path} leads elsewhere now"
    if kind == "d":
        names: list[str] = data[0]  # type: ignore[index]
        volatile: list[str] = data[1]  # type: ignore[index]
        try:
            now = _names(path, volatile)
        except OSError:
            return f"directory {path}, which the command listed, cannot be read"
        if now == names:
            return ""
        added = sorted(set(now) - set(names))
        removed = sorted(set(names) - set(now))
        said = [f"{name} was added" for name in added[:3]]
        said += [f"{name} was removed" for name in removed[:3]]
        return f"the listing of {path} changed: {'; '.join(said)}"
    return f"{path} was recorded by another version of jobstamps"
