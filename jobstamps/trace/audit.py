"""Trace what a Python call opens, lists and changes, through an audit hook (PEP 578).

The Python API's counterpart of strace: ``open`` (``open()``, ``os.open``, the import
system's reads), ``os.listdir`` and ``os.scandir`` are recorded as reads and listings, and
``os.remove``, ``os.rename`` (``os.replace``), ``os.mkdir`` and ``os.rmdir`` as changes. A
hook cannot be removed once added: one is added on first use and records only while a
traced call runs in the same thread. Other threads, subprocesses and modules imported
before the call are not seen.
"""

from __future__ import annotations

import os
import sys
import threading
from importlib.util import source_from_cache

from jobstamps.trace.parse import Access, tidy

__all__ = ["recording"]

_WRITES = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC
_CHANGES = {"os.remove": 1, "os.rename": 2, "os.mkdir": 1, "os.rmdir": 1}
_local = threading.local()
_added: list[bool] = []


class _Recording:
    """The paths one traced call used (its :class:`Access`), and those it read so far."""

    def __init__(self) -> None:
        self.access = Access()
        self.read: set[str] = set()

    def change(self, path: str) -> None:
        if path in self.read and path not in self.access.changed:
            self.access.read_then_changed.setdefault(path)
        self.access.changed.setdefault(path)


def _absolute(path: object) -> str | None:
    if isinstance(path, int) or path is None:
        return None
    try:
        name = os.fsdecode(path)  # type: ignore[arg-type]
        return tidy(name if name.startswith("/") else os.path.join(os.getcwd(), name))
    except (OSError, TypeError):
        return None


def _opened(recordings: list[_Recording], args: tuple[object, ...]) -> None:
    path = _absolute(args[0])
    if path is None:
        return
    if "/__pycache__/" in path and path.endswith(".pyc"):
        # The import system read a module's cached code after checking its source's time
        # (which raises no event): the source is what the call depends on.
        try:
            path = source_from_cache(path)
        except ValueError:
            return
    mode, flags = args[1], args[2]
    writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
        isinstance(flags, int) and flags & _WRITES
    )
    for recording in recordings:
        if writes:
            recording.change(path)
        else:
            recording.access.read.setdefault(path)
            recording.read.add(path)


def _hook(event: str, args: tuple[object, ...]) -> None:
    recordings: list[_Recording] | None = getattr(_local, "recordings", None)
    if not recordings or getattr(_local, "busy", False):
        return
    _local.busy = True  # what the hook itself does is not the call's
    try:
        _record(recordings, event, args)
    finally:
        _local.busy = False


def _record(recordings: list[_Recording], event: str, args: tuple[object, ...]) -> None:
    if event == "open":
        _opened(recordings, args)
    elif event in {"os.listdir", "os.scandir"}:
        path = _absolute(args[0] if args and args[0] is not None else ".")
        for recording in recordings if path is not None else ():
            recording.access.listed.setdefault(path)  # type: ignore[arg-type]
    elif event in _CHANGES:
        changed = [_absolute(arg) for arg in args[: _CHANGES[event]]]
        for recording in recordings:
            for path in changed:
                if path is not None:
                    recording.change(path)


class recording:  # noqa: N801 - used as a function: ``with recording() as access:``
    """Record, in this thread, what the code run inside the ``with`` block uses."""

    def __enter__(self) -> Access:
        if not _added:
            sys.addaudithook(_hook)
            _added.append(True)
        self._recording = _Recording()
        stack: list[_Recording] = getattr(_local, "recordings", None) or []
        stack.append(self._recording)
        _local.recordings = stack
        return self._recording.access

    def __exit__(self, *exc: object) -> None:
        stack: list[_Recording] = _local.recordings
        stack.remove(self._recording)
