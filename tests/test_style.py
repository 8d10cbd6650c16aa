"""The tree passes its own linters (ruff, mypy in strict mode); its pre-commit files are valid."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import REPO

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    "tool",
    [
        ["ruff", "check", "--no-cache", "."],
        ["ruff", "format", "--check", "--no-cache", "."],
        ["mypy", "--no-incremental"],
        ["pre_commit", "validate-config", ".pre-commit-config.yaml"],
        ["pre_commit", "validate-manifest", ".pre-commit-hooks.yaml"],
    ],
    ids=["ruff-check", "ruff-format", "mypy", "pre-commit-config", "pre-commit-hooks"],
)
def test_tool_passes(tool: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", *tool],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
