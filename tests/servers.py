"""Real servers for the remote cache tests: nginx (WebDAV), redis-server and a misbehaving
HTTP server, each on 127.0.0.1 at a free port, in its own temporary directory.

Each is a context manager that starts the server, waits until it answers, and stops it on the
way out. Tests skip, saying why, when a server's program is not installed (``.ci/run``
installs them, so CI never skips). ``conftest.py`` offers the fixtures
defined here to every test module: ``nginx``, ``redis_server`` and ``bad_server``, one per
module.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

    from jobstamps.storage.remote import Remote

START_TIMEOUT = 20


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on (now)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            message = f"server exited with {process.returncode}: {_tail(log)}"
            raise RuntimeError(message)
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    message = f"server did not listen on port {port}: {_tail(log)}"
    raise RuntimeError(message)


def _tail(log: Path) -> str:
    try:
        return log.read_text(errors="replace")[-2000:]
    except OSError:
        return "(no log)"


def _program(name: str, *extra_dirs: str) -> str:
    """Return the path of the server program ``name``, or skip the test."""
    path = os.pathsep.join([os.environ.get("PATH", ""), *extra_dirs])
    found = shutil.which(name, path=path)
    if found is None:
        pytest.skip(f"{name} is not installed (.ci/run installs it: apt-get install {name})")
    return found


@contextlib.contextmanager
def _running(
    command: list[str], port: int, log: Path, cwd: Path
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, cwd=cwd, stdin=subprocess.DEVNULL, stdout=output, stderr=output
        )
    try:
        _wait_for_port(port, process, log)
        yield process
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a server (politely, then not), and reap it."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


class Nginx:
    """nginx serving ``root`` with WebDAV PUT, at ``url``.

    ``/fail/`` answers 500 and ``/forbidden/`` 403 to everything; ``/basic/`` wants the user
    :data:`USER` with password :data:`PASSWORD`, ``/bearer/`` the token :data:`TOKEN`. The
    access log names each request's method, path, status, connection number and whether it came
    pipelined (``p``, else ``.``). Each connection
    serves at most ``keepalive_requests`` requests; with ``tls``, nginx speaks HTTPS only, with a
    self-signed certificate for 127.0.0.1 at :attr:`certificate`.
    """

    #: Whether to start it with the directives that keep it one process in the foreground
    #: (:meth:`config` has them, else).
    FOREGROUND = False
    USER = "ci"
    PASSWORD = "hunter2"  # noqa: S105 - a test server's
    TOKEN = "t0ken"  # noqa: S105 - a test server's

    def __init__(self, directory: Path, keepalive_requests: int = 10000, tls: bool = False) -> None:
        self.directory = directory
        self.root = directory / "root"
        self.port = free_port()
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.access_log = directory / "access.log"
        self.keepalive_requests = keepalive_requests
        self.tls = tls
        self.certificate = directory / "cert.pem"
        self.process: subprocess.Popen[bytes] | None = None

    def config(self) -> str:
        d = self.directory
        temps = "\n".join(
            f"    {kind}_temp_path {d}/{kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        return f"""
daemon off;
master_process off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 512; }}
http {{
    log_format requests '$request_method $uri $status $connection $pipe';
    access_log {self.access_log} requests;
{temps}
    keepalive_requests {self.keepalive_requests};
    server {{
        listen 127.0.0.1:{self.port}{" ssl" if self.tls else ""};
        root {self.root};{self._tls_config()}
        client_max_body_size 64m;
        location / {{
            dav_methods PUT DELETE MKCOL;
            create_full_put_path on;
            dav_access user:rw;
        }}
        location /basic/ {{
            auth_basic "cache";
            auth_basic_user_file {d}/htpasswd;
            dav_methods PUT;
            create_full_put_path on;
        }}
        location /bearer/ {{
            if ($http_authorization != "Bearer {self.TOKEN}") {{ return 401; }}
            dav_methods PUT;
            create_full_put_path on;
        }}
        location /fail/ {{ return 500; }}
        location /forbidden/ {{ return 403; }}
    }}
}}
"""

    def _tls_config(self) -> str:
        if not self.tls:
            return ""
        key = self_signed(self.certificate)
        return f"\n        ssl_certificate {self.certificate};\n        ssl_certificate_key {key};"

    @contextlib.contextmanager
    def running(self) -> Iterator[Nginx]:
        """Start nginx, yield self, stop it."""
        nginx = _program("nginx", "/usr/sbin", "/usr/local/sbin")
        self.root.mkdir(parents=True, exist_ok=True)
        conf = self.directory / "nginx.conf"
        conf.write_text(self.config())
        (self.directory / "htpasswd").write_text(f"{self.USER}:{{PLAIN}}{self.PASSWORD}\n")
        log = self.directory / "error.log"
        command = [nginx, "-p", str(self.directory), "-c", str(conf), "-e", str(log)]
        command += ["-g", "daemon off; master_process off;"] if self.FOREGROUND else []
        with _running(command, self.port, self.directory / "stdout.log", self.directory) as proc:
            self.process = proc
            yield self

    def requests(self) -> list[tuple[str, str, int, int]]:
        """Return ``(method, path, status, connection)`` of every request served so far."""
        lines = self.access_log.read_text().splitlines() if self.access_log.exists() else []
        result = []
        for line in lines:
            method, path, status, connection, _ = line.split(" ")
            result.append((method, path, int(status), int(connection)))
        return result

    def pipelined(self, prefix: str) -> int:
        """Count the requests for paths under ``prefix`` that came pipelined after another."""
        lines = self.access_log.read_text().splitlines() if self.access_log.exists() else []
        return sum(1 for line in lines if line.split(" ")[1].startswith(prefix) and line[-1] == "p")

    def logged(self, method: str, prefix: str, count: int = 0) -> list[tuple[str, int]]:
        """Return ``(path, connection)`` of the ``method`` requests for paths under ``prefix``,
        waiting (briefly) for ``count`` of them: nginx logs a request after answering it."""
        deadline = time.monotonic() + 5
        while True:
            found = [
                (path, connection)
                for verb, path, _, connection in self.requests()
                if verb == method and path.startswith(prefix)
            ]
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.01)


#: The nginx configuration shipped for a team cache (docs/howto/team-cache.rst shows it).
SHIPPED_NGINX = Path(__file__).resolve().parent.parent / "contrib" / "nginx-jobstamps.conf"


class ShippedNginx(Nginx):
    """nginx started from :data:`SHIPPED_NGINX`, its port and paths moved into ``directory``.

    Writes need :attr:`USER` with :attr:`PASSWORD` under ``/jobstamps/``; reads need nothing.
    """

    FOREGROUND = True

    def config(self) -> str:
        text = SHIPPED_NGINX.read_text()
        d = self.directory
        for shipped, here in [
            ("listen 8080;", f"listen 127.0.0.1:{self.port};"),
            ("/var/cache/jobstamps;", f"{self.root};"),
            ("/var/cache/nginx-jobstamps-temp;", f"{d}/client_body;"),
            ("/etc/nginx/jobstamps.htpasswd;", f"{d}/htpasswd;"),
            ("/run/nginx-jobstamps.pid;", f"{d}/nginx.pid;"),
            ("/var/log/nginx/jobstamps-error.log", f"{d}/error.log"),
            ("/var/log/nginx/jobstamps-access.log", f"{self.access_log}"),
        ]:
            assert text.count(shipped) == 1, f"{shipped} is not in {SHIPPED_NGINX} once"
            text = text.replace(shipped, here)
        return text


#: ``(location, URL prefix, environment)`` of each protected location of :class:`Nginx`, with
#: the credentials it wants.
CREDENTIALS = [
    ("basic", f"http://{Nginx.USER}:{Nginx.PASSWORD}@", {}),
    ("bearer", "http://", {"JOBSTAMPS_REMOTE_TOKEN": Nginx.TOKEN}),
]


def self_signed(certificate: Path) -> Path:
    """Make a self-signed certificate for 127.0.0.1 at ``certificate`` (once); return its key."""
    key = certificate.with_name("key.pem")
    if not certificate.exists():
        openssl = _program("openssl", "/usr/bin", "/usr/local/bin")
        subprocess.run(
            [
                *(openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"),
                *("-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"),
                *("-keyout", str(key), "-out", str(certificate)),
            ],
            check=True,
            capture_output=True,
        )
    return key


class RedisServer:
    """``redis-server`` without persistence, optionally with a password, at ``url``.

    With ``tls``, it speaks TLS only (``rediss://``), with a self-signed certificate for
    127.0.0.1 at :attr:`certificate`, and does not ask clients for certificates.
    """

    def __init__(self, directory: Path, password: str | None = None, tls: bool = False) -> None:
        self.directory = directory
        self.password = password
        self.port = free_port()
        self.tls = tls
        self.certificate = directory / "cert.pem"
        auth = f":{password}@" if password else ""
        self.url = f"{'rediss' if tls else 'redis'}://{auth}127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    @contextlib.contextmanager
    def running(self) -> Iterator[RedisServer]:
        """Start redis-server, yield self, stop it."""
        server = _program("redis-server", "/usr/bin", "/usr/local/bin")
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.tls:
            key = self_signed(self.certificate)
            ports = ["--port", "0", "--tls-port", str(self.port), "--tls-auth-clients", "no"]
            ports += ["--tls-cert-file", str(self.certificate), "--tls-key-file", str(key)]
        else:
            ports = ["--port", str(self.port)]
        command = [
            server,
            *ports,
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.directory),
            "--daemonize",
            "no",
        ]
        if self.password:
            command += ["--requirepass", self.password]
        with _running(command, self.port, self.directory / "redis.log", self.directory) as proc:
            self.process = proc
            yield self

    def client(self) -> object:
        """Return a redis-py client of this server (for inspecting it from tests)."""
        import redis

        return (
            redis.Redis.from_url(self.url, ssl_ca_certs=str(self.certificate))
            if self.tls
            else (redis.Redis.from_url(self.url))
        )


class Place:
    """A fresh corner of a running server for one test, and ways to look into it."""

    def __init__(self, kind: str, nginx: Nginx | None, redis: RedisServer | None) -> None:
        tag = uuid.uuid4().hex[:12]
        self.kind = kind
        self.nginx = nginx
        self.redis = redis
        if redis is not None:
            self.prefix = f"t{tag}:"
            self.url = f"{redis.url}?prefix={self.prefix}"
        else:
            assert nginx is not None
            self.prefix = f"/{tag}/"
            self.url = f"{nginx.url}/{tag}?layout={kind}"

    def uploads(self) -> int:
        """Count what is stored in this corner (files under nginx's root, or Redis keys)."""
        if self.redis is not None:
            client = self.redis.client()
            return len(client.keys(f"{self.prefix}*"))  # type: ignore[attr-defined]
        assert self.nginx is not None
        return sum(
            1 for path in (self.nginx.root / self.prefix.strip("/")).rglob("*") if path.is_file()
        )


#: A misbehaving HTTP server: the first path segment chooses how it misbehaves. Under the
#: modes of ``STORING`` it keeps what is PUT and answers GETs for it (404 for the rest) in its
#: way: ``chunked`` (a chunked body), ``unframed`` (no Content-Length: the body ends with the
#: connection), ``http10`` (HTTP/1.0, closing after each answer), ``nohttp`` (not HTTP at all),
#: ``cut`` (a body cut short, for paths with ``cccccccc``; the rest as they should be),
#: ``twice`` (every answer twice, so that later answers fall on the wrong requests).
BAD_SERVER = r"""
import http.server, os, sys, time

STORING = {"chunked", "unframed", "http10", "nohttp", "cut", "twice"}
STORED = {}

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def stored(self, mode):
        body = STORED.get(self.path)
        if mode == "nohttp":
            self.wfile.write(b"SSH-2.0-OpenSSH_9.6\r\nProtocol mismatch.\r\n\r\n")
            self.close_connection = True
            return
        if mode == "http10":
            self.protocol_version = "HTTP/1.0"
            self.close_connection = True
        if body is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        if mode == "chunked":
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
            return
        if mode == "unframed":
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = True
            return
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if mode == "twice":
            self.wfile.write(body)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
        if mode == "cut" and "cccccccc" in self.path:
            self.wfile.write(body[: len(body) // 2])
            self.close_connection = True
            return
        self.wfile.write(body)

    def do_GET(self):
        mode = self.path.split("/")[1]
        if mode in STORING:
            self.stored(mode)
            return
        if mode == "slow":
            time.sleep(30)
        if mode == "drip":
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            for _ in range(1000):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.05)
            return
        if mode == "truncated":
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self.wfile.write(b"jobstamps-record-1\n" + b"k" * 100)
            self.wfile.flush()
            self.close_connection = True
            return
        if mode == "huge":
            self.send_response(200)
            self.send_header("Content-Length", str(1 << 30))
            self.end_headers()
            self.wfile.write(b"\0" * 65536)
            self.close_connection = True
            return
        body = os.urandom(500) if mode == "garbage" else b"teapot"
        self.send_response(200 if mode == "garbage" else 418)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_HEAD = do_GET

    def do_PUT(self):
        if self.path.split("/")[1] == "slow":
            time.sleep(30)
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path.split("/")[1] in STORING:
            STORED[self.path] = body
        self.send_response(201)
        self.send_header("Content-Length", "0")
        self.end_headers()

server = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
server.daemon_threads = True
server.serve_forever()
"""


@contextlib.contextmanager
def bad_http_server(directory: Path) -> Iterator[str]:
    """Run :data:`BAD_SERVER` in a process of its own; yield its base URL."""
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    command = [sys.executable, "-c", BAD_SERVER, str(port)]
    with _running(command, port, directory / "bad-server.log", directory):
        yield f"http://127.0.0.1:{port}"


@contextlib.contextmanager
def one_at_a_time_server(entries: dict[str, bytes]) -> Iterator[str]:
    """Serve ``entries`` (by path) one request per connection, as strict proxies do: a
    connection that sends several requests at once is closed unanswered. Yield its URL."""
    import threading

    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    done = threading.Event()

    def answer(connection: socket.socket) -> None:
        with connection:
            connection.settimeout(5)
            data = b""
            while b"\r\n\r\n" not in data:
                piece = connection.recv(65536)
                if not piece:
                    return
                data += piece
            time.sleep(0.01)  # let requests sent with it arrive
            connection.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                data += connection.recv(65536)
            if data.count(b"GET ") != 1:
                return
            body = entries.get(data.split(b" ")[1].decode())
            head = b"HTTP/1.1 404 Not Found" if body is None else b"HTTP/1.1 200 OK"
            body = body or b""
            connection.setblocking(True)
            connection.sendall(
                b"%s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (head, len(body), body)
            )

    def serve() -> None:
        while not done.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=answer, args=(connection,), daemon=True).start()

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        done.set()
        server.join()
        listener.close()


class SilentServer:
    """A TCP server on 127.0.0.1 that accepts connections and never answers (a hung cache
    server), counting the connections in :attr:`accepted`."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.accepted = 0
        self._held: list[socket.socket] = []
        self._stop = False

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:  # closed: the test is over
                return
            self.accepted += 1
            self._take(connection)

    def _take(self, connection: socket.socket) -> None:
        self._held.append(connection)

    @contextlib.contextmanager
    def running(self) -> Iterator[SilentServer]:
        """Accept connections in a thread of this process until the block ends."""
        import threading

        thread = threading.Thread(target=self._serve, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop = True
            with contextlib.suppress(OSError):
                self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() up
            self.listener.close()
            thread.join(5)
            for connection in self._held:
                connection.close()


class DripServer(SilentServer):
    """A server on 127.0.0.1 whose answers never end but never stall: the start of an answer,
    then one byte every ``interval`` seconds for as long as the client listens, so that no
    single read ever waits long.

    ``drips`` maps an HTTP method to the start of its answer (``"*"``: any bytes at all, for
    servers that do not speak HTTP); other HTTP requests are answered 404 at once. With
    ``unit``, that is what it sends again and again instead of one byte, and with an
    ``interval`` of 0 as fast as it can. Connections still open are counted in :attr:`open`.
    """

    def __init__(self, drips: dict[str, bytes], interval: float = 0.05, unit: bytes = b"x") -> None:
        super().__init__()
        self.drips = drips
        self.interval = interval
        self.unit = unit
        self.open = 0

    def _answer(self, connection: socket.socket) -> None:
        self.open += 1
        try:
            data = b""
            while not self._stop:
                if "*" in self.drips:
                    start = self.drips["*"] if connection.recv(65536) else None
                else:
                    start, data = self._request(connection, data)
                if start is None:
                    return
                if start.startswith(b"HTTP/1.1 404"):
                    connection.sendall(start)
                    continue
                connection.sendall(start)
                while not self._stop:
                    connection.sendall(self.unit)
                    time.sleep(self.interval)
        except OSError:  # the client gave up: what this server is for
            return
        finally:
            self.open -= 1
            connection.close()

    def _request(self, connection: socket.socket, data: bytes) -> tuple[bytes | None, bytes]:
        """Read one HTTP request (head and body); return the start of its answer and the rest."""
        while b"\r\n\r\n" not in data:
            piece = connection.recv(65536)
            if not piece:
                return None, b""
            data += piece
        head, _, data = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(data) < length:
            piece = connection.recv(65536)
            if not piece:
                return None, b""
            data += piece
        method = head.split(b" ", 1)[0].decode()
        start = self.drips.get(method, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        return start, data[length:]

    def _take(self, connection: socket.socket) -> None:
        import threading

        threading.Thread(target=self._answer, args=(connection,), daemon=True).start()


#: Starts of answers for :class:`DripServer`: HTTP headers that never end, an HTTP body that
#: never ends, a Redis bulk string that never ends.
DRIPPING_HEAD = b"HTTP/1.1 200 OK\r\nX-Slowly: "
DRIPPING_BODY = b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n"
DRIPPING_REDIS = b"$1000000\r\n"


class SlowPutServer:
    """An HTTP server on 127.0.0.1 (or ``host``) whose every PUT takes ``delay`` seconds,
    counting how many it answered (:attr:`puts`) and the most it held at once
    (:attr:`most_at_once`). It has nothing to GET (404)."""

    def __init__(self, delay: float, host: str = "127.0.0.1") -> None:
        import http.server
        import threading

        self.puts = self.most_at_once = 0
        lock = threading.Lock()
        active = [0]
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_PUT(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with lock:
                    active[0] += 1
                    server.most_at_once = max(server.most_at_once, active[0])
                time.sleep(delay)
                with lock:
                    active[0] -= 1
                    server.puts += 1
                self.send_response(201)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self) -> None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

        class Server(http.server.ThreadingHTTPServer):
            address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

        self.httpd = Server((host, 0), Handler)
        self.httpd.daemon_threads = True
        address = f"[{host}]" if ":" in host else host
        self.url = f"http://{address}:{self.httpd.server_address[1]}/cache"

    @contextlib.contextmanager
    def running(self) -> Iterator[SlowPutServer]:
        """Serve in a thread of this process until the block ends."""
        import threading

        thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.httpd.shutdown()
            self.httpd.server_close()
            thread.join(5)


def connect(url: str, **env: str) -> tuple[Remote, list[str]]:
    """Open the remote at ``url`` with ``JOBSTAMPS_REMOTE_*`` settings ``env``; return it and
    the list its warnings go to."""
    from jobstamps.storage.remote import open_remote

    warnings: list[str] = []
    remote = open_remote(url, env=env, warn=warnings.append)
    assert remote is not None
    return remote, warnings


@pytest.fixture(scope="module")
def nginx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    """An nginx for the module's tests; each test should use a path of its own."""
    with Nginx(tmp_path_factory.mktemp("nginx")).running() as server:
        yield server


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server for the module's tests; each test should use keys of its own."""
    with RedisServer(tmp_path_factory.mktemp("redis")).running() as server:
        yield server


@pytest.fixture(scope="module")
def bad_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL of a :data:`BAD_SERVER` for the module's tests."""
    with bad_http_server(tmp_path_factory.mktemp("bad")) as url:
        yield url
