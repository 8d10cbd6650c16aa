"""The pre-commit hooks: the per-file front end, and the hooks driven by the real pre-commit."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from jobstamps import precommit
from jobstamps.engine import Engine
from jobstamps.store import Store
from support import docs_code_blocks, stand_in_linter

REPO = Path(__file__).resolve().parent.parent

# A stand-in linter: records which files it was run on, then judges each by its contents.
LINTER = """\
import os, signal, sys
status = 0
for name in [arg for arg in sys.argv[1:] if not arg.startswith("-")]:
    with open(os.environ["LINT_COUNTER"], "a") as counter:
        counter.write(name + "\\n")
    text = open(name).read()
    if "kill" in text:
        os.kill(os.getpid(), signal.SIGTERM)
    if "bad" in text:
        sys.stdout.write(f"{name}:1: bad\\n")
        sys.stdout.flush()
        sys.stderr.write(f"{name}: warning on stderr\\n")
        sys.stderr.flush()
        sys.stdout.write(f"{name}: after the warning\\n")
        sys.stdout.flush()
        code = int(text.split()[-1]) if text.split()[-1].isdigit() else 1
        status = max(status, code)
sys.exit(status)
"""


@pytest.fixture
def lint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Return the command of the stand-in linter; work in a fresh directory."""
    return stand_in_linter(tmp_path, monkeypatch, LINTER, "LINT_COUNTER")


def linted(tmp_path: Path) -> list[str]:
    """Return, and forget, the files the stand-in linter ran on, sorted."""
    counter = tmp_path / "lint_counter"
    if not counter.exists():
        return []
    names = sorted(counter.read_text().splitlines())
    counter.unlink()
    return names


def hook(*argv: str) -> subprocess.CompletedProcess[bytes]:
    """Run the hook's entry point as pre-commit does, both streams into one pipe."""
    return subprocess.run(
        [sys.executable, "-m", "jobstamps.precommit", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        check=False,
    )


# -- the front end, run directly ---------------------------------------------------------------


def test_unchanged_files_replay_and_only_a_changed_file_runs(
    lint: list[str], tmp_path: Path
) -> None:
    Path("a.py").write_text("fine\n")
    Path("b.py").write_text("bad\n")
    Path("c.py").write_text("fine\n")
    first = hook("--", *lint, "--", "a.py", "b.py", "c.py")
    assert first.returncode == 1
    assert b"b.py:1: bad\n" in first.stdout
    # a.py ran with b.py, which failed: a.py printed nothing, so it is run again alone
    assert linted(tmp_path) == ["a.py", "a.py", "b.py", "c.py"]

    second = hook("--", *lint, "--", "a.py", "b.py", "c.py")
    assert (second.returncode, second.stdout) == (first.returncode, first.stdout)
    assert linted(tmp_path) == []

    Path("c.py").write_text("bad 3\n")
    third = hook("--", *lint, "--", "a.py", "b.py", "c.py")
    assert third.returncode == 3
    assert linted(tmp_path) == ["c.py"]
    assert third.stdout.startswith(first.stdout)  # b.py replayed first, then c.py's new output
    assert b"c.py:1: bad\n" in third.stdout


def test_output_keeps_file_order_and_stream_interleaving_when_replayed(lint: list[str]) -> None:
    names = [f"f{i}.py" for i in range(6)]
    for name in names:
        Path(name).write_text("bad\n")
    first = hook("--jobs", "3", "--", *lint, "--", *names)
    expected = b"".join(
        f"{n}:1: bad\n{n}: warning on stderr\n{n}: after the warning\n".encode() for n in names
    )
    assert first.stdout == expected
    second = hook("--jobs", "3", "--", *lint, "--", *names)
    assert second.stdout == expected
    assert second.returncode == first.returncode == 1


def test_status_is_the_largest_as_pre_commit_combines_batches(lint: list[str]) -> None:
    Path("a.py").write_text("bad 2\n")
    Path("b.py").write_text("bad 5\n")
    Path("c.py").write_text("fine\n")
    assert hook("--", *lint, "--", "a.py").returncode == 2
    assert hook("--", *lint, "--", "b.py").returncode == 5
    assert hook("--", *lint, "--", "a.py", "b.py", "c.py").returncode == 5
    assert hook("--", *lint, "--", "c.py", "a.py").returncode == 2
    assert hook("--", *lint, "--", "c.py").returncode == 0


def test_declared_dependency_may_be_missing_and_creating_it_reruns(
    lint: list[str], tmp_path: Path
) -> None:
    Path("a.py").write_text("fine\n")
    argv = ["--dependencies", "setup.cfg", ".flake8", "--", *lint, "--", "a.py"]
    assert hook(*argv).returncode == 0
    assert hook(*argv).returncode == 0
    assert linted(tmp_path) == ["a.py"]
    Path(".flake8").write_text("[flake8]\n")
    assert hook(*argv).returncode == 0
    assert linted(tmp_path) == ["a.py"]
    Path(".flake8").write_text("[flake8]\nextend-ignore = E\n")
    assert hook(*argv).returncode == 0
    assert linted(tmp_path) == ["a.py"]
    Path(".flake8").unlink()
    assert hook(*argv).returncode == 0
    assert linted(tmp_path) == ["a.py"]


def test_changed_command_line_or_declared_env_reruns(
    lint: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Path("a.py").write_text("fine\n")
    assert hook("--env", "LINT_MODE", "--", *lint, "--", "a.py").returncode == 0
    assert hook("--env", "LINT_MODE", "--", *lint, "--", "a.py").returncode == 0
    assert linted(tmp_path) == ["a.py"]
    monkeypatch.setenv("LINT_MODE", "strict")
    assert hook("--env", "LINT_MODE", "--", *lint, "--", "a.py").returncode == 0
    assert hook("--env", "LINT_MODE", "--", *lint, "--strict", "--", "a.py").returncode == 0
    assert linted(tmp_path) == ["a.py", "a.py"]


def test_killed_run_is_not_stored(lint: list[str], tmp_path: Path) -> None:
    Path("a.py").write_text("kill\n")
    for _ in range(2):
        result = hook("--explain", "--", *lint, "--", "a.py")
        assert result.returncode == 128 + 15
        assert b"jobstamp: not stored: the command was killed by signal 15" in result.stdout
    assert linted(tmp_path) == ["a.py", "a.py"]


def test_no_store_failures_reruns_failing_files_only(lint: list[str], tmp_path: Path) -> None:
    Path("a.py").write_text("fine\n")
    Path("b.py").write_text("bad\n")
    for _ in range(2):
        assert hook("--no-store-failures", "--", *lint, "--", "a.py", "b.py").returncode == 1
    assert linted(tmp_path) == ["a.py", "b.py", "b.py"]


def test_force_reruns_and_explain_says_why(lint: list[str], tmp_path: Path) -> None:
    Path("a.py").write_text("fine\n")
    hook("--", *lint, "--", "a.py")
    assert hook("--force", "--", *lint, "--", "a.py").returncode == 0
    assert linted(tmp_path) == ["a.py", "a.py"]
    explained = hook("--explain", "--", *lint, "--", "a.py")
    assert b"jobstamp: 1 file: 1 replayed, 0 ran in 0 runs\n" in explained.stdout
    assert linted(tmp_path) == []


def test_without_file_names_the_command_runs_uncached(lint: list[str], tmp_path: Path) -> None:
    Path("x.py").write_text("fine\n")
    for _ in range(2):
        assert hook("--", *lint, "x.py", "--").returncode == 0
    assert linted(tmp_path) == ["x.py", "x.py"]


def test_jobstamps_disabled_runs_the_command_once_on_all_files(
    lint: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Path("a.py").write_text("fine\n")
    Path("b.py").write_text("fine\n")
    monkeypatch.setenv("JOBSTAMPS_DISABLED", "1")
    assert hook("--", *lint, "--", "a.py", "b.py").returncode == 0
    assert hook("--", *lint, "--", "a.py", "b.py").returncode == 0
    assert linted(tmp_path) == ["a.py", "a.py", "b.py", "b.py"]


def test_hash_mode_ignores_a_touch_but_not_an_upgraded_linter(
    lint: list[str], tmp_path: Path
) -> None:
    launcher = tmp_path / "lint"
    launcher.write_text(f"#!{lint[0]}\n" + LINTER)
    launcher.chmod(0o755)
    Path("a.py").write_text("fine\n")
    argv = ["--use-hashes", "--", str(launcher), "--", "a.py"]
    assert hook(*argv).returncode == 0
    os.utime("a.py", ns=(1, 1))  # same contents, other times: not a change in hash mode
    assert hook(*argv).returncode == 0
    assert linted(tmp_path) == ["a.py"]
    stat = launcher.stat()
    os.utime(launcher, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # reinstalled in place
    assert hook(*argv).returncode == 0
    assert linted(tmp_path) == ["a.py"]


def test_internal_error_lints_the_file_without_the_cache(
    lint: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(Engine, "check", broken)
    Path("a.py").write_text("bad 4\n")
    assert precommit.main(["--", *lint, "--", "a.py"]) == 4
    out, err = capfd.readouterr()
    assert "a.py:1: bad" in out
    assert "jobstamp: internal error (RuntimeError('simulated bug')); checking the remaining" in err
    assert "Traceback" not in err
    assert linted(tmp_path) == ["a.py"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["a.py", "b.py"], "no command given. Set the hook's args to [OPTION..., --, COMMAND"),
        (["--use-hashes", "a.py"], "no command given"),
        (["--", "flake8", "a.py"], "the arguments must end with '--'"),
        (["--", "--", "a.py"], "no command between the two '--'"),
        (["--bogus", "--", "flake8", "--", "a.py"], "unrecognized arguments: --bogus"),
        (["--jobs", "0", "--", "flake8", "--", "a.py"], "--jobs must be at least 1"),
    ],
)
def test_usage_errors_exit_2_with_one_line(
    argv: list[str], message: str, capfd: pytest.CaptureFixture[str]
) -> None:
    assert precommit.main(argv) == 2
    out, err = capfd.readouterr()
    assert out == ""
    assert err.startswith("jobstamp: ")
    assert message in err
    assert err.count("\n") == 1


def test_ready_made_hook_without_final_separator_gets_a_hint_that_fits_it(
    capfd: pytest.CaptureFixture[str],
) -> None:
    argv = ["--hook", "jobstamp-flake8", "--use-hashes", "--", "flake8", "--explain", "a.py"]
    assert precommit.main(argv) == 2
    err = capfd.readouterr().err
    assert "the args of hook jobstamp-flake8 must end with '--'" in err
    assert "args: [--jobstamps--, --explain, --]" in err
    assert "COMMAND" not in err
    assert err.count("\n") == 1


def test_jobstamps_options_after_the_mark_reach_jobstamps_not_the_linter(
    lint: list[str], tmp_path: Path
) -> None:
    Path("a.py").write_text("bad\n")
    argv = ["--hook", "jobstamp-lint", "--", *lint, "--jobstamps--", "--explain", "--jobs", "1"]
    result = hook(*argv, "--", "a.py")
    assert result.returncode == 1
    assert b"jobstamp: 1 file: 0 replayed, 1 ran in 1 run\n" in result.stdout
    assert linted(tmp_path) == ["a.py"]  # the stand-in took no option for a file
    assert hook(*argv, "--", "a.py").stdout.startswith(b"a.py:1: bad\n")
    assert linted(tmp_path) == []


def hooks_manifest() -> list[dict[str, object]]:
    yaml = pytest.importorskip("yaml")
    hooks: list[dict[str, object]] = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    return hooks


def test_generic_hooks_ask_to_be_named_after_the_linter() -> None:
    generic = [hook for hook in hooks_manifest() if hook["id"] in {"jobstamp", "jobstamp-system"}]
    assert len(generic) == 2
    assert all("set name to your linter" in str(hook["name"]) for hook in generic)


def test_ready_made_hooks_name_themselves_and_end_their_args_with_the_separator() -> None:
    ready = [hook for hook in hooks_manifest() if "args" in hook and hook.get("pass_filenames", 1)]
    assert {hook["id"] for hook in ready} >= {
        "jobstamp-flake8",
        "jobstamp-ruff",
        "jobstamp-pycodestyle",
        "jobstamp-yamllint",
        "jobstamp-codespell",
        "jobstamp-shellcheck",
    }
    for hook in ready:
        entry = str(hook["entry"]).split()
        assert entry[:5] == ["python", "-m", "jobstamps.precommit", "--hook", hook["id"]]
        assert "--use-hashes" in entry
        assert "--" in entry
        assert hook["args"] == ["--"]
        assert hook["require_serial"] is True


def test_the_mypy_hook_runs_once_over_the_project_traced() -> None:
    (mypy,) = [hook for hook in hooks_manifest() if hook["id"] == "jobstamp-mypy"]
    assert str(mypy["entry"]).split() == ["python", "-m", "jobstamps", "--trace", "--", "mypy"]
    assert (mypy["args"], mypy["pass_filenames"]) == (["."], False)


def test_missing_command_exits_127(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    assert precommit.main(["--", str(tmp_path / "no-such-linter"), "--", "a.py"]) == 127
    assert capfd.readouterr().err.startswith("jobstamp: command not found: ")


def test_linter_without_execute_permission_exits_126(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    script = tmp_path / "lint"
    script.write_text("#!/bin/sh\n")
    assert precommit.main(["--", str(script), "--", "a.py"]) == 126
    assert "permission denied" in capfd.readouterr().err


def test_unusable_cache_lints_uncached_with_one_line_on_stderr(
    lint: list[str], tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    Path("a.py").write_text("bad 3\n")
    Path("b.py").write_text("fine\n")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for _ in range(2):
        argv = ["--stamp-directory", str(blocker), "--", *lint, "--", "a.py", "b.py"]
        assert precommit.main(argv) == 3
        out, err = capfd.readouterr()
        assert "b.py:1: bad" not in out
        assert err.count("jobstamp: ") == 1
        assert err.startswith("jobstamp: cache directory")
        assert "running the command without the cache" in err
        assert "Traceback" not in err
        assert linted(tmp_path) == ["a.py", "b.py"]


def test_help_exits_0(capfd: pytest.CaptureFixture[str]) -> None:
    assert precommit.main(["--help"]) == 0
    assert "--dependencies" in capfd.readouterr().out


# -- the hooks, driven by the real pre-commit --------------------------------------------------

GIT_IDENTITY = ["-c", "user.name=jobstamps tests", "-c", "user.email=tests@jobstamps.invalid"]


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *GIT_IDENTITY, *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture(scope="module")
def hook_repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """Commit a snapshot of this tree, uncommitted changes included; return its path and rev."""
    if not (REPO / ".git").exists():
        pytest.fail("the pre-commit tests need a git checkout of jobstamps")
    listed = git(REPO, "ls-files", "-z", "--cached", "--others", "--exclude-standard").split("\0")
    snapshot = tmp_path_factory.mktemp("hook-repo")
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            (snapshot / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, snapshot / name)
    git(snapshot, "init", "--quiet")
    git(snapshot, "add", "--all")
    git(snapshot, "commit", "--quiet", "--no-verify", "-m", "snapshot")
    return str(snapshot), git(snapshot, "rev-parse", "HEAD").strip()


@pytest.fixture(scope="module")
def pre_commit_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where pre-commit keeps its clones and hook environments: shared by this module's tests."""
    return tmp_path_factory.mktemp("pre-commit-home")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A throwaway git repository with one clean and one failing Python file."""
    root = tmp_path / "project"
    root.mkdir()
    git(root, "init", "--quiet")
    (root / "good.py").write_text("x = 1\n")
    (root / "bad.py").write_text("import os\n")
    return root


def pre_commit_config(project: Path, hook_repo: tuple[str, str], hooks_yaml: str) -> None:
    """Write ``.pre-commit-config.yaml`` using the snapshot repository with ``hooks_yaml``."""
    repo, rev = hook_repo
    hooks = textwrap.indent(textwrap.dedent(hooks_yaml).strip(), "      ")
    config = f"repos:\n  - repo: {json.dumps(repo)}\n    rev: {rev}\n    hooks:\n{hooks}\n"
    (project / ".pre-commit-config.yaml").write_text(config)


def run_pre_commit(
    project: Path, home: Path, path: str | None = None, color: str = "never"
) -> subprocess.CompletedProcess[str]:
    """Run ``pre-commit run --all-files`` in ``project``, as a user would.

    With ``color="always"``, pre-commit runs the hooks on a pseudo-terminal of its own.
    """
    git(project, "add", "--all")
    env = dict(os.environ, PRE_COMMIT_HOME=str(home))
    env.pop("PYTHONPATH")  # the hook must import the jobstamps that pre-commit installed
    if path is not None:
        env["PATH"] = path
    return subprocess.run(
        [sys.executable, "-m", "pre_commit", "run", "--all-files", f"--color={color}"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def report(result: subprocess.CompletedProcess[str]) -> str:
    """Return what pre-commit said about the hooks, without its environment set-up notes."""
    return "".join(
        line for line in result.stdout.splitlines(True) if not line.startswith("[INFO] ")
    )


def counting_wrapper(directory: Path, name: str, target: str) -> Path:
    """Write an executable ``name`` that notes the files it is given, then runs ``target``."""
    directory.mkdir(exist_ok=True)
    wrapper = directory / name
    counter = directory.parent / "invocations"
    wrapper.write_text(
        "#!/bin/sh\n"
        'line=""; for arg; do case "$arg" in -*) ;; *) line="$line $arg";; esac; done\n'
        f'echo "$line" >> {counter}\nexec {target} "$@"\n'
    )
    wrapper.chmod(0o755)
    return wrapper


def invocations(project: Path) -> list[str]:
    """Return, and forget, the files the wrapped linter ran on, sorted."""
    counter = project.parent / "invocations"
    names = sorted(counter.read_text().split()) if counter.exists() else []
    counter.unlink(missing_ok=True)
    return names


@pytest.fixture
def docs_blocks() -> list[str]:
    """The YAML examples of the pre-commit quick start: generic, system, ready-made, mypy hook."""
    blocks = docs_code_blocks("quickstart/pre-commit", "yaml")
    assert len(blocks) == 4, "the pre-commit quick start should have four YAML examples"
    return blocks


@pytest.mark.slow
def test_generic_hook_lints_each_file_once_then_replays(
    project: Path, hook_repo: tuple[str, str], pre_commit_home: Path
) -> None:
    wrapper = counting_wrapper(project.parent / "bin", "count-flake8", "flake8")
    pre_commit_config(
        project,
        hook_repo,
        f"""
        - id: jobstamp
          args: [--use-hashes, --, {json.dumps(str(wrapper))}, --]
          additional_dependencies: [flake8, flake8-bugbear]  # as the docs: one environment
          types: [python]
        """,
    )
    first = run_pre_commit(project, pre_commit_home)
    assert first.returncode == 1, first.stdout + first.stderr
    assert "bad.py:1:1: F401 'os' imported but unused" in first.stdout
    assert invocations(project) == ["bad.py", "good.py"]

    second = run_pre_commit(project, pre_commit_home)
    assert (second.returncode, report(second)) == (first.returncode, report(first))
    assert invocations(project) == []

    (project / "good.py").write_text("import sys\n")
    third = run_pre_commit(project, pre_commit_home)
    assert third.returncode == 1
    assert invocations(project) == ["good.py"]
    assert "bad.py:1:1: F401 'os' imported but unused" in third.stdout
    assert "good.py:1:1: F401 'sys' imported but unused" in third.stdout

    (project / "good.py").write_text("x = 2\n")
    (project / "bad.py").write_text("x = 3\n")
    fourth = run_pre_commit(project, pre_commit_home)
    assert fourth.returncode == 0, fourth.stdout
    assert invocations(project) == ["bad.py", "good.py"]


@pytest.mark.slow
def test_a_long_hook_run_on_pre_commits_terminal_shows_no_progress(
    project: Path, hook_repo: tuple[str, str], pre_commit_home: Path
) -> None:
    bin_directory = project.parent / "bin"
    bin_directory.mkdir()
    slow = bin_directory / "slow-flake8"  # longer than a progress line waits for
    slow.write_text(
        '#!/bin/sh\n[ -t 2 ] && echo "stderr is a terminal" >&2\nsleep 1.5\nexec flake8 "$@"\n'
    )
    slow.chmod(0o755)
    pre_commit_config(
        project,
        hook_repo,
        f"""
        - id: jobstamp
          args: [--use-hashes, --, {json.dumps(str(slow))}, --]
          additional_dependencies: [flake8, flake8-bugbear]  # the environment of the test above
          types: [python]
        """,
    )
    result = run_pre_commit(project, pre_commit_home, color="always")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "stderr is a terminal" in result.stdout  # only PRE_COMMIT tells the hook apart
    assert "'os' imported but unused" in result.stdout  # flake8 colours it: a terminal
    assert "files done" not in result.stdout + result.stderr
    assert "\x1b[K" not in result.stdout + result.stderr


@pytest.mark.slow
def test_the_docs_example_runs_and_replays(
    project: Path,
    hook_repo: tuple[str, str],
    pre_commit_home: Path,
    docs_blocks: list[str],
    isolated_cache: Path,
) -> None:
    config = docs_blocks[0]
    config, repos = re.subn(
        r"(?m)^(\s*- repo: ).*$", lambda m: m.group(1) + json.dumps(hook_repo[0]), config
    )
    config, revs = re.subn(r"(?m)^(\s*rev: ).*$", lambda m: m.group(1) + hook_repo[1], config)
    assert (repos, revs) == (1, 1)
    (project / ".pre-commit-config.yaml").write_text(config)
    first = run_pre_commit(project, pre_commit_home)
    assert first.returncode == 1, first.stdout + first.stderr
    assert "bad.py:1:1: F401 'os' imported but unused" in first.stdout
    assert "good.py" not in first.stdout
    assert Store(str(isolated_cache)).stats()["misses"] == 2

    second = run_pre_commit(project, pre_commit_home)
    assert (second.returncode, report(second)) == (first.returncode, report(first))
    stats = Store(str(isolated_cache)).stats()
    assert (stats["hits"], stats["misses"]) == (2, 2)  # nothing ran the second time

    (project / ".flake8").write_text("[flake8]\nextend-ignore = F401\n")
    third = run_pre_commit(project, pre_commit_home)
    assert third.returncode == 0, third.stdout
    assert Store(str(isolated_cache)).stats()["misses"] == 4


@pytest.mark.slow
def test_the_docs_ready_made_flake8_hook(
    project: Path,
    hook_repo: tuple[str, str],
    pre_commit_home: Path,
    docs_blocks: list[str],
    isolated_cache: Path,
) -> None:
    pre_commit_config(project, hook_repo, docs_blocks[2])
    (project / "good.py").write_text(f"x = {'1 + ' * 21}1\n")  # 89 characters: fine at 100
    (project / "bad.py").write_text("def f(x=[]):\n    return x\n")  # flake8-bugbear's B006
    first = run_pre_commit(project, pre_commit_home)
    assert first.returncode == 1, first.stdout + first.stderr
    assert "bad.py:1:9: B006" in first.stdout, first.stdout
    assert "good.py" not in first.stdout
    second = run_pre_commit(project, pre_commit_home)
    assert (second.returncode, report(second)) == (first.returncode, report(first))
    stats = Store(str(isolated_cache)).stats()
    assert (stats["hits"], stats["misses"]) == (2, 2)


@pytest.fixture(scope="module")
def system_env(installed: Path) -> Path:
    """The installed jobstamps' environment with flake8 added, as a user's own environment."""
    subprocess.run(
        [
            installed / "python",
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "flake8",
        ],
        check=True,
    )
    return installed


@pytest.mark.slow
def test_the_docs_system_hook_uses_the_current_environment(
    project: Path,
    hook_repo: tuple[str, str],
    pre_commit_home: Path,
    docs_blocks: list[str],
    system_env: Path,
) -> None:
    # flake8 on PATH is a wrapper that counts its runs, then runs the environment's flake8.
    wrapper = counting_wrapper(project.parent / "bin", "flake8", str(system_env / "flake8"))
    pre_commit_config(project, hook_repo, docs_blocks[1])
    path = os.pathsep.join([str(wrapper.parent), str(system_env), os.environ["PATH"]])
    first = run_pre_commit(project, pre_commit_home, path=path)
    assert first.returncode == 1, first.stdout + first.stderr
    assert "bad.py:1:1: F401 'os' imported but unused" in first.stdout
    assert invocations(project) == ["bad.py", "good.py"]
    second = run_pre_commit(project, pre_commit_home, path=path)
    assert (second.returncode, report(second)) == (first.returncode, report(first))
    assert invocations(project) == []


def fresh_project(tmp_path: Path, files: dict[str, str]) -> Path:
    """A throwaway git repository holding ``files``."""
    root = tmp_path / "fresh"
    root.mkdir()
    git(root, "init", "--quiet")
    for name, text in files.items():
        (root / name).write_text(text)
    return root


@pytest.mark.slow
@pytest.mark.parametrize(
    ("hook_id", "files", "message"),
    [
        ("jobstamp-ruff", {"good.py": "x = 1\n", "bad.py": "import os\n"}, "bad.py:1:8: F401"),
        ("jobstamp-pycodestyle", {"good.py": "x = 1\n", "bad.py": "x=1\n"}, "bad.py:1:2: E225"),
        (
            "jobstamp-yamllint",
            {"good.yaml": "---\na: 1\n", "bad.yaml": "---\na: 1\na: 2\n"},
            "bad.yaml:3:1: [error] duplication of key",
        ),
        (
            "jobstamp-codespell",
            {"good.txt": "the cat\n", "bad.txt": "teh cat\n"},
            "bad.txt:1: teh ==> the",
        ),
        (
            "jobstamp-shellcheck",
            {"good.sh": '#!/bin/sh\necho "$1"\n', "bad.sh": "#!/bin/sh\necho $1\n"},
            "bad.sh:2:6: note: Double quote",
        ),
    ],
)
def test_ready_made_hook_runs_the_real_linter_then_replays(
    tmp_path: Path,
    hook_repo: tuple[str, str],
    pre_commit_home: Path,
    isolated_cache: Path,
    hook_id: str,
    files: dict[str, str],
    message: str,
) -> None:
    project = fresh_project(tmp_path, files)
    pre_commit_config(project, hook_repo, f"- id: {hook_id}")
    first = run_pre_commit(project, pre_commit_home)
    assert first.returncode == 1, first.stdout + first.stderr
    assert message in first.stdout, first.stdout
    assert "good." not in first.stdout
    misses = Store(str(isolated_cache)).stats()["misses"]
    assert misses >= 2
    second = run_pre_commit(project, pre_commit_home)
    assert (second.returncode, report(second)) == (first.returncode, report(first))
    stats = Store(str(isolated_cache)).stats()
    assert (stats["hits"], stats["misses"]) == (misses, misses)


@pytest.mark.slow
def test_ready_made_hook_takes_jobstamps_options_after_the_mark(
    project: Path, hook_repo: tuple[str, str], pre_commit_home: Path
) -> None:
    pre_commit_config(
        project,
        hook_repo,
        """
        - id: jobstamp-flake8
          args: [--max-line-length=100, --jobstamps--, --explain, --]
        """,
    )
    first = run_pre_commit(project, pre_commit_home)
    assert first.returncode == 1, first.stdout + first.stderr
    assert "bad.py:1:1: F401 'os' imported but unused" in first.stdout
    assert "jobstamp: 2 files: 0 replayed, 2 ran in " in first.stdout
    second = run_pre_commit(project, pre_commit_home)
    assert "jobstamp: 2 files: 2 replayed, 0 ran in 0 runs" in second.stdout


@pytest.mark.slow
def test_unusable_cache_does_not_fail_the_commit_beyond_the_linter(
    project: Path,
    hook_repo: tuple[str, str],
    pre_commit_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (tmp_path / "blocker").write_text("")
    monkeypatch.setenv("JOBSTAMPS_CACHE_DIR", str(tmp_path / "blocker" / "cache"))
    pre_commit_config(project, hook_repo, "- id: jobstamp-flake8")
    result = run_pre_commit(project, pre_commit_home)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "bad.py:1:1: F401 'os' imported but unused" in result.stdout
    said = [line for line in result.stdout.splitlines() if line.startswith("jobstamp:")]
    assert len(said) == 1
    assert "running the command without the cache" in said[0]
    (project / "bad.py").write_text("x = 2\n")
    assert run_pre_commit(project, pre_commit_home).returncode == 0


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")
@pytest.mark.parametrize(
    ("hook_yaml", "config"),
    [
        (
            """
            - id: jobstamp
              args: [--trace, --, flake8, --]
              additional_dependencies: [flake8, flake8-bugbear]
              types: [python]
            """,
            ".flake8",
        ),
        (
            """
            - id: jobstamp-flake8
              args: [--config=lint/flake8.cfg, --jobstamps--, --trace, --]
            """,
            "lint/flake8.cfg",
        ),
    ],
    ids=["generic", "ready-made"],
)
def test_trace_in_args_reruns_when_a_configuration_declared_nowhere_changes(
    project: Path,
    hook_repo: tuple[str, str],
    pre_commit_home: Path,
    isolated_cache: Path,
    hook_yaml: str,
    config: str,
) -> None:
    # Neither hook declares the configuration file: tracing flake8 finds it.
    (project / config).parent.mkdir(exist_ok=True)
    (project / config).write_text("[flake8]\n")
    pre_commit_config(project, hook_repo, hook_yaml)
    first = run_pre_commit(project, pre_commit_home)
    assert first.returncode == 1, first.stdout + first.stderr
    assert "bad.py:1:1: F401 'os' imported but unused" in first.stdout
    second = run_pre_commit(project, pre_commit_home)
    assert (second.returncode, report(second)) == (first.returncode, report(first))
    stats = Store(str(isolated_cache)).stats()
    assert (stats["hits"], stats["misses"]) == (2, 2)

    (project / config).write_text("[flake8]\nextend-ignore = F401\n")
    third = run_pre_commit(project, pre_commit_home)
    assert third.returncode == 0, third.stdout
    assert Store(str(isolated_cache)).stats()["misses"] == 4


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")
def test_the_docs_mypy_hook_runs_once_replays_and_reruns_when_an_import_changes(
    tmp_path: Path,
    hook_repo: tuple[str, str],
    pre_commit_home: Path,
    docs_blocks: list[str],
    isolated_cache: Path,
) -> None:
    # The hook checks src (args: [src]); src/app.py imports helper.py, which is not in src.
    helper = "def twice(n: int) -> int:\n    return 2 * n\n"
    project = fresh_project(tmp_path, {"helper.py": helper})
    (project / "src").mkdir()
    (project / "src" / "app.py").write_text("from helper import twice\n\nx: int = twice(1)\n")
    pre_commit_config(project, hook_repo, docs_blocks[3])

    def stats() -> tuple[int, int]:
        counted = Store(str(isolated_cache)).stats()
        return counted["hits"], counted["misses"]

    first = run_pre_commit(project, pre_commit_home)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "mypy (jobstamps)" in first.stdout
    assert stats() == (0, 1)  # one run of mypy over the project
    second = run_pre_commit(project, pre_commit_home)
    assert (second.returncode, report(second)) == (0, report(first))
    assert stats() == (1, 1)

    (project / "helper.py").write_text("def twice(n: int) -> str:\n    return str(2 * n)\n")
    third = run_pre_commit(project, pre_commit_home)
    assert third.returncode == 1, third.stdout
    assert "src/app.py:3: error: Incompatible types in assignment" in third.stdout
    assert stats() == (1, 2)
    fourth = run_pre_commit(project, pre_commit_home)
    assert (fourth.returncode, report(fourth)) == (1, report(third))
    assert stats() == (2, 2)
