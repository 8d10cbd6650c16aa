"""The exceptions jobstamps raises; the command line turns each into a one-line message."""

from __future__ import annotations

__all__ = [
    "CacheDirectoryError",
    "CommandError",
    "JobstampsError",
    "UnhashableArgumentError",
    "UsageError",
]


class JobstampsError(Exception):
    """Base of every error jobstamps raises on purpose."""


class UsageError(JobstampsError):
    """The caller asked for something that cannot work (bad flags, bad option values)."""


class CacheDirectoryError(JobstampsError, OSError):
    """The cache directory cannot be used safely: not a directory, or writable by others.

    It is an :class:`OSError` too, as the original jobstamps raised ``IOError`` here. Its text
    is one line; ``path``, ``why`` and ``advice`` let a caller word its own message, such as
    "running without the cache".
    """

    def __init__(self, path: str, why: str, advice: str = "Choose another directory") -> None:
        super().__init__(f"cache directory {path} is unusable ({why}). {advice}")
        self.path = path
        self.why = why
        self.advice = advice


class UnhashableArgumentError(JobstampsError, TypeError):
    """An argument of a memoized call has no stable, canonical form to key it by."""


class CommandError(JobstampsError):
    """The wrapped command cannot be started (not found, not executable)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code
