"""Remote caches as the rest of jobstamps sees them: settings, the failure policy, and what
every backend must do, each run against real servers (nginx with WebDAV, redis-server)."""

from __future__ import annotations

import contextlib
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

from jobstamps.errors import UsageError
from jobstamps.storage.records import INLINE_LIMIT, Record, encode, sha256_hex
from jobstamps.storage.remote import MAX_FAILURES, open_remote
from jobstamps.storage.remote_settings import Settings
from servers import (
    DRIPPING_BODY,
    DRIPPING_REDIS,
    DripServer,
    Nginx,
    Place,
    RedisServer,
    SilentServer,
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


# -- settings -------------------------------------------------------------------------------


def test_no_remote_is_configured_by_default() -> None:
    assert open_remote(env={}) is None


def test_url_options_win_over_variables_and_credentials_are_never_shown() -> None:
    env = {
        "JOBSTAMPS_REMOTE_LAYOUT": "flat",
        "JOBSTAMPS_REMOTE_TIMEOUT": "9",
        "JOBSTAMPS_REMOTE_KEY": SECRET,
    }
    settings = Settings("https://ci:hunter2@cache.example:8443/jobs/?layout=bazel&read-only", env)
    assert settings.layout == "bazel"
    assert settings.read_only
    assert settings.timeout == 9
    assert settings.connect_timeout == 2
    assert settings.secret == SECRET.encode()
    assert settings.url == "https://ci:hunter2@cache.example:8443/jobs/"
    assert settings.name == "https://***@cache.example:8443/jobs/"
    assert "hunter2" not in Settings("redis://:hunter2@localhost:6379/2", {}).name


def test_every_form_of_a_credential_is_masked_in_messages() -> None:
    import base64

    env = {"JOBSTAMPS_REMOTE_TOKEN": "bearer-t0ken", "JOBSTAMPS_REMOTE_KEY": SECRET}
    settings = Settings("https://ci:p%40ss%2Fw0rd@cache.example/jobs", env)
    header = base64.b64encode(b"ci:p@ss/w0rd").decode()
    said = settings.scrub(
        f"p%40ss%2Fw0rd p@ss/w0rd w0rd ci:p%40ss%2Fw0rd bearer-t0ken {SECRET} Basic {header}"
    )
    for secret in ("p%40ss", "p@ss", "w0rd", "bearer-t0ken", SECRET, header):
        assert secret not in said, said
    assert settings.scrub("connection refused") == "connection refused"


def test_read_only_from_either_place_is_enough() -> None:
    assert Settings("redis://h", {"JOBSTAMPS_REMOTE_READ_ONLY": "1"}).read_only
    assert Settings("redis://h?read-only=1", {}).read_only
    assert not Settings("redis://h?read-only=0", {}).read_only
    assert not Settings("redis://h", {"JOBSTAMPS_REMOTE_READ_ONLY": "0"}).read_only


def test_an_empty_read_only_variable_is_off_as_every_flag_of_the_environment() -> None:
    # A CI's ``cond && '1' || ''`` gives an empty value where it means "not read-only".
    assert not Settings("redis://h", {"JOBSTAMPS_REMOTE_READ_ONLY": ""}).read_only
    assert Settings("redis://h?read-only", {"JOBSTAMPS_REMOTE_READ_ONLY": ""}).read_only


@pytest.mark.parametrize(
    ("url", "env", "message"),
    [
        ("ftp://host/cache", {}, "not supported"),
        ("http:///no-host", {}, "not supported"),
        ("http://host:99999", {}, "malformed"),
        ("http://host?layout=tree", {}, "layout 'tree' is unknown"),
        ("http://host?colour=blue", {}, "unknown option 'colour'"),
        ("http://host?timeout=soon", {}, "timeout 'soon'"),
        ("http://host?connections=0", {}, "connections '0' is not a positive number"),
        ("redis://host?ttl=-5", {}, "ttl '-5'"),
        ("redis://host?retry=later", {}, "retry 'later'"),
    ],
)
def test_unusable_settings_on_the_command_line_are_one_line_usage_errors(
    url: str, env: dict[str, str], message: str
) -> None:
    with pytest.raises(UsageError, match=message) as raised:
        open_remote(url, env=env)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"JOBSTAMPS_REMOTE": "ftp://host/cache"}, "not supported"),
        ({"JOBSTAMPS_REMOTE": "http://host?layout=tree"}, "layout 'tree' is unknown"),
        ({"JOBSTAMPS_REMOTE_LAYOUT": "tree"}, "layout 'tree' is unknown"),
        ({"JOBSTAMPS_REMOTE_TIMEOUT": "soon"}, "timeout 'soon'"),
        ({"JOBSTAMPS_REMOTE_TIMEOUT": "0"}, "timeout '0'"),
        ({"JOBSTAMPS_REMOTE_TTL": "abc"}, "ttl 'abc'"),
        ({"JOBSTAMPS_REMOTE_RETRY": "later"}, "retry 'later'"),
        ({"JOBSTAMPS_REMOTE_CONNECTIONS": "-1"}, "connections '-1'"),
        ({"JOBSTAMPS_REMOTE_TOKEN": "a\nb"}, "control characters"),
    ],
)
def test_unusable_settings_in_the_environment_turn_the_remote_off_with_one_warning(
    env: dict[str, str], message: str
) -> None:
    warnings: list[str] = []
    env = {"JOBSTAMPS_REMOTE": "http://127.0.0.1:1/cache", **env}
    assert open_remote(env=env, warn=warnings.append) is None
    assert len(warnings) == 1
    assert message in warnings[0]
    assert warnings[0].startswith("jobstamp: remote cache")
    assert warnings[0].endswith("; continuing without the remote cache")
    assert "\n" not in warnings[0]
    variable = next(name for name in env if name != "JOBSTAMPS_REMOTE" or len(env) == 1)
    assert f"(from {variable})" in warnings[0]


#: Malformed remote URLs, each with the password ``hunter2`` (or a token as the user name).
MALFORMED = [
    "http://ci:hunter2@host?layuot=flat",
    "http://ci:hunter2@host:99999/cache",
    "http://ci:hunter2@host:port/cache",
    "ftp://ci:hunter2@host/cache",
    "gopher://hunter2@host",
    "http://ci:hunter2@[::1/cache",
    "http://ci:hunter2@[::zz]/cache",
    "http://ci:hunter2@[::1]:80:80/cache",
    "http://ci:hun/ter2@host/cache",
    "http://ci:hun?ter2@host/cache",
    "http://hunter2@host?layout=tree",
    "https://ci:hunter2@host?timeout=never",
    "redis://:hunter2@host/not-a-db",
    "http://ci:hunter2@h\x00st/cache",
    "ci:hunter2@host:80/cache",
    "http:/ci:hunter2@host/cache",
    "http://ci:hunter2@/cache",
]


@pytest.mark.parametrize("url", MALFORMED)
def test_a_malformed_url_is_never_shown_with_its_credentials(url: str) -> None:
    with pytest.raises(UsageError) as raised:
        open_remote(url, env={})
    message = str(raised.value)
    for secret in ("hunter2", "hun", "ter2"):
        assert secret not in message, message
    assert "\n" not in message
    warnings: list[str] = []
    assert open_remote(env={"JOBSTAMPS_REMOTE": url}, warn=warnings.append) is None
    assert len(warnings) == 1
    assert "hun" not in warnings[0]
    assert "ter2" not in warnings[0]


def test_credentials_never_reach_any_output_or_the_cache(
    tmp_path: Path, isolated_cache: Path
) -> None:
    secret = "s3cr3t-passw0rd"  # noqa: S105 - a test's own
    token = "t0ken-f0r-bearer"  # noqa: S105 - a test's own
    outputs = []
    for remote in (
        f"http://ci:{secret}@127.0.0.1:{free_port()}/cache",  # refused
        f"http://{token}@127.0.0.1:{free_port()}/cache",
        f"redis://:{secret}@127.0.0.1:{free_port()}/0",
        f"http://ci:{secret}@127.0.0.1:{free_port()}/cache?layuot=flat",
    ):
        for extra in ({}, {"JOBSTAMPS_DEBUG": "1", "JOBSTAMPS_REMOTE_TOKEN": token}):
            env = changed_env({"JOBSTAMPS_REMOTE": remote, **extra})
            for args in (["--explain", "--", "echo", "hi"], ["--show-stats"]):
                done = subprocess.run(
                    [*JOBSTAMP, *args],
                    env=env,
                    cwd=tmp_path,
                    capture_output=True,
                    timeout=60,
                    check=False,
                )
                outputs += [done.stdout, done.stderr]
    everything = b"".join(outputs)
    assert b"jobstamp: remote cache" in everything  # the failures were said
    for credential in (secret, token):
        assert credential.encode() not in everything
        for path in isolated_cache.rglob("*"):
            if path.is_file():
                assert credential.encode() not in path.read_bytes(), path
            assert credential not in str(path)


def test_a_password_given_with_remote_on_the_command_line_is_warned_about_once(
    tmp_path: Path,
) -> None:
    url = f"http://ci:hunter2@127.0.0.1:{free_port()}/cache"
    done = subprocess.run(
        [*JOBSTAMP, "--remote", url, "--", "echo", "hi"],
        cwd=tmp_path,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout) == (0, b"hi\n")
    lines = done.stderr.decode().splitlines()
    visible = [line for line in lines if "ps shows command lines" in line]
    assert len(visible) == 1
    assert "JOBSTAMPS_REMOTE" in visible[0]
    assert "hunter2" not in done.stderr.decode()
    quiet = subprocess.run(
        [*JOBSTAMP, "--", "echo", "again"],
        cwd=tmp_path,
        env=changed_env({"JOBSTAMPS_REMOTE": url}),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert b"ps shows" not in quiet.stderr


def test_importing_the_remote_settings_stays_cheap() -> None:
    code = (
        "import sys; before = set(sys.modules)\n"
        "import jobstamps.storage, jobstamps.storage.remote, jobstamps.storage.remote_settings\n"
        "jobstamps.storage.remote.configured_url()\n"
        "print(' '.join(sorted(set(sys.modules) - before)))\n"
    )
    result = run_python(code)
    loaded = set(result.stdout.split())
    assert loaded <= {
        "__future__",
        "jobstamps",
        "jobstamps.errors",
        "jobstamps.storage",
        "jobstamps.storage.remote",
        "jobstamps.storage.remote_settings",
    }


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


def silent_url(scheme: str, server: SilentServer) -> str:
    return f"{scheme}://127.0.0.1:{server.port}/" + ("0" if scheme == "redis" else "cache")


@pytest.mark.parametrize("scheme", ["http", "redis"])
def test_a_server_that_does_not_answer_is_waited_for_once_then_left_alone(
    tmp_path: Path, scheme: str
) -> None:
    if scheme == "redis":
        pytest.importorskip("redis")
    counter = tmp_path / "runs"
    with SilentServer().running() as server:
        env = changed_env(
            {
                "JOBSTAMPS_REMOTE": silent_url(scheme, server),
                "JOBSTAMPS_REMOTE_TIMEOUT": "0.5",
                "JOBSTAMPS_REMOTE_RETRY": "2",
            }
        )

        def run(text: str) -> subprocess.CompletedProcess[bytes]:
            command = [*JOBSTAMP, "--", *counting(counter, f"echo {text}")]
            return subprocess.run(command, env=env, capture_output=True, timeout=60, check=False)

        first = run("one")
        assert (first.returncode, first.stdout) == (0, b"one\n")
        assert first.stderr.count(b"\n") == 1, first.stderr
        assert b"continuing without it" in first.stderr  # not asked again, not even to upload
        assert server.accepted == 1
        for text in ("two", "three"):  # other jobs, within the retry time: not asked at all
            later = run(text)
            assert (later.returncode, later.stdout) == (0, f"{text}\n".encode())
            assert later.stderr.count(b"\n") == 1, later.stderr
            assert b": unreachable at " in later.stderr
            assert b"so not asked again before " in later.stderr
        assert server.accepted == 1
        time.sleep(2.1)
        assert run("four").stdout == b"four\n"
        assert server.accepted == 2  # asked again once the retry time is over
    assert runs(counter) == 4


def test_a_retry_time_of_0_asks_a_silent_server_every_time(tmp_path: Path) -> None:
    counter = tmp_path / "runs"
    with SilentServer().running() as server:
        env = changed_env(
            {
                "JOBSTAMPS_REMOTE": silent_url("http", server),
                "JOBSTAMPS_REMOTE_TIMEOUT": "0.3",
                "JOBSTAMPS_REMOTE_RETRY": "0",
            }
        )
        for text in ("one", "two"):
            command = [*JOBSTAMP, "--", *counting(counter, f"echo {text}")]
            done = subprocess.run(command, env=env, capture_output=True, timeout=60, check=False)
            assert done.stdout == f"{text}\n".encode()
    assert server.accepted == 2


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


def test_an_upload_whose_answer_never_ends_marks_the_remote_down(tmp_path: Path) -> None:
    counter = tmp_path / "runs"
    with DripServer({"PUT": DRIPPING_BODY}).running() as server:
        env = changed_env(
            {
                "JOBSTAMPS_REMOTE": f"http://127.0.0.1:{server.port}/cache",
                "JOBSTAMPS_REMOTE_TIMEOUT": "0.5",
            }
        )
        outcomes = []
        for text in ("one", "two"):
            command = [*JOBSTAMP, "--", *counting(counter, f"echo {text}")]
            began = time.monotonic()
            done = subprocess.run(command, env=env, capture_output=True, timeout=60, check=False)
            outcomes.append((done, time.monotonic() - began))
    (first, first_took), (second, second_took) = outcomes
    assert (first.returncode, first.stdout) == (0, b"one\n")
    assert first.stderr.count(b"\n") == 1, first.stderr
    assert b"within 0.5 s" in first.stderr, first.stderr
    assert (second.returncode, second.stdout) == (0, b"two\n")
    assert b"so not asked again before" in second.stderr, second.stderr
    assert first_took < 20  # not the 30 s allowed for uploads
    assert second_took < 20


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


@pytest.mark.parametrize("kind", ["redis", "nginx"])
def test_a_wrong_password_is_said_as_such_and_never_blocks_the_right_one(
    tmp_path: Path, kind: str, request: pytest.FixtureRequest
) -> None:
    counter = tmp_path / "runs"
    with contextlib.ExitStack() as stack:
        if kind == "redis":
            pytest.importorskip("redis")
            server = stack.enter_context(
                RedisServer(tmp_path / "redis", password="s3cr3t").running()  # noqa: S106
            )
            right, wrong = server.url, server.url.replace("s3cr3t", "guess")
        else:
            nginx: Nginx = request.getfixturevalue("nginx")
            address = nginx.url.removeprefix("http://")
            right = f"http://{Nginx.USER}:{Nginx.PASSWORD}@{address}/basic/{tmp_path.name}"
            wrong = right.replace(Nginx.PASSWORD, "guess")

        def run(url: str, text: str) -> subprocess.CompletedProcess[bytes]:
            command = [*JOBSTAMP, "--", *counting(counter, f"echo {text}")]
            env = changed_env({"JOBSTAMPS_REMOTE": url})
            return subprocess.run(
                command, env=env, cwd=tmp_path, capture_output=True, timeout=60, check=False
            )

        for text in ("one", "two"):  # refused each time, and asked again each time
            refused = run(wrong, text)
            assert (refused.returncode, refused.stdout) == (0, f"{text}\n".encode())
            assert refused.stderr.count(b"\n") == 1, refused.stderr
            assert b"authentication failed" in refused.stderr, refused.stderr
            assert b"unreachable" not in refused.stderr
            assert b"guess" not in refused.stderr
        accepted = run(right, "three")  # at once: no mark left by the wrong password
        assert (accepted.returncode, accepted.stdout, accepted.stderr) == (0, b"three\n", b"")
        assert runs(counter) == 3
        if kind == "nginx":
            assert nginx.logged("PUT", f"/basic/{tmp_path.name}/", 1)


def test_a_server_left_alone_for_one_password_is_still_asked_with_another(tmp_path: Path) -> None:
    with SilentServer().running() as server:
        env = {"JOBSTAMPS_REMOTE_TIMEOUT": "0.3", "JOBSTAMPS_REMOTE_RETRY": "60"}
        for text, password, asked in (("a", "one", 1), ("b", "one", 1), ("c", "two", 2)):
            url = f"http://ci:{password}@127.0.0.1:{server.port}/cache"
            done = subprocess.run(
                [*JOBSTAMP, "--", "echo", text],
                env=changed_env({"JOBSTAMPS_REMOTE": url, **env}),
                cwd=tmp_path,
                capture_output=True,
                timeout=60,
                check=False,
            )
            assert done.stdout == f"{text}\n".encode()
            assert server.accepted == asked, done.stderr


#: A command that checks files: output on both streams, and a failure.
CHECKER = ["sh", "-c", "echo out $1; echo err >&2; exit 3", "sh"]
#: Every front end that reads the remote settings: what goes before the checker.
FRONT_ENDS = {
    "cli": [*JOBSTAMP, "--"],
    "per-file": [*JOBSTAMP, "--per-file", "--"],
    "pre-commit": [sys.executable, "-m", "jobstamps.precommit", "--"],
}


@pytest.mark.parametrize("front_end", FRONT_ENDS)
@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"JOBSTAMPS_REMOTE_TTL": "abc"}, "JOBSTAMPS_REMOTE_TTL"),
        ({"JOBSTAMPS_REMOTE_LAYOUT": "tree"}, "JOBSTAMPS_REMOTE_LAYOUT"),
        ({"JOBSTAMPS_REMOTE": "http://ci:hunter2@host:99999/x"}, "JOBSTAMPS_REMOTE"),
        ({"JOBSTAMPS_BASE_DIR": "no-such-directory"}, "JOBSTAMPS_BASE_DIR"),
    ],
)
def test_a_bad_remote_setting_in_the_environment_never_stops_the_command(
    tmp_path: Path, front_end: str, env: dict[str, str], variable: str
) -> None:
    (tmp_path / "checked.txt").write_text("x\n")
    files = ["checked.txt"] if front_end == "cli" else ["--", "checked.txt"]
    command = [*FRONT_ENDS[front_end], *CHECKER, *files]
    settings = {"JOBSTAMPS_REMOTE": f"http://127.0.0.1:{free_port()}/cache", **env}
    plain = subprocess.run(
        [*CHECKER, "checked.txt"], cwd=tmp_path, capture_output=True, timeout=60, check=False
    )
    done = subprocess.run(
        command,
        env=changed_env(settings),
        cwd=tmp_path,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout) == (plain.returncode, plain.stdout)
    assert plain.returncode == 3
    warnings = [line for line in done.stderr.decode().splitlines() if line.startswith("jobstamp:")]
    assert len(warnings) == 1, done.stderr
    assert f"(from {variable}); continuing without the remote cache" in warnings[0]
    assert "hunter2" not in done.stderr.decode()
    assert done.stderr.decode().replace(warnings[0] + "\n", "") == plain.stderr.decode()


def test_a_bad_remote_setting_in_the_environment_never_stops_a_python_call() -> None:
    code = (
        "import jobstamps\n"
        "@jobstamps.memoize\n"
        "def double(x):\n"
        "    return 2 * x\n"
        "print(double(2), double(3))\n"
    )
    env = changed_env(
        {
            "JOBSTAMPS_REMOTE": f"http://127.0.0.1:{free_port()}/cache",
            "JOBSTAMPS_REMOTE_KEY": SECRET,
            "JOBSTAMPS_REMOTE_TTL": "abc",
        }
    )
    done = run_python(code, env=env)
    assert done.stdout == "4 6\n"
    assert done.stderr.count("\n") == 1
    assert "(from JOBSTAMPS_REMOTE_TTL); continuing without the remote cache" in done.stderr


def test_a_bad_remote_url_on_the_command_line_is_a_usage_error(tmp_path: Path) -> None:
    counter = tmp_path / "runs"
    done = subprocess.run(
        [*JOBSTAMP, "--remote", "http://ci:hunter2@host:99999", "--", *counting(counter, "true")],
        cwd=tmp_path,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert runs(counter) == 0
    assert b"malformed" in done.stderr
    assert b"hunter2" not in done.stderr
