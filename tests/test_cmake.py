"""The CMake package, driven by real cmake with the Unix Makefiles and Ninja generators.

The projects under tests/cmake/ consume the package from a copy of this tree installed into a
fresh virtual environment (the ``installed`` fixture), as a user's ``pip install`` would.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from jobstamps._version import __version__
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
PROJECTS = HERE / "cmake"
GENERATORS = ["Unix Makefiles", "Ninja"]

pytestmark = pytest.mark.slow


def configure(
    source: Path, build: Path, generator: str, env: dict[str, str], *defines: str
) -> subprocess.CompletedProcess[str]:
    """Configure ``source`` into ``build``."""
    return run_folded(
        ["cmake", "-S", str(source), "-B", str(build), "-G", generator, *defines], env
    )


def runs(counts: Path, name: str) -> int:
    """How often lint.py ran as ``name`` with ``LINT_COUNTS=counts``."""
    path = counts / name
    return len(path.read_text().splitlines()) if path.exists() else 0


def reported(result: subprocess.CompletedProcess[str], name: str) -> str:
    """The value the probe project printed as ``-- name=value``."""
    prefix = f"-- {name}="
    values = [line[len(prefix) :] for line in result.stdout.splitlines() if line.startswith(prefix)]
    assert len(values) == 1, result.stdout
    return values[0]


@dataclass
class Project:
    """A copy of tests/cmake/lint_project configured with one generator."""

    source: Path
    build: Path
    generator: str
    bindir: Path

    def configure(self, build: Path) -> subprocess.CompletedProcess[str]:
        """Configure the project into ``build``, with the linter run by the installed Python."""
        python = f"-DLINT_PYTHON={self.bindir / 'python'}"
        return configure(self.source, build, self.generator, installed_env(self.bindir), python)

    def build_targets(
        self, *targets: str, counts: Path, jobs: int = 1, build: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Build ``targets`` (the default target if none); lint.py counts its runs in ``counts``."""
        command = ["cmake", "--build", str(build or self.build), "--parallel", str(jobs)]
        if targets:
            command += ["--target", *targets]
        return run_folded(command, installed_env(self.bindir, LINT_COUNTS=str(counts)))


@pytest.fixture(scope="module", params=GENERATORS)
def project(
    request: pytest.FixtureRequest, installed: Path, tmp_path_factory: pytest.TempPathFactory
) -> Project:
    """The lint project, copied and configured once per generator for this module's tests."""
    root = tmp_path_factory.mktemp("lint_project")
    shutil.copytree(PROJECTS / "lint_project", root / "source")
    generator: str = request.param
    configured = Project(root / "source", root / "build", generator, installed)
    result = configured.configure(configured.build)
    assert result.returncode == 0, result.stdout
    return configured


REPLAY_OUT = "replay: checked --strict one;argument in source"
REPLAY_WARNING = "replay: warning: something to look at"


def test_first_build_runs_the_command_and_the_second_replays_it(
    project: Project, tmp_path: Path
) -> None:
    first = project.build_targets("replay", counts=tmp_path)
    assert first.returncode == 0, first.stdout
    assert runs(tmp_path, "replay") == 1
    assert REPLAY_OUT in first.stdout
    assert REPLAY_WARNING in first.stdout
    assert "Linting; with care" in first.stdout

    second = project.build_targets("replay", counts=tmp_path)
    assert second.returncode == 0, second.stdout
    assert runs(tmp_path, "replay") == 1
    assert REPLAY_OUT in second.stdout
    assert REPLAY_WARNING in second.stdout


def test_editing_a_dependency_runs_the_command_again(project: Project, tmp_path: Path) -> None:
    assert project.build_targets("replay", counts=tmp_path).returncode == 0
    assert runs(tmp_path, "replay") == 1
    # src/a.py is a plain relative path; src/c.py the second item of a generator expression.
    for count, name in enumerate(["a.py", "c.py"], start=2):
        source = project.source / "src" / name
        source.write_text(source.read_text() + f"# edit {count}\n")
        result = project.build_targets("replay", counts=tmp_path)
        assert result.returncode == 0, result.stdout
        assert runs(tmp_path, "replay") == count
    assert project.build_targets("replay", counts=tmp_path).returncode == 0
    assert runs(tmp_path, "replay") == 3


def test_with_use_hashes_a_touch_alone_does_not_run_the_command(
    project: Project, tmp_path: Path
) -> None:
    assert project.build_targets("hashes", counts=tmp_path).returncode == 0
    source = project.source / "src" / "h.py"
    later = source.stat().st_mtime + 100
    os.utime(source, (later, later))
    assert project.build_targets("hashes", counts=tmp_path).returncode == 0
    assert runs(tmp_path, "hashes") == 1

    source.write_text(source.read_text() + "# changed\n")
    assert project.build_targets("hashes", counts=tmp_path).returncode == 0
    assert runs(tmp_path, "hashes") == 2


def test_a_failing_command_fails_the_build_both_times_with_the_same_message(
    project: Project, tmp_path: Path
) -> None:
    messages = []
    for _ in range(2):
        result = project.build_targets("failing", counts=tmp_path)
        assert result.returncode != 0, result.stdout
        messages.append(
            [line for line in result.stdout.splitlines() if line.startswith("failing:")]
        )
    assert "failing: error: this code is wrong" in messages[0]
    assert messages[0] == messages[1]
    assert runs(tmp_path, "failing") == 1


def test_a_fresh_build_directory_finds_the_stored_result(project: Project, tmp_path: Path) -> None:
    assert project.build_targets("replay", counts=tmp_path).returncode == 0
    fresh = tmp_path / "fresh-build"
    assert project.configure(fresh).returncode == 0
    result = project.build_targets("replay", counts=tmp_path, build=fresh)
    assert result.returncode == 0, result.stdout
    assert runs(tmp_path, "replay") == 1
    assert REPLAY_OUT in result.stdout


def test_a_missing_or_changed_output_runs_the_command_again(
    project: Project, tmp_path: Path
) -> None:
    output = project.source / "generated" / "out.txt"
    output.unlink(missing_ok=True)
    assert project.build_targets("outputs", counts=tmp_path).returncode == 0
    assert output.read_text() == "made by outputs\n"
    assert project.build_targets("outputs", counts=tmp_path).returncode == 0
    assert runs(tmp_path, "outputs") == 1

    output.unlink()
    assert project.build_targets("outputs", counts=tmp_path).returncode == 0
    assert runs(tmp_path, "outputs") == 2
    assert output.read_text() == "made by outputs\n"

    output.write_text("edited by hand\n")
    assert project.build_targets("outputs", counts=tmp_path).returncode == 0
    assert runs(tmp_path, "outputs") == 3
    assert output.read_text() == "made by outputs\n"


def test_results_go_to_the_stamp_directory_when_one_is_given(
    project: Project, tmp_path: Path, isolated_cache: Path
) -> None:
    stamps = project.source / "stamps"  # STAMP_DIRECTORY stamps, relative to the source directory
    shutil.rmtree(stamps, ignore_errors=True)
    assert project.build_targets("stamped", counts=tmp_path).returncode == 0
    assert any(stamps.iterdir())
    assert not isolated_cache.exists() or not any(isolated_cache.iterdir())
    assert project.build_targets("stamped", counts=tmp_path).returncode == 0
    assert runs(tmp_path, "stamped") == 1

    shutil.rmtree(stamps)
    assert project.build_targets("stamped", counts=tmp_path).returncode == 0
    assert runs(tmp_path, "stamped") == 2


def test_results_go_to_the_per_user_cache_by_default(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JOBSTAMPS_CACHE_DIR")
    user_cache = Path(os.environ["XDG_CACHE_HOME"]) / "jobstamps"
    assert project.build_targets("replay", counts=tmp_path).returncode == 0
    assert any(user_cache.iterdir())
    assert project.build_targets("replay", counts=tmp_path).returncode == 0
    assert runs(tmp_path, "replay") == 1


def test_the_command_runs_in_the_working_directory(project: Project, tmp_path: Path) -> None:
    result = project.build_targets("elsewhere", counts=tmp_path)
    assert result.returncode == 0, result.stdout
    assert "elsewhere: checked  in src" in result.stdout


def test_all_adds_the_target_to_the_default_build(project: Project, tmp_path: Path) -> None:
    result = project.build_targets(counts=tmp_path)
    assert result.returncode == 0, result.stdout
    assert runs(tmp_path, "default") == 1
    assert runs(tmp_path, "replay") == 0


def test_a_parallel_build_of_several_targets_runs_each_once(
    project: Project, tmp_path: Path
) -> None:
    targets = [f"parallel{n}" for n in range(1, 5)]
    for _ in range(2):
        result = project.build_targets(*targets, counts=tmp_path, jobs=4)
        assert result.returncode == 0, result.stdout
        for target in targets:
            assert runs(tmp_path, target) == 1
            assert f"{target}: checked  in source" in result.stdout
            assert f"{target}: warning: something to look at" in result.stdout


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")
def test_trace_reruns_when_an_undeclared_file_the_command_read_changes(
    project: Project, tmp_path: Path
) -> None:
    # traced and traced_ignoring have no DEPENDS; lint.py, run in src, looks for lint.cfg
    # there and in every parent. traced_ignoring leaves lint.cfg out of its trace.
    nearest, parent = project.source / "src" / "lint.cfg", project.source / "lint.cfg"

    def build(*targets: str) -> str:
        result = project.build_targets(*targets, counts=tmp_path)
        assert result.returncode == 0, result.stdout
        return result.stdout

    try:
        for _ in range(2):
            built = build("traced", "traced_ignoring")
            assert "traced: no config" in built
            assert "traced_ignoring: no config" in built
        assert (runs(tmp_path, "traced"), runs(tmp_path, "traced_ignoring")) == (1, 1)
        nearest.write_text("strict\n")  # created where lint.py looked for it
        built = build("traced", "traced_ignoring")
        assert "traced: config strict" in built
        assert "traced_ignoring: no config" in built  # replayed: what it was told to ignore
        assert (runs(tmp_path, "traced"), runs(tmp_path, "traced_ignoring")) == (2, 1)
        nearest.unlink()
        parent.write_text("lenient\n")  # found by searching upwards
        assert "traced: config lenient" in build("traced")
        assert "traced: config lenient" in build("traced")
        assert runs(tmp_path, "traced") == 3
    finally:
        nearest.unlink(missing_ok=True)
        parent.unlink(missing_ok=True)


# Configure-time behaviour: the probe project in tests/cmake/find_package.


def probe(
    tmp_path: Path, bindir: Path | None, *defines: str, generator: str = "Ninja"
) -> subprocess.CompletedProcess[str]:
    """Configure the probe project with ``bindir`` (if any) first on PATH."""
    build = tmp_path / f"probe-{len(list(tmp_path.glob('probe-*')))}"
    return configure(PROJECTS / "find_package", build, generator, installed_env(bindir), *defines)


@pytest.mark.parametrize("generator", GENERATORS)
def test_found_with_no_hints_when_bin_is_on_path(
    installed: Path, tmp_path: Path, generator: str
) -> None:
    result = probe(tmp_path, installed, generator=generator)
    assert result.returncode == 0, result.stdout
    assert (
        Path(reported(result, "Jobstamps_DIR"))
        == installed.parent / "share" / "cmake" / "Jobstamps"
    )
    assert Path(reported(result, "Jobstamps::jobstamp")) == installed / "jobstamp"
    assert reported(result, "Jobstamps_VERSION") == __version__


# What scikit-build-core passes to a project that has jobstamps in build-system.requires: the
# cmake.root entry point as Jobstamps_ROOT, and site-packages in CMAKE_PREFIX_PATH.
ENTRY_POINT_ROOT = """\
from importlib.metadata import entry_points
from importlib.resources import files
(point,) = entry_points(group="cmake.root", name="Jobstamps")
print(files(point.load()))
"""


@pytest.mark.parametrize("hint", ["Jobstamps_DIR", "Jobstamps_ROOT", "CMAKE_PREFIX_PATH"])
def test_found_with_a_hint_when_bin_is_not_on_path(
    installed: Path, tmp_path: Path, hint: str
) -> None:
    cmake_dir = Path(installed_output(installed, str(installed / "jobstamp"), "--cmake-dir"))
    assert (cmake_dir / "JobstampsConfig.cmake").is_file()
    value = {
        "Jobstamps_DIR": cmake_dir,
        "Jobstamps_ROOT": Path(
            installed_output(installed, str(installed / "python"), "-c", ENTRY_POINT_ROOT)
        ),
        "CMAKE_PREFIX_PATH": cmake_dir.parent.parent,
    }[hint]
    # The hint alone finds the package, and the package finds the jobstamp installed with it.
    result = probe(tmp_path, None, f"-D{hint}={value}")
    assert result.returncode == 0, result.stdout
    assert Path(reported(result, "Jobstamps_DIR")) == cmake_dir
    assert Path(reported(result, "Jobstamps::jobstamp")) == installed / "jobstamp"


@pytest.mark.parametrize(
    ("requested", "accepted"), [("1", True), ("1.0", True), ("0.9", False), ("99", False)]
)
def test_find_package_checks_the_version(
    installed: Path, tmp_path: Path, requested: str, accepted: bool
) -> None:
    result = probe(tmp_path, installed, f"-DREQUESTED_VERSION={requested}")
    if accepted:
        assert result.returncode == 0, result.stdout
        assert reported(result, "Jobstamps_VERSION") == __version__
    else:
        assert result.returncode != 0
        assert f'compatible with requested version "{requested}"' in result.stdout
        assert f"version: {__version__}" in result.stdout


def test_jobstamps_executable_overrides_the_executable(installed: Path, tmp_path: Path) -> None:
    other = tmp_path / "other" / "jobstamp"
    other.parent.mkdir()
    shutil.copy2(installed / "jobstamp", other)
    result = probe(tmp_path, installed, f"-DJOBSTAMPS_EXECUTABLE={other}")
    assert result.returncode == 0, result.stdout
    assert Path(reported(result, "Jobstamps::jobstamp")) == other


def test_a_missing_jobstamps_executable_fails_at_configure_time(
    installed: Path, tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere" / "jobstamp"
    result = probe(tmp_path, installed, f"-DJOBSTAMPS_EXECUTABLE={missing}")
    assert result.returncode != 0
    assert f"JOBSTAMPS_EXECUTABLE is {missing}, which does not exist." in " ".join(
        result.stdout.split()
    )


def test_a_package_without_its_executable_fails_at_configure_time(
    installed: Path, tmp_path: Path
) -> None:
    prefix = tmp_path / "prefix"
    package = prefix / "share" / "cmake" / "Jobstamps"
    shutil.copytree(installed.parent / "share" / "cmake" / "Jobstamps", package)
    result = probe(tmp_path, None, f"-DJobstamps_DIR={package}")
    assert result.returncode != 0
    message = " ".join(result.stdout.split())
    assert f"No jobstamp executable in {prefix / 'bin'} and {prefix / 'Scripts'}" in message
    assert "set JOBSTAMPS_EXECUTABLE to the jobstamp executable" in message


@pytest.mark.parametrize(
    ("call", "message"),
    [
        ("", "jobstamps_add_command: the first argument must be the target name."),
        ("COMMAND;echo", "jobstamps_add_command: the first argument must be the target name."),
        ("lint", "jobstamps_add_command(lint): COMMAND is missing or empty."),
        ("lint;COMMAND", "jobstamps_add_command(lint): COMMAND is missing or empty."),
        (
            "lint;SOURCES;a.c;COMMAND;echo",
            "jobstamps_add_command(lint): SOURCES is for checking files one by one. Add PER_FILE",
        ),
        (
            "lint;JOBS;2;COMMAND;echo",
            "jobstamps_add_command(lint): JOBS is for checking files one by one.",
        ),
        (
            "lint;ONE_FILE;COMMAND;echo",
            'jobstamps_add_command(lint): unexpected argument(s) "ONE_FILE".',
        ),
        (
            "lint;PER_FILE;COMMAND;echo",
            "jobstamps_add_command(lint): PER_FILE needs SOURCES <file>..., the files to check",
        ),
        (
            "lint;PER_FILE;SOURCES;COMMAND;echo",
            "jobstamps_add_command(lint): PER_FILE needs SOURCES <file>..., the files to check",
        ),
        (
            "lint;PER_FILE;SOURCES;a.c;OUTPUTS;out.txt;COMMAND;echo",
            "jobstamps_add_command(lint): OUTPUTS cannot be used with PER_FILE",
        ),
        (
            "lint;PER_FILE;SOURCES;a.c;JOBS;0;COMMAND;echo",
            'jobstamps_add_command(lint): JOBS must be a whole number above 0, not "0".',
        ),
        (
            "lint;TRACE_IGNORE;*.log;COMMAND;echo",
            "jobstamps_add_command(lint): TRACE_IGNORE names paths left out of a trace. Add TRACE",
        ),
        (
            "lint;COMMAND;echo;STAMP_DIRECTORY",
            "jobstamps_add_command(lint): STAMP_DIRECTORY needs a value.",
        ),
        (
            "taken;COMMAND;echo",
            'jobstamps_add_command(taken): a target named "taken" already exists.',
        ),
    ],
)
def test_bad_arguments_fail_with_a_message(
    installed: Path, tmp_path: Path, call: str, message: str
) -> None:
    result = probe(tmp_path, installed, f"-DCALL={call}")
    assert result.returncode != 0
    assert message in " ".join(result.stdout.split())


def test_calling_it_before_find_package_says_what_to_do(installed: Path, tmp_path: Path) -> None:
    wrap = installed.parent / "share" / "cmake" / "Jobstamps" / "JobstampsWrap.cmake"
    result = probe(tmp_path, installed, f"-DWRAP_ONLY={wrap}", "-DCALL=lint;COMMAND;echo")
    assert result.returncode != 0
    expected = "Call find_package(Jobstamps CONFIG REQUIRED) before this command."
    assert expected in " ".join(result.stdout.split())


@pytest.mark.parametrize("generator", GENERATORS)
def test_the_docs_example_works(installed: Path, tmp_path: Path, generator: str) -> None:
    cmakelists, _ = docs_code_blocks("quickstart/cmake", "cmake")
    source = tmp_path / "example"
    app, env = flake8_example(source, installed)
    (source / "CMakeLists.txt").write_text(cmakelists)
    assert shutil.which("flake8", path=env["PATH"]), "the example needs flake8 on PATH"
    build = tmp_path / "build"
    assert configure(source, build, generator, env).returncode == 0

    unused_import = "F401 'os' imported but unused"
    for _ in range(2):
        result = run_folded(["cmake", "--build", str(build)], env)
        assert result.returncode != 0
        assert unused_import in result.stdout

    app.write_text("import os\n\nprint(os.sep)\n")
    result = run_folded(["cmake", "--build", str(build)], env)
    assert result.returncode == 0, result.stdout
    assert unused_import not in result.stdout


# Per-file targets: tests/cmake/perfile_project over a generated C project, with the stand-in
# checker (check.py) and with real cppcheck.

CHECKER = PROJECTS / "perfile_project" / "check.py"


@dataclass
class PerFileProject:
    """A copy of tests/cmake/perfile_project with 20 C sources, configured with one generator."""

    source: Path
    build: Path
    generator: str
    bindir: Path
    sources: list[str]
    log: Path

    def configure(self, build: Path) -> subprocess.CompletedProcess[str]:
        """Configure the project into ``build``, with the checker run by the installed Python."""
        python = f"-DCHECK_PYTHON={self.bindir / 'python'}"
        return configure(self.source, build, self.generator, installed_env(self.bindir), python)

    def build_target(
        self, target: str, build: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Build ``target``; the checker logs its runs in ``self.log``."""
        command = ["cmake", "--build", str(build or self.build), "--target", target]
        return run_folded(command, installed_env(self.bindir, CHECK_LOG=str(self.log)))

    def runs(self) -> list[list[str]]:
        """The checker's runs so far, each the list of files it was given."""
        return checker_runs(self.log)

    def edit(self, name: str, text: str = "/* edited */\n") -> None:
        """Append ``text`` to the file ``name`` (relative to the source directory)."""
        path = self.source / name
        path.write_text(path.read_text() + text)

    def fails_then_replays(self, target: str, message: str) -> tuple[list[str], int]:
        """Build ``target`` twice: it checks every file and fails with the line ``message``
        (and what continues it), then checks none and fails with the same messages. Returns
        those messages and the number of checker runs."""
        first = self.build_target(target)
        assert first.returncode != 0, first.stdout
        lines = messages(first)
        assert message in lines, first.stdout
        assert sorted({name for run in self.runs() for name in run}) == self.sources
        runs = len(self.runs())

        second = self.build_target(target)
        assert second.returncode != 0, second.stdout
        assert len(self.runs()) == runs
        assert messages(second) == lines
        return lines, runs


@pytest.fixture(params=GENERATORS)
def perfile(request: pytest.FixtureRequest, installed: Path, tmp_path: Path) -> PerFileProject:
    """The per-file project, copied, filled with sources and configured for one test."""
    source = tmp_path / "source"
    shutil.copytree(PROJECTS / "perfile_project", source)
    sources = c_project(source)
    odd = source / "odd"
    odd.mkdir()
    (odd / "-dash name.c").write_text("int odd(void) { return 0; }\n")
    generator: str = request.param
    configured = PerFileProject(
        source, tmp_path / "build", generator, installed, sources, tmp_path / "check.log"
    )
    result = configured.configure(configured.build)
    assert result.returncode == 0, result.stdout
    return configured


def messages(result: subprocess.CompletedProcess[str]) -> list[str]:
    """The checker's messages in a build's output: ``path:line:col: ...`` lines (all paths in
    these projects start with ``src/``, ``./`` or ``/``) and the indented lines that continue
    them."""
    return [line for line in result.stdout.splitlines() if line.startswith(("src/", ".", "/", " "))]


def notes(names: list[str], word: str = "strict") -> list[str]:
    """The note check.py prints for each of ``names``, in order."""
    return [f"{name}:1:1: note: {word} checked" for name in names]


def checks_all_in_batches(
    perfile: PerFileProject, word: str = "strict", target: str = "check"
) -> list[list[str]]:
    """Build ``target``, which must check every source in a batch or two; return its runs."""
    before = len(perfile.runs())
    result = perfile.build_target(target)
    assert result.returncode == 0, result.stdout
    runs = perfile.runs()[before:]
    assert 1 <= len(runs) <= 2, runs  # JOBS 2: a batch or two, not a run per file
    assert sorted(name for run in runs for name in run) == perfile.sources
    assert messages(result) == notes(perfile.sources, word)
    return runs


def replays_all(perfile: PerFileProject, build: Path | None = None, target: str = "check") -> None:
    """Build ``target`` (in ``build``), which must replay every source's note and run nothing."""
    before = perfile.runs()
    result = perfile.build_target(target, build=build)
    assert result.returncode == 0, result.stdout
    assert perfile.runs() == before
    assert messages(result) == notes(perfile.sources)


def test_per_file_first_build_checks_all_in_batches_and_a_no_op_build_none(
    perfile: PerFileProject,
) -> None:
    checks_all_in_batches(perfile)
    replays_all(perfile)


def test_per_file_failure_replays_until_the_file_is_fixed(
    perfile: PerFileProject,
) -> None:
    perfile.edit("src/f07.c", "/* FAIL_HERE */\n")
    error = "src/f07.c:8:1: error: marker found"
    lines, runs = perfile.fails_then_replays("check", error)
    assert lines[lines.index(error) - 1 : lines.index(error) + 2] == [
        *notes(["src/f07.c"]),
        error,
        "    /* FAIL_HERE */",
    ]

    # The clean files that shared the failing run (and printed notes in it) do not keep its
    # failure once the failing file is fixed: they may be checked again, but the build passes.
    (perfile.source / "src" / "f07.c").write_text(C_SOURCE.format(number=7))
    fixed = perfile.build_target("check")
    assert fixed.returncode == 0, fixed.stdout
    assert "src/f07.c" in [name for run in perfile.runs()[runs:] for name in run]
    assert messages(fixed) == notes(perfile.sources)
    runs = len(perfile.runs())
    assert perfile.build_target("check").returncode == 0
    assert len(perfile.runs()) == runs


def test_per_file_editing_one_file_checks_only_it(perfile: PerFileProject) -> None:
    assert perfile.build_target("check").returncode == 0
    before = len(perfile.runs())
    perfile.edit("src/f03.c")
    result = perfile.build_target("check")
    assert result.returncode == 0, result.stdout
    assert perfile.runs()[before:] == [["src/f03.c"]]
    assert messages(result) == notes(perfile.sources)


def test_per_file_an_added_file_is_checked_alone_and_a_removed_one_is_dropped(
    perfile: PerFileProject,
) -> None:
    assert perfile.build_target("check").returncode == 0
    before = len(perfile.runs())
    (perfile.source / "src" / "f20.c").write_text(C_SOURCE.format(number=20))
    (perfile.source / "src" / "f05.c").unlink()  # the glob (CONFIGURE_DEPENDS) sees both
    result = perfile.build_target("check")
    assert result.returncode == 0, result.stdout
    assert perfile.runs()[before:] == [["src/f20.c"]]
    names = [name for name in perfile.sources if name != "src/f05.c"] + ["src/f20.c"]
    # (CMake, configuring again, also prints indented paths: the glob's changes.)
    assert [line for line in messages(result) if line.startswith("src/")] == notes(names)


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")
def test_per_file_trace_checks_all_when_an_undeclared_config_changes(
    perfile: PerFileProject,
) -> None:
    # check_traced declares nothing: check.cfg, which every batch reads, is found by tracing.
    checks_all_in_batches(perfile, target="check_traced")
    replays_all(perfile, target="check_traced")
    before = len(perfile.runs())
    perfile.edit("src/f03.c")
    assert perfile.build_target("check_traced").returncode == 0
    assert perfile.runs()[before:] == [["src/f03.c"]]
    (perfile.source / "check.cfg").write_text("lenient\n")
    checks_all_in_batches(perfile, "lenient", target="check_traced")


def test_per_file_with_use_hashes_a_touched_file_is_not_checked(perfile: PerFileProject) -> None:
    assert perfile.build_target("check_hashed").returncode == 0
    before = len(perfile.runs())
    source = perfile.source / "src" / "f09.c"
    later = source.stat().st_mtime + 100
    os.utime(source, (later, later))
    assert perfile.build_target("check_hashed").returncode == 0
    assert len(perfile.runs()) == before
    perfile.edit("src/f09.c")
    assert perfile.build_target("check_hashed").returncode == 0
    assert perfile.runs()[before:] == [["src/f09.c"]]


def test_per_file_a_changed_dependency_checks_all_in_batches(perfile: PerFileProject) -> None:
    assert perfile.build_target("check").returncode == 0
    (perfile.source / "check.cfg").write_text("lenient\n")
    checks_all_in_batches(perfile, "lenient")


def test_per_file_a_fresh_build_directory_checks_nothing(
    perfile: PerFileProject, tmp_path: Path
) -> None:
    assert perfile.build_target("check").returncode == 0
    fresh = tmp_path / "fresh-build"
    assert perfile.configure(fresh).returncode == 0
    replays_all(perfile, fresh)


def test_per_file_sources_are_passed_relative_to_the_working_directory(
    perfile: PerFileProject,
) -> None:
    # SOURCES src/f00.c "odd/-dash name.c" with WORKING_DIRECTORY odd: the first is outside
    # it, so absolute; the second relative, with ./ so that it cannot pass for an option.
    outside = str(perfile.source / "src" / "f00.c")
    for _ in range(2):
        result = perfile.build_target("check_odd")
        assert result.returncode == 0, result.stdout
        assert messages(result) == notes([outside, "./-dash name.c"], "plain")
    assert sorted(name for run in perfile.runs() for name in run) == ["./-dash name.c", outside]


@pytest.mark.skipif(shutil.which("cppcheck") is None, reason="cppcheck is not installed")
def test_per_file_cppcheck_checks_only_what_changed(perfile: PerFileProject) -> None:
    perfile.edit("src/f05.c", C_OUT_OF_BOUNDS)
    error = (
        "src/f05.c:12:18: warning: Array 'values[2]' accessed at index 2, which is out of bounds."
        " [arrayIndexOutOfBounds]"
    )
    lines, runs = perfile.fails_then_replays("cppcheck", error)
    assert lines[lines.index(error) + 1].strip() == "return values[2];"  # a continuation line

    perfile.edit("include/common.h")  # declared in DEPENDS: every file is checked again
    again = perfile.build_target("cppcheck")
    assert again.returncode != 0, again.stdout
    assert sorted({name for run in perfile.runs()[runs:] for name in run}) == perfile.sources
    assert messages(again) == lines
    runs = len(perfile.runs())

    (perfile.source / "src" / "f05.c").write_text(C_SOURCE.format(number=5))
    fixed = perfile.build_target("cppcheck")
    assert fixed.returncode == 0, fixed.stdout
    assert perfile.runs()[runs:] == [["src/f05.c"]]
    assert messages(fixed) == []


@pytest.mark.skipif(shutil.which("cppcheck") is None, reason="cppcheck is not installed")
@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")
def test_per_file_trace_checks_all_again_when_an_undeclared_header_changes(
    perfile: PerFileProject,
) -> None:
    # cppcheck_traced declares nothing: include/common.h, which cppcheck reads, is traced.
    for _ in range(2):
        result = perfile.build_target("cppcheck_traced")
        assert result.returncode == 0, result.stdout
        assert sorted(name for run in perfile.runs() for name in run) == perfile.sources
    runs = len(perfile.runs())
    perfile.edit("include/common.h", "#define MORE 2\n")
    result = perfile.build_target("cppcheck_traced")
    assert result.returncode == 0, result.stdout
    assert sorted(name for run in perfile.runs()[runs:] for name in run) == perfile.sources


@pytest.mark.skipif(shutil.which("cppcheck") is None, reason="cppcheck is not installed")
@pytest.mark.parametrize("generator", GENERATORS)
def test_the_docs_per_file_example_works(installed: Path, tmp_path: Path, generator: str) -> None:
    _, cmakelists = docs_code_blocks("quickstart/cmake", "cmake")
    source = tmp_path / "example"
    app, util = docs_c_example(source)
    (source / "CMakeLists.txt").write_text(cmakelists)
    env = installed_env(installed)
    build = tmp_path / "build"
    assert configure(source, build, generator, env).returncode == 0

    finding = "src/app.c:6:18: warning: Array 'values[2]' accessed at index 2"
    outputs = []
    for _ in range(2):
        result = run_folded(["cmake", "--build", str(build)], env)
        assert result.returncode != 0
        assert finding in result.stdout
        outputs.append([line for line in result.stdout.splitlines() if "values" in line])
    assert outputs[0] == outputs[1]

    util.write_text(util.read_text() + "/* edited */\n")
    explained = run_folded(["cmake", "--build", str(build)], {**env, "JOBSTAMPS_DEBUG": "1"})
    assert "2 files: 1 replayed, 1 ran in 1 run" in explained.stdout

    app.write_text(app.read_text().replace("values[2]", "values[1]"))
    result = run_folded(["cmake", "--build", str(build)], env)
    assert result.returncode == 0, result.stdout
    assert finding not in result.stdout
