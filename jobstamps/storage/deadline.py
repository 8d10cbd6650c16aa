"""Deadlines for a remote's requests: connecting, sending and the whole answer, not each read.

A timeout per read lets a server that sends a byte now and then hold a request, and the build,
forever. A request here runs :func:`within` a deadline of the calling thread, and the sockets
it uses are :func:`guard`-ed: each send and receive gets the time left as its timeout and
fails with :class:`TimeoutError` once none is left, whichever library drives the socket
(``http.client``, redis-py). Every :data:`~jobstamps.storage.backend.CHUNK` bytes moved gives
the request another ``seconds``, up to the ``stretch`` bytes it may move, so a large blob may
take longer than one timeout, a slow one may not, and an endless answer never keeps a request
alive. Connecting (the name lookup included) keeps to the deadline too: see :func:`connect`.
"""

from __future__ import annotations

import socket
import threading
import time

from jobstamps.storage.backend import CHUNK

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["Deadline", "connect", "guard", "within"]

_local = threading.local()


class Deadline:
    """When the current request must be over: ``seconds`` from its start or last progress.

    Progress is a :data:`CHUNK` of bytes moved, within the first ``stretch`` bytes. As a
    context manager (spelt :data:`within`), it is the deadline of the calling thread's
    guarded sockets for the block.
    """

    __slots__ = ("at", "moved", "previous", "seconds", "stretch")

    def __init__(self, seconds: float, stretch: int = 0) -> None:
        self.seconds = seconds
        self.at = _monotonic() + seconds
        self.moved = 0
        self.stretch = stretch
        self.previous: Deadline | None = None

    def __enter__(self) -> None:
        self.previous = getattr(_local, "deadline", None)
        _local.deadline = self

    def __exit__(self, *_: object) -> None:
        _local.deadline = self.previous

    def progress(self, count: int) -> int:
        """Count ``count`` bytes moved (and return it); a :data:`CHUNK` renews the deadline."""
        self.moved += count
        if self.moved >= CHUNK and self.stretch >= CHUNK:
            self.moved -= CHUNK
            self.stretch -= CHUNK
            self.at = _monotonic() + self.seconds
        return count


#: ``with within(seconds, stretch):`` runs the block under that :class:`Deadline`.
within = Deadline
_monotonic = time.monotonic


def _limit(sock: socket.socket) -> Deadline | None:
    """Give ``sock`` the time left before this thread's deadline as its timeout."""
    deadline: Deadline | None = getattr(_local, "deadline", None)
    if deadline is not None and sock.gettimeout() != 0:  # a non-blocking peek stays one
        left = deadline.at - _monotonic()
        if left <= 0:
            raise TimeoutError(f"not done within {deadline.seconds:g} s")
        socket.socket.settimeout(sock, left)
    return deadline


if TYPE_CHECKING:
    _Base = socket.socket
else:
    _Base = object  # a mixin: ssl.SSLSocket is another layout than socket.socket


class _Keeping(_Base):
    """Sending and receiving that keep to the thread's deadline, for a kind of socket."""

    __slots__ = ()

    def recv(self, *args: Any) -> bytes:
        deadline = _limit(self)
        data = super().recv(*args)
        if deadline is not None:
            deadline.progress(len(data))
        return data

    def recv_into(self, *args: Any) -> int:
        deadline = _limit(self)
        count = super().recv_into(*args)
        return count if deadline is None else deadline.progress(count)

    def send(self, *args: Any) -> int:
        deadline = _limit(self)
        count = super().send(*args)
        return count if deadline is None else deadline.progress(count)


class _Guarded(_Keeping, socket.socket):
    """A socket that keeps to its thread's deadline (see :func:`guard`)."""

    __slots__ = ()

    def sendall(self, data: Any, *args: Any) -> None:
        deadline = _limit(self)
        super().sendall(data, *args)
        if deadline is not None:
            deadline.progress(memoryview(data).nbytes)


_tls_class: list[type[socket.socket]] = []


def _guarded_tls() -> type[socket.socket]:
    """Return the guarded kind of ``ssl.SSLSocket`` (made once: ``ssl`` loads only for TLS).

    Its ``sendall`` sends through ``send``, which keeps to the deadline.
    """
    if not _tls_class:
        import ssl

        class _GuardedTLS(_Keeping, ssl.SSLSocket):
            pass

        _tls_class.append(_GuardedTLS)
    return _tls_class[0]


def guard(sock: socket.socket) -> socket.socket:
    """Make ``sock`` keep to the deadline of the thread using it; return it.

    The same object, changed in kind only (the subclasses add no state), so that it can be
    done to a socket any library made.
    """
    import sys

    ssl = sys.modules.get("ssl")
    if ssl is not None and isinstance(sock, ssl.SSLSocket):
        if not isinstance(sock, _guarded_tls()):
            sock.__class__ = _guarded_tls()
    elif type(sock) is socket.socket:
        sock.__class__ = _Guarded
    return sock


def connect(host: str, port: int, timeout: float) -> socket.socket:
    """Open a guarded TCP connection to ``host``, within ``timeout`` and the deadline.

    The name is looked up in a thread of its own, so that a resolver that does not answer
    is waited for no longer than the rest.
    """
    deadline: Deadline | None = getattr(_local, "deadline", None)
    end = time.monotonic() + timeout
    if deadline is not None:
        end = min(end, deadline.at)
    addresses = _resolve(host, port, end)
    error: OSError | None = None
    for family, kind, protocol, _, address in addresses:
        left = end - time.monotonic()
        if left <= 0:
            break
        sock = socket.socket(family, kind, protocol)
        try:
            sock.settimeout(left)
            sock.connect(address)
        except OSError as failure:
            sock.close()
            error = failure
            continue
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return guard(sock)
    if error is not None and not isinstance(error, TimeoutError):
        raise error
    raise TimeoutError(f"no connection within {timeout:g} s")


def _resolve(host: str, port: int, end: float) -> list[Any]:
    """Look ``host`` up, giving up at ``end`` (monotonic time)."""
    try:  # an address needs no lookup
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
    except socket.gaierror:
        pass
    found: list[Any] = []

    def look_up() -> None:
        try:
            found.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except OSError as error:
            found.append(error)

    thread = threading.Thread(target=look_up, name="jobstamps-resolve", daemon=True)
    thread.start()
    thread.join(max(end - time.monotonic(), 0))
    if not found:
        raise TimeoutError(f"the name {host} was not looked up in time")
    if isinstance(found[0], OSError):
        raise found[0]
    result: list[Any] = found[0]
    return result
