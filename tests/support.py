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


# -- Integration tests: an installed copy driven by real tools (cmake, make) -------------------


def installed_env(bindir: Path | None, **extra: str) -> dict[str, str]:
    """Return the environment of a user whose ``PATH`` starts with ``bindir`` (if given).

    Next on ``PATH`` come the tools installed with the test dependencies (cmake, ninja, flake8),
    beside the Python running the tests, for machines that lack them. ``PYTHONPATH`` is left
    out: the ``isolated_cache`` fixture points it at this tree, and the installed ``jobstamp``
    must import the installed package, as it does for users.
    """
    env = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
    path = [os.path.dirname(sys.executable), env.get("PATH", os.defpath)]
    env["PATH"] = os.pathsep.join([str(bindir), *path] if bindir is not None else path)
    env.update(extra)
    return env


def run_folded(
    command: list[str], env: dict[str, str], cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` with stderr folded into stdout, as a terminal would show both."""
    return subprocess.run(
        command,
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
    )


def installed_output(bindir: Path, *command: str) -> str:
    """Run a command of the installed copy outside this tree; return its stripped stdout.

    The working directory is ``bindir``: ``python -c`` would import this tree from the current
    directory first.
    """
    return subprocess.run(
        command, cwd=bindir, env=installed_env(None), capture_output=True, text=True, check=True
    ).stdout.strip()


def readme_code_blocks(readme: Path, section: str, language: str) -> list[str]:
    """Return the ``.. code-block:: <language>`` bodies in one ``-----`` section of README.rst.

    Tests run these examples, so that the README cannot drift from what works.
    """
    lines = readme.read_text(encoding="utf-8").splitlines()
    titles = [
        i for i in range(1, len(lines)) if lines[i] and set(lines[i]) == {"-"} and lines[i - 1]
    ]
    starts = [i for i in titles if lines[i - 1].strip() == section]
    if not starts:
        message = f"README.rst has no section {section!r}"
        raise LookupError(message)
    start = starts[0] + 1
    end = next((i - 1 for i in titles if i > start), len(lines))
    blocks: list[str] = []
    index = start
    while index < end:
        if lines[index].strip() == f".. code-block:: {language}":
            index += 1
            body: list[str] = []
            while index < end and (not lines[index].strip() or lines[index].startswith("   ")):
                body.append(lines[index][3:])
                index += 1
            blocks.append("\n".join(body).strip("\n") + "\n")
        else:
            index += 1
    return blocks


def flake8_example(root: Path, bindir: Path) -> tuple[Path, dict[str, str]]:
    """Lay out the project of the README examples in ``root``: ``src/app.py`` and ``.flake8``.

    ``app.py`` has an unused import, which flake8 reports as F401. Returns its path and the
    environment to run the example in (see :func:`installed_env`).
    """
    (root / "src").mkdir(parents=True, exist_ok=True)
    (root / ".flake8").write_text("[flake8]\nmax-line-length = 100\n")
    app = root / "src" / "app.py"
    app.write_text("import os\n")
    return app, installed_env(bindir)


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
