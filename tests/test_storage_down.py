"""A remote that could not be reached is left alone for a while, by every invocation, and only
for the URL and credentials that failed; one that refused a password is not."""

from __future__ import annotations

import contextlib
import subprocess
import time
from typing import TYPE_CHECKING

import pytest

from servers import DRIPPING_BODY, DripServer, Nginx, RedisServer, SilentServer
from support import JOBSTAMP, changed_env, counting, runs

if TYPE_CHECKING:
    from pathlib import Path


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
