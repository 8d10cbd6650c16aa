"""``jobstamp --trace`` end to end, with real tools: what they read decides a hit."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from support import backdate, jobstamp

pytestmark = pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")

TOOLS = os.path.dirname(sys.executable)  # flake8, mypy


def traced(
    cwd: Path,
    *command: str,
    env: dict[str, str | None] | None = None,
    options: tuple[str, ...] = (),
) -> subprocess.CompletedProcess[bytes]:
    path = f"{TOOLS}{os.pathsep}{os.environ.get('PATH', os.defpath)}"
    return jobstamp(
        "--explain", "--trace", *options, "--", *command, cwd=cwd, env={"PATH": path, **(env or {})}
    )


def ran(done: subprocess.CompletedProcess[bytes], why: str = "") -> bool:
    """Whether the command ran (else it was replayed); ``why`` must be the reason given."""
    said = done.stderr.decode()
    running = [line for line in said.splitlines() if line.startswith("jobstamp: running")]
    if why:
        assert any(why in line for line in running), said
    if running:
        assert "jobstamp: stored the result" in said or "not stored" in said, said
        return True
    assert "jobstamp: replayed" in said, said
    return False


def test_output_and_status_are_byte_exact_on_a_run_and_a_replay(tmp_path: Path) -> None:
    script = "printf 'out\\n'; printf 'err \\377\\n' >&2; exit 3"
    plain = subprocess.run(["sh", "-c", script], capture_output=True, check=False)
    for _ in range(2):
        done = jobstamp("--trace", "--", "sh", "-c", script, cwd=tmp_path)
        assert (done.returncode, done.stdout, done.stderr) == (3, plain.stdout, plain.stderr)


def test_flake8_config_found_by_upward_search(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.py").write_text("import os\n" + "x = 1" + " " * 90 + "# long\n")
    assert ran(traced(src, "flake8", "a.py"))
    assert not ran(traced(src, "flake8", "a.py"))
    cfg = tmp_path / "setup.cfg"
    cfg.write_text("[flake8]\nextend-ignore = F401\n")
    done = traced(src, "flake8", "a.py")
    assert ran(done, f"{cfg} was created, where the command looked for it")
    assert b"F401" not in done.stdout
    assert b"E501" in done.stdout
    assert not ran(traced(src, "flake8", "a.py"))
    cfg.write_text("[flake8]\nextend-ignore = F401\nmax-line-length = 200\n")
    done = traced(src, "flake8", "a.py")
    assert ran(done, f"traced file {cfg} changed")
    assert done.stdout == b""
    cfg.unlink()
    done = traced(src, "flake8", "a.py")
    assert ran(done, f"traced file {cfg} changed")
    assert b"F401" in done.stdout
    assert not ran(traced(src, "flake8", "a.py"))


def test_an_edited_flake8_plugin_reruns_flake8(tmp_path: Path) -> None:
    # A local plugin (flake8's [flake8:local-plugins]) is imported, not opened as a file: its
    # source is stat'ed and its bytecode read, and either changing must re-run flake8.
    (tmp_path / "plugins").mkdir()
    plugin = tmp_path / "plugins" / "noisy.py"
    source = (
        "class Plugin:\n"
        "    def __init__(self, tree):\n"
        "        self.tree = tree\n"
        "    def run(self):\n"
        "        yield 1, 0, 'X100 first word', type(self)\n"
    )
    plugin.write_text(source)
    (tmp_path / "setup.cfg").write_text(
        "[flake8:local-plugins]\nextension =\n    X1 = noisy:Plugin\npaths = ./plugins\n"
    )
    (tmp_path / "a.py").write_text("x = 1\n")
    first = traced(tmp_path, "flake8", "a.py")
    assert ran(first)
    assert b"X100 first word" in first.stdout
    assert not ran(traced(tmp_path, "flake8", "a.py"))
    plugin.write_text(source.replace("first word", "second word"))
    again = traced(tmp_path, "flake8", "a.py")
    assert ran(again)
    assert b"X100 second word" in again.stdout
    assert not ran(traced(tmp_path, "flake8", "a.py"))


@pytest.mark.slow
def test_mypy_imports_stubs_config_and_its_own_cache(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg.b import f\nimport extmod\n\nx: int = f()\n")
    (pkg / "b.py").write_text("def f() -> int:\n    return 1\n")
    command = ("mypy", "pkg")
    first = traced(tmp_path, *command)
    assert ran(first)
    assert b"extmod" in first.stdout
    assert (tmp_path / ".mypy_cache").is_dir()
    assert not ran(traced(tmp_path, *command))  # its cache, written by the first run
    (pkg / "b.py").write_text("def f() -> str:\n    return ''\n")
    done = traced(tmp_path, *command)
    assert ran(done, "b.py")
    assert b"Incompatible types" in done.stdout
    assert "not stored" not in done.stderr.decode()
    assert not ran(traced(tmp_path, *command))
    (tmp_path / "extmod.pyi").write_text("")
    done = traced(tmp_path, *command)
    assert ran(done, "extmod")
    assert b"extmod" not in done.stdout
    assert not ran(traced(tmp_path, *command))
    (tmp_path / "mypy.ini").write_text("[mypy]\ndisable_error_code = assignment\n")
    done = traced(tmp_path, *command)
    assert ran(done, "mypy.ini")
    assert done.returncode == 0, done.stdout
    assert not ran(traced(tmp_path, *command))


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
def test_gcc_headers_in_an_include_directory(tmp_path: Path) -> None:
    (tmp_path / "inc").mkdir()
    (tmp_path / "first").mkdir()
    (tmp_path / "inc" / "h.h").write_text("int f(void);\n")
    (tmp_path / "main.c").write_text('#include "h.h"\nint main(void) { return f(); }\n')
    command = ("gcc", "-fsyntax-only", "-Ifirst", "-Iinc", "main.c")
    assert ran(traced(tmp_path, *command))
    assert not ran(traced(tmp_path, *command))
    (tmp_path / "inc" / "h.h").write_text("int f(void)\n")  # a syntax error
    done = traced(tmp_path, *command)
    assert ran(done, "h.h")
    assert done.returncode != 0
    assert not ran(traced(tmp_path, *command))
    (tmp_path / "first" / "h.h").write_text("int f(void);\n")  # earlier on the path
    done = traced(tmp_path, *command)
    assert ran(done, f"{tmp_path}/first/h.h was created, where the command looked for it")
    assert done.returncode == 0


def test_a_program_installed_earlier_on_path(tmp_path: Path) -> None:
    early, late = tmp_path / "early", tmp_path / "late"
    early.mkdir()
    late.mkdir()
    for where, word in ((late, "late"), (early, "early")):
        (where / "tool.txt").write_text(f"#!/bin/sh\necho {word}\n")
    (late / "tool").symlink_to(late / "tool.txt")
    (late / "tool.txt").chmod(0o755)
    path = f"{early}:{late}:{os.environ['PATH']}"
    done = traced(tmp_path, "sh", "-c", "tool", env={"PATH": path})
    assert done.stdout == b"late\n"
    assert not ran(traced(tmp_path, "sh", "-c", "tool", env={"PATH": path}))
    (early / "tool.txt").chmod(0o755)
    (early / "tool").symlink_to(early / "tool.txt")
    done = traced(tmp_path, "sh", "-c", "tool", env={"PATH": path})
    assert ran(done, f"{early}/tool was created, where the command looked for it")
    assert done.stdout == b"early\n"


def test_sourced_shell_files_and_relative_paths_after_cd(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "conf.sh").write_text("X=1\n")
    (tmp_path / "data.txt").write_text("one\n")
    script = ". ./conf.sh; cd sub && cat ../data.txt && echo $X"
    assert traced(tmp_path, "sh", "-c", script).stdout == b"one\n1\n"
    assert not ran(traced(tmp_path, "sh", "-c", script))
    (tmp_path / "conf.sh").write_text("X=2\n")
    done = traced(tmp_path, "sh", "-c", script)
    assert ran(done, "conf.sh")
    assert done.stdout == b"one\n2\n"
    (tmp_path / "data.txt").write_text("two\n")
    done = traced(tmp_path, "sh", "-c", script)
    assert ran(done, "data.txt")
    assert done.stdout == b"two\n2\n"


def test_symlinked_directories(tmp_path: Path) -> None:
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "f.txt").write_text(f"{name}\n")
    (tmp_path / "cur").symlink_to("one")
    assert traced(tmp_path, "cat", "cur/f.txt").stdout == b"one\n"
    assert not ran(traced(tmp_path, "cat", "cur/f.txt"))
    (tmp_path / "one" / "f.txt").write_text("ONE\n")
    assert traced(tmp_path, "cat", "cur/f.txt").stdout == b"ONE\n"
    (tmp_path / "cur").unlink()
    (tmp_path / "cur").symlink_to("two")
    done = traced(tmp_path, "cat", "cur/f.txt")
    assert ran(done, "cur/f.txt")
    assert done.stdout == b"two\n"


def test_listing_ignores_names_the_command_made(tmp_path: Path) -> None:
    script = "ls; mkdir -p made; touch made/x; rm -f gone; touch gone"
    first = traced(tmp_path, "sh", "-c", script)
    assert ran(first)
    assert not ran(traced(tmp_path, "sh", "-c", script))
    (tmp_path / "new.txt").write_text("")
    done = traced(tmp_path, "sh", "-c", script)
    assert ran(done, "new.txt was added")


def test_trace_ignore_drops_paths(tmp_path: Path) -> None:
    (tmp_path / "noise.log").write_text("1\n")
    options = ("--trace-ignore", "*.log")
    assert ran(traced(tmp_path, "cat", "noise.log", options=options))
    (tmp_path / "noise.log").write_text("2\n")
    assert not ran(traced(tmp_path, "cat", "noise.log", options=options))


def test_trace_ignore_drops_names_from_a_listing_the_command_read(tmp_path: Path) -> None:
    # ls reads the directory's listing: an ignored name coming or going changes nothing,
    # another name still does.
    (tmp_path / "a.txt").write_text("")
    options = ("--trace-ignore", "*.log")
    assert ran(traced(tmp_path, "ls", options=options))
    (tmp_path / "noise.log").write_text("")
    assert not ran(traced(tmp_path, "ls", options=options))
    (tmp_path / "b.txt").write_text("")
    assert ran(traced(tmp_path, "ls", options=options))


def test_a_daemon_never_keeps_jobstamp_waiting(tmp_path: Path) -> None:
    script = "(sleep 20; echo late > late.txt) >/dev/null 2>&1 </dev/null & echo started"
    before = time.monotonic()
    done = jobstamp("--trace", "--", "sh", "-c", script, cwd=tmp_path)
    assert time.monotonic() - before < 15
    assert done.returncode == 0
    assert done.stdout == b"started\n"
    assert done.stderr.decode().count("\n") == 1
    assert "left a process running in the background" in done.stderr.decode()
    assert ran(traced(tmp_path, "sh", "-c", script))  # nothing was stored


def test_strace_failing_runs_the_command_uncached(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "strace").write_text("#!/bin/sh\nexit 1\n")
    (bindir / "strace").chmod(0o755)
    path = f"{bindir}:{os.environ['PATH']}"
    counter = tmp_path / "count"
    script = f"echo ran >> {counter}; echo out; echo err >&2; exit 4"
    for runs in (1, 2):
        done = jobstamp("--trace", "--", "sh", "-c", script, cwd=tmp_path, env={"PATH": path})
        assert done.returncode == 4
        assert done.stdout == b"out\n"
        lines = done.stderr.decode().splitlines()
        assert lines[-1] == "err"
        assert len(lines) == 2
        assert "strace" in lines[0]
        assert "cannot trace here" in lines[0]
        assert counter.read_text().count("ran") == runs


def test_no_strace_on_path_runs_the_command_uncached(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    done = jobstamp(
        "--trace", "--", "/bin/sh", "-c", "echo out; exit 5", cwd=tmp_path, env={"PATH": str(empty)}
    )
    assert (done.returncode, done.stdout) == (5, b"out\n")
    said = done.stderr.decode().splitlines()
    assert len(said) == 1
    assert "needs strace, which is not on PATH" in said[0]


def test_per_file_batches_depend_on_what_they_read_outside_their_files(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("import os\n")
    (tmp_path / "b.py").write_text("x=1\n")  # both fail and name themselves: one run
    path = f"{TOOLS}{os.pathsep}{os.environ.get('PATH', os.defpath)}"

    def check() -> tuple[bytes, str]:
        done = jobstamp(
            "--per-file", "--explain", "--trace", "--jobs", "1", "--", "flake8", "--",
            "a.py", "b.py", cwd=tmp_path, env={"PATH": path},
        )  # fmt: skip
        return done.stdout, done.stderr.decode()

    out, said = check()
    assert b"a.py:1:1: F401" in out
    assert "2 files: 0 replayed, 2 ran in 1 run" in said
    assert "2 files: 2 replayed" in check()[1]
    (tmp_path / "b.py").write_text("x=2\n")  # the other file of the batch: not a's input
    assert "2 files: 1 replayed, 1 ran" in check()[1]
    (tmp_path / "setup.cfg").write_text("[flake8]\nextend-ignore = F401\n")
    out, said = check()
    assert b"a.py" not in out
    assert f"running a.py: {tmp_path}/setup.cfg was created, where the command looked" in said
    assert "2 files: 0 replayed, 2 ran" in said


def per_file_traced(cwd: Path, *files: str) -> tuple[bytes, str]:
    """Lint ``files`` with flake8 through ``--per-file --trace`` in one batch."""
    path = f"{TOOLS}{os.pathsep}{os.environ.get('PATH', os.defpath)}"
    done = jobstamp(
        "--per-file", "--explain", "--trace", "--jobs", "1", "--", "flake8", "--", *files,
        cwd=cwd, env={"PATH": path},
    )  # fmt: skip
    return done.stdout, done.stderr.decode()


def test_per_file_batch_traced_set_is_stored_once_and_needed_by_each_file(
    tmp_path: Path, isolated_cache: Path
) -> None:
    files = ["a.py", "b.py", "c.py"]
    for name in files:
        (tmp_path / name).write_text("import os\n")  # each fails naming itself: one run
    out, said = per_file_traced(tmp_path, *files)
    assert "3 files: 0 replayed, 3 ran in 1 run" in said
    blobs = [p for p in isolated_cache.rglob("*") if p.is_file() and p.parent.parent.name == "b"]
    assert len(blobs) == 1  # the batch's traced set, once for its three files
    entries = [p for p in isolated_cache.rglob("*") if p.is_file() and p.parent.parent.name == "e"]
    assert len(entries) == 3
    assert all(entry.stat().st_size < blobs[0].stat().st_size for entry in entries)
    replayed, said = per_file_traced(tmp_path, *files)
    assert replayed == out
    assert "3 files: 3 replayed" in said
    blobs[0].unlink()  # a result whose traced set is gone is never replayed
    out_again, said = per_file_traced(tmp_path, *files)
    assert out_again == out
    assert "3 files: 0 replayed, 3 ran" in said
    assert "stored data that the entry needs is missing" in said
    assert "3 files: 3 replayed" in per_file_traced(tmp_path, *files)[1]
    (tmp_path / "setup.cfg").write_text("[flake8]\nextend-ignore = F401\n")
    out, said = per_file_traced(tmp_path, *files)
    assert out == b""
    assert "3 files: 0 replayed, 3 ran" in said


def test_per_file_failures_sealed_after_a_retry_keep_their_batch_traced_set(
    tmp_path: Path,
) -> None:
    files = ["a.py", "b.py", "c.py"]
    (tmp_path / "a.py").write_text("import os\n")
    (tmp_path / "b.py").write_text("import sys\n")
    (tmp_path / "c.py").write_text("x = 1\n")
    # The run over all three fails naming a.py and b.py: c.py runs again alone and passes,
    # and the failures of a.py and b.py are then stored as that first run's, with what it read.
    out, said = per_file_traced(tmp_path, *files)
    assert b"a.py:1:1: F401" in out
    assert b"b.py:1:1: F401" in out
    assert "3 files: 0 replayed, 3 ran in 2 runs" in said
    assert "3 files: 3 replayed" in per_file_traced(tmp_path, *files)[1]
    (tmp_path / "setup.cfg").write_text("[flake8]\nextend-ignore = F401\n")
    out, said = per_file_traced(tmp_path, *files)
    assert out == b""
    assert f"running a.py: {tmp_path}/setup.cfg was created, where the command looked" in said
    assert "3 files: 0 replayed, 3 ran" in said


def test_a_command_killed_by_a_signal_reports_it_and_stores_nothing(tmp_path: Path) -> None:
    script = "echo before; kill -TERM $$"
    for _ in range(2):
        done = traced(tmp_path, "sh", "-c", script)
        assert (done.returncode, done.stdout) == (143, b"before\n")
        assert "not stored: the command was killed by signal 15" in done.stderr.decode()


def test_show_key_of_a_traced_command_names_its_manifest_key(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    plain = jobstamp("--show-key", "--", "true", cwd=tmp_path)
    shown = jobstamp("--show-key", "--trace", "--trace-ignore", "*.log", "--", "true", cwd=tmp_path)
    assert (plain.returncode, shown.returncode) == (0, 0)
    lines = shown.stdout.decode().splitlines()
    assert lines[-3:] == [
        line[:16] + "  " + word
        for line, word in zip(
            lines[-3:], ["trace:2", "--trace", "--trace-ignore=*.log"], strict=True
        )
    ]
    assert lines[0] != plain.stdout.decode().splitlines()[0]  # another remote key


def test_trace_ignore_needs_trace(tmp_path: Path) -> None:
    done = jobstamp("--trace-ignore", "*.log", "--", "true", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.decode().startswith("jobstamp: --trace-ignore needs --trace")


@pytest.mark.parametrize("mode", [[], ["--per-file"]], ids=["command", "per-file"])
def test_trace_options_that_mean_nothing_together_are_usage_errors(
    tmp_path: Path, mode: list[str]
) -> None:
    files = ["--", "a.py"] if mode else []
    wrong = [(["--trace-ignore", "*.log"], "jobstamp: --trace-ignore needs --trace")]
    if mode:  # per-file traced results stay local: they have no remote key
        said = "jobstamp: --show-key shows a remote key, and per-file traced results"
        wrong.append((["--trace", "--show-key"], said))
    for options, said in wrong:
        done = jobstamp(*mode, *options, "--", "true", *files, cwd=tmp_path)
        assert done.returncode == 2
        assert done.stderr.decode().startswith(said)


def test_reasons_naming_a_file_with_a_newline_or_undecodable_bytes_stay_one_line(
    tmp_path: Path,
) -> None:
    names = [os.fsencode(tmp_path / "new\nline"), os.fsencode(tmp_path) + b"/bad\xff"]
    for name in names:
        with open(name, "wb") as handle:
            handle.write(b"x\n")
        backdate(os.fsdecode(name), 60)
    script = "cat new* bad* >/dev/null; echo hi"
    traced(tmp_path, "sh", "-c", script)
    for name in names:
        with open(name, "ab") as handle:
            handle.write(b"y\n")
        backdate(os.fsdecode(name), 60)
        said = traced(tmp_path, "sh", "-c", script).stderr.decode("utf-8", "replace")
        assert all(line.startswith("jobstamp: ") for line in said.splitlines()), said
        assert "changed" in said, said
    done = traced(tmp_path, "sh", "-c", 'for f in new*; do cat "$f"; echo z >> "$f"; done')
    said = done.stderr.decode("utf-8", "replace")
    assert "after reading it" in said, said
    assert all(line.startswith("jobstamp: ") for line in said.splitlines()), said


def test_a_fifo_the_command_reads_is_never_replayed(tmp_path: Path) -> None:
    fifo = tmp_path / "feed"
    os.mkfifo(fifo)
    for text in (b"one\n", b"two\n"):
        writer = threading.Thread(target=fifo.write_bytes, args=(text,), daemon=True)
        writer.start()
        done = traced(tmp_path, "sh", "-c", "cat feed")
        writer.join(timeout=5)
        assert done.stdout == text, done.stderr
        assert "not stored: the command read" in done.stderr.decode(), done.stderr


def test_a_file_dated_in_the_future_is_stored_and_checked_by_its_contents(tmp_path: Path) -> None:
    data = tmp_path / "data.txt"
    data.write_text("one\n")
    backdate(data, -3600)
    assert traced(tmp_path, "cat", "data.txt").stdout == b"one\n"
    assert not ran(traced(tmp_path, "cat", "data.txt"))
    when = data.stat().st_mtime_ns
    data.write_text("two\n")
    os.utime(data, ns=(when, when))
    done = traced(tmp_path, "cat", "data.txt")
    assert ran(done, "data.txt")
    assert done.stdout == b"two\n"


def test_a_file_opened_through_proc_self_cwd_is_traced(tmp_path: Path) -> None:
    data = tmp_path / "data.txt"
    data.write_text("one\n")
    backdate(data, 60)
    script = "cat /proc/self/cwd/data.txt"
    assert traced(tmp_path, "sh", "-c", script).stdout == b"one\n"
    assert not ran(traced(tmp_path, "sh", "-c", script))
    data.write_text("two\n")
    backdate(data, 60)
    done = traced(tmp_path, "sh", "-c", script)
    assert ran(done, "data.txt")
    assert done.stdout == b"two\n"


def test_a_cache_directory_holding_the_files_read_still_sees_them_change(tmp_path: Path) -> None:
    data = tmp_path / "data.txt"
    for text in ("one\n", "two\n"):
        data.write_text(text)
        backdate(data, 60)
        done = traced(tmp_path, "cat", "data.txt", options=("--stamp-directory", "."))
        assert done.stdout == text.encode(), done.stderr


@pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="needs /dev/shm")  # noqa: S108
def test_a_project_in_dev_shm_is_traced() -> None:
    with tempfile.TemporaryDirectory(dir="/dev/shm") as where:
        data = Path(where) / "data.txt"
        for text in ("one\n", "two\n"):
            data.write_text(text)
            backdate(data, 60)
            assert traced(Path(where), "cat", "data.txt").stdout == text.encode()


def test_a_path_refused_by_a_link_loop_reruns_once_the_loop_is_fixed(tmp_path: Path) -> None:
    (tmp_path / "conf").symlink_to("conf")
    script = "cat conf/x 2>/dev/null || echo none"
    assert traced(tmp_path, "sh", "-c", script).stdout == b"none\n"
    assert not ran(traced(tmp_path, "sh", "-c", script))
    (tmp_path / "conf").unlink()
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "x").write_text("fixed\n")
    backdate(tmp_path / "conf" / "x", 60)
    backdate(tmp_path / "conf", 60)
    assert traced(tmp_path, "sh", "-c", script).stdout == b"fixed\n"
