"""The Redis backend against a real redis-server: batches, passwords, expiry, key prefixes."""

from __future__ import annotations

import os
import time
import uuid
from typing import TYPE_CHECKING, Any

import pytest

from jobstamps.storage.backend import CHUNK
from jobstamps.storage.records import Record, sha256_hex
from servers import DRIPPING_REDIS, DripServer, RedisServer, connect

if TYPE_CHECKING:
    from pathlib import Path

pytest.importorskip("redis", reason="redis-py is not installed (pip install 'jobstamps[redis]')")


def calls(server: RedisServer, command: str) -> int:
    """How many times ``command`` ran on ``server`` (``INFO commandstats``)."""
    client: Any = server.client()
    stats = client.info("commandstats").get(f"cmdstat_{command}", {})
    return int(stats.get("calls", 0))


def prefixed(server: RedisServer) -> tuple[str, str]:
    """Return a URL whose keys live under a prefix of their own, and that prefix."""
    prefix = f"t{uuid.uuid4().hex[:12]}:"
    return f"{server.url}?prefix={prefix}", prefix


def test_many_keys_are_one_round_trip_of_mget(redis_server: RedisServer) -> None:
    url, _ = prefixed(redis_server)
    keys = [f"{index:040x}" for index in range(1000)]
    writer, _ = connect(url)
    for key in keys[::3]:
        writer.put_record(Record(key))
    writer.close()
    remote, warnings = connect(url)
    before = calls(redis_server, "mget")
    assert set(remote.get_records(keys)) == set(keys[::3])
    assert calls(redis_server, "mget") - before == 2  # 512 keys each
    assert remote.stats.as_dict()["requests"] == 1  # pipelined: one round trip
    assert warnings == []
    remote.close()


def test_keys_live_under_the_configured_prefix(redis_server: RedisServer) -> None:
    url, prefix = prefixed(redis_server)
    output = os.urandom(3 * CHUNK + 5)
    remote, _ = connect(url)
    digest = sha256_hex(output)
    remote.put_record(
        Record("ab" * 20, chunks=[(1, len(output))], blob=(digest, len(output))),
        {digest: output},
    )
    remote.close()
    client: Any = redis_server.client()
    names = sorted(name.decode() for name in client.keys(f"{prefix}*"))
    assert names == [f"{prefix}b:{digest}", f"{prefix}e:{'ab' * 20}"]  # no temporary left
    assert client.get(f"{prefix}b:{digest}") == output
    assert client.ttl(f"{prefix}b:{digest}") == -1  # kept until the server evicts it


def test_a_ttl_makes_everything_stored_expire(redis_server: RedisServer) -> None:
    url, prefix = prefixed(redis_server)
    remote, _ = connect(url, JOBSTAMPS_REMOTE_TTL="600")
    for size in (10, 2 * CHUNK + 1):  # in one piece, and through a temporary key
        output = os.urandom(size)
        remote.put_record(
            Record(f"{size:040x}", chunks=[(1, size)], blob=(sha256_hex(output), size)),
            {sha256_hex(output): output},
        )
    remote.close()
    client: Any = redis_server.client()
    names = client.keys(f"{prefix}*")
    assert len(names) == 4
    assert all(0 < client.ttl(name) <= 600 for name in names)


def test_a_password_protected_server(tmp_path: Path) -> None:
    with RedisServer(tmp_path, password="s3cr3t").running() as server:  # noqa: S106 - a test's
        remote, warnings = connect(server.url)
        remote.put_record(Record("ab" * 20))
        remote.close()
        assert warnings == []
        assert remote.stats.as_dict()["uploads"] == 1
        wrong, warnings = connect(server.url.replace("s3cr3t", "guess"))
        assert wrong.get_records(["ab" * 20]) == {}
        wrong.close()
    assert len(warnings) == 1
    assert "s3cr3t" not in warnings[0]
    assert "guess" not in warnings[0]
    assert warnings[0].startswith(f"jobstamp: remote cache redis://***@127.0.0.1:{server.port}/0")
    assert "authentication failed" in warnings[0]


def test_rediss_checks_the_certificate_and_shares_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with RedisServer(tmp_path, tls=True).running() as server:
        untrusted, warnings = connect(server.url)
        untrusted.put_record(Record("ab" * 20))
        assert untrusted.get_records(["ab" * 20]) == {}
        untrusted.close()
        assert len(warnings) == 1
        assert "certificate verify failed" in warnings[0].lower(), warnings[0]
        monkeypatch.setenv("SSL_CERT_FILE", str(server.certificate))
        remote, warnings = connect(server.url)
        keys = [f"{index:040x}" for index in range(300)]
        for key in keys[::2]:
            remote.put_record(Record(key))
        assert remote.flush()
        assert remote.get_records(keys) == {key: Record(key) for key in keys[::2]}
        remote.close()
        assert warnings == []
        client: Any = server.client()
        assert len(client.keys("jobstamps:*")) == len(keys[::2])


def test_a_stopped_server_is_a_miss_and_one_warning(tmp_path: Path) -> None:
    server = RedisServer(tmp_path)
    with server.running():
        remote, warnings = connect(server.url)
        remote.put_record(Record("ab" * 20))
        assert remote.flush()
    assert remote.get_records(["ab" * 20, "cd" * 20]) == {}
    assert remote.has_blobs(["ab" * 32]) == set()
    remote.put_record(Record("ab" * 20))
    remote.close()
    assert not remote.usable
    assert len(warnings) == 1
    assert "refused" in warnings[0]


def test_a_server_that_does_not_speak_redis_is_a_miss_and_one_warning(bad_server: str) -> None:
    url = bad_server.replace("http://", "redis://") + "/0"
    remote, warnings = connect(url, JOBSTAMPS_REMOTE_TIMEOUT="1")
    assert remote.get_records(["ab" * 20]) == {}
    assert remote.get_blob("ab" * 32, 10) is None
    remote.put_record(Record("ab" * 20))
    remote.close()
    assert len(warnings) == 1
    assert warnings[0].startswith(f"jobstamp: remote cache {url}: ")


def test_an_answer_that_drips_misses_the_deadline_and_the_remote_is_skipped() -> None:
    with DripServer({"*": DRIPPING_REDIS}).running() as server:
        url = f"redis://127.0.0.1:{server.port}/0"
        remote, warnings = connect(url, JOBSTAMPS_REMOTE_TIMEOUT="0.5")
        began = time.monotonic()
        assert remote.get_records(["ab" * 20]) == {}
        assert time.monotonic() - began < 15  # the answer would never end
        assert not remote.usable
        remote.close()
    assert len(warnings) == 1
    assert "continuing without it" in warnings[0], warnings[0]
