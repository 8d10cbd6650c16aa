"""A remote cache's settings: the URL, its options and variables, and the credentials in them.

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

Settings that cannot work raise :class:`SettingError`; no message shows a credential
(:meth:`Settings.scrub`, :func:`redact`), and a password on the command line is warned about
(:func:`warn_if_visible`).

Importing this module costs nothing more than ``os``: the URL is parsed only when a remote is
configured and first needed.
"""

from __future__ import annotations

import os

from jobstamps.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from urllib.parse import SplitResult

__all__ = [
    "BACKENDS",
    "EXTRAS",
    "SettingError",
    "Settings",
    "redact",
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
DEFAULT_TIMEOUT = 5.0
MAX_CONNECT_TIMEOUT = 2.0
DEFAULT_CONNECTIONS = 8
DEFAULT_RETRY = 60.0
_FOREVER = 1e9
#: Pieces of a password shorter than this are not masked in messages: they would mask words.
_SHORTEST = 3


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


def stderr_line(line: str) -> None:
    """Write one line to standard error, losing it quietly where that cannot be done."""
    import sys

    try:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


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
