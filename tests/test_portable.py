"""Remote keys: the same for two checkouts at different paths, different for anything else."""

from __future__ import annotations

import os
import shutil
import stat
import sys
import time
from typing import TYPE_CHECKING

import pytest

from jobstamps import portable
from jobstamps.errors import UsageError
from jobstamps.fingerprint import HASH, MTIME, digest_file, record
from jobstamps.store import Store
from support import backdate, settle

if TYPE_CHECKING:
    from pathlib import Path

PROGRAM = '#!/bin/sh\ncat "$@"\n'
BINARY = os.path.realpath(shutil.which("true") or "/bin/true")  # a program that is no script


def checkout(root: Path) -> Path:
    """A repository with a program, a source file and a sub-directory, at ``root``."""
    (root / ".git").mkdir(parents=True)
    (root / "src").mkdir()
    (root / "src" / "a.txt").write_text("a\n")
    program = root / "bin" / "show"
    program.parent.mkdir()
    program.write_text(PROGRAM)
    program.chmod(0o755)
    backdate(program, 10)
    return root


def key_of(
    store: Store, root: Path, argv: list[str], cwd: Path | None = None, **changes: object
) -> str:
    """The remote key of running ``argv`` (``bin/show`` first) in ``cwd`` (default ``root``)."""
    where = str(cwd or root)
    base = portable.base_directory(where)
    deps = [str(root / "src" / "a.txt")]
    digests = portable.dependency_digests(deps, [record(path, MTIME) for path in deps])
    assert digests is not None
    parts: dict[str, object] = {
        "executable": str(root / "bin" / "show"),
        "env_names": [],
        "stdin_digest": "-",
        "merged": False,
    }
    parts.update(changes)
    executable: str = parts["executable"]  # type: ignore[assignment]
    return portable.command_key(
        portable.command_parts(
            portable.program_parts(executable, where, base, store.memos),
            base,
            where,
            argv,
            deps,
            digests,
            [],
            parts["env_names"],  # type: ignore[arg-type]
            parts["stdin_digest"],  # type: ignore[arg-type]
            parts["merged"],  # type: ignore[arg-type]
        )
    )


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(str(tmp_path / "cache"))


def test_two_checkouts_at_different_paths_share_keys(tmp_path: Path, store: Store) -> None:
    one, two = checkout(tmp_path / "one" / "project"), checkout(tmp_path / "elsewhere" / "p")
    keys = [
        key_of(store, root, ["bin/show", str(root / "src" / "a.txt"), "-v"], root / "src")
        for root in (one, two)
    ]
    assert keys[0] == keys[1]


def test_contents_paths_and_arguments_change_the_key(tmp_path: Path, store: Store) -> None:
    root = checkout(tmp_path / "project")
    first = key_of(store, root, ["bin/show", "src/a.txt"])
    assert key_of(store, root, ["bin/show", "src/a.txt"]) == first
    assert key_of(store, root, ["bin/show", "src/a.txt", "-v"]) != first
    assert key_of(store, root, ["bin/show", "src/a.txt"], root / "src") != first
    assert key_of(store, root, ["bin/show", "src/a.txt"], merged=True) != first
    assert key_of(store, root, ["bin/show", "src/a.txt"], stdin_digest="0" * 40) != first
    (root / "src" / "a.txt").write_text("b\n")
    assert key_of(store, root, ["bin/show", "src/a.txt"]) != first


def test_only_declared_environment_variables_change_the_key(
    tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = checkout(tmp_path / "project")
    argv = ["bin/show", "src/a.txt"]
    monkeypatch.setenv("LINT_LEVEL", "1")
    undeclared = key_of(store, root, argv)
    declared = key_of(store, root, argv, env_names=["LINT_LEVEL"])
    assert declared != undeclared
    monkeypatch.setenv("LINT_LEVEL", "2")
    assert key_of(store, root, argv) == undeclared
    assert key_of(store, root, argv, env_names=["LINT_LEVEL"]) != declared
    monkeypatch.delenv("LINT_LEVEL")
    assert key_of(store, root, argv, env_names=["LINT_LEVEL"]) not in {declared, undeclared}


def test_an_absolute_argument_differs_from_the_same_relative_one(
    tmp_path: Path, store: Store
) -> None:
    root = checkout(tmp_path / "project")
    relative = key_of(store, root, ["bin/show", "src/a.txt"])
    absolute = key_of(store, root, ["bin/show", str(root / "src" / "a.txt")])
    assert relative != absolute  # the command saw (and may print) different arguments


def test_a_path_outside_the_base_directory_stays_absolute(tmp_path: Path, store: Store) -> None:
    one, two = checkout(tmp_path / "one"), checkout(tmp_path / "two")
    outside = tmp_path / "shared.cfg"
    outside.write_text("x\n")
    keys = {key_of(store, root, ["bin/show", str(outside)]) for root in (one, two)}
    assert len(keys) == 1  # the same absolute path on both: shared
    moved = tmp_path / "moved.cfg"
    shutil.copy(outside, moved)
    assert key_of(store, one, ["bin/show", str(moved)]) not in keys


def test_an_executable_outside_the_base_directory_is_named_by_its_name_and_contents(
    tmp_path: Path, store: Store
) -> None:
    root = checkout(tmp_path / "project")
    programs = []
    for place in ("venv-a", "venv-b"):
        program = tmp_path / place / "bin" / "lint"
        program.parent.mkdir(parents=True)
        shutil.copy(BINARY, program)
        programs.append(program)
    keys = [key_of(store, root, ["lint"], executable=str(p)) for p in programs]
    assert keys[0] == keys[1]
    with programs[1].open("ab") as upgrade:
        upgrade.write(b"upgraded")
    assert key_of(store, root, ["lint"], executable=str(programs[1])) != keys[0]


def test_the_base_directory_is_the_repository_root_else_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JOBSTAMPS_BASE_DIR", raising=False)
    root = checkout(tmp_path / "project")
    assert portable.base_directory(str(root / "src")) == str(root)
    (root / "src" / "deeper").mkdir()
    assert portable.base_directory(str(root / "src" / "deeper")) == str(root)
    plain = tmp_path / "plain"
    plain.mkdir()
    assert portable.base_directory(str(plain)) in {str(plain), "/"}
    monkeypatch.setenv("JOBSTAMPS_BASE_DIR", str(root / "src"))
    assert portable.base_directory(str(root / "src" / "deeper")) == str(root / "src")
    assert portable.base_directory(str(root), "src/deeper") == str(root / "src" / "deeper")
    with pytest.raises(UsageError, match="base directory missing is not a directory"):
        portable.base_directory(str(root), "missing")


def test_relative_paths_never_match_a_sibling_with_the_same_prefix() -> None:
    assert portable.relative("/work/project/src/a.py", "/work/project") == "src/a.py"
    assert portable.relative("/work/project", "/work/project") == "."
    assert portable.relative("/work/project2/a.py", "/work/project") == "/work/project2/a.py"
    assert portable.relative("/a.py", "/") == "a.py"


def test_an_executable_is_digested_once_and_remembered_privately(
    tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    settle(monkeypatch)
    root = checkout(tmp_path / "project")
    program = str(root / "bin" / "show")
    assert portable.content_digest(program, store.memos) == digest_file(program)
    memos = [os.path.join(d, n) for d, _, names in os.walk(store.root) for n in names]
    (memo,) = [path for path in memos if f"{os.sep}x{os.sep}" in path]
    assert stat.S_IMODE(os.stat(memo).st_mode) == 0o600
    with open(memo, "w") as handle:  # proves the memo is what is read next time
        handle.write("f" * 40)
    assert portable.content_digest(program, store.memos) == "f" * 40
    (root / "bin" / "show").write_text(PROGRAM + "# changed\n")  # a new stat: digested again
    assert portable.content_digest(program, store.memos) == digest_file(program)


class InMemory:
    """A memo kept in a dict: what a caller without a cache directory could hand key code."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def get(self, name: str) -> str | None:
        return self.values.get(name)

    def put(self, name: str, value: str) -> None:
        self.values[name] = value


def test_key_code_remembers_digests_only_in_the_memo_it_is_handed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settle(monkeypatch)
    root = checkout(tmp_path / "project")
    program = str(root / "bin" / "show")
    memo = InMemory()
    assert portable.content_digest(program, memo) == digest_file(program)
    (name,) = memo.values
    assert memo.values[name] == digest_file(program)
    assert not os.path.exists(os.environ["JOBSTAMPS_CACHE_DIR"])  # no cache written behind it
    memo.values[name] = "e" * 40  # proves the memo is what is read next time
    assert portable.content_digest(program, memo) == "e" * 40
    memo.values[name] = "\N{LATIN SMALL LETTER E WITH ACUTE}" * 40  # not a digest: ignored
    assert portable.content_digest(program, memo) == digest_file(program)


def test_a_recently_modified_executable_is_not_remembered(tmp_path: Path, store: Store) -> None:
    program = tmp_path / "fresh"
    program.write_text(PROGRAM)
    portable.content_digest(str(program), store.memos)
    assert not os.path.isdir(os.path.join(store.root, "v1", "x"))


def test_a_missing_dependency_is_not_shared(tmp_path: Path) -> None:
    present = tmp_path / "present"
    present.write_text("x")
    missing = str(tmp_path / "missing")
    recorded = [record(str(present), HASH), record(missing, HASH)]
    assert portable.dependency_digests([str(present), missing], recorded) is None
    assert portable.dependency_digests([str(present)], recorded[:1]) == [digest_file(str(present))]


def test_a_python_console_script_is_named_without_its_interpreter_path(
    tmp_path: Path, store: Store
) -> None:
    root = checkout(tmp_path / "project")
    keys = []
    for place in ("home-a/.cache/env-x1", "home-b/env"):
        bindir = tmp_path / place / "bin"
        bindir.mkdir(parents=True)
        (bindir / "python").symlink_to(sys.executable)
        # The same distribution, installed at another time on each machine.
        (tmp_path / place / "lib" / "python3.11" / "site-packages" / "foo-1.0.dist-info").mkdir(
            parents=True
        )
        time.sleep(0.05)
        script = bindir / "lint"
        script.write_text(f"#!{bindir / 'python'}\nimport sys\nsys.exit(0)\n")
        script.chmod(0o755)
        keys.append(key_of(store, root, ["lint"], executable=str(script)))
        long_form = bindir / "lint-long"
        long_form.write_text(
            f"#!/bin/sh\n'''exec' \"{bindir / 'python'}\" \"$0\" \"$@\"\n' '''\nimport sys\n"
        )
        long_form.chmod(0o755)
        keys.append(key_of(store, root, ["lint-long"], executable=str(long_form)))
    assert keys[0] == keys[2]
    assert keys[1] == keys[3]
    assert keys[0] != keys[1]  # another name


def test_an_argument_spelling_the_base_mark_is_not_the_path_in_the_base_directory(
    tmp_path: Path, store: Store
) -> None:
    root = checkout(tmp_path / "project")
    literal = key_of(store, root, ["bin/show", "{base}/msg"])
    path = key_of(store, root, ["bin/show", str(root / "msg")])
    assert literal != path
    assert key_of(store, root, ["bin/show", "msg"]) not in {literal, path}
