"""Why a command line missed: its key compared with the last one stored for it."""

from __future__ import annotations

import os
import subprocess
import time
from typing import TYPE_CHECKING

import pytest

from jobstamps.explain import describe_change, shell_words, slot_of
from support import cache_blobs, counting, jobstamp, runs

if TYPE_CHECKING:
    from pathlib import Path


def fields(**change: object) -> list[str]:
    parts: dict[str, object] = {
        "cwd": "/src",
        "exe": "/usr/bin/flake8\x00100\x00111",
        "method": "mtime",
        "streams": "tty:00 merged:1",
        "argv": ["flake8", "a.py"],
        "deps": ["/src/a.py"],
        "outputs": [],
        "env": ["CFLAGS=-O2"],
        "stdin": "-",
    }
    parts.update(change)
    out = [str(parts["cwd"]), str(parts["exe"]), str(parts["method"]), str(parts["streams"])]
    for group in ("argv", "deps", "outputs", "env"):
        items = parts[group]
        assert isinstance(items, list)
        out += [f"{group}:{len(items)}", *items]
    return [*out, f"stdin:{parts['stdin']}"]


def test_nothing_differs() -> None:
    assert describe_change(fields(), fields()).startswith("nothing differs")


def test_each_difference_is_named() -> None:
    assert describe_change(fields(), fields(env=["CFLAGS=-O3"])) == (
        "since the last stored result, the environment changed (CFLAGS has another value)"
    )
    assert "dependencies changed (now /src/b.py)" in describe_change(
        fields(), fields(deps=["/src/a.py", "/src/b.py"])
    )
    assert "method changed (mtime -> hash)" in describe_change(fields(), fields(method="hash"))
    upgraded = describe_change(fields(), fields(exe="/usr/bin/flake8\x00120\x00111"))
    assert "executable changed (/usr/bin/flake8: size 100 -> 120 bytes)" in upgraded
    streams = describe_change(fields(), fields(streams="tty:11 merged:1"))
    assert "stdout not a terminal, stderr not a terminal, going to one place" in streams
    assert "-> stdout a terminal, stderr a terminal" in streams
    both = describe_change(fields(), fields(cwd="/other", stdin="abc"))
    assert "working directory changed (/src -> /other)" in both
    assert "standard input changed (- -> abc)" in both


def test_the_slot_is_the_command_line_in_its_directory() -> None:
    assert slot_of(fields()) == slot_of(fields(env=["X=1"], method="hash", deps=[]))
    assert slot_of(fields()) != slot_of(fields(argv=["flake8", "b.py"]))
    assert slot_of(fields()) != slot_of(fields(cwd="/other"))


def test_explain_says_what_changed_since_the_last_result(tmp_path: Path) -> None:
    command = counting(tmp_path / "counter", "echo $GREETING")

    def explained(greeting: str) -> str:
        done = jobstamp(
            "--explain", "--env", "GREETING", "--", *command, env={"GREETING": greeting}
        )
        assert done.stdout == f"{greeting}\n".encode()
        return done.stderr.decode().splitlines()[0]

    assert "has not been stored from this directory before" in explained("hello")
    assert explained("hello").startswith("jobstamp: replayed")
    assert explained("bye").endswith("the environment changed (GREETING has another value)")


@pytest.mark.parametrize(
    ("change", "said"),
    [
        (["CFLAGS unset"], "CFLAGS is unset now"),
        (["CFLAGS=-O2", "LANG=C"], "LANG is declared now"),
        ([], "CFLAGS is no longer declared"),
    ],
)
def test_environment_changes_name_the_variable(change: list[str], said: str) -> None:
    assert describe_change(fields(), fields(env=change)).endswith(f"environment changed ({said})")
    assert describe_change(fields(env=["CFLAGS unset"]), fields()).endswith("(CFLAGS is set now)")


def test_executable_times_are_shown_as_local_dates() -> None:
    old = 1_795_997_389_750_501_684
    new = old + 86_400 * 1_000_000_000
    said = describe_change(
        fields(exe=f"/bin/x\x00100\x00{old}"), fields(exe=f"/bin/x\x00100\x00{new}")
    )
    day = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(old // 10**9))
    next_day = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(new // 10**9))
    assert said.endswith(f"executable changed (/bin/x: modified {day} -> {next_day})")
    assert " ns" not in said
    close = describe_change(
        fields(exe=f"/bin/x\x00100\x00{old}"), fields(exe=f"/bin/x\x00100\x00{old + 1}")
    )
    assert f"{day}.750501684 -> {day}.750501685" in close
    moved = describe_change(fields(exe="/bin/x\x001\x002"), fields(exe="/usr/bin/x\x001\x002"))
    assert moved.endswith("executable changed (/bin/x -> /usr/bin/x)")
    copied = describe_change(  # cp -p of another tool: same size and times, another inode
        fields(exe=f"/bin/x\x001\x00{old}\x00{old}\x007\x00755"),
        fields(exe=f"/bin/x\x001\x00{old}\x00{new}\x008\x00755"),
    )
    assert copied.endswith("(/bin/x: replaced by another file (another inode))")
    touched = describe_change(
        fields(exe=f"/bin/x\x001\x00{old}\x00{old}\x007\x00755"),
        fields(exe=f"/bin/x\x001\x00{old}\x00{new}\x007\x00644"),
    )
    assert touched.endswith(f"(/bin/x: status changed {day} -> {next_day}, mode 755 -> 644)")


@pytest.mark.parametrize(
    "argv",
    [
        ["sh", "-c", "echo r >> f; echo out"],
        ["printf", "%s\\n", "it's", "", "a b", "$HOME", "\\", "--x=1", "*"],
        ["plain", "a.py", "-x", "k=v,w", "@f", "/p/a_b.c"],
    ],
)
def test_commands_are_quoted_as_a_shell_would(argv: list[str]) -> None:
    quoted = shell_words(argv)
    done = subprocess.run(
        ["sh", "-c", "for a in " + quoted + '; do printf "[%s]" "$a"; done'],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout == "".join(f"[{word}]" for word in argv)
    assert quoted.startswith(argv[0] + " ")


def test_plain_words_are_not_quoted() -> None:
    assert shell_words(["flake8", "--max-line-length=100", "src/a.py"]) == (
        "flake8 --max-line-length=100 src/a.py"
    )
    assert shell_words(["sh", "-c", "echo r >> f; echo out"]) == "sh -c 'echo r >> f; echo out'"


def test_explain_quotes_the_command(tmp_path: Path) -> None:
    done = jobstamp("--explain", "--", "sh", "-c", "echo r >> f; echo out", cwd=tmp_path)
    assert done.stdout == b"out\n"
    assert "jobstamp: stored the result of sh -c 'echo r >> f; echo out'" in (
        done.stderr.decode().splitlines()
    )


def test_a_declared_secret_is_neither_stored_nor_explained(
    tmp_path: Path, isolated_cache: Path
) -> None:
    command = counting(tmp_path / "counter", "echo done")
    secrets = {"s3cr3t-old": b"", "s3cr3t-new": b""}
    for secret in (*secrets, *secrets):
        done = jobstamp(
            "--explain", "--env", "API_TOKEN", "--", *command, env={"API_TOKEN": secret}
        )
        assert done.stdout == b"done\n"
        secrets[secret] += done.stderr
    assert runs(tmp_path / "counter") == 2
    assert b"API_TOKEN has another value" in secrets["s3cr3t-new"]
    for secret, said in secrets.items():
        assert secret.encode() not in said
        for directory, _, names in os.walk(isolated_cache):
            for name in names:
                with open(os.path.join(directory, name), "rb") as handle:
                    assert secret.encode() not in handle.read(), name
    unset = jobstamp("--explain", "--env", "API_TOKEN", "--", *command, env={"API_TOKEN": None})
    empty = jobstamp("--explain", "--env", "API_TOKEN", "--", *command, env={"API_TOKEN": ""})
    assert b"API_TOKEN is unset now" in unset.stderr
    assert b"API_TOKEN is set now" in empty.stderr
    assert runs(tmp_path / "counter") == 4


def test_explain_says_caching_is_off_under_jobstamps_disabled(tmp_path: Path) -> None:
    for switch in ({}, {"JOBSTAMPS_DEBUG": "1"}):
        done = jobstamp(
            *(["--explain"] if not switch else []),
            "--",
            "sh",
            "-c",
            "echo out",
            env={"JOBSTAMPS_DISABLED": "1", **switch},
        )
        assert (done.stdout, done.stderr) == (
            b"out\n",
            b"jobstamp: running sh -c 'echo out': caching is off (JOBSTAMPS_DISABLED is set)\n",
        )
    assert jobstamp("--", "true", env={"JOBSTAMPS_DISABLED": "1"}).stderr == b""


def test_a_result_that_cannot_be_replayed_is_explained_once(
    tmp_path: Path, isolated_cache: Path
) -> None:
    command = counting(tmp_path / "counter", "printf '%*s' 100000 x")
    jobstamp("--", *command)
    (blob,) = cache_blobs(isolated_cache)
    with open(blob, "r+b") as handle:
        handle.seek(10)
        handle.write(b"y")
    done = jobstamp("--explain", "--", *command)
    assert done.stdout == b" " * 99999 + b"x"
    said = done.stderr.decode().splitlines()
    why = "the stored result cannot be replayed (stored output is damaged)"
    assert [line for line in said if "cannot be replayed" in line] == [
        f"jobstamp: running {shell_words(command)}: {why}"
    ]
    assert runs(tmp_path / "counter") == 2


def test_a_pointer_planted_as_a_link_is_not_followed(tmp_path: Path, isolated_cache: Path) -> None:
    pointers = isolated_cache / "v1" / "p"
    greet = ["sh", "-c", "echo $GREETING"]
    jobstamp("--env", "GREETING", "--", *greet, env={"GREETING": "hello"})
    (ours,) = pointers.glob("*/*")
    jobstamp("--", "sh", "-c", "echo other")
    (other,) = set(pointers.glob("*/*")) - {ours}
    outside = tmp_path / "outside"
    outside.write_bytes(other.read_bytes())  # a valid key, of another command's entry
    ours.unlink()
    ours.symlink_to(outside)
    done = jobstamp("--explain", "--env", "GREETING", "--", *greet, env={"GREETING": "bye"})
    assert done.stdout == b"bye\n"
    said = done.stderr.decode().splitlines()[0]
    assert said.endswith("this command line has not been stored from this directory before")
    assert "arguments" not in said
    assert not ours.is_symlink()
    assert outside.read_bytes() == other.read_bytes()


def tree_command(tmp_path: Path, *options: str) -> list[str]:
    """Return jobstamp's arguments for a counted command depending on the directory src."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.py").write_text("a\n")
    (src / "b.py").write_text("b\n")
    return [*options, "--dependencies", "src", "--", *counting(tmp_path / "counter", "echo out")]


def stored_listing(tmp_path: Path, cache: Path, command: list[str]) -> Path:
    """Run ``command`` (stored); return the listing of its directory dependency."""
    jobstamp(*command, cwd=tmp_path)
    (listing,) = (cache / "v1" / "t").glob("*/*")
    return listing


def explained(tmp_path: Path, command: list[str]) -> str:
    done = jobstamp("--explain", *command, cwd=tmp_path)
    assert done.stdout == b"out\n"
    return done.stderr.decode().splitlines()[0]


@pytest.mark.parametrize("method", [[], ["--use-hashes"]], ids=["mtime", "hash"])
def test_explain_names_the_files_that_changed_under_a_directory_dependency(
    tmp_path: Path, method: list[str]
) -> None:
    command = tree_command(tmp_path, *method)
    src = tmp_path / "src"
    changed = f"running {shell_words(command[-4:])}: dependency {src} changed: "
    explained(tmp_path, command)
    (src / "a.py").write_text("edited\n")
    assert explained(tmp_path, command).endswith(changed + "src/a.py was modified")
    (src / "new.py").write_text("")
    assert explained(tmp_path, command).endswith(changed + "src/new.py was added")
    (src / "b.py").unlink()
    assert explained(tmp_path, command).endswith(changed + "src/b.py was removed")
    for name in "cdefg":
        (src / f"{name}.py").write_text("")
    assert explained(tmp_path, command).endswith(
        changed + "src/c.py was added; src/d.py was added; src/e.py was added; and 2 more"
    )
    assert runs(tmp_path / "counter") == 5


def test_a_hit_reads_no_listing_and_a_miss_without_one_says_what_it_knew(
    tmp_path: Path, isolated_cache: Path
) -> None:
    command = tree_command(tmp_path)
    listing = stored_listing(tmp_path, isolated_cache, command)
    listing.unlink()
    listing.mkdir()
    for garbage in (None, b"jobstamps-listing-1\0garbage\0\xff\0src\0-1\0"):
        if garbage is not None:
            listing.rmdir()
            listing.write_bytes(garbage)
        done = jobstamp(*command, cwd=tmp_path)
        assert (done.returncode, done.stdout, done.stderr) == (0, b"out\n", b"")
        assert explained(tmp_path, command).startswith("jobstamp: replayed")
    assert runs(tmp_path / "counter") == 1
    (tmp_path / "src" / "a.py").write_text("edited\n")
    assert explained(tmp_path, command).endswith(
        f"{tmp_path / 'src'} changed: entries below it were added, removed or modified"
    )


def test_a_listing_left_from_an_earlier_result_is_not_used(
    tmp_path: Path, isolated_cache: Path
) -> None:
    command = tree_command(tmp_path)
    listing = stored_listing(tmp_path, isolated_cache, command)
    earlier = listing.read_bytes()
    (tmp_path / "src" / "a.py").write_text("edited\n")
    jobstamp(*command, cwd=tmp_path)
    listing.write_bytes(earlier)  # it says a.py was "a\n": it would name a.py
    (tmp_path / "src" / "b.py").write_text("edited\n")
    assert explained(tmp_path, command).endswith("entries below it were added, removed or modified")


def test_an_odd_name_under_a_directory_dependency_is_quoted_on_one_line(tmp_path: Path) -> None:
    command = tree_command(tmp_path)
    jobstamp(*command, cwd=tmp_path)
    with open(os.path.join(os.fsencode(tmp_path), b"src", b"\xff\nx.py"), "wb"):
        pass
    assert explained(tmp_path, command).endswith(r" changed: 'src/\udcff\nx.py' was added")
