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
    follows for that stream is dropped and everything else goes on.
    """

    def __init__(self) -> None:
        self.broken: set[int] = set()

    def write(self, fd: int, data: bytes | memoryview) -> None:
        """Write all of ``data`` to ``fd`` unless its reader is gone."""
        if fd in self.broken:
            return
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(fd, view) :]
        except OSError:
            self.broken.add(fd)


def replay(payload: dict[str, Any], store: Store) -> int:
    """Write the recorded output of ``payload`` to stdout/stderr; return its exit status.

    Stored output of the wrong size raises :class:`ReplayError` before anything is written.
    """
    chunks = payload["chunks"]
    total = sum(size for _, size in chunks)
    writer = Writer()
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
        source = os.open(store.blob_path(payload["blob"]), os.O_RDONLY)
    except OSError as error:
        raise ReplayError(f"stored output is missing ({error.strerror})") from None
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
