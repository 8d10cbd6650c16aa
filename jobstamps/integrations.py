"""Paths of the installed CMake package and Make include (``--cmake-dir``, ``--make-include``).

Imports only ``os`` and ``sys`` (``sysconfig`` and the error type only when the package's own
copy is missing): the command line answers these options at start-up, and from Python 3.12
``sysconfig`` brings ``threading`` and more with it.
"""

from __future__ import annotations

import os
import sys

__all__ = ["cmake_dir", "make_include"]

_HERE = os.path.dirname(os.path.abspath(__file__))


def cmake_dir() -> str:
    """Return the directory holding ``JobstampsConfig.cmake``, for ``-DJobstamps_DIR=...``.

    The wheel installs the package inside ``jobstamps/cmake``; an editable install leaves this
    package in the source tree and installs the copy under the environment's
    ``share/cmake/Jobstamps``. Raises ``JobstampsError`` when neither exists, as in a plain
    source checkout, where the config file has not been generated.
    """
    inside = os.path.join(_HERE, "cmake")
    if os.path.isfile(os.path.join(inside, "JobstampsConfig.cmake")):
        return inside
    import sysconfig

    candidates = [inside, os.path.join(sysconfig.get_path("data"), "share", "cmake", "Jobstamps")]
    return _first_holding("JobstampsConfig.cmake", candidates, "the CMake package")


def make_include() -> str:
    """Return the path of ``jobstamps.mk``, for ``include $(shell jobstamp --make-include)``.

    Installed inside ``jobstamps/make``; in a source checkout it is ``make/jobstamps.mk``.
    Raises ``JobstampsError`` when neither exists.
    """
    candidates = [os.path.join(_HERE, "make"), os.path.join(os.path.dirname(_HERE), "make")]
    return os.path.join(
        _first_holding("jobstamps.mk", candidates, "the Make include"), "jobstamps.mk"
    )


def _first_holding(name: str, directories: list[str], what: str) -> str:
    """Return the first of ``directories`` that holds the file ``name``."""
    for directory in directories:
        if os.path.isfile(os.path.join(directory, name)):
            return directory
    from jobstamps.errors import JobstampsError

    looked = ", ".join(directories)
    message = (
        f"{what} ({name}) is not installed beside jobstamps in {_HERE} (looked in {looked}). "
        f"Reinstall it with `{sys.executable} -m pip install jobstamps`."
    )
    raise JobstampsError(message)
