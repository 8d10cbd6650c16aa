"""What a program name runs: link chains, interpreters, package version files and shims."""

from __future__ import annotations

import os
import shutil
import sys
from typing import TYPE_CHECKING

import pytest

from jobstamps import launchers
from jobstamps.errors import NotShareableError

if TYPE_CHECKING:
    from pathlib import Path

WRAPPER = '#!/bin/sh\nexec java -jar "$(dirname "$0")/../lib/tool.jar" "$@"\n'
BINARY = os.path.realpath(shutil.which("true") or "/bin/true")


def program(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


@pytest.fixture
def base(tmp_path: Path) -> Path:
    root = tmp_path / "checkout"
    root.mkdir()
    return root


def run_by(path: Path, base: Path) -> list[tuple[str, str, bool]]:
    return launchers.files_run(str(path), str(base), str(base))


def test_a_chain_of_relative_links_is_followed_to_its_file(tmp_path: Path, base: Path) -> None:
    target = tmp_path / "opt" / "tool-2" / "tool"
    target.parent.mkdir(parents=True)
    shutil.copy(BINARY, target)
    (tmp_path / "opt" / "current").symlink_to("tool-2")
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "tool").symlink_to("../opt/current/tool")
    (base / "tool").symlink_to(tmp_path / "bin" / "tool")
    assert run_by(base / "tool", base) == [("program", str(target), False)]


def test_a_link_loop_cannot_be_read(base: Path) -> None:
    (base / "a").symlink_to("b")
    (base / "b").symlink_to("a")
    with pytest.raises(OSError):  # noqa: PT011 - ELOOP or ENOENT, as the system says
        run_by(base / "a", base)


def test_a_wrapper_outside_the_checkout_is_identified_by_its_version_file(
    tmp_path: Path, base: Path
) -> None:
    wrapper = program(tmp_path / "opt" / "tool" / "bin" / "tool", WRAPPER)
    with pytest.raises(NotShareableError, match="shell script outside the base directory"):
        run_by(wrapper, base)  # a missing version file: what it runs is unknown
    (tmp_path / "opt" / "tool" / "VERSION").write_text("1.0\n")
    found = run_by(wrapper, base)
    assert found[:2] == [
        ("program", str(wrapper), True),
        ("package version file", str(tmp_path / "opt" / "tool" / "VERSION"), False),
    ]
    assert found[2][0] == "interpreter of program"  # /bin/sh, by content


def test_a_script_in_the_checkout_is_its_own_identity(base: Path) -> None:
    script = program(base / "tools" / "lint", WRAPPER)
    assert [what for what, _, _ in run_by(script, base)] == ["program", "interpreter of program"]


def test_a_node_modules_search_stops_at_the_package(base: Path) -> None:
    (base / "package.json").write_text('{"name": "the project"}\n')
    shim = program(base / "node_modules" / ".bin" / "tool", WRAPPER)  # pnpm writes these
    assert "package version file" not in [what for what, _, _ in run_by(shim, base)]


@pytest.mark.parametrize("where", ["shims", "interpreter in shims"])
def test_a_version_managers_shim_is_not_shareable(
    tmp_path: Path, base: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    shims = tmp_path / ".pyenv" / "shims"
    program(shims / "node", '#!/usr/bin/env bash\nexec pyenv exec "$0" "$@"\n')
    monkeypatch.setenv("PATH", f"{shims}{os.pathsep}{os.environ['PATH']}")
    if where == "shims":
        tool = shims / "node"
    else:  # a script whose #! line finds a shim on PATH
        tool = program(base / "node_modules" / "tool" / "cli.js", "#!/usr/bin/env node\n")
        (base / "node_modules" / "tool" / "package.json").write_text("{}\n")
    with pytest.raises(NotShareableError, match="version manager's shim"):
        run_by(tool, base)


def test_a_multi_call_dispatcher_named_after_another_tool_is_not_shareable(
    tmp_path: Path, base: Path
) -> None:
    mise = tmp_path / "bin" / "mise"
    mise.parent.mkdir()
    shutil.copy(BINARY, mise)
    (tmp_path / "bin" / "eslint").symlink_to(mise)
    with pytest.raises(NotShareableError, match="shim"):
        run_by(tmp_path / "bin" / "eslint", base)
    assert run_by(mise, base) == [("program", str(mise), False)]


def test_an_interpreter_missing_from_path_is_not_shareable(
    base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(base))
    script = program(base / "tool", "#!/usr/bin/env no-such-interpreter\n")
    with pytest.raises(NotShareableError, match="no-such-interpreter"):
        run_by(script, base)


def test_a_python_script_run_by_a_shim_found_on_path_is_not_shareable(
    tmp_path: Path, base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shims = tmp_path / ".pyenv" / "shims"
    program(shims / "python3", '#!/usr/bin/env bash\nexec pyenv exec "$0" "$@"\n')
    monkeypatch.setenv("PATH", f"{shims}{os.pathsep}{os.environ['PATH']}")
    script = program(base / "tools" / "check.py", "#!/usr/bin/env python3\nprint('ok')\n")
    with pytest.raises(NotShareableError, match="version manager's shim"):
        run_by(script, base)
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "python3").symlink_to(sys.executable)  # an installed Python
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    assert run_by(script, base) == [("program", str(script), True)]


def test_env_options_and_assignments_before_the_interpreter_are_skipped(
    tmp_path: Path, base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    node = tmp_path / "bin" / "node"
    node.parent.mkdir()
    shutil.copy(BINARY, node)
    monkeypatch.setenv("PATH", str(node.parent))
    script = program(base / "cli.js", "#!/usr/bin/env -S NODE_OPTIONS=--x node --flag\n")
    assert run_by(script, base)[1] == ("interpreter of program", str(node), False)
