"""The documentation site and the manual page: they build, they are current, their examples run.

The reference pages are generated from the code (the option table, the CMake and Make files,
the hooks file) by ``docs/ext/jobstamps_docs.py``; these tests hold the rest to the code.
"""

from __future__ import annotations

import importlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from support import DOCS, docs_code_blocks, docs_examples, installed_env

if TYPE_CHECKING:
    from types import ModuleType

REPO = DOCS.parent
MAN_PAGE = DOCS / "man" / "jobstamp.1"
REGENERATE = "python -m sphinx -E -b man -d /tmp/jobstamps-doctrees docs docs/man"

#: Which test runs each page's examples, by language (a "text" example is a transcript).
EXAMPLES_RUN_BY = {
    ("quickstart/index", "shell"): "test_docs.py",
    ("quickstart/command-line", "shell"): "test_docs.py",
    ("quickstart/per-file", "shell"): "test_docs.py",
    ("howto/trace", "shell"): "test_docs.py",
    ("quickstart/pre-commit", "yaml"): "test_precommit.py",
    ("quickstart/cmake", "cmake"): "test_cmake.py",
    ("quickstart/make", "make"): "test_make.py",
    ("quickstart/python-api", "python"): "test_jobstamp.py",
    ("quickstart/ci", "yaml"): "test_storage_layered.py",
    ("howto/ci-cache", "yaml"): "test_storage_layered.py",
    ("howto/team-cache", "nginx"): "test_storage_layered.py",  # contrib/nginx-jobstamps.conf
}


def pages() -> list[str]:
    """Every page of the site, as ``section/name`` without ``.rst``."""
    return sorted(
        str(path.relative_to(DOCS).with_suffix(""))
        for path in DOCS.rglob("*.rst")
        if "_build" not in path.parts and path.parent.name != "man"
    )


def sphinx(builder: str, out: Path) -> subprocess.CompletedProcess[str]:
    """Build the site with ``builder`` into ``out``, warnings as errors."""
    command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", builder]
    command += ["-d", str(out / ".doctrees"), str(DOCS), str(out)]
    return subprocess.run(command, capture_output=True, text=True, check=False)


def without_comments(page: str) -> list[str]:
    """The lines of a manual page but its comments, which name the docutils version."""
    return [line for line in page.splitlines() if not line.startswith('.\\"')]


def man_options(page: str) -> list[str]:
    """The options the OPTIONS section of a manual page describes, in order."""
    section = page[page.index(".SH OPTIONS") : page.index(".SH", page.index(".SH OPTIONS") + 1)]
    terms = re.findall(r"^\.TP\n\.B (.*)$", section, re.MULTILINE)
    plain = [re.sub(r"\\f[BIP]", "", term).replace("\\-", "-") for term in terms]
    return [option for term in plain for option in re.findall(r"(?<!\S)--?\w[\w-]*", term)]


def help_options() -> list[tuple[str, str]]:
    """The options ``jobstamp --help`` lists, in order: short form (or "") and long form."""
    text = subprocess.run(
        [sys.executable, "-m", "jobstamps", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    listed = text[text.index("options:") : text.index("examples:")]
    found = re.finditer(r"^  (?:(-\w), )?(--[\w-]+)", listed, re.MULTILINE)
    return [(match.group(1) or "", match.group(2)) for match in found]


# -- The build ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_site_builds_without_warnings(tmp_path: Path) -> None:
    built = sphinx("html", tmp_path / "html")
    assert built.returncode == 0, built.stderr
    assert built.stderr == ""
    for page in pages():
        assert (tmp_path / "html" / f"{page}.html").is_file(), page
    reference = (tmp_path / "html" / "reference" / "cmake.html").read_text()
    assert "jobstamps_add_command()" in reference


@pytest.mark.slow
def test_the_committed_man_page_is_what_the_docs_build(tmp_path: Path) -> None:
    built = sphinx("man", tmp_path / "man")
    assert built.returncode == 0, built.stderr
    fresh = (tmp_path / "man" / "jobstamp.1").read_text()
    committed = MAN_PAGE.read_text()
    assert without_comments(committed) == without_comments(fresh), (
        f"docs/man/jobstamp.1 is out of date: run {REGENERATE}"
    )


def test_the_man_page_is_dated_by_the_changelog_not_the_day_it_was_built() -> None:
    from jobstamps import __version__

    changelog = (DOCS / "changelog.rst").read_text()
    [date] = re.findall(rf"^{re.escape(__version__)} \((\S+)\)$", changelog, re.MULTILINE)
    assert f'.TH "JOBSTAMP" "1" "{date}"' in MAN_PAGE.read_text()


# -- Reference against the code ------------------------------------------------------------------


@pytest.fixture
def extension(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The Sphinx extension that generates the reference pages."""
    monkeypatch.syspath_prepend(str(DOCS / "ext"))
    return importlib.import_module("jobstamps_docs")


def test_the_cli_reference_lists_every_option_of_help_and_no_other() -> None:
    listed = help_options()
    assert len(listed) > 15
    expected = [spelling for short, long in listed for spelling in (short, long) if spelling]
    assert man_options(MAN_PAGE.read_text()) == expected


def test_every_environment_variable_the_code_reads_is_documented_and_no_other() -> None:
    code = "\n".join(p.read_text() for p in (REPO / "jobstamps").rglob("*.py"))
    read = set(re.findall(r"\bJOBSTAMPS_[A-Z_]*[A-Z]\b", code))
    reference = (DOCS / "reference" / "environment.inc").read_text()
    documented = set(re.findall(r"^``(JOBSTAMPS_\w+)``$", reference, re.MULTILINE))
    assert read == documented
    man = MAN_PAGE.read_text().replace("\\_", "_")
    assert all(name in man for name in documented)


def test_the_make_reference_has_every_function_and_variable(extension: ModuleType) -> None:
    make_rst = extension.make_rst
    include = (REPO / "make" / "jobstamps.mk").read_text()
    reference = "\n".join(make_rst(include))
    public = re.findall(r"^([A-Za-z]\w*) [?:]?=", include, re.MULTILINE)
    assert {"jobstamp_run", "jobstamp_each", "JOBSTAMP", "JOBSTAMP_FLAGS"} <= set(public)
    for name in public:
        spelled = f"$(call {name}," if name.islower() else f"``{name}``"
        assert spelled in reference, name


def test_the_cmake_reference_has_every_keyword() -> None:
    wrap = (REPO / "cmake" / "JobstampsWrap.cmake").read_text()
    lists = re.findall(r"^  set\((?:flags|one_value|multi_value) ([A-Z_ ]+)\)$", wrap, re.MULTILINE)
    keywords = [word for words in lists for word in words.split()]
    assert "PER_FILE" in keywords
    block = wrap[: wrap.index("#]=")]
    for keyword in keywords:
        assert re.search(rf"^  ``{keyword}\b", block, re.MULTILINE), keyword


def test_the_hooks_reference_lists_every_hook(extension: ModuleType) -> None:
    hook_rows = extension.hook_rows
    text = (REPO / ".pre-commit-hooks.yaml").read_text()
    rows = hook_rows(text)
    assert [row[0] for row in rows] == [
        f"``{i}``" for i in re.findall(r"^- id: (\S+)", text, re.MULTILINE)
    ]
    flake8 = next(row for row in rows if row[0] == "``jobstamp-flake8``")
    assert flake8[1:3] == ("``flake8``", "``setup.cfg tox.ini .flake8``")


# -- Examples -------------------------------------------------------------------------------------


def test_every_code_example_is_run_by_a_test() -> None:
    tests = Path(__file__).resolve().parent
    found = {
        (page, language)
        for page in pages()
        for language, _ in docs_examples(page)
        if language != "text"
    }
    assert found == set(EXAMPLES_RUN_BY)
    for (page, _), test_file in EXAMPLES_RUN_BY.items():
        assert f'"{page}"' in (tests / test_file).read_text(), (page, test_file)


def test_the_readme_examples_are_the_docs_examples() -> None:
    readme = (REPO / "README.rst").read_text()
    examples = re.findall(r"\.\. code-block:: (\w+)\n\n((?:   .*\n|\n)+)", readme)
    assert len(examples) >= 6
    docs = [code for page in pages() for _, code in docs_examples(page)]
    for language, body in examples:
        code = "\n".join(line[3:] for line in body.splitlines()).strip("\n") + "\n"
        assert any(code in example for example in docs), (language, code)


@pytest.fixture
def flake8_project(tmp_path: Path, installed: Path) -> tuple[Path, dict[str, str]]:
    """A project as the shell examples expect it, and an environment with jobstamp and flake8."""
    (tmp_path / "src").mkdir()
    for name in ("a.py", "src/a.py"):
        (tmp_path / name).write_text("import os\n")
    (tmp_path / "setup.cfg").write_text("[metadata]\nname = example\n")
    (tmp_path / ".flake8").write_text("[flake8]\n")
    env = installed_env(installed)
    assert shutil.which("flake8", path=env["PATH"]), "the examples need flake8 on PATH"
    return tmp_path, env


def run_shell(command: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run a shell example's command line as a user would type it, capturing both streams."""
    return subprocess.run(
        ["sh", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )


def flake8_runs_then_replays(command: str, cwd: Path, env: dict[str, str]) -> None:
    """Run an example's flake8 command twice: it reports F401, then replays that report."""
    env = {**env, "JOBSTAMPS_DEBUG": "1"}
    first, second = (run_shell(command, cwd, env) for _ in range(2))
    assert first.returncode == second.returncode == 1, first.stderr
    assert "F401 'os' imported but unused" in first.stdout
    assert second.stdout == first.stdout
    assert "replayed" in second.stderr, second.stderr
    assert "running" not in second.stderr, second.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    "page", ["quickstart/index", "quickstart/command-line", "quickstart/per-file"]
)
def test_the_shell_examples_run_then_replay(
    page: str, flake8_project: tuple[Path, dict[str, str]]
) -> None:
    project, env = flake8_project
    (example,) = docs_code_blocks(page, "shell")
    # Setting up an environment is the installed fixture's job: it is already on PATH.
    setup = ("python3 -m venv", "pip install")
    lines = [line for line in example.splitlines() if not line.startswith(setup)]
    assert len(example.splitlines()) - len(lines) == (2 if page == "quickstart/index" else 0)
    script = "\n".join(line for line in lines if "jobstamp" not in line)
    command = next(line for line in lines if "jobstamp" in line)
    subprocess.run(["sh", "-c", script], cwd=project, env=env, check=True)
    flake8_runs_then_replays(command, project, env)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("strace") is None, reason="--trace needs strace")
def test_the_trace_examples_rerun_when_a_configuration_nobody_declared_changes(
    flake8_project: tuple[Path, dict[str, str]],
) -> None:
    project, env = flake8_project
    examples = docs_code_blocks("howto/trace", "shell")
    assert len(examples) == 3
    for example in examples:
        (command,) = example.splitlines()
        assert "--trace" in command
        assert "--dependencies" not in command
        (project / ".flake8").write_text("[flake8]\n")
        flake8_runs_then_replays(command, project, env)
        (project / ".flake8").write_text("[flake8]\nextend-ignore = F401\n")
        third = run_shell(command, project, env)
        assert (third.returncode, third.stdout) == (0, ""), third.stderr


# -- The installed manual page ----------------------------------------------------------------


@pytest.mark.slow
def test_the_man_page_is_installed_beside_the_environment_bin(installed: Path) -> None:
    page = installed.parent / "share" / "man" / "man1" / "jobstamp.1"
    assert page.read_bytes() == MAN_PAGE.read_bytes()


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("man") is None, reason="man (man-db) is not installed")
def test_man_finds_the_page_of_the_environment_on_path(installed: Path, tmp_path: Path) -> None:
    env = {
        "PATH": os.pathsep.join([str(installed), "/usr/bin", "/bin"]),
        "HOME": str(tmp_path),
        "MANPAGER": "cat",
        "PAGER": "cat",
        "MANWIDTH": "100",
        "LANG": "C.UTF-8",
    }
    where = subprocess.run(
        ["man", "-w", "jobstamp"], env=env, capture_output=True, text=True, check=False
    )
    assert where.returncode == 0, where.stderr
    expected = installed.parent / "share" / "man" / "man1" / "jobstamp.1"
    assert Path(where.stdout.strip()).resolve() == expected.resolve()
    shown = subprocess.run(
        ["man", "-M", str(installed.parent / "share" / "man"), "jobstamp"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    assert "jobstamp - run a command, or replay its stored output" in shown.stdout
    assert "--dependencies PATH..." in shown.stdout


def test_ci_runs_the_test_command_of_the_readme_and_the_contributing_guide() -> None:
    def test_command(text: str) -> str:
        (command,) = [line.strip() for line in text.splitlines() if line.strip().endswith("-m nox")]
        return command

    command = test_command((REPO / "README.rst").read_text())
    assert command.startswith("python3 -m venv .venv && ")
    assert test_command((REPO / "CONTRIBUTING.rst").read_text()) == command
    assert test_command((REPO / ".ci" / "run").read_text()) == command
