"""The environment variables that steer jobstamps, read in one place.

Each is on when set to anything but empty or ``0``.
"""

from __future__ import annotations

import os

__all__ = ["always_hash", "debugging", "disabled"]


def _flag(name: str) -> bool:
    return os.environ.get(name, "") not in {"", "0"}


def disabled() -> bool:
    """``JOBSTAMPS_DISABLED``: run every job, store nothing."""
    return _flag("JOBSTAMPS_DISABLED")


def debugging() -> bool:
    """``JOBSTAMPS_DEBUG``: explain every decision on standard error."""
    return _flag("JOBSTAMPS_DEBUG")


def always_hash() -> bool:
    """``JOBSTAMPS_ALWAYS_USE_HASHES``: compare contents even where mtimes were asked for."""
    return _flag("JOBSTAMPS_ALWAYS_USE_HASHES")
