"""A remote cache as the rest of jobstamps sees it: settings, the failure policy, the backend.

The URL comes from ``--remote`` or ``JOBSTAMPS_REMOTE``; options from the URL's query
(``?layout=bazel&read-only``) or from variables, the URL winning where both are given:

=============================  ==============  ==================================================
variable                       URL option      meaning
=============================  ==============  ==================================================
``JOBSTAMPS_REMOTE``                           ``http[s]://[user:password@]host[:port][/path]``
                                               or ``redis[s]://[[user]:password@]host[:port][/db]``
``JOBSTAMPS_REMOTE_LAYOUT``    ``layout``      HTTP paths: ``subdirs`` (default), ``flat``,
                                               ``bazel``
``JOBSTAMPS_REMOTE_READ_ONLY`` ``read-only``   never upload (either one is enough)
``JOBSTAMPS_REMOTE_TIMEOUT``   ``timeout``     seconds for a whole request, answer included
                                               (default 5; to connect, 2 at most); each MiB
                                               moved adds as much again
``JOBSTAMPS_REMOTE_KEY``                       shared secret: sign records, refuse unsigned ones
``JOBSTAMPS_REMOTE_TOKEN``                     HTTP bearer token
``JOBSTAMPS_REMOTE_PREFIX``    ``prefix``      Redis key prefix (default ``jobstamps:``)
``JOBSTAMPS_REMOTE_TTL``       ``ttl``         Redis expiry of what is stored, in seconds (0: none)
``JOBSTAMPS_REMOTE_CONNECTIONS`` ``connections`` parallel connections (default 8)
``JOBSTAMPS_REMOTE_RETRY``     ``retry``       seconds a remote that could not be reached or did
                                               not answer is left alone (default 60; 0: never)
=============================  ==============  ==================================================

Failure policy: a remote never fails a build and never causes a wrong replay. Every failure
(refused, down, slow, an unexpected status, a damaged body, a record that does not verify) is
a miss; the first prints ONE line on stderr for the whole invocation; a remote that was refused,
could not be reached or did not answer in time once, or failed :data:`MAX_FAILURES` times, is
not asked again until the invocation ends. One that could not be reached or did not answer is
also left alone by the invocations that start in the next ``retry`` seconds (each says so in
one line): a build of many targets waits for an unreachable server once, not once per target.
The mark is a memo in the local cache (see :meth:`Store.memo_path`), named by a digest of the
URL with its credentials. Credentials refused (HTTP 401/403, Redis AUTH) are said as such and
end the remote's use for the invocation only. Settings from the environment that cannot work
warn and turn the remote off; the same in ``--remote`` is a usage error. No message shows a
credential (:meth:`Settings.scrub`, :func:`redact`).

Importing this module costs nothing more than ``os``: the URL is parsed, and the backend and the
record code are imported, only when a remote is configured and first needed.
"""

from __future__ import annotations

import os

from jobstamps.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from concurrent.futures import Future, ThreadPoolExecutor
    from urllib.parse import SplitResult

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

#: The backend for each URL scheme, as ``module:class`` (imported only when used).
BACKENDS = {
    "http": "jobstamps.storage.http:HttpBackend",
    "https": "jobstamps.storage.http:HttpBackend",
    "redis": "jobstamps.storage.redis:RedisBackend",
    "rediss": "jobstamps.storage.redis:RedisBackend",
}
#: What to install for a scheme whose client library is optional.
EXTRAS = {"redis": "redis", "rediss": "redis"}
LAYOUTS = ("subdirs", "flat", "bazel")
MAX_FAILURES = 3
DEFAULT_TIMEOUT = 5.0
MAX_CONNECT_TIMEOUT = 2.0
DEFAULT_CONNECTIONS = 8
DEFAULT_RETRY = 60.0
#: How long :meth:`Remote.close` waits for uploads still running.
FLUSH_SECONDS = 30.0
_FOREVER = 1e9
#: Pieces of a password shorter than this are not masked in messages: they would mask words.
_SHORTEST = 3


def configured_url(env: Mapping[str, str] | None = None) -> str:
    """Return ``JOBSTAMPS_REMOTE``, or ``""``: the one check a local hit pays for."""
    return (os.environ if env is None else env).get("JOBSTAMPS_REMOTE", "")


def warn_if_visible(url: str | None) -> None:
    """Say, in one line, that credentials in ``--remote`` ``url`` are shown to every local user.

    The command line of a running process is public on the machine (``ps``); the environment
    is not.
    """
    if url and "@" in _after_scheme(url)[2]:
        stderr_line(
            "jobstamp: warning: the credentials in --remote can be read by every user of this "
            "machine (ps shows command lines); set JOBSTAMPS_REMOTE instead"
        )


class SettingError(UsageError):
    """A remote cache setting that cannot work.

    ``variable`` names the environment variable it came from; ``""`` when it came from the
    command line (``--remote``), where it is a usage error. One from the environment is the
    CI's, not the command's: the build goes on without the remote (see :func:`open_remote`).
    """

    def __init__(self, message: str, variable: str = "") -> None:
        super().__init__(message)
        self.variable = variable


class Settings:
    """Everything a backend needs to know, read from the URL and the environment."""

    def __init__(
        self, url: str, env: Mapping[str, str] | None = None, source: str = "JOBSTAMPS_REMOTE"
    ) -> None:
        """Parse ``url`` and the ``JOBSTAMPS_REMOTE_*`` variables of ``env``.

        ``source`` names the variable ``url`` came from, ``""`` for the command line.
        Raises :class:`SettingError` for a URL or value that cannot work; its message never
        holds a credential.
        """
        from urllib.parse import parse_qsl, urlunsplit

        env = os.environ if env is None else env
        #: Where the URL came from: a variable's name, or ``""`` for the command line.
        self.source = source
        #: The URL to show: without credentials or options (also for a malformed URL).
        self.name = redact(url)
        key = env.get("JOBSTAMPS_REMOTE_KEY", "")
        self.token = env.get("JOBSTAMPS_REMOTE_TOKEN") or None
        #: Every credential (user information, its pieces, token, key), for :meth:`scrub`.
        pieces, self.secrets = _credentials(url, key, self.token)
        parts = _split(url, self.name, pieces, source)
        self.scheme = parts.scheme.lower()
        options = dict(parse_qsl(parts.query, keep_blank_values=True))
        known = {"layout", "read-only", "timeout", "prefix", "ttl", "connections", "retry"}
        unknown = set(options) - known
        if unknown:
            option_name = self.scrub(min(unknown))
            raise SettingError(
                f"remote cache URL {self.name!r} has unknown option {option_name!r}", source
            )
        #: The URL to connect to: with credentials, without options.
        self.url = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
        self.username = parts.username
        self.password = parts.password

        def option(name: str, variable: str) -> tuple[str, str]:
            """Return the option's text and where it came from (``("", "")``: not given)."""
            if options.get(name):
                return options[name], source
            return env.get(variable, ""), variable

        layout, where = option("layout", "JOBSTAMPS_REMOTE_LAYOUT")
        self.layout = layout or "subdirs"
        if self.layout not in LAYOUTS:
            raise SettingError(
                f"remote cache layout {self.layout!r} is unknown. Use one of {', '.join(LAYOUTS)}",
                where,
            )
        # An empty variable is off, as every JOBSTAMPS_* flag (a CI's ``cond && '1' || ''``);
        # a bare ``?read-only`` in the URL is on.
        self.read_only = _flag(options.get("read-only")) or _flag(
            env.get("JOBSTAMPS_REMOTE_READ_ONLY") or None
        )
        self.timeout = _number(*option("timeout", "JOBSTAMPS_REMOTE_TIMEOUT"), DEFAULT_TIMEOUT)
        self.connect_timeout = min(self.timeout, MAX_CONNECT_TIMEOUT)
        self.ttl = int(_number(*option("ttl", "JOBSTAMPS_REMOTE_TTL"), 0, "ttl"))
        self.retry = _number(*option("retry", "JOBSTAMPS_REMOTE_RETRY"), DEFAULT_RETRY, "retry")
        connections = option("connections", "JOBSTAMPS_REMOTE_CONNECTIONS")
        self.connections = max(1, int(_number(*connections, DEFAULT_CONNECTIONS, "connections")))
        prefix, _ = option("prefix", "JOBSTAMPS_REMOTE_PREFIX")
        self.prefix = prefix or "jobstamps:"
        if self.token is not None and not self.token.isprintable():
            raise SettingError(
                "remote cache token has control characters. Set it to the token alone",
                "JOBSTAMPS_REMOTE_TOKEN",
            )
        #: The shared secret that signs and checks records; ``None`` when records are unsigned.
        self.secret = key.encode() if key else None

    def scrub(self, text: str) -> str:
        """Return ``text`` with every credential of these settings masked."""
        for secret in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(secret, "***")
        return text


def redact(url: str) -> str:
    """Return ``url`` without credentials or options, for messages; malformed ones too.

    Everything up to the last ``@`` is masked, the user name too (it may be a token, as in
    ``https://TOKEN@host``), and wherever a ``/``, ``?`` or ``#`` in a password leaves it.
    """
    scheme, separator, rest = _after_scheme(url)
    if "@" in rest:
        rest = "***@" + rest.rpartition("@")[2]
    for mark in "?#":
        rest = rest.partition(mark)[0]
    shown = f"{scheme}{separator}{rest}"
    return shown if shown.isprintable() else ascii(shown)[1:-1]


def _after_scheme(url: str) -> tuple[str, str, str]:
    """Split ``url`` at ``://`` (none: all of it is the rest)."""
    scheme, separator, rest = url.partition("://")
    return (scheme, separator, rest) if separator else ("", "", url)


def _split(url: str, name: str, pieces: set[str], source: str) -> SplitResult:
    """Split ``url``; raise :class:`SettingError` (naming it as ``name``) if it cannot work."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as error:
        why = str(error)
        if any(piece in why for piece in pieces):  # the parser cut a password somewhere
            why = "see the form it takes in the README"
        raise SettingError(f"remote cache URL {name!r} is malformed ({why})", source) from None
    scheme = parts.scheme.lower()
    if scheme not in BACKENDS or not parts.hostname:
        schemes = ", ".join(f"{known}://" for known in BACKENDS)
        raise SettingError(
            f"remote cache URL {name!r} is not supported. Use one of {schemes}", source
        )
    if not parts.hostname.isprintable() or " " in parts.hostname or not _address(parts):
        raise SettingError(f"remote cache URL {name!r} has a malformed host", source)
    database = parts.path.strip("/")
    if scheme in EXTRAS and database and not database.isdigit():
        raise SettingError(
            f"remote cache URL {name!r} names no database number (/0, /1, ...)", source
        )
    return parts


def _address(parts: SplitResult) -> bool:
    """Whether a host in brackets is an IPv6 address (Python 3.10 does not check it)."""
    if "[" not in parts.netloc.rpartition("@")[2]:
        return True
    import ipaddress

    try:
        ipaddress.IPv6Address(str(parts.hostname).partition("%")[0])
    except ValueError:
        return False
    return True


def _credentials(url: str, key: str, token: str | None) -> tuple[set[str], set[str]]:
    """Return the pieces of the URL's user information, and every credential to mask."""
    import base64
    from urllib.parse import unquote

    userinfo = _after_scheme(url)[2].rpartition("@")[0]
    pieces = {piece for text in (userinfo, unquote(userinfo)) for piece in _pieces(text)}
    secrets = {text for text in (userinfo, unquote(userinfo), key, token) if text}
    if userinfo:  # as sent in an Authorization header, which a server might echo
        user, _, password = userinfo.partition(":")
        pair = f"{unquote(user)}:{unquote(password)}".encode()
        secrets.add(base64.b64encode(pair).decode())
    secrets.update(piece for piece in pieces if len(piece) >= _SHORTEST)
    return pieces, secrets


def _pieces(text: str) -> set[str]:
    """Split a URL's user information where a parser may cut it: each piece may be shown."""
    pieces = [text]
    for mark in ":/?#[]":
        pieces = [piece for part in pieces for piece in part.split(mark)]
    return {piece for piece in pieces if piece}


def _flag(value: str | None) -> bool:
    """Read an on/off option: bare ``?read-only`` is on; ``0``, ``no``, ``false`` are off."""
    return value is not None and value.lower() not in {"0", "no", "false", "off"}


def _number(text: str, variable: str, default: float, what: str = "timeout") -> float:
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1
    if not 0 <= value < _FOREVER or (what not in {"ttl", "retry"} and value == 0):
        raise SettingError(
            f"remote cache {what} {text!r} is not a positive number"
            + (" of seconds" if what != "connections" else ""),
            variable,
        )
    return value


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
    settings.read_only = settings.read_only or read_only
    down = _Down(store, settings) if store is not None and settings.retry else None
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


class _Down:
    """Remembers, in a local cache, that a remote could not be reached, for ``retry`` seconds.

    The mark is named by a digest of the URL with its credentials (and the token): another
    user's or another password's way into the same server is not left alone for this one's
    failure, and no credential is written in clear.
    """

    def __init__(self, store: Store, settings: Settings) -> None:
        from jobstamps.fingerprint import digest_bytes

        self.store = store
        self.retry_ns = int(settings.retry * 1e9)
        name = f"jobstamps-remote-down-2\0{settings.url}\0{settings.token or ''}"
        self.path = store.memo_path(digest_bytes(name.encode("utf-8", "surrogateescape")))

    def since(self) -> str:
        """Say why the remote is left alone now; ``""`` when it may be asked."""
        import time

        from jobstamps._fs import read_private

        words = (read_private(self.path) or b"").decode("utf-8", "replace").split(" ", 1)
        if len(words) != 2 or not words[0].isdigit():  # noqa: PLR2004 - the time, and why
            return ""
        failed = int(words[0])
        now = time.time_ns()
        if not now - self.retry_ns < failed <= now:
            return ""
        return (
            f"unreachable at {_clock(failed)} ({words[1]}), so not asked again before "
            f"{_clock(failed + self.retry_ns)} (JOBSTAMPS_REMOTE_RETRY sets how long)"
        )

    def mark(self, why: str) -> None:
        """Note now that the remote could not be reached, and why; never fails the caller."""
        import time

        from jobstamps._fs import atomic_write

        try:
            self.store.create()
            atomic_write(self.path, [f"{time.time_ns()} {why}".encode("utf-8", "replace")])
        except OSError:
            pass


def _clock(ns: int) -> str:
    import time

    return time.strftime("%H:%M:%S", time.localtime(ns / 1e9))


def stderr_line(line: str) -> None:
    """Write one line to standard error, losing it quietly where that cannot be done."""
    import sys

    try:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


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
