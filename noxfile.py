"""Test sessions: every test under the Python running nox, the quick ones under every other.

``nox`` runs ``tests`` (the whole suite, slow integration tests included) with the interpreter
that runs nox, then ``quick`` (``-m "not slow"``) with each other CPython the package supports
that this machine has. A version the machine lacks is skipped, and nox's summary names it.
Interpreters are looked for on ``PATH`` and among pyenv's versions, whose shims on ``PATH``
only run the globally selected one. Arguments after ``--`` go to pytest.
"""

from __future__ import annotations

import glob
import os
import sys

import nox

#: The versions ``requires-python`` and the classifiers in pyproject.toml claim.
SUPPORTED = ("3.10", "3.11", "3.12", "3.13")
RUNNING = f"{sys.version_info[0]}.{sys.version_info[1]}"

nox.options.sessions = ["tests", "quick"]
nox.options.download_python = "never"  # only what the machine has: downloads are not tests
nox.options.error_on_missing_interpreters = False  # skipped and named in the summary

_PYENV = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
os.environ["PATH"] = os.pathsep.join(
    [*sorted(glob.glob(os.path.join(_PYENV, "versions", "3.*", "bin"))), os.environ["PATH"]]
)


@nox.session
def tests(session: nox.Session) -> None:
    """Run every test, the slow integration tests included, under the Python running nox."""
    session.install(".[test]")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session(python=[version for version in SUPPORTED if version != RUNNING])
def quick(session: nox.Session) -> None:
    """Run the quick tests (``-m "not slow"``) under another supported Python."""
    session.install(".[test]")
    session.run("python", "-m", "pytest", "-m", "not slow", *session.posargs)
