"""A remote cache's settings: URL options and variables, the credentials kept out of every
message, and a bad setting that never stops the command it came with."""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from jobstamps.errors import UsageError
from jobstamps.storage.remote import open_remote
from jobstamps.storage.remote_settings import Settings
from servers import free_port
from support import JOBSTAMP, changed_env, counting, run_python, runs

if TYPE_CHECKING:
    from pathlib import Path

SECRET = "team secret"  # noqa: S105 - a test's own


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
