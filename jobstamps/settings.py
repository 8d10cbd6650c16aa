"""The environment variables that steer jobstamps, read in one place.

Each is on when set to anything but empty or ``0``; ``JOBSTAMPS_PROGRESS``, which is on by
default, only turns off.
"""

from __future__ import annotations

import os

__all__ = ["always_hash", "debugging", "disabled", "no_progress", "summary"]


_POSIX = os.name == "posix"


def _flag(name: str, encoded: bytes) -> bool:
    data = getattr(os.environ, "_data", None)
    if _POSIX and type(data) is dict:
        # os.environ answers for an unset name by raising and catching KeyError, 0.6 us on
        # every API hit; the dict of encoded names beneath it answers in a few dozen ns.
        return data.get(encoded, b"") not in {b"", b"0"}
    return os.environ.get(name, "") not in {"", "0"}


def disabled() -> bool:
    """``JOBSTAMPS_DISABLED``: run every job, store nothing."""
    return _flag("JOBSTAMPS_DISABLED", b"JOBSTAMPS_DISABLED")


def debugging() -> bool:
    """``JOBSTAMPS_DEBUG``: explain every decision on standard error."""
    return _flag("JOBSTAMPS_DEBUG", b"JOBSTAMPS_DEBUG")


def always_hash() -> bool:
    """``JOBSTAMPS_ALWAYS_USE_HASHES``: compare contents even where mtimes were asked for."""
    return _flag("JOBSTAMPS_ALWAYS_USE_HASHES", b"JOBSTAMPS_ALWAYS_USE_HASHES")


def summary() -> bool:
    """``JOBSTAMPS_SUMMARY``: say in one line how many files per-file mode replayed and ran."""
    return _flag("JOBSTAMPS_SUMMARY", b"JOBSTAMPS_SUMMARY")


def no_progress() -> bool:
    """``JOBSTAMPS_PROGRESS`` set to ``0``, ``no``, ``false`` or ``off``: never a progress line."""
    return os.environ.get("JOBSTAMPS_PROGRESS", "").strip().lower() in {"0", "no", "false", "off"}
