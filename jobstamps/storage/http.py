"""A remote cache on any HTTP server that answers GET, PUT and HEAD.

nginx with WebDAV (``dav_methods PUT; create_full_put_path on;``), Apache ``mod_dav``,
bazel-remote and most artifact stores will do. Paths under the URL's path, by layout:

=========  ============================  ===================================
layout     entry for key ``K``           blob with sha256 ``D``
=========  ============================  ===================================
subdirs    ``/K[:2]/K[2:]`` (ccache's)   ``/cas/D[:2]/D[2:]``
flat       ``/K``                        ``/cas/D``
bazel      ``/ac/<sha256 of K>``         ``/cas/D`` (bazel's content store)
=========  ============================  ===================================

Bazel's action cache wants 64 hex digits, so the bazel layout names an entry by the sha256 of
its key (the record inside still names the key itself). bazel-remote checks that what is
PUT under ``/ac/`` is an ActionResult message unless started with
``--disable_http_ac_validation``; ``/cas/`` it checks against the sha256, which holds.

A batch of lookups (the per-file mode asks for thousands of entries at once) is pipelined:
up to ``connections`` keep-alive connections, each with a window of GETs in flight, answered
in order and read by the strict reader of :mod:`jobstamps.storage.pipeline`. A server that
closes a connection (``keepalive_requests``, HTTP/1.0) is asked again on a new one for what it
left unanswered. An answer that reader does not handle for sure (chunked, no length, not
HTTP/1.x) sends the rest of the batch, and every later one, one request at a time through
``http.client``, as single lookups, blobs, PUT and HEAD always go: each worker thread keeps
its own keep-alive connection. Credentials: ``user:password@`` in the URL (basic
authentication) or a bearer token (``JOBSTAMPS_REMOTE_TOKEN``).
"""

from __future__ import annotations

import hashlib
import http.client
import threading

from jobstamps.storage.backend import CHUNK, Backend, RemoteError, status_error
from jobstamps.storage.deadline import connect, guard, within

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket
    import ssl
    from collections.abc import Callable, Sequence
    from concurrent.futures import ThreadPoolExecutor
    from typing import BinaryIO

    from jobstamps.storage.backend import RemoteStats
    from jobstamps.storage.remote_settings import Settings

__all__ = ["HttpBackend"]

#: The most an entry may weigh (records are far smaller; this bounds a hostile answer).
MAX_ENTRY = 8 << 20
_ABSENT = 404
#: Bytes of request and answer heads a request may move beyond its bodies.
_HEAD_ROOM = 1 << 16
_GONE = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)


class _Upload:
    """A file-like view of ``size`` bytes of ``source``, counting what was sent.

    The request's deadline (see :mod:`jobstamps.storage.deadline`) moves on with every
    :data:`CHUNK` sent: large blobs may take longer than one timeout, slow ones may not.
    """

    def __init__(self, source: BinaryIO, size: int) -> None:
        self._source = source
        self._left = size
        self.sent = 0

    def read(self, amount: int = -1) -> bytes:
        amount = self._left if amount < 0 else min(amount, self._left)
        data = self._source.read(amount)
        if len(data) < amount:
            raise RemoteError("the file to upload got shorter while it was sent")
        self._left -= len(data)
        self.sent += len(data)
        return data


class HttpBackend(Backend):
    """Entries and blobs as files on an HTTP server (see the module's table of layouts)."""

    def __init__(self, settings: Settings, stats: RemoteStats | None = None) -> None:
        import base64
        from urllib.parse import quote, urlsplit

        super().__init__(stats)
        parts = urlsplit(settings.url)
        self.name = settings.name
        self._https = parts.scheme.lower() == "https"
        self._host = parts.hostname or ""
        self._port = parts.port
        self._base = quote(parts.path.rstrip("/"), safe="/%")
        self._layout = settings.layout
        self._timeout = settings.timeout
        self._connect_timeout = settings.connect_timeout
        self._workers = settings.connections
        self._headers = {"User-Agent": "jobstamps", "Accept-Encoding": "identity"}
        if settings.token:
            self._headers["Authorization"] = f"Bearer {settings.token}"
        elif settings.username is not None:
            from urllib.parse import unquote

            pair = f"{unquote(settings.username)}:{unquote(settings.password or '')}"
            self._headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[http.client.HTTPConnection] = []
        self._pool: ThreadPoolExecutor | None = None
        self._pipelining = True  # until a server's answer says it does not suit
        self._idle: list[socket.socket] = []  # pipelining connections with nothing on them
        self._tls: ssl.SSLContext | None = None
        self._busy: set[socket.socket] = set()  # sockets of the requests under way
        self._closed = threading.Event()

    # -- paths ----------------------------------------------------------------------------

    def entry_path(self, key: str) -> str:
        """Return the URL path of the entry for ``key``."""
        _check_name(key)
        if self._layout == "bazel":
            return f"{self._base}/ac/{hashlib.sha256(key.encode()).hexdigest()}"
        if self._layout == "flat":
            return f"{self._base}/{key}"
        return f"{self._base}/{key[:2]}/{key[2:]}"

    def blob_path(self, digest: str) -> str:
        """Return the URL path of the blob named ``digest``."""
        _check_name(digest)
        if self._layout == "subdirs":
            return f"{self._base}/cas/{digest[:2]}/{digest[2:]}"
        return f"{self._base}/cas/{digest}"

    # -- the interface --------------------------------------------------------------------

    def get_entries(self, keys: Sequence[str]) -> dict[str, bytes]:
        """Fetch many entries, pipelined over up to ``connections`` keep-alive connections."""
        keys = list(dict.fromkeys(keys))
        if len(keys) == 1:
            data = self._get(self.entry_path(keys[0]))
            return {} if data is None else {keys[0]: data}
        if not self._pipelining:
            return self._get_each(keys)
        found: dict[str, bytes] = {}
        try:
            rest = self._get_pipelined(keys, found)
        except RemoteError as error:
            raise RemoteError(
                str(error), refused=error.refused, partial=found, down=error.down
            ) from None
        if rest:  # the server does not suit pipelining: the rest, and from now on, one by one
            self._pipelining = False
            try:
                found.update(self._get_each(rest))
            except RemoteError as error:
                found.update(error.partial)
                raise RemoteError(
                    str(error), refused=error.refused, partial=found, down=error.down
                ) from None
        return found

    def put_entry(self, key: str, data: bytes) -> None:
        """PUT the entry."""
        import io

        self._put(self.entry_path(key), io.BytesIO(data), len(data))

    def get_blob(self, digest: str, sink: Callable[[bytes], object], limit: int) -> bool:
        """GET the blob, passing it on a chunk at a time."""
        return self._request("GET", self.blob_path(digest), sink=sink, limit=limit) != _ABSENT

    def put_blob(self, digest: str, source: BinaryIO, size: int) -> None:
        """PUT the blob, streamed from ``source``."""
        self._put(self.blob_path(digest), source, size)

    def has_blobs(self, digests: Sequence[str]) -> set[str]:
        """HEAD each blob, several at once."""
        digests = list(dict.fromkeys(digests))
        statuses = self._executor().map(
            lambda digest: self._request("HEAD", self.blob_path(digest)), digests
        )
        return {
            digest for digest, status in zip(digests, statuses, strict=True) if status != _ABSENT
        }

    def close(self) -> None:
        """Stop the workers and close every connection, cutting off requests still under way.

        Their sockets are shut down, so that threads waiting on them (uploads dropped at the
        deadline) end now rather than keep the process alive.
        """
        import contextlib
        import socket

        with self._lock:
            self._closed.set()
            busy = list(self._busy)
        for sock in busy:
            with contextlib.suppress(OSError):  # not TLS's shutdown: no goodbye to send
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        with self._lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            connection.close()
        with self._lock:
            idle, self._idle = self._idle, []
        for sock in idle:
            sock.close()

    # -- requests -------------------------------------------------------------------------

    def _get_pipelined(self, keys: list[str], found: dict[str, bytes]) -> list[str]:
        """Fetch entries into ``found``, a :class:`Lane` per connection.

        Returns the keys left unanswered because the server does not suit pipelining (none
        when all were answered).
        """
        from jobstamps.storage.pipeline import WINDOW, Lane, Unsuitable

        tail = self._request_tail()
        requests = [(key, b"GET " + self.entry_path(key).encode("ascii") + tail) for key in keys]
        count = min(self._workers, -(-len(keys) // WINDOW))
        stop = threading.Event()
        lanes = [
            Lane(dict(requests[index::count]), found, stop, self._timeout, MAX_ENTRY)
            for index in range(count)
        ]
        errors: list[RemoteError] = []
        unsuitable = threading.Event()

        def drive(lane: Lane) -> None:
            try:
                lane.run(self._socket, self._release)
            except Unsuitable:
                unsuitable.set()
                stop.set()
            except RemoteError as error:
                errors.append(error)
                stop.set()
            except BaseException:
                stop.set()
                raise
            finally:
                self.stats.add(requests=lane.answers, bytes_down=lane.received)

        futures = [self._executor().submit(drive, lane) for lane in lanes[1:]]
        try:
            drive(lanes[0])
        finally:
            for future in futures:
                future.result()
        if errors:
            raise errors[0]
        return [key for lane in lanes for key in lane.pending] if unsuitable.is_set() else []

    def _request_tail(self) -> bytes:
        """Return what follows the path in a pipelined GET: the version and the headers."""
        try:
            host = self._host.encode("ascii")
        except UnicodeEncodeError:
            host = self._host.encode("idna")
        if b":" in host:
            host = b"[" + host + b"]"
        if self._port is not None:
            host += b":%d" % self._port
        fields = "".join(f"{name}: {value}\r\n" for name, value in self._headers.items())
        return b" HTTP/1.1\r\nHost: " + host + b"\r\n" + fields.encode("latin-1") + b"\r\n"

    def _socket(self) -> tuple[socket.socket, bool]:
        """Return an idle pipelining connection, or a new one; and whether it was used before."""
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        try:
            sock = connect(
                self._host, self._port or (443 if self._https else 80), self._connect_timeout
            )
        except ConnectionRefusedError:
            raise RemoteError("connection refused", refused=True) from None
        except TimeoutError:
            raise RemoteError(f"no answer within {self._connect_timeout:g} s", down=True) from None
        except OSError as error:  # not reachable: no route, no such host
            raise RemoteError(f"GET failed: {_why(error)}", down=True) from None
        if not self._https:
            return sock, False
        import ssl

        try:
            if self._tls is None:
                self._tls = ssl.create_default_context()
            return guard(self._tls.wrap_socket(sock, server_hostname=self._host)), False
        except TimeoutError:
            sock.close()
            raise RemoteError(f"no answer within {self._connect_timeout:g} s", down=True) from None
        except OSError as error:
            sock.close()
            raise RemoteError(f"GET failed: {_why(error)}") from None

    def _release(self, sock: socket.socket) -> None:
        with self._lock:
            self._idle.append(sock)

    def _get_each(self, keys: list[str]) -> dict[str, bytes]:
        """Fetch each entry with a request of its own, on the worker threads' connections."""
        from concurrent.futures import as_completed

        failed = threading.Event()

        def one(key: str) -> bytes | None:
            if failed.is_set():
                return None
            try:
                return self._get(self.entry_path(key))
            except RemoteError:
                failed.set()
                raise

        futures = {self._executor().submit(one, key): key for key in keys}
        found: dict[str, bytes] = {}
        first: RemoteError | None = None
        for future in as_completed(futures):
            try:
                data = future.result()
            except RemoteError as error:
                first = first or error
                continue
            if data is not None:
                found[futures[future]] = data
        if first is not None:
            raise _keeping(first, found)
        return found

    def _executor(self) -> ThreadPoolExecutor:
        from concurrent.futures import ThreadPoolExecutor

        with self._lock:
            if self._closed.is_set():
                raise RemoteError("closed")
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="jobstamps-http")
            return self._pool

    def _get(self, path: str) -> bytes | None:
        pieces: list[bytes] = []
        status = self._request("GET", path, sink=pieces.append, limit=MAX_ENTRY)
        return None if status == _ABSENT else b"".join(pieces)

    def _put(self, path: str, source: BinaryIO, size: int) -> None:
        status = self._request("PUT", path, body=(source, size))
        if status == _ABSENT:
            raise RemoteError(f"PUT {path} answered 404 (does the server accept uploads?)")

    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        """Return this thread's connection, and whether it was used before."""
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is not None and connection.sock is not None:
            return connection, True
        if connection is None:
            if self._https:
                import ssl

                connection = http.client.HTTPSConnection(
                    self._host,
                    self._port,
                    timeout=self._connect_timeout,
                    context=ssl.create_default_context(),
                    blocksize=CHUNK,
                )
            else:
                connection = http.client.HTTPConnection(
                    self._host, self._port, timeout=self._connect_timeout, blocksize=CHUNK
                )
            # http.client's own hook for how it connects (its default has no overall deadline)
            connection._create_connection = self._create_connection  # type: ignore[attr-defined]  # noqa: SLF001
            self._local.connection = connection
            with self._lock:
                self._connections.append(connection)
        return connection, False

    def _create_connection(
        self, address: tuple[str, int], timeout: float, *_: object
    ) -> socket.socket:
        """Connect as ``http.client`` would, within the request's deadline."""
        return connect(address[0], address[1], timeout)

    def _request(
        self,
        method: str,
        path: str,
        body: tuple[BinaryIO, int] | None = None,
        sink: Callable[[bytes], object] | None = None,
        limit: int = 0,
    ) -> int:
        """Send one request; return its status (2xx, or 404 for "absent"), else raise.

        A kept-alive connection the server closed meanwhile is opened again, once.
        """
        start = body[0].tell() if body is not None else 0
        for attempt in (1, 2):
            if self._closed.is_set():
                raise RemoteError(f"{method} not sent: closed")
            connection, reused = self._connection()
            if body is not None:
                body[0].seek(start)
            try:
                with within(self._timeout, limit + (body[1] if body else 0) + _HEAD_ROOM):
                    return self._exchange(connection, method, path, body, sink, limit)
            except _GONE as error:
                connection.close()
                if not reused or attempt == 2:  # noqa: PLR2004 - the retry
                    raise RemoteError(f"{method} failed: {_why(error)}") from None
            except RemoteError:
                connection.close()
                raise
            except ConnectionRefusedError:
                connection.close()
                raise RemoteError("connection refused", refused=True) from None
            except TimeoutError:
                connection.close()
                raise RemoteError(f"no answer within {self._timeout:g} s", down=True) from None
            except (OSError, http.client.HTTPException) as error:
                unreachable = isinstance(error, OSError) and connection.sock is None
                connection.close()
                raise RemoteError(f"{method} failed: {_why(error)}", down=unreachable) from None
        raise AssertionError  # pragma: no cover - the loop returns or raises

    def _exchange(
        self,
        connection: http.client.HTTPConnection,
        method: str,
        path: str,
        body: tuple[BinaryIO, int] | None,
        sink: Callable[[bytes], object] | None,
        limit: int,
    ) -> int:
        if connection.sock is None:
            connection.connect()
        sock = connection.sock  # kept: the connection lets go of it when the answer ends it
        assert sock is not None  # noqa: S101 - connect() sets it
        guard(sock)  # with TLS, the socket wrapped around the guarded one
        with self._lock:
            self._busy.add(sock)
        try:
            if self._closed.is_set():  # closed meanwhile: the shutdown may have missed it
                raise RemoteError(f"{method} not sent: closed")
            headers = dict(self._headers)
            upload = None
            if body is not None:
                upload = _Upload(body[0], body[1])
                headers["Content-Length"] = str(body[1])
                headers["Content-Type"] = "application/octet-stream"
            connection.request(method, path, body=upload, headers=headers)
            response = connection.getresponse()
            self.stats.add(requests=1, bytes_up=upload.sent if upload else 0)
            status = response.status
            success = 200 <= status < 300  # noqa: PLR2004
            if sink is None or not success:
                response.read(65536)  # small bodies, so the connection can be kept
                if not response.isclosed():  # a large or endless one: do not wait for it
                    connection.close()
                if success or (status == _ABSENT and method != "PUT"):
                    return status
                raise status_error(f"{method} {path}", status, response.reason)
            try:
                self._receive(response, sink, limit, f"{method} {path}")
            except TimeoutError:
                raise RemoteError(
                    f"{method} {path}: no complete answer within {self._timeout:g} s", down=True
                ) from None
            return status
        finally:
            with self._lock:
                self._busy.discard(sock)

    def _receive(
        self,
        response: http.client.HTTPResponse,
        sink: Callable[[bytes], object],
        limit: int,
        what: str,
    ) -> None:
        """Pass the body on, a piece at a time (the socket keeps to the request's deadline)."""
        expected = response.length
        if expected is not None and expected > limit:
            raise RemoteError(f"{what}: {expected} bytes is more than expected")
        received = 0
        while not response.isclosed():  # since 3.13, read1 closes it at the body's end
            piece = response.read1(CHUNK)
            if not piece:
                break
            received += len(piece)
            if received > limit:
                raise RemoteError(f"{what}: more bytes than expected")
            self.stats.add(bytes_down=len(piece))
            sink(piece)
        if expected is not None and received != expected:
            raise RemoteError(f"{what}: the answer was cut short")
        response.close()  # all read: the connection is free for the next request


def _check_name(name: str) -> None:
    """Keys and digests go into URL paths: letters and digits only."""
    if not name or not name.isascii() or not name.isalnum():
        raise ValueError(f"{name!r} cannot name a remote entry")


def _keeping(error: RemoteError, found: dict[str, bytes]) -> RemoteError:
    """Return the same failure, with the entries ``found`` before it as its partial result."""
    return RemoteError(str(error), refused=error.refused, partial=found, down=error.down)


def _why(error: BaseException) -> str:
    why = getattr(error, "strerror", None) or str(error) or type(error).__name__
    return why if why.isprintable() else ascii(why)  # a server's bytes stay on one line
