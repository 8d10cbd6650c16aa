"""The exceptions jobstamps raises; the command line turns each into a one-line message."""

from __future__ import annotations

import os

__all__ = [
    "CacheDirectoryError",
    "CommandError",
    "JobstampsError",
    "NotShareableError",
    "UnhashableArgumentError",
    "UsageError",
    "one_line",
    "say",
]


def one_line(message: str) -> str:
    r"""Return ``message`` as one line: a newline or carriage return in a name shows as ``\n``.

    Every message jobstamps writes is one line, whatever the names of the files in it.
    """
    return message.replace("\n", "\\n").replace("\r", "\\r")


def say(message: str) -> None:
    """Write ``jobstamp: <message>`` as one line on stderr; a name's undecodable bytes as they are.

    A closed or full stderr loses the line quietly: saying why must never fail the command.
    """
    text = f"jobstamp: {one_line(message)}\n"
    try:
        try:
            data = text.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:  # a surrogate no file name decodes to
            data = text.encode("utf-8", "replace")
        os.write(2, data)
    except OSError:
        pass


class JobstampsError(Exception):
    """Base of every error jobstamps raises on purpose."""


class UsageError(JobstampsError):
    """The caller asked for something that cannot work (bad flags, bad option values)."""


class CacheDirectoryError(JobstampsError, OSError):
    """The cache directory cannot be used safely: not a directory, or writable by others.

    It is an :class:`OSError` too, as the original jobstamps raised ``IOError`` here. Its text
    is one line: ``CacheDirectoryError(path, why, advice)`` words it, and keeps the parts so a
    caller can word its own ("running without the cache"); with one argument, that is the text.
    """

    def __init__(self, path: str, why: str = "", advice: str = "Choose another directory") -> None:
        super().__init__(f"cache directory {path} is unusable ({why}). {advice}" if why else path)
        self.path = path if why else ""
        self.why = why or path
        self.advice = advice if why else ""


class NotShareableError(JobstampsError):
    """A result is kept locally only: its remote key could not see all it depends on."""


class UnhashableArgumentError(JobstampsError, TypeError):
    """An argument of a memoized call has no stable, canonical form to key it by."""


class CommandError(JobstampsError):
    """The wrapped command cannot be started (not found, not executable)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code
