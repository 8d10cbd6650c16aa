"""A remote cache on a Redis server (``redis://`` and ``rediss://``; redis-py, the ``redis`` extra).

Keys, under a prefix (``jobstamps:`` unless configured):

- ``<prefix>e:<key>``: the entry for a key;
- ``<prefix>b:<sha256>``: a blob;
- ``<prefix>t:<sha256>:<random>``: a blob being uploaded, renamed into place when complete
  (it expires by itself if the upload dies half-way).

Many entries are one ``MGET`` (per 512 keys, pipelined); blobs travel ``CHUNK`` bytes at a
time (``GETRANGE``, ``APPEND``), so a large one is never whole in memory on either side.
With a TTL (``JOBSTAMPS_REMOTE_TTL``) everything stored expires; else configure the server's
``maxmemory-policy allkeys-lru`` to keep it bounded.
"""

from __future__ import annotations

import threading

import redis
import redis.exceptions
from redis.backoff import NoBackoff
from redis.retry import Retry

from jobstamps.storage.backend import CHUNK, Backend, RemoteError, refused_credentials
from jobstamps.storage.deadline import connect, guard, within
from jobstamps.storage.records import MAX_RECORD

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket
    from collections.abc import Callable, Sequence
    from typing import Any, BinaryIO, TypeVar

    from jobstamps.storage.backend import RemoteStats
    from jobstamps.storage.remote_settings import Settings

    T = TypeVar("T")

__all__ = ["RedisBackend"]

#: Keys per MGET: large enough to be one round trip for a big batch, small enough for the
#: server to answer without stalling its other clients.
BATCH = 512
#: Seconds an unfinished upload may linger before the server drops it.
UPLOAD_TTL = 3600


class RedisBackend(Backend):
    """Entries and blobs as Redis strings."""

    def __init__(self, settings: Settings, stats: RemoteStats | None = None) -> None:
        super().__init__(stats)
        self.name = settings.name
        self._prefix = settings.prefix
        self._ttl = settings.ttl or None
        self._client = redis.Redis.from_url(
            settings.url,
            socket_timeout=settings.timeout,
            socket_connect_timeout=settings.connect_timeout,
            retry=Retry(NoBackoff(), 0),
            retry_on_timeout=False,
            max_connections=settings.connections + 4,
            connection_class=(
                _GuardedSSLConnection if settings.scheme == "rediss" else _GuardedConnection
            ),
        )
        self._timeout = settings.timeout
        self._closed = threading.Event()

    def _call(self, what: str, call: Callable[[], T], requests: int = 1, stretch: int = CHUNK) -> T:
        """Run one exchange with the server, turning its failures into :class:`RemoteError`.

        It keeps to the deadline, which each :data:`CHUNK` moved renews, for ``stretch`` bytes.
        """
        if self._closed.is_set():
            raise RemoteError(f"{what} not sent: closed")
        try:
            with within(self._timeout, stretch):
                result = call()
        except redis.exceptions.AuthenticationError as error:  # a ConnectionError, but no outage
            raise refused_credentials(what, str(error)) from None
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as error:
            refused = isinstance(error.__cause__ or error.__context__, ConnectionRefusedError)
            refused = refused or "refused" in str(error).lower()
            raise RemoteError(f"{what} failed: {error}", refused=refused, down=True) from None
        except (redis.exceptions.RedisError, OSError) as error:
            raise RemoteError(f"{what} failed: {error}") from None
        self.stats.add(requests=requests)
        return result

    def get_entries(self, keys: Sequence[str]) -> dict[str, bytes]:
        """MGET the entries, in pipelined batches of :data:`BATCH`: one round trip for most."""
        keys = list(dict.fromkeys(keys))
        pipe = self._client.pipeline(transaction=False)
        for start in range(0, len(keys), BATCH):
            pipe.mget([f"{self._prefix}e:{key}" for key in keys[start : start + BATCH]])
        batches = self._call("MGET", pipe.execute, stretch=len(keys) * MAX_RECORD)
        found = {}
        for key, value in zip(keys, (value for batch in batches for value in batch), strict=True):
            if isinstance(value, bytes):
                found[key] = value
                self.stats.add(bytes_down=len(value))
        return found

    def put_entry(self, key: str, data: bytes) -> None:
        """SET the entry (with the TTL, if any)."""
        self._call("SET", lambda: self._client.set(f"{self._prefix}e:{key}", data, ex=self._ttl))
        self.stats.add(bytes_up=len(data))

    def get_blob(self, digest: str, sink: Callable[[bytes], object], limit: int) -> bool:
        """Read the blob with GETRANGE, :data:`CHUNK` bytes at a time."""
        name = f"{self._prefix}b:{digest}"
        pipe = self._client.pipeline(transaction=False)
        pipe.exists(name)
        pipe.strlen(name)
        exists, size = self._call("STRLEN", pipe.execute)
        if not exists:
            return False
        if size > limit:
            raise RemoteError(f"blob {digest[:12]} has {size} bytes; more than expected")
        for start in range(0, size, CHUNK):
            end = min(start + CHUNK, size) - 1
            piece = self._call("GETRANGE", lambda: self._client.getrange(name, start, end))  # noqa: B023
            if not isinstance(piece, bytes) or len(piece) != end - start + 1:
                raise RemoteError(f"blob {digest[:12]} changed or vanished while it was read")
            self.stats.add(bytes_down=len(piece))
            sink(piece)
        return True

    def put_blob(self, digest: str, source: BinaryIO, size: int) -> None:
        """Upload under a temporary name, :data:`CHUNK` bytes at a time, then rename it."""
        import os

        name = f"{self._prefix}b:{digest}"
        if size <= CHUNK:
            data = _read(source, size)
            self._call("SET", lambda: self._client.set(name, data, ex=self._ttl))
            self.stats.add(bytes_up=size)
            return
        temp = f"{self._prefix}t:{digest}:{os.urandom(8).hex()}"
        sent = 0
        while sent < size:
            piece = _read(source, min(CHUNK, size - sent))
            if sent == 0:
                self._call("SET", lambda: self._client.set(temp, piece, ex=UPLOAD_TTL))  # noqa: B023
            else:
                self._call("APPEND", lambda: self._client.append(temp, piece))  # noqa: B023
            sent += len(piece)
            self.stats.add(bytes_up=len(piece))
        pipe = self._client.pipeline(transaction=True)
        pipe.rename(temp, name)
        if self._ttl:
            pipe.expire(name, self._ttl)
        else:
            pipe.persist(name)
        self._call("RENAME", pipe.execute)

    def has_blobs(self, digests: Sequence[str]) -> set[str]:
        """EXISTS for each blob, pipelined: one round trip."""
        digests = list(dict.fromkeys(digests))
        pipe = self._client.pipeline(transaction=False)
        for digest in digests:
            pipe.exists(f"{self._prefix}b:{digest}")
        answers = self._call("EXISTS", pipe.execute)
        return {digest for digest, there in zip(digests, answers, strict=True) if there}

    def close(self) -> None:
        """Disconnect every pooled connection, in use or not (the calls under way fail now)."""
        self._closed.set()
        try:
            self._client.close()
        except (redis.exceptions.RedisError, OSError):
            pass


class _Connect:
    """Connect within the deadline (the name lookup included), with a guarded socket."""

    def _connect(self: Any) -> socket.socket:  # a redis.Connection: its attributes
        sock = connect(self.host, self.port, self.socket_connect_timeout)
        sock.settimeout(self.socket_timeout)
        return sock


class _GuardedConnection(_Connect, redis.Connection):
    """redis-py's connection, keeping to the deadline of each call."""


class _GuardedSSLConnection(redis.SSLConnection, _Connect, redis.Connection):
    """redis-py's TLS connection, keeping to the deadline of each call."""

    def _connect(self) -> socket.socket:
        return guard(super()._connect())  # type: ignore[no-untyped-call]


def _read(source: BinaryIO, size: int) -> bytes:
    data = source.read(size)
    if len(data) != size:
        raise RemoteError("the file to upload got shorter while it was sent")
    return data
