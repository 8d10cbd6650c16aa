"""Results shared between two "machines" through a real remote cache, from every front end.

A machine is a checkout of the same files at an absolute path of its own and a local cache of
its own; the remote is nginx (WebDAV) or redis-server on 127.0.0.1.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import shutil
import subprocess
import sys
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from test_cmake import PROJECTS, REPLAY_OUT, configure
from test_cmake import runs as cmake_runs
from test_make import MakeProject
from test_precommit import git, hook_repo, pre_commit_config, run_pre_commit  # noqa: F401

from jobstamps import __version__
from jobstamps.storage.local.packs import PACK_MIN
from jobstamps.storage.records import MANIFEST, Record, decode, encode
from jobstamps.store import Store
from servers import SHIPPED_NGINX, Place, RedisServer, ShippedNginx, free_port
from support import (
    JOBSTAMP,
    c_project,
    cache_entries,
    cache_packs,
    changed_env,
    checker_runs,
    counting,
    counting_python,
    docs_code_blocks,
    installed_env,
    mounted,
    run_folded,
    runs,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

SECRET = "shared secret"  # noqa: S105 - a test's
WARNING = "jobstamp: remote cache "
LINTER = """#!/bin/sh
# Names every file holding "bad" (path:1:1: message), as a linter would; fails if any.
status=0
for file; do
    if grep -q bad "$file"; then echo "$file:1:1: E1 bad here"; status=1; fi
done
echo "checked $#" >&2
exit $status
"""


class Machine:
    """A checkout of ``project`` at a path of its own, with a local cache of its own."""

    def __init__(self, root: Path, project: Path) -> None:
        self.checkout = root / "work" / "project"
        shutil.copytree(project, self.checkout, symlinks=True)
        self.cache = root / "cache"

    def env(self, url: str | None, **extra: str | None) -> dict[str, str]:
        """The environment of a job on this machine, sharing through ``url``."""
        changes = {"JOBSTAMPS_CACHE_DIR": str(self.cache), "JOBSTAMPS_REMOTE": url, **extra}
        return changed_env(changes)

    def run(
        self, command: Sequence[str | os.PathLike[str]], url: str | None, **extra: str | None
    ) -> subprocess.CompletedProcess[bytes]:
        """Run ``command`` in the checkout."""
        return subprocess.run(
            [os.fspath(part) for part in command],
            cwd=self.checkout,
            env=self.env(url, **extra),
            capture_output=True,
            timeout=120,
            check=False,
        )

    def jobstamp(
        self, *args: str | os.PathLike[str], url: str | None, **extra: str | None
    ) -> subprocess.CompletedProcess[bytes]:
        """Run ``jobstamp ARGS`` in the checkout."""
        return self.run([*JOBSTAMP, *args], url, **extra)

    def stats(self) -> dict[str, str]:
        """Return ``jobstamp --show-stats`` as a dict of its rows."""
        shown = self.jobstamp("--show-stats", url=None).stdout.decode()
        return {line[:17].strip(): line[17:].strip() for line in shown.splitlines()}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The files both machines check out: a repository root (``.git``), inputs, a linter."""
    root = tmp_path / "source"
    (root / ".git").mkdir(parents=True)
    (root / "input.txt").write_text("some input\n")
    (root / "other.txt").write_text("other input\n")
    (root / "good.py").write_text("x = 1\n")
    (root / "bad.py").write_text("bad = 1\n")
    linter = root / "tools" / "lint"
    linter.parent.mkdir()
    linter.write_text(LINTER)
    linter.chmod(0o755)
    return root


@pytest.fixture
def machines(tmp_path: Path, project: Path) -> tuple[Machine, Machine]:
    return Machine(tmp_path / "a", project), Machine(tmp_path / "b", project)


@pytest.fixture(params=["subdirs", "bazel", "redis"])
def every_place(request: pytest.FixtureRequest) -> Place:
    """Each kind of remote: HTTP (two layouts) and Redis."""
    return _place(request)


@pytest.fixture(params=["subdirs", "redis"])
def place(request: pytest.FixtureRequest) -> Place:
    """One HTTP layout and Redis."""
    return _place(request)


def _place(request: pytest.FixtureRequest) -> Place:
    if request.param == "redis":
        return Place("redis", None, request.getfixturevalue("redis_server"))
    return Place(request.param, request.getfixturevalue("nginx"), None)


def check_input(counter: Path, name: str = "input.txt") -> list[str]:
    """A job that reads ``name``, writes on both streams and fails: a command to share."""
    return [
        "--dependencies",
        name,
        "--",
        *counting(counter, f'cat {name}; echo "warning: looked at {name}" >&2; exit 3'),
    ]


def remote_lines(stderr: bytes) -> list[str]:
    return [line for line in stderr.decode().splitlines() if line.startswith(WARNING)]


# -- the command line ---------------------------------------------------------------------------


def test_machine_b_replays_what_machine_a_stored(
    machines: tuple[Machine, Machine], every_place: Place, tmp_path: Path
) -> None:
    a, b = machines
    counter = tmp_path / "runs"
    first = a.jobstamp(*check_input(counter), url=every_place.url)
    assert (first.returncode, first.stdout) == (3, b"some input\n")
    assert every_place.uploads() >= 1
    shared = b.jobstamp(*check_input(counter), url=every_place.url)
    assert runs(counter) == 1
    assert (shared.returncode, shared.stdout, shared.stderr) == (3, first.stdout, first.stderr)
    # The remote hit left a local entry: B replays it without the remote.
    local = b.jobstamp(*check_input(counter), url=None)
    assert runs(counter) == 1
    assert (local.returncode, local.stdout, local.stderr) == (3, first.stdout, first.stderr)


def test_a_result_taken_from_the_remote_explains_a_later_miss(
    machines: tuple[Machine, Machine], place: Place, tmp_path: Path
) -> None:
    a, b = machines
    counter = tmp_path / "runs"
    command = ["--env", "LEVEL", *check_input(counter)]
    a.jobstamp(*command, url=place.url, LEVEL="1")
    b.jobstamp(*command, url=place.url, LEVEL="1")
    assert runs(counter) == 1
    later = b.jobstamp("--explain", *command, url=None, LEVEL="2")
    assert b"the environment changed (LEVEL has another value)" in later.stderr


def test_many_parallel_clients_on_b_all_replay_what_a_stored(
    machines: tuple[Machine, Machine], place: Place, tmp_path: Path
) -> None:
    a, b = machines
    counter = tmp_path / "runs"
    names = [f"in{n}.txt" for n in range(4)]
    for machine in machines:
        for name in names:
            (machine.checkout / name).write_text(f"{name}\n")
    for name in names:
        a.jobstamp(*check_input(counter, name), url=place.url)
    command = [os.fspath(part) for part in JOBSTAMP]
    clients = [
        subprocess.Popen(
            [*command, *check_input(counter, name)],
            cwd=b.checkout,
            env=b.env(place.url),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for name in names * 3
    ]
    done = [(client.communicate(timeout=120), client.returncode) for client in clients]
    assert runs(counter) == len(names)
    for ((out, err), code), name in zip(done, names * 3, strict=True):
        assert (code, out) == (3, f"{name}\n".encode())
        assert remote_lines(err) == []


def test_a_changed_dependency_on_b_misses_the_remote(
    machines: tuple[Machine, Machine], place: Place, tmp_path: Path
) -> None:
    a, b = machines
    counter = tmp_path / "runs"
    a.jobstamp(*check_input(counter), url=place.url)
    (b.checkout / "input.txt").write_text("edited on b\n")
    result = b.jobstamp(*check_input(counter), url=place.url)
    assert runs(counter) == 2
    assert result.stdout == b"edited on b\n"
    assert remote_lines(result.stderr) == []


def test_the_working_directory_is_shared_relative_to_the_repository_root(
    machines: tuple[Machine, Machine], place: Place, tmp_path: Path
) -> None:
    a, b = machines
    counter = tmp_path / "runs"
    for machine in (a, b):
        (machine.checkout / "tools" / "notes.txt").write_text("notes\n")
        machine.checkout = machine.checkout / "tools"
        result = machine.jobstamp(*check_input(counter, "notes.txt"), url=place.url)
        assert result.stdout == b"notes\n"
    assert runs(counter) == 1


def test_an_absolute_argument_inside_the_checkout_is_shared(
    machines: tuple[Machine, Machine], place: Place, tmp_path: Path
) -> None:
    counter = tmp_path / "runs"
    for machine in machines:
        path = machine.checkout / "input.txt"
        result = machine.jobstamp(
            "--dependencies", path, "--", *counting(counter, 'wc -c < "$1"'), path, url=place.url
        )
        assert result.stdout.split() == [b"11"]
    assert runs(counter) == 1


def test_read_only_mode_uploads_nothing(
    machines: tuple[Machine, Machine], place: Place, tmp_path: Path
) -> None:
    a, _ = machines
    counter = tmp_path / "runs"
    a.jobstamp("--remote-read-only", *check_input(counter), url=place.url)
    (a.checkout / "input.txt").write_text("changed\n")
    a.jobstamp(*check_input(counter), url=place.url, JOBSTAMPS_REMOTE_READ_ONLY="1")
    assert runs(counter) == 2
    assert place.uploads() == 0
    assert a.stats()["remote uploads"] == "0"


def test_the_flag_names_the_remote_without_the_variable(
    machines: tuple[Machine, Machine], place: Place, tmp_path: Path
) -> None:
    a, b = machines
    counter = tmp_path / "runs"
    a.jobstamp("--remote", place.url, *check_input(counter), url=None)
    b.jobstamp("--remote", place.url, *check_input(counter), url=None)
    assert runs(counter) == 1


def test_force_runs_the_job_and_still_shares_its_result(
    machines: tuple[Machine, Machine], place: Place, tmp_path: Path
) -> None:
    a, b = machines
    counter = tmp_path / "runs"
    a.jobstamp("--force", *check_input(counter), url=place.url)
    assert place.uploads() >= 1
    b.jobstamp("--force", *check_input(counter), url=place.url)
    assert runs(counter) == 2  # forced: not taken from the remote
    (b.cache / "v1").rename(b.cache / "old")
    b.jobstamp(*check_input(counter), url=place.url)
    assert runs(counter) == 2
    a.jobstamp("--force", *per_file("good.py", "bad.py"), url=place.url)
    (b.cache / "v1").rename(b.cache / "older")
    taken = b.jobstamp("--explain", *per_file("good.py", "bad.py"), url=place.url)
    assert b"replayed bad.py from the remote cache" in taken.stderr
    forced = b.jobstamp("--force", "--explain", *per_file("good.py", "bad.py"), url=place.url)
    assert b"2 files: 0 replayed" in forced.stderr
    assert b"from the remote cache" not in forced.stderr


def test_show_stats_counts_remote_hits_misses_and_bytes(
    machines: tuple[Machine, Machine], place: Place, tmp_path: Path
) -> None:
    a, b = machines
    counter = tmp_path / "runs"
    a.jobstamp(*check_input(counter), url=place.url)
    b.jobstamp(*check_input(counter), url=place.url)
    on_a, on_b = a.stats(), b.stats()
    assert (on_a["remote hits"], on_a["remote misses"], on_a["remote errors"]) == ("0", "1", "0")
    assert on_a["remote uploads"] == "1"
    assert on_a["remote sent"] != "0 B"
    assert (on_b["remote hits"], on_b["remote misses"], on_b["remote uploads"]) == ("1", "0", "0")
    assert on_b["remote received"] != "0 B"
    assert on_b["hits"] == "1"  # replayed from the entry the remote hit filled
    a.jobstamp("--zero-stats", url=None)
    assert "remote hits" not in a.stats()


def test_a_20_mb_output_passes_through_the_command_line(
    machines: tuple[Machine, Machine], place: Place, tmp_path: Path
) -> None:
    a, b = machines
    counter = tmp_path / "runs"
    code = "import os, sys; sys.stdout.buffer.write(os.urandom(20 << 20)); sys.exit(1)"
    command = ["--", *counting_python(counter, code)]
    first = a.jobstamp(*command, url=place.url)
    assert len(first.stdout) == 20 << 20
    second = b.jobstamp(*command, url=place.url)
    assert runs(counter) == 1
    assert second.returncode == 1
    assert hashlib.sha256(second.stdout).digest() == hashlib.sha256(first.stdout).digest()
    assert remote_lines(second.stderr) == []


def test_a_full_local_disk_is_not_blamed_on_the_remote(
    machines: tuple[Machine, Machine], place: Place, tmp_path: Path
) -> None:
    a, b = machines
    counter = tmp_path / "runs"
    code = "import sys; sys.stdout.write('x' * (2 << 20))"  # a blob, larger than the disk
    command = ["--", *counting_python(counter, code)]
    assert a.jobstamp(*command, url=place.url).returncode == 0
    Store(str(b.cache)).create()
    with mounted(b.cache / "v1" / "b"):  # 1 MB: B's downloads and results do not fit
        second = b.jobstamp("--explain", *command, url=place.url)
        assert (second.returncode, len(second.stdout)) == (0, 2 << 20)
        assert remote_lines(second.stderr) == []  # the remote did nothing wrong
        assert b"not filled from the remote cache: No space left on device" in second.stderr
        assert os.listdir(b.cache / "v1" / "b") == []  # no temporary file left behind
    assert runs(counter) == 2
    assert b.stats()["remote errors"] == "0"


def test_output_files_are_shared_with_restore_outputs(
    machines: tuple[Machine, Machine], place: Place, tmp_path: Path
) -> None:
    a, b = machines
    counter = tmp_path / "runs"
    command = [
        "--restore-outputs",
        "--dependencies",
        "input.txt",
        "--output-files",
        "out/made.txt",
        "--",
        *counting(
            counter, "mkdir -p out; tr a-z A-Z < input.txt > out/made.txt; chmod 640 out/made.txt"
        ),
    ]
    a.jobstamp(*command, url=place.url)
    result = b.jobstamp(*command, url=place.url)
    assert runs(counter) == 1
    assert result.returncode == 0
    made = b.checkout / "out" / "made.txt"
    assert made.read_text() == "SOME INPUT\n"
    assert made.stat().st_mode & 0o777 == 0o640


def test_output_files_are_not_shared_without_restore_outputs(
    machines: tuple[Machine, Machine], place: Place, tmp_path: Path
) -> None:
    counter = tmp_path / "runs"
    command = ["--output-files", "made.txt", "--", *counting(counter, "cp input.txt made.txt")]
    for machine in machines:
        machine.jobstamp(*command, url=place.url)
    assert runs(counter) == 2
    assert place.uploads() == 0


# -- records that must not be believed ----------------------------------------------------------


def entry_files(place: Place) -> list[Path]:
    """The entries (not blobs) an HTTP remote holds."""
    assert place.nginx is not None
    top = place.nginx.root / place.prefix.strip("/")
    return [path for path in top.rglob("*") if path.is_file() and "cas" not in path.parts]


@pytest.fixture
def http_place(nginx: object) -> Place:
    return Place("subdirs", nginx, None)  # type: ignore[arg-type]


@pytest.mark.parametrize("tampering", ["corrupted", "forged without the key", "another key's"])
def test_records_that_do_not_verify_are_rejected_and_the_job_runs(
    machines: tuple[Machine, Machine], http_place: Place, tmp_path: Path, tampering: str
) -> None:
    a, b = machines
    counter = tmp_path / "runs"
    a.jobstamp(*check_input(counter), url=http_place.url, JOBSTAMPS_REMOTE_KEY=SECRET)
    (entry,) = entry_files(http_place)
    data = entry.read_bytes()
    if tampering == "corrupted":
        entry.write_bytes(data[:40] + bytes([data[40] ^ 1]) + data[41:])
    elif tampering == "forged without the key":
        record = decode(data, entry.parent.name + entry.name, SECRET.encode())
        forged = Record(record.key, exit_code=0, chunks=[(1, 7)], data=b"forged\n")
        entry.write_bytes(encode(forged))
    else:
        a.jobstamp(*check_input(counter, "other.txt"), url=http_place.url)
        (other,) = [path for path in entry_files(http_place) if path != entry]
        other.write_bytes(data)  # input.txt's result, served for other.txt's key
        entry = other
    assert runs(counter) in {1, 2}
    before = runs(counter)
    name = "other.txt" if tampering == "another key's" else "input.txt"
    result = b.jobstamp(
        *check_input(counter, name), url=http_place.url, JOBSTAMPS_REMOTE_KEY=SECRET
    )
    assert runs(counter) == before + 1
    assert result.returncode == 3
    assert result.stdout == (b.checkout / name).read_bytes()
    assert len(remote_lines(result.stderr)) == 1
    assert b.stats()["remote errors"] == "1"


def test_a_record_naming_other_output_files_writes_nothing_and_the_job_runs(
    machines: tuple[Machine, Machine], http_place: Place, tmp_path: Path
) -> None:
    a, b = machines
    counter = tmp_path / "runs"
    command = [
        "--restore-outputs",
        "--output-files",
        "made.txt",
        "--",
        *counting(counter, "echo made > made.txt"),
    ]
    a.jobstamp(*command, url=http_place.url)
    (entry,) = entry_files(http_place)
    record = decode(entry.read_bytes(), entry.parent.name + entry.name)
    ((_, mode, digest, size),) = record.outputs
    for path in ("elsewhere.txt", "tools/lint"):
        record.outputs = [(path, mode, digest, size)]
        entry.write_bytes(encode(record))
        result = b.jobstamp(*command, url=http_place.url)
        assert len(remote_lines(result.stderr)) == 1
        assert (b.checkout / "made.txt").read_text() == "made\n"
        (b.checkout / "made.txt").unlink()
        shutil.rmtree(b.cache)
    assert runs(counter) == 3
    assert not (b.checkout / "elsewhere.txt").exists()
    assert (b.checkout / "tools" / "lint").read_text() == LINTER


def test_the_server_stopped_during_a_run_is_one_warning_and_the_right_status(
    machines: tuple[Machine, Machine], tmp_path: Path
) -> None:
    a, _ = machines
    counter = tmp_path / "runs"
    server = RedisServer(tmp_path / "redis")
    with server.running():
        assert server.process is not None
        pid = server.process.pid
        command = ["--", *counting(counter, f"kill {pid}; sleep 0.5; cat input.txt; exit 3")]
        result = a.jobstamp(*command, url=server.url)
    assert runs(counter) == 1
    assert (result.returncode, result.stdout) == (3, b"some input\n")
    assert len(remote_lines(result.stderr)) == 1
    again = a.jobstamp(*command, url=server.url)  # stored locally all the same
    assert runs(counter) == 1
    assert again.returncode == 3


def test_a_refused_remote_is_one_warning_and_the_job_runs(
    machines: tuple[Machine, Machine], tmp_path: Path
) -> None:
    a, _ = machines
    counter = tmp_path / "runs"
    result = a.jobstamp(*check_input(counter), url=f"http://127.0.0.1:{free_port()}/cache")
    assert (result.returncode, result.stdout) == (3, b"some input\n")
    (line,) = remote_lines(result.stderr)
    assert "continuing without it" in line


def test_a_malformed_remote_url_is_a_usage_error(machines: tuple[Machine, Machine]) -> None:
    a, _ = machines
    result = a.jobstamp("--remote", "ftp://example.invalid/", "--", "true", url=None)
    assert result.returncode == 2
    assert result.stderr.decode().startswith("jobstamp: remote cache URL 'ftp://")


def test_a_missing_base_directory_is_a_usage_error(machines: tuple[Machine, Machine]) -> None:
    a, _ = machines
    result = a.jobstamp("--base-dir", "nowhere", "--", "true", url="redis://127.0.0.1:1/0")
    assert result.returncode == 2
    assert "base directory nowhere is not a directory" in result.stderr.decode()


# -- per file -----------------------------------------------------------------------------------


def per_file(*files: str) -> list[str]:
    return ["--per-file", "--", "tools/lint", "--", *files]


def test_per_file_results_are_looked_up_together_and_shared(
    machines: tuple[Machine, Machine], place: Place
) -> None:
    a, b = machines
    first = a.jobstamp(*per_file("good.py", "bad.py"), url=place.url)
    assert first.returncode == 1
    assert first.stdout == b"bad.py:1:1: E1 bad here\n"
    (b.checkout / "tools" / "lint").write_text(LINTER.replace("bad here", "changed"))
    (b.checkout / "tools" / "lint").chmod(0o755)
    # Another linter on B: nothing from A is replayed.
    assert b"changed" in b.jobstamp(*per_file("bad.py"), url=place.url).stdout
    (b.checkout / "tools" / "lint").write_text(LINTER)
    (b.checkout / "good.py").write_text("x = 2\n")
    result = b.jobstamp("--explain", *per_file("good.py", "bad.py"), url=place.url)
    assert result.stdout == first.stdout
    assert result.returncode == 1
    assert b"replayed bad.py from the remote cache" in result.stderr
    assert b"running bad.py" not in result.stderr
    assert b"running good.py: no result is stored" in result.stderr
    assert b"good.py from the remote cache" not in result.stderr
    stats = b.stats()
    assert stats["remote hits"] == "1"


def test_a_per_file_result_larger_than_a_record_holds_is_shared(
    machines: tuple[Machine, Machine], place: Place
) -> None:
    big = (
        'for file; do printf "%s:1:1: E2 " "$file"; head -c 400000 /dev/zero | tr "\\0" x; '
        "echo; done; exit 1"
    )
    outputs = []
    for machine in machines:
        script = machine.checkout / "tools" / "big"
        script.write_text(f"#!/bin/sh\n{big}\n")
        script.chmod(0o755)
        result = machine.jobstamp(
            "--explain", "--per-file", "--", "tools/big", "--", "good.py", url=place.url
        )
        assert result.returncode == 1
        outputs.append(result)
    assert len(outputs[0].stdout) > 400000
    assert outputs[1].stdout == outputs[0].stdout
    assert b"replayed good.py from the remote cache" in outputs[1].stderr


def many_files(checkout: Path, count: int) -> list[str]:
    """Write ``count`` Python files that pass the linter into ``checkout``; return their names."""
    names = [f"m{number:03}.py" for number in range(count)]
    for number, name in enumerate(names):
        (checkout / name).write_text(f"x = {number}\n")
    return names


def test_many_results_filled_from_the_remote_are_one_local_file(
    machines: tuple[Machine, Machine], place: Place
) -> None:
    a, b = machines
    names = many_files(a.checkout, PACK_MIN + 8)
    many_files(b.checkout, PACK_MIN + 8)
    assert a.jobstamp(*per_file(*names), url=place.url).returncode == 0
    filled = b.jobstamp(*per_file(*names), url=place.url)
    assert (filled.returncode, filled.stdout) == (0, b"")
    stats = b.stats()
    # Each file is a remote hit, replayed locally: a hit, not also a miss.
    assert (stats["remote hits"], stats["hits"], stats["misses"]) == (str(len(names)),) * 2 + ("0",)
    assert len(cache_packs(b.cache)) == 1
    assert cache_entries(b.cache) == []
    # Replayed from that file with no remote at all; an edited file runs alone.
    (b.checkout / names[1]).write_text("bad = 2\n")
    again = b.jobstamp("--explain", *per_file(*names), url=None)
    assert (again.returncode, again.stdout) == (1, f"{names[1]}:1:1: E1 bad here\n".encode())
    assert again.stderr.count(b"running ") == 1
    assert b"running " + names[1].encode() + b":" in again.stderr


def test_a_local_per_file_hit_loads_no_remote_code(
    machines: tuple[Machine, Machine], tmp_path: Path
) -> None:
    a, _ = machines
    url = f"http://127.0.0.1:{free_port()}/cache"
    a.jobstamp(*per_file("good.py", "bad.py"), url=url)
    hit = a.run([sys.executable, "-X", "importtime", "-m", "jobstamps", *per_file("bad.py")], url)
    assert hit.stdout == b"bad.py:1:1: E1 bad here\n"
    loaded = {line.rpartition("|")[2].strip() for line in hit.stderr.decode().splitlines()}
    assert "jobstamps.perfile" in loaded
    storage = {name for name in loaded if name.startswith("jobstamps.storage.")}
    assert storage <= {f"jobstamps.storage.local{part}" for part in ("", ".layout", ".packs")}
    assert "jobstamps.portable" not in loaded


# -- the Python API -----------------------------------------------------------------------------

CALLER = """
import sys
from jobstamps import jobstamp
import checks

for name in sys.argv[1:]:
    print(jobstamp.run(checks.shout, name, jobstamps_dependencies=[name]))
"""
CHECKS = """
import os

def shout(path):
    with open(os.environ["COUNTER"], "a") as counter:
        counter.write("ran\\n")
    with open(path) as source:
        return source.read().upper()
"""


def api(machine: Machine, url: str, counter: Path, *names: str, **extra: str | None) -> str:
    for name, text in (("caller.py", CALLER), ("checks.py", CHECKS)):
        (machine.checkout / name).write_text(text)
    result = machine.run([sys.executable, "caller.py", *names], url, COUNTER=str(counter), **extra)
    assert result.returncode == 0, result.stderr
    return result.stdout.decode() + result.stderr.decode()


def test_the_api_without_the_key_never_reads_the_remote(
    machines: tuple[Machine, Machine], http_place: Place, tmp_path: Path
) -> None:
    a, _ = machines
    counter = tmp_path / "runs"
    said = api(a, http_place.url, counter, "input.txt", "other.txt", JOBSTAMPS_DEBUG="1")
    assert runs(counter) == 2
    assert said.count("not used for Python results without JOBSTAMPS_REMOTE_KEY") == 1
    assert http_place.nginx is not None
    assert [r for r in http_place.nginx.requests() if r[1].startswith(http_place.prefix)] == []


def test_the_api_with_the_key_shares_results_between_machines(
    machines: tuple[Machine, Machine], place: Place, tmp_path: Path
) -> None:
    a, b = machines
    counter = tmp_path / "runs"
    assert api(a, place.url, counter, "input.txt", JOBSTAMPS_REMOTE_KEY=SECRET) == "SOME INPUT\n\n"
    assert api(b, place.url, counter, "input.txt", JOBSTAMPS_REMOTE_KEY=SECRET) == "SOME INPUT\n\n"
    assert runs(counter) == 1
    assert b.stats()["remote hits"] == "1"
    # Records signed with another key are refused: the call runs.
    api(a, place.url, counter, "other.txt", JOBSTAMPS_REMOTE_KEY=SECRET)
    said = api(b, place.url, counter, "other.txt", JOBSTAMPS_REMOTE_KEY="another")
    assert said.startswith("OTHER INPUT\n\njobstamp: remote cache ")
    assert runs(counter) == 3


# -- pre-commit, CMake and Make: the remote comes through the environment ------------------------


@pytest.mark.slow
def test_pre_commit_on_machine_b_replays_what_machine_a_stored(
    hook_repo: tuple[str, str],  # noqa: F811 - the fixture imported above
    place: Place,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JOBSTAMPS_REMOTE", place.url)
    said = []
    for name in ("a", "b"):
        root = tmp_path / name / "project"
        root.mkdir(parents=True)
        git(root, "init", "--quiet")
        (root / "good.py").write_text("x = 1\n")
        (root / "bad.py").write_text("import os\n")
        # The hook's environment needs redis-py for a Redis remote, as the docs say.
        pre_commit_config(
            root,
            hook_repo,
            "- id: jobstamp-flake8\n"
            "  args: [--jobstamps--, --explain, --]\n"
            "  additional_dependencies: [flake8, redis]",
        )
        # Each machine has its own hook environment, at a path of its own.
        monkeypatch.setenv("JOBSTAMPS_CACHE_DIR", str(tmp_path / name / "cache"))
        result = run_pre_commit(root, tmp_path / name / "pre-commit-home")
        assert result.returncode == 1, result.stdout + result.stderr
        assert "bad.py:1:1: F401 'os' imported but unused" in result.stdout
        said.append(result.stdout)
    assert "jobstamp: 2 files: 0 replayed, 2 ran in " in said[0]
    assert "jobstamp: 2 files: 2 replayed, 0 ran in 0 runs" in said[1], said[1]


@pytest.fixture
def with_client(installed: Path, place: Place) -> Path:
    """The installed copy, with the client library ``place`` needs (``jobstamps[redis]``)."""
    if place.kind == "redis":
        done = subprocess.run(
            [installed / "python", "-m", "pip", "install", "--quiet", "redis>=5"],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode:
            pytest.skip(f"redis-py could not be installed: {done.stderr.strip()[-300:]}")
    return installed


def machine_env(root: Path, place: Place) -> dict[str, str]:
    """A machine at ``root``: a local cache of its own, sharing through ``place``."""
    return {"JOBSTAMPS_CACHE_DIR": str(root / "cache"), "JOBSTAMPS_REMOTE": place.url}


def configured_copy(
    root: Path, project: str, python_option: str, installed: Path, *, c_sources: bool = False
) -> Path:
    """Copy tests/cmake/``project`` into ``root`` as a repository (with C sources if
    ``c_sources``) and configure it, ``python_option`` naming the installed Python; return its
    build directory."""
    source = root / "source"
    shutil.copytree(PROJECTS / project, source)
    (source / ".git").mkdir()
    if c_sources:
        c_project(source)
    build = source / "build"
    python = f"-D{python_option}={installed / 'python'}"
    configured = configure(source, build, "Ninja", installed_env(installed), python)
    assert configured.returncode == 0, configured.stdout
    return build


@pytest.mark.slow
def test_a_cmake_target_on_machine_b_replays_what_machine_a_stored(
    with_client: Path, place: Place, tmp_path: Path
) -> None:
    installed = with_client
    outputs = []
    for name in ("a", "b"):
        build = configured_copy(tmp_path / name, "lint_project", "LINT_PYTHON", installed)
        env = installed_env(
            installed,
            LINT_COUNTS=str(tmp_path / name / "counts"),
            **machine_env(tmp_path / name, place),
        )
        built = run_folded(["cmake", "--build", str(build), "--target", "replay"], env)
        assert built.returncode == 0, built.stdout
        outputs.append(built.stdout)
    assert cmake_runs(tmp_path / "a" / "counts", "replay") == 1
    assert cmake_runs(tmp_path / "b" / "counts", "replay") == 0
    assert REPLAY_OUT in outputs[1]


@pytest.mark.slow
def test_a_cmake_per_file_target_on_machine_b_replays_what_machine_a_stored(
    with_client: Path, place: Place, tmp_path: Path
) -> None:
    installed = with_client
    logs = []
    for name in ("a", "b"):
        build = configured_copy(
            tmp_path / name, "perfile_project", "CHECK_PYTHON", installed, c_sources=True
        )
        log = tmp_path / name / "check.log"
        env = installed_env(installed, CHECK_LOG=str(log), **machine_env(tmp_path / name, place))
        built = run_folded(["cmake", "--build", str(build), "--target", "check_hashed"], env)
        assert built.returncode == 0, built.stdout
        assert "src/f00.c:1:1: note: plain checked" in built.stdout
        logs.append(checker_runs(log))
    assert sum(len(run) for run in logs[0]) == 20
    assert logs[1] == []


@pytest.mark.slow
def test_a_make_target_on_machine_b_replays_what_machine_a_stored(
    with_client: Path, place: Place, tmp_path: Path
) -> None:
    installed = with_client
    outputs = []
    for name in ("a", "b"):
        project = MakeProject(tmp_path / name / "project", installed)
        (project.root / ".git").mkdir()
        made = project.make("hashes", **machine_env(tmp_path / name, place))
        assert made.returncode == 0, made.stdout
        outputs.append((cmake_runs(project.counts, "hashes"), made.stdout))
    assert [count for count, _ in outputs] == [1, 0]
    assert "hashes: checked  in project" in outputs[1][1]


# -- The recipes of the docs -------------------------------------------------------------------


def test_the_shipped_nginx_configuration_is_a_team_cache(
    machines: tuple[Machine, Machine], tmp_path: Path
) -> None:
    a, b = machines
    counter = tmp_path / "runs"
    with ShippedNginx(tmp_path / "nginx").running() as server:
        host = f"127.0.0.1:{server.port}/jobstamps"
        writer = f"http://{server.USER}:{server.PASSWORD}@{host}"
        stored = a.jobstamp(*check_input(counter), url=writer)
        assert remote_lines(stored.stderr) == []
        assert list((server.root / "jobstamps").rglob("*"))
        # Without the password: reads work, writes are refused (one warning, a miss).
        replayed = b.jobstamp(*check_input(counter), url=f"http://{host}")
        assert runs(counter) == 1
        assert replayed.stdout == stored.stdout
        (b.checkout / "other.txt").write_text("new\n")
        refused = b.jobstamp(*check_input(counter, "other.txt"), url=f"http://{host}")
        assert runs(counter) == 2
        assert refused.returncode == 3
        assert len(remote_lines(refused.stderr)) == 1


def test_the_ci_recipes_carry_results_across_runs() -> None:
    yaml = pytest.importorskip("yaml")
    blocks = [yaml.safe_load(b) for b in docs_code_blocks("howto/ci-cache", "yaml")]
    ci_cache, gitlab, hooks, team_server = blocks
    for recipe in (ci_cache, team_server):
        lint = recipe["jobs"]["lint"]
        assert "services" not in lint  # a container started empty in each job shares nothing
        cached = [step["with"]["path"] for step in lint["steps"] if "cache" in step.get("uses", "")]
        assert "~/.cache/pre-commit" in cached  # the hooks' environments, too
        installs = [step["run"] for step in lint["steps"] if "pip install" in step.get("run", "")]
        assert installs
        assert all("==" in word for run in installs for word in run.split()[2:])  # pinned
    lint = ci_cache["jobs"]["lint"]
    assert lint["env"]["JOBSTAMPS_ALWAYS_USE_HASHES"] == "1"
    assert lint["env"]["JOBSTAMPS_CACHE_DIR"] in [s["with"]["path"] for s in lint["steps"][2:4]]
    env = team_server["jobs"]["lint"]["env"]
    assert env["JOBSTAMPS_REMOTE"].startswith("${{ secrets.")
    assert env["JOBSTAMPS_REMOTE_READ_ONLY"].endswith("&& '1' || '0' }}")  # "" would be on
    ((hook,),) = [repo["hooks"] for repo in hooks["repos"]]
    assert hooks["repos"][0]["rev"] == f"v{__version__}"
    assert "redis" in hook["additional_dependencies"]
    # GitLab caches only paths in the project directory: both caches live there.
    job = gitlab["lint"]
    assert job["variables"]["JOBSTAMPS_ALWAYS_USE_HASHES"] == "1"
    kept = {job["variables"][name].replace("$CI_PROJECT_DIR/", "") for name in job["variables"]}
    assert {".jobstamps-cache", ".pre-commit-cache"} <= kept
    assert set(job["cache"]["paths"]) == {".jobstamps-cache", ".pre-commit-cache"}
    (install,) = [run for run in job["script"] if "pip install" in run]
    assert all("==" in word for word in install.split()[2:])
    # The quick start's workflow is the first recipe with its triggers.
    (workflow,) = [yaml.safe_load(b) for b in docs_code_blocks("quickstart/ci", "yaml")]
    assert workflow["jobs"] == ci_cache["jobs"]
    assert workflow[True] == ["push", "pull_request"]  # YAML 1.1 reads the key "on" as true


def test_the_team_cache_page_shows_the_shipped_nginx_configuration() -> None:
    assert docs_code_blocks("howto/team-cache", "nginx") == [SHIPPED_NGINX.read_text()]


def test_a_cache_restored_into_a_fresh_checkout_at_the_same_path_replays_with_hashes(
    machines: tuple[Machine, Machine], project: Path, tmp_path: Path
) -> None:
    """The docs' serverless recipe: save the cache after a job, restore it before the next."""
    a, _ = machines
    counter = tmp_path / "runs"
    hashes = {"JOBSTAMPS_ALWAYS_USE_HASHES": "1"}
    stored = a.jobstamp(*check_input(counter), url=None, **hashes)
    saved = tmp_path / "saved-cache"
    shutil.copytree(a.cache, saved)  # as a CI cache step keeps it: modes and times too
    for run in range(2):
        shutil.rmtree(a.cache)
        shutil.rmtree(a.checkout)
        shutil.copytree(project, a.checkout, symlinks=True)  # new inodes, new times
        later = os.stat(a.checkout / "input.txt").st_mtime + 100 + run
        os.utime(a.checkout / "input.txt", (later, later))
        if run:
            (a.checkout / "input.txt").write_text("changed input\n")
        shutil.copytree(saved, a.cache)
        again = a.jobstamp(*check_input(counter), url=None, **hashes)
        assert runs(counter) == 1 + run
        assert again.returncode == stored.returncode == 3
        assert again.stdout == (a.checkout / "input.txt").read_bytes()


def test_an_output_file_outside_the_base_directory_is_cached_locally_but_not_shared(
    machines: tuple[Machine, Machine], place: Place, tmp_path: Path
) -> None:
    counter = tmp_path / "runs"
    outside = tmp_path / "elsewhere" / "made.txt"
    command = [
        "--restore-outputs",
        "--output-files",
        str(outside),
        "--",
        *counting(counter, f"mkdir -p {outside.parent}; echo made > {outside}"),
    ]
    for machine in machines:
        for _ in range(2):
            result = machine.jobstamp(*command, url=place.url)
            assert (result.returncode, result.stderr) == (0, b"")
    assert runs(counter) == 2  # once per machine: replayed locally, never shared
    assert place.uploads() == 0
    said = machines[0].jobstamp("--explain", "--force", *command, url=place.url).stderr.decode()
    assert said.count(f"not shared: output file {outside} is outside the base directory") == 1


# -- launchers: what a program name runs --------------------------------------------------------

LAUNCHER = '#!/bin/sh\nexec sh "$(dirname "$(readlink -f "$0")")/../lib/main.sh" "$@"\n'
SHIM = '#!/bin/sh\nexec tool-real "$@"\n'  # runs whichever version PATH finds


def tool_version(version: str) -> str:
    """The code of a tool's version: 1.0 passes, any other fails; each run is counted."""
    status = 0 if version == "1.0" else 1
    return f'echo ran >> "$COUNTER"\necho "tool {version} checked $1"\nexit {status}\n'


def executable(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)


def install_tool(machine: Machine, home: Path, layout: str, version: str) -> tuple[str, str]:
    """Install version ``version`` of a tool the way ``layout`` does; return the command that
    runs it and the PATH to run it with."""
    path = os.environ["PATH"]
    if layout == "node_modules":  # .bin/tool -> ../tool/bin/tool, beside package.json
        package = machine.checkout / "node_modules" / "tool"
        executable(package / "bin" / "tool", LAUNCHER)
        executable(package / "lib" / "main.sh", tool_version(version))
        (package / "package.json").write_text(f'{{"name": "tool", "version": "{version}"}}\n')
        link = machine.checkout / "node_modules" / ".bin" / "tool"
        link.parent.mkdir(exist_ok=True)
        link.unlink(missing_ok=True)
        link.symlink_to(Path("..") / "tool" / "bin" / "tool")
        return "node_modules/.bin/tool", path
    if layout == "jar":  # a wrapper in bin/, the code in lib/, a VERSION file at the top
        top = home / "opt" / "tool"
        executable(top / "bin" / "tool", LAUNCHER)
        executable(top / "lib" / "main.sh", tool_version(version))
        (top / "VERSION").write_text(f"{version}\n")
        for link, target in [
            (home / "bin" / "tool", Path("..") / "links" / "tool"),  # a chain of links
            (home / "links" / "tool", top / "bin" / "tool"),
        ]:
            link.parent.mkdir(parents=True, exist_ok=True)
            link.unlink(missing_ok=True)
            link.symlink_to(target)
        return "tool", f"{home / 'bin'}{os.pathsep}{path}"
    shims = home / ".toolenv" / ("shims" if layout == "shim" else "bin")
    executable(shims / "tool", SHIM)
    real = home / ".toolenv" / "versions" / version
    executable(real / "tool-real", tool_version(version))
    return "tool", os.pathsep.join([str(shims), str(real), path])


@pytest.mark.parametrize("layout", ["node_modules", "jar"])
def test_a_launcher_of_another_version_does_not_replay_and_of_the_same_version_does(
    machines: tuple[Machine, Machine], place: Place, tmp_path: Path, layout: str
) -> None:
    a, b = machines
    counter = tmp_path / "runs"
    tool, path = install_tool(a, tmp_path / "a", layout, "1.0")
    passed = a.jobstamp("--", tool, "input.txt", url=place.url, PATH=path, COUNTER=str(counter))
    assert (passed.returncode, passed.stdout) == (0, b"tool 1.0 checked input.txt\n")
    tool, path = install_tool(b, tmp_path / "b", layout, "2.0")
    failed = b.jobstamp("--", tool, "input.txt", url=place.url, PATH=path, COUNTER=str(counter))
    assert (failed.returncode, failed.stdout) == (1, b"tool 2.0 checked input.txt\n")
    assert runs(counter) == 2
    tool, path = install_tool(b, tmp_path / "b", layout, "1.0")  # the same tool as A's
    shared = b.jobstamp("--", tool, "input.txt", url=place.url, PATH=path, COUNTER=str(counter))
    assert (shared.returncode, shared.stdout) == (0, passed.stdout)
    assert runs(counter) == 2


@pytest.mark.parametrize("layout", ["shim", "wrapper on PATH"])
def test_a_shim_choosing_its_version_elsewhere_is_never_shared(
    machines: tuple[Machine, Machine], place: Place, tmp_path: Path, layout: str
) -> None:
    counter = tmp_path / "runs"
    for machine, version in zip(machines, ("1.0", "1.0"), strict=True):
        tool, path = install_tool(machine, tmp_path / machine.cache.parent.name, layout, version)
        result = machine.jobstamp(
            "--explain", "--", tool, "input.txt", url=place.url, PATH=path, COUNTER=str(counter)
        )
        assert (result.returncode, result.stdout) == (0, b"tool 1.0 checked input.txt\n")
        what = "shim" if layout == "shim" else "shell script outside the base directory"
        (said,) = [line for line in result.stderr.decode().splitlines() if "not shared" in line]
        assert what in said
    assert runs(counter) == 2  # identical tools, but what they run could not be told apart
    assert place.uploads() == 0


# -- diagnosing a remote miss -------------------------------------------------------------------


def python_tool(home: Path, *distributions: str) -> Path:
    """A console script in an environment of its own at ``home`` holding ``distributions``."""
    bindir = home / "env" / "bin"
    bindir.mkdir(parents=True)
    (bindir / "python").symlink_to(sys.executable)
    site = home / "env" / "lib" / "python3.12" / "site-packages"
    for name in distributions:
        (site / f"{name}.dist-info").mkdir(parents=True)
    code = 'import os, sys\nopen(os.environ["COUNTER"], "a").write("ran\\n")\nprint("checked")\n'
    executable(bindir / "lint", f"#!{bindir / 'python'}\n{code}")
    return bindir / "lint"


def test_show_key_names_the_part_of_a_remote_key_that_differs_between_machines(
    machines: tuple[Machine, Machine], place: Place, tmp_path: Path
) -> None:
    a, b = machines
    counter = tmp_path / "runs"
    tools = [
        python_tool(tmp_path / "a", "flake8-7.0.0"),
        python_tool(tmp_path / "b", "flake8-7.0.0", "unrelated-1.0"),  # pip install unrelated
    ]
    secret = {"COUNTER": str(counter), "API_TOKEN": "hunter2"}
    options = ["--env", "API_TOKEN", "--dependencies", "input.txt", "--"]
    args = ["input.txt", "--password=hunter2", str(a.checkout / "other.txt")]
    a.jobstamp(*options, tools[0], *args, url=place.url, **secret)
    missed = b.jobstamp("--explain", *options, tools[1], *args, url=place.url, **secret)
    assert runs(counter) == 2
    said = missed.stderr.decode()
    assert "was asked and has no result for this job's remote key" in said
    assert "--show-key" in said
    listings = []
    for machine, tool in zip(machines, tools, strict=True):
        args[-1] = str(machine.checkout / "other.txt")
        shown = machine.jobstamp("--show-key", *options, tool, *args, url=None, **secret)
        assert shown.returncode == 0
        off = machine.jobstamp(
            "--show-key", *options, tool, *args, url=None, JOBSTAMPS_DISABLED="1", **secret
        )
        assert off.stdout == shown.stdout  # even with caching off: shown, not run
        assert b"hunter2" not in shown.stdout + shown.stderr
        listings.append(shown.stdout.decode().splitlines())
    assert runs(counter) == 2  # --show-key runs nothing
    diff = list(difflib.unified_diff(listings[0], listings[1], lineterm="", n=0))[2:]
    changed = sorted(line[1:].partition("  ")[2] for line in diff if line[:1] in "+-")
    assert changed == [
        "program: 6",  # its parts, the environment's among them
        "program: 7",
        "python environment: 2",
        "python environment: 3",
        "python unrelated-1.0.dist-info",
        "remote key",
        "remote key",
    ]
    assert "argument 3 {base}/other.txt" in [line[18:] for line in listings[0]]
    assert "dependency input.txt" in [line[18:] for line in listings[0]]
    listed = a.jobstamp("--show-key", *per_file("good.py", "bad.py"), url=None)
    assert [line for line in listed.stdout.decode().splitlines() if line.startswith("file ")] == [
        "file good.py",
        "file bad.py",
    ]


MAKER = """
import os, sys
from jobstamps import jobstamp

def make(path):
    with open(os.environ["COUNTER"], "a") as counter:
        counter.write("ran\\n")
    with open(path, "w") as made:
        made.write("made\\n")
    return "done"

out = sys.argv[1]
print(jobstamp.run(make, out, jobstamps_output_files=[out], jobstamps_restore_outputs=True))
"""


def test_the_api_keeps_a_result_with_an_output_outside_the_base_directory_local(
    machines: tuple[Machine, Machine], place: Place, tmp_path: Path
) -> None:
    counter = tmp_path / "runs"
    outside = tmp_path / "elsewhere" / "made.txt"
    outside.parent.mkdir()
    said = b""
    for machine in machines:
        (machine.checkout / "maker.py").write_text(MAKER)
        for _ in range(2):
            result = machine.run(
                [sys.executable, "maker.py", str(outside)],
                place.url,
                COUNTER=str(counter),
                JOBSTAMPS_REMOTE_KEY=SECRET,
                JOBSTAMPS_DEBUG="1",
            )
            assert (result.returncode, result.stdout) == (0, b"done\n")
            assert b"internal error" not in result.stderr
            assert remote_lines(result.stderr) == []
            said += result.stderr
    assert runs(counter) == 2  # once a machine
    assert place.uploads() == 0
    assert said.count(f"not shared: output file {outside} is outside".encode()) == 2


# -- traced results (--trace): shared by their traced sets ----------------------------------------

TOOLS = os.path.dirname(sys.executable)  # flake8
LONG_LINE = "x = 1" + " " * 90 + "# long\n"


def flake8_traced(
    machine: Machine, url: str | None, *options: str
) -> subprocess.CompletedProcess[bytes]:
    """Run flake8 traced in the checkout's ``src``, whose configuration is searched upward."""
    path = f"{TOOLS}{os.pathsep}{os.environ.get('PATH', os.defpath)}"
    return machine.run(
        [*JOBSTAMP, "--explain", "--trace", *options, "--", "flake8", "a.py"],
        url,
        PATH=path,
    )


def how(done: subprocess.CompletedProcess[bytes]) -> str:
    """Say how a traced job was answered: ``filled`` remotely, ``replayed`` locally, or ``ran``."""
    said = done.stderr.decode()
    if "jobstamp: running" in said and "jobstamp: stored the result" in said:
        return "ran"
    if "from the remote cache" in said and "jobstamp: filled" in said:
        return "filled"
    assert "jobstamp: replayed" in said, said
    return "replayed"


def in_src(root: Path, project: Path) -> Machine:
    """A machine with a checkout of ``project`` that runs its jobs in ``src``."""
    machine = Machine(root, project)
    machine.checkout = machine.checkout / "src"
    return machine


@pytest.fixture
def traced_machines(tmp_path: Path, project: Path) -> tuple[Machine, Machine]:
    """Two checkouts of a project whose ``setup.cfg`` flake8 finds above ``src``."""
    if shutil.which("strace") is None:
        pytest.skip("needs strace")
    (project / "src").mkdir()
    (project / "src" / "a.py").write_text("import os\n" + LONG_LINE)
    (project / "setup.cfg").write_text("[flake8]\nmax-line-length = 120\n")
    return in_src(tmp_path / "a", project), in_src(tmp_path / "b", project)


def test_a_traced_result_made_on_a_replays_on_b_when_every_traced_file_matches(
    traced_machines: tuple[Machine, Machine], place: Place
) -> None:
    a, b = traced_machines
    first = flake8_traced(a, place.url)
    assert how(first) == "ran"
    assert b"F401" in first.stdout
    assert b"E501" not in first.stdout  # setup.cfg allows the long line
    shared = flake8_traced(b, place.url)
    assert how(shared) == "filled", shared.stderr.decode()
    assert (shared.returncode, shared.stdout) == (first.returncode, first.stdout)
    local = flake8_traced(b, None)  # filled with B's own traced set: a local hit
    assert how(local) == "replayed"
    assert local.stdout == first.stdout


def test_a_traced_file_that_differs_on_b_makes_b_run_and_keep_its_own_result(
    traced_machines: tuple[Machine, Machine], place: Place, tmp_path: Path
) -> None:
    a, b = traced_machines
    assert how(flake8_traced(a, place.url)) == "ran"
    (b.checkout.parent / "setup.cfg").write_text("[flake8]\nmax-line-length = 79\n")
    done = flake8_traced(b, place.url)
    assert how(done) == "ran"
    assert "traced file setup.cfg has other contents here" in done.stderr.decode()
    assert b"E501" in done.stdout
    again = flake8_traced(b, place.url)
    assert how(again) == "replayed"
    assert again.stdout == done.stdout
    # B's result went up beside A's: a third machine configured as B is fills it, and A still
    # gets its own.
    c = in_src(tmp_path / "c", b.checkout.parent)
    third = flake8_traced(c, place.url)
    assert how(third) == "filled"
    assert third.stdout == done.stdout
    fresh_a = in_src(tmp_path / "d", a.checkout.parent)
    fourth = flake8_traced(fresh_a, place.url)
    assert how(fourth) == "filled"
    assert b"E501" not in fourth.stdout


def test_a_file_created_on_b_where_a_found_nothing_makes_b_run(
    traced_machines: tuple[Machine, Machine], place: Place
) -> None:
    a, b = traced_machines
    assert how(flake8_traced(a, place.url)) == "ran"
    (b.checkout / ".flake8").write_text("[flake8]\nextend-ignore = F401\n")
    done = flake8_traced(b, place.url)
    assert how(done) == "ran"
    assert ".flake8 was created, where the command looked for it" in done.stderr.decode()
    assert b"F401" not in done.stdout


def test_a_damaged_manifest_is_refused_and_replaced_by_the_next_upload(
    traced_machines: tuple[Machine, Machine], http_place: Place, tmp_path: Path
) -> None:
    a, b = traced_machines
    first = flake8_traced(a, http_place.url)
    assert how(first) == "ran"
    records = {
        path: decode(path.read_bytes(), path.parent.name + path.name)
        for path in entry_files(http_place)
    }
    (manifest,) = [path for path, record in records.items() if record.kind == MANIFEST]
    key = manifest.parent.name + manifest.name
    other = zlib.compress(b'{"format": "other"}')
    manifest.write_bytes(encode(Record(key, kind=MANIFEST, data=other)))
    done = flake8_traced(b, http_place.url)
    assert how(done) == "ran"
    assert done.stdout == first.stdout
    (said,) = remote_lines(done.stderr)
    assert said.endswith(": a manifest of another format; treating it as a miss"), said
    # B's upload wrote a manifest that works again.
    c = in_src(tmp_path / "c", b.checkout.parent)
    assert how(flake8_traced(c, http_place.url)) == "filled"


def test_a_forced_traced_run_adds_its_result_beside_those_already_shared(
    traced_machines: tuple[Machine, Machine], place: Place, tmp_path: Path
) -> None:
    a, b = traced_machines
    first = flake8_traced(a, place.url)
    assert how(first) == "ran"
    (b.checkout.parent / "setup.cfg").write_text("[flake8]\nmax-line-length = 79\n")
    forced = flake8_traced(b, place.url, "--force")  # never looked up: reads the manifest to add
    assert b"E501" in forced.stdout
    for name, like, output in (("c", a, first.stdout), ("d", b, forced.stdout)):
        fresh = in_src(tmp_path / name, like.checkout.parent)
        done = flake8_traced(fresh, place.url)
        assert how(done) == "filled", done.stderr.decode()
        assert done.stdout == output


def test_a_manifest_naming_a_result_that_is_gone_makes_b_run_and_share_again(
    traced_machines: tuple[Machine, Machine], http_place: Place, tmp_path: Path
) -> None:
    a, b = traced_machines
    first = flake8_traced(a, http_place.url)
    for path in entry_files(http_place):  # evicted, say: the manifest stays
        if decode(path.read_bytes(), path.parent.name + path.name).kind != MANIFEST:
            path.unlink()
    done = flake8_traced(b, http_place.url)
    assert how(done) == "ran"
    assert "the result its manifest names is gone" in done.stderr.decode()
    assert done.stdout == first.stdout
    assert how(flake8_traced(in_src(tmp_path / "c", a.checkout.parent), http_place.url)) == "filled"
