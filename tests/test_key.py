"""Command keys: field boundaries, and the path, executable and stream facts in them."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jobstamps.canonical import call_key
from jobstamps.key import (
    abspaths,
    command_fields,
    command_key,
    executable_identity,
    python_environment,
    resolve_executable,
    same_destination,
    unfingerprintable,
)


def test_command_keys_respect_field_boundaries() -> None:
    assert command_key(["ab", "c"]) == command_key(["ab", "c"])
    assert command_key(["ab", "c"]) != command_key(["a", "bc"])
    assert command_key(["a"]) != command_key(["a", ""])
    assert len(command_key([])) == 40


def test_command_keys_differ_from_call_keys() -> None:
    assert command_key(["x"]) != call_key(len, ("x",), {}, None)


def test_abspaths_resolves_against_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert abspaths(["a/../b", Path("c"), "/abs/./d"]) == [
        str(tmp_path / "b"),
        str(tmp_path / "c"),
        "/abs/d",
    ]
    assert abspaths(["x"], cwd="/elsewhere") == ["/elsewhere/x"]


def make_tool(path: Path, body: str = "exit 0", mode: int = 0o755) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(mode)
    return path


def test_resolve_executable_searches_path_in_order(tmp_path: Path) -> None:
    first = make_tool(tmp_path / "a" / "tool")
    make_tool(tmp_path / "b" / "tool")
    search = os.pathsep.join([str(tmp_path / "empty"), str(tmp_path / "a"), str(tmp_path / "b")])
    assert resolve_executable("tool", "/", search) == str(first)
    assert resolve_executable("missing", "/", search) is None


def test_resolve_executable_prefers_an_executable_file(tmp_path: Path) -> None:
    make_tool(tmp_path / "a" / "tool", mode=0o644)
    runnable = make_tool(tmp_path / "b" / "tool")
    search = os.pathsep.join([str(tmp_path / "a"), str(tmp_path / "b")])
    assert resolve_executable("tool", "/", search) == str(runnable)


def test_resolve_executable_returns_a_file_that_is_not_executable(tmp_path: Path) -> None:
    # So that the caller can say 126 (cannot run) rather than 127 (not found).
    plain = make_tool(tmp_path / "a" / "tool", mode=0o644)
    assert resolve_executable("tool", "/", str(tmp_path / "a")) == str(plain)


def test_resolve_executable_takes_names_with_a_slash_from_the_directory(tmp_path: Path) -> None:
    tool = make_tool(tmp_path / "bin" / "tool")
    assert resolve_executable("bin/tool", str(tmp_path), "") == str(tool)
    assert resolve_executable("./bin/tool", str(tmp_path), "") == os.path.join(
        tmp_path, "./bin/tool"
    )
    assert resolve_executable("bin/missing", str(tmp_path), "") is None
    assert resolve_executable("bin", str(tmp_path), "") is None  # a directory


def test_executable_identity_changes_when_the_tool_is_replaced(tmp_path: Path) -> None:
    tool = make_tool(tmp_path / "tool")
    before = executable_identity(str(tool))
    assert executable_identity(str(tool)) == before
    make_tool(tmp_path / "tool", body="exit 1 # a longer, newer version")
    assert executable_identity(str(tool)) != before


def test_same_destination_tells_shared_streams_apart(tmp_path: Path) -> None:
    read, write = os.pipe()
    other_read, other_write = os.pipe()
    duplicate = os.dup(write)
    try:
        assert same_destination(write, duplicate)
        assert not same_destination(write, other_write)
        assert not same_destination(write, 987654)  # not open
    finally:
        for fd in (read, write, other_read, other_write, duplicate):
            os.close(fd)


PROBE = (
    "import json, sys; from jobstamps.key import command_fields; "
    "print(json.dumps(command_fields('/', sys.argv[1], 'mtime', ['x'])))"
)


@pytest.mark.parametrize(
    ("stderr", "merged"), [(subprocess.STDOUT, True), (subprocess.DEVNULL, False)]
)
def test_command_fields_note_whether_the_streams_are_shared(stderr: int, merged: bool) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, sys.executable],
        stdout=subprocess.PIPE,
        stderr=stderr,
        check=True,
        timeout=60,
    )
    import json

    fields, was_merged = json.loads(done.stdout)
    assert was_merged is merged
    assert f"merged:{int(merged)}" in fields[3]
    assert fields[3].startswith("tty:00")


def test_command_fields_key_declared_environment_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JS_SET", "1")
    monkeypatch.setenv("JS_EMPTY", "")
    monkeypatch.delenv("JS_UNSET", raising=False)
    fields, _ = command_fields(
        "/", sys.executable, "mtime", ["x"], (), (), ["JS_SET", "JS_EMPTY", "JS_UNSET"]
    )
    declared = fields[-4:-1]
    assert [item.partition("=")[0] for item in declared[:2]] == ["JS_SET", "JS_EMPTY"]
    assert declared[2] == "JS_UNSET unset"
    assert len(set(declared)) == 3  # unset and empty differ
    assert fields[-1] == "stdin:-"
    monkeypatch.setenv("JS_EMPTY", "1")  # the same value under another name is another digest
    other, _ = command_fields("/", sys.executable, "mtime", ["x"], (), (), ["JS_EMPTY"])
    assert other[-2].partition("=")[2] != declared[0].partition("=")[2]


def test_abspaths_resolves_dot_dot_after_a_link_as_the_kernel_does(tmp_path: Path) -> None:
    (tmp_path / "real" / "inner").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "real" / "inner")
    # The kernel reads real/cfg.txt for link/../cfg.txt, not <cwd>/cfg.txt.
    assert abspaths(["link/../cfg.txt"], str(tmp_path)) == [str(tmp_path / "real" / "cfg.txt")]
    assert (
        abspaths(["link/..", "link/../", "link/..//"], str(tmp_path))
        == [str(tmp_path / "real")] * 3
    )
    # A link as the last component stays the dependency itself.
    (tmp_path / "real" / "cfg.txt").write_text("")
    (tmp_path / "cfg-link").symlink_to(tmp_path / "real" / "cfg.txt")
    assert abspaths(["sub/../cfg-link"], str(tmp_path)) == [str(tmp_path / "cfg-link")]


def test_executable_identity_sees_a_copy_with_the_same_size_and_times(tmp_path: Path) -> None:
    tool = make_tool(tmp_path / "tool", body="exit 0 # one")
    other = make_tool(tmp_path / "other", body="exit 1 # two")
    st = os.stat(tool)
    os.utime(other, ns=(st.st_atime_ns, st.st_mtime_ns))
    before = executable_identity(str(tool))
    subprocess.run(["cp", "-p", str(other), str(tool)], check=True)
    assert (os.stat(tool).st_size, os.stat(tool).st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    assert executable_identity(str(tool)) != before


@pytest.fixture
def bare_venv(tmp_path: Path) -> Path:
    """A real virtual environment without pip (quick to make); returns its directory."""
    import venv

    venv.EnvBuilder(with_pip=False, symlinks=True).create(tmp_path / "env")
    return tmp_path / "env"


def site_packages(env: Path) -> Path:
    (found,) = (env / "lib").glob("python*/site-packages")
    return found


def test_a_console_script_keys_its_environments_distributions(bare_venv: Path) -> None:
    script = make_tool(bare_venv / "bin" / "lint", body="")
    script.write_text(f"#!{bare_venv / 'bin' / 'python'}\nimport sys\n")
    fields_before, _ = command_fields("/", str(script), "mtime", ["lint"])
    (site_packages(bare_venv) / "foo-1.0.dist-info").mkdir()
    found = python_environment(str(script), "/", None)
    assert found[0].startswith(f"{bare_venv / 'bin' / 'python'} (")
    assert found[-1] == "foo-1.0.dist-info"
    fields_after, _ = command_fields("/", str(script), "mtime", ["lint"])
    assert command_key(fields_after) != command_key(fields_before)
    # An upgrade in place renames the directory: the key changes again.
    (site_packages(bare_venv) / "foo-1.0.dist-info").rename(
        site_packages(bare_venv) / "foo-1.1.dist-info"
    )
    assert command_key(command_fields("/", str(script), "mtime", ["lint"])[0]) != command_key(
        fields_after
    )


def test_reinstalling_a_distribution_at_the_same_version_changes_the_key(
    bare_venv: Path,
) -> None:
    script = make_tool(bare_venv / "bin" / "lint", body="")
    script.write_text(f"#!{bare_venv / 'bin' / 'python'}\nimport sys\n")
    installed = site_packages(bare_venv) / "plugin-1.0.dist-info"
    installed.mkdir()
    before = command_key(command_fields("/", str(script), "mtime", ["lint"])[0])
    assert command_key(command_fields("/", str(script), "mtime", ["lint"])[0]) == before
    installed.rmdir()  # as pip reinstalls: the old one goes, a new one comes
    time.sleep(0.05)  # pip takes far longer than the file system's clock tick
    installed.mkdir()
    assert command_key(command_fields("/", str(script), "mtime", ["lint"])[0]) != before
    # A remote key names the distributions, not when this machine installed them.
    assert not any(
        "modified" in field
        for field in python_environment(str(script), "/", None, installed_when=False)
    )


def test_the_interpreter_itself_keys_its_environment(bare_venv: Path) -> None:
    (site_packages(bare_venv) / "bar-2.0.dist-info").mkdir()
    assert python_environment(str(bare_venv / "bin" / "python"), "/", None)[-1] == (
        "bar-2.0.dist-info"
    )


def test_scripts_run_through_env_and_pips_long_form_find_their_interpreter(
    bare_venv: Path, tmp_path: Path
) -> None:
    (site_packages(bare_venv) / "baz-3.0.dist-info").mkdir()
    python = bare_venv / "bin" / "python"
    by_env = make_tool(tmp_path / "by-env", body="")
    by_env.write_text("#!/usr/bin/env python\n")
    assert python_environment(str(by_env), "/", str(bare_venv / "bin"))[-1] == "baz-3.0.dist-info"
    long_form = make_tool(tmp_path / "long", body="")
    long_form.write_text(f"#!/bin/sh\n'''exec' \"{python}\" \"$0\" \"$@\"\n' '''\nimport sys\n")
    assert python_environment(str(long_form), "/", None)[-1] == "baz-3.0.dist-info"


def test_other_executables_have_no_python_environment(tmp_path: Path) -> None:
    assert python_environment("/bin/sh", "/", None) == []
    assert python_environment(str(make_tool(tmp_path / "shell")), "/", None) == []
    unreadable = make_tool(tmp_path / "gone")
    unreadable.unlink()
    assert python_environment(str(unreadable), "/", None) == []


def test_pipes_and_devices_named_as_files_cannot_be_keyed_on(tmp_path: Path) -> None:
    (tmp_path / "plain.txt").write_text("x")
    os.mkfifo(tmp_path / "fifo")
    assert unfingerprintable(["-v", "plain.txt", os.devnull, "missing"], str(tmp_path)) is None
    for name in ("/dev/fd/63", "--config=/dev/fd/63", "/proc/self/fd/0", "/dev/stdin"):
        assert unfingerprintable(["plain.txt", name], str(tmp_path)) == name
    assert unfingerprintable(["plain.txt", "fifo"], str(tmp_path)) == "fifo"
    assert unfingerprintable(["/dev/zero"], str(tmp_path)) == "/dev/zero"
