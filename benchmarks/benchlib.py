"""What the command-line benchmarks share: a fresh install of this checkout, clean
environments, quantiles, and a description of the machine they ran on.

The scripts beside this file import it as ``benchlib`` (Python puts a script's directory
first on ``sys.path``).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# jobstamps.fingerprint.RACY_WINDOW_NS: a file changed within this time of being recorded is
# hashed on every check until a hit finds it settled; a checkout's files are older than that.
RACY_WINDOW_S = 2.0
DROPPED_ENV = (
    "PYTHONDONTWRITEBYTECODE",  # an installed package has .pyc files compiled by pip anyway
    "PYTHONPATH",  # would import another jobstamps than the installed one
    "PYTHONHOME",
    "PYTHONPROFILEIMPORTTIME",
    "PYTHONVERBOSE",
    "JOBSTAMPS_DEBUG",
    "JOBSTAMPS_DISABLED",
    "JOBSTAMPS_ALWAYS_USE_HASHES",
    "JOBSTAMPS_CACHE_DIR",
)


class BenchError(Exception):
    """The benchmark cannot run or its measurements would be wrong (e.g. a hit was a miss)."""


def clean_env() -> dict[str, str]:
    """This process's environment without the settings that would skew or redirect a run."""
    return {name: value for name, value in os.environ.items() if name not in DROPPED_ENV}


@functools.lru_cache(maxsize=1)
def import_jobstamps() -> str:
    """Import jobstamps (from this checkout when it is not installed); return its version."""
    try:
        import jobstamps
    except ImportError:
        sys.path.insert(0, REPO)
        import jobstamps
    return str(jobstamps.__version__)


@contextlib.contextmanager
def workdir(who: str, *, keep: bool = False, directory: str | None = None) -> Iterator[str]:
    """A new temporary directory (in ``directory``), removed afterwards unless ``keep``: then
    its path is said on stderr. ``who`` names the benchmark."""
    path = tempfile.mkdtemp(prefix=f"jobstamps-{who.replace('_', '-')}-", dir=directory)
    try:
        yield path
    finally:
        if keep:
            print(f"{who}: kept {path}", file=sys.stderr, flush=True)
        else:
            shutil.rmtree(path, ignore_errors=True)


def bin_dir(venv: str) -> str:
    """The directory of a virtual environment's scripts."""
    return os.path.join(venv, "Scripts" if sys.platform == "win32" else "bin")


def install(venv: str, env: dict[str, str], *requirements: str, who: str) -> str:
    """Create the virtual environment ``venv`` with this checkout and ``requirements``
    installed (``pip install`` compiles the ``.pyc`` files, as a user's install does);
    return its scripts directory. ``who`` names the benchmark in messages."""
    if not os.path.isfile(os.path.join(REPO, "pyproject.toml")):
        raise BenchError(f"{REPO} is not a jobstamps checkout")
    print(f"{who}: installing {REPO} into a temporary virtual environment", file=sys.stderr)
    bindir = bin_dir(venv)
    pip = [os.path.join(bindir, "python"), "-m", "pip", "install", "--quiet"]
    for step in (
        [sys.executable, "-m", "venv", venv],
        [*pip, "--disable-pip-version-check", REPO, *requirements],
    ):
        done = subprocess.run(step, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
            raise BenchError(
                f"{shlex.join(step[:4])} failed:\n{tail}\nCheck the network (the build needs PyPI)"
            )
    return bindir


def quantile(values: list[float], fraction: float) -> float:
    """The value at ``fraction`` (0 to 1) of the sorted ``values``, by the nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def rounded(value: Any) -> Any:
    """Round every float in a JSON-like tree to three decimals."""
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, dict):
        return {key: rounded(item) for key, item in value.items()}
    if isinstance(value, list):
        return [rounded(item) for item in value]
    return value


def machine() -> dict[str, Any]:
    """The system, processor count and load average, to quote with the figures."""
    return {
        "system": platform.system(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count() or 0,
        "load_average": load_average(),
    }


def load_average() -> list[float]:
    """The system's load averages over 1, 5 and 15 minutes (empty where unknown)."""
    try:
        return list(os.getloadavg())
    except (AttributeError, OSError):
        return []


def describe_machine(results: dict[str, Any]) -> str:
    """One line naming the machine as :func:`machine` described it (and the load at the end,
    when ``results`` has ``load_average_end``)."""
    text = f"{results['system']} {results['machine']}, {results['cpu_count']} CPUs"
    for name, when in (("load_average", "start"), ("load_average_end", "end")):
        load = results.get(name) or []
        if load:
            text += f", load average {' '.join(f'{value:.2f}' for value in load)} at the {when}"
    return text


def report(
    name: str,
    args: Any,
    measure: Callable[[Any], dict[str, Any]],
    table: Callable[[dict[str, Any]], str],
) -> int:
    """Run a benchmark's ``measure(args)``; print its table (or JSON with ``--json``).

    Returns the exit status: 1, with one line, when the benchmark could not run.
    """
    import json

    try:
        results = rounded(measure(args))
    except BenchError as error:
        print(f"{name}: {error}", file=sys.stderr)
        return 1
    print(json.dumps(results, indent=2) if args.json else table(results))
    return 0


def positive(text: str) -> int:
    """An argparse type: a whole number above zero."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def default_download_dir() -> str:
    """Where the Django sdist is kept between runs: beside (not in) the jobstamps cache."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "jobstamps-benchmarks")


def django_parser(doc: str, rounds: int, tools: str) -> argparse.ArgumentParser:
    """The options of the benchmarks that lint Django: rounds, download, venv, keep, JSON.

    ``doc`` is the script's docstring, ``rounds`` the default number of rounds of the Django
    part, ``tools`` what a ``--venv`` must have installed beside jobstamps.
    """
    parser = argparse.ArgumentParser(
        description=doc.split("\n\n", maxsplit=1)[0].replace("\n", " "), allow_abbrev=False
    )
    parser.add_argument(
        "--rounds",
        type=positive,
        default=rounds,
        metavar="N",
        help=f"rounds of the Django part ({rounds})",
    )
    parser.add_argument(
        "--download-dir",
        default=default_download_dir(),
        metavar="DIR",
        help="where the Django sdist is downloaded and kept (default: %(default)s)",
    )
    parser.add_argument(
        "--venv",
        metavar="DIR",
        help=f"use this virtual environment (with jobstamps, {tools} installed) "
        "instead of installing this checkout into a new one",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    return parser
