"""Paths of the CMake package and the Make include, in this tree and in an installed copy."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from jobstamps import integrations
from jobstamps.errors import JobstampsError
from support import installed_output

REPO = Path(__file__).resolve().parent.parent


def test_make_include_in_a_source_checkout_is_the_tracked_file() -> None:
    assert Path(integrations.make_include()) == REPO / "make" / "jobstamps.mk"


def test_cmake_dir_falls_back_to_the_environment_data_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An editable install leaves the package here and installs the CMake files under <data>.
    package = tmp_path / "share" / "cmake" / "Jobstamps"
    package.mkdir(parents=True)
    (package / "JobstampsConfig.cmake").write_text("")
    monkeypatch.setattr(sysconfig, "get_path", lambda name: str(tmp_path) if name == "data" else "")
    assert Path(integrations.cmake_dir()) == package


def test_cmake_dir_without_an_installed_package_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sysconfig, "get_path", lambda name: str(tmp_path) if name == "data" else "")
    with pytest.raises(JobstampsError, match=r"JobstampsConfig\.cmake") as raised:
        integrations.cmake_dir()
    assert str(raised.value).endswith(
        f"Reinstall it with `{sys.executable} -m pip install jobstamps`."
    )


def test_importing_it_loads_nothing_heavy() -> None:
    code = (
        "import sys, jobstamps; before = set(sys.modules); import jobstamps.integrations; "
        "print(' '.join(sorted(set(sys.modules) - before)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    # Not even sysconfig, which from Python 3.12 on imports threading, warnings and more.
    assert result.stdout.split() == ["jobstamps.integrations"]


@pytest.mark.slow
def test_an_installed_copy_points_inside_its_package(installed: Path) -> None:
    code = "from jobstamps import integrations as i; print(i.cmake_dir()); print(i.make_include())"
    output = installed_output(installed, str(installed / "python"), "-c", code)
    cmake_dir, make_include = map(Path, output.splitlines())
    assert cmake_dir.parent.name == "jobstamps"
    assert cmake_dir.parent.parent.name == "site-packages"
    assert installed.parent in cmake_dir.parents
    assert (cmake_dir / "JobstampsConfig.cmake").is_file()
    assert (cmake_dir / "JobstampsConfigVersion.cmake").is_file()
    assert (cmake_dir / "JobstampsWrap.cmake").is_file()
    assert make_include == cmake_dir.parent / "make" / "jobstamps.mk"
    assert make_include.is_file()
