"""Helpers shared by test modules; fixtures live in conftest.py."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path
    from types import ModuleType

    import pytest


# -- Python API tests: counting runs, subprocesses, files with controlled stats -----------------


def bump(counter: str | os.PathLike[str]) -> None:
    """Count one run of a job by appending a line to the file ``counter``."""
    with open(counter, "a", encoding="utf-8") as handle:
        handle.write("ran\n")


def runs(counter: str | os.PathLike[str]) -> int:
    """Return how many times :func:`bump` counted into ``counter``."""
    try:
        with open(counter, encoding="utf-8") as handle:
            return len(handle.readlines())
    except FileNotFoundError:
        return 0


def run_python(
    code: str, *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter (importing this tree); fail the test if it fails."""
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done


def backdate(path: str | os.PathLike[str], seconds: float) -> int:
    """Set the access and modification times of ``path`` ``seconds`` into the past; return it."""
    when = time.time_ns() - int(seconds * 1e9)
    os.utime(path, ns=(when, when))
    return when


def settle(monkeypatch: pytest.MonkeyPatch) -> None:
    """Treat every file as settled (not racy), as files are once two seconds have passed.

    Files a test writes are always recent, so without this only the content-hash path of a
    fingerprint check would ever be exercised.
    """
    from jobstamps import fingerprint

    monkeypatch.setattr(fingerprint, "RACY_WINDOW_NS", 0)


def load_module(path: Path, source: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """Write ``source`` (dedented) to ``path`` and import it as a module named after the file.

    The module stays importable by name until the test ends, and is forgotten then.
    """
    import importlib.util
    import textwrap

    path.write_text(textwrap.dedent(source), encoding="utf-8")
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, path.stem, module)
    spec.loader.exec_module(module)
    return module
