"""The strict reader of pipelined answers: what it accepts, and what makes it give up."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest

from jobstamps.storage.pipeline import Unsuitable, parse_head
from jobstamps.storage.records import Record, encode
from servers import CREDENTIALS, Nginx, connect

if TYPE_CHECKING:
    from pathlib import Path

OK = b'HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 171\r\nETag: "a:b"'


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (OK, (200, "OK", 171, False)),
        (b"HTTP/1.1 404 Not Found\r\ncontent-length:  0 ", (404, "Not Found", 0, False)),
        (b"HTTP/1.1 200\r\nContent-Length: 3\r\nCONNECTION: Close", (200, "", 3, True)),
        (b"HTTP/1.1 200 OK\r\nConnection: te, close\r\nContent-Length: 3", (200, "OK", 3, True)),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 3", (200, "OK", 3, True)),
        (b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 3", (200, "OK", 3, False)),
        (b"HTTP/1.1 500 Internal Server Error", (500, "Internal Server Error", None, False)),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3", (200, "OK", 3, False)),
    ],
)
def test_plain_answers_are_read(head: bytes, expected: tuple[int, str, int | None, bool]) -> None:
    assert parse_head(head) == expected


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: identity\r\nContent-Length: 3",
        b"HTTP/1.1 100 Continue",
        b"HTTP/1.1 204 No Content\r\nContent-Length: 0",
        b"HTTP/2 200 OK\r\nContent-Length: 3",
        b"HTTP/1.1 20 OK\r\nContent-Length: 3",
        b"HTTP/1.1 2000 OK\r\nContent-Length: 3",
        b"SSH-2.0-OpenSSH_9.6",
        b"HTTP/1.1 200 OK\nContent-Length: 3",
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\rX: y",
        b"HTTP/1.1 200 OK\r\nContent-Length : 3",
        b"HTTP/1.1 200 OK\r\nX-A: b\r\n c\r\nContent-Length: 3",
        b"HTTP/1.1 200 OK\r\nno colon here\r\nContent-Length: 3",
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4",
        b"HTTP/1.1 200 OK\r\nContent-Length: -3",
        b"HTTP/1.1 200 OK\r\nContent-Length: 3, 3",
        b"HTTP/1.1 200 OK\r\nContent-Length: 0x10",
    ],
)
def test_anything_unusual_means_the_server_does_not_suit_pipelining(head: bytes) -> None:
    with pytest.raises(Unsuitable):
        parse_head(head)


# -- against nginx ------------------------------------------------------------------------------


def _serve(root: Path, prefix: str, contents: dict[str, bytes]) -> None:
    """Put ``contents`` (by key) where nginx serves entries of the subdirs layout."""
    for key, data in contents.items():
        path = root / prefix / key[:2] / key[2:]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def test_a_connection_kept_from_an_earlier_batch_does_not_shrink_the_window(
    tmp_path: Path,
) -> None:
    # Each connection serves 50 requests; the first batch leaves one with a single request to
    # go. Its closing after that one says nothing of how many the server takes at once.
    server = Nginx(tmp_path, keepalive_requests=50)
    keys = [f"{index:040x}" for index in range(49 + 1000)]
    _serve(server.root, "kept", {key: encode(Record(key)) for key in keys[::2]})
    with server.running():
        remote, warnings = connect(f"{server.url}/kept", JOBSTAMPS_REMOTE_CONNECTIONS="1")
        assert len(remote.get_records(keys[:49])) == 25
        assert remote.get_records(keys[49:]) == {key: Record(key) for key in keys[50::2]}
        remote.close()
        server.logged("GET", "/kept/", len(keys))
        assert server.pipelined("/kept/") > len(keys) // 2
    assert warnings == []


@pytest.mark.parametrize(("location", "url", "env"), CREDENTIALS)
def test_credentials_go_with_every_pipelined_request(
    nginx: Nginx, location: str, url: str, env: dict[str, str]
) -> None:
    # Bodies that hold what looks like answers are read by their length, not searched.
    keys = [f"{index:040x}" for index in range(300)]
    contents = {
        key: b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n" * (index % 3) + os.urandom(index)
        for index, key in enumerate(keys[::2])
    }
    _serve(nginx.root, location, contents)
    address = nginx.url.removeprefix("http://")
    remote, warnings = connect(f"{url}{address}/{location}", **env)
    assert remote.backend is not None
    assert remote.backend.get_entries(keys) == contents
    remote.close()
    assert warnings == []
    assert nginx.pipelined(f"/{location}/") > len(keys) // 2
    assert {
        status for _, path, status, _ in nginx.requests() if path.startswith(f"/{location}/")
    } == {200, 404}
