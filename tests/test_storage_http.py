"""The HTTP backend against real servers: nginx with WebDAV, and one that misbehaves."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from typing import TYPE_CHECKING

import pytest

from jobstamps.storage.records import Record, encode, sha256_hex
from servers import (
    CREDENTIALS,
    DRIPPING_BODY,
    DRIPPING_HEAD,
    DripServer,
    Nginx,
    SlowPutServer,
    connect,
    free_port,
    one_at_a_time_server,
)

if TYPE_CHECKING:
    from pathlib import Path

KEY = "0123456789" * 4


@pytest.mark.parametrize(
    ("layout", "entry", "blob"),
    [
        ("subdirs", f"01/{KEY[2:]}", "cas/{d2}/{rest}"),
        ("flat", KEY, "cas/{digest}"),
        ("bazel", f"ac/{hashlib.sha256(KEY.encode()).hexdigest()}", "cas/{digest}"),
    ],
)
def test_each_layout_puts_entries_and_blobs_where_it_says(
    nginx: Nginx, layout: str, entry: str, blob: str
) -> None:
    output = os.urandom(300_000)
    digest = sha256_hex(output)
    remote, warnings = connect(f"{nginx.url}/{layout}-layout/?layout={layout}")
    remote.put_record(
        Record(KEY, chunks=[(1, len(output))], blob=(digest, len(output))), {digest: output}
    )
    remote.close()
    assert warnings == []
    root = nginx.root / f"{layout}-layout"
    assert (root / entry).is_file()
    blob_path = root / blob.format(d2=digest[:2], rest=digest[2:], digest=digest)
    assert blob_path.read_bytes() == output
    assert len(list(root.rglob("*"))) == len(set(root.rglob("*")))


def test_many_keys_go_out_over_several_keep_alive_connections(nginx: Nginx) -> None:
    writer, _ = connect(f"{nginx.url}/many")
    keys = [f"{index:040x}" for index in range(300)]
    for key in keys[::2]:
        writer.put_record(Record(key))
    writer.close()
    remote, warnings = connect(f"{nginx.url}/many", JOBSTAMPS_REMOTE_CONNECTIONS="6")
    assert set(remote.get_records(keys)) == set(keys[::2])
    remote.close()
    gets = nginx.logged("GET", "/many/", len(keys))
    assert sorted(path for path, _ in gets) == sorted(f"/many/{k[:2]}/{k[2:]}" for k in keys)
    connections = {connection for _, connection in gets}
    assert 1 < len(connections) <= 6
    assert warnings == []


def test_a_connection_the_server_closed_is_opened_again(tmp_path: Path) -> None:
    server = Nginx(tmp_path)
    with server.running():
        remote, warnings = connect(server.url)
        remote.put_record(Record(KEY))
        assert remote.flush()
        assert remote.get_records([KEY]) == {KEY: Record(KEY)}
    with server.running():  # the same port: kept-alive connections are now dead
        assert remote.get_records([KEY]) == {KEY: Record(KEY)}
        remote.close()
    assert warnings == []


@pytest.mark.parametrize(
    ("path", "why"),
    [("fail", "answered 500"), ("forbidden", "answered 403")],
)
def test_error_statuses_are_misses_with_one_warning(nginx: Nginx, path: str, why: str) -> None:
    remote, warnings = connect(f"{nginx.url}/{path}")
    assert remote.get_records([KEY, "1" * 40, "2" * 40]) == {}
    assert remote.get_blob("a" * 64, 10) is None
    remote.put_record(Record(KEY))
    remote.close()
    assert len(warnings) == 1
    assert why in warnings[0]
    assert warnings[0].startswith(f"jobstamp: remote cache {nginx.url}/{path}: ")


@pytest.mark.parametrize(
    ("mode", "why"),
    [
        ("garbage", "damaged"),
        ("truncated", "cut short"),
        ("slow", "no answer within 0.2 s"),
        ("drip", "within 0.2 s"),
        ("huge", "more than expected"),
        ("teapot", "answered 418"),
    ],
)
def test_bad_answers_are_misses_with_one_warning(bad_server: str, mode: str, why: str) -> None:
    remote, warnings = connect(f"{bad_server}/{mode}", JOBSTAMPS_REMOTE_TIMEOUT="0.2")
    start = time.monotonic()
    assert remote.get_records([KEY, "1" * 40]) == {}
    assert remote.get_blob("a" * 64, 1 << 20) is None
    assert time.monotonic() - start < 20  # not the 30 s the slow server would take
    remote.close(timeout=5)
    assert len(warnings) == 1
    assert why in warnings[0], warnings[0]


@pytest.mark.slow
def test_a_server_stopped_in_the_middle_of_a_batch_is_a_miss_and_one_warning(
    tmp_path: Path,
) -> None:
    server = Nginx(tmp_path)
    keys = [f"{index:040x}" for index in range(2000)]
    with server.running():
        writer, _ = connect(server.url)
        for key in keys:
            writer.put_record(Record(key))
        writer.close()
        server.logged("PUT", "/", len(keys))
        remote, warnings = connect(server.url, JOBSTAMPS_REMOTE_CONNECTIONS="2")

        def stop_after_some_requests() -> None:
            server.logged("GET", "/", 50)
            assert server.process is not None
            server.process.kill()

        stopper = threading.Thread(target=stop_after_some_requests)
        stopper.start()
        found = remote.get_records(keys)
        stopper.join()
        assert 0 < len(found) < len(keys)
        assert all(record == Record(key) for key, record in found.items())
        assert remote.get_records(keys) == {}
        remote.close()
    assert len(warnings) == 1


@pytest.mark.parametrize(("path", "url", "env"), CREDENTIALS)
def test_credentials_open_a_protected_cache(
    nginx: Nginx, path: str, url: str, env: dict[str, str]
) -> None:
    address = nginx.url.removeprefix("http://")
    remote, warnings = connect(f"{url}{address}/{path}", **env)
    remote.put_record(Record(KEY))
    assert remote.flush()
    assert remote.get_records([KEY]) == {KEY: Record(KEY)}
    remote.close()
    assert warnings == []
    refused, warnings = connect(f"{nginx.url}/{path}")
    assert refused.get_records([KEY]) == {}
    refused.close()
    assert len(warnings) == 1
    assert "answered 401" in warnings[0]
    assert Nginx.PASSWORD not in warnings[0]


# -- batches: pipelined GETs ----------------------------------------------------------------


def _store(root: Path, prefix: str, keys: list[str]) -> None:
    """Put the entries of ``keys`` where nginx serves them (the subdirs layout)."""
    for key in keys:
        path = root / prefix / key[:2] / key[2:]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(encode(Record(key)))


def test_a_batch_of_2000_keys_is_pipelined_over_few_connections(nginx: Nginx) -> None:
    keys = [f"{index:040x}" for index in range(2000)]
    stored = keys[::3]
    _store(nginx.root, "pipelined", stored)
    remote, warnings = connect(f"{nginx.url}/pipelined", JOBSTAMPS_REMOTE_CONNECTIONS="4")
    found = remote.get_records(keys)
    remote.close()
    assert found == {key: Record(key) for key in stored}
    gets = nginx.logged("GET", "/pipelined/", len(keys))
    assert sorted(path for path, _ in gets) == sorted(f"/pipelined/{k[:2]}/{k[2:]}" for k in keys)
    assert 1 <= len({connection for _, connection in gets}) <= 4
    assert nginx.pipelined("/pipelined/") > len(keys) // 2
    assert remote.stats.requests == len(keys)
    assert warnings == []


def test_a_batch_larger_than_keepalive_requests_reconnects_until_all_are_answered(
    tmp_path: Path,
) -> None:
    server = Nginx(tmp_path, keepalive_requests=50)
    keys = [f"{index:040x}" for index in range(1000)]
    _store(server.root, "limited", keys[1::2])
    with server.running():
        remote, warnings = connect(f"{server.url}/limited", JOBSTAMPS_REMOTE_CONNECTIONS="2")
        assert remote.get_records(keys) == {key: Record(key) for key in keys[1::2]}
        remote.close()
        gets = server.logged("GET", "/limited/", len(keys))
    assert {path for path, _ in gets} == {f"/limited/{k[:2]}/{k[2:]}" for k in keys}
    assert len({connection for _, connection in gets}) >= len(keys) // 50
    assert server.pipelined("/limited/") > len(keys) // 2
    assert warnings == []


def test_a_batch_reopens_kept_connections_the_server_closed(tmp_path: Path) -> None:
    server = Nginx(tmp_path)
    keys = [f"{index:040x}" for index in range(300)]
    _store(server.root, "again", keys[:100])
    remote, warnings = connect(f"{server.url}/again")
    with server.running():
        assert len(remote.get_records(keys)) == 100
    with server.running():  # the same port: the pipelined connections kept are now dead
        assert remote.get_records(keys) == {key: Record(key) for key in keys[:100]}
    remote.close()
    assert warnings == []


def test_a_batch_over_https_is_pipelined_and_checks_the_certificate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = Nginx(tmp_path, tls=True)
    keys = [f"{index:040x}" for index in range(500)]
    _store(server.root, "tls", keys[::2])
    with server.running():
        untrusted, warnings = connect(f"{server.url}/tls")
        assert untrusted.get_records(keys) == {}
        untrusted.close()
        assert len(warnings) == 1
        assert "CERTIFICATE_VERIFY_FAILED" in warnings[0], warnings[0]
        monkeypatch.setenv("SSL_CERT_FILE", str(server.certificate))
        remote, warnings = connect(f"{server.url}/tls")
        remote.put_record(Record(KEY))
        assert remote.flush()
        assert remote.get_records([*keys, KEY]) == {k: Record(k) for k in [*keys[::2], KEY]}
        remote.close()
        gets = server.logged("GET", "/tls/", len(keys) + 1)
    assert len(gets) == len(keys) + 1
    assert len({connection for _, connection in gets}) <= 8  # the default number
    assert server.pipelined("/tls/") > len(keys) // 2
    assert warnings == []


def _stored_on(bad_server: str, mode: str, keys: list[str]) -> None:
    writer, warnings = connect(f"{bad_server}/{mode}")
    for key in keys:
        writer.put_record(Record(key))
    writer.close()
    assert warnings == []


@pytest.mark.parametrize("mode", ["chunked", "unframed", "http10"])
def test_servers_that_do_not_suit_pipelining_still_answer_every_key(
    bad_server: str, mode: str, capfd: pytest.CaptureFixture[str]
) -> None:
    keys = [f"{mode}{index:034x}"[-40:] for index in range(120)]
    _stored_on(bad_server, mode, keys[5::2])
    remote, warnings = connect(f"{bad_server}/{mode}", JOBSTAMPS_REMOTE_CONNECTIONS="2")
    assert remote.get_records(keys) == {key: Record(key) for key in keys[5::2]}
    assert remote.get_records(keys[:20]) == {key: Record(key) for key in keys[5:20:2]}
    remote.close()
    assert warnings == []
    assert capfd.readouterr().err == ""


def test_an_answer_that_is_not_http_is_a_miss_with_one_warning(
    bad_server: str, capfd: pytest.CaptureFixture[str]
) -> None:
    keys = [f"{index:040x}" for index in range(100)]
    _stored_on(bad_server, "nohttp", keys)
    remote, warnings = connect(f"{bad_server}/nohttp")
    assert remote.get_records(keys) == {}
    remote.close()
    assert len(warnings) == 1
    assert "\n" not in warnings[0]
    assert "SSH-2.0" in warnings[0]
    assert capfd.readouterr().err == ""


def test_a_body_cut_short_in_a_pipelined_batch_keeps_what_was_answered(bad_server: str) -> None:
    keys = [f"{index:040x}" for index in range(200)]
    keys[150] = "c" * 40  # the server cuts this answer short
    _stored_on(bad_server, "cut", keys)
    remote, warnings = connect(f"{bad_server}/cut", JOBSTAMPS_REMOTE_CONNECTIONS="1")
    found = remote.get_records(keys)
    remote.close()
    assert keys[150] not in found
    assert 0 < len(found) < len(keys)
    assert found == {key: Record(key) for key in found}
    assert set(keys[:150]) <= set(found)  # answered in order, before the cut
    assert len(warnings) == 1
    assert "cut short" in warnings[0]


def test_large_entries_in_a_pipelined_batch_arrive_whole(nginx: Nginx) -> None:
    from jobstamps.storage.backend import RemoteError
    from jobstamps.storage.http import MAX_ENTRY

    keys = [f"{index:040x}" for index in range(100)]
    contents = {
        key: os.urandom(3 << 20 if index % 40 == 7 else 200) for index, key in enumerate(keys)
    }
    for key, data in contents.items():
        path = nginx.root / "large" / key[:2] / key[2:]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    remote, warnings = connect(f"{nginx.url}/large", JOBSTAMPS_REMOTE_CONNECTIONS="1")
    assert remote.backend is not None
    assert remote.backend.get_entries(keys) == contents
    assert remote.stats.bytes_down == sum(map(len, contents.values()))
    (nginx.root / "large" / keys[50][:2] / keys[50][2:]).write_bytes(b"x" * (MAX_ENTRY + 1))
    with pytest.raises(RemoteError, match="more than expected") as failure:
        remote.backend.get_entries(keys)
    assert failure.value.partial == {key: contents[key] for key in keys[:50]}
    remote.close()
    assert warnings == []


def test_answers_that_fall_on_the_wrong_requests_are_never_taken(bad_server: str) -> None:
    keys = [f"{index:040x}" for index in range(200)]
    _stored_on(bad_server, "twice", keys)
    remote, warnings = connect(f"{bad_server}/twice", JOBSTAMPS_REMOTE_CONNECTIONS="2")
    found = remote.get_records(keys)
    remote.close()
    assert found == {key: Record(key) for key in found}
    assert len(found) <= 2  # the first answer on each connection
    assert len(warnings) == 1
    assert "another key" in warnings[0] or "more than it was asked" in warnings[0], warnings[0]


def test_a_refused_batch_warns_once_and_the_remote_is_not_asked_again() -> None:
    remote, warnings = connect(f"http://127.0.0.1:{free_port()}/cache")
    keys = [f"{index:040x}" for index in range(200)]
    assert remote.get_records(keys) == {}
    assert not remote.usable
    assert remote.get_records(keys) == {}
    remote.close()
    assert len(warnings) == 1
    assert "connection refused; continuing without it" in warnings[0]


def test_a_server_that_closes_on_pipelined_requests_is_asked_one_at_a_time() -> None:
    keys = [f"{index:040x}" for index in range(100)]
    entries = {f"/one/{key[:2]}/{key[2:]}": encode(Record(key)) for key in keys[::2]}
    with one_at_a_time_server(entries) as url:
        remote, warnings = connect(f"{url}/one")
        assert remote.get_records(keys) == {key: Record(key) for key in keys[::2]}
        assert remote.get_records(keys[:10]) == {key: Record(key) for key in keys[:10:2]}
        remote.close()
    assert warnings == []


# -- deadlines: servers that answer a little at a time, for ever ------------------------------


@pytest.mark.parametrize("start", [DRIPPING_HEAD, DRIPPING_BODY], ids=["headers", "body"])
@pytest.mark.parametrize("count", [1, 100], ids=["one key", "a batch"])
def test_an_answer_that_drips_misses_the_deadline_and_the_remote_is_skipped(
    start: bytes, count: int
) -> None:
    keys = [f"{index:040x}" for index in range(count)]
    with DripServer({"GET": start, "HEAD": start}).running() as server:
        url = f"http://127.0.0.1:{server.port}/cache"
        remote, warnings = connect(url, JOBSTAMPS_REMOTE_TIMEOUT="0.5")
        began = time.monotonic()
        assert remote.get_records(keys) == {}
        assert time.monotonic() - began < 15  # the answer would never end
        assert not remote.usable  # skipped from now on, as a server that is down
        assert remote.get_blob("a" * 64, 10) is None
        remote.close()
    assert len(warnings) == 1
    assert "within 0.5 s" in warnings[0], warnings[0]
    assert warnings[0].endswith("continuing without it")


def test_a_blob_that_drips_misses_the_deadline(tmp_path: Path) -> None:
    with DripServer({"GET": DRIPPING_BODY}).running() as server:
        remote, warnings = connect(
            f"http://127.0.0.1:{server.port}", JOBSTAMPS_REMOTE_TIMEOUT="0.5"
        )
        began = time.monotonic()
        assert remote.get_blob("a" * 64, 1 << 20) is None
        assert time.monotonic() - began < 15
        remote.close()
    assert len(warnings) == 1
    assert "no complete answer within 0.5 s" in warnings[0], warnings[0]


def test_an_upload_whose_answer_drips_misses_the_deadline(tmp_path: Path) -> None:
    with DripServer({"PUT": DRIPPING_BODY}).running() as server:
        remote, warnings = connect(
            f"http://127.0.0.1:{server.port}", JOBSTAMPS_REMOTE_TIMEOUT="0.5"
        )
        remote.put_record(Record(KEY))
        assert remote.flush(15)  # ended by the deadline, not by the wait for uploads
        assert not remote.usable
        remote.close()
    assert len(warnings) == 1
    assert "within 0.5 s" in warnings[0], warnings[0]


def test_an_ipv6_address_is_reached_one_request_at_a_time_and_pipelined() -> None:
    try:
        server = SlowPutServer(delay=0, host="::1")
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    with server.running():
        remote, warnings = connect(server.url.replace("http://", "http://ci:pw@"))
        remote.put_record(Record(KEY))
        assert remote.flush()
        assert remote.get_records([KEY]) == {}
        assert remote.get_records([f"{index:040x}" for index in range(100)]) == {}
        remote.close()
    assert server.puts == 1
    assert remote.stats.requests == 102
    assert warnings == []


def test_an_endless_answer_at_full_speed_misses_the_deadline() -> None:
    # Each MiB received renews the deadline, but only as far as the answer may be long: an
    # endless run of "100 Continue" would otherwise renew it for ever.
    endless = DripServer({"GET": b""}, interval=0, unit=b"HTTP/1.1 100 Continue\r\n\r\n" * 64)
    with endless.running() as server:
        remote, warnings = connect(
            f"http://127.0.0.1:{server.port}", JOBSTAMPS_REMOTE_TIMEOUT="0.5"
        )
        began = time.monotonic()
        assert remote.get_records([KEY]) == {}
        assert time.monotonic() - began < 30
        remote.close()
    assert len(warnings) == 1
    assert "within 0.5 s" in warnings[0], warnings[0]
