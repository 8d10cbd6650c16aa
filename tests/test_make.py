"""The GNU Make include, driven by real GNU make against a copy of this tree installed in a venv."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from support import (
    flake8_example,
    installed_env,
    installed_output,
    readme_code_blocks,
    run_folded,
)

if TYPE_CHECKING:
    import subprocess

HERE = Path(__file__).resolve().parent
LINTER = HERE / "cmake" / "lint_project" / "lint.py"
README = HERE.parent / "README.rst"

pytestmark = pytest.mark.slow

# lint.py (see its docstring) counts its runs; every target wraps it in jobstamp_run.
INCLUDE = (
    "JOBSTAMP ?= jobstamp\n"
    "include $(or $(shell $(JOBSTAMP) --make-include),$(error jobstamp not found: install "
    "jobstamps or run make JOBSTAMP=/path/to/jobstamp))\n"
)
MAKEFILE = (
    INCLUDE
    + """

LINT := {python} {linter}
PARALLEL := one two three four
WITH_COMMAS := a,b

.PHONY: $(PARALLEL) outputs quoting hashes failing dashed

$(PARALLEL):
\t$(call jobstamp_run,src/a.py src/b.py,,$(LINT) $@)

outputs:
\t$(call jobstamp_run,,out/made.txt,$(LINT) outputs --write out/made.txt)

quoting:
\t$(call jobstamp_run,src/it's.py,,$(LINT) quoting "two  spaces" '$$HOME' $(WITH_COMMAS))

hashes: JOBSTAMP_FLAGS += --use-hashes
hashes:
\t$(call jobstamp_run,src/a.py,,$(LINT) hashes)

failing:
\t$(call jobstamp_run,src/a.py,,$(LINT) failing --fail)

dashed:
\t$(call jobstamp_run,-dash.cfg src/a.py,,$(LINT) dashed)
"""
)


#: A PATH with make and a shell but no jobstamp, as on CI without the environment activated.
NO_JOBSTAMP = os.pathsep.join(
    directory
    for directory in ("/usr/local/bin", "/usr/bin", "/bin")
    if not os.path.exists(os.path.join(directory, "jobstamp"))
)


def runs(counts: Path, name: str) -> int:
    """How often lint.py ran as ``name`` with ``LINT_COUNTS=counts``."""
    path = counts / name
    return len(path.read_text().splitlines()) if path.exists() else 0


class MakeProject:
    """A directory with the Makefile above, made with the installed ``jobstamp`` on PATH."""

    def __init__(self, root: Path, bindir: Path) -> None:
        self.root = root
        self.bindir = bindir
        self.counts = root / "counts"
        (root / "src").mkdir(parents=True)
        for name in ("a.py", "b.py", "it's.py"):
            (root / "src" / name).write_text(f"# {name}\n")
        (root / "-dash.cfg").write_text("[lint]\n")
        makefile = MAKEFILE.format(python=bindir / "python", linter=LINTER)
        (root / "Makefile").write_text(makefile)

    def make(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        """Run make in the project, stderr folded into stdout."""
        env = {**installed_env(self.bindir, LINT_COUNTS=str(self.counts)), **env}
        return run_folded(["make", "--no-print-directory", *args], env, cwd=self.root)

    def edit(self, name: str) -> None:
        """Change the contents (and size) of a source file."""
        path = self.root / "src" / name
        path.write_text(path.read_text() + "# edited\n")


@pytest.fixture
def project(tmp_path: Path, installed: Path) -> MakeProject:
    return MakeProject(tmp_path / "project", installed)


def test_make_include_prints_the_installed_file(installed: Path) -> None:
    path = Path(installed_output(installed, str(installed / "jobstamp"), "--make-include"))
    assert path.name == "jobstamps.mk"
    assert path.is_file()
    assert installed.parent in path.parents


def test_runs_once_then_replays_its_output(project: MakeProject) -> None:
    for _ in range(2):
        result = project.make("one")
        assert result.returncode == 0, result.stdout
        assert "one: checked  in project" in result.stdout
        assert "one: warning: something to look at" in result.stdout
    assert runs(project.counts, "one") == 1


def test_a_changed_dependency_runs_again(project: MakeProject) -> None:
    assert project.make("one").returncode == 0
    project.edit("b.py")
    assert project.make("one").returncode == 0
    assert runs(project.counts, "one") == 2
    assert project.make("one").returncode == 0
    assert runs(project.counts, "one") == 2


def test_parallel_make_runs_each_target_once(project: MakeProject) -> None:
    targets = ["one", "two", "three", "four"]
    for _ in range(2):
        result = project.make("-j4", *targets)
        assert result.returncode == 0, result.stdout
        for target in targets:
            assert runs(project.counts, target) == 1
            assert f"{target}: checked  in project" in result.stdout


def test_a_missing_output_runs_again(project: MakeProject) -> None:
    made = project.root / "out" / "made.txt"
    assert project.make("outputs").returncode == 0
    assert project.make("outputs").returncode == 0
    assert runs(project.counts, "outputs") == 1
    made.unlink()
    assert project.make("outputs").returncode == 0
    assert runs(project.counts, "outputs") == 2
    assert made.read_text() == "made by outputs\n"


def test_file_names_and_the_command_keep_their_quoting(project: MakeProject) -> None:
    result = project.make("quoting")
    assert result.returncode == 0, result.stdout
    assert "quoting: checked two  spaces $HOME a,b in project" in result.stdout
    project.edit("it's.py")
    assert project.make("quoting").returncode == 0
    assert runs(project.counts, "quoting") == 2


def test_jobstamp_flags_per_target(project: MakeProject) -> None:
    assert project.make("hashes").returncode == 0
    source = project.root / "src" / "a.py"
    later = source.stat().st_mtime + 100
    os.utime(source, (later, later))
    assert project.make("hashes").returncode == 0
    assert runs(project.counts, "hashes") == 1


def test_a_failing_command_fails_make_both_times(project: MakeProject) -> None:
    for _ in range(2):
        result = project.make("failing")
        assert result.returncode != 0
        assert "failing: error: this code is wrong" in result.stdout
    assert runs(project.counts, "failing") == 1


def test_the_readme_example_works(tmp_path: Path, installed: Path) -> None:
    (makefile,) = readme_code_blocks(README, "GNU Make", "make")
    app, env = flake8_example(tmp_path, installed)
    (tmp_path / "Makefile").write_text(makefile)

    def make() -> subprocess.CompletedProcess[str]:
        return run_folded(["make", "lint"], env, cwd=tmp_path)

    for _ in range(2):
        result = make()
        assert result.returncode != 0
        assert "F401 'os' imported but unused" in result.stdout
    app.write_text("import os\n\nprint(os.sep)\n")
    result = make()
    assert result.returncode == 0, result.stdout


def test_the_include_fails_loudly_where_jobstamp_is_not_on_path(project: MakeProject) -> None:
    result = project.make("one", PATH=NO_JOBSTAMP)
    assert result.returncode != 0
    assert "jobstamp not found: install jobstamps or run make JOBSTAMP=" in result.stdout
    assert runs(project.counts, "one") == 0


def test_make_jobstamp_names_the_command_for_the_include_too(project: MakeProject) -> None:
    jobstamp = f"JOBSTAMP={project.bindir / 'jobstamp'}"
    for _ in range(2):
        result = project.make("one", jobstamp, PATH=NO_JOBSTAMP)
        assert result.returncode == 0, result.stdout
        assert "one: checked  in project" in result.stdout
    assert runs(project.counts, "one") == 1


def test_a_dependency_whose_name_starts_with_a_dash(project: MakeProject) -> None:
    result = project.make("dashed")
    assert result.returncode == 0, result.stdout
    assert "--dependencies './-dash.cfg' 'src/a.py'" in result.stdout
    assert project.make("dashed").returncode == 0
    assert runs(project.counts, "dashed") == 1
    with (project.root / "-dash.cfg").open("a") as handle:
        handle.write("changed = 1\n")
    assert project.make("dashed").returncode == 0
    assert runs(project.counts, "dashed") == 2
