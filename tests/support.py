"""Helpers shared by test modules; fixtures live in conftest.py."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from jobstamps.store import Store

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping
    from types import ModuleType
    from typing import IO, Any


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


DOCS = Path(__file__).resolve().parent.parent / "docs"


def docs_examples(page: str) -> list[tuple[str, str]]:
    """Return each example of ``docs/<page>.rst``: language and body.

    An example is a ``.. code-block:: <language>``, or a ``.. literalinclude:: <file>`` with a
    ``:language:``, whose body is that file. Tests run these examples, so that the
    documentation cannot drift from what works.
    """
    source = DOCS / f"{page}.rst"
    lines = source.read_text(encoding="utf-8").splitlines()
    examples: list[tuple[str, str]] = []
    for index, line in enumerate(lines):
        directive, _, argument = line.strip().partition(":: ")
        if directive not in {".. code-block", ".. literalinclude"}:
            continue
        indent = len(line) - len(line.lstrip())
        body: list[str] = []
        for text in lines[index + 1 :]:
            if text.strip() and len(text) - len(text.lstrip()) <= indent:
                break
            body.append(text)
        if directive == ".. code-block":
            code = textwrap.dedent("\n".join(body)).strip("\n") + "\n"
            examples.append((argument.strip(), code))
            continue
        options = dict(re.findall(r"^\s+:(\w+):\s*(.*)$", "\n".join(body), re.MULTILINE))
        included = (source.parent / argument.strip()).read_text(encoding="utf-8")
        examples.append((options.get("language", "text"), included))
    return examples


def docs_code_blocks(page: str, language: str) -> list[str]:
    """Return the bodies of the ``language`` examples of ``docs/<page>.rst``, in order."""
    return [code for kind, code in docs_examples(page) if kind == language]


def flake8_example(root: Path, bindir: Path) -> tuple[Path, dict[str, str]]:
    """Lay out the project of the docs' examples in ``root``: ``src/app.py`` and ``.flake8``.

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


def python_for_user(uid: int) -> str:
    """Return a Python 3.10+ that user ``uid`` can run with this tree on ``PYTHONPATH``.

    Root reads everything, so permission tests drop to another user with ``setpriv``. The
    test skips (saying why) where that cannot work: not root, no ``setpriv``, or no Python the
    user can run, as when the interpreter lives under a home directory closed to others.
    """
    setpriv = shutil.which("setpriv")
    if setpriv is None or os.name != "posix" or os.geteuid() != 0:
        pytest.skip("needs root and setpriv to run as another user")
    for candidate in (sys.executable, "/usr/bin/python3", "/usr/local/bin/python3"):
        done = subprocess.run(
            [
                setpriv,
                f"--reuid={uid}",
                f"--regid={uid}",
                "--clear-groups",
                candidate,
                "-c",
                "import sys, jobstamps; assert sys.version_info >= (3, 10)",
            ],
            cwd="/",
            capture_output=True,
            timeout=TIMEOUT,
            check=False,
        )
        if done.returncode == 0:
            return candidate
    pytest.skip(f"no Python 3.10+ with this tree that user {uid} can run ({sys.executable} is not)")


# -- command-line tests: the real ``python -m jobstamps`` in a subprocess -----------------------

#: How long any one subprocess of a test may take before the test fails instead of hanging.
TIMEOUT = 60
JOBSTAMP = [sys.executable, "-m", "jobstamps"]


def jobstamp(
    *args: str | os.PathLike[str],
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str | None] | None = None,
    stdin: int | None = subprocess.DEVNULL,
    data: bytes | None = None,
    stdout: int | IO[bytes] = subprocess.PIPE,
    merged: bool = False,
    timeout: float = TIMEOUT,
) -> subprocess.CompletedProcess[bytes]:
    """Run ``python -m jobstamps ARGS`` to its end, capturing stdout and stderr as bytes.

    ``env`` changes the inherited environment (``None`` unsets a variable); ``data`` is fed
    on stdin; ``stdout`` is where its output goes instead of the captured pipe; ``merged``
    sends stderr into the stdout pipe, as ``2>&1`` would.
    """
    return subprocess.run(
        [*JOBSTAMP, *(os.fspath(arg) for arg in args)],
        cwd=cwd,
        env=changed_env(env),
        stdin=None if data is not None else stdin,
        input=data,
        stdout=stdout,
        stderr=subprocess.STDOUT if merged else subprocess.PIPE,
        timeout=timeout,
        check=False,
    )


def changed_env(changes: Mapping[str, str | None] | None) -> dict[str, str]:
    """Return this process's environment with ``changes`` applied (``None`` unsets)."""
    env = dict(os.environ)
    for name, value in (changes or {}).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def counting(counter: str | os.PathLike[str], script: str) -> list[str]:
    """Return a ``sh -c`` command that counts its run in ``counter`` (see :func:`runs`), then
    runs ``script``, which sees the counter's path as ``$0``."""
    return ["sh", "-c", f'echo ran >> "$0"; {script}', os.fspath(counter)]


def cache_entries(cache: str | os.PathLike[str]) -> list[str]:
    """Return the paths of the finished entry files in the cache directory ``cache``."""
    return [path for path in _cache_files(os.path.join(cache, "v1", "e")) if "/packs/" not in path]


def cache_blobs(cache: str | os.PathLike[str]) -> list[str]:
    """Return the paths of the finished blob files in the cache directory ``cache``."""
    return _cache_files(os.path.join(cache, "v1", "b"))


def cache_packs(cache: str | os.PathLike[str]) -> list[str]:
    """Return the paths of the packs (many entries in one file) in the cache directory ``cache``."""
    top = os.path.join(cache, "v1", "e", "packs")
    names = os.listdir(top) if os.path.isdir(top) else []
    return sorted(os.path.join(top, name) for name in names if not name.startswith("."))


def _cache_files(top: str) -> list[str]:
    if not os.path.isdir(top):
        return []
    return sorted(
        os.path.join(top, shard, name)
        for shard in os.listdir(top)
        if os.path.isdir(os.path.join(top, shard))
        for name in os.listdir(os.path.join(top, shard))
        if not name.startswith(".")
    )


def wait_until(condition: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    """Poll ``condition`` (a file appearing, a count growing) until it holds; fail after
    ``timeout`` seconds saying ``what`` was awaited."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            message = f"timed out waiting for {what}"
            raise AssertionError(message)
        time.sleep(0.005)


def read_until(fd: int, marker: bytes | None, timeout: float = TIMEOUT) -> bytes:
    """Read from ``fd`` until ``marker`` has arrived (``None``: until it closes), or it closes;
    return what was read. Fails after ``timeout`` seconds, so a test of live output cannot hang.
    """
    import selectors

    data = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while marker is None or marker not in data:
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(left):
                message = f"timed out waiting for {marker!r}; read so far: {data!r}"
                raise AssertionError(message)
            try:
                block = os.read(fd, 65536)
            except OSError:  # a pseudo-terminal whose other side closed
                block = b""
            if not block:
                break
            data += block
    return data


#: Waits (bounded) for the file named by its first argument, so a test controls when it ends.
WAIT_FOR_FILE = (
    "import os, sys, time\n"
    "deadline = time.monotonic() + 60\n"
    "while not os.path.exists(sys.argv[1]) and time.monotonic() < deadline:\n"
    "    time.sleep(0.005)\n"
)


@contextlib.contextmanager
def started(*args: str | os.PathLike[str], **popen: Any) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``python -m jobstamps ARGS`` with stdout and stderr pipes; kill it if still running
    on the way out, and close its pipes, so a failing test leaves nothing behind."""
    popen.setdefault("stdin", subprocess.DEVNULL)
    popen.setdefault("stdout", subprocess.PIPE)
    popen.setdefault("stderr", subprocess.PIPE)
    proc: subprocess.Popen[bytes] = subprocess.Popen(
        [*JOBSTAMP, *(os.fspath(arg) for arg in args)], **popen
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(TIMEOUT)
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


def counting_python(counter: str | os.PathLike[str], code: str, *args: str) -> list[str]:
    """Return a command that counts its run in ``counter`` (see :func:`runs`), then runs the
    Python ``code`` with ``args``."""
    return [*counting(counter, f'exec "{sys.executable}" -c "$@"'), code, *args]


# -- Per-file front ends: a small C project and the stand-in checker's log ----------------------

C_SOURCE = """\
#include "common.h"

int f{number:02d}(int x)
{{
    int values[4] = {{0, 1, 2, 3}};
    return values[x % 4] + COMMON_OFFSET;
}}
"""

#: Appended to a source, this is what cppcheck reports as arrayIndexOutOfBounds.
C_OUT_OF_BOUNDS = """
int broken(void)
{
    int values[2] = {0, 1};
    return values[2];
}
"""


def c_project(root: Path, count: int = 20) -> list[str]:
    """Write ``count`` C sources ``src/fNN.c`` and ``include/common.h`` under ``root``.

    Also writes ``check.cfg``, the configuration of the stand-in checker
    ``tests/cmake/perfile_project/check.py``. Returns the sources' paths relative to ``root``,
    in order.
    """
    (root / "src").mkdir(parents=True, exist_ok=True)
    (root / "include").mkdir(exist_ok=True)
    (root / "include" / "common.h").write_text("#define COMMON_OFFSET 1\n")
    (root / "check.cfg").write_text("strict\n")
    names = [f"src/f{number:02d}.c" for number in range(count)]
    for number, name in enumerate(names):
        (root / name).write_text(C_SOURCE.format(number=number))
    return names


def checker_runs(log: Path) -> list[list[str]]:
    """The runs the stand-in checker logged in ``log``: for each, the files it was given."""
    if not log.exists():
        return []
    return [line.split("\t") if line else [] for line in log.read_text().splitlines()]


def docs_c_example(root: Path) -> tuple[Path, Path]:
    """Lay out the C project of the documentation's per-file examples: ``src/app.c``, whose
    out-of-bounds read cppcheck reports, ``src/util.c`` and ``include/app.h``. Returns the
    paths of the two sources."""
    (root / "src").mkdir(parents=True)
    (root / "include").mkdir()
    (root / "include" / "app.h").write_text("#define SIZE 2\n")
    app, util = root / "src" / "app.c", root / "src" / "util.c"
    app.write_text('#include "app.h"\n\nint last(void)\n{\n    int values[SIZE] = {0, 1};\n')
    app.write_text(app.read_text() + "    return values[2];\n}\n")
    util.write_text('#include "app.h"\n\nint twice(int x)\n{\n    return 2 * x;\n}\n')
    return app, util


# -- Stand-in linters: a Python script that logs its runs, in a fresh working directory --------


def stand_in_linter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str, log_variable: str
) -> list[str]:
    """Write the linter ``source`` and return its command; chdir into a fresh ``work`` folder.

    The script finds where to log its runs in ``log_variable``, set to ``tmp_path/<name>``.
    """
    script = tmp_path / "stand_in_linter.py"
    script.write_text(source)
    monkeypatch.setenv(log_variable, str(tmp_path / log_variable.lower()))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return [sys.executable, str(script)]


@contextlib.contextmanager
def mounted(directory: Path, *options: str) -> Iterator[None]:
    """Mount a small tmpfs on ``directory`` for the block; skip the test where one cannot be."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root and mount(8)")
    directory.mkdir(parents=True, exist_ok=True)
    mount = ["mount", "-t", "tmpfs", "-o", ",".join(["size=1M", "mode=0700", *options])]
    if subprocess.run([*mount, "tmpfs", str(directory)], check=False).returncode != 0:
        pytest.skip("this machine does not let the tests mount a tmpfs")
    try:
        yield
    finally:
        subprocess.run(["umount", str(directory)], check=True)


# -- the local cache: keys and entries for tests of jobstamps.store and storage.local ------

KEY = "ab" + "0" * 38


OTHER = "cd" + "1" * 38


NOT_STORED = "no result is stored for this key"


def entry(**fields: object) -> dict[str, object]:
    return {"deps": [], "outputs": [], "blobs": [], "payload": {"x": 1}, **fields}


def set_mtime(path: str, seconds_ago: float) -> None:
    when = time.time_ns() - int(seconds_ago * 1e9)
    os.utime(path, ns=(when, when))


def key_named(n: int) -> str:
    return f"{n:02x}" + f"{n:038x}"


def packing_store(root: str | Path) -> Store:
    """A store that keeps entries written together in packs, as the per-file mode's does."""
    made = Store(str(root))
    made.packs = True
    return made


def write_together(store: Store, keys: list[str], size: int = 0, **fields: object) -> None:
    """Write an entry for each key in one batch; ``size`` random bytes of payload each."""
    with store.batch():
        for key in keys:
            extra = {"payload": {"data": os.urandom(size)}} if size else {}
            store.write(key, entry(**fields, **extra))


def read_in_a_fresh_process(
    cache: str | os.PathLike[str], keys: list[str], packs: bool = False
) -> tuple[int, int]:
    """Look ``keys`` up in a new process (with ``packs``, as the per-file mode does).

    Return how many were found and the process's peak memory in KiB.
    """
    code = (
        "import resource, sys\n"
        "from jobstamps.store import Store\n"
        "store = Store(sys.argv[1])\n"
        "store.packs = sys.argv[2] == 'packs'\n"
        "found = sum(store.read(key)[0] is not None for key in sys.argv[3:])\n"
        "print(found, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    mode = "packs" if packs else "files"
    found, peak = run_python(code, os.fspath(cache), mode, *keys).stdout.split()
    return int(found), int(peak)
