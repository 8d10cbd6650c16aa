"""Remote caches as the rest of jobstamps sees them: the failure policy, and what every backend
must do, each run against real servers (nginx with WebDAV, redis-server)."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
import tracemalloc
from typing import TYPE_CHECKING

import pytest

from jobstamps.storage.records import INLINE_LIMIT, Record, encode, sha256_hex
from jobstamps.storage.remote import MAX_FAILURES
from servers import (
    DRIPPING_BODY,
    DRIPPING_REDIS,
    DripServer,
    Nginx,
    Place,
    RedisServer,
    SlowPutServer,
    bad_http_server,
    connect,
    free_port,
)
from support import JOBSTAMP, changed_env, counting, run_python, runs

if TYPE_CHECKING:
    from pathlib import Path

KEY = "0a" * 20
SECRET = "team secret"  # noqa: S105 - a test's own


@pytest.mark.parametrize("configured", [False, True], ids=["no remote", "a remote configured"])
def test_a_local_hit_loads_no_remote_code(tmp_path: Path, configured: bool) -> None:
    dependency = tmp_path / "input.txt"
    dependency.write_text("data\n")
    counter = tmp_path / "runs"
    command = [
        *JOBSTAMP,
        "--dependencies",
        str(dependency),
        "--",
        *counting(counter, "cat input.txt"),
    ]
    # A remote is looked at only after a local miss: the hit must not even parse its URL.
    remote = f"http://127.0.0.1:{free_port()}/cache" if configured else None
    env = changed_env({"JOBSTAMPS_REMOTE": remote})
    for _ in range(2):
        hit = subprocess.run(
            [command[0], "-X", "importtime", *command[1:]],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
    assert runs(counter) == 1
    assert hit.stdout == "data\n"
    loaded = {line.rpartition("|")[2].strip() for line in hit.stderr.splitlines()}
    assert "jobstamps.cli" in loaded
    assert not {name for name in loaded if name.startswith("jobstamps.storage")}
    assert not loaded & {"http.client", "redis", "hmac", "concurrent.futures", "urllib.parse"}
    assert "jobstamps.portable" not in loaded


def test_a_missing_client_library_warns_once_and_the_build_goes_on() -> None:
    code = (
        "import sys; sys.modules['redis'] = None  # as if redis-py were not installed\n"
        "from jobstamps.storage.remote import open_remote\n"
        "print(open_remote('redis://127.0.0.1:1/0', env={}))\n"
    )
    result = run_python(code)
    assert result.stdout.strip() == "None"
    assert result.stderr.count("\n") == 1
    assert "pip install 'jobstamps[redis]'" in result.stderr
    assert result.stderr.startswith("jobstamp: remote cache redis://127.0.0.1:1/0: ")


def test_a_refused_remote_warns_once_and_is_not_asked_again() -> None:
    remote, warnings = connect(f"http://127.0.0.1:{free_port()}/cache")
    assert remote.get_records([KEY]) == {}
    assert remote.get_records([KEY, "0b" * 20]) == {}
    remote.put_record(Record(KEY))
    assert remote.flush()
    assert not remote.usable
    assert len(warnings) == 1
    assert "connection refused; continuing without it" in warnings[0]
    assert remote.stats.as_dict()["errors"] == 1
    assert remote.stats.as_dict()["misses"] == 3
    remote.close()


# -- every backend, on a real server ----------------------------------------------------------


@pytest.fixture(params=["subdirs", "flat", "bazel", "redis"])
def place(request: pytest.FixtureRequest) -> Place:
    if request.param == "redis":
        return Place("redis", None, request.getfixturevalue("redis_server"))
    return Place(request.param, request.getfixturevalue("nginx"), None)


def big_output_record(key: str, output: bytes) -> Record:
    return Record(
        key, exit_code=2, chunks=[(2, len(output))], blob=(sha256_hex(output), len(output))
    )


def test_records_and_blobs_round_trip(place: Place) -> None:
    remote, warnings = connect(place.url, JOBSTAMPS_REMOTE_KEY=SECRET)
    small = Record(KEY, exit_code=1, chunks=[(1, 3), (2, 4)], data=b"outerr!", created=7)
    output = os.urandom(INLINE_LIMIT * 2)
    big = big_output_record("0b" * 20, output)
    remote.put_record(small)
    remote.put_record(big, {sha256_hex(output): output})
    assert remote.flush()
    found = remote.get_records([KEY, "0b" * 20, "0c" * 20])
    assert found == {KEY: small, "0b" * 20: big}
    assert remote.get_blob(sha256_hex(output), len(output)) == output
    assert remote.has_blobs([sha256_hex(output), "ff" * 32]) == {sha256_hex(output)}
    stats = remote.stats.as_dict()
    assert (stats["hits"], stats["misses"], stats["errors"]) == (2, 1, 0)
    assert stats["uploads"] == 3
    assert stats["bytes_down"] >= len(output)
    remote.close()
    remote.put_record(Record("0c" * 20))  # after close: nothing, and no error
    assert remote.get_records([KEY]) == {}
    assert warnings == []


def test_read_only_remote_uploads_nothing(place: Place) -> None:
    writer, _ = connect(place.url)
    writer.put_record(Record(KEY))
    writer.close()
    before = place.uploads()
    assert before >= 1
    remote, warnings = connect(place.url, JOBSTAMPS_REMOTE_READ_ONLY="1")
    output = os.urandom(1000)
    remote.put_record(big_output_record("0b" * 20, output), {sha256_hex(output): output})
    assert remote.get_records([KEY]) == {KEY: Record(KEY)}
    remote.close()
    assert place.uploads() == before
    assert warnings == []
    assert remote.stats.as_dict()["uploads"] == 0


@pytest.mark.parametrize(
    ("served", "why"),
    [
        (lambda: encode(Record(KEY, chunks=[(1, 2)], data=b"ok"))[:-9], "cut short|truncated"),
        (lambda: encode(Record(KEY, chunks=[(1, 4)], data=b"pass")), "not signed"),
        (lambda: encode(Record(KEY), b"someone else's key"), "does not verify"),
        (lambda: encode(Record("0b" * 20), SECRET.encode()), "another key"),
        (lambda: os.urandom(64), "damaged"),
    ],
    ids=["corrupted", "forged-unsigned", "forged-other-secret", "other-key", "garbage"],
)
def test_records_that_fail_their_checks_are_misses(place: Place, served: object, why: str) -> None:
    remote, warnings = connect(place.url, JOBSTAMPS_REMOTE_KEY=SECRET)
    assert remote.backend is not None
    assert callable(served)
    remote.backend.put_entry(KEY, served())
    assert remote.get_records([KEY]) == {}
    assert remote.stats.as_dict()["rejected"] == 1
    assert len(warnings) == 1
    assert re.search(why, warnings[0]), warnings[0]
    remote.close()


def test_a_blob_that_does_not_match_its_digest_is_a_miss(place: Place) -> None:
    remote, warnings = connect(place.url)
    assert remote.backend is not None
    expected = b"the real output\n" * 1000
    forged = b"a forged output\n" * 1000
    remote.backend.put_blob(sha256_hex(expected), io.BytesIO(forged), len(forged))
    received: list[bytes] = []
    assert not remote.fetch_blob(sha256_hex(expected), len(expected), received.append)
    assert remote.get_blob(sha256_hex(expected), len(expected) - 1) is None
    assert "does not match its digest" in warnings[0] or "larger" in warnings[0]
    assert len(warnings) == 1
    remote.close()


def test_a_remote_failing_repeatedly_is_skipped(place: Place) -> None:
    remote, warnings = connect(place.url, JOBSTAMPS_REMOTE_KEY=SECRET)
    assert remote.backend is not None
    keys = [f"{index:040x}" for index in range(MAX_FAILURES + 2)]
    for key in keys:
        remote.backend.put_entry(key, b"garbage")
    for key in keys:
        assert remote.get_records([key]) == {}
    assert not remote.usable
    assert remote.stats.as_dict()["errors"] == MAX_FAILURES
    assert len(warnings) == 1
    remote.close()


@pytest.mark.slow
def test_a_20_mb_blob_passes_through_without_being_held_whole(place: Place, tmp_path: Path) -> None:
    size = 20 << 20
    source = tmp_path / "output"
    with source.open("wb") as handle:
        for _ in range(20):
            handle.write(os.urandom(1 << 20))
    digest = sha256_hex(source.read_bytes())
    remote, warnings = connect(place.url)
    tracemalloc.start()
    try:
        remote.put_record(big_output_record(KEY, b""), {digest: str(source)})
        assert remote.flush()
        target = tmp_path / "fetched"
        with target.open("wb") as handle:
            assert remote.fetch_blob(digest, size, handle.write)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    remote.close()
    assert warnings == []
    assert target.read_bytes() == source.read_bytes()
    assert peak < 8 << 20, f"{peak} bytes held at once"


CLIENT = """
import json, sys
from jobstamps.storage.records import Record
from jobstamps.storage.remote import open_remote
url, index, phase = sys.argv[1], int(sys.argv[2]), sys.argv[3]
remote = open_remote(url, env={"JOBSTAMPS_REMOTE_KEY": "k"})
keys = [f"{i:02x}{c:038x}" for i in range(8) for c in range(25)] + ["ff" * 20]
if phase == "write":
    for key in keys[index * 25 : index * 25 + 25] + ["ff" * 20]:
        data = key.encode() if key != "ff" * 20 else b"shared"
        remote.put_record(Record(key, chunks=[(1, len(data))], data=data))
    remote.close()
else:
    found = remote.get_records(keys)
    good = all(r.data == (k.encode() if k != "ff" * 20 else b"shared") for k, r in found.items())
    remote.close()
    print(json.dumps({"found": len(found), "good": good, **remote.stats.as_dict()}))
"""


@pytest.mark.slow
def test_many_clients_at_once_share_one_remote(place: Place) -> None:
    def run_all(phase: str) -> list[subprocess.CompletedProcess[str]]:
        processes = [
            subprocess.Popen(
                [sys.executable, "-c", CLIENT, place.url, str(index), phase],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for index in range(8)
        ]
        results = []
        for process in processes:
            out, err = process.communicate(timeout=120)
            results.append(subprocess.CompletedProcess(process.args, process.returncode, out, err))
        return results

    for result in run_all("write"):
        assert (result.returncode, result.stderr) == (0, "")
    for result in run_all("read"):
        assert (result.returncode, result.stderr) == (0, "")
        stats = json.loads(result.stdout)
        assert (stats["found"], stats["good"], stats["errors"]) == (201, True, 0)


def test_a_server_stopped_during_a_blob_is_a_miss_and_one_warning(tmp_path: Path) -> None:
    # More than the kernel buffers of a loopback connection hold, for nginx; Redis sends a blob
    # in pieces, one request each.
    sizes = {"nginx": 48 << 20, "redis": 4 << 20}
    for server in (Nginx(tmp_path / "nginx"), RedisServer(tmp_path / "redis")):
        with server.running():
            remote, warnings = connect(server.url)
            output = os.urandom(sizes["nginx" if isinstance(server, Nginx) else "redis"])
            digest = sha256_hex(output)
            remote.put_record(big_output_record(KEY, output), {digest: output})
            assert remote.flush()
            assert remote.get_records([KEY])

            def stop_server(_: bytes, server: Nginx | RedisServer = server) -> None:
                assert server.process is not None
                if server.process.poll() is None:
                    server.process.kill()
                    server.process.wait()

            assert not remote.fetch_blob(digest, len(output), stop_server)
            assert remote.get_records([KEY]) == {}
            remote.put_record(Record(KEY))
            remote.close()
        assert len(warnings) == 1, warnings
        assert warnings[0].startswith(f"jobstamp: remote cache {server.url}")


def test_uploads_go_out_in_parallel_and_bounded() -> None:
    with SlowPutServer(delay=0.2).running() as server:
        remote, warnings = connect(server.url, JOBSTAMPS_REMOTE_CONNECTIONS="8")
        for index in range(16):
            remote.put_record(Record(f"{index:040x}"))
        assert remote.flush()
        remote.close()
    assert warnings == []
    assert server.puts == 16
    assert 1 < server.most_at_once <= 4  # a few at once, never one per result


def test_uploads_still_running_at_the_deadline_are_dropped(tmp_path: Path) -> None:
    with bad_http_server(tmp_path) as url:
        remote, warnings = connect(f"{url}/slow", JOBSTAMPS_REMOTE_TIMEOUT="20")
        remote.put_record(Record(KEY))
        remote.close(timeout=0.2)
        assert not remote.usable
    assert len(warnings) == 1
    assert "did not finish within 0.2 s" in warnings[0]


@pytest.mark.parametrize("scheme", ["http", "redis"])
def test_uploads_dropped_at_the_deadline_do_not_keep_the_process_alive(scheme: str) -> None:
    if scheme == "redis":
        pytest.importorskip("redis")
    code = (
        "import sys\n"
        "from jobstamps.storage.records import Record\n"
        "from jobstamps.storage.remote import open_remote\n"
        "remote = open_remote(sys.argv[1], env={'JOBSTAMPS_REMOTE_TIMEOUT': '600'})\n"
        "remote.put_record(Record('0a' * 20))\n"
        "remote.close(timeout=0.5)\n"
    )
    drips = {"PUT": DRIPPING_BODY} if scheme == "http" else {"*": DRIPPING_REDIS}
    with DripServer(drips).running() as server:
        url = f"{scheme}://127.0.0.1:{server.port}/" + ("0" if scheme == "redis" else "cache")
        began = time.monotonic()
        done = run_python(code, url, timeout=60)  # the answer would take 600 s
        took = time.monotonic() - began
    assert "uploads did not finish within 0.5 s; dropped" in done.stderr
    assert done.stderr.count("\n") == 1
    assert took < 30
