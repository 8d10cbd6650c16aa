"""Fixtures shared by every test module: an isolated cache, and an installed copy of the tree."""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from jobstamps.store import Store
from servers import bad_server, nginx, redis_server  # noqa: F401 - fixtures for remote tests

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def isolated_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Point every cache location at a fresh temporary directory; never the user's cache."""
    root = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("XDG_CACHE_HOME", str(root / "xdg"))
    monkeypatch.setenv("JOBSTAMPS_CACHE_DIR", str(root / "jobstamps"))
    for name in (
        "JOBSTAMPS_DEBUG",
        "JOBSTAMPS_DISABLED",
        "JOBSTAMPS_ALWAYS_USE_HASHES",
        "JOBSTAMPS_SUMMARY",
    ):
        monkeypatch.delenv(name, raising=False)
    # Subprocesses running ``python -m jobstamps`` import this tree, not an installed copy.
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    )
    return root / "jobstamps"


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Install this tree into a fresh virtual environment, as a user's ``pip install`` would.

    Returns the environment's ``bin`` directory, which holds ``jobstamp`` and ``python``.
    """
    env_dir = tmp_path_factory.mktemp("venv")
    venv.EnvBuilder(with_pip=True).create(env_dir)
    bindir = env_dir / ("Scripts" if sys.platform == "win32" else "bin")
    subprocess.run(
        [
            bindir / "python",
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            str(REPO),
        ],
        check=True,
    )
    return bindir


@pytest.fixture
def store(tmp_path: Path) -> Store:
    """A store created in a fresh directory."""
    created = Store(str(tmp_path / "cache"))
    created.create()
    return created
