"""The GNU Make include, driven by real GNU make against a copy of this tree installed in a venv."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from support import (
    C_OUT_OF_BOUNDS,
    C_SOURCE,
    c_project,
    checker_runs,
    docs_c_example,
    docs_code_blocks,
    flake8_example,
    installed_env,
    installed_output,
    run_folded,
)

if TYPE_CHECKING:
    import subprocess

HERE = Path(__file__).resolve().parent
LINTER = HERE / "cmake" / "lint_project" / "lint.py"
CHECKER = HERE / "cmake" / "perfile_project" / "check.py"

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

.PHONY: $(PARALLEL) outputs quoting hashes failing dashed traced flagged

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

traced:
\t$(call jobstamp_run,,,$(LINT) traced --config lint.cfg,--trace)

flagged: JOBSTAMP_FLAGS += --trace
flagged:
\t$(call jobstamp_run,,,$(LINT) flagged --config lint.cfg)
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


def test_the_docs_example_works(tmp_path: Path, installed: Path) -> None:
    makefile = next(b for b in docs_code_blocks("quickstart/make", "make") if "_run," in b)
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


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")
@pytest.mark.parametrize("target", ["traced", "flagged"])
def test_trace_as_an_option_or_a_flag_reruns_when_an_undeclared_config_changes(
    project: MakeProject, target: str
) -> None:
    # Neither target declares anything; lint.py looks for lint.cfg upwards from the project.
    for _ in range(2):
        result = project.make(target)
        assert result.returncode == 0, result.stdout
        assert f"{target}: no config" in result.stdout
    assert runs(project.counts, target) == 1
    (project.root / "lint.cfg").write_text("strict\n")
    for _ in range(2):
        result = project.make(target)
        assert result.returncode == 0, result.stdout
        assert f"{target}: config strict" in result.stdout
    assert runs(project.counts, target) == 2


def test_trace_given_as_an_option_stays_when_the_flags_are_set_on_the_command_line(
    project: MakeProject,
) -> None:
    assert project.make("traced").returncode == 0
    result = project.make("traced", "JOBSTAMP_FLAGS=--explain")
    assert result.returncode == 0, result.stdout
    assert "jobstamp --explain --trace -- " in result.stdout
    assert "jobstamp: replayed " in result.stdout
    assert runs(project.counts, "traced") == 1


# jobstamp_each: the stand-in checker of tests/cmake/perfile_project over a generated C project.
# Each target logs its checker runs in a file of its own; `other` checks the same files with
# another configuration, so its results are its own.
PER_FILE_MAKEFILE = """\
include $(shell jobstamp --make-include)

CHECK := {python} {checker}
SOURCES := $(sort $(wildcard src/*.c))

.PHONY: check other cppcheck odd traced
check other cppcheck odd traced: export CHECK_LOG = $(CURDIR)/$@.log

check:
\t$(call jobstamp_each,$(SOURCES),check.cfg,$(CHECK) --config check.cfg)

other:
\t$(call jobstamp_each,$(SOURCES),other.cfg,$(CHECK) --config other.cfg)

cppcheck:
\t$(call jobstamp_each,$(SOURCES),include/common.h,$(CHECK) --exec {cppcheck} \\
\t  --quiet --error-exitcode=1 --template=gcc -I include)

odd:
\t$(call jobstamp_each,-dash.c it's.c,-dep.cfg,$(CHECK))

traced:
\t$(call jobstamp_each,$(SOURCES),,$(CHECK) --config check.cfg,--trace)
"""


class PerFileMakeProject:
    """A directory with the Makefile above and 20 C sources, made with ``jobstamp`` on PATH."""

    def __init__(self, root: Path, bindir: Path) -> None:
        self.root = root
        self.bindir = bindir
        self.sources = c_project(root)
        (root / "other.cfg").write_text("other\n")
        makefile = PER_FILE_MAKEFILE.format(
            python=bindir / "python", checker=CHECKER, cppcheck=shutil.which("cppcheck")
        )
        (root / "Makefile").write_text(makefile)

    def make(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run make in the project, stderr folded into stdout."""
        command = ["make", "--no-print-directory", *args]
        return run_folded(command, installed_env(self.bindir), cwd=self.root)

    def runs(self, target: str) -> list[list[str]]:
        """The checker's runs for ``target`` so far, each the list of files it was given."""
        return checker_runs(self.root / f"{target}.log")

    def checked(self, target: str, since: int = 0) -> list[str]:
        """The files the checker was given for ``target`` in its runs from ``since`` on."""
        return sorted(name for run in self.runs(target)[since:] for name in run)

    def edit(self, name: str, text: str = "/* edited */\n") -> None:
        """Append ``text`` to the file ``name``."""
        path = self.root / name
        path.write_text(path.read_text() + text)

    def fails_then_replays(self, target: str, message: str) -> tuple[list[str], int]:
        """Make ``target`` twice with ``-j2``: it checks every file and fails with a line that
        starts with ``message``, then checks none and fails with the same lines. Returns those
        lines and the number of checker runs."""
        first = self.make("-j2", target)
        assert first.returncode != 0, first.stdout
        lines = checker_messages(first)
        assert any(line.startswith(message) for line in lines), first.stdout
        assert sorted(set(self.checked(target))) == self.sources  # some maybe more than once
        runs = len(self.runs(target))

        second = self.make("-j2", target)
        assert second.returncode != 0, second.stdout
        assert len(self.runs(target)) == runs
        assert checker_messages(second) == lines
        return lines, runs


@pytest.fixture
def perfile(tmp_path: Path, installed: Path) -> PerFileMakeProject:
    return PerFileMakeProject(tmp_path / "project", installed)


def checker_messages(result: subprocess.CompletedProcess[str]) -> list[str]:
    """The lines of make's output that check.py or cppcheck wrote about a source file."""
    return [line for line in result.stdout.splitlines() if line.startswith(("src/", "./", "it"))]


def test_jobstamp_each_checks_in_batches_then_replays_under_parallel_make(
    perfile: PerFileMakeProject,
) -> None:
    notes = {
        word: [f"{name}:1:1: note: {word} checked" for name in perfile.sources]
        for word in ("strict", "other")
    }
    for _ in range(2):
        result = perfile.make("-j4", "check", "other")
        assert result.returncode == 0, result.stdout
        for target, word in (("check", "strict"), ("other", "other")):
            runs = perfile.runs(target)
            assert 1 <= len(runs) <= (os.cpu_count() or 1), runs
            assert perfile.checked(target) == perfile.sources
            lines = [line for line in checker_messages(result) if f" {word} " in line]
            assert lines == notes[word]


def test_jobstamp_each_replays_a_failure_until_fixed_and_checks_only_edited_files(
    perfile: PerFileMakeProject,
) -> None:
    perfile.edit("src/f11.c", "/* FAIL_HERE */\n")
    _, runs = perfile.fails_then_replays("check", "src/f11.c:8:1: error: marker found")

    # Files that shared the failing run may be checked again with it, but do not keep its status.
    (perfile.root / "src" / "f11.c").write_text(C_SOURCE.format(number=11))
    fixed = perfile.make("-j2", "check")
    assert fixed.returncode == 0, fixed.stdout
    assert "src/f11.c" in perfile.checked("check", since=runs)
    runs = len(perfile.runs("check"))
    assert perfile.make("-j2", "check").returncode == 0
    assert len(perfile.runs("check")) == runs

    perfile.edit("src/f04.c")
    assert perfile.make("-j2", "check").returncode == 0
    assert perfile.runs("check")[runs:] == [["src/f04.c"]]

    perfile.edit("check.cfg", "more\n")
    config = perfile.make("-j2", "check")
    assert config.returncode == 0, config.stdout
    assert perfile.checked("check", since=runs + 1) == perfile.sources
    assert len(perfile.runs("check")) - (runs + 1) <= (os.cpu_count() or 1)


def test_jobstamp_each_quotes_names_and_passes_leading_dashes_as_dot_slash(
    perfile: PerFileMakeProject,
) -> None:
    for name in ("-dash.c", "it's.c", "-dep.cfg"):
        (perfile.root / name).write_text("int x;\n")
    for _ in range(2):
        result = perfile.make("odd")
        assert result.returncode == 0, result.stdout
        assert checker_messages(result) == [
            "./-dash.c:1:1: note: plain checked",
            "it's.c:1:1: note: plain checked",
        ]
    assert perfile.checked("odd") == ["./-dash.c", "it's.c"]  # once each, by the first make
    perfile.edit("-dep.cfg")  # a dependency, passed as ./-dep.cfg
    assert perfile.make("odd").returncode == 0
    assert perfile.checked("odd") == ["./-dash.c", "./-dash.c", "it's.c", "it's.c"]


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")
def test_jobstamp_each_traced_checks_all_again_when_an_undeclared_config_changes(
    perfile: PerFileMakeProject,
) -> None:
    for _ in range(2):
        result = perfile.make("-j2", "traced")
        assert result.returncode == 0, result.stdout
        assert perfile.checked("traced") == perfile.sources  # once each, by the first make
    runs = len(perfile.runs("traced"))
    perfile.edit("src/f04.c")
    assert perfile.make("-j2", "traced").returncode == 0
    assert perfile.runs("traced")[runs:] == [["src/f04.c"]]
    perfile.edit("check.cfg", "more\n")  # declared nowhere: read by every batch
    result = perfile.make("-j2", "traced")
    assert result.returncode == 0, result.stdout
    assert perfile.checked("traced", since=runs + 1) == perfile.sources


@pytest.mark.skipif(shutil.which("cppcheck") is None, reason="cppcheck is not installed")
def test_jobstamp_each_with_cppcheck_checks_only_what_changed(
    perfile: PerFileMakeProject,
) -> None:
    perfile.edit("src/f02.c", C_OUT_OF_BOUNDS)
    error = "src/f02.c:12:18: warning: Array 'values[2]' accessed at index 2"
    lines, runs = perfile.fails_then_replays("cppcheck", error)

    perfile.edit("src/f09.c")
    third = perfile.make("-j2", "cppcheck")
    assert third.returncode != 0, third.stdout
    assert perfile.runs("cppcheck")[runs:] == [["src/f09.c"]]
    assert checker_messages(third) == lines

    perfile.edit("include/common.h", "#define MORE 2\n")
    fourth = perfile.make("-j2", "cppcheck")
    assert fourth.returncode != 0, fourth.stdout
    assert sorted(set(perfile.checked("cppcheck", since=runs + 1))) == perfile.sources


@pytest.mark.skipif(shutil.which("cppcheck") is None, reason="cppcheck is not installed")
def test_the_docs_per_file_example_works(tmp_path: Path, installed: Path) -> None:
    blocks = docs_code_blocks("quickstart/make", "make")
    first = next(b for b in blocks if "_run," in b).splitlines()
    # The per-file example goes on from the first one's include line.
    include = first[: next(i for i, line in enumerate(first) if line.startswith("include")) + 1]
    per_file = next(b for b in blocks if "jobstamp_each" in b)
    (tmp_path / "Makefile").write_text("\n".join([*include, "", per_file]))
    app, util = docs_c_example(tmp_path)
    env = installed_env(installed)

    def make(*args: str) -> subprocess.CompletedProcess[str]:
        return run_folded(["make", "cppcheck", *args], env, cwd=tmp_path)

    finding = "src/app.c:6:18: warning: Array 'values[2]' accessed at index 2"
    for _ in range(2):
        result = make()
        assert result.returncode != 0
        assert finding in result.stdout
    util.write_text(util.read_text() + "/* edited */\n")
    explained = make("JOBSTAMP_FLAGS=--explain")
    assert explained.returncode != 0
    assert "jobstamp: 2 files: 1 replayed, 1 ran in 1 run" in explained.stdout
    app.write_text(app.read_text().replace("values[2]", "values[1]"))
    result = make()
    assert result.returncode == 0, result.stdout
