"""Why a command line missed: its key compared with the last one stored for it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from jobstamps.explain import describe_change, slot_of
from support import counting, jobstamp

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
        "since the last stored result, the environment changed (was CFLAGS=-O2; now CFLAGS=-O3)"
    )
    assert "dependencies changed (now /src/b.py)" in describe_change(
        fields(), fields(deps=["/src/a.py", "/src/b.py"])
    )
    assert "method changed (mtime -> hash)" in describe_change(fields(), fields(method="hash"))
    upgraded = describe_change(fields(), fields(exe="/usr/bin/flake8\x00120\x00222"))
    assert "executable changed (/usr/bin/flake8, 100 bytes" in upgraded
    assert "-> /usr/bin/flake8, 120 bytes, modified 222 ns" in upgraded
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
    assert explained("bye").endswith(
        "the environment changed (was GREETING=hello; now GREETING=bye)"
    )
