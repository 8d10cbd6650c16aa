"""Write a recorded run back: the same bytes to the same streams, in the same order."""

from __future__ import annotations

import os

from jobstamps.engine import ReplayError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from jobstamps.store import Store

__all__ = ["Writer", "replay"]

_BLOCK = 1 << 20


class Writer:
    """Writes whole buffers to file descriptors, giving up on one whose reader went away.

    A closed pipe (``jobstamp ... | head``) is the reader's choice, not a failure: what
    follows for that stream is dropped and everything else goes on. Any other write error (a
    full disk, an I/O error) is a failure: it is kept in :attr:`failed`, for the caller to
    report, and that stream gets nothing more. A non-blocking descriptor is waited on until
    it takes everything (``select``, as a blocking write would wait).
    """

    def __init__(self) -> None:
        self.broken: set[int] = set()
        self.failed: dict[int, str] = {}  # fd -> why writing to it failed

    def write(self, fd: int, data: bytes | memoryview) -> None:
        """Write all of ``data`` to ``fd`` unless its reader is gone or writing failed."""
        if fd in self.broken or fd in self.failed:
            return
        view = memoryview(data)
        try:
            while view:
                try:
                    view = view[os.write(fd, view) :]
                except BlockingIOError:  # noqa: PERF203 - rare; the write is retried
                    _wait_writable(fd)
        except BrokenPipeError:
            self.broken.add(fd)
        except OSError as error:
            self.failed[fd] = error.strerror or str(error)

    def problem(self) -> str:
        """Say in one line which stream could not be written, and why; ``""`` if none."""
        for fd, why in sorted(self.failed.items()):
            name = {1: "standard output", 2: "standard error"}.get(fd, f"descriptor {fd}")
            return f"cannot write {name} ({why})"
        return ""


def _wait_writable(fd: int) -> None:
    import select

    select.select([], [fd], [])


def replay(payload: dict[str, Any], store: Store, writer: Writer | None = None) -> int:
    """Write the recorded output of ``payload`` to stdout/stderr; return its exit status.

    Stored output of the wrong size raises :class:`ReplayError` before anything is written.
    Pass a ``writer`` to learn afterwards whether writing failed.
    """
    chunks = payload["chunks"]
    total = sum(size for _, size in chunks)
    writer = writer or Writer()
    if "blob" not in payload:
        data = memoryview(payload["data"])
        if len(data) != total:
            raise ReplayError("stored output has the wrong size")
        offset = 0
        for fd, size in chunks:
            writer.write(fd, data[offset : offset + size])
            offset += size
        return int(payload["code"])
    if not store.blob_intact(payload["blob"]):
        raise ReplayError("stored output is damaged")
    try:
        source = store.open_blob(payload["blob"])
    except OSError as error:
        raise ReplayError(f"stored output is missing ({error.strerror or error})") from None
    try:
        if os.fstat(source).st_size != total:
            raise ReplayError("stored output has the wrong size")
        for fd, size in chunks:
            left = size
            while left > 0:
                block = os.read(source, min(left, _BLOCK))
                if not block:
                    raise ReplayError("stored output ended early")
                writer.write(fd, block)
                left -= len(block)
    finally:
        os.close(source)
    return int(payload["code"])
