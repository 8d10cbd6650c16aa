"""A file's result in per-file mode: its own lines, and its run's lines of no file in place.

What is stored for each file of a run, and how it is written back: the file's lines as
chunks (as every stored result holds them); with lines of no file in the run, the run's
token and the number of files that took their results from it, the lines of no file just
before each of the file's lines (``gaps``, at byte offsets into its own output) and, for the
run's last file, those after every file's lines (``tail``, a summary).
"""

from __future__ import annotations

from jobstamps.engine import ReplayError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from jobstamps.attribution import Line

    #: A stored result: ``{"code": status, "chunks": [(stream, size), ...], "data": bytes}``,
    #: with ``shared``, ``run``, ``gaps`` and ``tail`` where they apply.
    Payload = dict[str, Any]

__all__ = ["check", "layout", "make", "pieces"]


def _chunks(lines: Sequence[Line]) -> tuple[list[tuple[int, int]], bytes]:
    """Return the chunks and bytes that write ``lines`` back in order."""
    chunks: list[tuple[int, int]] = []
    for fd, data in lines:
        if chunks and chunks[-1][0] == fd:
            chunks[-1] = (fd, chunks[-1][1] + len(data))
        else:
            chunks.append((fd, len(data)))
    return chunks, b"".join(data for _, data in lines)


def make(code: int, lines: Sequence[Line], shared: list[Any] | None = None) -> Payload:
    """Make a stored result; ``shared`` marks a failure whose status other files shared."""
    chunks, data = _chunks(lines)
    payload = {"code": code, "chunks": chunks, "data": data}
    if shared and code:
        payload["shared"] = shared
    return payload


def layout(
    lines: Sequence[Line], owner_of: Sequence[int | None], members: Sequence[int]
) -> tuple[dict[int, list[Line]], dict[int, list[Any]], list[Line]]:
    """Divide a run's lines among its ``members`` (positions in the run, in order).

    Returns each member's lines; each member's gaps, the lines of no file just before one of
    its lines, as ``[offset, stream, bytes]`` (``offset``: the bytes of its own lines before
    them); and the lines of no file after the last line of any file (a summary).
    """
    own: dict[int, list[Line]] = {member: [] for member in members}
    sizes = dict.fromkeys(members, 0)
    gaps: dict[int, list[Any]] = {member: [] for member in members}
    pending: list[Line] = []
    for line, owner in zip(lines, owner_of, strict=True):
        if owner is None or owner not in own:
            pending.append(line)
            continue
        for fd, data in pending:
            last = gaps[owner][-1] if gaps[owner] else None
            if last is not None and last[0] == sizes[owner] and last[1] == fd:
                last[2] += data
            else:
                gaps[owner].append([sizes[owner], fd, data])
        pending = []
        own[owner].append(line)
        sizes[owner] += len(line[1])
    return own, gaps, pending


def pieces(result: Payload, gaps: Sequence[Any]) -> list[tuple[int, bytes]]:
    """Return what writes a result: its own chunks, with ``gaps`` at their offsets."""
    data = result["data"]
    pieces: list[tuple[int, bytes]] = []
    position = 0
    waiting = list(gaps)
    for fd, size in result["chunks"]:
        end = position + size
        while True:
            while waiting and waiting[0][0] <= position:
                _, gap_fd, text = waiting.pop(0)
                pieces.append((gap_fd, text))
            stop = min(end, waiting[0][0]) if waiting else end
            if stop > position:
                pieces.append((fd, data[position:stop]))
                position = stop
            if position >= end:
                break
    pieces.extend((fd, text) for _, fd, text in waiting)
    return pieces


def check(payload: Payload) -> None:
    """Raise :class:`ReplayError` unless ``payload`` is a whole stored result."""
    try:
        size = len(payload["data"])
        whole = sum(chunk for _, chunk in payload["chunks"]) == size
        whole = whole and isinstance(payload["code"], int)
        if whole and len(payload) > 3:  # noqa: PLR2004 - more than code, chunks and data
            whole = _run_intact(payload, size)
    except (KeyError, TypeError, ValueError):
        whole = False
    if not whole:
        raise ReplayError("the stored output is malformed")


def _run_intact(payload: Payload, size: int) -> bool:
    """Whether the run a result came from, and its lines of no file, are recorded whole."""
    gaps = payload.get("gaps", [])
    offsets = [o for o, fd, data in gaps if isinstance(o, int) and fd and isinstance(data, bytes)]
    whole = len(offsets) == len(gaps)
    whole = whole and offsets == sorted(offsets) and all(0 <= o <= size for o in offsets)
    whole = whole and all(fd and isinstance(data, bytes) for fd, data in payload.get("tail", []))
    if "run" in payload:
        token, members = payload["run"]
        whole = whole and isinstance(token, str) and isinstance(members, int)
    return whole
