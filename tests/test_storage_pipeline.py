"""The strict reader of pipelined answers: what it accepts, and what makes it give up."""

from __future__ import annotations

import pytest

from jobstamps.storage.pipeline import Unsuitable, parse_head

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
