"""A remote cache as the rest of jobstamps sees it: opened from its settings, behind the policy.

The settings (URL, options, variables, credentials) are
:mod:`jobstamps.storage.remote_settings`'s; the backend for the URL's scheme is imported when
the remote is opened.

Failure policy: a remote never fails a build and never causes a wrong replay. Every failure
(refused, down, slow, an unexpected status, a damaged body, a record that does not verify) is
a miss; the first prints ONE line on stderr for the whole invocation; a remote that was refused,
could not be reached or did not answer in time once, or failed :data:`MAX_FAILURES` times, is
not asked again until the invocation ends. One that could not be reached or did not answer is
also left alone by the invocations that start in the next ``retry`` seconds
(:mod:`jobstamps.storage.down`). Credentials refused (HTTP 401/403, Redis AUTH) are said as
such and end the remote's use for the invocation only. Settings from the environment that
cannot work warn and turn the remote off; the same in ``--remote`` is a usage error. No message
shows a credential (:meth:`Settings.scrub`,
:func:`~jobstamps.storage.remote_settings.redact`).

Importing this module costs nothing more than ``os`` and the settings' module: the URL is
parsed, and the backend and the record code are imported, only when a remote is configured
and first needed.
"""

from __future__ import annotations

import os

from jobstamps.storage.remote_settings import (
    BACKENDS,
    EXTRAS,
    SettingError,
    Settings,
    stderr_line,
    warn_if_visible,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from concurrent.futures import Future, ThreadPoolExecutor

    from jobstamps.storage.backend import Backend, RemoteStats
    from jobstamps.storage.records import Record
    from jobstamps.store import Store

__all__ = [
    "BACKENDS",
    "MAX_FAILURES",
    "Remote",
    "SettingError",
    "Settings",
    "configured_url",
    "ignored",
    "open_remote",
    "stderr_line",
    "warn_if_visible",
]

MAX_FAILURES = 3
#: How long :meth:`Remote.close` waits for uploads still running.
FLUSH_SECONDS = 30.0


def configured_url(env: Mapping[str, str] | None = None) -> str:
    """Return ``JOBSTAMPS_REMOTE``, or ``""``: the one check a local hit pays for."""
    return (os.environ if env is None else env).get("JOBSTAMPS_REMOTE", "")


def open_remote(
    url: str | None = None,
    env: Mapping[str, str] | None = None,
    read_only: bool = False,
    warn: Callable[[str], None] | None = None,
    store: Store | None = None,
) -> Remote | None:
    """Return the configured remote (``url``, else ``JOBSTAMPS_REMOTE``), or ``None``.

    ``url`` is the command line's (``--remote``). ``read_only`` (``--remote-read-only``) adds
    to the settings' own. A missing client library warns (through ``warn``) and returns
    ``None``: the build goes on with the local cache. So does a remote that ``store``
    remembers as unreachable (see the module's text), and one whose settings in the
    environment cannot work: they are the CI's, not the command's, so they do not fail it.
    Raises :class:`SettingError` for a URL given as ``url`` (or an option in it) that cannot
    work.
    """
    source = "" if url else "JOBSTAMPS_REMOTE"
    url = url or configured_url(env)
    if not url:
        return None
    try:
        return _open(Settings(url, env, source), read_only, warn, store)
    except SettingError as error:
        if not error.variable:
            raise
        (warn or stderr_line)(ignored(error))
        return None


def ignored(error: SettingError) -> str:
    """Word a setting of the environment that cannot work, and that it is ignored."""
    return f"jobstamp: {error} (from {error.variable}); continuing without the remote cache"


def _open(
    settings: Settings,
    read_only: bool,
    warn: Callable[[str], None] | None,
    store: Store | None,
) -> Remote | None:
    from jobstamps.storage.down import Down

    settings.read_only = settings.read_only or read_only
    down = Down(store, settings) if store is not None and settings.retry else None
    if down is not None:
        why = down.since()
        if why:
            Remote(None, settings, warn).fail_with(why)
            return None
    import importlib

    module, _, name = BACKENDS[settings.scheme].partition(":")
    try:
        backend_class = getattr(importlib.import_module(module), name)
    except ImportError as error:
        remote = Remote(None, settings, warn)
        extra = EXTRAS.get(settings.scheme, "")
        hint = f"pip install 'jobstamps[{extra}]'" if extra else "reinstall jobstamps"
        remote.fail_with(f"{error}. Install it with {hint}")
        return None
    try:
        backend = backend_class(settings)
    except ValueError as error:
        why = settings.scrub(str(error))
        message = f"remote cache URL {settings.name} cannot be used ({why})"
        raise SettingError(message, settings.source) from None
    remote = Remote(backend, settings, warn)
    if down is not None:
        remote.on_down = down.mark
    return remote


class Remote:
    """A backend behind the failure policy: every method returns, none raises.

    Reads happen now (in parallel where there are many); uploads run in a few worker threads
    (bounded: a caller that outruns them waits) and :meth:`close` waits for them, up to a
    deadline. Read-only remotes upload nothing.
    """

    def __init__(
        self,
        backend: Backend | None,
        settings: Settings,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        import threading

        from jobstamps.storage.backend import RemoteStats

        self.backend = backend
        self.settings = settings
        self.stats: RemoteStats = backend.stats if backend is not None else RemoteStats()
        self._warn = warn or stderr_line
        self._lock = threading.Lock()
        self._failures = 0
        self._warned = False
        #: Called once when the server could not be reached or did not answer, with why.
        self.on_down: Callable[[str], None] | None = None
        self._marked = False
        self.usable = backend is not None
        self._uploads: ThreadPoolExecutor | None = None
        self._pending: set[Future[None]] = set()
        self._slots = threading.BoundedSemaphore(2 * self._upload_workers)

    @property
    def _upload_workers(self) -> int:
        return min(4, self.settings.connections)

    # -- the failure policy ---------------------------------------------------------------

    def fail(self, error: Exception) -> None:
        """Count a failure; warn about the first; give up on a remote that keeps failing.

        Any exception counts: a client library's bug or an answer it chokes on must not fail
        the build either.
        """
        from jobstamps.storage.backend import RemoteError
        from jobstamps.storage.records import RecordError

        if not isinstance(error, RemoteError):
            error = RemoteError(f"{type(error).__name__}: {error}")
        with self._lock:
            self._failures += 1
            rejected = isinstance(error, RecordError)
            self.stats.add(errors=1, rejected=int(rejected))
            if error.refused or error.down or self._failures >= MAX_FAILURES:
                self.usable = False
            marking = error.down and self.on_down is not None and not self._marked
            self._marked = self._marked or marking
            warned, self._warned = self._warned, True
        if marking:
            assert self.on_down is not None  # noqa: S101 - checked under the lock
            self.on_down(self.settings.scrub(str(error)))
        if warned:
            return
        self._warn(
            self.settings.scrub(
                f"jobstamp: remote cache {self.settings.name}: {error}; "
                + ("continuing without it" if not self.usable else "treating it as a miss")
            )
        )

    def fail_with(self, why: str) -> None:
        """Give up on this remote for the invocation, saying ``why`` (once)."""
        from jobstamps.storage.backend import RemoteError

        self.fail(RemoteError(why, refused=True, down=False))

    # -- reads ----------------------------------------------------------------------------

    def get_records(self, keys: Sequence[str]) -> dict[str, Record]:
        """Return the records stored for ``keys`` that pass every check, fetched in parallel."""
        from jobstamps.storage.backend import RemoteError
        from jobstamps.storage.records import RecordError, decode

        keys = list(dict.fromkeys(keys))
        found: dict[str, bytes] = {}
        if self.usable and keys:
            assert self.backend is not None  # noqa: S101 - usable means there is one
            try:
                found = self.backend.get_entries(keys)
            except Exception as error:  # noqa: BLE001 - see fail()
                self.fail(error)
                found = error.partial if isinstance(error, RemoteError) else {}
        records = {}
        for key, data in found.items():
            try:
                records[key] = decode(data, key, self.settings.secret)
            except RecordError as error:  # noqa: PERF203 - each record on its own
                self.fail(error)
        self.stats.add(hits=len(records), misses=len(keys) - len(records))
        return records

    def fetch_blob(self, digest: str, size: int, sink: Callable[[bytes], object]) -> bool:
        """Pass blob ``digest`` of ``size`` bytes (as a record names it) to ``sink`` in pieces.

        Returns ``True`` only when every byte arrived and matched the digest; on ``False`` the
        caller discards whatever ``sink`` received. An ``OSError`` of ``sink`` (a full local
        disk) is the caller's, not the remote's: the blob is still read to its end, so the
        connection stays usable, and then the error is raised.
        """
        import hashlib

        from jobstamps.storage.backend import RemoteError

        if not self.usable:
            return False
        assert self.backend is not None  # noqa: S101 - usable means there is one
        hasher = hashlib.sha256()
        received = 0
        local: OSError | None = None

        def check(piece: bytes) -> None:
            nonlocal received, local
            received += len(piece)
            if received > size:
                raise RemoteError(f"blob {digest[:12]} is larger than recorded")
            hasher.update(piece)
            if local is None:
                try:
                    sink(piece)
                except OSError as error:
                    local = error

        try:
            if not self.backend.get_blob(digest, check, size):
                return False
        except Exception as error:  # noqa: BLE001 - see fail()
            self.fail(error)
            return False
        if local is not None:
            raise local
        if received != size or hasher.hexdigest() != digest:
            self.fail(RemoteError(f"blob {digest[:12]} does not match its digest"))
            return False
        return True

    def get_blob(self, digest: str, size: int) -> bytes | None:
        """Return blob ``digest`` of ``size`` bytes whole, if it is there and intact."""
        pieces: list[bytes] = []
        return b"".join(pieces) if self.fetch_blob(digest, size, pieces.append) else None

    def has_blobs(self, digests: Sequence[str]) -> set[str]:
        """Return which of ``digests`` the remote holds (none, when it fails)."""
        if not self.usable or not digests:
            return set()
        assert self.backend is not None  # noqa: S101 - usable means there is one
        try:
            return self.backend.has_blobs(list(digests))
        except Exception as error:  # noqa: BLE001 - see fail()
            self.fail(error)
            return set()

    # -- uploads --------------------------------------------------------------------------

    def put_record(
        self,
        record: Record,
        blobs: Mapping[str, bytes | str] | None = None,
    ) -> None:
        """Upload ``record`` in the background, signed when a shared key is set.

        First go the ``blobs`` it names that the remote lacks (``digest -> bytes or file
        path``), then the record. A read-only remote uploads nothing.
        """
        from jobstamps.storage.records import encode

        if self.settings.read_only or not self.usable:
            return
        data = encode(record, self.settings.secret)
        self._submit(lambda: self._upload(record.key, data, dict(blobs or {})))

    def _upload(self, key: str, data: bytes, blobs: dict[str, bytes | str]) -> None:
        import io

        assert self.backend is not None  # noqa: S101 - only submitted while usable
        if blobs:
            present = self.backend.has_blobs(list(blobs))
            for digest, blob in blobs.items():
                if digest in present:
                    continue
                if isinstance(blob, bytes):
                    self.backend.put_blob(digest, io.BytesIO(blob), len(blob))
                else:
                    with open(blob, "rb") as source:
                        self.backend.put_blob(digest, source, os.fstat(source.fileno()).st_size)
                self.stats.add(uploads=1)
        self.backend.put_entry(key, data)
        self.stats.add(uploads=1)

    def _submit(self, task: Callable[[], None]) -> None:
        from concurrent.futures import ThreadPoolExecutor

        def run() -> None:
            try:
                if self.usable:
                    task()
            except Exception as error:  # noqa: BLE001 - see fail()
                self.fail(error)
            finally:
                self._slots.release()

        if self._uploads is None:
            self._uploads = ThreadPoolExecutor(
                self._upload_workers, thread_name_prefix="jobstamps-upload"
            )
        self._slots.acquire()
        future = self._uploads.submit(run)
        with self._lock:
            self._pending.add(future)
        future.add_done_callback(self._done)

    def _done(self, future: Future[None]) -> None:
        with self._lock:
            self._pending.discard(future)

    def flush(self, timeout: float = FLUSH_SECONDS) -> bool:
        """Wait up to ``timeout`` seconds for the uploads; return whether all finished."""
        from concurrent.futures import wait

        with self._lock:
            pending = set(self._pending)
        if not pending:
            return True
        _, late = wait(pending, timeout)
        return not late

    def close(self, timeout: float = FLUSH_SECONDS) -> None:
        """Finish the uploads (up to ``timeout`` seconds; the rest are dropped) and disconnect."""
        from jobstamps.storage.backend import RemoteError

        if not self.flush(timeout):  # a deadline missed, as by a server that is down
            self.fail(
                RemoteError(f"uploads did not finish within {timeout:g} s; dropped", down=True)
            )
        self.usable = False  # closed: later calls are misses and skipped uploads
        if self._uploads is not None:
            self._uploads.shutdown(wait=False, cancel_futures=True)
        if self.backend is not None:
            self.backend.close()
