"""A progress line on a terminal, rewritten in place, for runs long enough to want one.

It goes to standard error only while a person watches it, alone: stderr is a terminal,
``TERM`` is not ``dumb``, the run is not a pre-commit hook (pre-commit sets ``PRE_COMMIT`` and
captures a hook's output, through a terminal when colour is on) nor a recipe of make (which
sets ``MAKELEVEL``; its other jobs write to the same terminal), and ``JOBSTAMPS_PROGRESS``
does not turn it off. It appears once a run has taken :data:`DELAY` seconds, changes at most every
:data:`EVERY` seconds, and is erased before anything else is written and at the end, so the
screen reads as it would without it.
"""

from __future__ import annotations

import os
import time

from jobstamps import settings

__all__ = ["DELAY", "EVERY", "Progress", "wanted"]

#: Seconds a run takes before a progress line appears: quick runs show none.
DELAY = 1.0
#: Seconds at least between two updates of the line.
EVERY = 0.1
_ERASE = b"\r\x1b[K"  # to the start of the line, then erase it


def wanted(fd: int = 2) -> bool:
    """Whether a progress line on ``fd`` would be seen by a person, and only by one."""
    if settings.no_progress() or os.environ.get("PRE_COMMIT") or "MAKELEVEL" in os.environ:
        return False
    if os.environ.get("TERM") == "dumb":
        return False
    try:
        return os.isatty(fd)
    except OSError:
        return False


class Progress:
    """One line of progress on standard error, drawn with :meth:`draw` when :meth:`due`."""

    def __init__(self, fd: int = 2) -> None:
        self.fd = fd
        self.on = wanted(fd)
        self.next = time.monotonic() + DELAY  # no line before this time
        self.drawn = False
        self.line = b""  # the line shown

    def due(self) -> bool:
        """Whether the line should be drawn (or changed) now."""
        return self.on and time.monotonic() >= self.next

    def draw(self, text: str) -> None:
        """Show ``text`` in place of the line, cut to the terminal's width."""
        try:
            width = os.get_terminal_size(self.fd).columns or 80  # 0: a size nobody set
        except OSError:
            width = 80
        line = text[: width - 1].encode("utf-8", "replace")
        if not self.drawn or line != self.line:
            self._write(b"\r" + line + b"\x1b[K")
        self.drawn, self.line = True, line
        self.next = time.monotonic() + EVERY

    def clear(self) -> None:
        """Erase the line, if one is shown, so that other output starts at the left."""
        if self.drawn:
            self.drawn = False
            self._write(_ERASE)

    def close(self) -> None:
        """Erase the line and draw no other."""
        self.clear()
        self.on = False

    def _write(self, data: bytes) -> None:
        try:
            while data:
                data = data[os.write(self.fd, data) :]
        except OSError:
            self.on = False  # the terminal went away: nothing more to show there
