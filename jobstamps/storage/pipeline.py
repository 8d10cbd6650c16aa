"""Many GETs pipelined over one HTTP/1.1 keep-alive connection, read by a strict parser.

No maintained Python HTTP client pipelines requests, and asking thousands of small entries one
request at a time costs far more in Python than on the server. A :class:`Lane` sends a window of
requests, reads the answers as they come and sends more as they are read, so neither side's
buffers fill up. It reads only what it is sure of: a status line, headers, a body framed by
``Content-Length``. Anything else (a chunked or unframed body, a 1xx, a status line that is not
HTTP/1.x, an overlong head) raises :class:`Unsuitable`; the caller then asks for what is left
one request at a time (:mod:`http.client`).
"""

from __future__ import annotations

import re
import time
from collections import deque

from jobstamps.storage.backend import CHUNK, RemoteError, status_error

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket
    import threading
    from collections.abc import Callable

__all__ = ["MAX_HEAD", "WINDOW", "Lane", "Unsuitable", "parse_head"]

#: Requests in flight per connection: a few kB of requests, which any socket buffer holds.
WINDOW = 64
#: The longest head (status line and headers) read; a longer one is not a cache's answer.
MAX_HEAD = 32 << 10
_RECEIVE = 64 << 10
_ABSENT = 404
_GONE = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)
#: A status line and header lines, strictly: token names, no bare CR or LF, no folded lines.
_HEAD = re.compile(
    rb"HTTP/1\.([01]) ([0-9]{3})(?: ([^\r\n]*))?"
    rb"((?:\r\n[-!#$%&'*+.^_`|~0-9A-Za-z]+:[^\r\n\x00]*)*)"
)
_FIELDS = re.compile(
    rb"\r\n(content-length|transfer-encoding|connection):([^\r\n]*)", re.IGNORECASE
)


class Unsuitable(Exception):  # noqa: N818 - a verdict on the server, not an error to report
    """The server answered in a way this reader does not handle for sure: do not pipeline."""


def parse_head(head: bytes) -> tuple[int, str, int | None, bool]:
    """Read a response's status line and headers (without the blank line that ends them).

    Returns the status, its reason, the ``Content-Length`` (``None`` when there is none) and
    whether the server closes the connection after this answer. Raises :class:`Unsuitable`
    for anything but a plain HTTP/1.0 or 1.1 answer.
    """
    match = _HEAD.fullmatch(head)
    if match is None:
        raise Unsuitable(f"an answer starting {head[:80]!r}")
    minor, code, reason, fields = match.groups()
    status = int(code)
    if status < 200 or status == 204:  # noqa: PLR2004 - informational, no content
        raise Unsuitable(f"status {status}")
    length: int | None = None
    tokens: list[bytes] = []
    for name, value in _FIELDS.findall(fields):
        field = name.lower()
        if field == b"content-length":
            number = value.strip(b" \t")
            if not number.isdigit() or (length is not None and int(number) != length):
                raise Unsuitable("a Content-Length that is not one number")
            length = int(number)
        elif field == b"transfer-encoding":
            raise Unsuitable("Transfer-Encoding")
        else:
            tokens += value.lower().replace(b"\t", b"").replace(b" ", b"").split(b",")
    closing = b"close" in tokens or (minor == b"0" and b"keep-alive" not in tokens)
    return status, (reason or b"").decode("latin-1"), length, closing


def _check_partial_head(rest: bytes) -> None:
    """Raise :class:`Unsuitable` early for the start of a head that cannot end well."""
    if not b"HTTP/".startswith(rest[:5]) or len(rest) > MAX_HEAD or b"\n\n" in rest:
        raise Unsuitable(f"an answer starting {rest[:40]!r}")


class _Reader:
    """The answers on one connection, parsed as the bytes arrive."""

    def __init__(self, lane: Lane) -> None:
        self.lane = lane
        self.buffer = b""
        self.body: list[bytes] | None = None  # the answer being read: its body so far
        self.status = self.left = self.answered = 0
        self.closing = False

    @property
    def started(self) -> bool:
        """Whether part of an answer has arrived."""
        return self.body is not None or bool(self.buffer)

    def feed(self, data: bytes) -> bool:
        """Take in ``data``; return whether the server closes after the answer just read."""
        position = 0
        if self.body is not None:  # more of a large body: no copying of the buffer
            take = data[: self.left]
            self.body.append(take)
            self.left -= len(take)
            if self.left:
                return False
            position = len(take)
            self._done()
            if self.closing:
                return True
            buffer = data
        else:
            buffer = self.buffer + data if self.buffer else data
        while True:
            end = buffer.find(b"\r\n\r\n", position)
            if end < 0:
                _check_partial_head(buffer[position:])
                break
            self._head(buffer[position:end])
            position = end + 4
            take = buffer[position : position + self.left]
            self.body = [take]
            position += len(take)
            self.left -= len(take)
            if self.left:
                break
            self._done()
            if self.closing:
                return True
        self.buffer = buffer[position:]
        return False

    def _head(self, head: bytes) -> None:
        if not self.lane.inflight:
            raise RemoteError("GET failed: the server answered more than it was asked")
        self.status, reason, length, self.closing = parse_head(head)
        what = self.lane.what
        if self.status != _ABSENT and not 200 <= self.status < 300:  # noqa: PLR2004 - success
            raise status_error(what(), self.status, reason)
        if length is None:
            raise Unsuitable("an answer without Content-Length")
        if length > self.lane.limit:
            raise RemoteError(f"{what()}: {length} bytes is more than expected")
        self.left = length

    def _done(self) -> None:
        body, self.body = self.body or [], None
        self.answered += 1
        self.lane.answer(self.status, body[0] if len(body) == 1 else b"".join(body))


class Lane:
    """One connection's share of a batch of GETs: ``requests`` maps each key to its request.

    :meth:`run` puts each 2xx body into ``found`` (404: absent), counting :attr:`answers` and
    :attr:`received` bytes; on return or exception the keys not answered are :attr:`pending`.
    """

    def __init__(
        self,
        requests: dict[str, bytes],
        found: dict[str, bytes],
        stop: threading.Event,
        timeout: float,
        limit: int,
    ) -> None:
        self.requests = requests
        self.found = found
        self.stop = stop
        self.timeout = timeout
        self.limit = limit
        self.window = WINDOW
        self.pending: deque[str] = deque(requests)
        self.inflight: deque[str] = deque()
        self.answers = 0
        self.received = 0

    def run(
        self,
        connect: Callable[[], tuple[socket.socket, bool]],
        release: Callable[[socket.socket], None],
    ) -> None:
        """Ask for every key until all are answered or :attr:`stop` is set.

        ``connect`` gives a connection (and ``True`` for one used before), ``release`` takes
        back one with nothing left on it. Raises :class:`RemoteError` or :class:`Unsuitable`.
        """
        while self.pending and not self.stop.is_set():
            sock, reused = connect()
            clean = False
            try:
                clean = self._session(sock, reused)
            finally:
                self.pending.extendleft(reversed(self.inflight))
                self.inflight.clear()
                if clean:
                    release(sock)
                else:
                    sock.close()

    def what(self) -> str:
        """Name the request answered next, for messages."""
        request = self.requests[self.inflight[0]]
        return "GET " + request[4 : request.index(b" ", 4)].decode("ascii")

    def answer(self, status: int, body: bytes) -> None:
        """Take the answer to the oldest request in flight."""
        key = self.inflight.popleft()
        self.answers += 1
        if status != _ABSENT:
            self.found[key] = body
            self.received += len(body)

    def _session(self, sock: socket.socket, reused: bool) -> bool:
        """Talk over ``sock`` until every key is answered (``True``: it is clean for reuse).

        ``False`` when the connection ends or :attr:`stop` is set; what is in flight then goes
        back to pending.
        """
        reader = _Reader(self)
        deadline = time.monotonic() + self.timeout
        since = 0
        while self.pending or self.inflight:
            if self.stop.is_set():
                return False
            data = self._exchange(sock, deadline, reader)
            if not data:
                if reader.started:
                    raise RemoteError(f"{self.what()}: the answer was cut short")
                if not reader.answered and not reused:
                    if len(self.inflight) > 1:  # perhaps for being sent several at once
                        raise Unsuitable("a connection closed before the first answer")
                    raise RemoteError("GET failed: the server closed the connection unanswered")
                self._shrink(reader.answered, reused)
                return False
            answered = reader.answered
            closing = reader.feed(data)
            since += len(data)
            if reader.answered != answered or since >= CHUNK:
                since = 0
                deadline = time.monotonic() + self.timeout
            if closing:
                self._shrink(reader.answered, reused)
                return False
        return not reader.buffer

    def _exchange(self, sock: socket.socket, deadline: float, reader: _Reader) -> bytes:
        """Send requests while the window has room, then receive what comes (b"": closed)."""
        room = self.window - len(self.inflight)
        try:
            if room > 0 and self.pending:
                batch = [self.pending.popleft() for _ in range(min(room, len(self.pending)))]
                self.inflight.extend(batch)
                sock.settimeout(max(deadline - time.monotonic(), 1e-3))
                sock.sendall(b"".join([self.requests[key] for key in batch]))
            sock.settimeout(max(deadline - time.monotonic(), 1e-3))
            return sock.recv(_RECEIVE)
        except TimeoutError:
            why = "no complete answer" if reader.started else "no answer"
            raise RemoteError(
                f"{self.what()}: {why} within {self.timeout:g} s", down=True
            ) from None
        except _GONE:
            return b""
        except OSError as error:
            why = getattr(error, "strerror", None) or str(error) or type(error).__name__
            raise RemoteError(f"GET failed: {why}") from None

    def _shrink(self, answered: int, reused: bool) -> None:
        """Send no more than ``answered`` at once: the server closed after that many.

        Not for a connection used before: the server counted its earlier requests too.
        """
        if answered and not reused:
            self.window = min(self.window, answered)
