"""The narrow interface every remote cache implements, its one error, and its counters.

A backend moves opaque bytes: entries by key, blobs by digest. It knows nothing of what they
mean (:mod:`jobstamps.storage.records` does) and nothing of what to do when it fails
(:mod:`jobstamps.storage.remote` does): every failure is raised as :class:`RemoteError`.
"""

from __future__ import annotations

import threading

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import BinaryIO

__all__ = ["CHUNK", "Backend", "RemoteError", "RemoteStats", "refused_credentials", "status_error"]

#: How many bytes of a blob travel at once, so large blobs never sit whole in memory.
CHUNK = 1 << 20


class RemoteError(Exception):
    """The remote failed (refused, down, slow, an unexpected status, a damaged body).

    ``refused`` says the server is not listening at all: no point in asking again.
    ``down`` says it could not be reached or did not answer in time (``refused`` too): asking
    again would only wait again.
    ``partial`` holds the entries a batch read before it failed; they are as good as any.
    """

    def __init__(
        self,
        why: str,
        refused: bool = False,
        partial: dict[str, bytes] | None = None,
        down: bool | None = None,
    ) -> None:
        super().__init__(why)
        self.refused = refused
        self.down = refused if down is None else down
        self.partial = partial or {}


#: HTTP statuses that say the credentials were missing, wrong or not enough.
_AUTHENTICATION = (401, 403)


def refused_credentials(what: str, detail: str = "") -> RemoteError:
    """Return the failure for a server that refused the credentials: said so, not "down".

    Asking again in this invocation would be refused again; but nothing is remembered for
    later ones, which may bring the right credentials.
    """
    detail = f" ({detail})" if detail else ""
    return RemoteError(
        f"{what}: authentication failed{detail}. Check the credentials: the URL's "
        "user:password, or JOBSTAMPS_REMOTE_TOKEN",
        refused=True,
        down=False,
    )


def status_error(what: str, status: int, reason: str) -> RemoteError:
    """Return the failure for an HTTP answer with an unexpected ``status``."""
    answered = f"{what} answered {status} {reason}".rstrip()
    return refused_credentials(answered) if status in _AUTHENTICATION else RemoteError(answered)


class RemoteStats:
    """What one invocation did with a remote, for ``--show-stats`` and benchmarks.

    Backends count requests and bytes; the failure policy counts the rest. Safe to update from
    the worker threads of parallel lookups and uploads.
    """

    FIELDS = (
        "hits",
        "misses",
        "errors",
        "rejected",
        "uploads",
        "requests",
        "bytes_down",
        "bytes_up",
    )

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.hits = 0  # entries found and accepted
        self.misses = 0  # entries not there (or not usable)
        self.errors = 0  # failed operations (each one a miss or a lost upload)
        self.rejected = 0  # records that failed their checks (damaged, forged, another key)
        self.uploads = 0  # entries and blobs stored
        self.requests = 0  # round trips to the server
        self.bytes_down = 0
        self.bytes_up = 0

    def add(self, **counts: int) -> None:
        """Add ``counts`` (names from :attr:`FIELDS`) atomically."""
        with self._lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)

    def as_dict(self) -> dict[str, int]:
        """Return every counter by name."""
        with self._lock:
            return {name: getattr(self, name) for name in self.FIELDS}


class Backend:
    """One remote cache server. Every method raises :class:`RemoteError` on any failure.

    A missing entry or blob is not a failure: it is absent from the result, or ``False``.
    Subclasses set :attr:`name` (the URL without credentials, for messages) and implement
    every method; :mod:`jobstamps.storage.remote` calls them, from several threads at once.
    """

    name = ""

    def __init__(self, stats: RemoteStats | None = None) -> None:
        self.stats = stats if stats is not None else RemoteStats()

    def get_entries(self, keys: Sequence[str]) -> dict[str, bytes]:
        """Return the entries stored for ``keys`` (those found).

        Many keys go out in parallel or in one pipelined round trip, not one after another.
        """
        raise NotImplementedError

    def put_entry(self, key: str, data: bytes) -> None:
        """Store ``data`` as the entry for ``key``, replacing any."""
        raise NotImplementedError

    def get_blob(self, digest: str, sink: Callable[[bytes], object], limit: int) -> bool:
        """Pass the blob's bytes to ``sink`` piece by piece; return ``False`` if it is absent.

        More than ``limit`` bytes is a failure. ``sink`` may raise :class:`RemoteError` to stop
        (the caller checks the digest); a failure after some bytes were passed leaves them
        passed: the caller discards what it collected.
        """
        raise NotImplementedError

    def put_blob(self, digest: str, source: BinaryIO, size: int) -> None:
        """Store ``size`` bytes read from ``source`` (from where it stands) as blob ``digest``.

        The blob appears whole or not at all to readers on servers that allow it (a temporary
        name, then a rename); elsewhere readers check the digest anyway.
        """
        raise NotImplementedError

    def has_blobs(self, digests: Sequence[str]) -> set[str]:
        """Return which of ``digests`` are stored (to upload only the others)."""
        raise NotImplementedError

    def close(self) -> None:
        """Close connections and stop worker threads. Calls made after it may fail."""
